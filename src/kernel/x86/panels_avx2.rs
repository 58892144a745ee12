//! 256-bit panel kernels for the AVX2 level (`PanelDotsFn`, `Codes2` and `Bits1`) and the 256-bit
//! helpers the AVX-VNNI ones (`panels_avxvnni`) share. Lanes are still rows: a ymm holds half a panel vector (bytes
//! 0..32 = rows 0..8, 32..64 = rows 8..16, one k-step of 4 columns each). `Trits5` needs
//! `vpermb` (AVX-512 VBMI) and has no kernel here. `Bits1` (Q1_0's sign bits) reads half the bytes
//! of `Codes2` and decodes each k-step with one table lookup (`sign_codes`), where a `Codes2`
//! k-step takes a shift and a mask.
//!
//! Plain AVX2 micro-kernels (no VNNI): `vpmaddubsw` of a half panel's codes against a token's
//! broadcast k-step gives 16 int16 pair sums (|·| ≤ 2·3·128 = 768 with codes ≤ 3, never
//! saturating), added up
//! in int16 for `WIDEN_STEPS` k-steps and then widened into the int32 sums in `dots` by
//! `vpmaddwd` with ones: 2 operations per 32 products plus the decode, shared by the tokens
//! (the row kernel of `avx2.rs` decodes per row and widens more often). With per-group scales
//! (`TileScaling`) and dots of at most `WIDEN_STEPS` k-steps (per-block formats), each dot is
//! scaled into the results as it is widened (`panel_scaling::scale_dot`): no dots are written,
//! which keeps a block's working set in L1 (with 6912 columns, a one-token tile's 216 Q8_0-order
//! dots would take 55 KiB).
//! Blocking: 1 token × all 4 panels (8 int16 accumulators, one sequential pass), 2 tokens × 2
//! panels, 3–4 tokens × 1 panel (≤ 8 accumulators + 2 raw + 2 codes + 1 broadcast + the mask:
//! 14 ymm). With 5 tokens (16 ymm on paper) the compiled loop spills, as `vpmaddubsw` and the
//! int16 add need a temporary the VNNI kernels' `vpdpbusd` does not, so blocks stop at 4.
#![allow(clippy::needless_range_loop)]

use std::arch::x86_64::*;

use crate::kernel::Isa;
use crate::kernel::panel::driver::{Ptrs, ScalePtrs, panel_micro_kernel};
use crate::kernel::panel::{PANEL_ROWS, PANELS, PanelGeom, VEC_BYTES};
use crate::kernel::x86::panel_scaling::{
    PER_DOT, PER_DOT_BLOCK, Q8_0_ORDER, UNSCALED, clear_results, opaque, scale_dot, scale_dot_q8_0,
    scale_mode,
};

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

/// `SIGN_CODES[s]`: the code of k-step `s` of each nibble value `n` of a `Bits1` byte,
/// `2·((n >> s) & 1)`, in both 128-bit lanes (`vpshufb` looks up within a lane).
static SIGN_CODES: [[u8; 32]; 4] = {
    let mut tables = [[0u8; 32]; 4];
    let mut i = 0;
    while i < 4 * 32 {
        let (s, n) = (i / 32, i % 16);
        tables[s][i % 32] = 2 * ((n >> s) & 1) as u8;
        i += 1;
    }
    tables
};

/// The codes of k-step `s < 4` of a vector of `Bits1` nibbles (bytes < 16), by table: one
/// `vpshufb` per k-step, where shifting each k-step's bit into place and masking it takes two
/// (the nibbles cost an `and`, and the high ones a shift, per four k-steps). The table is read
/// from memory each time: with four of them the accumulators would not fit in the registers.
#[target_feature(enable = "avx2")]
#[inline]
fn sign_codes(nibbles: __m256i, s: usize) -> __m256i {
    // SAFETY: 32 bytes of a static table.
    let table = unsafe { _mm256_loadu_si256(SIGN_CODES[s].as_ptr().cast()) };
    _mm256_shuffle_epi8(table, nibbles)
}

