//! Mainline ggml Q1_0 (type id 41), the binary BitNet b1 weight: blocks of 128 elements in 18
//! bytes — the f16 scale `d`, then `qs[16]` of sign bits, element `j` in bit `j % 8` of byte
//! `j / 8`. A set bit means `+d`, a clear one `−d`.

use super::qx_0::Codec;
use super::{Format, Layout, Values};

pub static SPEC: super::FormatSpec = super::qx_0::spec!(
    Format::Q1_0,
    Layout::Q1_0,
    CODEC,
    Values::Binary,
    // GGUF type id; `general.file_type` (LLAMA_FTYPE_MOSTLY_Q1_0).
    41,
    40
);

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
