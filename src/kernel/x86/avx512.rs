//! AVX-512 I2_S tiles of 512-bit vectors (tile shapes: the `tile_loop!` calls below).
//!
//! * BW: `vpmaddubsw` summed in int16 for at most `MAX_MADDUBS` steps, widened by `vpmaddwd`.
//!   A 128-block (32 bytes) is broadcast to both 256-bit halves of a zmm and each half shifted
//!   by its own count, so one vector holds the codes of 64 consecutive elements (quarters 0+1,
//!   then 2+3) and pairs with one contiguous 64-byte activation load. A 64-block (16 bytes) is
//!   broadcast to the four 128-bit lanes and shifted by 6, 4, 2, 0: all 64 codes in one vector.
//!   (A 64-bit shift by s keeps bits s+1:s of every byte in that byte's low two bits, s ≤ 6.)
//! * VNNI: `vpdpbusd` accumulates u8 codes × i8 activations straight into int32; the codes are
//!   masked in place instead of shifted (see `tile_vnni`).
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::{Job, tile_loop};
use crate::format::I2sVariant;

/// `vpmaddubsw` results summed into one int16 lane before it is widened: each is in [-768, 762]
/// (two products code·act, code ≤ 3), so 32 of them stay within [-24576, 24384].
const MAX_MADDUBS: usize = 32;

#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn i2s_dots_bw(variant: I2sVariant, job: &mut Job) {
    match variant {
        I2sVariant::X86 => tile_loop!(job, tile_bw, 128, [(4, 4), (3, 4), (2, 4), (1, 4)]),
        I2sVariant::Arm64 => tile_loop!(job, tile_bw, 64, [(4, 4), (3, 4), (2, 4), (1, 4)]),
    }
}

/// `(tokens, rows)` of the VNNI tiles: 20 accumulators for prefill (with 4 codes, 4 packed
/// blocks, 1 activation and the mask that is 30 of the 32 zmm registers), 8 rows for decode.
macro_rules! vnni_tiles {
    ($job:expr, $l:expr) => {
        tile_loop!(
            $job,
            tile_vnni,
            $l,
            [(5, 4), (4, 4), (3, 4), (2, 4), (1, 8)]
        )
    };
}

#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
pub(super) unsafe fn i2s_dots_vnni(variant: I2sVariant, job: &mut Job) {
    match variant {
        I2sVariant::X86 => vnni_tiles!(job, 128),
        I2sVariant::Arm64 => vnni_tiles!(job, 64),
    }
}

/// Codes of elements `64·H .. 64·H + 64` of the block of `L` (128 or 64) elements at `wb`, in
/// each of `R` rows `rb` bytes apart.
///
/// # Safety
/// `L/4` bytes readable at `wb + r·rb` for `r < R`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn codes<const L: usize, const H: usize, const R: usize>(
    wb: *const u8,
    rb: usize,
) -> [__m512i; R] {
    let mask = _mm512_set1_epi8(3);
    let counts = match (L, H) {
        (128, 0) => _mm512_set_epi64(4, 4, 4, 4, 6, 6, 6, 6),
        (128, _) => _mm512_set_epi64(0, 0, 0, 0, 2, 2, 2, 2),
        _ => _mm512_set_epi64(0, 0, 2, 2, 4, 4, 6, 6),
    };
    let mut c = [_mm512_setzero_si512(); R];
    for r in 0..R {
        let p = wb.wrapping_add(r * rb);
        // SAFETY: see the function contract.
        let raw = unsafe {
            if L == 128 {
                _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast()))
            } else {
                _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast()))
            }
        };
        c[r] = _mm512_and_si512(_mm512_srlv_epi64(raw, counts), mask);
    }
    c
}

