//! Dotprod I2_S tiles: `sdot` (4 int8 products into each int32 lane) through `asm!`, since
//! `vdotq_s32` is unstable on Rust 1.95.
//!
//! Two tile kinds (shapes: the `tile_loop!` call below):
//! * `tile` (≥ 2 tokens): codes decoded to 0..=2 (6 instructions per 16 packed bytes: `ushr`,
//!   `ushr`+`and` ×2, `and`), one accumulator per row × token.
//! * `tile_scaled` (1 token, the GEMV): quarters 1 and 2 are only masked in place (`and #0x30`,
//!   `and #0x0C`), which leaves code·16 and code·4 (≤ 32, still valid int8 operands): 4 decode
//!   instructions per 16 bytes instead of 6. Their products go to two more accumulators, whose
//!   lanes are then exact multiples of 16 and 4, and are shifted back in with `ssra` (exact)
//!   every `SCALED_FLUSH` blocks.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;
use std::arch::asm;

use super::{Job, codes, load_acts, load16, tile_loop};
use crate::format::I2sVariant;

#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn i2s_dots(variant: I2sVariant, job: &mut Job) {
    // SAFETY: the caller's contract (dotprod available, `job` checked).
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
/// The CPU has dotprod; `job` is checked (`Job::new`).
#[target_feature(enable = "neon,dotprod")]
pub(super) unsafe fn dots<const L: usize>(job: &mut Job) {
    tile_loop!(
        job,
        L,
        [
            (4 => 4, 4, tile, tile),
            (3 => 3, 4, tile, tile),
            (2 => 2, 4, tile, tile),
            (1 => 1, 4, tile_scaled, tile_scaled)
        ]
    )
}

/// `acc += sdot(a, b)`: each int32 lane gains the 4 products of its 4 int8 lanes.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) fn sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: `sdot` only reads and writes these registers; the dotprod feature is enabled.
    unsafe {
        asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    acc
}

/// Code dots of `R` rows × `T` tokens over `n_blocks` blocks of `L` (128 or 64) elements, codes
/// decoded to 0..=3. No int32 lane can overflow: with `cols ≤ MAX_COLS` = 2^22 a lane sums
/// 2^20 products of magnitude ≤ 3·128 = 384 (< 2^29).
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and every token `a[t]`
/// `n_blocks·L` readable values.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) unsafe fn tile<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: [*const i8; T],
    n_blocks: usize,
) -> [[i32; T]; R] {
    let mut acc = [[vdupq_n_s32(0); T]; R];
    for b in 0..n_blocks {
        // SAFETY: block b < n_blocks of every row and token (the caller's contract).
        unsafe {
            let wb = w.add(b * (L / 4));
            super::prefetch_next_tile::<L, R>(wb, rb, b);
            for h in 0..L / 64 {
                let mut raw = [vdupq_n_u8(0); R];
                for r in 0..R {
                    raw[r] = load16(wb.add(r * rb + 16 * h));
                }
                let off = b * L + 16 * h;
                step::<0, L, R, T>(&mut acc, &raw, &a, off);
                step::<1, L, R, T>(&mut acc, &raw, &a, off);
                step::<2, L, R, T>(&mut acc, &raw, &a, off);
                step::<3, L, R, T>(&mut acc, &raw, &a, off);
            }
        }
    }
    reduce(acc)
}

/// `acc[r][t] += sdot(codes of quarter Q of raw[r], 16 activations at a[t] + off + Q·L/4)`.
///
/// # Safety
/// 16 values readable at `a[t] + off + Q·L/4` for `t < T`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
unsafe fn step<const Q: usize, const L: usize, const R: usize, const T: usize>(
    acc: &mut [[int32x4_t; T]; R],
    raw: &[uint8x16_t; R],
    a: &[*const i8; T],
    off: usize,
) {
    let mut c = [vdupq_n_s8(0); R];
    for r in 0..R {
        c[r] = codes::<Q>(raw[r]);
    }
    for t in 0..T {
        // SAFETY: see the function contract.
        let x = unsafe { load_acts(a[t].add(off + Q * (L / 4))) };
        for r in 0..R {
            acc[r][t] = sdot(acc[r][t], c[r], x);
        }
    }
}

/// Blocks between two unscalings of `tile_scaled`'s ×16 and ×4 accumulators. A ×16 lane gains
/// at most L/64 `sdot`s × 4 products × 16·2·128 = 2^14·L/64 ≤ 2^15 per block, so 2^14 blocks
/// stay within 2^29 (with headroom even for the code 3 that I2_S never holds).
const SCALED_FLUSH: usize = 1 << 14;

/// As `tile`, with quarters 1 and 2 masked in place (code·16, code·4) into their own
/// accumulators, added back exactly by `ssra` (lanes are multiples of 16 and 4).
///
/// # Safety
/// As `tile`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
pub(super) unsafe fn tile_scaled<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: [*const i8; T],
    n_blocks: usize,
) -> [[i32; T]; R] {
    let zero = vdupq_n_s32(0);
    let (m30, m0c) = (vdupq_n_u8(0x30), vdupq_n_u8(0x0C));
    let mut acc = [[zero; T]; R];
    let mut b = 0;
    while b < n_blocks {
        let end = n_blocks.min(b + SCALED_FLUSH);
        let mut acc16 = [[zero; T]; R];
        let mut acc4 = [[zero; T]; R];
        while b < end {
            // SAFETY: block b < n_blocks of every row and token (the caller's contract).
            unsafe {
                let wb = w.add(b * (L / 4));
                super::prefetch_next_tile::<L, R>(wb, rb, b);
                for h in 0..L / 64 {
                    let off = b * L + 16 * h;
                    let q = L / 4;
                    let x: [[int8x16_t; 4]; T] = std::array::from_fn(|t| {
                        std::array::from_fn(|k| load_acts(a[t].add(off + k * q)))
                    });
                    for r in 0..R {
                        let raw = load16(wb.add(r * rb + 16 * h));
                        let c0 = codes::<0>(raw);
                        let c16 = vreinterpretq_s8_u8(vandq_u8(raw, m30));
                        let c4 = vreinterpretq_s8_u8(vandq_u8(raw, m0c));
                        let c3 = codes::<3>(raw);
                        for t in 0..T {
                            acc[r][t] = sdot(sdot(acc[r][t], c0, x[t][0]), c3, x[t][3]);
                            acc16[r][t] = sdot(acc16[r][t], c16, x[t][1]);
                            acc4[r][t] = sdot(acc4[r][t], c4, x[t][2]);
                        }
                    }
                }
            }
            b += 1;
        }
        for r in 0..R {
            for t in 0..T {
                acc[r][t] = vsraq_n_s32::<4>(acc[r][t], acc16[r][t]);
                acc[r][t] = vsraq_n_s32::<2>(acc[r][t], acc4[r][t]);
            }
        }
    }
    reduce(acc)
}

/// Sums the 4 int32 lanes of every accumulator.
#[target_feature(enable = "neon")]
#[inline]
fn reduce<const R: usize, const T: usize>(acc: [[int32x4_t; T]; R]) -> [[i32; T]; R] {
    let mut out = [[0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = vaddvq_s32(acc[r][t]);
        }
    }
    out
}