/// K-steps summed in int16 before widening: 32 k-steps · 768 = 24576 < 2^15 (a k-step adds one
/// pair sum to each int16 lane; codes ≤ 3).
const WIDEN_STEPS: usize = 32;

/// Whether these micro-kernels scale the dots of `geom` as each dot ends (`scale_dot`): where
/// every dot is one run of int16 sums, widened once.
pub(super) fn scales_dots(geom: &PanelGeom) -> bool {
    geom.merge * geom.group_steps <= WIDEN_STEPS
}

/// Widens the int16 sums `acc16` (panels `p0..p0+P`, halves, tokens `t0..`) of dot `d` into
/// its int32 sums in `dots` (the first widening of a dot stores them, later ones add to them),
/// and clears them.
///
/// # Safety
/// As `store`, for panels `p0..p0+P`.
#[target_feature(enable = "avx2,fma,f16c")]
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
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mk<const P: usize, const T: usize>(ptrs: Ptrs, geom: &PanelGeom, p0: usize, t0: usize) {
    // SAFETY: the function contract.
    unsafe { mk_scaling::<P, T, 4>(ptrs, geom, p0, t0) }
}

/// `Bits1` panels `p0..p0+P` × tokens `t0..t0+T` (`mk_steps`).
///
/// # Safety
/// As `mk_steps`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mk_bits1<const P: usize, const T: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    // SAFETY: the function contract.
    unsafe { mk_scaling::<P, T, 8>(ptrs, geom, p0, t0) }
}

/// `mk_steps` with the call's scaling mode (`scale_mode`) as its constant `SCALE`.
///
/// # Safety
/// As `mk_steps`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mk_scaling<const P: usize, const T: usize, const STEPS: usize>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    // SAFETY: the function contract.
    unsafe {
        match scale_mode(ptrs) {
            PER_DOT => mk_steps::<P, T, STEPS, PER_DOT>(ptrs, geom, p0, t0),
            PER_DOT_BLOCK => mk_steps::<P, T, STEPS, PER_DOT_BLOCK>(ptrs, geom, p0, t0),
            Q8_0_ORDER => mk_steps::<P, T, STEPS, Q8_0_ORDER>(ptrs, geom, p0, t0),
            _ => mk_steps::<P, T, STEPS, UNSCALED>(ptrs, geom, p0, t0),
        }
    }
}

