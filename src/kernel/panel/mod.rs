//! Panel layouts: the weight layouts `Matrix` builds for the panel kernels (`PanelDotsFn`), in
//! which one vector instruction multiplies 16 weight rows at once ("lanes are rows").
//!
//! A matrix is cut into tiles of `TILE_ROWS` = 64 rows (4 panels of 16), the tiles stored one
//! after the other, each a single sequential stream. Columns are split into `n_groups` groups of
//! `4·group_steps` columns (one group = a TQ block of 256, or all columns for one-scale
//! formats); a k-step is 4 consecutive columns (one int32 lane of `vpdpbusd`). Within a tile,
//! for each group, for each chunk of k-steps, the 4 panels' 64-byte vectors follow each other.
//! Byte `4·l + j` of a panel vector belongs to row `16·p + l` and column `4·ks + j` of the
//! chunk's k-steps `ks`:
//!
//! * `Codes2` (2 bits/weight): a chunk is 4 k-steps; the byte holds the codes `value + 1` of
//!   k-steps `s = 0..4` in bits `2s+1:2s` (0..=3: Q2_0's +2 is code 3, which only this layout
//!   holds).
//! * `Trits5` (1.6 bits/weight, compact): a chunk is 5 k-steps (the last chunk of a group may have
//!   fewer); the byte holds the codes `c_i = t_i + 1` of k-steps `i = 0..5`, laid out so that
//!   three 6-bit lookups decode it (`vpermb`, beside the `vpdpbusd`s; `TRITS5`): the byte is a
//!   row `h` (bits 7..6), a group `m` (bits 5..2) and a slot `l` (bits 1..0). Each of the 64
//!   (group, slot) pairs holds a quad `(c_0..c_3)` (`quad_lo[byte & 63]`); rows 0, 1, 2 give it
//!   with `c_4` = 1, 0, 2, and row 3 adds the group's translation (`quad_hi[byte >> 2]`) with the
//!   group's `c_4` (`fifth[byte >> 2]`). The 64 slots hold every quad but the 17 with `c_0 = 2`
//!   and `(c_1, c_2, c_3)` ≠ `(0, ·, ·)`, `(2, 2, 2)`, which row 3 reaches three times: from
//!   their `c_0 = 1` twins (+1 to `c_0`, `c_4` = 0), from their `c_0 = 0` twins (+2, `c_4` = 1),
//!   and from `(2, 0, ·, ·)` (+1 to `c_1`, `c_4` = 2) or `(1, 0, ·, ·)` (+1 to `c_0`, +2 to `c_1`)
//!   for `c_1` = 1 or 2. Fillers top those groups up and make the last one. Every combination
//!   has a byte (byte 0 is all zero); the packer writes the first of each.
//! * `Bits1` (1 bit/weight, for matrices whose values are all ±1: Q1_0): a chunk is 8 k-steps;
//!   bit `s` of the byte is k-step `s`'s sign bit, decoded to the code `2·bit` (0 or 2, so
//!   `value = code − 1` as in the other layouts).
//!
//! Weights past the matrix (pad rows, pad columns, unused k-steps) are stored as 0 (code 1), in
//! `Bits1` as −1 (bit 0): the activations of pad columns are zero and pad rows are never read.

#[cfg(target_arch = "x86_64")]
pub(crate) mod driver;

/// Rows of one tile (4 panels of 16 rows).
pub const TILE_ROWS: usize = 64;
/// Rows of one panel: the int32 lanes of a 512-bit vector.
pub const PANEL_ROWS: usize = 16;
/// Panels per tile.
pub const PANELS: usize = TILE_ROWS / PANEL_ROWS;
/// Bytes of one panel vector.
pub const VEC_BYTES: usize = 64;

/// The weight encoding of a panel layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PanelKind {
    /// 2-bit codes, 4 k-steps per chunk.
    Codes2,
    /// 5 trits per byte (1.6 bits/weight), 5 k-steps per chunk.
    Trits5,
    /// Sign bits (1 bit/weight, values ±1 only: Q1_0), 8 k-steps per chunk.
    Bits1,
}

impl PanelKind {
    /// k-steps per chunk.
    pub const fn steps_per_chunk(self) -> usize {
        match self {
            Self::Codes2 => 4,
            Self::Trits5 => 5,
            Self::Bits1 => 8,
        }
    }

    /// What a group's k-steps must be a multiple of (whole chunks, except `Trits5`, whose last
    /// chunk of a group may be short).
    pub const fn group_step_multiple(self) -> usize {
        match self {
            Self::Codes2 | Self::Trits5 => 4,
            Self::Bits1 => 8,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Codes2 => "2-bit panels",
            Self::Trits5 => "1.6-bit panels",
            Self::Bits1 => "1-bit panels",
        }
    }
}

