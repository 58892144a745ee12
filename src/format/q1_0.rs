//! Mainline ggml Q1_0 (type id 41), the binary BitNet b1 weight: blocks of 128 elements in 18
//! bytes — the f16 scale `d`, then `qs[16]` of sign bits, element `j` in bit `j % 8` of byte
//! `j / 8`. A set bit means `+d`, a clear one `−d`.

use super::qx_0::Codec;
use super::{Format, FormatSpec, GgufId, Layout, Peer, Values, no_variant};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::Q1_0,
    name: "Q1_0",
    values: Values::Binary,
    compact_panels: false,
    per_block_scales: true,
    f16_scales: true,
    peer: Peer::GgmlQ8_0,
    gguf_id: GgufId::Mainline(41),
    // LLAMA_FTYPE_MOSTLY_Q1_0
    file_type: 40,
    tiling: None,
    layout: |variant, _| no_variant("Q1_0", variant).map(|_| Layout::Q1_0),
    check_shape: |_, shape| CODEC.check_shape(shape),
    packed_size: |_, shape| CODEC.packed_size(shape),
    elements_per_scale: |_| BLOCK,
    pack: |_, shape, values, scales, dst| CODEC.pack(shape, values, scales, dst),
    validate: |_, shape, src| CODEC.validate(shape, src),
    unpack: |_, _, src, values| {
        CODEC.unpack_values(src, values);
        Ok(())
    },
};

/// Elements per block (ggml `QK1_0`).
pub const BLOCK: usize = 128;
/// Bytes per block (`sizeof(block_q1_0)`).
pub const BLOCK_BYTES: usize = 2 + BLOCK / 8;

/// The Q1_0 block functions; sizes, pack, unpack, validation and dequantization are methods of it.
pub const CODEC: Codec = Codec {
    name: "Q1_0",
    block: BLOCK,
    block_bytes: BLOCK_BYTES,
    holds: |v| v == 1 || v == -1,
    allowed: "-1, 1",
    pack_codes,
    unpack_codes,
    // ggml: `bit ? d : -d` (a sign flip, not a product: they differ on a NaN `d`).
    element: |v, d| if v > 0 { d } else { -d },
};

/// Packs 128 values ±1 into the 16 sign bytes of a block.
pub fn pack_codes(values: &[i8], codes: &mut [u8]) {
    for (byte, v) in codes.iter_mut().zip(values.chunks_exact(8)) {
        *byte = v
            .iter()
            .enumerate()
            .fold(0u8, |b, (l, &v)| b | (u8::from(v > 0) << l));
    }
}

/// Writes the 128 values (±1) of the 16 sign bytes of a block.
pub fn unpack_codes(codes: &[u8], values: &mut [i8]) {
    for (&byte, v) in codes.iter().zip(values.chunks_exact_mut(8)) {
        for (l, v) in v.iter_mut().enumerate() {
            *v = if (byte >> l) & 1 != 0 { 1 } else { -1 };
        }
    }
}
