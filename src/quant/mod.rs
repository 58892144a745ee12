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

/// Quantizes one row of ggml activation blocks (`q8_0::BLOCK` or `q8k::BLOCK` values each) into
/// the int8 values `q` (as long as `x`) and one scale per block in `d`: the
/// `Kernels::quantize_q8_0` and `quantize_q8_k` of a level.
pub type BlockRowFn = fn(x: &[f32], q: &mut [i8], d: &mut [f32]);

/// Checks a `BlockRowFn` call's sizes (the SIMD versions write through raw pointers) and returns
/// its number of blocks (`what`: the block type, for the message).
pub(crate) fn check_block_row(x: &[f32], q: &[i8], d: &[f32], block: usize, what: &str) -> usize {
    let n = x.len() / block;
    assert!(
        x.len().is_multiple_of(block) && q.len() >= x.len() && d.len() >= n,
        "{what} row: {} values (a multiple of {block}) need as many int8 outputs (got {}) and {n} \
         scales (got {})",
        x.len(),
        q.len(),
        d.len()
    );
    n
}

/// `check_block_row` for an AVX2 row, which also needs the CPU to have AVX2.
#[cfg(target_arch = "x86_64")]
pub(crate) fn check_avx2_block_row(
    x: &[f32],
    q: &[i8],
    d: &[f32],
    block: usize,
    what: &str,
) -> usize {
    assert!(
        crate::kernel::Isa::Avx2.is_available(),
        "the AVX2 {what} row quantizer needs AVX2"
    );
    check_block_row(x, q, d, block, what)
}

/// The maximum of the 8 lanes of `m` (none NaN), reduced 8 → 4 → 2 → 1 with `maxps` as ggml's
/// x86 code reduces it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
pub(crate) fn lanes_max(m: std::arch::x86_64::__m256) -> f32 {
    use std::arch::x86_64::*;
    let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
    let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)))
}

/// `n` blocks of `block` test values for the block-row quantizers: value `i` of block `j` is
/// `value(j, i, r, u)` with `r` uniform in [−1, 1) and `u` a random u64 (xorshift64). (Their
/// tests are of the x86 SIMD rows.)
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn test_blocks(
    n: usize,
    block: usize,
    value: impl Fn(usize, usize, f32, u64) -> f32,
) -> Vec<f32> {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut x = vec![0f32; n * block];
    for (j, b) in x.chunks_exact_mut(block).enumerate() {
        for (i, v) in b.iter_mut().enumerate() {
            let r = (next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
            *v = value(j, i, r, next());
        }
    }
    x
}

/// `oracle`'s int8 values and scales for `x`, after asserting that the AVX2 row `simd`
/// (`what`: its block type) returns the same bits, or printing why that is skipped.
#[cfg(all(test, target_arch = "x86_64"))]
pub(crate) fn assert_same_rows(
    what: &str,
    oracle: BlockRowFn,
    simd: BlockRowFn,
    x: &[f32],
    block: usize,
) -> (Vec<i8>, Vec<f32>) {
    let n = x.len() / block;
    let (mut q, mut d) = (vec![0i8; x.len()], vec![0f32; n]);
    oracle(x, &mut q, &mut d);
    if !crate::kernel::Isa::Avx2.is_available() {
        println!("skipped: the AVX2 {what} row quantizer needs AVX2 (this CPU lacks it)");
        return (q, d);
    }
    let (mut q2, mut d2) = (vec![1i8; x.len()], vec![f32::NAN; n]);
    simd(x, &mut q2, &mut d2);
    assert_eq!(q, q2);
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&d), bits(&d2));
    (q, d)
}

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
