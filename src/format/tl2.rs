//! TL2 (bitnet.cpp x86 look-up-table format; spec `bitnet_cpp.md` §3), byte-exact with the
//! converter's `transform_to_tl2` and the runtime buffer of the generated AVX2 kernels.
//!
//! # Encoding and layout
//!
//! `K` splits into `three_k = floor(K/BK)·BK` columns coded in triples and `two_k = K − three_k`
//! columns coded in pairs. A triple `(w0, w1, w2)` gives `v = 9·w0 + 3·w1 + w2`, stored as the
//! magnitude `|v|` ∈ 0..=13 (a nibble) plus a sign bit (`v < 0`); a pair gives `3·w0 + w1 + 4` ∈
//! 0..=8. With a tiling `BM` (rows per tile), `BK` (a multiple of 24) and `bm = 32`, and
//! `PERM = [0, 2, 1, 3]`, the payload is three parts, loops outermost first:
//!
//! ```text
//! three part, M·three_k/6 bytes:
//! for tile in 0..M/BM, kb in 0..three_k/BK, rb in 0..BM/32, kk in 0..BK/6, p in 0..32:
//!     r = tile·BM + rb·32 + 8·PERM[p/8] + p%8;  g = kb·BK/3 + 2·kk
//!     byte = (mag[r][g] << 4) | mag[r][g+1]
//! sign part, M·three_k/24 bytes (32-byte chunks of 16 little-endian u16 words):
//! for tile, kb, rb in 0..BM/32, q in 0..BK/24, word j in 0..16, i in 0..16:
//!     bit (15 − i) of word j = sign[r = tile·BM + rb·32 + 16·(i%2) + j][g = kb·BK/3 + 8·q + i/2]
//! two part, M·two_k/4 bytes:
//! for tile, kb in 0..two_k/32, rb in 0..BM/32, kk in 0..8, p in 0..32:
//!     r as in the three part;  pair p0 = (three_k + kb·32)/2 + 2·kk
//!     byte = (pidx[r][p0] << 4) | pidx[r][p0+1]
//! ```
//!
//! then zero bytes up to `P = (K − 256)·M/3·5/8 + 256·M/2·4/8` (integer ops left to right; the
//! converter's size, an upper bound of the data for `two_k ≤ 256`). The runtime buffer is
//! `round_up_32(P) + 32` bytes: payload, zero bytes to `round_up_32(P)`, the f32 tensor scale there
//! (the companion `<name>_scale` tensor of the GGUF, §3.5), then 28 zero bytes.
//!
//! # Tiling rules (`check_tiling`)
//!
//! bitnet.cpp's: `bm = 32`, `BM` a multiple of 32, `BK` a multiple of 24, `M % BM == 0`,
//! `(K % BK) % 32 == 0`, and the data must fit in `P` (`K ≥ 256`, `two_k ≤ 256`). tern adds
//! `BK ≤ 240`: a block's int16 partial sums (`BK/3` triples of at most ±381) must not wrap.
//!
//! # tern extension: zero padding for shapes bitnet.cpp cannot store
//!
//! Rows can be stored by bitnet.cpp iff `M % 32 == 0`; columns iff `K ≥ 256` and some `BK` in
//! 24, 48, …, 240 leaves `(K % BK) % 32 == 0`. Each dimension that fails is padded with zero
//! weights, and only then:
//!
//! * rows: `Mp = round_up(M, BM)` (needs `BM ≤ round_up(M, 32)`, so no tile is all padding);
//! * columns: `Kp` = the smallest `Kp ≥ K` with `(Kp % BK) % 32 == 0`, i.e. with `q = K / BK`,
//!   `r = K % BK`: `K` if `r % 32 == 0`, else `q·BK + round_up(r, 32)` if that is `< (q+1)·BK`,
//!   else `(q+1)·BK`. (`three_k` and `two_k` then follow from `Kp`; `three_k` may be 0.)
//!
//! A dimension bitnet.cpp can store is never padded. The layout is the one above for the
//! zero-padded `Mp × Kp` matrix. The payload size is `P(Mp, Kp)` when `Kp ≥ 256` (so the buffer is
//! exactly bitnet.cpp's for the padded matrix) and the data size `Mp·three_k/6 + Mp·three_k/24 +
//! Mp·two_k/4` when `Kp < 256` (where `P` is meaningless); the scale sits at `round_up_32(payload)`
//! and the buffer is `round_up_32(payload) + 32` bytes. Padded cells hold weight 0; `validate`
//! rejects anything else there. Kernels run on the padded matrix with activations `x[K..Kp] = 0`
//! and drop the outputs of rows `M..Mp`.
//!
//! # Kernel arithmetic (`lut_scale`, `build_three_lut`, `build_two_lut`, `lut_gemv`)
//!
//! Per token `s = 127 / max|x|` (f32; NaNs skipped as `_mm256_max_ps` does), `q = round_half_even(x·s)`
//! (`_mm256_round_ps` + `_mm256_cvtps_epi32`: NaN or out of range → `i32::MIN`). Triple tables
//! `[0, b2, b1−b2, b1, b1+b2, b0−b1−b2, b0−b1, b0−b1+b2, b0−b2, b0, b0+b2, b0+b1−b2, b0+b1, b0+b1+b2, 0, 0]`
//! and pair tables `[−b0−b1, −b0, −b0+b1, −b1, 0, b1, b0−b1, b0, b0+b1, 0 × 7]` are computed in
//! int32 and saturated to int16 (`_mm256_packs_epi32`), stored as 16 low bytes then 16 high bytes.
//! A negative triple adds `−entry`. Rows sum in int16 per `BK` block (three part) and per 32-column
//! block (two part), in int32 across blocks; `y = (float)(sum3 + sum2) / s · w_scale`.

