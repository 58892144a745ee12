//! AVX2 I2_S tiles: 4 rows × 2 tokens of `vpmaddubsw` (u8 codes × i8 activations) summed in
//! int16 for at most `MAX_MADDUBS` steps, then widened exactly with `vpmaddwd(·, 1)`.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{Job, tile_loop};
use crate::format::I2sVariant;

/// `vpmaddubsw` results summed into one int16 lane before it is widened to int32. Each is a pair
/// sum of two code·act products (code ≤ 3, act ∈ [-128, 127]), so in [-768, 762] (no
/// saturation), and 32 of them stay within [-24576, 24384]: no int16 wrap is possible
/// (bitnet.cpp sums 256 and wraps).
const MAX_MADDUBS: usize = 32;

#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn i2s_dots(variant: I2sVariant, job: &mut Job) {
    match variant {
        I2sVariant::X86 => tile_loop!(job, tile, 128, [(2, 4), (1, 4)]),
        I2sVariant::Arm64 => tile_loop!(job, tile, 64, [(2, 4), (1, 4)]),
    }
}

/// Code dots of `R` rows × `T` tokens over `n_blocks` blocks of `L` (128 or 64) elements.
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and tokens `a + t·stride`
/// (`t < T`) `n_blocks·L` readable values.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn tile<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: *const i8,
    stride: usize,
    n_blocks: usize,
) -> [[i32; T]; R] {
    let zero = _mm256_setzero_si256();
    let ones = _mm256_set1_epi16(1);
    let mut acc32 = [[zero; T]; R];
    // Each block adds L/32 `vpmaddubsw` results to every int16 lane.
    let group = MAX_MADDUBS / (L / 32);
    let mut b = 0;
    while b < n_blocks {
        let end = n_blocks.min(b + group);
        let mut acc16 = [[zero; T]; R];
        while b < end {
            // SAFETY: block b < n_blocks of every row and token (the caller's contract).
            unsafe {
                let wb = w.add(b * (L / 4));
                let ab = a.add(b * L);
                super::prefetch_next_tile::<L, R>(wb, rb, b);
                if L == 128 {
                    step(&mut acc16, codes128::<6, R>(wb, rb), ab, stride);
                    step(&mut acc16, codes128::<4, R>(wb, rb), ab.add(32), stride);
                    step(&mut acc16, codes128::<2, R>(wb, rb), ab.add(64), stride);
                    step(&mut acc16, codes128::<0, R>(wb, rb), ab.add(96), stride);
                } else {
                    step(&mut acc16, codes64::<0, R>(wb, rb), ab, stride);
                    step(&mut acc16, codes64::<1, R>(wb, rb), ab.add(32), stride);
                }
            }
            b += 1;
        }
        for r in 0..R {
            for t in 0..T {
                acc32[r][t] = _mm256_add_epi32(acc32[r][t], _mm256_madd_epi16(acc16[r][t], ones));
            }
        }
    }
    let mut out = [[0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = hsum(acc32[r][t]);
        }
    }
    out
}

/// 128-layout: the 32 codes of quarter `(6 - S)/2` of the block at `wb` in each of `R` rows
/// (`rb` bytes apart): element `p + 32·q` sits in byte `p`, bits `7-2q:6-2q`.
///
/// # Safety
/// 32 bytes readable at `wb + r·rb` for `r < R`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn codes128<const S: i32, const R: usize>(wb: *const u8, rb: usize) -> [__m256i; R] {
    let mask = _mm256_set1_epi8(3);
    let mut c = [_mm256_setzero_si256(); R];
    for r in 0..R {
        // SAFETY: see the function contract.
        let raw = unsafe { _mm256_loadu_si256(wb.add(r * rb).cast()) };
        c[r] = _mm256_and_si256(_mm256_srli_epi16::<S>(raw), mask);
    }
    c
}

/// 64-layout: codes of elements `32·H .. 32·H + 32` of the 16-byte block at `wb` in each row.
/// The block is broadcast to both 128-bit lanes and shifted per lane (quarters 2H and 2H+1):
/// a 64-bit shift by s keeps bits s+1:s of every byte in that byte's low bits (s ≤ 6).
///
/// # Safety
/// 16 bytes readable at `wb + r·rb` for `r < R`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn codes64<const H: usize, const R: usize>(wb: *const u8, rb: usize) -> [__m256i; R] {
    let mask = _mm256_set1_epi8(3);
    let counts = if H == 0 {
        _mm256_set_epi64x(4, 4, 6, 6)
    } else {
        _mm256_set_epi64x(0, 0, 2, 2)
    };
    let mut c = [_mm256_setzero_si256(); R];
    for r in 0..R {
        // SAFETY: see the function contract.
        let raw = unsafe { _mm256_broadcastsi128_si256(_mm_loadu_si128(wb.add(r * rb).cast())) };
        c[r] = _mm256_and_si256(_mm256_srlv_epi64(raw, counts), mask);
    }
    c
}

/// `acc[r][t] += maddubs(codes[r], 32 activations of token t at a + t·stride)`.
///
/// # Safety
/// 32 values readable at `a + t·stride` for `t < T`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn step<const R: usize, const T: usize>(
    acc: &mut [[__m256i; T]; R],
    codes: [__m256i; R],
    a: *const i8,
    stride: usize,
) {
    for t in 0..T {
        // SAFETY: see the function contract.
        let x = unsafe { _mm256_loadu_si256(a.add(t * stride).cast()) };
        for r in 0..R {
            acc[r][t] = _mm256_add_epi16(acc[r][t], _mm256_maddubs_epi16(codes[r], x));
        }
    }
}

/// Sum of the 8 int32 lanes.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn hsum(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<1>(s));
    _mm_cvtsi128_si32(s)
}
