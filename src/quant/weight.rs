//! Weight quantization: float matrix → ternary values in {-1, 0, 1} plus scales.

use crate::error::{CEnum, Error, Result, try_reserve, try_vec};
use crate::format::{Layout, Shape};

/// `tern_quant_method` values. Into Q1_0, whose values are ±1, the absmean methods binarize
/// instead (`binarize`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// BitNet b1.58 absmean per tensor, what bitnet.cpp's converter does.
    Absmean = 0,
    /// The input is already ternary × scale: bitnet.cpp `quantize_i2_s` (sign test, max|w| scale).
    Prescaled = 1,
    /// Absmean with one scale per row.
    AbsmeanRow = 2,
    /// Absmean with one scale per `group_size` consecutive elements of a row.
    AbsmeanGroup = 3,
    /// ggml's reference quantizer of the target: `quantize_row_tqX_0_ref` (per-256 absmax, round
    /// half away from zero) for TQ1_0/TQ2_0 and `tern_ternarize`, `quantize_row_q2_0_ref` /
    /// `quantize_row_q1_0_ref` for Q2_0 / Q1_0 (`quant::ggml_q`).
    GgmlRef = 4,
}

crate::c_enum!(
    Method,
    "quantization method",
    [
        (Method::Absmean, "ABSMEAN"),
        (Method::Prescaled, "PRESCALED"),
        (Method::AbsmeanRow, "ABSMEAN_ROW"),
        (Method::AbsmeanGroup, "ABSMEAN_GROUP"),
        (Method::GgmlRef, "GGML_REF"),
    ]
);

const C_NAMES: [&str; 5] = [
    "TERN_QUANT_ABSMEAN",
    "TERN_QUANT_PRESCALED",
    "TERN_QUANT_ABSMEAN_ROW",
    "TERN_QUANT_ABSMEAN_GROUP",
    "TERN_QUANT_GGML_REF",
];

impl Method {
    /// The C name (`TERN_QUANT_…`).
    pub fn name(self) -> &'static str {
        C_NAMES[self as usize]
    }
}

/// A validated quantization configuration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuantConfig {
    pub method: Method,
    pub eps: f32,
    /// Elements per scale for `AbsmeanGroup` (0 otherwise).
    pub group_size: usize,
}

/// The default floor of mean|W| (bitnet.cpp's converter uses 1e-5).
pub const DEFAULT_EPS: f32 = 1e-5;

/// Magnitudes below this are zero for `Prescaled` (bitnet.cpp's `quantize_i2_s` threshold).
const PRESCALED_ZERO: f64 = 1e-6;

/// ggml's TQ block: `GgmlRef` takes one absmax per this many elements.
const GGML_BLOCK: usize = 256;

impl Default for QuantConfig {
    fn default() -> Self {
        Self {
            method: Method::Absmean,
            eps: DEFAULT_EPS,
            group_size: 0,
        }
    }
}

impl QuantConfig {
    /// Validates the raw fields of `tern_quant_options` against the target layout (`None`: no
    /// storage constraint, for `tern_ternarize`).
    pub fn new(method: i32, group_size: u32, eps: f32, layout: Option<Layout>) -> Result<Self> {
        let method = Method::from_c(method.into())?;
        if !(eps.is_finite() && eps > 0.0) {
            return Err(Error::invalid(format!(
                "eps must be finite and > 0 (got {eps})"
            )));
        }
        let group_size = group_size as usize;
        if group_size != 0 && method != Method::AbsmeanGroup {
            return Err(Error::invalid(format!(
                "group_size = {group_size} is only meaningful with TERN_QUANT_ABSMEAN_GROUP (method is {}); leave it 0",
                method.name()
            )));
        }
        let format = layout.map_or("the output", |l| l.format().name());
        // I2_S, TL1 and TL2 store one scale per tensor; TQ1_0/TQ2_0 one per 256-element block,
        // Q2_0 per 64, Q1_0 per 128.
        let per_tensor_only = layout.is_some_and(|l| !l.spec().per_block_scales);
        let block = layout.map_or(1, scale_block);
        match method {
            Method::Absmean | Method::Prescaled => {}
            Method::AbsmeanRow | Method::AbsmeanGroup if per_tensor_only => {
                return Err(Error::invalid(format!(
                    "{format} stores one scale per tensor, so {} (per-row/per-group scales) cannot be stored; use TERN_QUANT_ABSMEAN or PRESCALED, or a format with per-block scales (TQ1_0, TQ2_0, Q2_0, Q1_0)",
                    method.name()
                )));
            }
            Method::AbsmeanGroup if group_size == 0 || !group_size.is_multiple_of(block) => {
                return Err(Error::invalid(format!(
                    "TERN_QUANT_ABSMEAN_GROUP into {format} needs group_size to be a positive multiple of {block} (got {group_size})"
                )));
            }
            Method::AbsmeanRow | Method::AbsmeanGroup => {}
            Method::GgmlRef if per_tensor_only => {
                return Err(Error::invalid(format!(
                    "TERN_QUANT_GGML_REF is ggml's per-block quantizer for TQ1_0, TQ2_0, Q2_0 and Q1_0; {format} stores one scale per tensor"
                )));
            }
            Method::GgmlRef => {}
        }
        Ok(Self {
            method,
            eps,
            group_size,
        })
    }
}