use super::tl_common::{
    PERM, TAIL_BYTES, check_len, check_padded, check_scale_tail, check_zero, divisor_multiples,
    largest_divisor_multiple, list, pair_digits, pair_index, round_up,
};
use super::{Format, FormatSpec, GgufId, Layout, Params, Peer, Shape, Values, no_variant};
use crate::error::{Error, Result, try_vec};

mod lut;
pub use lut::{build_three_lut, build_two_lut, lut_gemv, lut_scale};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::Tl2,
    name: "TL2",
    values: Values::Ternary,
    compact_panels: true,
    per_block_scales: false,
    f16_scales: false,
    peer: Peer::BitnetLut,
    gguf_id: GgufId::BitnetTl2,
    file_type: 39,
    tiling: Some(tiling),
    layout: |variant, tiling| no_variant("TL2", variant).map(|_| Layout::Tl2(tiling)),
    check_shape: |p, shape| tiling(p, shape).map(|_| ()),
    packed_size: |p, shape| Ok(packed_size(&tiling(p, shape)?, shape)),
    elements_per_scale: Shape::elements,
    pack: |p, shape, ternary, scales, dst| {
        pack(&tiling(p, shape)?, shape, ternary, scales[0], dst);
        Ok(())
    },
    validate: |p, shape, src| Ok(vec![validate(&tiling(p, shape)?, shape, src)?]),
    unpack: |p, shape, src, ternary| unpack(&tiling(p, shape)?, shape, src, ternary),
};

/// The tiling of a layout for `shape`: the caller's (checked) or the library's choice.
fn tiling(p: Params, shape: Shape) -> Result<Tiling> {
    match p.tiling {
        Some(t) => check_tiling(&t, shape).map(|_| t),
        None => choose_tiling(shape),
    }
}

pub use super::tl_common::Tiling;

const NAME: &str = "TL2";

/// Largest `BK`: `BK/3` triples of at most ±381 must fit the kernels' int16 block sums.
pub const MAX_TILE_K: usize = 240;

/// Rows bitnet.cpp can store: `M` a multiple of this (= `bm`).
const ROW_GRANULE: usize = 32;
/// Columns of one block of the two part.
const TWO_BK: usize = 32;

/// `BK` values `choose_tiling` tries, most preferred first (96 is what nearly every preset uses).
const BK_PREFERENCE: [usize; 10] = [96, 192, 240, 216, 168, 144, 120, 72, 48, 24];