/// Most k-steps one dot of a panel kernel sums (`PanelGeom::group_steps · merge`), so that its
/// int32 sums cannot overflow whatever the width: 2^16 k-steps · 4 · 3 · 128 < 2^27 (codes ≤ 3),
/// and the AVX-512 VNNI one-token kernel's ×64 accumulators stay below 2^31.
pub const MAX_DOT_STEPS: usize = 1 << 16;

/// The shape of one tile's data, and how a kernel sums it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PanelGeom {
    pub kind: PanelKind,
    /// k-steps (4 columns each) per group; a multiple of `kind.group_step_multiple()`.
    pub group_steps: usize,
    pub n_groups: usize,
    /// Consecutive groups a kernel sums into one dot (1: a dot per group, as per-block scales
    /// need); divides `n_groups`, and `merge · group_steps ≤ MAX_DOT_STEPS`. The layout does not
    /// depend on it.
    pub merge: usize,
}

impl PanelGeom {
    /// Dots per row and token: `n_groups / merge`.
    pub fn n_dots(&self) -> usize {
        self.n_groups / self.merge
    }

    /// Chunks per group.
    #[inline(always)]
    pub fn chunks_per_group(&self) -> usize {
        // One arm per kind, so that each divides by a constant: the kernels call this per dot
        // and per vector, where a division instruction costs as much as a short dot's work.
        match self.kind {
            PanelKind::Codes2 => self
                .group_steps
                .div_ceil(PanelKind::Codes2.steps_per_chunk()),
            PanelKind::Trits5 => self
                .group_steps
                .div_ceil(PanelKind::Trits5.steps_per_chunk()),
            PanelKind::Bits1 => self
                .group_steps
                .div_ceil(PanelKind::Bits1.steps_per_chunk()),
        }
    }

    /// Columns covered (the padded width the activations must have).
    pub fn cols(&self) -> usize {
        4 * self.group_steps * self.n_groups
    }

    /// Bytes of one tile.
    pub fn tile_bytes(&self) -> usize {
        self.n_groups * self.chunks_per_group() * PANELS * VEC_BYTES
    }

    /// Offset in a tile of the panel vector (group `g`, chunk `c`, panel `p`).
    #[inline(always)]
    pub fn vec_offset(&self, g: usize, c: usize, p: usize) -> usize {
        ((g * self.chunks_per_group() + c) * PANELS + p) * VEC_BYTES
    }

    /// Where column `k` of a row lives: (group, chunk, position of its k-step in the chunk, byte
    /// within the lane).
    fn locate(&self, k: usize) -> (usize, usize, usize, usize) {
        let (ks, j) = (k / 4, k % 4);
        let (g, s) = (ks / self.group_steps, ks % self.group_steps);
        let per = self.kind.steps_per_chunk();
        (g, s / per, s % per, j)
    }
}

/// The `Trits5` lookups, each indexed by 6 bits of the byte so that one `vpermb` does it:
/// `quad_lo[byte & 63] + quad_hi[byte >> 2]` (a byte add without carries) is the `Codes2` byte of
/// k-steps 0..4's codes (code of k-step `s` in bits `2s+1:2s`), `fifth[byte >> 2]` k-step 4's code.
pub struct Trits5Tables {
    pub quad_lo: [u8; 64],
    pub quad_hi: [u8; 64],
    pub fifth: [u8; 64],
}

pub static TRITS5: Trits5Tables = trits5_tables();

/// Row 3's quad translation and k-step 4 code for a group of each role (module docs), the last
/// for the fillers' group.
const ROW3: [(u8, u8); 5] = [
    (quad([1, 0, 0, 0]), 0),
    (quad([2, 0, 0, 0]), 1),
    (quad([0, 1, 0, 0]), 2),
    (quad([1, 2, 0, 0]), 2),
    (0, 0),
];
/// The k-step 4 code of rows 0, 1, 2 (row 0 first, so that byte 0 is the all-zero combination).
const ROW_FIFTH: [u8; 3] = [1, 0, 2];
const FILLER: usize = 4;
const TWIN: usize = 5;

/// The `Codes2` byte of the codes `c`.
const fn quad(c: [u8; 4]) -> u8 {
    c[0] | c[1] << 2 | c[2] << 4 | c[3] << 6
}

