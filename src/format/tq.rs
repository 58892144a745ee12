//! What ggml's two ternary types share: 256-element blocks, one f16 scale per block, rows of
//! whole blocks, and the reference quantizer `quantize_row_tqX_0_ref`.

use half::f16;

use super::Shape;
use crate::error::{Error, Result, try_collect, try_reserve};

/// Elements per block (ggml `QK_K`).
pub const BLOCK: usize = 256;

pub fn check_shape(name: &str, shape: Shape) -> Result<()> {
    if !shape.cols.is_multiple_of(BLOCK) {
        return Err(Error::invalid(format!(
            "{name} needs cols to be a multiple of {BLOCK} (got cols = {})",
            shape.cols
        )));
    }
    Ok(())
}

/// Blocks of a matrix (= scales it stores).
pub fn block_count(shape: Shape) -> usize {
    shape.elements() / BLOCK
}

/// Reads the f16 `d` at `offset` of a block and checks it is finite (ggml's
/// `ggml_validate_row_data` rule; a negative `d` is valid).
pub fn check_d(block: &[u8], offset: usize, index: usize, name: &str) -> Result<f16> {
    let d = f16::from_le_bytes([block[offset], block[offset + 1]]);
    if !d.is_finite() {
        return Err(Error::invalid(format!(
            "corrupt {name} data: block {index} has the non-finite scale {d}"
        )));
    }
    Ok(d)
}

/// ggml `quantize_row_tqX_0_ref` for one block: `d = max|x|` (f32), `t = lroundf(x/d)` (half away
/// from zero) using the unrounded `1/d`; returns the f32 `d` (stored as f16 by the packer).
pub fn quantize_block_ref(x: &[f32], ternary: &mut [i8]) -> f32 {
    let d = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (t, &v) in ternary.iter_mut().zip(x) {
        *t = (v * id).round() as i8;
    }
    d
}

/// ggml's two ternary block types (`tern::format::TqKind`, for [`Layout::Tq`](super::Layout::Tq)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// TQ1_0: base-3 packed (mostly 5 weights per byte), 54 bytes per 256 weights.
    Tq1_0,
    /// TQ2_0: 2 bits per weight, 66 bytes per 256 weights.
    Tq2_0,
}

impl Kind {
    pub fn codec(self) -> Codec {
        match self {
            Self::Tq1_0 => Codec {
                name: "TQ1_0",
                block_bytes: super::tq1_0::BLOCK_BYTES,
                pack: super::tq1_0::pack_block,
                validate: super::tq1_0::validate_block,
                unpack: super::tq1_0::unpack_block,
            },
            Self::Tq2_0 => Codec {
                name: "TQ2_0",
                block_bytes: super::tq2_0::BLOCK_BYTES,
                pack: super::tq2_0::pack_block,
                validate: super::tq2_0::validate_block,
                unpack: super::tq2_0::unpack_block,
            },
        }
    }
}

/// One TQ type's block functions.
pub struct Codec {
    pub name: &'static str,
    pub block_bytes: usize,
    pub pack: fn(&[i8], f16, &mut [u8]),
    pub validate: fn(&[u8], usize) -> Result<f16>,
    pub unpack: fn(&[u8], &mut [i8]),
}

impl Codec {
    /// Packs every block; each scale is stored as f16 (round to nearest even, as ggml does) and
    /// must fit its range.
    pub fn pack_all(&self, ternary: &[i8], scales: &[f32], dst: &mut [u8]) -> Result<()> {
        let halves = try_collect(scales.iter().map(|&s| f16::from_f32(s)), "the f16 scales")?;
        if let Some(i) = halves.iter().position(|h| !h.is_finite()) {
            return Err(Error::invalid(format!(
                "scales[{i}] = {} exceeds the f16 range that {} stores scales in (max 65504)",
                scales[i], self.name
            )));
        }
        for ((t, &d), out) in ternary
            .chunks_exact(BLOCK)
            .zip(&halves)
            .zip(dst.chunks_exact_mut(self.block_bytes))
        {
            (self.pack)(t, d, out);
        }
        Ok(())
    }

    /// Validates every block and returns the scales as f32.
    pub fn validate_all(&self, src: &[u8]) -> Result<Vec<f32>> {
        let mut scales = Vec::new();
        try_reserve(&mut scales, src.len() / self.block_bytes, "the scales")?;
        for (i, b) in src.chunks_exact(self.block_bytes).enumerate() {
            scales.push(f32::from((self.validate)(b, i)?));
        }
        Ok(scales)
    }

    pub fn unpack_all(&self, src: &[u8], ternary: &mut [i8]) {
        for (b, t) in src
            .chunks_exact(self.block_bytes)
            .zip(ternary.chunks_exact_mut(BLOCK))
        {
            (self.unpack)(b, t);
        }
    }
}
