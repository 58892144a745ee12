//! Quantizers: float weights to ternary values and scales ([`ternarize`], with a
//! [`QuantConfig`]), straight to packed bytes ([`quantize_packed`]), and the [`Compat`] modes
//! that decide how a GEMM quantizes activations to int8.
//!
//! ```
//! use tern::quant::{Method, QuantConfig, ternarize};
//! use tern::Shape;
//!
//! // Absmean (BitNet b1.58): scale = mean|w|, values = round(w / scale) clamped to -1..=1.
//! let shape = Shape::new(2, 4)?;
//! let w = [0.9, -0.1, -1.2, 0.4, 0.0, 1.1, -0.8, 0.2];
//! let t = ternarize(&QuantConfig::default(), &w, shape)?;
//! assert_eq!(t.values, [1, 0, -1, 1, 0, 1, -1, 0]);
//! assert_eq!(t.scales.len(), 1);
//!
//! // One scale per row.
//! let cfg = QuantConfig { method: Method::AbsmeanRow, ..QuantConfig::default() };
//! assert_eq!(ternarize(&cfg, &w, shape)?.scales.len(), 2);
//! # Ok::<(), tern::Error>(())
//! ```

// The activation quantizers and ggml's block formats are run by the GEMM and the C ABI; the
// modules stay reachable (hidden) for their tests and the benches.
#[doc(hidden)]
pub mod activation;
#[doc(hidden)]
pub mod ggml_dot;
#[doc(hidden)]
pub mod ggml_q;
#[doc(hidden)]
pub mod q8_0;
#[doc(hidden)]
pub mod q8k;
#[doc(hidden)]
pub mod weight;

pub use activation::Compat;
pub use weight::{DEFAULT_EPS, Method, QuantConfig, QuantStats, Ternarized, ternarize};

use crate::error::{Result, try_collect, try_vec};
use crate::format::{Format, Layout, Shape};

/// Quantizes `w` (`shape.elements()` floats) into the packed bytes of `layout`, with stats.
/// TERN_QUANT_GGML_REF into Q2_0 / Q1_0 is ggml's reference quantizer, byte for byte
/// (`ggml_q::quantize_ref_packed`); the other methods into Q1_0 binarize (`weight::binarize`);
/// everything else ternarizes (`weight::ternarize`).
///
/// `cfg` must suit the layout ([`QuantConfig::new`] checks that: per-group scales need a
/// per-block format whose block the group divides).
///
/// ```
/// use tern::format::TqKind;
/// use tern::{Layout, QuantConfig, Shape};
///
/// let shape = Shape::new(4, 256)?;
/// let w: Vec<f32> = (0..shape.elements()).map(|i| (i % 7) as f32 - 3.0).collect();
/// let layout = Layout::Tq(TqKind::Tq1_0);
/// let (packed, stats) = tern::quantize_packed(layout, shape, &w, &QuantConfig::default())?;
/// assert_eq!(packed.len(), layout.packed_size(shape)?);
/// assert!(stats.bits_per_weight < 1.7);
/// # Ok::<(), tern::Error>(())
/// ```
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
