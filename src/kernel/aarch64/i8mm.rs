//! I8MM I2_S tiles: `smmla` (through `asm!`) multiplies a 2×8 int8 matrix (codes of 2 rows ×
//! 8 columns) by an 8×2 one (the same 8 activations of 2 tokens) into a 2×2 int32 tile:
//! 32 multiply-adds per instruction, twice an `sdot`.
//!
//! Codes: `zip1`/`zip2` of two rows' 16 packed bytes (64-bit lanes) give `[row0 bytes 0..8,
//! row1 bytes 0..8]` and `[.. 8..16, .. 8..16]`, which decode (as in `codes`) to the codes of
//! columns `k..k+8` and `k+8..k+16` of both rows for each quarter.
//!
//! Activations: the matching `[token0 columns k..k+8, token1 columns k..k+8]` operands are
//! interleaved once per token group and column chunk (`repack`, `CHUNK_COLS` columns, at most
//! 16 KiB, reused by every row tile), so the tiles load them ready-made instead of zipping them
//! for every row tile. Dots of later chunks are added to the stored ones.
//!
//! Lane `2i + j` of an accumulator is the dot of row `2p + i` and token `2s + j`; a lane sums at
//! most `CHUNK_COLS` products of magnitude ≤ 3·128 = 384 (codes 0..=3), so it cannot overflow,
//! and the sums over chunks stay exact in int32 (|dot| ≤ 384·2^22 < 2^29 for `cols ≤ MAX_COLS`).
//!
//! Tiles: 4 rows × 8 tokens (8 accumulators: 2 row pairs × 4 token pairs); odd token groups are
//! padded with a repeated token, leftover row pairs take 2-row tiles, an odd last row the dotprod
//! tile, and one token (or one row) the dotprod kernel.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::{Job, codes, load_acts, load16};
use crate::format::I2sVariant;

/// Columns of activations interleaved at a time: 8 tokens × 2048 columns = 16 KiB, which stays
/// in L1 while the weight rows stream past.
const CHUNK_COLS: usize = 2048;

/// Largest token group (the widest tile).
const MAX_T: usize = 8;

#[target_feature(enable = "neon,dotprod,i8mm")]
pub(super) unsafe fn i2s_dots(variant: I2sVariant, job: &mut Job) {
    // SAFETY: the caller's contract (i8mm and dotprod available, `job` checked).
    unsafe {
        match variant {
            I2sVariant::X86 => dots::<128>(job),
            I2sVariant::Arm64 => dots::<64>(job),
        }
    }
}

/// Every row against every token of `job`, blocks of `L` elements.
///
/// # Safety
/// The CPU has i8mm and dotprod; `job` is checked (`Job::new`).
#[target_feature(enable = "neon,dotprod,i8mm")]
unsafe fn dots<const L: usize>(job: &mut Job) {
    if job.n_rows < 2 || job.n_tokens < 2 {
        // SAFETY: as this function's.
        return unsafe { super::dotprod::dots::<L>(job) };
    }
    let t_pad = job.n_tokens.min(MAX_T).next_multiple_of(2);
    // On the stack (16 KiB at most): the kernel runs inside every GEMM task, whose steady path
    // allocates nothing.
    let mut storage = [0i8; CHUNK_COLS * MAX_T];
    let buf = &mut storage[..CHUNK_COLS.min(job.n_blocks * L) * t_pad];
    let mut t0 = 0;
    while t0 < job.n_tokens {
        let nt = (job.n_tokens - t0).min(MAX_T);
        let mut sub = job.tokens_sub(t0, nt);
        // SAFETY: `sub` is checked like `job`; `buf` holds a chunk of the largest padded group
        // (a later, smaller group needs no more).
        unsafe {
            match nt {
                1 => super::dotprod::dots::<L>(&mut sub),
                2 => group::<L, 2>(&mut sub, buf),
                3 | 4 => group::<L, 4>(&mut sub, buf),
                5 | 6 => group::<L, 6>(&mut sub, buf),
                _ => group::<L, 8>(&mut sub, buf),
            }
        }
        t0 += nt;
    }
}

