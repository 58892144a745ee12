//! TL1 (bitnet.cpp ARM look-up-table format; spec `bitnet_cpp.md` §3), byte-exact with the
//! converter's `transform_to_tl1` and the runtime buffer of the generated NEON kernels.
//!
//! # Encoding and layout
//!
//! Weights go in pairs along a row: `(W[r][2p], W[r][2p+1])` → index `3·w0 + w1 + 4` ∈ 0..=8, two
//! indices per byte (the first pair of the byte in the high nibble). With a tiling `BM` (rows per
//! tile), `BK` (columns per block) and `bm` ∈ {32, 64} (`by = 256/bm`), the bytes are written in
//! this loop order, outermost first:
//!
//! ```text
//! for tile in 0..M/BM, kb in 0..K/BK, rb in 0..BM/bm, c in 0..BK/by, rg in 0..bm/16, a in 0..by/4, r16 in 0..16:
//!     r     = tile·BM + rb·bm + 16·rg + r16
//!     pair0 = (kb·BK + c·by)/2 + 2·a
//!     byte  = (pidx[r][pair0] << 4) | pidx[r][pair0 + 1]
//! ```
//!
//! The runtime buffer is `M·K/4 + 32` bytes: the `M·K/4` payload, the f32 tensor scale at byte
//! `M·K/4` (in a GGUF it is the companion `<name>_scale` tensor, §3.5), then 28 zero bytes.
//!
//! # Tiling rules (`check_tiling`)
//!
//! bitnet.cpp's: `bm` ∈ {32, 64}, `BM` a multiple of `bm`, `BK` a multiple of `by`, `M % BM == 0`,
//! `K % BK == 0`. tern adds: `BK ≤ 256` (a block's int16 partial sums, `BK/2` pairs of at most
//! ±254, must not wrap) and, for bitnet layouts, `K % 16 == 0` (the LUT builder consumes 16
//! activations per step; other `K` are padded, below).
//!
//! # tern extension: zero padding for shapes bitnet.cpp cannot store
//!
//! A shape can be stored by bitnet.cpp iff `M % 32 == 0` (rows) and `K % 16 == 0` (columns). Each
//! dimension that fails is padded with zero weights, and only then:
//!
//! * rows: `Mp = round_up(M, BM)` (needs `BM ≤ round_up(M, bm)`, so no tile is all padding);
//! * columns: `Kp = round_up(K, lcm(BK, 16))` (needs `BK ≤ round_up(K, 16)`).
//!
//! A dimension bitnet.cpp can store is never padded (`M % BM == 0`, `K % BK == 0` are required).
//! The padded buffer is exactly bitnet.cpp's buffer for the zero-padded `Mp × Kp` matrix: payload
//! `Mp·Kp/4` bytes laid out as above with `Mp`, `Kp` in place of `M`, `K`, scale at byte
//! `Mp·Kp/4`, total `Mp·Kp/4 + 32`. Padded cells hold weight 0 (pair digit 0); `validate` rejects
//! anything else there. Kernels run on the padded matrix with activations `x[K..Kp] = 0` and drop
//! the outputs of rows `M..Mp`.
//!
//! # Kernel arithmetic (`lut_scale`, `build_lut`, `lut_gemv`)
//!
//! Per token `s = 127 / max|x|` (f32, NaN propagates as in NEON `fmax`), `q = round_half_even(x·s)`
//! (`vcvtnq_s32_f32`, narrowed to int16). For each pair the LUT holds the int16 entries
//! `[−b0−b1, −b0, −b0+b1, −b1, 0, b1, b0−b1, b0, b0+b1]` (9..15 zero here; uninitialised in
//! bitnet.cpp, never indexed by valid data), stored as 16 high bytes then 16 low bytes. A row sums
//! its entries in int16 per `BK` block, then in int32 across blocks;
//! `y = (int32 sum) as f32 / s · w_scale`.

