//! Quantizers: ternary weights (absmean, prescaled) and int8 activations (per-token absmax in the
//! rounding of each compatibility mode), with their configuration and its validation.

pub mod activation;
pub mod ggml_dot;
pub mod ggml_q;
pub mod q8_0;
pub mod q8k;
pub mod weight;

pub use activation::Compat;
pub use weight::{Method, QuantConfig, QuantStats, Ternarized};

use crate::error::{Result, try_collect, try_vec};
use crate::format::{Format, Layout, Shape};

/// Quantizes `w` (`shape.elements()` floats) into the packed bytes of `layout`, with stats.
/// TERN_QUANT_GGML_REF into Q2_0 / Q1_0 is ggml's reference quantizer, byte for byte
/// (`ggml_q::quantize_ref_packed`); the other methods into Q1_0 binarize (`weight::binarize`);
/// everything else ternarizes (`weight::ternarize`).
pub fn quantize_packed(
    layout: Layout,
    shape: Shape,
    w: &[f32],
    cfg: &QuantConfig,
) -> Result<(Vec<u8>, QuantStats)> {
    let t = match (layout.format(), cfg.method) {
        (Format::Q2_0 | Format::Q1_0, Method::GgmlRef) => {
            return ggml_q::quantize_ref_packed(layout, shape, w);
        }
        (Format::Q1_0, _) => weight::binarize(cfg, w, shape)?,
        _ => weight::ternarize(cfg, w, shape)?,
    };
    let mut packed = try_vec(layout.packed_size(shape)?, 0u8, "the packed weights")?;
    // The layout stores a scale per `per` elements; `t` has one per `t.per_scale` (a multiple).
    let per = layout.elements_per_scale(shape);
    let scales = try_collect(
        (0..layout.scale_count(shape)).map(|i| t.scales[i * per / t.per_scale]),
        "the scales",
    )?;
    layout.pack(shape, &t.values, &scales, &mut packed)?;
    let stats = QuantStats::measure(&w[..shape.elements()], &t, packed.len());
    Ok((packed, stats))
}