/// Every row against the `n_tokens ≤ T` tokens of `job` (padded to `T`, even), by column chunks.
///
/// # Safety
/// As `dots`; `job.n_rows ≥ 2`; `buf` holds at least `min(CHUNK_COLS, cols)·T` values.
#[target_feature(enable = "neon,dotprod,i8mm")]
unsafe fn group<const L: usize, const T: usize>(job: &mut Job, buf: &mut [i8]) {
    let nt = job.n_tokens;
    let (rb, n_blocks) = (job.row_bytes, job.n_blocks);
    // SAFETY: 1 ≤ nt ≤ T and nt = n_tokens.
    let toks = unsafe { job.tokens::<T>(0, nt) };
    let paired = job.n_rows / 2 * 2;
    let chunk_blocks = CHUNK_COLS / L;
    let mut c0 = 0;
    while c0 < n_blocks {
        let nb = chunk_blocks.min(n_blocks - c0);
        // SAFETY: columns [c0·L, (c0 + nb)·L) of every token are readable (`Job::new`).
        unsafe { repack(&toks, c0 * L, nb * L, buf) };
        let mut r0 = 0;
        while r0 < paired {
            // SAFETY: rows r0 .. r0 + R ≤ n_rows hold blocks c0 .. c0 + nb; `buf` holds the
            // chunk's interleaved activations.
            unsafe {
                let w = job.row(r0).add(c0 * (L / 4));
                if paired - r0 >= 4 {
                    let sums = tile::<L, 4, T>(w, rb, buf.as_ptr(), nb);
                    if c0 == 0 {
                        job.store(r0, 0, nt, sums);
                    } else {
                        job.accumulate(r0, 0, nt, sums);
                    }
                    r0 += 4;
                } else {
                    let sums = tile::<L, 2, T>(w, rb, buf.as_ptr(), nb);
                    if c0 == 0 {
                        job.store(r0, 0, nt, sums);
                    } else {
                        job.accumulate(r0, 0, nt, sums);
                    }
                    r0 += 2;
                }
            }
        }
        c0 += nb;
    }
    if paired < job.n_rows {
        // SAFETY: row `paired` < n_rows and the tokens are checked.
        let sums = unsafe { super::dotprod::tile::<L, 1, T>(job.row(paired), rb, toks, n_blocks) };
        job.store(paired, 0, nt, sums);
    }
}

/// Interleaves columns `k0 .. k0 + cols` (a multiple of 16) of the `T` tokens into `buf`: for
/// every 8 columns `c` (from `k0`) and token pair `s`, 16 values at `(c·T/2 + s)·16`: token
/// `2s`'s 8 activations, then token `2s+1`'s — the `smmla` operand for those columns.
///
/// # Safety
/// Columns `k0 .. k0 + cols` of every token are readable.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn repack<const T: usize>(toks: &[*const i8; T], k0: usize, cols: usize, buf: &mut [i8]) {
    let tp = T / 2;
    assert!(buf.len() >= cols * T, "repack buffer too small");
    let out = buf.as_mut_ptr();
    for j in (0..cols).step_by(16) {
        let c = j / 8;
        for s in 0..tp {
            // SAFETY: see the function contract; the stores stay below cols·T ≤ buf.len().
            unsafe {
                let x = load_acts(toks[2 * s].add(k0 + j));
                let y = load_acts(toks[2 * s + 1].add(k0 + j));
                vst1q_s8(out.add((c * tp + s) * 16), pair::<0>(x, y));
                vst1q_s8(out.add(((c + 1) * tp + s) * 16), pair::<1>(x, y));
            }
        }
    }
}