/// bitnet.cpp's preset TL2 tilings (`preset_kernels/`, spec §3.6): `(M, K, BM, BK)`, `bm = 32`.
/// (The large model's 4096×1536 preset ini says bm = 64, which the code generator rejects.)
const PRESETS: &[(usize, usize, usize, usize)] = &[
    // bitnet_b1_58-large
    (1536, 4096, 256, 96),
    (1536, 1536, 128, 192),
    (4096, 1536, 256, 96),
    // bitnet_b1_58-3B
    (3200, 8640, 160, 96),
    (3200, 3200, 320, 96),
    (8640, 3200, 320, 96),
    // Llama3-8B-1.58-100B-tokens (also Falcon3 / Falcon-E)
    (14336, 4096, 256, 96),
    (4096, 14336, 128, 96),
    (1024, 4096, 256, 96),
    (4096, 4096, 128, 96),
];

/// Sizes of a tiled (padded) matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    /// Stored rows `Mp`.
    pub rows: usize,
    /// Stored columns `Kp`.
    pub cols: usize,
    /// Columns coded as triples: `floor(Kp/BK)·BK`.
    pub three_k: usize,
    /// Columns coded as pairs: `Kp − three_k` (a multiple of 32).
    pub two_k: usize,
}

impl Dims {
    pub fn three_bytes(&self) -> usize {
        self.rows * self.three_k / 6
    }
    pub fn sign_bytes(&self) -> usize {
        self.rows * self.three_k / 24
    }
    pub fn two_bytes(&self) -> usize {
        self.rows * self.two_k / 4
    }
    /// Bytes of the three parts, without padding.
    pub fn data_bytes(&self) -> usize {
        self.three_bytes() + self.sign_bytes() + self.two_bytes()
    }
    /// The payload: bitnet.cpp's size formula for `Kp ≥ 256`, else the data size.
    pub fn payload_bytes(&self) -> usize {
        let data = self.data_bytes();
        if self.cols >= 256 {
            let (k, m) = (self.cols, self.rows);
            let formula = (k - 256) * m / 3 * 5 / 8 + 256 * m / 2 * 4 / 8;
            formula.max(data)
        } else {
            data
        }
    }
}

/// The smallest `Kp ≥ k` with `(Kp % bk) % 32 == 0`.
fn padded_cols(k: usize, bk: usize) -> usize {
    let (q, r) = (k / bk, k % bk);
    if r.is_multiple_of(TWO_BK) {
        k
    } else if round_up(r, TWO_BK) < bk {
        q * bk + round_up(r, TWO_BK)
    } else {
        (q + 1) * bk
    }
}

/// The `BK` (≤ `MAX_TILE_K`) with which bitnet.cpp can store `k` columns unpadded (empty if none).
fn bitnet_tile_ks(k: usize) -> Vec<usize> {
    if k < 256 {
        return Vec::new();
    }
    (1..=MAX_TILE_K / 24)
        .map(|i| 24 * i)
        .filter(|bk| (k % bk).is_multiple_of(TWO_BK))
        .collect()
}

/// The stored sizes for a tiling (equal to the shape's for bitnet.cpp layouts).
pub fn dims(t: &Tiling, shape: Shape) -> Dims {
    let rows = round_up(shape.rows, t.tile_rows);
    let cols = padded_cols(shape.cols, t.tile_k);
    let three_k = cols / t.tile_k * t.tile_k;
    Dims {
        rows,
        cols,
        three_k,
        two_k: cols - three_k,
    }
}

/// Whether the buffer is exactly what bitnet.cpp would use for this shape (no tern padding).
/// Meaningful for a tiling that passed `check_tiling`.
pub fn is_bitnet_layout(t: &Tiling, shape: Shape) -> bool {
    let d = dims(t, shape);
    d.rows == shape.rows && d.cols == shape.cols && d.cols >= 256
}

