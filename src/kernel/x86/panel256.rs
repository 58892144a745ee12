//! 256-bit panel kernels for the AVX2 level (`PanelDotsFn`, `Bits2` only): AVX-VNNI ones for
//! CPUs with AVX2 and AVX-VNNI but no AVX-512 (Intel Alder, Raptor and Arrow Lake), and plain
//! AVX2 ones (`vpmaddubsw`, module `avx2` below) for the others. Lanes are still rows: a ymm holds half a panel vector (bytes 0..32 = rows 0..8,
//! 32..64 = rows 8..16, one k-step of 4 columns each), so a `vpdpbusd` of one half against a
//! token's broadcast k-step adds 32 exact products into 8 row sums. `Bits16` needs `vpermi2b`
//! (AVX-512 VBMI) and has no kernel here.
//!
//! AVX-VNNI micro-kernels, sized for AVX2's 16 ymm registers (`vpdpbusd`: latency 4–5 cycles, 2 per
//! cycle, so 8–10 independent accumulators keep it busy). Codes are decoded as `(v >> 2s) & 3`.
//! * 1 or 2 tokens (decode): one token at a time, all 8 halves of a tile in one sequential pass,
//!   one accumulator per half: 8 accumulators + the chunk's 4 broadcasts + a panel's 2 raw
//!   halves + a code = 15 registers (the mask is read from memory). `panel`'s `dp_quad` (codes
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

use super::panel::{Ptrs, checked_bits2, tile_ptrs};
use crate::kernel::panel::{PANEL_ROWS, PANELS, PanelGeom, TILE_ROWS};
use crate::kernel::{GroupScales, Isa, cpu_features, feature};

/// Rows of one half panel vector (the int32 lanes of a ymm).
const HALF_ROWS: usize = 8;
/// Bytes of one half panel vector.
const HALF_BYTES: usize = 32;
/// Most tokens one AVX-VNNI micro-kernel call takes (the plain AVX2 module has its own).
const T_MAX: usize = 5;

/// The 4 activations of token `t` at k-step `ks` as an int32 broadcast to every lane.
///
/// # Safety
/// `(ks·nt + t)·4 + 4` bytes readable at `acts`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn act(ptrs: Ptrs, ks: usize, t: usize) -> __m256i {
    // SAFETY: see the function contract.
    _mm256_set1_epi32(unsafe { ptrs.act_dword(ks, t) })
}

/// The two halves of the panel vector at `at`.
///
/// # Safety
/// 64 bytes readable at `at`.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn halves(at: *const u8) -> [__m256i; 2] {
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
unsafe fn store<const T: usize>(
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

/// The codes of k-step `s` of a `Bits2` byte vector: `(v >> 2s) & 3`.
#[target_feature(enable = "avx2")]
#[inline]
fn codes(v: __m256i, s: usize, m3: __m256i) -> __m256i {
    let v = match s {
        0 => v,
        1 => _mm256_srli_epi16::<2>(v),
        2 => _mm256_srli_epi16::<4>(v),
        _ => _mm256_srli_epi16::<6>(v),
    };
    _mm256_and_si256(v, m3)
}

/// Expands to module `$module`: the `Bits2` panel kernels with every function compiled for
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
                        unsafe { store::<1>(ptrs, geom, d, p, t0, &sums) };
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
                        unsafe { store::<T>(ptrs, geom, d, p, t0, &acc) };
                    }
                }
            }

            /// Every tile of the run, its tokens in blocks of up to `T_MAX` (see the module
            /// doc for which kernel takes which block).
            ///
            /// # Safety
            /// The CPU has the module's features; `ptrs` checked by `checked_ptrs` for
            /// `n_tiles` tiles of `geom`.
            #[target_feature(enable = $features)]
            unsafe fn run_bits2(ptrs: Ptrs, geom: &PanelGeom, n_tiles: usize) {
                for i in 0..n_tiles {
                    let ptrs = tile_ptrs(ptrs, geom, i);
                    let mut t0 = 0;
                    while t0 < ptrs.nt {
                        let n = (ptrs.nt - t0).min(T_MAX);
                        // SAFETY: t0 + n ≤ nt, tile i of the checked run.
                        unsafe {
                            match n {
                                1 | 2 => {
                                    for t in t0..t0 + n {
                                        mk_t1(ptrs, geom, t);
                                    }
                                }
                                3 => mk::<3>(ptrs, geom, t0),
                                4 => mk::<4>(ptrs, geom, t0),
                                _ => mk::<5>(ptrs, geom, t0),
                            }
                        }
                        t0 += n;
                    }
                }
            }

            const _: () = assert!(T_MAX == 5);

            /// Checks the call, its layout and the CPU, then runs the kernels.
            pub fn panel_dots(
                geom: &PanelGeom,
                tiles: &[u8],
                n_tiles: usize,
                acts: &[i8],
                n_tokens: usize,
                dots: &mut [i32],
            ) {
                let Some(ptrs) = checked_bits2(geom, tiles, n_tiles, acts, n_tokens, dots) else {
                    return;
                };
                assert!(
                    $has(),
                    concat!(
                        "the AVX-VNNI panel kernel (",
                        stringify!($module),
                        ") needs ",
                        $needs
                    )
                );
                // SAFETY: features asserted, sizes checked.
                unsafe { run_bits2(ptrs, geom, n_tiles) }
            }
        }
    };
}

