//! 256-bit panel kernels for the AVX2 level (`PanelDotsFn`, `Codes2` only), and the 256-bit
//! helpers the AVX-VNNI ones (`panels_avxvnni`) share. Lanes are still rows: a ymm holds half a
//! panel vector (bytes 0..32 = rows 0..8, 32..64 = rows 8..16, one k-step of 4 columns each).
//! `Trits5` needs `vpermb` (AVX-512 VBMI) and has no kernel here.
//!
//! Plain AVX2 micro-kernels (no VNNI): `vpmaddubsw` of a half panel's codes against a token's
//! broadcast k-step gives 16 int16 pair sums (|·| ≤ 2·3·128 = 768 with codes ≤ 3, never
//! saturating), added up
//! in int16 for `WIDEN_CHUNKS` chunks and then widened into the int32 sums in `dots` by
//! `vpmaddwd` with ones: 2 operations per 32 products plus the decode, shared by the tokens
//! (the row kernel of `avx2.rs` decodes per row and widens more often).
//! Blocking: 1 token × all 4 panels (8 int16 accumulators, one sequential pass), 2 tokens × 2
//! panels, 3–4 tokens × 1 panel (≤ 8 accumulators + 2 raw + 2 codes + 1 broadcast + the mask:
//! 14 ymm). With 5 tokens (16 ymm on paper) the compiled loop spills, as `vpmaddubsw` and the
//! int16 add need a temporary the VNNI kernels' `vpdpbusd` does not, so blocks stop at 4.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::kernel::panel::driver::{Ptrs, panel_micro_kernel};
use crate::kernel::panel::{PANEL_ROWS, PanelGeom, TILE_ROWS};
use crate::kernel::{GroupScales, Isa};

/// Rows of one half panel vector (the int32 lanes of a ymm).
const HALF_ROWS: usize = 8;
/// Bytes of one half panel vector.
const HALF_BYTES: usize = 32;

/// The 4 activations of token `t` at k-step `ks` as an int32 broadcast to every lane.
///
/// # Safety
/// `(ks·nt + t)·4 + 4` bytes readable at `acts`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn act(ptrs: Ptrs, ks: usize, t: usize) -> __m256i {
    // SAFETY: see the function contract.
    _mm256_set1_epi32(unsafe { ptrs.act_dword(ks, t) })
}

/// The two halves of the panel vector at `at`.
///
/// # Safety
/// 64 bytes readable at `at`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn halves(at: *const u8) -> [__m256i; 2] {
    // SAFETY: see the function contract.
    unsafe {
        [
            _mm256_loadu_si256(at.cast()),
            _mm256_loadu_si256(at.add(HALF_BYTES).cast()),
        ]
    }
}

/// Stores dot `d`'s sums of panel `p` (`acc[h][t]`: half `h`, token `t0 + t`).
///
/// # Safety
/// `dots` holds `nt · n_dots · 64` values, `t0 + T ≤ nt`, `p < 4`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) unsafe fn store<const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    d: usize,
    p: usize,
    t0: usize,
    acc: &[[__m256i; T]; 2],
) {
    for h in 0..2 {
        for t in 0..T {
            let at = ptrs.dot_at(geom, t0 + t, d, p * PANEL_ROWS + h * HALF_ROWS);
            // SAFETY: 8 values from `at` lie in `dots` (see the function contract).
            unsafe { _mm256_storeu_si256(at.cast(), acc[h][t]) };
        }
    }
}

/// The codes of k-step `s` of a `Codes2` byte vector: `(v >> 2s) & 3`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn codes(v: __m256i, s: usize, m3: __m256i) -> __m256i {
    let v = match s {
        0 => v,
        1 => _mm256_srli_epi16::<2>(v),
        2 => _mm256_srli_epi16::<4>(v),
        _ => _mm256_srli_epi16::<6>(v),
    };
    _mm256_and_si256(v, m3)
}

/// Chunks (4 k-steps) summed in int16 before widening: 32 k-steps · 768 = 24576 < 2^15 (a
/// k-step adds one pair sum to each int16 lane; codes ≤ 3).
const WIDEN_CHUNKS: usize = 8;

