//! 256-bit panel kernels for the AVX2 level (`PanelDotsFn`, `Codes2` and `Bits1`), the 256-bit
//! helpers the AVX-VNNI ones (`panels_avxvnni`) share, and the per-group scaling every x86 panel
//! level applies (`scale_block`). Lanes are still rows: a ymm holds half a panel vector (bytes
//! 0..32 = rows 0..8, 32..64 = rows 8..16, one k-step of 4 columns each). `Trits5` needs
//! `vpermb` (AVX-512 VBMI) and has no kernel here. `Bits1` (Q1_0's sign bits) decodes with as
//! many operations per k-step as `Codes2` and reads half the bytes.
//!
//! Plain AVX2 micro-kernels (no VNNI): `vpmaddubsw` of a half panel's codes against a token's
//! broadcast k-step gives 16 int16 pair sums (|·| ≤ 2·3·128 = 768 with codes ≤ 3, never
//! saturating), added up
//! in int16 for `WIDEN_STEPS` k-steps and then widened into the int32 sums in `dots` by
//! `vpmaddwd` with ones: 2 operations per 32 products plus the decode, shared by the tokens
//! (the row kernel of `avx2.rs` decodes per row and widens more often).
//! Blocking: 1 token × all 4 panels (8 int16 accumulators, one sequential pass), 2 tokens × 2
//! panels, 3–4 tokens × 1 panel (≤ 8 accumulators + 2 raw + 2 codes + 1 broadcast + the mask:
//! 14 ymm). With 5 tokens (16 ymm on paper) the compiled loop spills, as `vpmaddubsw` and the
//! int16 add need a temporary the VNNI kernels' `vpdpbusd` does not, so blocks stop at 4.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use std::ops::Range;

use crate::kernel::Isa;
use crate::kernel::panel::driver::{Ptrs, ScalePtrs, panel_micro_kernel};
use crate::kernel::panel::{PANEL_ROWS, PANELS, PanelGeom, TILE_ROWS, VEC_BYTES};

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
    d: usize,
    p: usize,
    t0: usize,
    acc: &[[__m256i; T]; 2],
) {
    for h in 0..2 {
        for t in 0..T {
            let at = ptrs.dot_at(t0 + t, d, p * PANEL_ROWS + h * HALF_ROWS);
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

/// The codes of k-step `s < 4` of the low nibbles of a `Bits1` byte vector: `2·((v >> s) & 1)`,
/// as `(v >> (s − 1)) & 2` (`m2`: 2 in every byte; the 16-bit shifts move bits across bytes
/// only above bit 1).
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn sign_codes(v: __m256i, s: usize, m2: __m256i) -> __m256i {
    let v = match s {
        0 => _mm256_add_epi8(v, v),
        1 => v,
        2 => _mm256_srli_epi16::<1>(v),
        _ => _mm256_srli_epi16::<2>(v),
    };
    _mm256_and_si256(v, m2)
}

/// K-steps summed in int16 before widening: 32 k-steps · 768 = 24576 < 2^15 (a k-step adds one
/// pair sum to each int16 lane; codes ≤ 3).
const WIDEN_STEPS: usize = 32;

/// Widens the int16 sums `acc16` (panels `p0..p0+P`, halves, tokens `t0..`) of dot `d` into
/// its int32 sums in `dots` (the first widening of a dot stores them, later ones add to them),
/// and clears them.
///
/// # Safety
/// As `store`, for panels `p0..p0+P`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn widen<const P: usize, const T: usize>(
    ptrs: Ptrs,
    (d, p0, t0): (usize, usize, usize),
    acc16: &mut [[[__m256i; T]; 2]; P],
    first: bool,
) {
    let ones = _mm256_set1_epi16(1);
    for (p, acc) in acc16.iter_mut().enumerate() {
        let mut sums = [[_mm256_setzero_si256(); T]; 2];
        for h in 0..2 {
            for t in 0..T {
                sums[h][t] = _mm256_madd_epi16(acc[h][t], ones);
                if !first {
                    let at = ptrs.dot_at(t0 + t, d, (p0 + p) * PANEL_ROWS + h * HALF_ROWS);
                    // SAFETY: as `store` (see the function contract).
                    let old = unsafe { _mm256_loadu_si256(at.cast()) };
                    sums[h][t] = _mm256_add_epi32(old, sums[h][t]);
                }
                acc[h][t] = _mm256_setzero_si256();
            }
        }
        // SAFETY: see the function contract.
        unsafe { store::<T>(ptrs, d, p0 + p, t0, &sums) };
    }
}

/// `Codes2` panels `p0..p0+P` × tokens `t0..t0+T` (`mk_steps`).
///
/// # Safety
/// As `mk_steps`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn mk<const P: usize, const T: usize>(ptrs: Ptrs, geom: &PanelGeom, p0: usize, t0: usize) {
    // SAFETY: the function contract.
    unsafe { mk_steps::<P, T, 4>(ptrs, geom, p0, t0) }
}

/// `Bits1` panels `p0..p0+P` × tokens `t0..t0+T` (`mk_steps`).
///
/// # Safety
/// As `mk_steps`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn mk_bits1<const P: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    // SAFETY: the function contract.
    unsafe { mk_steps::<P, T, 8>(ptrs, geom, p0, t0) }
}

