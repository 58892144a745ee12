//! AVX-512BW panel kernels for CPUs without VNNI (`PanelDotsFn`, `Codes2` only): the AVX2
//! level's `vpmaddubsw` scheme (`panels_avx2`) on whole panel vectors, 16 rows per
//! zmm. `vpmaddubsw` of a panel vector's codes against a token's broadcast k-step gives 32 int16
//! pair sums (|·| ≤ 2·3·128 = 768 with codes ≤ 3, never saturating), added up in int16 for `WIDEN_CHUNKS`
//! chunks and then widened into the int32 sums in `dots` by `vpmaddwd` with ones.
//!
//! Blocking (32 zmm): 1–4 tokens × all 4 panels in one sequential pass over the tile (≤ 16
//! int16 accumulators + 4 raw vectors + 4 codes + a broadcast + the mask), more tokens in blocks
//! of `T_MANY` × 2 panels, the codes of each k-step decoded once and reused for every token.
//!
//! Why a 512-bit level rather than the AVX2 level's 256-bit panels: even on cores that split
//! each 512-bit operation in two, a panel vector per register halves the instructions and the
//! 32 registers hold the 4-panel blocks without spills; on cores with two 512-bit units the
//! width counts as well. Comparisons: `docs/performance.md`, *Kernel design choices*.

#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::kernel::Isa;
use crate::kernel::panel::driver::{Ptrs, panel_micro_kernel};
use crate::kernel::panel::{PANEL_ROWS, PanelGeom};

/// Chunks (4 k-steps) summed in int16 before widening: 32 k-steps · 768 = 24576 < 2^15.
const WIDEN_CHUNKS: usize = 8;
/// Most tokens of the 4-panel micro-kernel.
const T_FEW: usize = 4;
/// Tokens per block of the 2-panel micro-kernel.
const T_MANY: usize = 8;

/// Adds the int16 sums `acc16` (panels `p0..p0+P`, tokens `t0..t0+T`) of dot `d` into its int32
/// sums in `dots`, and clears them.
///
/// # Safety
/// `dots` holds `nt · n_dots · 64` values, `p0 + P ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn widen<const P: usize, const T: usize>(
    ptrs: Ptrs,
    (d, p0, t0): (usize, usize, usize),
    acc16: &mut [[__m512i; T]; P],
) {
    let ones = _mm512_set1_epi16(1);
    for (p, acc) in acc16.iter_mut().enumerate() {
        for (t, a) in acc.iter_mut().enumerate() {
            let at = ptrs.dot_at(t0 + t, d, (p0 + p) * PANEL_ROWS);
            // SAFETY: 16 values from `at` lie in `dots` (see the function contract).
            unsafe {
                let old = _mm512_loadu_si512(at.cast());
                _mm512_storeu_si512(
                    at.cast(),
                    _mm512_add_epi32(old, _mm512_madd_epi16(*a, ones)),
                );
            }
            *a = _mm512_setzero_si512();
        }
    }
}

/// Panels `p0..p0+P` × tokens `t0..t0+T`, every dot; the int32 sums accumulate in `dots`.
///
/// # Safety
/// `ptrs` checked by `checked_ptrs` against `geom`; `p0 + P ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
unsafe fn mk<const P: usize, const T: usize>(ptrs: Ptrs, geom: &PanelGeom, p0: usize, t0: usize) {
    let m3 = _mm512_set1_epi8(3);
    for d in 0..geom.n_dots() {
        let mut acc16 = [[_mm512_setzero_si512(); T]; P];
        for p in 0..P {
            for t in 0..T {
                let at = ptrs.dot_at(t0 + t, d, (p0 + p) * PANEL_ROWS);
                // SAFETY: as in the function contract.
                unsafe { _mm512_storeu_si512(at.cast(), _mm512_setzero_si512()) };
            }
        }
        let mut pending = 0;
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..geom.chunks_per_group() {
                let ks0 = g * geom.group_steps + 4 * c;
                let mut raw = [_mm512_setzero_si512(); P];
                for p in 0..P {
                    let at = ptrs.tile.wrapping_add(geom.vec_offset(g, c, p0 + p));
                    ptrs.prefetch_ahead(at);
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    raw[p] = unsafe { _mm512_loadu_si512(at.cast()) };
                }
                for s in 0..4 {
                    let code = raw.map(|v| {
                        let v = match s {
                            0 => v,
                            1 => _mm512_srli_epi16::<2>(v),
                            2 => _mm512_srli_epi16::<4>(v),
                            _ => _mm512_srli_epi16::<6>(v),
                        };
                        _mm512_and_si512(v, m3)
                    });
                    for t in 0..T {
                        // SAFETY: k-step ks0 + s < n_groups · group_steps, t0 + t < nt.
                        let x = _mm512_set1_epi32(unsafe { ptrs.act_dword(ks0 + s, t0 + t) });
                        for p in 0..P {
                            let a = &mut acc16[p][t];
                            *a = _mm512_add_epi16(*a, _mm512_maddubs_epi16(code[p], x));
                        }
                    }
                }
                pending += 1;
                if pending == WIDEN_CHUNKS {
                    // SAFETY: as in the function contract.
                    unsafe { widen::<P, T>(ptrs, (d, p0, t0), &mut acc16) };
                    pending = 0;
                }
            }
        }
        // SAFETY: as in the function contract.
        unsafe { widen::<P, T>(ptrs, (d, p0, t0), &mut acc16) };
    }
}

panel_micro_kernel! {
    /// `Codes2` on AVX-512BW: `mk` for every block.
    struct Bw: Codes2, tokens T_FEW, T_MANY, T_MANY;
    features "avx512f,avx512bw,f16c", cpu Isa::Avx512.is_available(),
        needs "the AVX-512BW panel kernel needs AVX-512 F and BW";
    block mk;
    /// AVX-512BW panel dots (`PanelDotsFn`, `vpmaddubsw`), `Codes2` only.
    pub fn panel_dots_bw;
}
