//! Weight quantizers for mainline ggml's Q2_0 and Q1_0, bit-exact with ggml's reference rules
//! (`quantize_row_q2_0_ref`, `quantize_row_q1_0_ref` in `ggml-quants.c`, which are also the CPU
//! backend's `from_float` for both types), plus tern's absmean ternarization into Q2_0 blocks.

use half::f16;

use crate::error::{Error, ErrorKind, Result, try_vec};
use crate::format::{Format, Layout, Shape, q1_0, q2_0};
use crate::quant::q8_0::x86_f32_to_i32;
use crate::quant::weight::{Method, QuantConfig, QuantStats, Ternarized, non_finite, ternarize};

/// ggml `quantize_row_q2_0_ref` for one block: `x` holds 64 floats, `out` gets 18 bytes.
/// `d = max|x|` (NaN never wins the comparison), `id = 1/d` (0 when `d` is 0),
/// `q = clamp(roundf(x·id) + 1, 0, 3)` with `roundf` half away from zero. Where `1/d` overflows
/// (a block whose `max|x|` is below 2^-128) or on a NaN weight the `(int)` conversion is undefined
/// in C; this gives what x86 gives (`q8_0::x86_f32_to_i32`): code 0.
pub fn quantize_block_q2_0_ref(x: &[f32], out: &mut [u8]) {
    let amax = x[..q2_0::BLOCK].iter().fold(0.0f32, |m, &v| {
        let a = v.abs();
        if a > m { a } else { m }
    });
    let id = if amax > 0.0 { 1.0 / amax } else { 0.0 };
    out[..2].copy_from_slice(&f16::from_f32(amax).to_le_bytes());
    for (byte, four) in out[2..q2_0::BLOCK_BYTES].iter_mut().zip(x.chunks_exact(4)) {
        *byte = four.iter().enumerate().fold(0u8, |b, (l, &w)| {
            let q = x86_f32_to_i32((w * id).round())
                .saturating_add(1)
                .clamp(0, 3);
            b | ((q as u8) << (2 * l))
        });
    }
}

/// ggml `quantize_row_q1_0_ref` for one block: `x` holds 128 floats, `out` gets 18 bytes.
/// `d = (Σ|x|)/128` summed in f32 in element order; the bit is `x >= 0` (so −0.0 is +d and NaN is
/// −d).
pub fn quantize_block_q1_0_ref(x: &[f32], out: &mut [u8]) {
    let x = &x[..q1_0::BLOCK];
    let sum = x.iter().fold(0.0f32, |s, v| s + v.abs());
    let d = sum / q1_0::BLOCK as f32;
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    for (byte, eight) in out[2..q1_0::BLOCK_BYTES].iter_mut().zip(x.chunks_exact(8)) {
        *byte = eight
            .iter()
            .enumerate()
            .fold(0u8, |b, (l, &w)| b | (u8::from(w >= 0.0) << l));
    }
}

/// ggml `quantize_row_q2_0_ref` / `quantize_q2_0` without importance weights: `x.len()` (a
/// multiple of 64) floats into `x.len()/64` blocks at `out`.
pub fn quantize_row_q2_0_ref(x: &[f32], out: &mut [u8]) -> Result<()> {
    quantize_rows(&q2_0::CODEC, x, out, quantize_block_q2_0_ref)
}

/// ggml `quantize_row_q1_0_ref` / `quantize_q1_0` without importance weights: `x.len()` (a
/// multiple of 128) floats into `x.len()/128` blocks at `out`.
pub fn quantize_row_q1_0_ref(x: &[f32], out: &mut [u8]) -> Result<()> {
    quantize_rows(&q1_0::CODEC, x, out, quantize_block_q1_0_ref)
}

fn quantize_rows(
    codec: &crate::format::qx_0::Codec,
    x: &[f32],
    out: &mut [u8],
    block: fn(&[f32], &mut [u8]),
) -> Result<()> {
    if !x.len().is_multiple_of(codec.block) {
        return Err(Error::invalid(format!(
            "{} quantizes whole blocks of {}: {} floats is not a multiple",
            codec.name,
            codec.block,
            x.len()
        )));
    }
    let need = x.len() / codec.block * codec.block_bytes;
    if out.len() < need {
        return Err(Error::too_small("out", out.len(), need));
    }
    for (xb, ob) in x
        .chunks_exact(codec.block)
        .zip(out.chunks_exact_mut(codec.block_bytes))
    {
        block(xb, ob);
    }
    Ok(())
}

/// tern's BitNet b1.58 absmean ternarization stored as Q2_0: one absmean scale per 64-element
/// block (`QuantConfig`'s `AbsmeanGroup` with group 64 and `eps`), values in {−1, 0, 1} (code 3
/// is never written). `w` holds `shape.elements()` finite floats; returns the packed bytes.
pub fn quantize_q2_0_absmean(w: &[f32], shape: Shape, eps: f32) -> Result<Vec<u8>> {
    let codec = &q2_0::CODEC;
    codec.check_shape(shape)?;
    let cfg = QuantConfig::new(Method::AbsmeanGroup as i32, q2_0::BLOCK as u32, eps, None)?;
    let t = ternarize(&cfg, w, shape)?;
    let mut packed = crate::error::try_vec(codec.packed_size(shape)?, 0u8, "the packed weights")?;
    codec.pack(shape, &t.values, &t.scales, &mut packed)?;
    Ok(packed)
}

/// TERN_QUANT_GGML_REF into `layout` (Q2_0 or Q1_0): ggml's reference quantizer over the rows of
/// `w` (`shape.elements()` floats, which must be finite), the packed bytes and their stats. A
/// block whose scale exceeds the f16 range (ggml would store an infinite `d`) is an error naming
/// it.
pub fn quantize_ref_packed(
    layout: Layout,
    shape: Shape,
    w: &[f32],
) -> Result<(Vec<u8>, QuantStats)> {
    let w = &w[..shape.elements()];
    if let Some(e) = non_finite(w) {
        return Err(e);
    }
    let mut packed = try_vec(layout.packed_size(shape)?, 0u8, "the packed weights")?;
    let codec = match layout.format() {
        Format::Q2_0 => {
            quantize_row_q2_0_ref(w, &mut packed)?;
            &q2_0::CODEC
        }
        Format::Q1_0 => {
            quantize_row_q1_0_ref(w, &mut packed)?;
            &q1_0::CODEC
        }
        other => {
            return Err(Error::new(
                ErrorKind::Internal,
                format!("ggml's Q2_0/Q1_0 quantizer called for {}", other.name()),
            ));
        }
    };
    let blocks_per_row = shape.cols / codec.block;
    let mut scales = Vec::new();
    crate::error::try_reserve(&mut scales, packed.len() / codec.block_bytes, "the scales")?;
    for (i, b) in packed.chunks_exact(codec.block_bytes).enumerate() {
        let d = f16::from_le_bytes([b[0], b[1]]);
        if !d.is_finite() {
            return Err(Error::invalid(format!(
                "{} block {} of row {} (src[{}..{}]): its scale exceeds the f16 range (max 65504) that {} stores scales in",
                codec.name,
                i % blocks_per_row,
                i / blocks_per_row,
                i * codec.block,
                (i + 1) * codec.block,
                codec.name
            )));
        }
        scales.push(f32::from(d));
    }
    let mut values = try_vec(w.len(), 0i8, "the unpacked values")?;
    codec.unpack_values(&packed, &mut values);
    let t = Ternarized {
        values,
        scales,
        per_scale: codec.block,
    };
    let stats = QuantStats::measure(w, &t, packed.len());
    Ok((packed, stats))
}
