//! Per-token int8 activation quantization (absmax → 127) and the matching GEMM epilogue, in the
//! exact arithmetic of each compatibility mode (spec `bitnet_cpp.md` §2.3, §2.5 and §3.2–3.3;
//! ggml's Q8_K path is in `q8k.rs`).

use crate::error::{CEnum, Error, Result};
use crate::format::{Format, Peer};

/// `tern_compat`: whose rounding and float arithmetic the activations and outputs follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// f32 absmax, half-to-even (BitNet training), exact int `dot − sum`, all-zero token → 0.
    Default = 0,
    /// bitnet.cpp today, for the matrix's format (I2_S: the current fork; TL1/TL2: the LUT kernels).
    BitnetCpp = 1,
    /// bitnet.cpp merge-dev (I2_S: f64 absmax floored at 1e-5; TL1/TL2: the same LUT kernels).
    BitnetCppLegacy = 2,
    /// ggml's mul_mat for TQ1_0/TQ2_0: Q8_K activations per 256 block.
    Ggml = 3,
}

crate::c_enum!(
    Compat,
    "compat",
    [
        (Compat::Default, "TERN_COMPAT_DEFAULT"),
        (Compat::BitnetCpp, "TERN_COMPAT_BITNET_CPP"),
        (Compat::BitnetCppLegacy, "TERN_COMPAT_BITNET_CPP_LEGACY"),
        (Compat::Ggml, "TERN_COMPAT_GGML"),
    ]
);

/// The arithmetic a GEMM runs: a compat mode resolved against the matrix's format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arith {
    /// `Compat::Default` on any format.
    Default,
    /// bitnet.cpp's current I2_S path: f32 absmax, `roundf` (half away from zero),
    /// `(f32(dot) − f32(sum))·(w_scale/act_scale)`.
    I2sCurrent,
    /// bitnet.cpp merge-dev I2_S: f64 absmax floored at 1e-5, half-to-even,
    /// `((f32(dot) − f32(sum))/act_scale)·w_scale`.
    I2sLegacy,
    /// bitnet.cpp's TL1/TL2 LUT kernels: `s = 127/max|x|` (f32, no floor), half-to-even,
    /// `f32(Σ t·q) / s · w_scale` with the integer sum exact.
    Lut,
    /// ggml: Q8_K blocks, `Σ_blocks f32(S_b)·(d_act·d_w)` in block order.
    Ggml,
    /// ggml's mul_mat of Q2_0 / Q1_0 weights: Q8_0 activation blocks of 32 (f16 `d_a`), per
    /// weight block `b` (64 or 128 columns) `sumi = Σ_k d_a,k·f32(S_k)` over its 32-column
    /// blocks `k` from 0.0, then `sumf += d_b·sumi`, every product and sum rounded on its own
    /// (`quant::ggml_dot`'s generic order).
    GgmlQ8_0,
}

impl Compat {
    pub fn from_i32(v: i32) -> Result<Self> {
        Self::from_c(v.into())
    }

    pub fn name(self) -> &'static str {
        Self::TABLE[self as usize].1
    }

    /// The arithmetic of this mode for `format`, or an error naming the modes that apply.
    pub fn arith(self, format: Format) -> Result<Arith> {
        let peer = format.spec().peer;
        Ok(match (self, peer) {
            (Self::Default, _) => Arith::Default,
            (Self::BitnetCpp, Peer::BitnetI2s) => Arith::I2sCurrent,
            (Self::BitnetCppLegacy, Peer::BitnetI2s) => Arith::I2sLegacy,
            (Self::BitnetCpp | Self::BitnetCppLegacy, Peer::BitnetLut) => Arith::Lut,
            (Self::Ggml, Peer::GgmlQ8K) => Arith::Ggml,
            (Self::Ggml, Peer::GgmlQ8_0) => Arith::GgmlQ8_0,
            _ => {
                let bitnet = matches!(peer, Peer::BitnetI2s | Peer::BitnetLut);
                let allowed = if bitnet {
                    "TERN_COMPAT_DEFAULT, TERN_COMPAT_BITNET_CPP or TERN_COMPAT_BITNET_CPP_LEGACY"
                } else {
                    "TERN_COMPAT_DEFAULT or TERN_COMPAT_GGML"
                };
                return Err(Error::unsupported(format!(
                    "{} does not apply to {} matrices: {} has no kernel for that format (use {allowed})",
                    self.name(),
                    format.name(),
                    if bitnet { "ggml" } else { "bitnet.cpp" }
                )));
            }
        })
    }

    /// The per-token arithmetic `tern_quantize_activations` uses for this mode (format-free:
    /// BITNET_CPP means I2_S's current rules).
    pub fn token_arith(self) -> Result<Arith> {
        match self {
            Self::Default => Ok(Arith::Default),
            Self::BitnetCpp => Ok(Arith::I2sCurrent),
            Self::BitnetCppLegacy => Ok(Arith::I2sLegacy),
            Self::Ggml => Err(Error::unsupported(
                "TERN_COMPAT_GGML quantizes activations per 256-element block (Q8_K), not per token; use tern_ggml_quantize_row_q8_K",
            )),
        }
    }
}

