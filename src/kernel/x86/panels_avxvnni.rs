//! AVX-VNNI panel kernels for the AVX2 level (`PanelDotsFn`, `Codes2` only), for CPUs with AVX2
//! and AVX-VNNI but no AVX-512 (Intel Alder, Raptor and Arrow Lake), on `panels_avx2`'s half
//! panel vectors: a `vpdpbusd` of one half against a token's broadcast k-step adds 32 exact
//! products into 8 row sums.
//!
//! AVX-VNNI micro-kernels, sized for AVX2's 16 ymm registers (`vpdpbusd`: latency 4–5 cycles, 2 per
//! cycle, so 8–10 independent accumulators keep it busy). Codes are decoded as `(v >> 2s) & 3`.
//! * 1 or 2 tokens (decode): one token at a time, all 8 halves of a tile in one sequential pass,
//!   one accumulator per half: 8 accumulators + the chunk's 4 broadcasts + a panel's 2 raw
//!   halves + a code = 15 registers (the mask is read from memory). `panels_avx512vnni`'s `dp_quad` (codes
//!   masked in place, an accumulator per k-step) needs 4 accumulators per half, so 32 for a
//!   tile; one panel per pass (4 passes) fits, but strided passes stream a tile from DRAM far
//!   below the sequential rate. Two tokens run twice
//!   (the second pass reads the tile from cache): faster than the kernel below with 2 tokens,
//!   whose 4 chains leave `vpdpbusd` waiting.
//! * 3–5 tokens (prefill blocks): one panel (2 halves) per pass, 4 passes per dot, each half's
//!   codes decoded once per k-step and reused for every token: 2 halves × 5 tokens = 10
//!   accumulators + 2 raw + 2 decoded vectors + one broadcast + the mask = 16 registers (6
//!   tokens would need 18). The first pass prefetches each whole 256-byte chunk ahead, so that
//!   the tile streams in sequence and the later passes read it from cache.
//!
//! The code is compiled twice from one source (`avxvnni_kernels!`): with VEX `vpdpbusd`
//! (AVX-VNNI), the kernel contexts use, and with its EVEX twin (AVX-512 VL + VNNI), which runs
//! the very same code on CPUs that have AVX-512 but no AVX-VNNI (no emulator has AVX-VNNI): the
//! tests check the twin there.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use super::panels_avx2::{act, codes, halves, store};
use crate::kernel::panel::driver::{Ptrs, panel_micro_kernel};
use crate::kernel::panel::{PANELS, PanelGeom};
use crate::kernel::{Isa, cpu_features, feature};

/// Most tokens one AVX-VNNI micro-kernel call takes.
const T_MAX: usize = 5;

