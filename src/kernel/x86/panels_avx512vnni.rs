//! AVX-512 VNNI panel kernels (`PanelDotsFn`, layouts in `kernel::panel`): lanes are rows, so a
//! `vpdpbusd` of one decoded panel vector (16 rows × one k-step of 4 columns, u8 codes) with one
//! token's 4 activations broadcast to every lane adds 64 exact products into 16 row sums, and no
//! horizontal reduction is ever needed; a group's sums are stored as they are.
//!
//! Micro-kernels: `RP` panels × `T` tokens of int32 accumulators. Few tokens (decode): all 4
//! panels of a tile × up to 5 tokens, so every 64-byte weight load feeds ≥ 4 independent chains
//! and the tile streams at DRAM speed. More tokens (prefill): 2 panels × up to 12 tokens
//! (24 accumulators), the decoded codes reused 12 times, the activations read as embedded
//! broadcasts from the k-step-interleaved buffer (one sequential stream).
//!
//! Decoding: `Codes2` — `(v >> 2s) & 3`; `Trits5` — three `vpermb`s of 6-bit windows of the
//! byte (`kernel::panel`): k-steps 0..4 as a `Codes2` byte, `quad_lo[v & 63] + quad_hi[v >> 2]`,
//! and k-step 4's code `fifth[v >> 2]`. `vpermb` mostly issues beside the `vpdpbusd`s, while
//! `vpermi2b` and `vpmovb2m` would take their issue slots, so the decode uses only `vpermb`s and
//! the `and`s, `add` and shift that share the two pipes the `vpdpbusd`s leave
//! (`docs/performance.md`, *Kernel design choices*).
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::kernel::TileScaling;
use crate::kernel::panel::driver::{Ptrs, panel_dots, panel_micro_kernel};
use crate::kernel::panel::{PANEL_ROWS, PanelGeom, PanelKind, TRITS5};

/// Most tokens one micro-kernel call takes.
const T_MAX: usize = 12;
/// Up to this many tokens the micro-kernel covers all 4 panels of a tile (each weight load feeds
/// more chains than with two 2-panel calls); at 6 tokens the 4-panel accumulators no longer fit
/// the registers.
const T_WIDE: usize = 5;

/// The 4 activations of token `t` at k-step `ks` as an int32 broadcast to every lane.
///
/// # Safety
/// `(ks·nt + t)·4 + 4` bytes readable at `acts`.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn act(ptrs: Ptrs, ks: usize, t: usize) -> __m512i {
    // SAFETY: see the function contract.
    _mm512_set1_epi32(unsafe { ptrs.act_dword(ks, t) })
}

/// Stores dot `d`'s sums of panels `p0..p0+RP` × tokens `t0..t0+T`.
///
/// # Safety
/// `dots` holds `nt · n_dots · 64` values.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn store<const RP: usize, const T: usize>(
    ptrs: Ptrs,
    d: usize,
    p0: usize,
    t0: usize,
    acc: &[[__m512i; T]; RP],
) {
    for p in 0..RP {
        for t in 0..T {
            let at = ptrs.dot_at(t0 + t, d, (p0 + p) * PANEL_ROWS);
            // SAFETY: 16 values from `at` lie in `dots` (see the function contract).
            unsafe { _mm512_storeu_si512(at.cast(), acc[p][t]) };
        }
    }
}