/// Checks a tiling against bitnet.cpp's constraints (and tern's padding rules, module doc).
pub fn check_tiling(t: &Tiling, shape: Shape) -> Result<()> {
    let (big_m, bk, bm) = (t.tile_rows, t.tile_k, t.simd_rows);
    let (m, k) = (shape.rows, shape.cols);
    if bm != 32 {
        return Err(Error::invalid(format!(
            "TL2 simd_rows (bm) = {bm} is not allowed (bitnet.cpp's TL2 code generator allows only 32)"
        )));
    }
    if big_m == 0 || !big_m.is_multiple_of(bm) {
        return Err(Error::invalid(format!(
            "TL2 tile_rows (BM) = {big_m} must be a positive multiple of simd_rows (bm) = 32"
        )));
    }
    if bk == 0 || !bk.is_multiple_of(24) || bk > MAX_TILE_K {
        return Err(Error::invalid(format!(
            "TL2 tile_k (BK) = {bk} must be a positive multiple of 24 (bitnet.cpp's sign packing) and at \
             most {MAX_TILE_K} (larger blocks can overflow the kernel's int16 partial sums)"
        )));
    }
    if m.is_multiple_of(ROW_GRANULE) {
        if !m.is_multiple_of(big_m) {
            return Err(Error::invalid(format!(
                "TL2 needs M % BM == 0 (bitnet.cpp): BM = {big_m} does not divide M = {m}; allowed BM: {}",
                list(&divisor_multiples(m, bm, m))
            )));
        }
    } else if big_m > round_up(m, bm) {
        return Err(Error::invalid(format!(
            "TL2: M = {m} is not a multiple of {ROW_GRANULE}, so tern pads the rows to a multiple of BM; \
             BM = {big_m} would add a tile of padding only (allowed: multiples of 32 up to {})",
            round_up(m, bm)
        )));
    }
    let allowed = bitnet_tile_ks(k);
    if !allowed.is_empty() && !allowed.contains(&bk) {
        return Err(Error::invalid(format!(
            "TL2 needs (K % BK) % 32 == 0 (bitnet.cpp): K = {k} with BK = {bk} leaves two_k = {}; \
             allowed BK for K = {k}: {}",
            k % bk,
            list(&allowed)
        )));
    }
    let d = dims(t, shape);
    check_padded(NAME, d.rows, d.cols)
}

/// A valid tiling for any shape: bitnet.cpp's preset for its model shapes; otherwise `bm = 32`,
/// `BM` the largest multiple of 32 ≤ 256 dividing the (padded) rows, and `BK` the first of 96,
/// 192, 240, 216, 168, 144, 120, 72, 48, 24 that bitnet.cpp accepts for `K` — or, when none does
/// (tern padding), the one needing the fewest padded columns (ties in that order).
pub fn choose_tiling(shape: Shape) -> Result<Tiling> {
    let (m, k) = (shape.rows, shape.cols);
    let t = match PRESETS.iter().find(|p| p.0 == m && p.1 == k) {
        Some(&(_, _, big_m, bk)) => Tiling::new(big_m, bk, 32),
        None => {
            let big_m = largest_divisor_multiple(round_up(m, ROW_GRANULE), ROW_GRANULE, 256);
            let allowed = bitnet_tile_ks(k);
            let bk = if allowed.is_empty() {
                BK_PREFERENCE
                    .into_iter()
                    .min_by_key(|&bk| padded_cols(k, bk))
                    .expect("non-empty")
            } else {
                BK_PREFERENCE
                    .into_iter()
                    .find(|bk| allowed.contains(bk))
                    .expect("every allowed BK is in the preference list")
            };
            Tiling::new(big_m, bk, 32)
        }
    };
    check_tiling(&t, shape)?;
    Ok(t)
}

/// Byte offset of the f32 scale in the runtime buffer (`round_up_32(payload)`).
pub fn scale_offset(t: &Tiling, shape: Shape) -> usize {
    round_up(dims(t, shape).payload_bytes(), 32)
}

/// Bytes of the runtime buffer: `round_up_32(payload) + 32`.
pub fn packed_size(t: &Tiling, shape: Shape) -> usize {
    scale_offset(t, shape) + TAIL_BYTES
}