/// A per-token quantizer with `Arith::quantize_token`'s contract (any length, bit-identical with
/// `Arith::quantize_token_scalar`). Each ISA level's `kernel::Kernels` row names one.
pub type QuantizeTokenFn = fn(Arith, &[f32], &mut [i8]) -> (f32, i32);

/// The AVX2 `QuantizeTokenFn`. Panics (before any AVX2 instruction) on a CPU without AVX2.
#[cfg(target_arch = "x86_64")]
pub fn quantize_token_avx2(arith: Arith, x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let n = x.len().min(q.len());
    assert!(simd::has_avx2(), "quantize_token_avx2 needs AVX2");
    // SAFETY: the CPU has AVX2 (checked above); both slices hold `n` values.
    unsafe { simd::quantize_avx2(arith, &x[..n], &mut q[..n]) }
}

/// The AVX-512 `QuantizeTokenFn`. Panics (before any AVX-512 instruction) on a CPU without
/// AVX-512 F and BW.
#[cfg(target_arch = "x86_64")]
pub fn quantize_token_avx512(arith: Arith, x: &[f32], q: &mut [i8]) -> (f32, i32) {
    let n = x.len().min(q.len());
    assert!(
        simd::has_avx512(),
        "quantize_token_avx512 needs AVX-512 F and BW"
    );
    // SAFETY: the CPU has AVX-512F/BW (checked above); both slices hold `n` values.
    unsafe { simd::quantize_avx512(arith, &x[..n], &mut q[..n]) }
}

impl Arith {
    /// Whether activations are quantized per block (ggml's Q8_K or Q8_0), not per token.
    pub fn block_acts(self) -> bool {
        matches!(self, Self::Ggml | Self::GgmlQ8_0)
    }

    /// Quantizes one token with `quantize` (the context's row, `Kernels::quantize_token`): writes
    /// `q` (same length as `x`), returns `(act_scale, act_sum)` where `act_scale = 127/absmax` is
    /// a multiplier. Not for `Ggml` / `GgmlQ8_0` (blocks, see `q8k`, `q8_0`). Tokens under 16 values take the scalar
    /// definition (a vector setup costs more than it saves there); every quantizer is
    /// bit-identical with it, which the tests check on adversarial inputs.
    pub fn quantize_token(self, quantize: QuantizeTokenFn, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let n = x.len().min(q.len());
        let (x, q) = (&x[..n], &mut q[..n]);
        if n < 16 {
            return self.quantize_token_scalar(x, q);
        }
        quantize(self, x, q)
    }

    /// The multiplier `127/absmax` for a token whose f32 absmax (NaNs ignored) is `absmax`.
    /// (Only the x86 SIMD paths use it; elsewhere the scalar path computes the same inline.)
    #[cfg(target_arch = "x86_64")]
    #[inline]
    fn scale_from_absmax(self, absmax: f32) -> f32 {
        match self {
            // f32 → f64 is exact and monotonic, so the f64 fold of the spec equals this.
            Self::I2sLegacy => (127.0 / (absmax as f64).max(1e-5)) as f32,
            Self::Default | Self::I2sCurrent | Self::Lut | Self::Ggml | Self::GgmlQ8_0 => {
                if absmax == 0.0 {
                    0.0
                } else {
                    127.0f32 / absmax
                }
            }
        }
    }