/// Panels `p0..p0+P` × tokens `t0..t0+T`, every dot, chunks of `STEPS` k-steps (4: `Codes2`,
/// 8: `Bits1`); the int32 sums accumulate in `dots`.
///
/// # Safety
/// `ptrs` checked by `checked_ptrs` against `geom`; `p0 + P ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn mk_steps<const P: usize, const T: usize, const STEPS: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    let mask = _mm256_set1_epi8(if STEPS == 4 { 3 } else { 2 });
    let widen_chunks = WIDEN_STEPS / STEPS;
    // Groups are whole chunks (checked by `checked_ptrs`): no division in the loops.
    let chunks = geom.group_steps / STEPS;
    let pass = |chunk: usize, acc16: &mut [[[__m256i; T]; 2]; P]| {
        // SAFETY: the function contract (the chunk lies in the tile).
        unsafe {
            if STEPS == 4 {
                chunk_pass::<P, T, false, false>(ptrs, (chunk, chunk * 4), p0, t0, mask, acc16);
            } else {
                // A `Bits1` byte as two nibbles, each pass reloading the vectors from L1, so
                // that each has `Codes2`'s shape: the panels unrolled with their accumulators
                // in registers, the k-steps straight code.
                chunk_pass::<P, T, true, false>(ptrs, (chunk, chunk * 8), p0, t0, mask, acc16);
                chunk_pass::<P, T, true, true>(ptrs, (chunk, chunk * 8 + 4), p0, t0, mask, acc16);
            }
        }
    };
    let dot_chunks = geom.merge * chunks;
    if (STEPS == 4 || T > 1) && dot_chunks <= widen_chunks {
        // Short dots (per-block scales of 32 to 128 columns): one run of chunks, one widening.
        // (`Bits1`'s two passes per chunk spill in this loop at one token.)
        for d in 0..ptrs.nd {
            let mut acc16 = [[[_mm256_setzero_si256(); T]; 2]; P];
            for chunk in d * dot_chunks..(d + 1) * dot_chunks {
                pass(chunk, &mut acc16);
            }
            // SAFETY: as in the function contract.
            unsafe { widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, true) };
        }
        return;
    }
    for d in 0..ptrs.nd {
        let mut acc16 = [[[_mm256_setzero_si256(); T]; 2]; P];
        let mut pending = 0;
        let mut first = true;
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..chunks {
                pass(g * chunks + c, &mut acc16);
                pending += 1;
                if pending == widen_chunks {
                    // SAFETY: as in the function contract.
                    unsafe { widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, first) };
                    (pending, first) = (0, false);
                }
            }
        }
        if pending > 0 {
            // SAFETY: as in the function contract.
            unsafe { widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, first) };
        }
    }
}