/// Code dots of `R` rows × `T` tokens over `n_blocks` blocks of `L` elements, `vpmaddubsw`.
///
/// # Safety
/// Rows `w + r·rb` (`r < R`) hold `n_blocks·L/4` readable bytes and tokens `a + t·stride`
/// (`t < T`) `n_blocks·L` readable values.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn tile_bw<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: *const i8,
    stride: usize,
    n_blocks: usize,
) -> [[i32; T]; R] {
    let zero = _mm512_setzero_si512();
    let ones = _mm512_set1_epi16(1);
    let mut acc32 = [[zero; T]; R];
    // Each block adds L/64 `vpmaddubsw` results to every int16 lane.
    let group = MAX_MADDUBS / (L / 64);
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
                step_bw(&mut acc16, codes::<L, 0, R>(wb, rb), ab, stride);
                if L == 128 {
                    step_bw(&mut acc16, codes::<L, 1, R>(wb, rb), ab.add(64), stride);
                }
            }
            b += 1;
        }
        for r in 0..R {
            for t in 0..T {
                acc32[r][t] = _mm512_add_epi32(acc32[r][t], _mm512_madd_epi16(acc16[r][t], ones));
            }
        }
    }
    reduce(acc32)
}

/// `acc[r][t] += maddubs(codes[r], 64 activations of token t at a + t·stride)` in int16.
///
/// # Safety
/// 64 values readable at `a + t·stride` for `t < T`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn step_bw<const R: usize, const T: usize>(
    acc: &mut [[__m512i; T]; R],
    codes: [__m512i; R],
    a: *const i8,
    stride: usize,
) {
    for t in 0..T {
        // SAFETY: see the function contract.
        let x = unsafe { _mm512_loadu_si512(a.add(t * stride).cast()) };
        for r in 0..R {
            acc[r][t] = _mm512_add_epi16(acc[r][t], _mm512_maddubs_epi16(codes[r], x));
        }
    }
}

/// Blocks summed into scaled int32 lanes before they are unscaled (see `tile_vnni`): a lane
/// gains at most 2 `vpdpbusd` × 4 products × 3·64·128 = 196608 per block (code ≤ 3), so 2^13
/// blocks stay within 1.61·10^9 < 2^31.
const VNNI_FLUSH: usize = 1 << 13;

/// Code dots of `R` rows × `T` tokens over `n_blocks` blocks of `L` elements, `vpdpbusd`.
///
/// The codes are not shifted down to 0..2: masking the packed byte leaves code·4^k (k = 3 for
/// bits 7:6 … 0 for bits 1:0), still a valid u8 operand (≤ 3·64 = 192). Every accumulator lane always
/// sees the same k, so the lane holds 4^k × its exact partial dot and is shifted back once per
/// `VNNI_FLUSH` blocks. 128-layout: the block is broadcast to both 256-bit halves; masking with
/// 0xC0|0x30 gives quarters 0|1 (acts 0..64), and either a second accumulator set takes
/// 0x0C|0x03 (quarters 2|3, `dual`, when registers allow) or the block is shifted left by 4
/// first so quarters 2|3 land on the same scales 64|16. 64-layout: the block is broadcast to all
/// four 128-bit lanes and masked with 0xC0|0x30|0x0C|0x03: one vector per block.
///
/// # Safety
/// As `tile_bw`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile_vnni<const L: usize, const R: usize, const T: usize>(
    w: *const u8,
    rb: usize,
    a: *const i8,
    stride: usize,
    n_blocks: usize,
) -> [[i32; T]; R] {
    let dual = L == 128 && R * T <= 8;
    // Per 64-bit lane (lane 0 first): the mask of each quarter and log2 of its scale 4^k.
    let (mask0, shift0, mask1, shift1) = if L == 128 {
        (
            byte_lanes([0xC0, 0xC0, 0xC0, 0xC0, 0x30, 0x30, 0x30, 0x30]),
            byte_lanes([6, 6, 6, 6, 4, 4, 4, 4]),
            byte_lanes([0x0C, 0x0C, 0x0C, 0x0C, 0x03, 0x03, 0x03, 0x03]),
            byte_lanes([2, 2, 2, 2, 0, 0, 0, 0]),
        )
    } else {
        let zero = _mm512_setzero_si512();
        (
            byte_lanes([0xC0, 0xC0, 0x30, 0x30, 0x0C, 0x0C, 0x03, 0x03]),
            byte_lanes([6, 6, 4, 4, 2, 2, 0, 0]),
            zero,
            zero,
        )
    };
    // The shift counts as int32 lanes (`byte_lanes` repeats the byte).
    let low = _mm512_set1_epi32(0xFF);
    let mut out = [[0i32; T]; R];
    let mut b = 0;
    while b < n_blocks {
        let end = n_blocks.min(b + VNNI_FLUSH);
        let mut acc0 = [[_mm512_setzero_si512(); T]; R];
        let mut acc1 = [[_mm512_setzero_si512(); T]; R];
        while b < end {
            // SAFETY: block b < n_blocks of every row and token (the caller's contract).
            unsafe {
                let wb = w.add(b * (L / 4));
                let ab = a.add(b * L);
                super::prefetch_next_tile::<L, R>(wb, rb, b);
                let mut c = [_mm512_setzero_si512(); R];
                for r in 0..R {
                    c[r] = _mm512_and_si512(load_block::<L>(wb.add(r * rb)), mask0);
                }
                step_vnni(&mut acc0, c, ab, stride);
                if L == 128 {
                    for r in 0..R {
                        let raw = load_block::<L>(wb.add(r * rb));
                        c[r] = if dual {
                            _mm512_and_si512(raw, mask1)
                        } else {
                            _mm512_and_si512(_mm512_slli_epi64::<4>(raw), mask0)
                        };
                    }
                    step_vnni(
                        if dual { &mut acc1 } else { &mut acc0 },
                        c,
                        ab.add(64),
                        stride,
                    );
                }
            }
            b += 1;
        }
        for r in 0..R {
            for t in 0..T {
                // Exact: each lane is 4^k times an integer, |·| < 2^31.
                let mut v = _mm512_srav_epi32(acc0[r][t], _mm512_and_si512(shift0, low));
                if dual {
                    let v1 = _mm512_srav_epi32(acc1[r][t], _mm512_and_si512(shift1, low));
                    v = _mm512_add_epi32(v, v1);
                }
                out[r][t] += _mm512_reduce_add_epi32(v);
            }
        }
    }
    out
}

