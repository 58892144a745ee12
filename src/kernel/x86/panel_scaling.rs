//! The per-group scaling (`TileScaling`) of the x86 panel levels, 256-bit with F16C (the
//! scaling is a small share of a call, so a 512-bit copy is not worth its code): in the AVX2
//! micro-kernels, each dot as it ends (`scale_dot`, `scale_dot_q8_0`: no dots written, the
//! running results in the tile's results); or, from the driver for the other levels and for
//! dots that take more than one widening, each block of rows and tokens once its dots are
//! complete (`scale_block`). Both take the oracle's (`scalar::panel_dots`) operations in its
//! order: convert, multiply, add, no fused multiply-add.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use std::ops::Range;

use crate::kernel::panel::driver::{Ptrs, ScalePtrs};
use crate::kernel::panel::{PANEL_ROWS, TILE_ROWS};

/// Rows of one half panel vector (the f32 lanes of a ymm).
const HALF_ROWS: usize = 8;

/// How a micro-kernel call ends its dots: `mk_steps`' `SCALE`.
pub(super) const UNSCALED: u8 = 0;
/// The per-dot formula without block scales (`TileScaling`), each dot as it ends.
pub(super) const PER_DOT: u8 = 1;
/// The per-dot formula with block scales.
pub(super) const PER_DOT_BLOCK: u8 = 2;
/// ggml's Q8_0 order.
pub(super) const Q8_0_ORDER: u8 = 3;

/// The `SCALE` of a call (`ScalePtrs::in_kernel`).
pub(super) fn scale_mode(ptrs: Ptrs) -> u8 {
    match ptrs.scaling {
        Some(s) if s.in_kernel && s.q8_0_block > 0 => Q8_0_ORDER,
        Some(s) if s.in_kernel && !s.block_scales.is_null() => PER_DOT_BLOCK,
        Some(s) if s.in_kernel => PER_DOT,
        _ => UNSCALED,
    }
}

/// Clears the results of panels `p0..p0+P` × tokens `t0..t0+T` of the tile, which the in-kernel
/// scaling then adds every dot (or block) to, as the oracle adds to 0.0.
///
/// # Safety
/// As `scale_dot`; called from code compiled with AVX2.
#[inline(always)]
pub(super) unsafe fn clear_results<const P: usize, const T: usize>(
    s: &ScalePtrs,
    p0: usize,
    t0: usize,
) {
    for t in 0..T {
        for r in (0..P * PANEL_ROWS).step_by(HALF_ROWS) {
            let at = s
                .acc
                .wrapping_add((t0 + t) * TILE_ROWS + p0 * PANEL_ROWS + r);
            // SAFETY: the function contract (token t0 + t's results of the tile).
            unsafe { _mm256_storeu_ps(at, _mm256_setzero_ps()) };
        }
    }
}

/// Widens the complete int16 sums `acc16` of dot `d` (panels `p0..p0+P`, halves, tokens
/// `t0..t0+T`) and adds them, scaled by the per-dot formula (`BLOCK_SCALES`: with the
/// activations' block scales), to the results, in the oracle's operations and order. Always
/// inlined, without features of its own, into the AVX2 micro-kernels (a `#[target_feature]`
/// function this size is not inlined there, and the call spills every accumulator).
///
/// # Safety
/// `s` and `ptrs` checked by the driver for the call, `p0 + P ≤ 4`, tokens `t0..t0+T` within
/// the call's, `d < ptrs.nd`; the results cleared (`clear_results`) before dot 0 and dots
/// `0..d` added in order; called from code compiled with AVX2, FMA and F16C.
#[inline(always)]
pub(super) unsafe fn scale_dot<const P: usize, const T: usize, const BLOCK_SCALES: bool>(
    s: &ScalePtrs,
    nd: usize,
    (d, p0, t0): (usize, usize, usize),
    acc16: &[[[__m256i; T]; 2]; P],
) {
    // SAFETY (all accesses): token t0 + t's sums, block scales and results and the tile's
    // weight scales in a checked call (the function contract; the features: see above).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let results = results_from(s, p0, t0);
        for p in 0..P {
            let row = (p0 + p) * PANEL_ROWS;
            let w = weight_scales(s, d, row);
            for t in 0..T {
                let i = (t0 + t) * nd + d;
                let gs = _mm256_set1_epi32(*s.gsums.add(i));
                let bs = _mm256_set1_ps(if BLOCK_SCALES {
                    *s.block_scales.add(i)
                } else {
                    0.0
                });
                for h in 0..2 {
                    let w = if BLOCK_SCALES {
                        _mm256_mul_ps(bs, w[h])
                    } else {
                        w[h]
                    };
                    let sum = _mm256_madd_epi16(acc16[p][h][t], ones);
                    let x = _mm256_cvtepi32_ps(_mm256_sub_epi32(sum, gs));
                    let at = results.add(t * TILE_ROWS + p * PANEL_ROWS + h * HALF_ROWS);
                    _mm256_storeu_ps(at, _mm256_add_ps(_mm256_loadu_ps(at), _mm256_mul_ps(x, w)));
                }
            }
        }
    }
}