/// Calls `f(byte, row, g)` for every three-part byte in storage order; the byte holds the
/// magnitudes of triples `g` (high nibble) and `g + 1` (low nibble) of `row`.
fn each_three(t: &Tiling, d: &Dims, mut f: impl FnMut(usize, usize, usize)) {
    let (big_m, bk) = (t.tile_rows, t.tile_k);
    let mut byte = 0;
    for tile in 0..d.rows / big_m {
        for kb in 0..d.three_k / bk {
            for rb in 0..big_m / 32 {
                for kk in 0..bk / 6 {
                    for p in 0..32 {
                        let r = tile * big_m + rb * 32 + 8 * PERM[p / 8] + p % 8;
                        f(byte, r, kb * bk / 3 + 2 * kk);
                        byte += 1;
                    }
                }
            }
        }
    }
}

/// Calls `f(byte, bit, row, g)` for every sign bit (bit `bit` of byte `byte`, absolute offsets) of
/// triple `g` of `row`, in storage order.
fn each_sign(t: &Tiling, d: &Dims, mut f: impl FnMut(usize, u32, usize, usize)) {
    let (big_m, bk) = (t.tile_rows, t.tile_k);
    let mut chunk = d.three_bytes();
    for tile in 0..d.rows / big_m {
        for kb in 0..d.three_k / bk {
            for rb in 0..big_m / 32 {
                for q in 0..bk / 24 {
                    for j in 0..16 {
                        for i in 0..16 {
                            let r = tile * big_m + rb * 32 + 16 * (i % 2) + j;
                            let g = kb * bk / 3 + 8 * q + i / 2;
                            let bit = 15 - i as u32;
                            f(chunk + 2 * j + (bit / 8) as usize, bit % 8, r, g);
                        }
                    }
                    chunk += 32;
                }
            }
        }
    }
}

/// Calls `f(byte, row, p)` for every two-part byte (absolute offset) in storage order; the byte
/// holds the indices of pairs `p` (high nibble) and `p + 1` (low nibble) of `row`, counted from
/// column 0 (pair `p` is columns `2p, 2p + 1`).
fn each_two(t: &Tiling, d: &Dims, mut f: impl FnMut(usize, usize, usize)) {
    let big_m = t.tile_rows;
    let mut byte = d.three_bytes() + d.sign_bytes();
    for tile in 0..d.rows / big_m {
        for kb in 0..d.two_k / TWO_BK {
            for rb in 0..big_m / 32 {
                for kk in 0..TWO_BK / 4 {
                    for p in 0..32 {
                        let r = tile * big_m + rb * 32 + 8 * PERM[p / 8] + p % 8;
                        f(byte, r, (d.three_k + kb * TWO_BK) / 2 + 2 * kk);
                        byte += 1;
                    }
                }
            }
        }
    }
}

/// Ternary digits of a triple magnitude `|v|` ∈ 0..=13 (balanced ternary, `v = 9·w0 + 3·w1 + w2`).
const TRIPLE_DIGITS: [[i8; 3]; 16] = [
    [0, 0, 0],
    [0, 0, 1],
    [0, 1, -1],
    [0, 1, 0],
    [0, 1, 1],
    [1, -1, -1],
    [1, -1, 0],
    [1, -1, 1],
    [1, 0, -1],
    [1, 0, 0],
    [1, 0, 1],
    [1, 1, -1],
    [1, 1, 0],
    [1, 1, 1],
    [0, 0, 0], // 14, 15: never valid
    [0, 0, 0],
];

/// For six weights `(w0..w5)` at `six_index`: the three-part byte `(|v0| << 4) | |v1|` of their
/// triples `v0 = 9·w0 + 3·w1 + w2`, `v1 = 9·w3 + 3·w4 + w5`, with the signs `(v0 < 0) << 10 |
/// (v1 < 0) << 8` above it.
const SIX: [u16; 729] = six_table();

const fn six_table() -> [u16; 729] {
    let mut t = [0u16; 729];
    let mut i = 0;
    while i < 729 {
        // Base-3 digits of `i`, most significant first, are `w + 1`.
        let v0 = (i / 27) as i32 - 13;
        let v1 = (i % 27) as i32 - 13;
        let mag = (v0.unsigned_abs() << 4) | v1.unsigned_abs();
        let neg = ((v0 < 0) as u32) << 2 | (v1 < 0) as u32;
        t[i] = (mag | neg << 8) as u16;
        i += 1;
    }
    t
}