/// Adds the int16 sums `acc16` (panels `p0..p0+P`, halves, tokens `t0..`) of dot `d` into
/// its int32 sums in `dots`, and clears them.
///
/// # Safety
/// As `store`, for panels `p0..p0+P`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn widen<const P: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    (d, p0, t0): (usize, usize, usize),
    acc16: &mut [[[__m256i; T]; 2]; P],
) {
    let ones = _mm256_set1_epi16(1);
    for (p, acc) in acc16.iter_mut().enumerate() {
        let mut sums = [[_mm256_setzero_si256(); T]; 2];
        for h in 0..2 {
            for t in 0..T {
                let at = ptrs.dot_at(geom, t0 + t, d, (p0 + p) * PANEL_ROWS + h * HALF_ROWS);
                // SAFETY: as `store` (see the function contract).
                let old = unsafe { _mm256_loadu_si256(at.cast()) };
                sums[h][t] = _mm256_add_epi32(old, _mm256_madd_epi16(acc[h][t], ones));
                acc[h][t] = _mm256_setzero_si256();
            }
        }
        // SAFETY: see the function contract.
        unsafe { store::<T>(ptrs, geom, d, p0 + p, t0, &sums) };
    }
}

/// Panels `p0..p0+P` × tokens `t0..t0+T`, every dot; the int32 sums accumulate in `dots`.
///
/// # Safety
/// `ptrs` checked by `checked_ptrs` against `geom`; `p0 + P ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn mk<const P: usize, const T: usize>(ptrs: Ptrs, geom: &PanelGeom, p0: usize, t0: usize) {
    let m3 = _mm256_set1_epi8(3);
    for d in 0..geom.n_dots() {
        let zero = [[_mm256_setzero_si256(); T]; 2];
        for p in 0..P {
            // SAFETY: as in the function contract.
            unsafe { store::<T>(ptrs, geom, d, p0 + p, t0, &zero) };
        }
        let mut acc16 = [zero; P];
        let mut pending = 0;
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..geom.chunks_per_group() {
                let ks0 = g * geom.group_steps + 4 * c;
                for p in 0..P {
                    let at = ptrs.tile.wrapping_add(geom.vec_offset(g, c, p0 + p));
                    ptrs.prefetch_ahead(at);
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    let raw = unsafe { halves(at) };
                    for s in 0..4 {
                        let code = raw.map(|v| codes(v, s, m3));
                        for t in 0..T {
                            // SAFETY: k-step ks0 + s < n_groups · group_steps, t0 + t < nt.
                            let x = unsafe { act(ptrs, ks0 + s, t0 + t) };
                            for h in 0..2 {
                                let a = &mut acc16[p][h][t];
                                *a = _mm256_add_epi16(*a, _mm256_maddubs_epi16(code[h], x));
                            }
                        }
                    }
                }
                pending += 1;
                if pending == WIDEN_CHUNKS {
                    // SAFETY: as in the function contract.
                    unsafe { widen::<P, T>(ptrs, geom, (d, p0, t0), &mut acc16) };
                    pending = 0;
                }
            }
        }
        // SAFETY: as in the function contract.
        unsafe { widen::<P, T>(ptrs, geom, (d, p0, t0), &mut acc16) };
    }
}

panel_micro_kernel! {
    /// `Codes2` on AVX2: `mk` for every block.
    struct Avx2: Codes2, tokens 1, 2, 4;
    features "avx2,fma", cpu Isa::Avx2.is_available(), needs "the AVX2 panel kernel needs AVX2 and FMA";
    block mk;
    /// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Codes2` only.
    pub fn panel_dots_avx2;
}

/// AVX2 `ScaleGroupsFn`, used by every x86 level with panels (a small share of a call, so a
/// 512-bit copy is not worth its code): a token's 64 lanes in 8 registers across all groups, the same
/// operations as the oracle in the same order (convert, multiply, add; no FMA).
pub fn scale_groups_avx2(job: &GroupScales, acc: &mut [f32]) {
    check_scale_groups(job, acc);
    assert!(Isa::Avx2.is_available(), "scale_groups_avx2 needs AVX2");
    // SAFETY: AVX2 present; every access below is within the lengths checked above.
    unsafe { scale_groups_impl(job, acc) }
}

/// Checks a `ScaleGroupsFn` call's sizes (the SIMD kernels read and write unchecked).
fn check_scale_groups(job: &GroupScales, acc: &[f32]) {
    let (ng, nt) = (job.n_groups, job.n_tokens);
    let sums = nt * ng;
    assert!(
        job.dots.len() >= sums * TILE_ROWS
            && job.gsums.len() >= sums
            && job.scales.len() >= ng * TILE_ROWS
            && job.block_scales.is_none_or(|b| b.len() >= sums)
            && acc.len() >= nt * TILE_ROWS,
        "scale_groups: {nt} tokens × {ng} groups need {} dots (got {}), {sums} sums (got {}), \
         {} scales (got {}), {sums} block scales (got {:?}), {} outputs (got {})",
        sums * TILE_ROWS,
        job.dots.len(),
        job.gsums.len(),
        ng * TILE_ROWS,
        job.scales.len(),
        job.block_scales.map(<[f32]>::len),
        nt * TILE_ROWS,
        acc.len()
    );
}