/// Four k-steps from `ks0` of panels `p0..p0+P` × tokens `t0..t0+T` of chunk `chunk`: the
/// `Codes2` byte vectors (`mask` 3), or (`BITS1`) the low or (`HIGH`) high nibbles of the
/// `Bits1` ones (`mask` 2), into the int16 sums `acc16`.
///
/// # Safety
/// As `mk_steps`; the chunk lies in the tile and k-steps `ks0..ks0 + 4` in the activations.
#[target_feature(enable = "avx2,fma")]
#[inline]
unsafe fn chunk_pass<const P: usize, const T: usize, const BITS1: bool, const HIGH: bool>(
    ptrs: Ptrs,
    (chunk, ks0): (usize, usize),
    p0: usize,
    t0: usize,
    mask: __m256i,
    acc16: &mut [[[__m256i; T]; 2]; P],
) {
    for p in 0..P {
        let at = ptrs
            .tile
            .wrapping_add((chunk * PANELS + p0 + p) * VEC_BYTES);
        if !HIGH {
            ptrs.prefetch_ahead(at);
        }
        // SAFETY: the vector lies in the tile (the function contract).
        let raw = unsafe { halves(at) };
        let raw = if HIGH {
            raw.map(|v| _mm256_srli_epi16::<4>(v))
        } else {
            raw
        };
        for s in 0..4 {
            let code = raw.map(|v| {
                if BITS1 {
                    sign_codes(v, s, mask)
                } else {
                    codes(v, s, mask)
                }
            });
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
}

panel_micro_kernel! {
    /// `Codes2` on AVX2: `mk` for every block.
    struct Avx2: Codes2, tokens 1, 2, 4;
    features "avx2,fma,f16c", cpu Isa::Avx2.is_available(), needs "the AVX2 panel kernel needs AVX2, FMA and F16C";
    block mk;
    /// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Codes2`.
    pub fn panel_dots_avx2;
}

panel_micro_kernel! {
    /// `Bits1` on AVX2: `mk_bits1` for every block.
    struct Avx2Bits1: Bits1, tokens 1, 2, 4;
    features "avx2,fma,f16c", cpu Isa::Avx2.is_available(), needs "the AVX2 panel kernel needs AVX2, FMA and F16C";
    block mk_bits1;
    /// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Bits1`.
    pub fn panel_dots_avx2_bits1;
}

/// Applies a call's per-group scales (`TileScaling`, checked into `s`) to the dots of panels
/// `p0..p0+P` × `tokens` of the current tile, just computed into `ptrs.dots` (one tile's work
/// space, still in L1): the oracle's operations in its order (convert, multiply, add; no FMA),
/// the running sums of 32 rows in registers. Every x86 panel level runs it from the panel
/// driver (a small share of a call, so a 512-bit copy is not worth its code).
///
/// # Safety
/// The CPU has AVX2; `s` and `ptrs` checked by the driver for the call, `p0 + P ≤ 4`, `tokens`
/// within the call's.
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(crate) unsafe fn scale_block<const P: usize>(
    s: &ScalePtrs,
    ptrs: Ptrs,
    p0: usize,
    tokens: Range<usize>,
) {
    if s.q8_0_block == 0 {
        // The per-dot formula: all the block's rows × up to 8 / (2P) tokens at a time (8
        // accumulators), each weight scale vector converted once for them.
        let row0 = p0 * PANEL_ROWS;
        let mut t = tokens.start;
        while t < tokens.end {
            let n = (tokens.end - t).min(4 / P);
            // SAFETY: the function contract.
            unsafe {
                match (P, n, s.block_scales.is_null()) {
                    (1, 4, true) => group_sums::<2, 4, false>(s, ptrs, t, row0),
                    (1, 4, false) => group_sums::<2, 4, true>(s, ptrs, t, row0),
                    (1, 3, true) => group_sums::<2, 3, false>(s, ptrs, t, row0),
                    (1, 3, false) => group_sums::<2, 3, true>(s, ptrs, t, row0),
                    (1, 2, true) => group_sums::<2, 2, false>(s, ptrs, t, row0),
                    (1, 2, false) => group_sums::<2, 2, true>(s, ptrs, t, row0),
                    (1, _, true) => group_sums::<2, 1, false>(s, ptrs, t, row0),
                    (1, _, false) => group_sums::<2, 1, true>(s, ptrs, t, row0),
                    (2, 2, true) => group_sums::<4, 2, false>(s, ptrs, t, row0),
                    (2, 2, false) => group_sums::<4, 2, true>(s, ptrs, t, row0),
                    (2, _, true) => group_sums::<4, 1, false>(s, ptrs, t, row0),
                    (2, _, false) => group_sums::<4, 1, true>(s, ptrs, t, row0),
                    (_, _, true) => group_sums::<8, 1, false>(s, ptrs, t, row0),
                    (_, _, false) => group_sums::<8, 1, true>(s, ptrs, t, row0),
                }
            }
            t += n;
        }
        return;
    }
    // ggml's Q8_0 order: 32 rows (4 ymm of sums, 4 of block sums) of one token at a time,
    // fewer with one panel.
    const CHUNK: usize = 4;
    let halves = 2 * P;
    for t in tokens {
        for c0 in (0..halves).step_by(CHUNK) {
            let row0 = p0 * PANEL_ROWS + c0 * HALF_ROWS;
            // SAFETY: the function contract.
            unsafe {
                if halves - c0 >= CHUNK {
                    q8_0_rows::<CHUNK>(s, ptrs, t, row0);
                } else {
                    q8_0_rows::<2>(s, ptrs, t, row0);
                }
            }
        }
    }
}

/// The Q8_0-order sums (`TileScaling` with `q8_0_block`) of rows `row0..row0 + 8·H` of token
/// `t`: blocks of `PB` dots (Q2_0's 2, Q1_0's 4: the block loop unrolled), or of
/// `s.q8_0_block` when `PB` is 0. Pointers step through the dots, sums and scales in order.
///
/// # Safety
/// As `scale_rows`; `s.q8_0_block` divides the dots (and equals `PB` when `PB` > 0).
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn q8_0_blocks<const H: usize, const PB: usize>(
    s: &ScalePtrs,
    ptrs: Ptrs,
    t: usize,
    row0: usize,
) -> [__m256; H] {
    let (nd, step) = (ptrs.nd, ptrs.strides.d);
    let per_block = if PB > 0 { PB } else { s.q8_0_block };
    let mut acc = [_mm256_setzero_ps(); H];
    let mut dot: [*const i32; H] =
        std::array::from_fn(|h| ptrs.dot_at(t, 0, row0 + h * HALF_ROWS).cast_const());
    // SAFETY (all reads): token t's dots, sums and block scales and the tile's scales, in the
    // checked buffers (the function contract).
    unsafe {
        let (mut gsum, mut block_scale) = (s.gsums.add(t * nd), s.block_scales.add(t * nd));
        let mut scales = s.scales.add(row0);
        for _ in 0..nd / per_block {
            let mut sumi = [_mm256_setzero_ps(); H];
            for _ in 0..per_block {
                let (gs, bs) = (_mm256_set1_epi32(*gsum), _mm256_set1_ps(*block_scale));
                for (si, at) in sumi.iter_mut().zip(&mut dot) {
                    let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256(at.cast()), gs));
                    *si = _mm256_add_ps(*si, _mm256_mul_ps(bs, x));
                    *at = at.add(step);
                }
                (gsum, block_scale) = (gsum.add(1), block_scale.add(1));
            }
            for (h, (a, si)) in acc.iter_mut().zip(sumi).enumerate() {
                let w = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(h * HALF_ROWS).cast()));
                *a = _mm256_add_ps(*a, _mm256_mul_ps(w, si));
            }
            scales = scales.add(TILE_ROWS);
        }
    }
    acc
}

