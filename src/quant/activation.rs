//! Per-token int8 activation quantization (absmax → 127) and the matching GEMM epilogue, in the
//! exact arithmetic of each compatibility mode (spec `bitnet_cpp.md` §2.3, §2.5 and §3.2–3.3;
//! ggml's Q8_K path is in `q8k.rs`).

use crate::error::{Error, Result};
use crate::format::Format;

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
}

impl Compat {
    pub fn from_i32(v: i32) -> Result<Self> {
        match v {
            0 => Ok(Self::Default),
            1 => Ok(Self::BitnetCpp),
            2 => Ok(Self::BitnetCppLegacy),
            3 => Ok(Self::Ggml),
            _ => Err(Error::invalid(format!(
                "compat {v} is unknown (allowed: 0 = TERN_COMPAT_DEFAULT, 1 = TERN_COMPAT_BITNET_CPP, 2 = TERN_COMPAT_BITNET_CPP_LEGACY, 3 = TERN_COMPAT_GGML)"
            ))),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "TERN_COMPAT_DEFAULT",
            Self::BitnetCpp => "TERN_COMPAT_BITNET_CPP",
            Self::BitnetCppLegacy => "TERN_COMPAT_BITNET_CPP_LEGACY",
            Self::Ggml => "TERN_COMPAT_GGML",
        }
    }

    /// The arithmetic of this mode for `format`, or an error naming the modes that apply.
    pub fn arith(self, format: Format) -> Result<Arith> {
        let bitnet = matches!(format, Format::I2S | Format::Tl1 | Format::Tl2);
        Ok(match (self, format) {
            (Self::Default, _) => Arith::Default,
            (Self::BitnetCpp, Format::I2S) => Arith::I2sCurrent,
            (Self::BitnetCppLegacy, Format::I2S) => Arith::I2sLegacy,
            (Self::BitnetCpp | Self::BitnetCppLegacy, Format::Tl1 | Format::Tl2) => Arith::Lut,
            (Self::Ggml, Format::Tq1_0 | Format::Tq2_0) => Arith::Ggml,
            _ => {
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

impl Arith {
    /// Quantizes one token: writes `q` (same length as `x`), returns `(act_scale, act_sum)` where
    /// `act_scale = 127/absmax` is a multiplier. Not for `Ggml` (blocks, see `q8k`).
    pub fn quantize_token(self, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let scale = match self {
            Self::I2sLegacy => {
                let absmax = x.iter().fold(1e-5f64, |m, &v| m.max(v.abs() as f64));
                (127.0 / absmax) as f32
            }
            Self::Default | Self::I2sCurrent | Self::Lut | Self::Ggml => {
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
            let r = match self {
                Self::I2sCurrent => (v * scale).round(),
                _ => (v * scale).round_ties_even(),
            };
            *out = r.clamp(-128.0, 127.0) as i8;
            sum += *out as i32;
        }
        (scale, sum)
    }

    /// Quantizes `n_tokens` tokens (token `t` at `x[t·x_stride..]`, `cols` values) into `q` (token
    /// `t` at `q[t·q_stride..]`), `scales` and, when wanted, `sums`.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize_batch(
        self,
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
            let (scale, sum) =
                self.quantize_token(&x[t * x_stride..][..cols], &mut q[t * q_stride..][..cols]);
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
            Self::I2sLegacy | Self::Lut | Self::Ggml => w_scale,
        }
    }

    /// Output for one (token, row): `dot_codes` is Σ code·q with codes {0,1,2}, `act_sum` = Σ q.
    #[inline]
    pub fn output(self, dot_codes: i32, act_sum: i32, act_scale: f32, post: f32) -> f32 {
        match self {
            Self::Default | Self::Ggml => {
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