/// Panels `p0..p0+P` × tokens `t0..t0+T`, every dot, chunks of `STEPS` k-steps (4: `Codes2`,
/// 8: `Bits1`); the int32 sums accumulate in `dots`, or (`SCALE`, not `UNSCALED`: the call
/// scales in the kernel) each dot is scaled into the results as it ends. (One instance per
/// `SCALE`: the scaling code in the loops of the unscaled one makes LLVM spill there.)
///
/// # Safety
/// `ptrs` checked by `checked_ptrs` against `geom`; `p0 + P ≤ 4`, `t0 + T ≤ nt`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn mk_steps<const P: usize, const T: usize, const STEPS: usize, const SCALE: u8>(
    ptrs: Ptrs,
    geom: &PanelGeom,
    p0: usize,
    t0: usize,
) {
    let mask = _mm256_set1_epi8(if STEPS == 4 { 3 } else { 0x0f });
    let widen_chunks = WIDEN_STEPS / STEPS;
    // Groups are whole chunks (checked by `checked_ptrs`): no division in the loops.
    let chunks = geom.group_steps / STEPS;
    let dot_chunks = geom.merge * chunks;
    let at = (p0, t0, mask);
    // SAFETY (every call below): the function contract; the chunks lie in the tile.
    unsafe {
        if SCALE != UNSCALED
            && let Some(s) = ptrs.scaling
        {
            // Every dot is one run of chunks (`scales_dots`). The per-block formats' runs
            // (Q2_0: 4 or 2 chunks, Q1_0: 4 or 1) have a constant length, so that their chunks
            // are straight code: the loops took 6 % of Q2_0's instructions at 128 tokens. At
            // one token (4 panels a chunk) four chunks in a row spill: +5 %, so a loop there.
            match (STEPS, dot_chunks) {
                (4, 4) if T > 1 => scaled_dots::<P, T, STEPS, SCALE, 4>(&s, ptrs, at, 4),
                (4, 2) => scaled_dots::<P, T, STEPS, SCALE, 2>(&s, ptrs, at, 2),
                (8, 1) => scaled_dots::<P, T, STEPS, SCALE, 1>(&s, ptrs, at, 1),
                (8, 4) if T > 1 => scaled_dots::<P, T, STEPS, SCALE, 4>(&s, ptrs, at, 4),
                _ => scaled_dots::<P, T, STEPS, SCALE, 0>(&s, ptrs, at, dot_chunks),
            }
            return;
        }
        if (STEPS == 4 || T > 1) && dot_chunks <= widen_chunks {
            // Short dots (per-block scales of 32 to 128 columns): one run of chunks, one
            // widening. (`Bits1`'s two passes per chunk spill in this loop at one token.)
            for d in 0..ptrs.nd {
                let mut acc16 = dot_sums::<P, T, STEPS, 0>(ptrs, d, dot_chunks, at);
                widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, true);
            }
            return;
        }
        for d in 0..ptrs.nd {
            let mut acc16 = [[[_mm256_setzero_si256(); T]; 2]; P];
            let mut pending = 0;
            let mut first = true;
            for g in d * geom.merge..(d + 1) * geom.merge {
                for c in 0..chunks {
                    chunk_sums::<P, T, STEPS>(ptrs, g * chunks + c, at, &mut acc16, false);
                    pending += 1;
                    if pending == widen_chunks {
                        widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, first);
                        (pending, first) = (0, false);
                    }
                }
            }
            if pending > 0 {
                widen::<P, T>(ptrs, (d, p0, t0), &mut acc16, first);
            }
        }
    }
}

/// Chunk `chunk` of panels `p0..p0+P` × tokens `t0..t0+T` (`at`: `(p0, t0, mask)`) into the
/// int16 sums `acc16` (`ordered`, a constant where it is inlined: each sum kept in k-step order
/// at one token too, `chunk_pass`; a value rather than a const parameter, with which LLVM
/// compiled other instances of `mk_steps` differently, spilling in some).
///
/// # Safety
/// As `chunk_pass`.
#[inline(always)]
unsafe fn chunk_sums<const P: usize, const T: usize, const STEPS: usize>(
    ptrs: Ptrs,
    chunk: usize,
    at: (usize, usize, __m256i),
    acc16: &mut [[[__m256i; T]; 2]; P],
    ordered: bool,
) {
    // SAFETY: the function contract.
    unsafe {
        if STEPS == 4 {
            chunk_pass::<P, T, false, false>(ptrs, (chunk, chunk * 4), at, acc16, ordered);
        } else {
            // A `Bits1` byte as two nibbles, each pass reloading the vectors from L1, so that
            // each has `Codes2`'s shape: the panels unrolled with their accumulators in
            // registers, the k-steps straight code.
            chunk_pass::<P, T, true, false>(ptrs, (chunk, chunk * 8), at, acc16, ordered);
            chunk_pass::<P, T, true, true>(ptrs, (chunk, chunk * 8 + 4), at, acc16, ordered);
        }
    }
}