/// The codes of quad number `v < 81` (base 3, `c0` first).
const fn quad_codes(v: usize) -> [u8; 4] {
    [
        (v % 3) as u8,
        (v / 3 % 3) as u8,
        (v / 9 % 3) as u8,
        (v / 27) as u8,
    ]
}

/// The role of quad `c` (module docs): 0..4 the row-3 roles, `FILLER`, or `TWIN` (a `c0 = 2`
/// quad that only row 3 reaches).
const fn role(c: [u8; 4]) -> usize {
    let twinned = c[1] > 0 && !(c[1] == 2 && c[2] == 2 && c[3] == 2);
    match (c[0], c[1]) {
        (2, _) if twinned => TWIN,
        (1, _) if twinned => 0,
        (0, _) if twinned => 1,
        (2, 0) => 2,
        (1, 0) if !(c[2] == 2 && c[3] == 2) => 3,
        _ => FILLER,
    }
}

const fn trits5_tables() -> Trits5Tables {
    let mut t = Trits5Tables {
        quad_lo: [0; 64],
        quad_hi: [0; 64],
        fifth: [0; 64],
    };
    let mut used = [false; 81];
    let mut slot = 0;
    let mut r = 0;
    while r <= FILLER {
        let first_group = slot / 4;
        // The role's quads in base-3 order, all-zero (number 40) first.
        let mut i = 0;
        while i < 81 {
            let v = if i == 0 {
                40
            } else if i <= 40 {
                i - 1
            } else {
                i
            };
            if role(quad_codes(v)) == r && !used[v] {
                used[v] = true;
                t.quad_lo[slot] = quad(quad_codes(v));
                slot += 1;
            }
            i += 1;
        }
        // Fillers top the role's last group up.
        let mut v = 0;
        while slot % 4 != 0 {
            if role(quad_codes(v)) == FILLER && !used[v] {
                used[v] = true;
                t.quad_lo[slot] = quad(quad_codes(v));
                slot += 1;
            }
            v += 1;
        }
        let mut g = first_group;
        while g < slot / 4 {
            t.quad_hi[48 + g] = ROW3[r].0;
            t.fifth[48 + g] = ROW3[r].1;
            g += 1;
        }
        r += 1;
    }
    assert!(slot == 64);
    let mut h = 0;
    while h < 3 {
        let mut g = 0;
        while g < 16 {
            t.fifth[16 * h + g] = ROW_FIFTH[h];
            g += 1;
        }
        h += 1;
    }
    t
}

/// The five codes (`trit + 1`) the kernels compute for `byte`, field by field: 0..=2 for every
/// byte `encode5` gives; bytes it never gives may hold a 3 or more.
fn codes5(byte: u8) -> [u8; 5] {
    let (lo, hi) = (
        TRITS5.quad_lo[(byte & 63) as usize],
        TRITS5.quad_hi[(byte >> 2) as usize],
    );
    let field = |s: usize| (lo >> (2 * s) & 3) + (hi >> (2 * s) & 3);
    [
        field(0),
        field(1),
        field(2),
        field(3),
        TRITS5.fifth[(byte >> 2) as usize],
    ]
}

/// The five trits of a `Trits5` byte, or `None` for the bytes the layout leaves unused.
pub fn decode5(byte: u8) -> Option<[i8; 5]> {
    let c = codes5(byte);
    c.iter().all(|&x| x <= 2).then(|| c.map(|x| x as i8 - 1))
}

/// The `Trits5` byte of five trits (each in {-1, 0, 1}).
pub fn encode5(t: [i8; 5]) -> u8 {
    static ENCODE: std::sync::OnceLock<[u8; 243]> = std::sync::OnceLock::new();
    let key = |c: &[i8; 5]| {
        c.iter()
            .rev()
            .fold(0usize, |a, &x| a * 3 + (x + 1) as usize)
    };
    let table = ENCODE.get_or_init(|| {
        // Each combination takes the first byte that decodes to it.
        let mut e = [None; 243];
        for byte in 0..=255u8 {
            if let Some(t) = decode5(byte) {
                e[key(&t)].get_or_insert(byte);
            }
        }
        e.map(|b| b.expect("every combination has a byte"))
    });
    table[key(&t)]
}

/// The code (`value + 1`, 0..=3; `Trits5` 0..=2) of (row `r` in the tile, column `k`) in tile bytes `tile`: the
/// reference decoder of the layout (the scalar kernel and the tests use it).
pub fn code_at(geom: &PanelGeom, tile: &[u8], r: usize, k: usize) -> u8 {
    let (g, c, pos, j) = geom.locate(k);
    let (p, l) = (r / PANEL_ROWS, r % PANEL_ROWS);
    let byte = tile[geom.vec_offset(g, c, p) + 4 * l + j];
    match geom.kind {
        PanelKind::Codes2 => (byte >> (2 * pos)) & 3,
        PanelKind::Trits5 => codes5(byte)[pos],
        PanelKind::Bits1 => 2 * ((byte >> pos) & 1),
    }
}