/// `27·(v0 + 13) + (v1 + 13)`, the `SIX` index of six weights in {-1, 0, 1}: SWAR over one u64,
/// byte `i` holds `w_i`; `w + 1` per byte without carries, then one multiply sums
/// `9·d0 + 3·d1 + d2` into byte 2 and `9·d3 + 3·d4 + d5` into byte 5 (every byte ≤ 26).
fn six_index(six: &[i8]) -> usize {
    let b = |i: usize| six[i] as u8 as u64;
    let x = b(0) | b(1) << 8 | b(2) << 16 | b(3) << 24 | b(4) << 32 | b(5) << 40;
    let d = ((x & 0x7f7f_7f7f_7f7f) + 0x0101_0101_0101) ^ (x & 0x8080_8080_8080);
    let p = d.wrapping_mul(0x09_03_01);
    27 * ((p >> 16) & 0xff) as usize + ((p >> 40) & 0xff) as usize
}

/// Packs ternary values (row-major `rows × cols`, each in {-1, 0, 1}, checked by the caller) and
/// the tensor scale into `dst`, which must be exactly `packed_size` bytes. The tiling must have
/// passed `check_tiling`.
///
/// Walks each tile row by row (sequential reads); the bytes of a tile's blocks stay in cache
/// while its rows scatter into them at the positions `each_three` / `each_sign` / `each_two`
/// visit (the layout in the module doc).
pub fn pack(t: &Tiling, shape: Shape, ternary: &[i8], scale: f32, dst: &mut [u8]) {
    let d = dims(t, shape);
    let off = round_up(d.payload_bytes(), 32);
    assert_eq!(
        dst.len(),
        off + TAIL_BYTES,
        "TL2 pack: dst must be packed_size bytes"
    );
    let rows = RowSegments::new(shape, &ternary[..shape.elements()]);
    let (big_m, bk) = (t.tile_rows, t.tile_k);
    let (three, rest) = dst.split_at_mut(d.three_bytes());
    let (sign, rest) = rest.split_at_mut(d.sign_bytes());
    let (two, rest) = rest.split_at_mut(d.two_bytes());
    sign.fill(0);
    rest.fill(0);
    let scale_at = off - d.data_bytes();
    rest[scale_at..scale_at + 4].copy_from_slice(&scale.to_le_bytes());

    // Bytes per 32-row block: three part, sign part, two part.
    let (three_block, sign_block, two_block) = (bk / 6 * 32, bk / 24 * 32, TWO_BK / 4 * 32);
    let blocks = big_m / 32;
    let mut buf = [0i8; MAX_TILE_K];
    // Bytes per tile (any may be 0).
    let (tile_three, tile_sign, tile_two) = (
        blocks * d.three_k / bk * three_block,
        blocks * d.three_k / bk * sign_block,
        blocks * d.two_k / TWO_BK * two_block,
    );
    for tile in 0..d.rows / big_m {
        let three = &mut three[tile * tile_three..][..tile_three];
        let sign = &mut sign[tile * tile_sign..][..tile_sign];
        let two = &mut two[tile * tile_two..][..tile_two];
        for (rb, rl) in (0..blocks).flat_map(|rb| (0..32).map(move |rl| (rb, rl))) {
            let r = tile * big_m + rb * 32 + rl;
            let p = 8 * PERM[rl / 8] + rl % 8;
            // Row `rl` is word `rl % 16`, bit `15 − (2·(g % 8) + rl / 16)` for triple `g`.
            let (j, h) = (rl % 16, rl / 16);
            for kb in 0..d.three_k / bk {
                let block = kb * blocks + rb;
                let mags = &mut three[block * three_block..][..three_block];
                let signs = &mut sign[block * sign_block..][..sign_block];
                let w = rows.get(r, kb * bk, bk, &mut buf);
                // 24 columns = 4 bytes (triples 2kk, 2kk + 1) = the 8 triples of word `q`.
                for (q, cols) in w.chunks_exact(24).enumerate() {
                    let mut neg = 0u16;
                    for (i, six) in cols.chunks_exact(6).enumerate() {
                        let e = SIX[six_index(six)];
                        mags[32 * (4 * q + i) + p] = e as u8;
                        neg |= (e >> 8) << (12 - 4 * i);
                    }
                    let word = &mut signs[32 * q + 2 * j..][..2];
                    let v = u16::from_le_bytes([word[0], word[1]]) | neg << (1 - h);
                    word.copy_from_slice(&v.to_le_bytes());
                }
            }
            for kb in 0..d.two_k / TWO_BK {
                let out = &mut two[(kb * blocks + rb) * two_block..][..two_block];
                let w = rows.get(r, d.three_k + kb * TWO_BK, TWO_BK, &mut buf);
                for (kk, four) in w.chunks_exact(4).enumerate() {
                    out[32 * kk + p] =
                        (pair_index(four[0], four[1]) << 4) | pair_index(four[2], four[3]);
                }
            }
        }
    }
}

