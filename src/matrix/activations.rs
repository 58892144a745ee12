//! The activations of a call: quantized from floats into the calling thread's scratch (per
//! token, or per Q8_K block for `Arith::Ggml`), zero-padded to the weight plan's width, and for
//! the panel layout interleaved per token block with the per-token values its epilogues read.

use super::CallScales;
use super::epilogue::sum_i8;
use super::panels::TOKEN_BLOCK;
use super::parallel::{TokenRows, for_ranges};
use super::scratch::{EpilogueInputs, take};
use crate::context::Context;
use crate::kernel::{
    self,
    panel::{self, PanelGeom},
};
use crate::quant::activation::Arith;
use crate::quant::{BlockRowFn, q8_0, q8k};

/// Quantized activations: `n_tokens` rows of `q` (row `t` at `t·stride`), a scale and a sum each.
pub struct Activations<'a> {
    /// The int8 values, `cols` per token.
    pub q: &'a [i8],
    /// Values from one token's row to the next (≥ cols).
    pub stride: usize,
    /// Per token: the multiplier the floats were quantized with (`q ≈ x·scale`, 127/absmax).
    pub scales: &'a [f32],
    /// Per token: `Σq` over its `cols` values.
    pub sums: &'a [i32],
}

/// The quantized activations of one call (or chunk) as a weight plan runs them: `n_tokens`
/// rows of at least `cols` values.
pub(super) struct QuantizedActs<'a> {
    /// The arithmetic they were quantized with, which the epilogues follow.
    pub(super) arith: Arith,
    /// Per-token scales and sums (both empty with Q8_K blocks).
    pub(super) acts: Activations<'a>,
    pub(super) n_tokens: usize,
    pub(super) cols: usize,
    /// Whether every row already has the plan's width (`stride` = its padded columns) and is
    /// zeroed past `cols`: true for the buffer `gemm` quantizes into, false for a caller's rows
    /// (`gemm_i8`), which the row layout then copies with padding.
    pub(super) zero_padded: bool,
    /// The Q8_K scale of each (token, 256-column block) with `Arith::Ggml`:
    /// `[t·n_blocks + b]`.
    pub(super) block_scales: Option<&'a [f32]>,
}

/// The caller's float activations of one call (or chunk): `n_tokens` rows of `cols` at
/// `x[t·stride]`.
pub(super) struct FloatActs<'a> {
    pub(super) x: &'a [f32],
    pub(super) stride: usize,
    pub(super) cols: usize,
    pub(super) n_tokens: usize,
}

/// The buffers `gemm` quantizes activations into.
#[derive(Default)]
pub(super) struct QuantScratch {
    pub(super) q: Vec<i8>,
    pub(super) scales: Vec<f32>,
    pub(super) sums: Vec<i32>,
    pub(super) block_scales: Vec<f32>,
}