/// The int16 sums of dot `d`, one run of `N` chunks (1, 2 or 4; `dot_chunks` when `N` is 0).
///
/// # Safety
/// As `chunk_pass`, for every chunk of the dot.
#[inline(always)]
unsafe fn dot_sums<const P: usize, const T: usize, const STEPS: usize, const N: usize>(
    ptrs: Ptrs,
    d: usize,
    dot_chunks: usize,
    at: (usize, usize, __m256i),
) -> [[[__m256i; T]; 2]; P] {
    // SAFETY: the function contract.
    unsafe {
        let mut acc16 = [[[_mm256_setzero_si256(); T]; 2]; P];
        let acc = &mut acc16;
        // The constant runs written out: LLVM does not unroll a loop of bodies this size.
        match N {
            1 => chunk_sums::<P, T, STEPS>(ptrs, d, at, acc, false),
            2 => {
                // In k-step order at one token too (`chunk_pass`): there LLVM's schedule of
                // two chunks in a row spilled some of their weight vectors (Q2_0 under
                // `TERN_COMPAT_GGML`: 4.5 % more instructions). Every other run of chunks is
                // as fast or faster without.
                chunk_sums::<P, T, STEPS>(ptrs, 2 * d, at, acc, true);
                chunk_sums::<P, T, STEPS>(ptrs, 2 * d + 1, at, acc, true);
            }
            4 => {
                chunk_sums::<P, T, STEPS>(ptrs, 4 * d, at, acc, false);
                chunk_sums::<P, T, STEPS>(ptrs, 4 * d + 1, at, acc, false);
                chunk_sums::<P, T, STEPS>(ptrs, 4 * d + 2, at, acc, false);
                chunk_sums::<P, T, STEPS>(ptrs, 4 * d + 3, at, acc, false);
            }
            _ => {
                for chunk in d * dot_chunks..(d + 1) * dot_chunks {
                    chunk_sums::<P, T, STEPS>(ptrs, chunk, at, acc, false);
                }
            }
        }
        acc16
    }
}

/// Every dot of panels `p0..p0+P` × tokens `t0..t0+T` (`at`: `(p0, t0, mask)`; `dot_sums`
/// with `N`), in order, scaled into the results as each ends (`SCALE`: the call's
/// `scale_mode`).
///
/// # Safety
/// As `mk_steps`, with `s` the call's scaling (`in_kernel`).
#[inline(always)]
unsafe fn scaled_dots<
    const P: usize,
    const T: usize,
    const STEPS: usize,
    const SCALE: u8,
    const N: usize,
>(
    s: &ScalePtrs,
    ptrs: Ptrs,
    at: (usize, usize, __m256i),
    dot_chunks: usize,
) {
    let (p0, t0, _) = at;
    let dot = |d: usize| {
        // SAFETY: the function contract.
        unsafe { dot_sums::<P, T, STEPS, N>(ptrs, d, dot_chunks, at) }
    };
    // SAFETY (the scaling calls): the function contract; each block's dots in order, from
    // results cleared first.
    unsafe {
        clear_results::<P, T>(s, p0, t0);
        if SCALE != Q8_0_ORDER {
            for d in 0..ptrs.nd {
                let (acc16, which) = (dot(d), (d, p0, t0));
                if SCALE == PER_DOT_BLOCK {
                    scale_dot::<P, T, true>(s, ptrs.nd, which, &acc16);
                } else {
                    scale_dot::<P, T, false>(s, ptrs.nd, which, &acc16);
                }
            }
            return;
        }
        let per_block = s.q8_0_block;
        let mut partials = [[[_mm256_setzero_ps(); T]; 2]; P];
        for block in 0..ptrs.nd / per_block {
            for j in 0..per_block {
                let d = block * per_block + j;
                let (acc16, which) = (dot(d), (d, block, p0, t0));
                let (nd, sumi) = (ptrs.nd, opaque(&raw mut partials));
                match (j == 0, j + 1 == per_block) {
                    (true, false) => {
                        scale_dot_q8_0::<P, T, true, false>(s, nd, which, &acc16, sumi)
                    }
                    (false, false) => {
                        scale_dot_q8_0::<P, T, false, false>(s, nd, which, &acc16, sumi)
                    }
                    (false, true) => {
                        scale_dot_q8_0::<P, T, false, true>(s, nd, which, &acc16, sumi)
                    }
                    (true, true) => scale_dot_q8_0::<P, T, true, true>(s, nd, which, &acc16, sumi),
                }
            }
        }
    }
}