#[target_feature(enable = "avx2")]
unsafe fn scale_groups_impl(job: &GroupScales, acc: &mut [f32]) {
    const V: usize = TILE_ROWS / 8;
    let ng = job.n_groups;
    for t in 0..job.n_tokens {
        let mut a = [_mm256_setzero_ps(); V];
        for g in 0..ng {
            let tg = t * ng + g;
            // SAFETY (all reads): tg < n_tokens · n_groups, lanes within `dots` and `scales`.
            let gs = _mm256_set1_epi32(unsafe { *job.gsums.get_unchecked(tg) });
            let bs = job
                .block_scales
                .map(|b| _mm256_set1_ps(unsafe { *b.get_unchecked(tg) }));
            for (i, a) in a.iter_mut().enumerate() {
                let (d, w) = unsafe {
                    (
                        _mm256_loadu_si256(job.dots.as_ptr().add(tg * TILE_ROWS + 8 * i).cast()),
                        _mm256_loadu_ps(job.scales.as_ptr().add(g * TILE_ROWS + 8 * i)),
                    )
                };
                let s = match bs {
                    Some(b) => _mm256_mul_ps(b, w),
                    None => w,
                };
                let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(d, gs));
                *a = _mm256_add_ps(*a, _mm256_mul_ps(x, s));
            }
        }
        for (i, a) in a.iter().enumerate() {
            // SAFETY: token t's 64 outputs lie in `acc`.
            unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(t * TILE_ROWS + 8 * i), *a) };
        }
    }
}

/// AVX2 `ScaleQ8_0Fn`, used by every x86 level with panels (as `scale_groups_avx2`): a token's
/// 64 lanes in 8 registers, the oracle's operations in its order (convert, multiply, add; no FMA).
pub fn scale_q8_0_avx2(job: &GroupScales, per_block: usize, acc: &mut [f32]) {
    let (ng, nt) = (job.n_groups, job.n_tokens);
    assert!(
        per_block > 0
            && ng.is_multiple_of(per_block)
            && job.dots.len() >= nt * ng * TILE_ROWS
            && job.gsums.len() >= nt * ng
            && job.scales.len() >= ng / per_block * TILE_ROWS
            && job.block_scales.is_some_and(|b| b.len() >= nt * ng)
            && acc.len() >= nt * TILE_ROWS,
        "scale_q8_0: {nt} tokens × {ng} groups (blocks of {per_block}) do not fit the buffers"
    );
    assert!(Isa::Avx2.is_available(), "scale_q8_0_avx2 needs AVX2");
    // SAFETY: AVX2 present; every access below is within the lengths checked above.
    unsafe { scale_q8_0_impl(job, per_block, acc) }
}

#[target_feature(enable = "avx2")]
unsafe fn scale_q8_0_impl(job: &GroupScales, per_block: usize, acc: &mut [f32]) {
    const V: usize = TILE_ROWS / 8;
    let ng = job.n_groups;
    let bs = job.block_scales.unwrap_or_default();
    for t in 0..job.n_tokens {
        let mut a = [_mm256_setzero_ps(); V];
        for b in 0..ng / per_block {
            let mut sumi = [_mm256_setzero_ps(); V];
            for g in b * per_block..(b + 1) * per_block {
                let tg = t * ng + g;
                // SAFETY (all reads): tg < n_tokens · n_groups, lanes within `dots` and `scales`.
                let gs = _mm256_set1_epi32(unsafe { *job.gsums.get_unchecked(tg) });
                let d = _mm256_set1_ps(unsafe { *bs.get_unchecked(tg) });
                for (i, s) in sumi.iter_mut().enumerate() {
                    let dots = unsafe {
                        _mm256_loadu_si256(job.dots.as_ptr().add(tg * TILE_ROWS + 8 * i).cast())
                    };
                    let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(dots, gs));
                    *s = _mm256_add_ps(*s, _mm256_mul_ps(d, x));
                }
            }
            for (i, (a, s)) in a.iter_mut().zip(sumi).enumerate() {
                // SAFETY: block b's 64 scales lie in `scales`.
                let w = unsafe { _mm256_loadu_ps(job.scales.as_ptr().add(b * TILE_ROWS + 8 * i)) };
                *a = _mm256_add_ps(*a, _mm256_mul_ps(w, s));
            }
        }
        for (i, a) in a.iter().enumerate() {
            // SAFETY: token t's 64 outputs lie in `acc`.
            unsafe { _mm256_storeu_ps(acc.as_mut_ptr().add(t * TILE_ROWS + 8 * i), *a) };
        }
    }
}