/// Row segments of a row-major matrix, zero outside it (tern's padding).
struct RowSegments<'a> {
    ternary: &'a [i8],
    rows: usize,
    cols: usize,
}

impl<'a> RowSegments<'a> {
    fn new(shape: Shape, ternary: &'a [i8]) -> Self {
        Self {
            ternary,
            rows: shape.rows,
            cols: shape.cols,
        }
    }

    /// Columns `c0..c0 + len` of row `r`: borrowed when inside the matrix, else copied into
    /// `buf` with zeros for the cells outside.
    fn get<'b>(&self, r: usize, c0: usize, len: usize, buf: &'b mut [i8]) -> &'b [i8]
    where
        'a: 'b,
    {
        if r < self.rows && c0 + len <= self.cols {
            return &self.ternary[r * self.cols + c0..][..len];
        }
        let buf = &mut buf[..len];
        buf.fill(0);
        if r < self.rows && c0 < self.cols {
            let n = (self.cols - c0).min(len);
            buf[..n].copy_from_slice(&self.ternary[r * self.cols + c0..][..n]);
        }
        buf
    }
}

/// The decoded triple magnitudes (`[Mp][three_k/3]`) of a buffer whose nibbles are in range.
fn decode_magnitudes(t: &Tiling, d: &Dims, src: &[u8]) -> Result<Vec<u8>> {
    let groups = d.three_k / 3;
    let mut mag = try_vec(d.rows * groups, 0u8, "the decoded TL2 magnitudes")?;
    each_three(t, d, |b, r, g| {
        mag[r * groups + g] = src[b] >> 4;
        mag[r * groups + g + 1] = src[b] & 15;
    });
    Ok(mag)
}

/// The decoded sign bits (`[Mp][three_k/3]`).
fn decode_signs(t: &Tiling, d: &Dims, src: &[u8]) -> Result<Vec<bool>> {
    let groups = d.three_k / 3;
    let mut neg = try_vec(d.rows * groups, false, "the decoded TL2 sign bits")?;
    each_sign(t, d, |b, bit, r, g| {
        neg[r * groups + g] = src[b] >> bit & 1 != 0
    });
    Ok(neg)
}