use super::tl_common::{
    TAIL_BYTES, check_len, check_padded, check_scale_tail, divisor_multiples, fold_blocks, gcd,
    largest_divisor_multiple, list, pair_digits, pair_entries_i32, pair_index, round_up,
};
use super::{Format, FormatSpec, GgufId, Layout, Params, Peer, Shape, Values, no_variant};
use crate::error::{Error, Result};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::Tl1,
    name: "TL1",
    values: Values::Ternary,
    compact_panels: false,
    per_block_scales: false,
    f16_scales: false,
    peer: Peer::BitnetLut,
    gguf_id: GgufId::Bitnet(38),
    file_type: 38,
    tiling: Some(tiling),
    layout: |variant, tiling| no_variant("TL1", variant).map(|_| Layout::Tl1(tiling)),
    check_shape: |p, shape| tiling(p, shape).map(|_| ()),
    packed_size: |p, shape| Ok(packed_size(&tiling(p, shape)?, shape)),
    elements_per_scale: Shape::elements,
    pack: |p, shape, ternary, scales, dst| {
        pack(&tiling(p, shape)?, shape, ternary, scales[0], dst);
        Ok(())
    },
    validate: |p, shape, src| Ok(vec![validate(&tiling(p, shape)?, shape, src)?]),
    unpack: |p, shape, src, ternary| {
        unpack(&tiling(p, shape)?, shape, src, ternary);
        Ok(())
    },
};

/// The tiling of a layout for `shape`: the caller's (checked) or the library's choice.
fn tiling(p: Params, shape: Shape) -> Result<Tiling> {
    match p.tiling {
        Some(t) => check_tiling(&t, shape).map(|_| t),
        None => choose_tiling(shape),
    }
}

pub use super::tl_common::Tiling;

const NAME: &str = "TL1";

/// Largest `BK`: `BK/2` pairs of at most ±254 must fit the kernels' int16 block sums.
pub const MAX_TILE_K: usize = 256;

/// Rows and columns bitnet.cpp can store: `M` a multiple of this (the smallest `BM`) ...
const ROW_GRANULE: usize = 32;
/// ... and `K` a multiple of this (the LUT builder's step).
const COL_GRANULE: usize = 16;

/// bitnet.cpp's preset TL1 tilings (`preset_kernels/`, spec §3.6): `(M, K, BM, BK, bm)`.
const PRESETS: &[(usize, usize, usize, usize, usize)] = &[
    // bitnet_b1_58-large
    (1536, 4096, 256, 128, 32),
    (1536, 1536, 128, 64, 64),
    (4096, 1536, 256, 128, 32),
    // bitnet_b1_58-3B
    (3200, 8640, 160, 64, 32),
    (3200, 3200, 320, 128, 64),
    (8640, 3200, 320, 64, 32),
    // Llama3-8B-1.58-100B-tokens (also Falcon3 / Falcon-E)
    (14336, 4096, 256, 128, 64),
    (4096, 14336, 256, 128, 32),
    (1024, 4096, 128, 64, 64),
    (4096, 4096, 128, 64, 32),
];

/// The stored (padded) shape `(Mp, Kp)`; equal to `(M, K)` for every bitnet.cpp layout.
pub fn padded_shape(t: &Tiling, shape: Shape) -> (usize, usize) {
    let lcm = t.tile_k / gcd(t.tile_k, COL_GRANULE) * COL_GRANULE;
    (round_up(shape.rows, t.tile_rows), round_up(shape.cols, lcm))
}

/// Whether the buffer is exactly what bitnet.cpp would use for this shape (no tern padding).
/// Meaningful for a tiling that passed `check_tiling`.
pub fn is_bitnet_layout(t: &Tiling, shape: Shape) -> bool {
    padded_shape(t, shape) == (shape.rows, shape.cols)
}