/// Four k-steps from `ks0` of panels `p0..p0+P` × tokens `t0..t0+T` of chunk `chunk`: the
/// `Codes2` byte vectors (`mask` 3), or (`BITS1`) the low or (`HIGH`) high nibbles of the
/// `Bits1` ones (`mask` 0x0f), into the int16 sums `acc16` (`ordered`: as `chunk_sums`).
///
/// Always inlined, without features of its own (as `scale_dot`): LLVM's inliner, left to
/// choose, outlines it from some instances of `mk_steps` (`Bits1`'s two passes per chunk), and
/// the call spills every accumulator (+24 % instructions).
///
/// # Safety
/// As `mk_steps`; the chunk lies in the tile and k-steps `ks0..ks0 + 4` in the activations;
/// called from code compiled with AVX2.
#[inline(always)]
unsafe fn chunk_pass<const P: usize, const T: usize, const BITS1: bool, const HIGH: bool>(
    ptrs: Ptrs,
    (chunk, ks0): (usize, usize),
    (p0, t0, mask): (usize, usize, __m256i),
    acc16: &mut [[[__m256i; T]; 2]; P],
    ordered: bool,
) {
    // SAFETY (the intrinsics and reads): the function contract; every vector read lies in the
    // tile, every k-step ks0 + s < n_groups · group_steps, every token t0 + t < nt.
    unsafe {
        for p in 0..P {
            let at = ptrs
                .tile
                .wrapping_add((chunk * PANELS + p0 + p) * VEC_BYTES);
            if !HIGH {
                ptrs.prefetch_ahead(at);
            }
            let raw = halves(at);
            let raw = match (BITS1, HIGH) {
                (true, false) => raw.map(|v| _mm256_and_si256(v, mask)),
                (true, true) => raw.map(|v| _mm256_and_si256(_mm256_srli_epi16::<4>(v), mask)),
                _ => raw,
            };
            for s in 0..4 {
                let code = raw.map(|v| {
                    if BITS1 {
                        sign_codes(v, s)
                    } else {
                        codes(v, s, mask)
                    }
                });
                for t in 0..T {
                    let x = act(ptrs, ks0 + s, t0 + t);
                    for h in 0..2 {
                        let a = &mut acc16[p][h][t];
                        let sum = _mm256_add_epi16(*a, _mm256_maddubs_epi16(code[h], x));
                        // With several tokens LLVM reassociates the adds of consecutive
                        // k-steps (products summed first, for shorter chains) and runs out of
                        // ymm registers: 5 accumulators spilled and reloaded per chunk at 4
                        // tokens. (At one token its schedule is mostly no worse without:
                        // `ordered` where it is.)
                        *a = if T > 1 || ordered {
                            in_k_step_order(sum)
                        } else {
                            sum
                        };
                    }
                }
            }
        }
    }
}

/// `sum`, unchanged, through an empty asm (no memory, no flags), which keeps the additions
/// that made it in their order.
#[target_feature(enable = "avx2")]
#[inline]
fn in_k_step_order(mut sum: __m256i) -> __m256i {
    // SAFETY: an empty template; the register comes back unchanged.
    unsafe {
        std::arch::asm!("/* {0} */", inout(ymm_reg) sum, options(pure, nomem, nostack, preserves_flags));
    }
    sum
}

panel_micro_kernel! {
    /// `Codes2` on AVX2: `mk` for every block.
    struct Avx2: Codes2, tokens 1, 2, 4;
    features "avx2,fma,f16c", cpu Isa::Avx2.is_available(), needs "the AVX2 panel kernel needs AVX2, FMA and F16C";
    block mk;
    scales dots scales_dots;
    /// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Codes2`.
    pub fn panel_dots_avx2;
}

panel_micro_kernel! {
    /// `Bits1` on AVX2: `mk_bits1` for every block.
    struct Avx2Bits1: Bits1, tokens 1, 2, 4;
    features "avx2,fma,f16c", cpu Isa::Avx2.is_available(), needs "the AVX2 panel kernel needs AVX2, FMA and F16C";
    block mk_bits1;
    scales dots scales_dots;
    /// AVX2 panel dots (`PanelDotsFn`, `vpmaddubsw`), `Bits1`.
    pub fn panel_dots_avx2_bits1;
}