/// `Codes2`: panels `p0..p0+RP` × tokens `t0..t0+T` over every group.
///
/// # Safety
/// `ptrs` checked by `checked_ptrs` against `geom`; `p0 + RP ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn mk_bits2<const RP: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    let m3 = _mm512_set1_epi8(3);
    let cpg = geom.chunks_per_group();
    for d in 0..geom.n_dots() {
        let mut acc = [[_mm512_setzero_si512(); T]; RP];
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..cpg {
                let ks0 = g * geom.group_steps + 4 * c;
                let mut raw = [_mm512_setzero_si512(); RP];
                for p in 0..RP {
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    raw[p] = unsafe {
                        _mm512_loadu_si512(ptrs.tile.add(geom.vec_offset(g, c, p0 + p)).cast())
                    };
                }
                for s in 0..4 {
                    let mut code = [_mm512_setzero_si512(); RP];
                    for p in 0..RP {
                        let v = match s {
                            0 => raw[p],
                            1 => _mm512_srli_epi16::<2>(raw[p]),
                            2 => _mm512_srli_epi16::<4>(raw[p]),
                            _ => _mm512_srli_epi16::<6>(raw[p]),
                        };
                        code[p] = _mm512_and_si512(v, m3);
                    }
                    for t in 0..T {
                        // SAFETY: k-step ks0 + s < n_groups · group_steps, token t0 + t < nt.
                        let x = unsafe { act(ptrs, ks0 + s, t0 + t) };
                        for p in 0..RP {
                            acc[p][t] = _mm512_dpbusd_epi32(acc[p][t], code[p], x);
                        }
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { store::<RP, T>(ptrs, d, p0, t0, &acc) };
    }
}

/// The masks of the 4 k-steps of a `Codes2` byte, left in place.
#[target_feature(enable = "avx512f")]
#[inline]
fn quad_masks() -> [__m512i; 4] {
    [0x03u8, 0x0C, 0x30, 0xC0].map(|m| _mm512_set1_epi8(m as i8))
}

/// Adds the 4 k-steps of one `Codes2` byte vector against their activations `x`: each code
/// masked in place (code·4^s ≤ 3·64 = 192, a valid `vpdpbusd` u8) into its own accumulator `acc[s]`,
/// which therefore holds 4^s × its exact sum: one `and` per code, and 4 independent chains.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
fn dp_quad(acc: &mut [__m512i; 4], quad: __m512i, x: &[__m512i; 4], masks: &[__m512i; 4]) {
    for s in 0..4 {
        acc[s] = _mm512_dpbusd_epi32(acc[s], _mm512_and_si512(quad, masks[s]), x[s]);
    }
}

/// The exact sum of `dp_quad`'s accumulators (each `acc[s]` is 4^s × a sum: exact shifts).
#[target_feature(enable = "avx512f")]
#[inline]
fn unscale(acc: &[__m512i; 4]) -> __m512i {
    _mm512_add_epi32(
        _mm512_add_epi32(acc[0], _mm512_srai_epi32::<2>(acc[1])),
        _mm512_add_epi32(
            _mm512_srai_epi32::<4>(acc[2]),
            _mm512_srai_epi32::<6>(acc[3]),
        ),
    )
}

/// `Codes2`, one token (decode), all 4 panels through `dp_quad`: 16 independent accumulators and
/// ~40 instructions per 256 weight bytes, so the out-of-order window reaches far enough ahead to
/// keep the weight stream at DRAM speed (`mk_bits2`'s one chain per panel does not).
/// |4^3 · sum| < 2^31: `acc[s]` sees a quarter of a dot's ≤ `MAX_DOT_STEPS` = 2^16 k-steps,
/// 4 products of |·| ≤ 3·64·128 each (codes ≤ 3): 2^14 · 4 · 24576 ≈ 1.61·10^9.
///
/// # Safety
/// As `mk_bits2` with `RP = 4`, `T = 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn mk_bits2_t1(ptrs: Ptrs, geom: &PanelGeom, t0: usize) {
    const RP: usize = 4;
    let masks = quad_masks();
    for d in 0..geom.n_dots() {
        let mut acc = [[_mm512_setzero_si512(); 4]; RP];
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..geom.chunks_per_group() {
                let ks0 = g * geom.group_steps + 4 * c;
                // SAFETY: k-steps ks0..ks0 + 4 < n_groups · group_steps, token t0 < nt.
                let x: [__m512i; 4] = std::array::from_fn(|s| unsafe { act(ptrs, ks0 + s, t0) });
                for p in 0..RP {
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    let quad = unsafe {
                        _mm512_loadu_si512(ptrs.tile.add(geom.vec_offset(g, c, p)).cast())
                    };
                    ptrs.prefetch_ahead(ptrs.tile.wrapping_add(geom.vec_offset(g, c, p)));
                    dp_quad(&mut acc[p], quad, &x, &masks);
                }
            }
        }
        let sums = acc.map(|a| [unscale(&a)]);
        // SAFETY: as above.
        unsafe { store::<RP, 1>(ptrs, d, 0, t0, &sums) };
    }
}