/// Ternary values (row-major, one i8 per element) and the scales they are multiplied by: element
/// `i` uses `scales[i / per_scale]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Ternarized {
    pub values: Vec<i8>,
    pub scales: Vec<f32>,
    pub per_scale: usize,
}

/// Elements per stored scale of a format with per-block scales (the whole tensor for the
/// others): the scale geometry of a row as long as any (`MAX_COLS` is a multiple of every block).
fn scale_block(layout: Layout) -> usize {
    layout.elements_per_scale(Shape {
        rows: 1,
        cols: crate::format::MAX_COLS,
    })
}

/// Elements per scale for `cfg` over `shape`, after checking that the groups tile the rows and
/// (unless `fused_check` leaves it to the caller's pass) that every weight is finite.
fn scale_groups(cfg: &QuantConfig, src: &[f32], shape: Shape, fused_check: bool) -> Result<usize> {
    let per_scale = match cfg.method {
        Method::Absmean | Method::Prescaled => shape.elements(),
        Method::AbsmeanRow => shape.cols,
        Method::AbsmeanGroup => cfg.group_size,
        Method::GgmlRef => GGML_BLOCK,
    };
    let groups_ok = shape.cols.is_multiple_of(per_scale) || per_scale == shape.elements();
    if (!fused_check || !groups_ok)
        && let Some(e) = non_finite(src)
    {
        return Err(e);
    }
    if !groups_ok {
        return Err(Error::invalid(format!(
            "group_size = {per_scale} must divide cols = {} so that groups do not straddle rows",
            shape.cols
        )));
    }
    Ok(per_scale)
}

/// Quantizes `src` (`shape.elements()` finite floats) to ternary values with `cfg`.
pub fn ternarize(cfg: &QuantConfig, src: &[f32], shape: Shape) -> Result<Ternarized> {
    let src = &src[..shape.elements()];
    // The absmean sums test finiteness in their pass; other methods test it up front.
    let fused_check = matches!(
        cfg.method,
        Method::Absmean | Method::AbsmeanRow | Method::AbsmeanGroup
    );
    let per_scale = scale_groups(cfg, src, shape, fused_check)?;
    let mut values = try_vec(src.len(), 0i8, "the ternary values")?;
    let mut scales = Vec::new();
    try_reserve(&mut scales, src.len() / per_scale, "the scales")?;
    for (w, t) in src.chunks(per_scale).zip(values.chunks_mut(per_scale)) {
        scales.push(match cfg.method {
            Method::Prescaled => prescaled(w, t),
            Method::GgmlRef => crate::format::tq::quantize_block_ref(w, t),
            _ => match absmean(w, cfg.eps, t) {
                Some(scale) => scale,
                None => return Err(non_finite(src).expect("absmean saw a non-finite weight")),
            },
        });
    }
    Ok(Ternarized {
        values,
        scales,
        per_scale,
    })
}