/// Token `t0`'s results of the tile from panel `p0` on, `opaque`: the other tokens' and panels'
/// are constant offsets from it (`t·TILE_ROWS + p·PANEL_ROWS + h·HALF_ROWS`).
#[inline(always)]
fn results_from(s: &ScalePtrs, p0: usize, t0: usize) -> *mut f32 {
    opaque(s.acc.wrapping_add(t0 * TILE_ROWS + p0 * PANEL_ROWS))
}

/// `ptr`, as a value the compiler cannot follow: each dot then loads the results it adds to,
/// instead of LLVM keeping the last dot's results (the same addresses) in registers, which it
/// spills and reloads around the chunk loop of the next dot (~2 moves per result vector).
#[inline(always)]
pub(super) fn opaque<V>(ptr: *mut V) -> *mut V {
    let mut addr = ptr.addr();
    // SAFETY: an empty template, no memory, no flags; the address comes back unchanged.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) addr, options(nomem, nostack, preserves_flags));
    }
    ptr.with_addr(addr)
}

/// The tile's weight scales of scale block `block` for rows `row..row + 16`, as f32.
///
/// # Safety
/// As `scale_dot` (`block` is a dot, or in the Q8_0 order a weight block, of the call).
#[inline(always)]
unsafe fn weight_scales(s: &ScalePtrs, block: usize, row: usize) -> [__m256; 2] {
    // SAFETY: the function contract (the features: as `scale_dot`).
    unsafe {
        let scales = s.scales.add(block * TILE_ROWS + row);
        [
            _mm256_cvtph_ps(_mm_loadu_si128(scales.cast())),
            _mm256_cvtph_ps(_mm_loadu_si128(scales.add(HALF_ROWS).cast())),
        ]
    }
}

/// `scale_dot` in ggml's Q8_0 order, for dot `d` of weight block `block`: the block's partial
/// `sumi` (from its `FIRST` dot on) waits in `partials` until its `LAST` dot adds
/// `scale · sumi` to the results. Each product `block_scale · f32(dot − gsum)` is one fused
/// multiply-add, `fma(block_scale, f32(dot), offset)` with the exact `offset = −block_scale ·
/// gsum` (`kernel::q8_0_offsets`): `f32(dot)` is exact (a dot of at most `WIDEN_STEPS` k-steps),
/// so both round `block_scale · (dot − gsum)` once; a zero product may differ in its sign. The
/// first dot starts `sumi` with its product instead of `0.0 +` it, which also differs only for a
/// zero product. A signed zero adds nothing to results that start at +0.0 (a round-to-nearest
/// sum is −0.0 only from two −0.0), so the results keep the oracle's bits.
///
/// # Safety
/// As `scale_dot`, with block scales and offsets; the block's dots before `d` scaled before;
/// `partials` writable (an `opaque` pointer, so that they stay in memory).
#[inline(always)]
pub(super) unsafe fn scale_dot_q8_0<
    const P: usize,
    const T: usize,
    const FIRST: bool,
    const LAST: bool,
>(
    s: &ScalePtrs,
    nd: usize,
    (d, block, p0, t0): (usize, usize, usize, usize),
    acc16: &[[[__m256i; T]; 2]; P],
    partials: *mut [[[__m256; T]; 2]; P],
) {
    // SAFETY (all accesses): as `scale_dot`, and `partials` (the function contract).
    unsafe {
        let ones = _mm256_set1_epi16(1);
        let results = results_from(s, p0, t0);
        for p in 0..P {
            let row = (p0 + p) * PANEL_ROWS;
            let w = if LAST {
                weight_scales(s, block, row)
            } else {
                [_mm256_setzero_ps(); 2]
            };
            for t in 0..T {
                let i = (t0 + t) * nd + d;
                let offset = _mm256_set1_ps(*s.q8_0_offsets.add(i));
                let bs = _mm256_set1_ps(*s.block_scales.add(i));
                for h in 0..2 {
                    let sum = _mm256_madd_epi16(acc16[p][h][t], ones);
                    let product = _mm256_fmadd_ps(bs, _mm256_cvtepi32_ps(sum), offset);
                    let partial = &raw mut (*partials)[p][h][t];
                    let sumi = if FIRST {
                        product
                    } else {
                        _mm256_add_ps(partial.read(), product)
                    };
                    if LAST {
                        let at = results.add(t * TILE_ROWS + p * PANEL_ROWS + h * HALF_ROWS);
                        let sum = _mm256_add_ps(_mm256_loadu_ps(at), _mm256_mul_ps(w[h], sumi));
                        _mm256_storeu_ps(at, sum);
                    } else {
                        partial.write(sumi);
                    }
                }
            }
        }
    }
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