    /// One value: round `v·scale` in this mode, clamp to int8 (NaN → 0).
    #[inline]
    fn quantize_one(self, v: f32, scale: f32) -> i8 {
        let r = match self {
            Self::I2sCurrent => (v * scale).round(),
            _ => (v * scale).round_ties_even(),
        };
        r.clamp(-128.0, 127.0) as i8
    }

    /// The scalar definition of `quantize_token` (the oracle of the SIMD versions).
    pub fn quantize_token_scalar(self, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let scale = match self {
            Self::I2sLegacy => {
                let absmax = x.iter().fold(1e-5f64, |m, &v| m.max(v.abs() as f64));
                (127.0 / absmax) as f32
            }
            Self::Default | Self::I2sCurrent | Self::Lut | Self::Ggml | Self::GgmlQ8_0 => {
                let absmax = x.iter().fold(0.0f32, |m, &v| m.max(v.abs()));
                if absmax == 0.0 {
                    0.0
                } else {
                    127.0f32 / absmax
                }
            }
        };
        let mut sum = 0i32;
        for (out, &v) in q.iter_mut().zip(x) {
            *out = self.quantize_one(v, scale);
            sum += *out as i32;
        }
        (scale, sum)
    }

    /// Quantizes `n_tokens` tokens (token `t` at `x[t·x_stride..]`, `cols` values) into `q` (token
    /// `t` at `q[t·q_stride..]`), `scales` and, when wanted, `sums`, with `quantize`.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize_batch(
        self,
        quantize: QuantizeTokenFn,
        x: &[f32],
        x_stride: usize,
        cols: usize,
        n_tokens: usize,
        q: &mut [i8],
        q_stride: usize,
        scales: &mut [f32],
        mut sums: Option<&mut [i32]>,
    ) {
        for t in 0..n_tokens {
            let (x, q) = (&x[t * x_stride..][..cols], &mut q[t * q_stride..][..cols]);
            let (scale, sum) = self.quantize_token(quantize, x, q);
            scales[t] = scale;
            if let Some(sums) = sums.as_deref_mut() {
                sums[t] = sum;
            }
        }
    }

    /// The per-token factor the epilogue multiplies by (computed once per token, as bitnet.cpp does).
    #[inline]
    pub fn post_scale(self, w_scale: f32, act_scale: f32) -> f32 {
        match self {
            Self::Default | Self::I2sCurrent => w_scale / act_scale,
            Self::I2sLegacy | Self::Lut | Self::Ggml | Self::GgmlQ8_0 => w_scale,
        }
    }

    /// Output for one (token, row): `dot_codes` is Σ code·q with codes {0,1,2,3} (value + 1),
    /// `act_sum` = Σ q.
    #[inline]
    pub fn output(self, dot_codes: i32, act_sum: i32, act_scale: f32, post: f32) -> f32 {
        match self {
            Self::Default | Self::Ggml | Self::GgmlQ8_0 => {
                if act_scale == 0.0 {
                    0.0
                } else {
                    (dot_codes - act_sum) as f32 * post
                }
            }
            Self::I2sCurrent => (dot_codes as f32 - act_sum as f32) * post,
            Self::I2sLegacy => ((dot_codes as f32 - act_sum as f32) / act_scale) * post,
            Self::Lut => {
                if act_scale == 0.0 {
                    0.0
                } else {
                    (dot_codes - act_sum) as f32 / act_scale * post
                }
            }
        }
    }
}

/// AVX-512 / AVX2 versions of `Arith::quantize_token`, bit-identical with the scalar one:
/// the absmax is a max (order-free; `vmaxps(v, m)` keeps `m` when `v` is NaN, as `f32::max`
/// does), the products are the same IEEE f32 multiplies, half-to-even is `roundscale`, half away
/// from zero is `trunc(y) + sign(y)·(|y − trunc(y)| ≥ 0.5)` (the difference is exact), NaN
/// lanes become 0 before the clamp (`as i8` maps NaN to 0).
#[cfg(target_arch = "x86_64")]
mod simd {
    use std::arch::x86_64::*;

    use super::Arith;

    pub fn has_avx512() -> bool {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }

    pub fn has_avx2() -> bool {
        std::arch::is_x86_feature_detected!("avx2")
    }