/// `scale_block` in ggml's Q8_0 order for rows `row0..row0 + 8·H` of token `t`.
///
/// # Safety
/// As `scale_block`, `row0 + 8·H ≤ 64`, `s.q8_0_block` > 0.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn q8_0_rows<const H: usize>(s: &ScalePtrs, ptrs: Ptrs, t: usize, row0: usize) {
    // SAFETY: the function contract.
    let acc = unsafe {
        match s.q8_0_block {
            2 => q8_0_blocks::<H, 2>(s, ptrs, t, row0),
            4 => q8_0_blocks::<H, 4>(s, ptrs, t, row0),
            _ => q8_0_blocks::<H, 0>(s, ptrs, t, row0),
        }
    };
    for (h, a) in acc.iter().enumerate() {
        // SAFETY: token t's results of this tile lie in `acc` (the function contract).
        unsafe { _mm256_storeu_ps(s.acc.add(t * TILE_ROWS + row0 + h * HALF_ROWS), *a) };
    }
}

/// `scale_block` with the per-dot formula (`TileScaling` without `q8_0_block`) for rows
/// `row0..row0 + 8·H` of tokens `t0..t0 + N` (H·N ≤ 8 accumulators), with (`BLOCK_SCALES`) or
/// without block scales. Pointers step through the dots, sums and scales in order; each weight
/// scale vector is converted once for the N tokens.
///
/// # Safety
/// As `scale_block`, `row0 + 8·H ≤ 64`, tokens `t0..t0 + N` within the call's; `BLOCK_SCALES`
/// when `s.block_scales` is not null.
#[target_feature(enable = "avx2,f16c")]
#[inline]
unsafe fn group_sums<const H: usize, const N: usize, const BLOCK_SCALES: bool>(
    s: &ScalePtrs,
    ptrs: Ptrs,
    t0: usize,
    row0: usize,
) {
    let (nd, step) = (ptrs.nd, ptrs.strides.d);
    let mut acc = [[_mm256_setzero_ps(); H]; N];
    let mut dot: [[*const i32; H]; N] = std::array::from_fn(|t| {
        std::array::from_fn(|h| ptrs.dot_at(t0 + t, 0, row0 + h * HALF_ROWS).cast_const())
    });
    // SAFETY (all accesses): the tokens' dots, sums, block scales and results and the tile's
    // scales, in the checked buffers (the function contract).
    unsafe {
        let gsum: [*const i32; N] = std::array::from_fn(|t| s.gsums.add((t0 + t) * nd));
        let block_scale: [*const f32; N] =
            std::array::from_fn(|t| s.block_scales.wrapping_add((t0 + t) * nd));
        let mut scales = s.scales.add(row0);
        for d in 0..nd {
            let gs: [__m256i; N] = std::array::from_fn(|t| _mm256_set1_epi32(*gsum[t].add(d)));
            let bs: [Option<__m256>; N] = std::array::from_fn(|t| {
                BLOCK_SCALES.then(|| _mm256_set1_ps(*block_scale[t].add(d)))
            });
            for h in 0..H {
                let w = _mm256_cvtph_ps(_mm_loadu_si128(scales.add(h * HALF_ROWS).cast()));
                for t in 0..N {
                    let at = dot[t][h];
                    let x =
                        _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_loadu_si256(at.cast()), gs[t]));
                    let w = bs[t].map_or(w, |bs| _mm256_mul_ps(bs, w));
                    acc[t][h] = _mm256_add_ps(acc[t][h], _mm256_mul_ps(x, w));
                    dot[t][h] = at.add(step);
                }
            }
            scales = scales.add(TILE_ROWS);
        }
        for (t, acc) in acc.iter().enumerate() {
            for (h, a) in acc.iter().enumerate() {
                let at = s.acc.add((t0 + t) * TILE_ROWS + row0 + h * HALF_ROWS);
                _mm256_storeu_ps(at, *a);
            }
        }
    }
}