/// Packs one tile: `tern(r, k)` is the weight of tile row `r < 64` and column `k < geom.cols()`
/// (0 past the matrix): −1..=1, or up to 2 (Q2_0's code 3) in `Codes2`, ±1 in `Bits1` (where
/// 0, which only pad weights may be, is stored as −1). `out` is `geom.tile_bytes()` long.
pub fn pack_tile(geom: &PanelGeom, tern: impl Fn(usize, usize) -> i8, out: &mut [u8]) {
    let per = geom.kind.steps_per_chunk();
    for g in 0..geom.n_groups {
        for c in 0..geom.chunks_per_group() {
            let first = g * geom.group_steps + c * per;
            let steps = per.min(geom.group_steps - c * per);
            for p in 0..PANELS {
                let v = &mut out[geom.vec_offset(g, c, p)..][..VEC_BYTES];
                for l in 0..PANEL_ROWS {
                    let r = p * PANEL_ROWS + l;
                    for j in 0..4 {
                        let mut t = [0i8; 8];
                        for (s, ts) in t.iter_mut().enumerate().take(steps) {
                            *ts = tern(r, 4 * (first + s) + j);
                        }
                        v[4 * l + j] = match geom.kind {
                            PanelKind::Codes2 => t[..4]
                                .iter()
                                .enumerate()
                                .fold(0u8, |b, (s, &x)| b | (((x + 1) as u8) << (2 * s))),
                            PanelKind::Trits5 => encode5([t[0], t[1], t[2], t[3], t[4]]),
                            PanelKind::Bits1 => t
                                .iter()
                                .enumerate()
                                .fold(0u8, |b, (s, &x)| b | (u8::from(x > 0) << s)),
                        };
                    }
                }
            }
        }
    }
}

/// Interleaves `n_tokens` int8 tokens (token `t` at `q[t·stride..]`, `cols` values, zero past
/// them up to `padded_cols`) by k-step, as the panel kernels read them: value (t, k) at
/// `(k/4 · n_tokens + t)·4 + k%4`. `out` holds `n_tokens · padded_cols` bytes.
/// Blocks of 4 tokens × 4 k-steps move as one 4×4 transpose of dwords (one 4-byte copy at a time
/// is a visible share of a prefill GEMM).
pub fn interleave_acts(
    q: &[i8],
    stride: usize,
    cols: usize,
    n_tokens: usize,
    padded_cols: usize,
    out: &mut [i8],
) {
    if n_tokens == 1 {
        out[..cols].copy_from_slice(&q[..cols]);
        out[cols..padded_cols].fill(0);
        return;
    }
    let row = n_tokens * 4;
    let quads = cols / 16;
    let t4 = n_tokens / 4 * 4;
    for qd in 0..quads {
        let ks0 = 4 * qd;
        let block = &mut out[ks0 * row..(ks0 + 4) * row];
        for t in (0..t4).step_by(4) {
            let src = std::array::from_fn(|i| {
                let at = (t + i) * stride + 4 * ks0;
                <[i8; 16]>::try_from(&q[at..at + 16]).expect("16 bytes")
            });
            for (k, dwords) in transpose_dwords(src).iter().enumerate() {
                block[k * row + 4 * t..][..16].copy_from_slice(dwords);
            }
        }
        for t in t4..n_tokens {
            for k in 0..4 {
                let at = t * stride + 4 * (ks0 + k);
                block[k * row + 4 * t..][..4].copy_from_slice(&q[at..at + 4]);
            }
        }
    }
    // The k-steps after the last whole block, padding included: one value at a time.
    let done = 4 * quads;
    let rest = &mut out[done * row..n_tokens * padded_cols];
    for (i, dword) in rest.chunks_exact_mut(4).enumerate() {
        let (ks, t) = (done + i / n_tokens, i % n_tokens);
        for (j, o) in dword.iter_mut().enumerate() {
            let k = 4 * ks + j;
            *o = if k < cols { q[t * stride + k] } else { 0 };
        }
    }
}