avxvnni_kernels!(
    vex,
    "avx2,fma,avxvnni",
    _mm256_dpbusd_avx_epi32,
    has_avxvnni,
    "AVX2, FMA and AVX-VNNI"
);
avxvnni_kernels!(
    evex,
    "avx2,fma,avx512f,avx512vl,avx512vnni",
    _mm256_dpbusd_epi32,
    has_avxvnni_evex,
    "AVX2, FMA and AVX-512 F, VL and VNNI"
);

/// Plain AVX2 panel kernels (no VNNI): `vpmaddubsw` of a half panel's codes against a token's
/// broadcast k-step gives 16 int16 pair sums (|·| ≤ 2·2·128 = 512, never saturating), added up
/// in int16 for `WIDEN_CHUNKS` chunks and then widened into the int32 sums in `dots` by
/// `vpmaddwd` with ones: 2 operations per 32 products plus the decode, shared by the tokens
/// (the row kernel of `avx2.rs` decodes per row and widens more often).
/// Blocking: 1 token × all 4 panels (8 int16 accumulators, one sequential pass), 2 tokens × 2
/// panels, 3–4 tokens × 1 panel (≤ 8 accumulators + 2 raw + 2 codes + 1 broadcast + the mask:
/// 14 ymm). With 5 tokens (16 ymm on paper) the compiled loop spills, as `vpmaddubsw` and the
/// int16 add need a temporary the VNNI kernels' `vpdpbusd` does not, so blocks stop at 4.
mod avx2 {
    use super::*;

    /// Most tokens one micro-kernel call takes (see the module doc).
    const T_MAX: usize = 4;

    /// Chunks (4 k-steps) summed in int16 before widening: 32 k-steps · 512 < 2^15.
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
    unsafe fn mk<const P: usize, const T: usize>(
        ptrs: Ptrs,
        geom: &PanelGeom,
        p0: usize,
        t0: usize,
    ) {
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

    /// Every tile of the run, its tokens in blocks of up to this module's `T_MAX`.
    ///
    /// # Safety
    /// The CPU has AVX2 and FMA; `ptrs` checked by `checked_ptrs` for `n_tiles` tiles of `geom`.
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_bits2(ptrs: Ptrs, geom: &PanelGeom, n_tiles: usize) {
        for i in 0..n_tiles {
            let ptrs = tile_ptrs(ptrs, geom, i);
            let mut t0 = 0;
            while t0 < ptrs.nt {
                let n = (ptrs.nt - t0).min(T_MAX);
                // SAFETY: t0 + n ≤ nt, panels within the tile, tile i of the checked run.
                unsafe {
                    match n {
                        1 => mk::<4, 1>(ptrs, geom, 0, t0),
                        2 => {
                            mk::<2, 2>(ptrs, geom, 0, t0);
                            mk::<2, 2>(ptrs, geom, 2, t0);
                        }
                        _ => {
                            for p0 in 0..4 {
                                match n {
                                    3 => mk::<1, 3>(ptrs, geom, p0, t0),
                                    _ => mk::<1, 4>(ptrs, geom, p0, t0),
                                }
                            }
                        }
                    }
                }
                t0 += n;
            }
        }
    }

    const _: () = assert!(T_MAX == 4);

    /// Checks the call, its layout and the CPU, then runs the kernels.
    pub fn panel_dots(
        geom: &PanelGeom,
        tiles: &[u8],
        n_tiles: usize,
        acts: &[i8],
        n_tokens: usize,
        dots: &mut [i32],
    ) {
        let Some(ptrs) = checked_bits2(geom, tiles, n_tiles, acts, n_tokens, dots) else {
            return;
        };
        assert!(
            Isa::Avx2.is_available(),
            "the AVX2 panel kernel needs AVX2 and FMA"
        );
        // SAFETY: features asserted, sizes checked.
        unsafe { run_bits2(ptrs, geom, n_tiles) }
    }
}

/// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Bits2` only.
pub use avx2::panel_dots as panel_dots_avx2;

/// AVX-VNNI panel dots (`PanelDotsFn`), `Bits2` only.
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