    /// # Safety
    /// The CPU has AVX-512F and AVX-512BW; `q.len() == x.len()`.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub unsafe fn quantize_avx512(arith: Arith, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let n = x.len();
        let tail = (n % 16) as u32;
        let tail_mask: __mmask16 = ((1u32 << tail) - 1) as u16;
        let full = n - tail as usize;
        let p = x.as_ptr();
        // SAFETY (loads/stores below): offsets < full are whole vectors inside `x`/`q`; the
        // tail uses masked accesses of exactly the remaining lanes.
        let inf = _mm512_set1_ps(f32::INFINITY);
        let mut m = [_mm512_setzero_ps(); 4];
        // Lanes that saw a NaN or an infinity (`!(|v| < inf)`).
        let mut special: __mmask16 = 0;
        let mut i = 0;
        while i + 64 <= full {
            for (j, mj) in m.iter_mut().enumerate() {
                let v = _mm512_abs_ps(unsafe { _mm512_loadu_ps(p.add(i + 16 * j)) });
                special |= _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(v, inf);
                *mj = _mm512_max_ps(v, *mj);
            }
            i += 64;
        }
        while i < full {
            let v = _mm512_abs_ps(unsafe { _mm512_loadu_ps(p.add(i)) });
            special |= _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(v, inf);
            m[0] = _mm512_max_ps(v, m[0]);
            i += 16;
        }
        if tail > 0 {
            let v = _mm512_abs_ps(unsafe { _mm512_maskz_loadu_ps(tail_mask, p.add(full)) });
            special |= _mm512_cmp_ps_mask::<_CMP_NLT_UQ>(v, inf);
            m[0] = _mm512_max_ps(v, m[0]);
        }
        let m = _mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]));
        let absmax = _mm512_reduce_max_ps(m);
        let scale = arith.scale_from_absmax(absmax);
        let qp = q.as_mut_ptr();
        let mut sum = _mm512_setzero_si512();
        let mut i = 0;
        if special == 0 && scale.is_finite() && arith != Arith::I2sCurrent {
            // Finite inputs and scale: |v·scale| ≤ absmax·scale rounds to at most 127, so the
            // clamp and the NaN case cannot apply, and a conversion with embedded
            // round-to-nearest-even (MXCSR plays no part) is the whole quantization. Four
            // vectors are narrowed to 64 bytes by two saturating packs (no-ops here) and one
            // lane permutation per 64 output bytes.
            let vs = _mm512_set1_ps(scale);
            let order = _mm512_set_epi32(15, 11, 7, 3, 14, 10, 6, 2, 13, 9, 5, 1, 12, 8, 4, 0);
            while i + 64 <= full {
                let v: [__m512i; 4] = std::array::from_fn(|j| {
                    let y = _mm512_mul_ps(unsafe { _mm512_loadu_ps(p.add(i + 16 * j)) }, vs);
                    _mm512_cvt_roundps_epi32::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y)
                });
                sum = _mm512_add_epi32(
                    _mm512_add_epi32(sum, _mm512_add_epi32(v[0], v[1])),
                    _mm512_add_epi32(v[2], v[3]),
                );
                let bytes = _mm512_packs_epi16(
                    _mm512_packs_epi32(v[0], v[1]),
                    _mm512_packs_epi32(v[2], v[3]),
                );
                let bytes = _mm512_permutexvar_epi32(order, bytes);
                unsafe { _mm512_storeu_si512(qp.add(i).cast(), bytes) };
                i += 64;
            }
        }

        let vs = _mm512_set1_ps(scale);
        let lo = _mm512_set1_ps(-128.0);
        let hi = _mm512_set1_ps(127.0);
        let half = _mm512_set1_ps(0.5);
        let one = _mm512_set1_ps(1.0);
        let sign = _mm512_set1_ps(-0.0);
        let away = arith == Arith::I2sCurrent;
        let quant = |v: __m512| -> __m512i {
            let y = _mm512_mul_ps(v, vs);
            let r = if away {
                let t = _mm512_roundscale_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let d = _mm512_abs_ps(_mm512_sub_ps(y, t));
                let up = _mm512_cmp_ps_mask::<_CMP_GE_OQ>(d, half);
                let s = _mm512_castsi512_ps(_mm512_or_si512(
                    _mm512_castps_si512(one),
                    _mm512_and_si512(_mm512_castps_si512(y), _mm512_castps_si512(sign)),
                ));
                _mm512_mask_add_ps(t, up, t, s)
            } else {
                _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y)
            };
            let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r);
            let r = _mm512_maskz_mov_ps(ord, r);
            let r = _mm512_min_ps(_mm512_max_ps(r, lo), hi);
            _mm512_cvtps_epi32(r)
        };
        while i < full {
            let v = quant(unsafe { _mm512_loadu_ps(p.add(i)) });
            sum = _mm512_add_epi32(sum, v);
            unsafe { _mm_storeu_si128(qp.add(i).cast(), _mm512_cvtepi32_epi8(v)) };
            i += 16;
        }
        if tail > 0 {
            let v = quant(unsafe { _mm512_maskz_loadu_ps(tail_mask, p.add(full)) });
            let v = _mm512_maskz_mov_epi32(tail_mask, v);
            sum = _mm512_add_epi32(sum, v);
            unsafe { _mm512_mask_cvtepi32_storeu_epi8(qp.add(full).cast(), tail_mask, v) };
        }
        (scale, _mm512_reduce_add_epi32(sum))
    }

    /// # Safety
    /// The CPU has AVX2; `q.len() == x.len()`.
    #[target_feature(enable = "avx2")]
    pub unsafe fn quantize_avx2(arith: Arith, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let n = x.len();
        let full = n - n % 8;
        let p = x.as_ptr();
        let abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
        // SAFETY (loads/stores below): offsets < full are whole vectors inside `x`/`q`.
        let mut m = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= full {
            for (j, mj) in m.iter_mut().enumerate() {
                let v = _mm256_and_ps(unsafe { _mm256_loadu_ps(p.add(i + 8 * j)) }, abs_mask);
                *mj = _mm256_max_ps(v, *mj);
            }
            i += 32;
        }
        while i < full {
            let v = _mm256_and_ps(unsafe { _mm256_loadu_ps(p.add(i)) }, abs_mask);
            m[0] = _mm256_max_ps(v, m[0]);
            i += 8;
        }
        let m = _mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]));
        let mut lanes = [0f32; 8];
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), m) };
        let mut absmax = lanes.iter().fold(0.0f32, |a, &v| a.max(v));
        for &v in &x[full..] {
            absmax = absmax.max(v.abs());
        }
        let scale = arith.scale_from_absmax(absmax);

        let vs = _mm256_set1_ps(scale);
        let lo = _mm256_set1_ps(-128.0);
        let hi = _mm256_set1_ps(127.0);
        let half = _mm256_set1_ps(0.5);
        let one = _mm256_set1_ps(1.0);
        let sign = _mm256_set1_ps(-0.0);
        let away = arith == Arith::I2sCurrent;
        let qp = q.as_mut_ptr();
        let mut sum = _mm256_setzero_si256();
        let mut i = 0;
        while i < full {
            let y = _mm256_mul_ps(unsafe { _mm256_loadu_ps(p.add(i)) }, vs);
            let r = if away {
                let t = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(y);
                let d = _mm256_and_ps(_mm256_sub_ps(y, t), abs_mask);
                let up = _mm256_cmp_ps::<_CMP_GE_OQ>(d, half);
                let s = _mm256_or_ps(one, _mm256_and_ps(y, sign));
                _mm256_add_ps(t, _mm256_and_ps(up, s))
            } else {
                _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(y)
            };
            let r = _mm256_and_ps(r, _mm256_cmp_ps::<_CMP_ORD_Q>(r, r));
            let r = _mm256_min_ps(_mm256_max_ps(r, lo), hi);
            let v = _mm256_cvtps_epi32(r);
            sum = _mm256_add_epi32(sum, v);
            let w = _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            unsafe { _mm_storel_epi64(qp.add(i).cast(), _mm_packs_epi16(w, w)) };
            i += 8;
        }
        let mut lanes = [0i32; 8];
        unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), sum) };
        let mut total: i32 = lanes.iter().sum();
        for (o, &v) in q[full..].iter_mut().zip(&x[full..]) {
            *o = arith.quantize_one(v, scale);
            total += *o as i32;
        }
        (scale, total)
    }
}