/// The 1.6-bit lookups (`TRITS5`): the quad's two halves and k-step 4's codes.
#[target_feature(enable = "avx512f")]
#[inline]
fn tables16() -> [__m512i; 3] {
    let t = &TRITS5;
    // SAFETY: the tables are 64 bytes each.
    [&t.quad_lo, &t.quad_hi, &t.fifth].map(|v| unsafe { _mm512_loadu_si512(v.as_ptr().cast()) })
}

/// The byte's bits 7..2 as a `vpermb` index (a 16-bit shift: `vpermb` ignores the two bits it
/// brings in from the next byte).
#[target_feature(enable = "avx512f,avx512bw")]
#[inline]
fn high6(raw: __m512i) -> __m512i {
    _mm512_srli_epi16::<2>(raw)
}

/// One 1.6-bit panel vector decoded: k-steps 0..4 as a `Codes2` vector (`quad_lo[raw] +
/// quad_hi[high6]`) and k-step 4's codes (`fifth[high6]`): three `vpermb`s.
#[target_feature(enable = "avx512f,avx512bw,avx512vbmi")]
#[inline]
fn decode16(raw: __m512i, tab: &[__m512i; 3]) -> (__m512i, __m512i) {
    let hi = high6(raw);
    let quad = _mm512_add_epi8(
        _mm512_permutexvar_epi8(raw, tab[0]),
        _mm512_permutexvar_epi8(hi, tab[1]),
    );
    (quad, _mm512_permutexvar_epi8(hi, tab[2]))
}

/// The loop of the multi-token `Trits5` kernels: for every dot, group and chunk, `decode` turns
/// each of the `RP` panel vectors into what `codes` needs to give k-step `i`'s codes, which are
/// reused for every token.
///
/// # Safety
/// As `mk_bits2`; the CPU has AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn bits16_tokens<const RP: usize, const T: usize, D: Copy>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
    decode: impl Fn(__m512i) -> D,
    codes: impl Fn(D, usize) -> __m512i,
) {
    let cpg = geom.chunks_per_group();
    for d in 0..geom.n_dots() {
        let mut acc = [[_mm512_setzero_si512(); T]; RP];
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..cpg {
                let ks0 = g * geom.group_steps + 5 * c;
                let steps = 5.min(geom.group_steps - 5 * c);
                let decoded: [D; RP] = std::array::from_fn(|p| {
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    decode(unsafe {
                        _mm512_loadu_si512(ptrs.tile.add(geom.vec_offset(g, c, p0 + p)).cast())
                    })
                });
                let mut step = |i: usize| {
                    let code: [__m512i; RP] = std::array::from_fn(|p| codes(decoded[p], i));
                    for t in 0..T {
                        // SAFETY: k-step ks0 + i < n_groups · group_steps, token t0 + t < nt.
                        let x = unsafe { act(ptrs, ks0 + i, t0 + t) };
                        for p in 0..RP {
                            acc[p][t] = _mm512_dpbusd_epi32(acc[p][t], code[p], x);
                        }
                    }
                };
                if steps == 5 {
                    step(0);
                    step(1);
                    step(2);
                    step(3);
                    step(4);
                } else {
                    for i in 0..steps {
                        step(i);
                    }
                }
            }
        }
        // SAFETY: as above.
        unsafe { store::<RP, T>(ptrs, d, p0, t0, &acc) };
    }
}

