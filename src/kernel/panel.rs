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
//! * `Bits2` (2 bits/weight): a chunk is 4 k-steps; the byte holds the codes `ternary + 1` of
//!   k-steps `s = 0..4` in bits `2s+1:2s`.
//! * `Bits16` (1.6 bits/weight, compact): a chunk is 5 k-steps (the last chunk of a group may have
//!   fewer); the byte holds the 5 trits `(t_0..t_4)` of k-steps `i = 0..5` as `(s << 7) | slot`:
//!   `SLOTS[slot]` is the combination, negated when `s = 1` (243 combinations = 1 + 2·121 take
//!   122 of the 128 slots). The slots are laid out so that the kernels decode with lookups of at
//!   most 7 bits and little else: k-steps 0..4 by a 128-entry lookup of `slot` (`vpermi2b`, which
//!   ignores bit 7) and a masked `2 − code`; k-step 4 by a 64-entry lookup of the byte's bits 7..2
//!   (`vpermb`), sign included, because slots come in blocks of 4 (bits 1..0) that share `t_4`:
//!   blocks 0..11 hold the `t_4 = 0` combinations whose first nonzero trit is +1 (all-zero first,
//!   so byte 0 is all zero), blocks 11..32 every `t_4 = +1` combination.
//!
//! Weights past the matrix (pad rows, pad columns, unused k-steps) are stored as 0 (code 1).

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
    Bits2,
    /// 5 trits per byte (1.6 bits/weight), 5 k-steps per chunk.
    Bits16,
}

impl PanelKind {
    /// k-steps per chunk.
    pub const fn steps_per_chunk(self) -> usize {
        match self {
            Self::Bits2 => 4,
            Self::Bits16 => 5,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Bits2 => "2-bit panels",
            Self::Bits16 => "1.6-bit panels",
        }
    }
}

/// Most k-steps one dot of a panel kernel sums (`PanelGeom::group_steps · merge`), so that its
/// int32 sums cannot overflow whatever the width: 2^16 k-steps · 4 · 2 · 128 < 2^31.
pub const MAX_DOT_STEPS: usize = 1 << 16;

