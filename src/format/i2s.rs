//! I2_S (bitnet.cpp `ggml-bitnet-mad.cpp`): 2-bit codes `ternary + 1` in blocks of 128 (x86) or 64
//! (ARM) consecutive elements of the flat row-major matrix. Byte `p` of a block holds elements
//! `p, p+Q, p+2Q, p+3Q` (Q = block/4) in bits 7:6, 5:4, 3:2, 1:0. After the `rows·cols/4` code
//! bytes come the f32 tensor scale and 28 zero bytes (spec `bitnet_cpp.md` §2.2).

use super::{Format, FormatSpec, GgufId, I2sVariant, Layout, Peer, Shape, Values};
use crate::error::{Error, Result};

pub static SPEC: FormatSpec = FormatSpec {
    format: Format::I2S,
    name: "I2_S",
    values: Values::Ternary,
    compact_panels: false,
    per_block_scales: false,
    f16_scales: false,
    peer: Peer::BitnetI2s,
    gguf_id: GgufId::Bitnet(36),
    file_type: 40,
    tiling: None,
    layout: |variant, _| I2sVariant::from_u32(variant).map(Layout::I2s),
    check_shape: |p, shape| check_shape(p.variant, shape),
    packed_size: |_, shape| Ok(packed_size(shape)),
    elements_per_scale: Shape::elements,
    pack: |p, _, ternary, scales, dst| {
        pack(p.variant, ternary, scales[0], dst);
        Ok(())
    },
    validate: |_, shape, src| Ok(vec![validate(src, shape)?]),
    unpack: |p, shape, src, ternary| {
        unpack(p.variant, &src[..code_bytes(shape)], ternary);
        Ok(())
    },
};

/// Bytes after the codes: the f32 scale plus 28 bytes that bitnet.cpp reserves (we write zeros).
pub const TAIL_BYTES: usize = 32;

pub fn check_shape(variant: I2sVariant, shape: Shape) -> Result<()> {
    let block = variant.block_len();
    if !shape.cols.is_multiple_of(block) {
        return Err(Error::invalid(format!(
            "I2_S {} needs cols to be a multiple of {block} (got cols = {})",
            variant.name(),
            shape.cols
        )));
    }
    Ok(())
}

/// Bytes of the 2-bit codes alone.
pub fn code_bytes(shape: Shape) -> usize {
    shape.elements() / 4
}

pub fn packed_size(shape: Shape) -> usize {
    code_bytes(shape) + TAIL_BYTES
}

/// The 2-bit code of flat element `elem` (the scalar kernels' and tests' reference decoder).
#[inline]
pub fn code_at(variant: I2sVariant, codes: &[u8], elem: usize) -> u8 {
    let block = variant.block_len();
    let quarter = block / 4;
    let (b, j) = (elem / block, elem % block);
    let byte = codes[b * quarter + j % quarter];
    (byte >> (6 - 2 * (j / quarter))) & 3
}

/// Packs ternary values (each in {-1, 0, 1}, checked by the caller) and the tensor scale into
/// `dst`, which must be exactly `packed_size(shape)` bytes.
pub fn pack(variant: I2sVariant, ternary: &[i8], scale: f32, dst: &mut [u8]) {
    let (codes, tail) = dst.split_at_mut(ternary.len() / 4);
    pack_codes(variant, ternary, codes);
    tail[..4].copy_from_slice(&scale.to_le_bytes());
    tail[4..].fill(0);
}

/// Writes the codes of `ternary` (a whole number of blocks) into `codes` (`len/4` bytes).
pub fn pack_codes(variant: I2sVariant, ternary: &[i8], codes: &mut [u8]) {
    let quarter = variant.block_len() / 4;
    for (block, out) in ternary
        .chunks_exact(4 * quarter)
        .zip(codes.chunks_exact_mut(quarter))
    {
        for (p, byte) in out.iter_mut().enumerate() {
            let code = |s: usize| (block[s * quarter + p] + 1) as u8;
            *byte = (code(0) << 6) | (code(1) << 4) | (code(2) << 2) | code(3);
        }
    }
}

/// Checks a packed buffer (no code 3, a finite non-negative scale) and returns its scale.
/// `src` must hold at least `packed_size(shape)` bytes.
pub fn validate(src: &[u8], shape: Shape) -> Result<f32> {
    let n = code_bytes(shape);
    if let Some(pos) = src[..n].iter().position(|&b| b & (b >> 1) & 0x55 != 0) {
        return Err(Error::invalid(format!(
            "corrupt I2_S data: byte {pos} holds the code 3, which I2_S never writes (codes are 0, 1, 2)"
        )));
    }
    let scale = f32::from_le_bytes(src[n..n + 4].try_into().expect("4 bytes"));
    if !scale.is_finite() || scale < 0.0 {
        return Err(Error::invalid(format!(
            "corrupt I2_S data: the tensor scale at byte {n} is {scale}, expected a finite value >= 0"
        )));
    }
    Ok(scale)
}

/// Inverse of `pack` for a buffer that passed `validate`: writes `rows·cols` ternary values.
pub fn unpack(variant: I2sVariant, src: &[u8], ternary: &mut [i8]) {
    decode(variant, src, ternary, |code| code as i8 - 1);
}

/// Walks the codes block by block and writes `map(code)` for each element of `out`.
fn decode<T>(variant: I2sVariant, src: &[u8], out: &mut [T], map: impl Fn(u8) -> T) {
    let quarter = variant.block_len() / 4;
    for (block, bytes) in out
        .chunks_exact_mut(4 * quarter)
        .zip(src.chunks_exact(quarter))
    {
        for (p, &byte) in bytes.iter().enumerate() {
            for s in 0..4 {
                block[s * quarter + p] = map((byte >> (6 - 2 * s)) & 3);
            }
        }
    }
}