/// Expands to module `$module`: the `Codes2` panel kernels with every function compiled for
/// `$features` (so that all intrinsics inline), `$dpbusd` as the `vpdpbusd` intrinsic, and their
/// entry point `panel_dots`, which needs `$has()` (the CPU has `$needs`).
macro_rules! avxvnni_kernels {
    ($module:ident, $features:literal, $dpbusd:ident, $has:ident, $needs:literal) => {
        mod $module {
            use super::*;

            /// One token, all 8 halves of a tile in one sequential pass (an accumulator per
            /// half, the chunk's 4 broadcasts held), prefetching each 64-byte panel vector ahead.
            /// K-steps run inside each panel: written half by half, LLVM interleaved the 4
            /// k-steps of all 8 halves, kept their 8 raw vectors live and, with 16 ymm
            /// registers (VEX), spilled them and an accumulator.
            ///
            /// # Safety
            /// `ptrs` checked by `checked_ptrs` against `geom`; `t0 < nt`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn mk_t1(ptrs: Ptrs, geom: &PanelGeom, t0: usize) {
                let m3 = _mm256_set1_epi8(3);
                for d in 0..geom.n_dots() {
                    let mut acc = [_mm256_setzero_si256(); 2 * PANELS];
                    for g in d * geom.merge..(d + 1) * geom.merge {
                        for c in 0..geom.chunks_per_group() {
                            let ks0 = g * geom.group_steps + 4 * c;
                            // SAFETY: k-steps ks0..ks0 + 4 < n_groups · group_steps, t0 < nt.
                            let x: [__m256i; 4] =
                                std::array::from_fn(|s| unsafe { act(ptrs, ks0 + s, t0) });
                            for p in 0..PANELS {
                                let at = ptrs.tile.wrapping_add(geom.vec_offset(g, c, p));
                                ptrs.prefetch_ahead(at);
                                // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                                let raw = unsafe { halves(at) };
                                for s in 0..4 {
                                    for h in 0..2 {
                                        let a = &mut acc[2 * p + h];
                                        *a = $dpbusd(*a, codes(raw[h], s, m3), x[s]);
                                    }
                                }
                            }
                        }
                    }
                    for p in 0..PANELS {
                        let sums = [[acc[2 * p]], [acc[2 * p + 1]]];
                        // SAFETY: as above.
                        unsafe { store::<1>(ptrs, d, p, t0, &sums) };
                    }
                }
            }

            /// Tokens `t0..t0+T`, one panel per pass: each half's codes of a k-step decoded
            /// once and reused for the `T` tokens.
            ///
            /// # Safety
            /// `ptrs` checked by `checked_ptrs` against `geom`; `t0 + T ≤ nt`.
            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn mk<const T: usize>(ptrs: Ptrs, geom: &PanelGeom, t0: usize) {
                let m3 = _mm256_set1_epi8(3);
                for d in 0..geom.n_dots() {
                    for p in 0..PANELS {
                        let mut acc = [[_mm256_setzero_si256(); T]; 2];
                        for g in d * geom.merge..(d + 1) * geom.merge {
                            for c in 0..geom.chunks_per_group() {
                                let ks0 = g * geom.group_steps + 4 * c;
                                if p == 0 {
                                    // The first pass streams the whole chunk ahead.
                                    for q in 0..PANELS {
                                        ptrs.prefetch_ahead(
                                            ptrs.tile.wrapping_add(geom.vec_offset(g, c, q)),
                                        );
                                    }
                                }
                                // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                                let raw =
                                    unsafe { halves(ptrs.tile.add(geom.vec_offset(g, c, p))) };
                                for s in 0..4 {
                                    let code = raw.map(|v| codes(v, s, m3));
                                    for t in 0..T {
                                        // SAFETY: k-step ks0 + s < n_groups · group_steps,
                                        // token t0 + t < nt.
                                        let x = unsafe { act(ptrs, ks0 + s, t0 + t) };
                                        for h in 0..2 {
                                            acc[h][t] = $dpbusd(acc[h][t], code[h], x);
                                        }
                                    }
                                }
                            }
                        }
                        // SAFETY: as above.
                        unsafe { store::<T>(ptrs, d, p, t0, &acc) };
                    }
                }
            }

            /// A block of 3–5 tokens, all 4 panels (`T_WIDE = T_MAX`): `mk`.
            ///
            /// # Safety
            /// As `mk`.
            #[inline(always)]
            unsafe fn mk_block<const P: usize, const T: usize>(
                ptrs: Ptrs,
                geom: &PanelGeom,
                p0: usize,
                t0: usize,
            ) {
                debug_assert!(P == PANELS && p0 == 0);
                // SAFETY: the caller's contract.
                unsafe { mk::<T>(ptrs, geom, t0) }
            }

            panel_micro_kernel! {
                /// `Codes2` with `$dpbusd`.
                struct AvxVnni: Codes2, tokens T_MAX, T_MAX, T_MAX;
                features $features, cpu $has(),
                    needs concat!("the AVX-VNNI panel kernel (", stringify!($module), ") needs ", $needs);
                block mk_block, one token mk_t1: calls false, blocks 2;
                /// Checks the call, its layout and the CPU, then runs the kernels.
                pub fn panel_dots;
            }
        }
    };
}

avxvnni_kernels!(
    vex,
    "avx2,fma,f16c,avxvnni",
    _mm256_dpbusd_avx_epi32,
    has_avxvnni,
    "AVX2, FMA, F16C and AVX-VNNI"
);
avxvnni_kernels!(
    evex,
    "avx2,fma,f16c,avx512f,avx512vl,avx512vnni",
    _mm256_dpbusd_epi32,
    has_avxvnni_evex,
    "AVX2, FMA, F16C and AVX-512 F, VL and VNNI"
);

/// AVX-VNNI panel dots (`PanelDotsFn`), `Codes2` only.
pub use vex::panel_dots as panel_dots_avxvnni;

/// `panel_dots_avxvnni`'s code with EVEX encodings (AVX-512 VL + VNNI), for the tests.
pub use evex::panel_dots as panel_dots_avxvnni_evex;

/// Whether this CPU runs the AVX-VNNI panel kernel.
pub fn has_avxvnni() -> bool {
    Isa::Avx2.is_available() && cpu_features() & feature::AVXVNNI != 0
}

/// Whether this CPU runs the AVX-VNNI panel kernel's EVEX twin.
pub fn has_avxvnni_evex() -> bool {
    let need = feature::AVX512F | feature::AVX512VL | feature::AVX512VNNI;
    Isa::Avx2.is_available() && cpu_features() & need == need
}