/// Checks a packed buffer (at least `packed_size` bytes) and returns its scale. Detects triple
/// magnitudes 14/15, pair indices 9..15, sign bits set on zero triples (the converter never
/// writes them), nonzero weights in tern's padding, nonzero bytes in the zero padding, a
/// non-finite or negative scale and nonzero reserved bytes after it; messages name the byte.
pub fn validate(t: &Tiling, shape: Shape, src: &[u8]) -> Result<f32> {
    let (m, k) = (shape.rows, shape.cols);
    let d = dims(t, shape);
    let payload = d.payload_bytes();
    let off = round_up(payload, 32);
    check_len(NAME, src, off + TAIL_BYTES)?;
    let (three_end, sign_end) = (d.three_bytes(), d.three_bytes() + d.sign_bytes());
    if let Some(pos) = src[..three_end]
        .iter()
        .position(|&b| b >> 4 > 13 || b & 15 > 13)
    {
        let nib = if src[pos] >> 4 > 13 {
            src[pos] >> 4
        } else {
            src[pos] & 15
        };
        return Err(Error::invalid(format!(
            "corrupt TL2 data: byte {pos} = {:#04x} (three part) holds the triple magnitude {nib}; \
             TL2 triple magnitudes are 0..=13",
            src[pos]
        )));
    }
    let two_end = sign_end + d.two_bytes();
    if let Some(pos) = src[sign_end..two_end]
        .iter()
        .position(|&b| b >> 4 > 8 || b & 15 > 8)
    {
        let pos = sign_end + pos;
        let nib = if src[pos] >> 4 > 8 {
            src[pos] >> 4
        } else {
            src[pos] & 15
        };
        return Err(Error::invalid(format!(
            "corrupt TL2 data: byte {pos} = {:#04x} (two part) holds the pair index {nib}; \
             TL2 pair indices are 0..=8",
            src[pos]
        )));
    }
    let groups = d.three_k / 3;
    let mag = decode_magnitudes(t, &d, src)?;
    let padded = (d.rows, d.cols) != (m, k);
    let pad_error = |b: usize, r: usize, c: usize| {
        Error::invalid(format!(
            "corrupt TL2 data: byte {b} encodes a nonzero weight at row {r}, column {c}, which lies in \
             tern's zero padding (the matrix is {m}×{k}, stored padded to {}×{})",
            d.rows, d.cols
        ))
    };
    let mut bad: Option<Error> = None;
    if padded {
        each_three(t, &d, |b, r, g| {
            if bad.is_some() || (r < m && 3 * g + 6 <= k) {
                return;
            }
            for (j, digit) in TRIPLE_DIGITS[(src[b] >> 4) as usize]
                .iter()
                .chain(&TRIPLE_DIGITS[(src[b] & 15) as usize])
                .enumerate()
            {
                let c = 3 * g + j;
                if *digit != 0 && (r >= m || c >= k) {
                    bad = Some(pad_error(b, r, c));
                    return;
                }
            }
        });
    }
    each_sign(t, &d, |b, bit, r, g| {
        if bad.is_none() && src[b] >> bit & 1 != 0 && mag[r * groups + g] == 0 {
            bad = Some(Error::invalid(format!(
                "corrupt TL2 data: byte {b} (sign part) sets bit {bit}, the sign of triple {g} of row {r}, \
                 whose magnitude is 0 (bitnet.cpp never writes a negative zero)"
            )));
        }
    });
    if padded {
        each_two(t, &d, |b, r, p| {
            if bad.is_some() || (r < m && 2 * p + 4 <= k) {
                return;
            }
            let (w0, w1) = pair_digits(src[b] >> 4);
            let (w2, w3) = pair_digits(src[b] & 15);
            for (j, w) in [w0, w1, w2, w3].into_iter().enumerate() {
                let c = 2 * p + j;
                if w != 0 && (r >= m || c >= k) {
                    bad = Some(pad_error(b, r, c));
                    return;
                }
            }
        });
    }
    if let Some(e) = bad {
        return Err(e);
    }
    check_zero(NAME, src, two_end, off, "the zero padding after the data")?;
    check_scale_tail(NAME, src, off)
}

/// Inverse of `pack` for a buffer that passed `validate`: writes the `rows·cols` ternary values.
pub fn unpack(t: &Tiling, shape: Shape, src: &[u8], ternary: &mut [i8]) -> Result<()> {
    let (m, k) = (shape.rows, shape.cols);
    let d = dims(t, shape);
    let ternary = &mut ternary[..m * k];
    let groups = d.three_k / 3;
    let mag = decode_magnitudes(t, &d, src)?;
    let neg = decode_signs(t, &d, src)?;
    for r in 0..m {
        for g in 0..groups {
            let digits = TRIPLE_DIGITS[mag[r * groups + g] as usize];
            let sign = if neg[r * groups + g] { -1 } else { 1 };
            for (j, digit) in digits.into_iter().enumerate() {
                let c = 3 * g + j;
                if c < k {
                    ternary[r * k + c] = sign * digit;
                }
            }
        }
    }
    each_two(t, &d, |b, r, p| {
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
    Ok(())
}