impl FloatActs<'_> {
    /// Quantizes per 256-column Q8_K block (`Arith::Ggml`) into rows of `width` (zero-padded).
    pub(super) fn quantize_q8k<'s>(
        &self,
        ctx: &Context,
        width: usize,
        buf: &'s mut QuantScratch,
    ) -> QuantizedActs<'s> {
        let row = ctx.kernels.quantize_q8_k;
        self.quantize_blocks(ctx, width, buf, (Arith::Ggml, q8k::BLOCK), row)
    }

    /// Quantizes per 32-column Q8_0 block (`Arith::GgmlQ8_0`) into rows of `width`
    /// (zero-padded), the blocks' f16 `d` as f32 in `block_scales[t·cols/32 + j]`.
    pub(super) fn quantize_q8_0<'s>(
        &self,
        ctx: &Context,
        width: usize,
        buf: &'s mut QuantScratch,
    ) -> QuantizedActs<'s> {
        // The quantizer of ggml's CPU mul_mat on this architecture (its `from_float`, fixed
        // when ggml is built, whatever tern's ISA level; the level's row only picks the
        // instructions, with the same bits): `TERN_COMPAT_GGML` outputs are the same at every
        // level, as the per-token modes' are.
        let row = ctx.kernels.quantize_q8_0;
        self.quantize_blocks(ctx, width, buf, (Arith::GgmlQ8_0, q8_0::BLOCK), row)
    }

    /// Quantizes per block (`arith` with its block length: ggml's Q8_K or Q8_0) into rows of
    /// `width`, zero-padded, with a scale per (token, block): token ranges run on the context's
    /// threads, `row` quantizing each token.
    fn quantize_blocks<'s>(
        &self,
        ctx: &Context,
        width: usize,
        buf: &'s mut QuantScratch,
        (arith, block): (Arith, usize),
        row: BlockRowFn,
    ) -> QuantizedActs<'s> {
        let (cols, n_tokens, x_stride) = (self.cols, self.n_tokens, self.stride);
        let q = take(&mut buf.q, n_tokens * width);
        let n_blocks = cols / block;
        let block_scales = take(&mut buf.block_scales, n_tokens * n_blocks);
        let (qs, bs) = (
            TokenRows::new(q, width),
            TokenRows::new(block_scales, n_blocks),
        );
        for_ranges(ctx, n_tokens, |r| {
            // SAFETY: the ranges are disjoint, so are the rows borrowed.
            let (q, bs) = unsafe { (qs.rows(r.clone()), bs.rows(r.clone())) };
            for (i, t) in r.clone().enumerate() {
                let x = &self.x[t * x_stride..][..cols];
                row(
                    x,
                    &mut q[i * width..][..cols],
                    &mut bs[i * n_blocks..][..n_blocks],
                );
            }
            zero_pad(q, width, cols, r.len());
        });
        QuantizedActs {
            arith,
            acts: Activations {
                q,
                stride: width,
                scales: &[],
                sums: &[],
            },
            n_tokens,
            cols,
            zero_padded: true,
            block_scales: Some(block_scales),
        }
    }

    /// Quantizes per token with `arith` into rows of `width` (zero-padded).
    pub(super) fn quantize_per_token<'s>(
        &self,
        ctx: &Context,
        arith: Arith,
        width: usize,
        buf: &'s mut QuantScratch,
    ) -> QuantizedActs<'s> {
        let (cols, n_tokens, x_stride) = (self.cols, self.n_tokens, self.stride);
        let q = take(&mut buf.q, n_tokens * width);
        let (scales, sums) = (
            take(&mut buf.scales, n_tokens),
            take(&mut buf.sums, n_tokens),
        );
        let (qs, ss, ms) = (
            TokenRows::new(q, width),
            TokenRows::new(scales, 1),
            TokenRows::new(sums, 1),
        );
        for_ranges(ctx, n_tokens, |r| {
            // SAFETY: the ranges are disjoint, so are the rows borrowed.
            let (q, s, m) = unsafe { (qs.rows(r.clone()), ss.rows(r.clone()), ms.rows(r.clone())) };
            let x = &self.x[r.start * x_stride..];
            let quantize = ctx.kernels.quantize_token;
            arith.quantize_batch(quantize, x, x_stride, cols, r.len(), q, width, s, Some(m));
            zero_pad(q, width, cols, r.len());
        });
        QuantizedActs {
            arith,
            acts: Activations {
                q,
                stride: width,
                scales,
                sums,
            },
            n_tokens,
            cols,
            zero_padded: true,
            block_scales: None,
        }
    }
}