/// Binary quantization for Q1_0 (values ±1), BitNet b1's rule: the value is the sign of `w`
/// (+1 for `w >= 0`, as ggml's Q1_0 quantizer), the scale the mean |w| of its group (summed in
/// f64, left to right; no `eps` floor: a group of zeros gets scale 0 and dequantizes to zeros).
/// The groups are the method's: ABSMEAN the tensor, ABSMEAN_ROW a row, ABSMEAN_GROUP
/// `group_size` elements; PRESCALED (the input is already ±s) takes the scale max|w| of the
/// tensor. GGML_REF is ggml's own rule (`quant::ggml_q`), not this function.
pub fn binarize(cfg: &QuantConfig, src: &[f32], shape: Shape) -> Result<Ternarized> {
    let src = &src[..shape.elements()];
    let per_scale = scale_groups(cfg, src, shape, false)?;
    let mut values = try_vec(src.len(), 0i8, "the binary values")?;
    let mut scales = Vec::new();
    try_reserve(&mut scales, src.len() / per_scale, "the scales")?;
    for (w, t) in src.chunks(per_scale).zip(values.chunks_mut(per_scale)) {
        for (t, &w) in t.iter_mut().zip(w) {
            *t = if w >= 0.0 { 1 } else { -1 };
        }
        let abs = w.iter().map(|v| v.abs() as f64);
        scales.push(match cfg.method {
            Method::Prescaled => abs.fold(0.0f64, f64::max) as f32,
            _ => (abs.sum::<f64>() / w.len() as f64) as f32,
        });
    }
    Ok(Ternarized {
        values,
        scales,
        per_scale,
    })
}

/// The error naming the first non-finite element of `src`, if it has one.
pub(crate) fn non_finite(src: &[f32]) -> Option<Error> {
    // Blocks are tested without an early exit, so the test vectorizes.
    const BLOCK: usize = 4096;
    let (b, block) = src
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, b)| !b.iter().fold(true, |ok, v| ok & v.is_finite()))?;
    let i = b * BLOCK + block.iter().position(|v| !v.is_finite())?;
    Some(Error::invalid(format!(
        "src[{i}] = {} is not finite: weights must be finite to be quantized",
        src[i]
    )))
}

/// Defines `$name`, which runs `$body` compiled for AVX2 when the CPU has it, and `$baseline`, the
/// same body for the baseline target (the fallback). Same source, so the same IEEE operations in
/// the same order (Rust never contracts `a·b + c` to an FMA) and identical results; AVX2 only
/// widens the vectors. The unit tests compare the two.
macro_rules! avx2_or_baseline {
    ($(#[$doc:meta])* fn $name:ident / $baseline:ident ($($arg:ident: $ty:ty),*) $(-> $ret:ty)? $body:block) => {
        $(#[$doc])*
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2")]
            fn avx2($($arg: $ty),*) $(-> $ret)? {
                $baseline($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                return unsafe { avx2($($arg),*) };
            }
            $baseline($($arg),*)
        }

        #[inline(always)]
        fn $baseline($($arg: $ty),*) $(-> $ret)? $body
    };
}

/// BitNet b1.58: `s = 1/max(mean|W|, eps)`, `t = clamp(round_half_even(W·s), -1, 1)`, stored scale
/// `1/s` — in f32 as the converter's torch code computes it (the mean is summed in f64, left to
/// right). `None` if a weight is not finite.
fn absmean(src: &[f32], eps: f32, ternary: &mut [i8]) -> Option<f32> {
    let mut sum = 0.0f64;
    let mut finite = true;
    // One sequential sum (the result depends on its order): its add latency bounds the loop, so
    // the finiteness test in it is free.
    for &v in src {
        sum += v.abs() as f64;
        finite &= v.is_finite();
    }
    if !finite {
        return None;
    }
    let mean = (sum / src.len() as f64) as f32;
    let inv = 1.0f32 / mean.max(eps);
    ternary_by_threshold(src, inv, ternary);
    Some(1.0f32 / inv)
}

avx2_or_baseline! {
    /// `t = clamp(round_half_even(w·inv), -1, 1)` for every non-NaN `w·inv` (±0.5 round to 0),
    /// without the libm call, so it vectorizes.
    fn ternary_by_threshold / ternary_by_threshold_baseline(src: &[f32], inv: f32, ternary: &mut [i8]) {
        for (t, &w) in ternary.iter_mut().zip(src) {
            let y = w * inv;
            *t = (y > 0.5) as i8 - (y < -0.5) as i8;
        }
    }
}

/// bitnet.cpp `quantize_i2_s`: scale = max|w| (taken in f64), sign test with a 1e-6 zero band.
pub fn prescaled(src: &[f32], ternary: &mut [i8]) -> f32 {
    for (t, &w) in ternary.iter_mut().zip(src) {
        *t = if (w.abs() as f64) < PRESCALED_ZERO {
            0
        } else if w > 0.0 {
            1
        } else {
            -1
        };
    }
    src.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)) as f32
}

