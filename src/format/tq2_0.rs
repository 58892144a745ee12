//! ggml TQ2_0: blocks of 256 elements in 66 bytes — `qs[64]` of 2-bit codes `ternary + 1`, then
//! the f16 scale `d`. Element `e = 128·g + 32·l + m` sits in bits `2l..2l+1` of byte `32·g + m`
//! (spec `ggml_ternary_gguf.md` §1.3). Least significant pair first — the opposite of I2_S.

use half::f16;

use super::tq::BLOCK;
use super::tq::{self, Kind};
use super::{Format, FormatSpec, GgufId, Layout, Peer, Values, no_variant};
use crate::error::{Error, Result};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::Tq2_0,
    name: "TQ2_0",
    values: Values::Ternary,
    compact_panels: false,
    per_block_scales: true,
    f16_scales: true,
    peer: Peer::GgmlQ8K,
    gguf_id: GgufId::Mainline(35),
    file_type: 37,
    tiling: None,
    layout: |variant, _| no_variant("TQ2_0", variant).map(|_| Layout::Tq(Kind::Tq2_0)),
    check_shape: |_, shape| tq::check_shape("TQ2_0", shape),
    packed_size: |_, shape| Ok(tq::block_count(shape) * BLOCK_BYTES),
    elements_per_scale: |_| tq::BLOCK,
    pack: |_, _, ternary, scales, dst| Kind::Tq2_0.codec().pack_all(ternary, scales, dst),
    validate: |_, _, src| Kind::Tq2_0.codec().validate_all(src),
    unpack: |_, _, src, ternary| {
        Kind::Tq2_0.codec().unpack_all(src, ternary);
        Ok(())
    },
};

pub const BLOCK_BYTES: usize = 66;

/// Packs 256 ternary values with scale `d` into one 66-byte block.
pub fn pack_block(ternary: &[i8], d: f16, out: &mut [u8]) {
    for g in 0..2 {
        for m in 0..32 {
            let code = |l: usize| (ternary[128 * g + 32 * l + m] + 1) as u8;
            out[32 * g + m] = code(0) | (code(1) << 2) | (code(2) << 4) | (code(3) << 6);
        }
    }
    out[64..66].copy_from_slice(&d.to_le_bytes());
}

/// Checks one block (no code 3, finite `d`) and returns `d`. `index` names it in the message.
pub fn validate_block(block: &[u8], index: usize) -> Result<f16> {
    if let Some(p) = block[..64].iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
        return Err(Error::invalid(format!(
            "corrupt TQ2_0 data: block {index} byte {p} holds the code 3, which TQ2_0 never writes"
        )));
    }
    super::tq::check_d(block, 64, index, "TQ2_0")
}

/// Writes the 256 ternary values of a block that passed `validate_block`.
pub fn unpack_block(block: &[u8], ternary: &mut [i8]) {
    for g in 0..2 {
        for m in 0..32 {
            let byte = block[32 * g + m];
            for l in 0..4 {
                ternary[128 * g + 32 * l + m] = ((byte >> (2 * l)) & 3) as i8 - 1;
            }
        }
    }
}

const _: () = assert!(BLOCK == 256);
