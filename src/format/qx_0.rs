//! What mainline ggml's two low-bit types Q2_0 and Q1_0 share: blocks of `block` elements stored
//! as the f16 scale `d` (bytes 0..2, little-endian) followed by the packed codes, rows of whole
//! blocks, and a scale that must be finite (ggml's `ggml_validate_row_data` rule; a negative `d`
//! is valid). Each type supplies its block functions in a [`Codec`].

use half::f16;

use super::Shape;
use crate::error::{Error, Result, try_collect, try_reserve};

/// The `FormatSpec` row of a Q*_0 type, all of it from its codec: per-block f16 scales, no
/// variants or tiling, ggml's Q8_0 kernels as its peer.
macro_rules! spec {
    ($format:expr, $layout:expr, $codec:expr, $values:expr, $gguf_id:expr, $file_type:expr) => {
        $crate::format::FormatSpec {
            format: $format,
            name: $codec.name,
            values: $values,
            compact_panels: false,
            per_block_scales: true,
            f16_scales: true,
            peer: $crate::format::Peer::GgmlQ8_0,
            gguf_id: $crate::format::GgufId::Mainline($gguf_id),
            file_type: $file_type,
            tiling: None,
            layout: |variant, _| $crate::format::no_variant($codec.name, variant).map(|_| $layout),
            check_shape: |_, shape| $codec.check_shape(shape),
            packed_size: |_, shape| $codec.packed_size(shape),
            elements_per_scale: |_| $codec.block,
            pack: |_, shape, values, scales, dst| $codec.pack(shape, values, scales, dst),
            validate: |_, shape, src| $codec.validate(shape, src),
            unpack: |_, _, src, values| {
                $codec.unpack_values(src, values);
                Ok(())
            },
        }
    };
}
pub(crate) use spec;

/// One type's block functions. `values` are the small integers the codes mean (Q2_0: −1..=2,
/// Q1_0: ±1); the element is `value · d`.
pub struct Codec {
    pub name: &'static str,
    /// Elements per block.
    pub block: usize,
    /// Bytes per block: 2 (the f16 `d`) + the codes.
    pub block_bytes: usize,
    /// Whether `v` is a value a code can hold.
    pub holds: fn(i8) -> bool,
    /// The values a code can hold, for messages.
    pub allowed: &'static str,
    /// Writes the codes of `block` values (each passing `holds`) into `out` (the code bytes only).
    pub pack_codes: fn(&[i8], &mut [u8]),
    /// Writes the `block` values of the code bytes `codes`.
    pub unpack_codes: fn(&[u8], &mut [i8]),
    /// The element a value means with the scale `d`, as ggml's `dequantize_row_*` computes it.
    pub element: fn(i8, f32) -> f32,
}

impl Codec {
    /// `Ok` when `cols` is a multiple of the block, else an error naming the shape.
    pub fn check_shape(&self, shape: Shape) -> Result<()> {
        if !shape.cols.is_multiple_of(self.block) {
            return Err(Error::invalid(format!(
                "{} needs cols to be a multiple of its block of {} (got rows = {}, cols = {})",
                self.name, self.block, shape.rows, shape.cols
            )));
        }
        Ok(())
    }

    /// Blocks of a matrix (= scales it stores).
    pub fn block_count(&self, shape: Shape) -> Result<usize> {
        self.check_shape(shape)?;
        Ok(shape.elements() / self.block)
    }

    /// Bytes of a `shape` matrix in this format.
    pub fn packed_size(&self, shape: Shape) -> Result<usize> {
        Ok(self.block_count(shape)? * self.block_bytes)
    }

    /// Packs `values` (`shape.elements()`, each one a code can hold) and one scale per block
    /// (stored as f16, round to nearest even as ggml does; it must fit the f16 range) into `dst`
    /// (`packed_size` bytes). On error `dst` is untouched.
    pub fn pack(&self, shape: Shape, values: &[i8], scales: &[f32], dst: &mut [u8]) -> Result<()> {
        let blocks = self.block_count(shape)?;
        self.check_lengths(blocks, values.len(), scales.len(), dst.len(), "dst")?;
        if let Some(i) = values[..blocks * self.block]
            .iter()
            .position(|&v| !(self.holds)(v))
        {
            return Err(Error::invalid(format!(
                "values[{i}] = {} (block {}) is not a {} value (allowed: {})",
                values[i],
                i / self.block,
                self.name,
                self.allowed
            )));
        }
        let halves = try_collect(
            scales[..blocks].iter().map(|&s| f16::from_f32(s)),
            "the f16 scales",
        )?;
        if let Some(i) = halves.iter().position(|h| !h.is_finite()) {
            return Err(Error::invalid(format!(
                "scales[{i}] = {} exceeds the f16 range that {} stores scales in (max 65504)",
                scales[i], self.name
            )));
        }
        for ((v, d), out) in values
            .chunks_exact(self.block)
            .zip(&halves)
            .zip(dst.chunks_exact_mut(self.block_bytes))
        {
            out[..2].copy_from_slice(&d.to_le_bytes());
            (self.pack_codes)(v, &mut out[2..]);
        }
        Ok(())
    }