/// What quantization did to a matrix (the C struct `tern_quant_stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QuantStats {
    pub sparsity: f64,
    pub bits_per_weight: f64,
    pub compression_vs_f32: f64,
    pub compression_vs_f16: f64,
    pub scale_min: f32,
    pub scale_max: f32,
    pub rmse: f64,
}

impl QuantStats {
    pub fn measure(src: &[f32], t: &Ternarized, packed_bytes: usize) -> Self {
        let n = t.values.len();
        let (zeros, acc) = zeros_and_sq_err(src, t);
        let sq_err: f64 = acc.iter().sum();
        let bits = packed_bytes as f64 * 8.0;
        Self {
            sparsity: zeros as f64 / n as f64,
            bits_per_weight: bits / n as f64,
            compression_vs_f32: 32.0 * n as f64 / bits,
            compression_vs_f16: 16.0 * n as f64 / bits,
            scale_min: t.scales.iter().copied().fold(f32::INFINITY, f32::min),
            scale_max: t.scales.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            rmse: (sq_err / n as f64).sqrt(),
        }
    }
}

avx2_or_baseline! {
    /// Zero values, and the squared errors `(w − t·s)²` (f64) summed in 8 lanes: lane `j` takes
    /// element `j` of every 8 of a scale group, after lane 0 took the group's `len % 8` leftovers.
    fn zeros_and_sq_err / zeros_and_sq_err_baseline(src: &[f32], t: &Ternarized) -> (usize, [f64; 8]) {
        let mut acc = [0f64; 8];
        for ((w, q), &s) in src
            .chunks(t.per_scale)
            .zip(t.values.chunks(t.per_scale))
            .zip(&t.scales)
        {
            let s = s as f64;
            let (wc, qc) = (w.chunks_exact(8), q.chunks_exact(8));
            // The leftovers add `[d², 0, …, 0]`: adding +0.0 leaves a lane unchanged (no lane is
            // ever -0.0), and the 8-lane shape keeps LLVM from shuffling `acc` in the main loop.
            for (&w, &q) in wc.remainder().iter().zip(qc.remainder()) {
                let d = w as f64 - q as f64 * s;
                let mut sq = [0f64; 8];
                sq[0] = d * d;
                for (a, sq) in acc.iter_mut().zip(sq) {
                    *a += sq;
                }
            }
            for (w, q) in wc.zip(qc) {
                for j in 0..8 {
                    let d = w[j] as f64 - q[j] as f64 * s;
                    acc[j] += d * d;
                }
            }
        }
        (t.values.iter().filter(|&&v| v == 0).count(), acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Weights around the ±0.5 thresholds and in every binade, signed zeros, subnormals.
    fn awkward_weights(n: usize) -> Vec<f32> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                match i % 7 {
                    0 => [0.5, -0.5, 0.0, -0.0, 1e-40, -1e-40][(x % 6) as usize],
                    1 => {
                        f32::from_bits(0x3f00_0000 + (x % 5) as u32 - 2)
                            * if x & 8 != 0 { -1.0 } else { 1.0 }
                    }
                    _ => f32::from_bits((x >> 32) as u32 & 0xbfff_ffff),
                }
            })
            .collect()
    }

    #[test]
    fn avx2_and_baseline_agree() {
        let w = awkward_weights(4099);
        for inv in [1.0f32, 0.75, 3.0e4] {
            let (mut a, mut b) = (vec![7i8; w.len()], vec![9i8; w.len()]);
            ternary_by_threshold(&w, inv, &mut a);
            ternary_by_threshold_baseline(&w, inv, &mut b);
            assert_eq!(a, b, "inv {inv}");
        }
        let w: Vec<f32> = w.iter().map(|v| v.clamp(-1e3, 1e3)).collect();
        for per_scale in [4096 + 3, 1365, 256, 13, 8] {
            let n = w.len() / per_scale * per_scale;
            let values: Vec<i8> = (0..n).map(|i| (i * 7 % 3) as i8 - 1).collect();
            let scales = (0..n / per_scale).map(|i| 0.01 + i as f32).collect();
            let t = Ternarized {
                values,
                scales,
                per_scale,
            };
            let (a, b) = (
                zeros_and_sq_err(&w[..n], &t),
                zeros_and_sq_err_baseline(&w[..n], &t),
            );
            assert_eq!(a.0, b.0, "per_scale {per_scale}");
            assert_eq!(
                a.1.map(f64::to_bits),
                b.1.map(f64::to_bits),
                "per_scale {per_scale}"
            );
        }
    }
}