/// `acc += smmla(a, b)`: `acc[2i + j] += Σ_k a[8i + k]·b[8j + k]` (i, j < 2, k < 8).
#[target_feature(enable = "neon,i8mm")]
#[inline]
fn smmla(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `smmla` only reads and writes these registers; the i8mm feature is enabled.
    unsafe {
        asm!(
            "smmla {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// The low (`H` = 0) or high (`H` = 1) 8 bytes of `x` and of `y`: `[x half H, y half H]`.
#[target_feature(enable = "neon")]
#[inline]
fn pair<const H: usize>(x: int8x16_t, y: int8x16_t) -> int8x16_t {
    let (x, y) = (vreinterpretq_u64_s8(x), vreinterpretq_u64_s8(y));
    vreinterpretq_s8_u64(if H == 0 {
        vzip1q_u64(x, y)
    } else {
        vzip2q_u64(x, y)
    })
}

/// Code dots of `R` rows × `T` tokens (both even) over `n_blocks` blocks of `L` (128 or 64)
/// elements, the activations interleaved by `repack` at `x` (from the first block's column).
/// Accumulator `[p][s]` (`p < R/2`, `s < T/2`) holds rows `2p, 2p+1` × tokens `2s, 2s+1`; the
/// arrays are sized `R` × `T` because const generics cannot halve them, and the unused entries
/// are optimized away.
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and `x` `n_blocks·L·T` values.
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
unsafe fn tile<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    x: *const i8,
    n_blocks: usize,
) -> [[i32; T]; R] {
    const { assert!(R.is_multiple_of(2) && T.is_multiple_of(2)) };
    let mut acc = [[vdupq_n_s32(0); T]; R];
    for b in 0..n_blocks {
        // SAFETY: block b < n_blocks of every row and of `x` (the caller's contract).
        unsafe {
            let wb = w.add(b * (L / 4));
            super::prefetch_next_tile::<L, R>(wb, rb, b);
            for h in 0..L / 64 {
                // Packed bytes of row pairs, already paired: [p][0] bytes 0..8, [p][1] 8..16.
                let mut z = [[vdupq_n_u8(0); 2]; R];
                for p in 0..R / 2 {
                    let r0 = load16(wb.add(2 * p * rb + 16 * h));
                    let r1 = load16(wb.add((2 * p + 1) * rb + 16 * h));
                    let (x, y) = (vreinterpretq_u64_u8(r0), vreinterpretq_u64_u8(r1));
                    z[p] = [
                        vreinterpretq_u8_u64(vzip1q_u64(x, y)),
                        vreinterpretq_u8_u64(vzip2q_u64(x, y)),
                    ];
                }
                let k = b * L + 16 * h;
                step::<0, L, R, T>(&mut acc, &z, x, k);
                step::<1, L, R, T>(&mut acc, &z, x, k);
                step::<2, L, R, T>(&mut acc, &z, x, k);
                step::<3, L, R, T>(&mut acc, &z, x, k);
            }
        }
    }
    let mut out = [[0; T]; R];
    for p in 0..R / 2 {
        for s in 0..T / 2 {
            let mut lanes = [0i32; 4];
            // SAFETY: `lanes` is 4 writable int32.
            unsafe { vst1q_s32(lanes.as_mut_ptr(), acc[p][s]) };
            out[2 * p][2 * s] = lanes[0];
            out[2 * p][2 * s + 1] = lanes[1];
            out[2 * p + 1][2 * s] = lanes[2];
            out[2 * p + 1][2 * s + 1] = lanes[3];
        }
    }
    out
}

/// Quarter `Q` of every row pair's paired bytes `z[p]` (columns `k + Q·L/4 ..` + 16) against
/// the interleaved activations of every token pair: two `smmla`s of 8 columns each.
///
/// # Safety
/// `x` holds the interleaved activations of columns `k + Q·L/4 .. + 16` (see `repack`).
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
unsafe fn step<const Q: usize, const L: usize, const R: usize, const T: usize>(
    acc: &mut [[int32x4_t; T]; R],
    z: &[[uint8x16_t; 2]; R],
    x: *const i8,
    k: usize,
) {
    let tp = T / 2;
    let c = (k + Q * (L / 4)) / 8;
    let mut a = [[vdupq_n_s8(0); 2]; T];
    for s in 0..tp {
        // SAFETY: see the function contract.
        a[s] = unsafe {
            [
                load_acts(x.add((c * tp + s) * 16)),
                load_acts(x.add(((c + 1) * tp + s) * 16)),
            ]
        };
    }
    for p in 0..R / 2 {
        let cd = [codes::<Q>(z[p][0]), codes::<Q>(z[p][1])];
        for s in 0..tp {
            acc[p][s] = smmla(smmla(acc[p][s], cd[0], a[s][0]), cd[1], a[s][1]);
        }
    }
}