    /// Checks every block of `src` (`packed_size` bytes; every scale finite) and returns the
    /// scales as f32.
    pub fn validate(&self, shape: Shape, src: &[u8]) -> Result<Vec<f32>> {
        let blocks = self.block_count(shape)?;
        self.check_bytes(blocks, src.len(), "src")?;
        let mut scales = Vec::new();
        try_reserve(&mut scales, blocks, "the scales")?;
        for (i, b) in src[..blocks * self.block_bytes]
            .chunks_exact(self.block_bytes)
            .enumerate()
        {
            scales.push(f32::from(self.scale_of(b, i)?));
        }
        Ok(scales)
    }

    /// The f16 `d` of `block` (the `index`-th), if finite.
    pub fn scale_of(&self, block: &[u8], index: usize) -> Result<f16> {
        let d = f16::from_le_bytes([block[0], block[1]]);
        if !d.is_finite() {
            return Err(Error::invalid(format!(
                "corrupt {} data: block {index} has the non-finite scale {d}",
                self.name
            )));
        }
        Ok(d)
    }

    /// Validates `src` and writes its values (`shape.elements()`) and scales (one per block).
    /// On error nothing is written.
    pub fn unpack(
        &self,
        shape: Shape,
        src: &[u8],
        values: &mut [i8],
        scales: &mut [f32],
    ) -> Result<()> {
        let found = self.validate(shape, src)?;
        let blocks = found.len();
        self.check_lengths(blocks, values.len(), scales.len(), src.len(), "src")?;
        for (b, v) in src
            .chunks_exact(self.block_bytes)
            .zip(values.chunks_exact_mut(self.block))
        {
            (self.unpack_codes)(&b[2..], v);
        }
        scales[..blocks].copy_from_slice(&found);
        Ok(())
    }

    /// Writes the values (`block` per block) of whole blocks that passed `validate`.
    pub fn unpack_values(&self, src: &[u8], values: &mut [i8]) {
        for (b, v) in src
            .chunks_exact(self.block_bytes)
            .zip(values.chunks_exact_mut(self.block))
        {
            (self.unpack_codes)(&b[2..], v);
        }
    }

    /// ggml's `dequantize_row_*` on a validated matrix (each element per `Codec::element`). On
    /// error `dst` is untouched.
    pub fn dequantize(&self, shape: Shape, src: &[u8], dst: &mut [f32]) -> Result<()> {
        let blocks = self.validate(shape, src)?.len();
        if dst.len() < blocks * self.block {
            return Err(Error::too_small(
                "dst",
                4 * dst.len(),
                4 * blocks * self.block,
            ));
        }
        self.dequantize_blocks(&src[..blocks * self.block_bytes], dst);
        Ok(())
    }

    /// Dequantizes whole blocks without checking the scales (ggml's `to_float`, which takes any
    /// bits: a non-finite `d` gives non-finite floats). `dst` holds `block` floats per block.
    pub fn dequantize_blocks(&self, src: &[u8], dst: &mut [f32]) {
        let mut values = [0i8; 128];
        let values = &mut values[..self.block];
        for (b, out) in src
            .chunks_exact(self.block_bytes)
            .zip(dst.chunks_exact_mut(self.block))
        {
            let d = f32::from(f16::from_le_bytes([b[0], b[1]]));
            (self.unpack_codes)(&b[2..], values);
            for (o, &v) in out.iter_mut().zip(values.iter()) {
                *o = (self.element)(v, d);
            }
        }
    }

    fn check_bytes(&self, blocks: usize, got: usize, name: &str) -> Result<()> {
        let need = blocks * self.block_bytes;
        if got < need {
            return Err(Error::too_small(name, got, need));
        }
        Ok(())
    }

    fn check_lengths(
        &self,
        blocks: usize,
        values: usize,
        scales: usize,
        bytes: usize,
        bytes_name: &str,
    ) -> Result<()> {
        if values < blocks * self.block {
            return Err(Error::too_small("values", values, blocks * self.block));
        }
        if scales < blocks {
            return Err(Error::too_small("scales", 4 * scales, 4 * blocks));
        }
        self.check_bytes(blocks, bytes, bytes_name)
    }
}

const _: () = assert!(super::q2_0::BLOCK <= 128 && super::q1_0::BLOCK <= 128);
