//! Baseline NEON I2_S tiles: `smlal`/`smlal2` (code × activation, both as int8) into int16 lanes
//! for at most `MAX_PRODUCTS` products per lane, then widened exactly with `sadalp`.
#![allow(clippy::needless_range_loop)]

use std::arch::aarch64::*;

use super::{Job, codes, load_acts, load16, tile_loop};
use crate::format::I2sVariant;

/// Products summed into one int16 lane before it is widened to int32. Each is code·act with
/// code ≤ 3 (Q2_0's +2) and act ∈ [-128, 127], so in [-384, 381], and 64 of them stay within
/// [-24576, 24384]: no int16 wrap is possible (128 would reach −49152; bitnet.cpp sums 256 codes
/// ≤ 2 and wraps).
const MAX_PRODUCTS: usize = 64;

#[target_feature(enable = "neon")]
pub(super) unsafe fn i2s_dots(variant: I2sVariant, job: &mut Job) {
    match variant {
        I2sVariant::X86 => tile_loop!(job, 128, [(2 => 2, 4, tile, tile), (1 => 1, 4, tile, tile)]),
        I2sVariant::Arm64 => {
            tile_loop!(job, 64, [(2 => 2, 4, tile, tile), (1 => 1, 4, tile, tile)])
        }
    }
}

/// Code dots of `R` rows × `T` tokens over `n_blocks` blocks of `L` (128 or 64) elements.
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and every token `a[t]`
/// `n_blocks·L` readable values.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn tile<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: [*const i8; T],
    n_blocks: usize,
) -> [[i32; T]; R] {
    let mut acc32 = [[vdupq_n_s32(0); T]; R];
    // Each block adds 2 products per 16 codes (`smlal` + `smlal2`) to every int16 lane.
    let group = MAX_PRODUCTS / (L / 8);
    let mut b = 0;
    while b < n_blocks {
        let end = n_blocks.min(b + group);
        let mut acc16 = [[vdupq_n_s16(0); T]; R];
        while b < end {
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
                    step::<0, L, R, T>(&mut acc16, &raw, &a, off);
                    step::<1, L, R, T>(&mut acc16, &raw, &a, off);
                    step::<2, L, R, T>(&mut acc16, &raw, &a, off);
                    step::<3, L, R, T>(&mut acc16, &raw, &a, off);
                }
            }
            b += 1;
        }
        for r in 0..R {
            for t in 0..T {
                acc32[r][t] = vpadalq_s16(acc32[r][t], acc16[r][t]);
            }
        }
    }
    let mut out = [[0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = vaddvq_s32(acc32[r][t]);
        }
    }
    out
}

/// Quarter `Q` of the 16 packed bytes `raw[r]` of every row against the 16 activations of each
/// token at `a[t] + off + Q·L/4`: `acc[r][t] += codes · acts` (two products per int16 lane).
///
/// # Safety
/// 16 values readable at `a[t] + off + Q·L/4` for `t < T`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn step<const Q: usize, const L: usize, const R: usize, const T: usize>(
    acc: &mut [[int16x8_t; T]; R],
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
            let lo = vmlal_s8(acc[r][t], vget_low_s8(c[r]), vget_low_s8(x));
            acc[r][t] = vmlal_high_s8(lo, c[r], x);
        }
    }
}