impl<'a> QuantizedActs<'a> {
    /// These activations with rows of `width` zero-padded past `cols`: themselves when they
    /// are, else a padded copy in `buf`.
    pub(super) fn padded_to<'b>(&self, width: usize, buf: &'b mut [i8]) -> QuantizedActs<'b>
    where
        'a: 'b,
    {
        let (cols, n_tokens, acts) = (self.cols, self.n_tokens, &self.acts);
        let acts = if width == cols || self.zero_padded {
            // Rows long enough: the caller's, or `gemm`'s own zero-padded buffer.
            Activations { ..*acts }
        } else {
            let q = take(buf, n_tokens * width);
            for t in 0..n_tokens {
                q[t * width..][..cols].copy_from_slice(&acts.q[t * acts.stride..][..cols]);
            }
            zero_pad(q, width, cols, n_tokens);
            Activations {
                q,
                stride: width,
                ..*acts
            }
        };
        QuantizedActs {
            acts,
            zero_padded: true,
            ..*self
        }
    }

    /// The activations as the panel tasks read them: interleaved per block of `TOKEN_BLOCK`
    /// tokens into `ibuf`, with their sums per dot of `geom` (per-group scales) or per-token
    /// output factors (one scale) in `epilogue`.
    pub(super) fn for_panels<'b>(
        &'b self,
        ctx: &Context,
        geom: &PanelGeom,
        call_scales: CallScales<'b>,
        ibuf: &'b mut [i8],
        epilogue: &'b mut EpilogueInputs,
    ) -> Prepared<'b> {
        let (cols, n_tokens, acts, arith) = (self.cols, self.n_tokens, &self.acts, self.arith);
        let pc = geom.cols();
        let n_blocks = n_tokens.div_ceil(TOKEN_BLOCK);
        let EpilogueInputs {
            gsums,
            q8_0_offsets,
            post,
        } = epilogue;
        let ibuf: &[i8] = if n_tokens == 1 && self.zero_padded {
            // One token is interleaved already: its zero-padded row as it is, since a copy
            // would add work to a call whose whole cost is streaming the weights once.
            &acts.q[..pc]
        } else {
            let ibuf = take(ibuf, n_tokens * pc);
            let rows = TokenRows::new(ibuf, pc);
            for_ranges(ctx, n_blocks, |blocks| {
                for b in blocks {
                    let t0 = b * TOKEN_BLOCK;
                    let nb = TOKEN_BLOCK.min(n_tokens - t0);
                    // SAFETY: the block ranges are disjoint, so are their tokens' rows.
                    let out = unsafe { rows.rows(t0..t0 + nb) };
                    panel::interleave_acts(
                        &acts.q[t0 * acts.stride..],
                        acts.stride,
                        cols,
                        nb,
                        pc,
                        out,
                    );
                }
            });
            ibuf
        };
        // One sum per dot: per group, or per `merge` groups (a weight block of 32-column groups).
        let (ng, gk) = (geom.n_dots(), 4 * geom.group_steps * geom.merge);
        let (mut offsets, mut post_scales): (Option<&[f32]>, &[f32]) = (None, &[]);
        let gsums: &[i32] = match call_scales {
            CallScales::PerGroup(_) => {
                let g = take(gsums, n_tokens * ng);
                for t in 0..n_tokens {
                    let row = &acts.q[t * acts.stride..][..cols];
                    for (gi, out) in g[t * ng..][..ng].iter_mut().enumerate() {
                        *out = sum_i8(&row[gi * gk..((gi + 1) * gk).min(cols)]);
                    }
                }
                if let (Arith::GgmlQ8_0, Some(bs)) = (arith, self.block_scales) {
                    let o = take(q8_0_offsets, n_tokens * ng);
                    offsets = kernel::q8_0_offsets(g, &bs[..n_tokens * ng], o).then_some(&*o);
                }
                g
            }
            CallScales::One(w) => {
                let p = take(post, n_tokens);
                for (p, &s) in p.iter_mut().zip(&acts.scales[..n_tokens]) {
                    *p = arith.post_scale(w, s);
                }
                post_scales = p;
                &[]
            }
        };
        Prepared::Caller {
            call_scales,
            acts,
            ibuf,
            gsums,
            q8_0_offsets: offsets,
            post: post_scales,
        }
    }
}

/// The activations the panel tasks get.
#[derive(Clone, Copy)]
pub(super) enum Prepared<'a> {
    /// Quantized (and interleaved) by the caller, with the per-group sums or the per-token
    /// output factors of the call's scales.
    Caller {
        call_scales: CallScales<'a>,
        acts: &'a Activations<'a>,
        ibuf: &'a [i8],
        gsums: &'a [i32],
        /// ggml's Q8_0 order, when every offset is exact (`kernel::q8_0_offsets`).
        q8_0_offsets: Option<&'a [f32]>,
        post: &'a [f32],
    },
    /// One token each task quantizes into its own scratch; `w_scale` is the matrix's one scale
    /// (`CallScales::One`).
    Token { x: &'a [f32], w_scale: f32 },
}

impl<'a> Prepared<'a> {
    pub(super) fn call_scales(&self) -> CallScales<'a> {
        match *self {
            Self::Caller { call_scales, .. } => call_scales,
            Self::Token { w_scale, .. } => CallScales::One(w_scale),
        }
    }
}

/// Zeroes columns `cols..stride` of `n` rows of `stride`.
pub(super) fn zero_pad(q: &mut [i8], stride: usize, cols: usize, n: usize) {
    if stride > cols {
        for t in 0..n {
            q[t * stride + cols..][..stride - cols].fill(0);
        }
    }
}