/// `out[k]` = dword `k` of each of `src[0..4]`, in order (a 4×4 transpose of dwords).
fn transpose_dwords(src: [[i8; 16]; 4]) -> [[i8; 16]; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::*;
        // SAFETY: unaligned 16-byte loads and stores of 16-byte arrays; SSE2 is part of x86-64.
        unsafe {
            let a = src.map(|s| _mm_loadu_si128(s.as_ptr().cast()));
            let (lo01, lo23) = (
                _mm_unpacklo_epi32(a[0], a[1]),
                _mm_unpacklo_epi32(a[2], a[3]),
            );
            let (hi01, hi23) = (
                _mm_unpackhi_epi32(a[0], a[1]),
                _mm_unpackhi_epi32(a[2], a[3]),
            );
            let rows = [
                _mm_unpacklo_epi64(lo01, lo23),
                _mm_unpackhi_epi64(lo01, lo23),
                _mm_unpacklo_epi64(hi01, hi23),
                _mm_unpackhi_epi64(hi01, hi23),
            ];
            rows.map(|r| {
                let mut out = [0i8; 16];
                _mm_storeu_si128(out.as_mut_ptr().cast(), r);
                out
            })
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::array::from_fn(|k| std::array::from_fn(|b| src[b / 4][4 * k + b % 4]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trit_tuple_has_one_byte() {
        let mut seen = std::collections::HashSet::new();
        for v in 0..243usize {
            let mut t = [0i8; 5];
            let mut x = v;
            for ti in &mut t {
                *ti = (x % 3) as i8 - 1;
                x /= 3;
            }
            let b = encode5(t);
            assert!(seen.insert(b), "byte {b:#x} used twice");
            assert_eq!(decode5(b), Some(t));
        }
        assert_eq!(encode5([0; 5]), 0);
        // 243 of the 256 bytes carry a combination of their own.
        let used = (0..=255u8).filter(|&b| decode5(b).is_some()).count();
        assert!((243..=256).contains(&used), "{used} bytes decode");
    }

    /// The kernels' byte add of `quad_lo` and `quad_hi` carries out of no field for a used byte,
    /// so it is the fields' codes side by side; and the per-k-step lookups of the multi-token
    /// kernel (field `i` of each half, added) give the same codes.
    #[test]
    fn quad_add_has_no_carries() {
        for b in (0..=255u8).filter(|&b| decode5(b).is_some()) {
            let c = codes5(b);
            let (lo, hi) = (
                TRITS5.quad_lo[(b & 63) as usize],
                TRITS5.quad_hi[(b >> 2) as usize],
            );
            let sum = lo.wrapping_add(hi);
            for (i, &ci) in c[..4].iter().enumerate() {
                assert_eq!((sum >> (2 * i)) & 3, ci, "byte {b:#x} k-step {i}");
                assert_eq!(((lo >> (2 * i)) & 3) + ((hi >> (2 * i)) & 3), ci);
            }
            assert_eq!(TRITS5.fifth[(b >> 2) as usize], c[4]);
        }
    }

    /// Every value lands at `(k/4 · n_tokens + t)·4 + k%4`, zero past `cols`, for token counts
    /// around the 4-token blocks, strides wider than the tokens and k-step tails.
    #[test]
    fn interleave_places_every_value() {
        for n_tokens in 1..14 {
            for (stride, cols, padded) in
                [(64, 64, 64), (70, 52, 64), (2600, 2550, 2560), (9, 4, 8)]
            {
                let q: Vec<i8> = (0..n_tokens * stride).map(|i| (i % 251) as i8).collect();
                let mut out = vec![99i8; n_tokens * padded];
                interleave_acts(&q, stride, cols, n_tokens, padded, &mut out);
                for t in 0..n_tokens {
                    for k in 0..padded {
                        let want = if k < cols { q[t * stride + k] } else { 0 };
                        let at = (k / 4 * n_tokens + t) * 4 + k % 4;
                        assert_eq!(out[at], want, "tokens {n_tokens} cols {cols} t {t} k {k}");
                    }
                }
            }
        }
    }

    #[test]
    fn pack_then_decode() {
        for kind in [PanelKind::Codes2, PanelKind::Trits5] {
            for (group_steps, n_groups) in [(64, 3), (8, 1), (12, 2)] {
                let geom = PanelGeom {
                    kind,
                    group_steps,
                    n_groups,
                    merge: 1,
                };
                let tern = |r: usize, k: usize| ((r * 7 + k * 13 + r * k) % 3) as i8 - 1;
                let mut tile = vec![0u8; geom.tile_bytes()];
                pack_tile(&geom, tern, &mut tile);
                for r in 0..TILE_ROWS {
                    for k in 0..geom.cols() {
                        assert_eq!(code_at(&geom, &tile, r, k) as i8 - 1, tern(r, k));
                    }
                }
            }
        }
    }
}