/// Checks a tiling against bitnet.cpp's constraints (and tern's padding rules, module doc).
pub fn check_tiling(t: &Tiling, shape: Shape) -> Result<()> {
    let (big_m, bk, bm) = (t.tile_rows, t.tile_k, t.simd_rows);
    let (m, k) = (shape.rows, shape.cols);
    if bm != 32 && bm != 64 {
        return Err(Error::invalid(format!(
            "TL1 simd_rows (bm) = {bm} is not allowed (bitnet.cpp allows 32 or 64)"
        )));
    }
    let by = 256 / bm;
    if big_m == 0 || !big_m.is_multiple_of(bm) {
        return Err(Error::invalid(format!(
            "TL1 tile_rows (BM) = {big_m} must be a positive multiple of simd_rows (bm) = {bm}"
        )));
    }
    if bk == 0 || !bk.is_multiple_of(by) || bk > MAX_TILE_K {
        return Err(Error::invalid(format!(
            "TL1 tile_k (BK) = {bk} must be a positive multiple of 256/bm = {by} and at most {MAX_TILE_K} \
             (larger blocks can overflow the kernel's int16 partial sums)"
        )));
    }
    if m.is_multiple_of(ROW_GRANULE) {
        if !m.is_multiple_of(big_m) {
            let allowed = divisor_multiples(m, bm, m);
            return Err(Error::invalid(if allowed.is_empty() {
                format!(
                    "TL1 needs M % BM == 0 (bitnet.cpp), but with bm = {bm} no BM divides M = {m}; use bm = 32"
                )
            } else {
                format!(
                    "TL1 needs M % BM == 0 (bitnet.cpp): BM = {big_m} does not divide M = {m}; \
                     allowed BM with bm = {bm}: {}",
                    list(&allowed)
                )
            }));
        }
    } else if big_m > round_up(m, bm) {
        return Err(Error::invalid(format!(
            "TL1: M = {m} is not a multiple of {ROW_GRANULE}, so tern pads the rows to a multiple of BM; \
             BM = {big_m} would add a tile of padding only (allowed: multiples of bm = {bm} up to {})",
            round_up(m, bm)
        )));
    }
    if k.is_multiple_of(COL_GRANULE) {
        if !k.is_multiple_of(bk) {
            return Err(Error::invalid(format!(
                "TL1 needs K % BK == 0 (bitnet.cpp): BK = {bk} does not divide K = {k}; \
                 allowed BK with bm = {bm}: {}",
                list(&divisor_multiples(k, by, MAX_TILE_K))
            )));
        }
    } else if bk > round_up(k, COL_GRANULE) {
        return Err(Error::invalid(format!(
            "TL1: K = {k} is not a multiple of {COL_GRANULE}, so tern pads the columns; BK = {bk} would \
             add a block of padding only (allowed: multiples of {by} up to {})",
            round_up(k, COL_GRANULE)
        )));
    }
    let (mp, kp) = padded_shape(t, shape);
    check_padded(NAME, mp, kp)
}

/// A valid tiling for any shape: bitnet.cpp's preset for its model shapes, otherwise `bm = 64`
/// when `M % 64 == 0` (else 32), `BM` the largest multiple of `bm` ≤ 256 dividing the (padded)
/// rows, `BK` the largest multiple of 16 ≤ 128 dividing the (padded) columns. Padding (module
/// doc) is used only for shapes bitnet.cpp cannot store, and is minimal.
pub fn choose_tiling(shape: Shape) -> Result<Tiling> {
    let (m, k) = (shape.rows, shape.cols);
    let t = match PRESETS.iter().find(|p| p.0 == m && p.1 == k) {
        Some(&(_, _, big_m, bk, bm)) => Tiling::new(big_m, bk, bm),
        None => {
            let bm = if m.is_multiple_of(64) { 64 } else { 32 };
            let mp = round_up(m, ROW_GRANULE);
            let kp = round_up(k, COL_GRANULE);
            Tiling::new(
                largest_divisor_multiple(mp, bm, 256),
                largest_divisor_multiple(kp, COL_GRANULE, 128),
                bm,
            )
        }
    };
    check_tiling(&t, shape)?;
    Ok(t)
}

/// Byte offset of the f32 scale in the runtime buffer (`Mp·Kp/4`).
pub fn scale_offset(t: &Tiling, shape: Shape) -> usize {
    let (mp, kp) = padded_shape(t, shape);
    mp * kp / 4
}

/// Bytes of the runtime buffer: `Mp·Kp/4 + 32` (`M·K/4 + 32` for bitnet layouts).
pub fn packed_size(t: &Tiling, shape: Shape) -> usize {
    scale_offset(t, shape) + TAIL_BYTES
}

