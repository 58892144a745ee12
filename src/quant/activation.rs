//! Per-token int8 activation quantization (absmax → 127) and the matching GEMM epilogue, in the
//! exact arithmetic of each compatibility mode (spec `bitnet_cpp.md` §2.3 and §2.5).

use crate::error::{Error, Result};

/// `tern_compat`: whose rounding and float arithmetic the activations and outputs follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compat {
    /// f32 absmax, half-to-even (BitNet training), exact int `dot − sum`, all-zero token → 0.
    Default = 0,
    /// bitnet.cpp today (isHuangXin port): f32 absmax, `roundf` (half away from zero),
    /// `(dot − sum)·(w_scale/act_scale)` in f32.
    BitnetCpp = 1,
    /// bitnet.cpp merge-dev: f64 absmax floored at 1e-5, half-to-even,
    /// `((dot − sum)/act_scale)·w_scale` in f32.
    BitnetCppLegacy = 2,
}

impl Compat {
    pub fn from_i32(v: i32) -> Result<Self> {
        match v {
            0 => Ok(Self::Default),
            1 => Ok(Self::BitnetCpp),
            2 => Ok(Self::BitnetCppLegacy),
            _ => Err(Error::invalid(format!(
                "compat {v} is unknown (allowed: 0 = TERN_COMPAT_DEFAULT, 1 = TERN_COMPAT_BITNET_CPP, 2 = TERN_COMPAT_BITNET_CPP_LEGACY)"
            ))),
        }
    }

    /// Quantizes one token: writes `q` (same length as `x`), returns `(act_scale, act_sum)` where
    /// `act_scale = 127/absmax` is a multiplier.
    pub fn quantize_token(self, x: &[f32], q: &mut [i8]) -> (f32, i32) {
        let scale = match self {
            Self::BitnetCppLegacy => {
                let absmax = x.iter().fold(1e-5f64, |m, &v| m.max(v.abs() as f64));
                (127.0 / absmax) as f32
            }
            Self::Default | Self::BitnetCpp => {
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
                Self::BitnetCpp => (v * scale).round(),
                Self::Default | Self::BitnetCppLegacy => (v * scale).round_ties_even(),
            };
            *out = r.clamp(-128.0, 127.0) as i8;
            sum += *out as i32;
        }
        (scale, sum)
    }

    /// Quantizes `q.len()/cols` tokens (token `t` at `x[t·x_stride..]`) into packed `q`,
    /// `scales` and, when wanted, `sums`.
    pub fn quantize_batch(
        self,
        x: &[f32],
        x_stride: usize,
        cols: usize,
        q: &mut [i8],
        scales: &mut [f32],
        mut sums: Option<&mut [i32]>,
    ) {
        for (t, qt) in q.chunks_exact_mut(cols).enumerate() {
            let (scale, sum) = self.quantize_token(&x[t * x_stride..][..cols], qt);
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
            Self::Default | Self::BitnetCpp => w_scale / act_scale,
            Self::BitnetCppLegacy => w_scale,
        }
    }

    /// Output for one (token, row): `dot_codes` is Σ code·q with codes {0,1,2}, `act_sum` = Σ q.
    #[inline]
    pub fn output(self, dot_codes: i32, act_sum: i32, act_scale: f32, post: f32) -> f32 {
        match self {
            Self::Default => {
                if act_scale == 0.0 {
                    0.0
                } else {
                    (dot_codes - act_sum) as f32 * post
                }
            }
            Self::BitnetCpp => (dot_codes as f32 - act_sum as f32) * post,
            Self::BitnetCppLegacy => ((dot_codes as f32 - act_sum as f32) / act_scale) * post,
        }
    }
}