/// `Trits5`, blocks of up to `T_WIDE` tokens (a call of 2–5, or the last block of a longer
/// one): each panel vector decoded once by `decode16` and its quad split by shifts: fewer
/// operations per vector than `mk_bits16_lookups`, which pays off while the held quads fit the
/// registers.
///
/// # Safety
/// As `mk_bits2`; the CPU has AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
#[inline(never)]
unsafe fn mk_bits16_quads<const RP: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    let m3 = _mm512_set1_epi8(3);
    let tab = tables16();
    let decode = |raw| decode16(raw, &tab);
    let codes = |(quad, fifth): (__m512i, __m512i), i| match i {
        0 => _mm512_and_si512(quad, m3),
        1 => _mm512_and_si512(_mm512_srli_epi16::<2>(quad), m3),
        2 => _mm512_and_si512(_mm512_srli_epi16::<4>(quad), m3),
        3 => _mm512_and_si512(_mm512_srli_epi16::<6>(quad), m3),
        _ => fifth,
    };
    // SAFETY: the caller's contract.
    unsafe { bits16_tokens::<RP, T, _>(ptrs, geom, p0, t0, decode, codes) }
}

/// `Trits5`, more than `T_WIDE` tokens: the codes of each k-step straight from its own lookups
/// (the field of k-step `i` of `quad_lo` and of `quad_hi`, added; `fifth`), which `vpermb` may
/// read from memory, beside the 24 accumulators (`mk_bits16_quads`' shifts and masks of a held
/// quad would spill here).
///
/// # Safety
/// As `mk_bits2`; the CPU has AVX-512 VBMI.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn mk_bits16_lookups<const RP: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    let m3 = _mm512_set1_epi8(3);
    let [quad_lo, quad_hi, fifth] = tables16();
    // Field `i` of every table byte (a 16-bit shift then `& 3`: no bits of the next byte stay).
    let field = |v: __m512i, i: u32| {
        _mm512_and_si512(_mm512_srl_epi16(v, _mm_cvtsi32_si128(2 * i as i32)), m3)
    };
    let lo: [__m512i; 4] = std::array::from_fn(|i| field(quad_lo, i as u32));
    let hi: [__m512i; 4] = std::array::from_fn(|i| field(quad_hi, i as u32));
    let decode = |raw| (raw, high6(raw));
    let codes = |(raw, high): (__m512i, __m512i), i: usize| {
        if i == 4 {
            _mm512_permutexvar_epi8(high, fifth)
        } else {
            _mm512_add_epi8(
                _mm512_permutexvar_epi8(raw, lo[i]),
                _mm512_permutexvar_epi8(high, hi[i]),
            )
        }
    };
    // SAFETY: the caller's contract.
    unsafe { bits16_tokens::<RP, T, _>(ptrs, geom, p0, t0, decode, codes) }
}

