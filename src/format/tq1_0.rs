//! ggml TQ1_0: blocks of 256 elements in 54 bytes — `qs[48]` holding 5 trits per byte, `qh[4]`
//! holding 4, then the f16 scale `d` (spec `ggml_ternary_gguf.md` §1.2). A byte stores
//! `ceil(v·256/243)` for the base-3 number `v` of its trits (most significant first); trit `n` is
//! recovered as `((byte·3^n mod 256)·3) >> 8`.

use half::f16;

use super::tq::{self, Kind};
use super::{Format, FormatSpec, GgufId, Layout, Peer, Values, no_variant};
use crate::error::{Error, Result};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::Tq1_0,
    name: "TQ1_0",
    values: Values::Ternary,
    compact_panels: true,
    per_block_scales: true,
    f16_scales: true,
    peer: Peer::GgmlQ8K,
    gguf_id: GgufId::Mainline(34),
    file_type: 36,
    tiling: None,
    layout: |variant, _| no_variant("TQ1_0", variant).map(|_| Layout::Tq(Kind::Tq1_0)),
    check_shape: |_, shape| tq::check_shape("TQ1_0", shape),
    packed_size: |_, shape| Ok(tq::block_count(shape) * BLOCK_BYTES),
    elements_per_scale: |_| tq::BLOCK,
    pack: |_, _, ternary, scales, dst| Kind::Tq1_0.codec().pack_all(ternary, scales, dst),
    validate: |_, _, src| Kind::Tq1_0.codec().validate_all(src),
    unpack: |_, _, src, ternary| {
        Kind::Tq1_0.codec().unpack_all(src, ternary);
        Ok(())
    },
};

pub const BLOCK_BYTES: usize = 54;

const POW3: [u16; 5] = [1, 3, 9, 27, 81];

/// For each element of a block: the byte that holds it and its trit position (0 = most
/// significant), in the spec's order, computed at compile time.
const PLACEMENT: [(u8, u8); 256] = placement_table();

const fn placement_table() -> [(u8, u8); 256] {
    let mut t = [(0u8, 0u8); 256];
    let mut n = 0;
    while n < 5 {
        let mut m = 0;
        while m < 32 {
            t[32 * n + m] = (m as u8, n as u8);
            if m < 16 {
                t[160 + 16 * n + m] = ((32 + m) as u8, n as u8);
            }
            if m < 4 && n < 4 {
                t[240 + 4 * n + m] = ((48 + m) as u8, n as u8);
            }
            m += 1;
        }
        n += 1;
    }
    t
}

/// `ceil(v·256/243)` for `v` ≤ 242, in u16 (`v·256` ≤ 61952) so it vectorizes.
fn encode(v: u16) -> u8 {
    (v * 256).div_ceil(243) as u8
}

fn trit(byte: u8, n: usize) -> u8 {
    let p = (byte as u16 * POW3[n]) as u8;
    ((p as u16 * 3) >> 8) as u8
}

/// Packs 256 ternary values with scale `d` into one 54-byte block. Byte `m` of each of the three
/// runs (`qs[0..32]`, `qs[32..48]`, `qh`) takes the elements `m`, `m + len`, … of its run
/// (`PLACEMENT`); the loops run across `m`, so they vectorize.
pub fn pack_block(ternary: &[i8], d: f16, out: &mut [u8]) {
    let (t, out) = (&ternary[..256], &mut out[..54]);
    pack_run::<32>(&t[..160], 5, &mut out[..32]);
    pack_run::<16>(&t[160..240], 5, &mut out[32..48]);
    pack_run::<4>(&t[240..], 4, &mut out[48..52]);
    out[52..54].copy_from_slice(&d.to_le_bytes());
}

/// Encodes `trits` rows of `N` elements into `N` bytes: byte `m` holds the trits of elements
/// `m, N + m, …` (most significant first; a 4-trit byte has a zero 5th digit).
fn pack_run<const N: usize>(t: &[i8], trits: usize, out: &mut [u8]) {
    let mut v = [0u16; N];
    for row in t.chunks_exact(N).take(trits) {
        for (v, &x) in v.iter_mut().zip(row) {
            *v = *v * 3 + (x + 1) as u16;
        }
    }
    for (o, v) in out.iter_mut().zip(v) {
        *o = encode(if trits == 5 { v } else { v * 3 });
    }
}

/// Checks one block (every byte decodes to trits that re-encode to it, i.e. a byte an encoder
/// can write; finite `d`) and returns `d`.
pub fn validate_block(block: &[u8], index: usize) -> Result<f16> {
    for (b, &byte) in block[..52].iter().enumerate() {
        let trits = if b < 48 { 5 } else { 4 };
        let v = (0..trits).fold(0u16, |acc, n| acc + trit(byte, n) as u16 * POW3[4 - n]);
        if encode(v) != byte {
            return Err(Error::invalid(format!(
                "corrupt TQ1_0 data: block {index} byte {b} = {byte:#04x} is not a valid base-3 encoding"
            )));
        }
    }
    super::tq::check_d(block, 52, index, "TQ1_0")
}

/// Writes the 256 ternary values of a block that passed `validate_block`.
pub fn unpack_block(block: &[u8], ternary: &mut [i8]) {
    for (t, &(byte, n)) in ternary.iter_mut().zip(&PLACEMENT) {
        *t = trit(block[byte as usize], n as usize) as i8 - 1;
    }
}