/// The shape of one tile's data, and how a kernel sums it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PanelGeom {
    pub kind: PanelKind,
    /// k-steps (4 columns each) per group; a multiple of 4 for `Bits2`.
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
    pub fn chunks_per_group(&self) -> usize {
        self.group_steps.div_ceil(self.kind.steps_per_chunk())
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

/// The trit combinations of `Bits16`'s 128 slots (module docs): slots 0..41 hold `t_4 = 0` and
/// all-zero or a first nonzero trit of +1, slots 44..125 `t_4 = +1` and every `t_0..t_3` (both in
/// base-3 order); the spares 41..44 repeat all-zero and 125..128 `(0, 0, 0, 0, +1)`, so every
/// block of 4 shares `t_4` and every byte decodes to something.
pub const SLOTS: [[i8; 5]; 128] = slots();

/// First slot of the `t_4 = +1` combinations (block 11).
const T4_ONE_SLOTS: usize = 44;

const fn slots() -> [[i8; 5]; 128] {
    let mut out = [[0i8; 5]; 128];
    let mut n = 1; // slot 0: all zero
    let mut v = 0;
    while v < 81 {
        let mut q = [0i8; 5];
        let mut x = v;
        let mut i = 0;
        while i < 4 {
            q[i] = (x % 3) as i8 - 1;
            x /= 3;
            i += 1;
        }
        let mut first = 0;
        let mut i = 0;
        while i < 4 {
            if q[i] != 0 {
                first = q[i];
                break;
            }
            i += 1;
        }
        if first == 1 {
            out[n] = q;
            n += 1;
        }
        q[4] = 1;
        out[T4_ONE_SLOTS + v] = q;
        v += 1;
    }
    assert!(n == 41);
    let mut spare = T4_ONE_SLOTS + 81;
    while spare < 128 {
        out[spare] = [0, 0, 0, 0, 1];
        spare += 1;
    }
    out
}

/// `DECODE[i][slot]` = code (`trit + 1`) of k-step `i < 4` in `SLOTS[slot]`: the 128-entry
/// lookup tables of the multi-token `Bits16` kernel (k-step 4: `DECODE_FIFTH`).
pub static DECODE: [[u8; 128]; 4] = decode_tables();

const fn decode_tables() -> [[u8; 128]; 4] {
    let mut out = [[0u8; 128]; 4];
    let mut slot = 0;
    while slot < 128 {
        let mut i = 0;
        while i < 4 {
            out[i][slot] = (SLOTS[slot][i] + 1) as u8;
            i += 1;
        }
        slot += 1;
    }
    out
}

/// `DECODE_QUAD[slot]`: the codes of k-steps 0..4 of `SLOTS[slot]` as one `Bits2` byte (code of
/// k-step `s` in bits `2s+1:2s`). Negating the combination maps it to `0xAA − byte` (every
/// field `c → 2 − c`, no borrows).
pub static DECODE_QUAD: [u8; 128] = decode_quad();

const fn decode_quad() -> [u8; 128] {
    let mut out = [0u8; 128];
    let mut slot = 0;
    while slot < 128 {
        let mut b = 0u8;
        let mut i = 0;
        while i < 4 {
            b |= ((SLOTS[slot][i] + 1) as u8) << (2 * i);
            i += 1;
        }
        out[slot] = b;
        slot += 1;
    }
    out
}

/// `DECODE_FIFTH[byte >> 2]`: the code of k-step 4 of a `Bits16` byte, sign included (bits 7..2
/// are the sign and the slot's block, which fixes `t_4`).
pub static DECODE_FIFTH: [u8; 64] = decode_fifth();

const fn decode_fifth() -> [u8; 64] {
    let mut out = [0u8; 64];
    let mut h = 0;
    while h < 64 {
        let t4 = SLOTS[4 * (h & 31)][4];
        out[h] = (1 + if h >= 32 { -t4 } else { t4 }) as u8;
        h += 1;
    }
    out
}

/// The `Bits16` byte of five trits (each in {-1, 0, 1}).
pub fn encode5(t: [i8; 5]) -> u8 {
    static ENCODE: std::sync::OnceLock<[u8; 243]> = std::sync::OnceLock::new();
    let key = |c: &[i8; 5]| {
        c.iter()
            .rev()
            .fold(0usize, |a, &x| a * 3 + (x + 1) as usize)
    };
    let table = ENCODE.get_or_init(|| {
        // Each combination takes the first byte that decodes to it (spares and -0 stay unused).
        let mut e = [None; 243];
        for byte in 0..=255u8 {
            e[key(&decode5(byte))].get_or_insert(byte);
        }
        e.map(|b| b.expect("every combination has a byte"))
    });
    table[key(&t)]
}

/// The five trits of a `Bits16` byte.
pub fn decode5(byte: u8) -> [i8; 5] {
    let t = SLOTS[(byte & 0x7f) as usize];
    if byte & 0x80 != 0 { t.map(|x| -x) } else { t }
}

/// The code (`trit + 1`, 0..=2) of (row `r` in the tile, column `k`) in tile bytes `tile`: the
/// reference decoder of the layout (the scalar kernel and the tests use it).
pub fn code_at(geom: &PanelGeom, tile: &[u8], r: usize, k: usize) -> u8 {
    let (g, c, pos, j) = geom.locate(k);
    let (p, l) = (r / PANEL_ROWS, r % PANEL_ROWS);
    let byte = tile[geom.vec_offset(g, c, p) + 4 * l + j];
    match geom.kind {
        PanelKind::Bits2 => (byte >> (2 * pos)) & 3,
        PanelKind::Bits16 => (decode5(byte)[pos] + 1) as u8,
    }
}

/// Packs one tile: `tern(r, k)` is the ternary weight of tile row `r < 64` and column
/// `k < geom.cols()` (0 past the matrix). `out` is `geom.tile_bytes()` long.
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
                        let mut t = [0i8; 5];
                        for (s, ts) in t.iter_mut().enumerate().take(steps) {
                            *ts = tern(r, 4 * (first + s) + j);
                        }
                        v[4 * l + j] = match geom.kind {
                            PanelKind::Bits2 => t[..4]
                                .iter()
                                .enumerate()
                                .fold(0u8, |b, (s, &x)| b | (((x + 1) as u8) << (2 * s))),
                            PanelKind::Bits16 => encode5(t),
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
/// took 6 % of a 640×2560 GEMM of 128 tokens).
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
            assert_eq!(decode5(b), t);
        }
        assert_eq!(encode5([0; 5]), 0);
    }

    /// The kernels' lookups (`DECODE`, `DECODE_QUAD` + `0xAA − byte`, `DECODE_FIFTH`) decode
    /// every byte, spares and sign included, as `decode5` does.
    #[test]
    fn lookup_tables_match_decode5() {
        for b in 0..=255u8 {
            let (t, slot, neg) = (decode5(b), (b & 0x7f) as usize, b & 0x80 != 0);
            let flip = |code: u8| if neg { 2 - code } else { code };
            let quad = if neg {
                0xAA - DECODE_QUAD[slot]
            } else {
                DECODE_QUAD[slot]
            };
            for i in 0..4 {
                assert_eq!(
                    flip(DECODE[i][slot]) as i8 - 1,
                    t[i],
                    "byte {b:#x} k-step {i}"
                );
                assert_eq!(
                    ((quad >> (2 * i)) & 3) as i8 - 1,
                    t[i],
                    "byte {b:#x} quad {i}"
                );
            }
            assert_eq!(
                DECODE_FIFTH[(b >> 2) as usize] as i8 - 1,
                t[4],
                "byte {b:#x}"
            );
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
        for kind in [PanelKind::Bits2, PanelKind::Bits16] {
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
