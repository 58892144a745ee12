//! I8MM I2_S tiles: `smmla` (through `asm!`) multiplies a 2×8 int8 matrix (codes of 2 rows ×
//! 8 columns) by an 8×2 one (the same 8 activations of 2 tokens) into a 2×2 int32 tile:
//! 32 multiply-adds per instruction, twice an `sdot`.
//!
//! Operands: `zip1`/`zip2` of two rows' 16 packed bytes (64-bit lanes) give `[row0 bytes 0..8,
//! row1 bytes 0..8]` and `[.. 8..16, .. 8..16]`, which decode (as in `codes`) to the codes of
//! columns `k..k+8` and `k+8..k+16` of both rows for each quarter; `zip1`/`zip2` of two tokens'
//! 16 activations at the same columns give the matching second operands. Lane `2i + j` of an
//! accumulator is the dot of row `2p + i` and token `2s + j`; a lane sums at most 2^22 products
//! of magnitude ≤ 256 (`MAX_COLS`), so it cannot overflow.
//!
//! Tiles: 4 rows × 8 tokens (8 accumulators, 2 row pairs × 4 token pairs); odd token groups are
//! padded with a repeated token, one token runs the dotprod GEMV tile, leftover rows the
//! dotprod tile.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::dotprod::{tile as dot_tile, tile_scaled as dot_scaled};
use super::{Job, codes, load_acts, load16, tile_loop};
use crate::format::I2sVariant;

macro_rules! mmla_tiles {
    ($job:expr, $l:expr) => {
        tile_loop!(
            $job,
            $l,
            [
                (8 => 8, 4, tile, dot_tile),
                (7 => 8, 4, tile, dot_tile),
                (6 => 6, 4, tile, dot_tile),
                (5 => 6, 4, tile, dot_tile),
                (4 => 4, 4, tile, dot_tile),
                (3 => 4, 4, tile, dot_tile),
                (2 => 2, 4, tile, dot_tile),
                (1 => 1, 4, dot_scaled, dot_scaled),
            ]
        )
    };
}

#[target_feature(enable = "neon,dotprod,i8mm")]
pub(super) unsafe fn i2s_dots(variant: I2sVariant, job: &mut Job) {
    match variant {
        I2sVariant::X86 => mmla_tiles!(job, 128),
        I2sVariant::Arm64 => mmla_tiles!(job, 64),
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
/// elements. Accumulator `[p][s]` (`p < R/2`, `s < T/2`) holds rows `2p, 2p+1` × tokens
/// `2s, 2s+1`; the arrays are sized `R` × `T` because const generics cannot halve them, and the
/// unused entries are optimized away.
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and every token `a[t]`
/// `n_blocks·L` readable values.
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
unsafe fn tile<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: [*const i8; T],
    n_blocks: usize,
) -> [[i32; T]; R] {
    const { assert!(R % 2 == 0 && T % 2 == 0) };
    let mut acc = [[vdupq_n_s32(0); T]; R];
    for b in 0..n_blocks {
        // SAFETY: block b < n_blocks of every row and token (the caller's contract).
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
                let off = b * L + 16 * h;
                step::<0, L, R, T>(&mut acc, &z, &a, off);
                step::<1, L, R, T>(&mut acc, &z, &a, off);
                step::<2, L, R, T>(&mut acc, &z, &a, off);
                step::<3, L, R, T>(&mut acc, &z, &a, off);
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

/// Quarter `Q` of every row pair's paired bytes `z[p]` against the paired activations of each
/// token pair at `a[t] + off + Q·L/4` (16 columns: two `smmla`s of 8).
///
/// # Safety
/// 16 values readable at `a[t] + off + Q·L/4` for `t < T`.
#[target_feature(enable = "neon,dotprod,i8mm")]
#[inline]
unsafe fn step<const Q: usize, const L: usize, const R: usize, const T: usize>(
    acc: &mut [[int32x4_t; T]; R],
    z: &[[uint8x16_t; 2]; R],
    a: &[*const i8; T],
    off: usize,
) {
    let mut x = [[vdupq_n_s8(0); 2]; T];
    for s in 0..T / 2 {
        // SAFETY: see the function contract.
        let (t0, t1) = unsafe {
            (
                load_acts(a[2 * s].add(off + Q * (L / 4))),
                load_acts(a[2 * s + 1].add(off + Q * (L / 4))),
            )
        };
        x[s] = [pair::<0>(t0, t1), pair::<1>(t0, t1)];
    }
    for p in 0..R / 2 {
        let c = [codes::<Q>(z[p][0]), codes::<Q>(z[p][1])];
        for s in 0..T / 2 {
            acc[p][s] = smmla(smmla(acc[p][s], c[0], x[s][0]), c[1], x[s][1]);
        }
    }
}