/// Calls `f(byte, row, pair0)` for every payload byte in storage order; the byte holds the pair
/// indices of `pair0` (high nibble) and `pair0 + 1` (low nibble) of `row` (padded coordinates).
fn each_byte(t: &Tiling, mp: usize, kp: usize, mut f: impl FnMut(usize, usize, usize)) {
    let (big_m, bk, bm) = (t.tile_rows, t.tile_k, t.simd_rows);
    let by = 256 / bm;
    let mut byte = 0;
    for tile in 0..mp / big_m {
        for kb in 0..kp / bk {
            for rb in 0..big_m / bm {
                for c in 0..bk / by {
                    let pair_base = (kb * bk + c * by) / 2;
                    for rg in 0..bm / 16 {
                        let row_base = tile * big_m + rb * bm + 16 * rg;
                        for a in 0..by / 4 {
                            for r16 in 0..16 {
                                f(byte, row_base + r16, pair_base + 2 * a);
                                byte += 1;
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Packs ternary values (row-major `rows × cols`, each in {-1, 0, 1}, checked by the caller) and
/// the tensor scale into `dst`, which must be exactly `packed_size` bytes. The tiling must have
/// passed `check_tiling`.
pub fn pack(t: &Tiling, shape: Shape, ternary: &[i8], scale: f32, dst: &mut [u8]) {
    let (m, k) = (shape.rows, shape.cols);
    let (mp, kp) = padded_shape(t, shape);
    let n = mp * kp / 4;
    assert_eq!(
        dst.len(),
        n + TAIL_BYTES,
        "TL1 pack: dst must be packed_size bytes"
    );
    let ternary = &ternary[..m * k];
    let w = |r: usize, c: usize| {
        if r < m && c < k {
            ternary[r * k + c]
        } else {
            0
        }
    };
    each_byte(t, mp, kp, |b, r, p| {
        let hi = pair_index(w(r, 2 * p), w(r, 2 * p + 1));
        let lo = pair_index(w(r, 2 * p + 2), w(r, 2 * p + 3));
        dst[b] = (hi << 4) | lo;
    });
    dst[n..n + 4].copy_from_slice(&scale.to_le_bytes());
    dst[n + 4..].fill(0);
}

/// Checks a packed buffer (at least `packed_size` bytes) and returns its scale. Detects pair
/// indices 9..15, nonzero weights in tern's padding, a non-finite or negative scale and nonzero
/// reserved bytes after it; messages name the byte offset.
pub fn validate(t: &Tiling, shape: Shape, src: &[u8]) -> Result<f32> {
    let (m, k) = (shape.rows, shape.cols);
    let (mp, kp) = padded_shape(t, shape);
    let n = mp * kp / 4;
    check_len(NAME, src, n + TAIL_BYTES)?;
    if let Some(pos) = src[..n].iter().position(|&b| b >> 4 > 8 || b & 15 > 8) {
        let nib = if src[pos] >> 4 > 8 {
            src[pos] >> 4
        } else {
            src[pos] & 15
        };
        return Err(Error::invalid(format!(
            "corrupt TL1 data: byte {pos} = {:#04x} holds the pair index {nib}; TL1 pair indices are 0..=8",
            src[pos]
        )));
    }
    if (mp, kp) != (m, k) {
        let mut bad: Option<(usize, usize, usize)> = None;
        each_byte(t, mp, kp, |b, r, p| {
            if bad.is_some() || (r < m && 2 * p + 4 <= k) {
                return;
            }
            let (w0, w1) = pair_digits(src[b] >> 4);
            let (w2, w3) = pair_digits(src[b] & 15);
            for (j, w) in [w0, w1, w2, w3].into_iter().enumerate() {
                let c = 2 * p + j;
                if w != 0 && (r >= m || c >= k) {
                    bad = Some((b, r, c));
                    return;
                }
            }
        });
        if let Some((b, r, c)) = bad {
            return Err(Error::invalid(format!(
                "corrupt TL1 data: byte {b} encodes a nonzero weight at row {r}, column {c}, which lies in \
                 tern's zero padding (the matrix is {m}×{k}, stored padded to {mp}×{kp})"
            )));
        }
    }
    check_scale_tail(NAME, src, n)
}

/// Inverse of `pack` for a buffer that passed `validate`: writes the `rows·cols` ternary values.
pub fn unpack(t: &Tiling, shape: Shape, src: &[u8], ternary: &mut [i8]) {
    let (m, k) = (shape.rows, shape.cols);
    let (mp, kp) = padded_shape(t, shape);
    let ternary = &mut ternary[..m * k];
    each_byte(t, mp, kp, |b, r, p| {
        if r >= m {
            return;
        }
        let (w0, w1) = pair_digits(src[b] >> 4);
        let (w2, w3) = pair_digits(src[b] & 15);
        for (j, w) in [w0, w1, w2, w3].into_iter().enumerate() {
            let c = 2 * p + j;
            if c < k {
                ternary[r * k + c] = w;
            }
        }
    });
}

/// `127 / max|x|` as the NEON `per_tensor_quant` computes it (f32, no epsilon; a NaN in `x` makes
/// it NaN, all-zero `x` makes it +inf).
pub fn lut_scale(x: &[f32]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, v| {
        let a = v.abs();
        if m.is_nan() || a.is_nan() {
            f32::NAN
        } else {
            m.max(a)
        }
    });
    127.0 / max
}

/// One activation as the LUT builder quantises it: `vcvtnq_s32_f32(x·s)` (nearest, ties to even,
/// saturating, NaN → 0) narrowed to int16 by `vmovn_s32`.
fn quantize(x: f32, lut_scale: f32) -> i16 {
    ((x * lut_scale).round_ties_even() as i32) as i16
}

/// The int16 entries of one pair's table (9..15 zero).
fn pair_table(b0: i16, b1: i16) -> [i16; 16] {
    pair_entries_i32(b0 as i32, b1 as i32).map(|e| e as i16)
}

/// Builds the LUT of one token as bitnet.cpp's `lut_ctor` does: for each activation pair 16 high
/// bytes then 16 low bytes of the 16 int16 entries (entries 9..15 written as zero). `x` holds an
/// even number of activations; `lut` is `x.len()/2·32` bytes.
pub fn build_lut(x: &[f32], lut_scale: f32, lut: &mut [u8]) {
    assert!(
        x.len().is_multiple_of(2),
        "TL1 build_lut: odd activation count"
    );
    assert_eq!(
        lut.len(),
        x.len() / 2 * 32,
        "TL1 build_lut: lut must be 16 bytes per activation"
    );
    for (pair, out) in x.chunks_exact(2).zip(lut.chunks_exact_mut(32)) {
        let e = pair_table(quantize(pair[0], lut_scale), quantize(pair[1], lut_scale));
        for (i, v) in e.iter().enumerate() {
            let [lo, hi] = v.to_le_bytes();
            out[i] = hi;
            out[16 + i] = lo;
        }
    }
}

/// Scalar reference of the TL1 kernel for one token: `x` holds `cols` activations, `y` receives
/// `rows` outputs, `packed` is a buffer that passed `validate` (any bytes are safe). Bit-exact with
/// bitnet.cpp's `qgemm_lut` (int16 block sums, int32 across blocks, `sum / lut_scale · w_scale`).
pub fn lut_gemv(t: &Tiling, shape: Shape, packed: &[u8], x: &[f32], y: &mut [f32]) {
    let (m, k) = (shape.rows, shape.cols);
    let (mp, kp) = padded_shape(t, shape);
    let x = &x[..k];
    let s = lut_scale(x);
    let q: Vec<i16> = (0..kp)
        .map(|c| quantize(if c < k { x[c] } else { 0.0 }, s))
        .collect();
    let tables: Vec<[i16; 16]> = q.chunks_exact(2).map(|b| pair_table(b[0], b[1])).collect();
    let off = mp * kp / 4;
    let w_scale = f32::from_le_bytes(packed[off..off + 4].try_into().expect("4 bytes"));
    let blocks = kp / t.tile_k;
    let pairs_per_block = t.tile_k / 2;
    let mut block_sums = vec![0i32; mp * blocks];
    each_byte(t, mp, kp, |b, r, p| {
        let byte = packed[b];
        let e = tables[p][(byte >> 4) as usize] as i32 + tables[p + 1][(byte & 15) as usize] as i32;
        block_sums[r * blocks + p / pairs_per_block] += e;
    });
    let mut sums = vec![0i32; m];
    fold_blocks(&block_sums, blocks, m, &mut sums);
    for (out, sum) in y[..m].iter_mut().zip(sums) {
        *out = sum as f32 / s * w_scale;
    }
}