/// The block of `L` elements at `p` in a zmm: a 128-block (32 bytes) in both 256-bit halves, a
/// 64-block (16 bytes) in all four 128-bit lanes.
///
/// # Safety
/// `L/4` bytes readable at `p`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn load_block<const L: usize>(p: *const u8) -> __m512i {
    // SAFETY: see the function contract.
    unsafe {
        if L == 128 {
            _mm512_broadcast_i64x4(_mm256_loadu_si256(p.cast()))
        } else {
            _mm512_broadcast_i32x4(_mm_loadu_si128(p.cast()))
        }
    }
}

/// `bytes[i]` repeated over the 8 bytes of 64-bit lane `i`.
#[target_feature(enable = "avx512f")]
#[inline]
fn byte_lanes(bytes: [u8; 8]) -> __m512i {
    let q = |i: usize| i64::from_ne_bytes([bytes[i]; 8]);
    _mm512_set_epi64(q(7), q(6), q(5), q(4), q(3), q(2), q(1), q(0))
}

/// `acc[r][t] += dpbusd(codes[r], 64 activations of token t at a + t·stride)` in int32.
///
/// # Safety
/// 64 values readable at `a + t·stride` for `t < T`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn step_vnni<const R: usize, const T: usize>(
    acc: &mut [[__m512i; T]; R],
    codes: [__m512i; R],
    a: *const i8,
    stride: usize,
) {
    for t in 0..T {
        // SAFETY: see the function contract.
        let x = unsafe { _mm512_loadu_si512(a.add(t * stride).cast()) };
        for r in 0..R {
            acc[r][t] = _mm512_dpbusd_epi32(acc[r][t], codes[r], x);
        }
    }
}

/// Sums the 16 int32 lanes of every accumulator.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn reduce<const R: usize, const T: usize>(acc: [[__m512i; T]; R]) -> [[i32; T]; R] {
    let mut out = [[0; T]; R];
    for r in 0..R {
        for t in 0..T {
            out[r][t] = _mm512_reduce_add_epi32(acc[r][t]);
        }
    }
    out
}