/// `Trits5`, one token, all 4 panels: k-steps 0..4 decoded as one `Codes2` byte for `dp_quad`,
/// k-step 4 into `acc[0]` (|4^3 · sum| < 2^31 as in `mk_bits2_t1`: `acc[s]` sees a fifth, `acc[0]`
/// two fifths of a dot's k-steps).
///
/// # Safety
/// As `mk_bits16_quads` with `RP = 4`, `T = 1`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni,avx512vbmi")]
#[inline]
unsafe fn mk_bits16_t1(ptrs: Ptrs, geom: &PanelGeom, t0: usize) {
    const RP: usize = 4;
    let masks = quad_masks();
    let tab = tables16();
    let cpg = geom.chunks_per_group();
    for d in 0..geom.n_dots() {
        let mut acc = [[_mm512_setzero_si512(); 4]; RP];
        for g in d * geom.merge..(d + 1) * geom.merge {
            for c in 0..cpg {
                let ks0 = g * geom.group_steps + 5 * c;
                let steps = 5.min(geom.group_steps - 5 * c);
                // The k-steps of the chunk (a short chunk's others stay 0).
                let mut x = [_mm512_setzero_si512(); 5];
                for (i, xi) in x.iter_mut().enumerate().take(steps) {
                    // SAFETY: k-step ks0 + i < n_groups · group_steps, token t0 < nt.
                    *xi = unsafe { act(ptrs, ks0 + i, t0) };
                }
                let x4 = [x[0], x[1], x[2], x[3]];
                for p in 0..RP {
                    // SAFETY: the vector lies in the tile (checked by `checked_ptrs`).
                    let raw = unsafe {
                        _mm512_loadu_si512(ptrs.tile.add(geom.vec_offset(g, c, p)).cast())
                    };
                    let at = ptrs.tile.wrapping_add(geom.vec_offset(g, c, p));
                    ptrs.prefetch_ahead(at);
                    ptrs.prefetch_ahead_l2(at);
                    let (quad, fifth) = decode16(raw, &tab);
                    // Unused k-steps of a short chunk hold code 1 against x = 0.
                    dp_quad(&mut acc[p], quad, &x4, &masks);
                    acc[p][0] = _mm512_dpbusd_epi32(acc[p][0], fifth, x[4]);
                }
            }
        }
        let sums = acc.map(|a| [unscale(&a)]);
        // SAFETY: as above.
        unsafe { store::<RP, 1>(ptrs, d, 0, t0, &sums) };
    }
}

/// `Trits5` blocks: `mk_bits16_quads` for the 4-panel ones (up to `T_WIDE` tokens),
/// `mk_bits16_lookups` for the 2-panel ones.
///
/// # Safety
/// As `mk_bits16_quads`.
#[inline(always)]
unsafe fn mk_bits16<const P: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    // SAFETY (both): the caller's contract.
    if const { T <= T_WIDE } {
        unsafe { mk_bits16_quads::<P, T>(ptrs, geom, p0, t0) }
    } else {
        unsafe { mk_bits16_lookups::<P, T>(ptrs, geom, p0, t0) }
    }
}

panel_micro_kernel! {
    /// `Codes2` on AVX-512 VNNI.
    struct Vnni2: Codes2, tokens T_WIDE, T_MAX, T_MAX;
    features "avx512f,avx512bw,avx512vnni,f16c", cpu has_vnni(),
        needs "the AVX-512 VNNI panel kernel needs AVX-512 VNNI";
    block mk_bits2, one token mk_bits2_t1: calls true, blocks 0;
}

panel_micro_kernel! {
    /// `Trits5` on AVX-512 VNNI + VBMI.
    struct Vnni16: Trits5, tokens T_WIDE, T_MAX, T_MAX;
    features "avx512f,avx512bw,avx512vnni,avx512vbmi,f16c", cpu has_vbmi(),
        needs "the 1.6-bit panel kernel needs AVX-512 VNNI and VBMI";
    block mk_bits16, one token mk_bits16_t1: calls true, blocks 0;
}

pub fn has_vnni() -> bool {
    crate::kernel::Isa::Avx512Vnni.is_available()
}

pub fn has_vbmi() -> bool {
    has_vnni() && std::arch::is_x86_feature_detected!("avx512vbmi")
}

/// AVX-512 VNNI panel dots (`PanelDotsFn`), both layouts (`Trits5` needs VBMI too).
pub fn panel_dots_vnni(
    geom: &PanelGeom,
    tiles: &[u8],
    n_tiles: usize,
    acts: &[i8],
    n_tokens: usize,
    dots: &mut [i32],
    scaling: Option<&mut TileScaling>,
) {
    match geom.kind {
        // `Bits1` has no kernel on this level: `Vnni2` refuses it.
        PanelKind::Codes2 | PanelKind::Bits1 => {
            panel_dots::<Vnni2>(geom, tiles, n_tiles, acts, n_tokens, dots, scaling)
        }
        PanelKind::Trits5 => {
            panel_dots::<Vnni16>(geom, tiles, n_tiles, acts, n_tokens, dots, scaling)
        }
    }
}
