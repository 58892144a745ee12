//! Mainline ggml Q2_0 (type id 42): blocks of 64 elements in 18 bytes — the f16 scale `d`, then
//! `qs[16]` of 2-bit codes `q`, element `j` in bits `2·(j % 4)..` of byte `j / 4` (least
//! significant pair first). The element is `(q − 1)·d`: codes 0..3 mean −1, 0, +1, +2. ggml's
//! reference quantizer (`d = max|x|`) never writes code 3, but a file may hold it, and it is a
//! valid value here: `+2·d`.

use super::qx_0::Codec;
use super::{Format, Layout, Values};

pub static SPEC: super::FormatSpec = super::qx_0::spec!(
    Format::Q2_0,
    Layout::Q2_0,
    CODEC,
    Values::TernaryPlusTwo,
    // GGUF type id; `general.file_type` (LLAMA_FTYPE_MOSTLY_Q2_0).
    42,
    41
);

/// Elements per block (ggml `QK2_0`).
pub const BLOCK: usize = 64;
/// Bytes per block (`sizeof(block_q2_0)`).
pub const BLOCK_BYTES: usize = 2 + BLOCK / 4;

/// The Q2_0 block functions; sizes, pack, unpack, validation and dequantization are methods of it.
pub const CODEC: Codec = Codec {
    name: "Q2_0",
    block: BLOCK,
    block_bytes: BLOCK_BYTES,
    holds: |v| (-1..=2).contains(&v),
    allowed: "-1, 0, 1, 2",
    pack_codes,
    unpack_codes,
    // ggml: `((int)q - 1) * d`, an int converted to float times `d`.
    element: |v, d| v as f32 * d,
};

/// Packs 64 values in −1..=2 into the 16 code bytes of a block.
pub fn pack_codes(values: &[i8], codes: &mut [u8]) {
    for (byte, v) in codes.iter_mut().zip(values.chunks_exact(4)) {
        *byte = v
            .iter()
            .enumerate()
            .fold(0u8, |b, (l, &v)| b | (((v + 1) as u8 & 3) << (2 * l)));
    }
}

/// Writes the 64 values (−1..=2) of the 16 code bytes of a block.
pub fn unpack_codes(codes: &[u8], values: &mut [i8]) {
    for (&byte, v) in codes.iter().zip(values.chunks_exact_mut(4)) {
        for (l, v) in v.iter_mut().enumerate() {
            *v = ((byte >> (2 * l)) & 3) as i8 - 1;
        }
    }
}
