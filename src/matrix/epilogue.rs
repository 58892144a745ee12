//! Turning the kernels' integer dots into outputs: the per-token formulas of one scale and of
//! per-group scales, and the sums they need.

use std::ops::Range;

use super::scratch::take;
use crate::kernel::panel::{MAX_DOT_STEPS, PanelGeom, TILE_ROWS};
use crate::quant::activation::Arith;

pub(super) fn sum_i8(v: &[i8]) -> i32 {
    v.iter().map(|&x| x as i32).sum()
}

/// `geom` summing as many consecutive groups per dot as `MAX_DOT_STEPS` allows.
pub(super) fn summed_groups(geom: PanelGeom) -> PanelGeom {
    let merge = (1..=geom.n_groups)
        .rev()
        .find(|m| geom.n_groups.is_multiple_of(*m) && m * geom.group_steps <= MAX_DOT_STEPS)
        .unwrap_or(1);
    PanelGeom { merge, ..geom }
}

/// The dots of lanes `lanes` of one token, summed over the `ng` groups of a one-scale matrix
/// (exact: the total of a row fits int32 as the single-group kernels' does).
pub(super) fn acc_i32(d: &[i32], ng: usize, lanes: Range<usize>) -> TileDots {
    let mut out = TileDots {
        len: lanes.len(),
        ..TileDots::default()
    };
    out.v[..lanes.len()].copy_from_slice(&d[lanes.clone()]);
    for g in 1..ng {
        for (o, &x) in out.v.iter_mut().zip(&d[g * TILE_ROWS..][lanes.clone()]) {
            *o = o.wrapping_add(x);
        }
    }
    out
}

/// Up to one tile's rows of int32 dots (on the stack, no allocation).
pub(super) struct TileDots {
    v: [i32; TILE_ROWS],
    len: usize,
}

impl Default for TileDots {
    fn default() -> Self {
        Self {
            v: [0; TILE_ROWS],
            len: 0,
        }
    }
}

impl std::ops::Deref for TileDots {
    type Target = [i32];
    fn deref(&self) -> &[i32] {
        &self.v[..self.len]
    }
}

impl std::ops::DerefMut for TileDots {
    fn deref_mut(&mut self) -> &mut [i32] {
        &mut self.v[..self.len]
    }
}

/// One token's outputs of a one-scale matrix: `Arith::output` (+ bias) with the mode's branch
/// hoisted out of the loop so it vectorizes; bit-identical with `Arith::output`. `sum`, `s` and
/// `post` are the token's activation sum, scale and output factor.
pub(super) fn epilogue_shared(
    arith: Arith,
    dots: &[i32],
    sum: i32,
    s: f32,
    post: f32,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    macro_rules! each {
        ($f:expr) => {{
            let f = $f;
            match bias {
                Some(b) => {
                    for ((o, &d), &b) in out.iter_mut().zip(dots).zip(b) {
                        *o = f(d) + b;
                    }
                }
                None => {
                    for (o, &d) in out.iter_mut().zip(dots) {
                        *o = f(d);
                    }
                }
            }
        }};
    }
    match arith {
        Arith::Default | Arith::Ggml | Arith::GgmlQ8_0 | Arith::Lut if s == 0.0 => {
            each!(|_: i32| 0.0f32)
        }
        Arith::Default | Arith::Ggml | Arith::GgmlQ8_0 => each!(|d: i32| (d - sum) as f32 * post),
        Arith::I2sCurrent => each!(|d: i32| (d as f32 - sum as f32) * post),
        Arith::I2sLegacy => each!(|d: i32| ((d as f32 - sum as f32) / s) * post),
        Arith::Lut => each!(|d: i32| (d - sum) as f32 / s * post),
    }
}

/// One token's outputs of a per-block-scale matrix from its accumulated sums: `acc / s`
/// (0 for an all-zero token) in the default mode, `acc` itself in ggml's (+ bias).
pub(super) fn epilogue_groups(
    ggml: bool,
    acc: &[f32],
    s: f32,
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    let zero = !ggml && s == 0.0;
    for (i, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
        let v = if zero {
            0.0
        } else if ggml {
            a
        } else {
            a / s
        };
        *o = match bias {
            Some(b) => v + b[i],
            None => v,
        };
    }
}

/// Σ q over each (token, group): `[t·n_groups + g]`, in `buf`.
pub(super) fn group_sums<'a>(
    buf: &'a mut [i32],
    q: &[i8],
    stride: usize,
    n_tokens: usize,
    g_cols: usize,
    n_groups: usize,
) -> &'a [i32] {
    let out = take(buf, n_tokens * n_groups);
    for (i, o) in out.iter_mut().enumerate() {
        let (t, g) = (i / n_groups, i % n_groups);
        *o = sum_i8(&q[t * stride + g * g_cols..][..g_cols]);
    }
    out
}
