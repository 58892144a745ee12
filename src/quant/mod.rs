//! Quantizers: ternary weights (absmean, prescaled) and int8 activations (per-token absmax in the
//! rounding of each compatibility mode), with their configuration and its validation.

pub mod activation;
pub mod weight;

pub use activation::Compat;
pub use weight::{Method, QuantConfig, QuantStats, Ternarized};

use crate::error::Result;
use crate::format::{Layout, Shape};

/// Quantizes `w` (`shape.elements()` floats) into the packed bytes of `layout`, with stats.
pub fn quantize_packed(
    layout: Layout,
    shape: Shape,
    w: &[f32],
    cfg: &QuantConfig,
) -> Result<(Vec<u8>, QuantStats)> {
    let t = weight::ternarize(cfg, w, shape)?;
    let mut packed = vec![0u8; layout.packed_size(shape)?];
    layout.pack(shape, &t.values, &t.scales, &mut packed)?;
    let per_tensor = t.scales[0];
    let stats = QuantStats::measure(&w[..shape.elements()], &t, packed.len(), |_| per_tensor);
    Ok((packed, stats))
}
