//! A packed ternary matrix, validated once and multiplied many times, and the GEMM driver that
//! quantizes activations, splits rows over threads and applies the epilogue.
//!
//! Every format is re-laid-out at creation into what the code kernels read: I2_S codes (I2_S
//! matrices keep their own bytes; other formats are packed as 128-element x86 blocks, rows padded
//! with zero weights to a multiple of 128). Formats with a scale per block (TQ1_0/TQ2_0) are
//! stored group by group (256 columns each) so each group's integer dots can be scaled.

use std::ffi::CStr;
use std::ops::Range;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::format::{I2sVariant, Layout, Shape, i2s};
use crate::kernel::{I2sDotsFn, Kernel};
use crate::quant::activation::Arith;
use crate::quant::{Compat, QuantConfig, QuantStats, q8k, quantize_packed};

/// Output rows computed per task: big enough to amortize a task, small enough to balance.
const ROW_CHUNK: usize = 64;

/// Columns of one x86 I2_S block: the internal layout pads rows to a multiple of it.
const KERNEL_BLOCK: usize = 128;

pub struct Matrix {
    layout: Layout,
    shape: Shape,
    packed_bytes: usize,
    /// The kernel layout: for each group of `group_cols` columns, `rows` rows of `group_cols/4`
    /// code bytes. One group of all (padded) columns when the matrix has one scale.
    codes: Vec<u8>,
    /// The block layout of `codes`.
    variant: I2sVariant,
    /// Row length in `codes` (≥ cols; the padding holds zero weights).
    padded_cols: usize,
    group_cols: usize,
    scales: Scales,
    kernel: Kernel<I2sDotsFn>,
}

/// The weight scales as the GEMM applies them.
#[derive(Clone, Debug, PartialEq)]
enum Scales {
    /// One scale for the whole matrix (I2_S, TL1, TL2).
    Shared(f32),
    /// One scale per (row, column group): `[row · n_groups + group]` (TQ1_0, TQ2_0).
    PerGroup(Vec<f32>),
}

/// Per-call GEMM settings (the validated `tern_gemm_options`).
#[derive(Clone, Debug)]
pub struct GemmOptions<'a> {
    pub compat: Compat,
    /// Output rows to compute; `None` = all.
    pub rows: Option<Range<usize>>,
    /// Added to every output row `r`: `bias[r]`; `rows` entries.
    pub bias: Option<&'a [f32]>,
}

impl Default for GemmOptions<'_> {
    fn default() -> Self {
        Self {
            compat: Compat::Default,
            rows: None,
            bias: None,
        }
    }
}

/// Quantized activations: `n_tokens` rows of `q` (row `t` at `t·stride`), a scale and a sum each.
pub struct Activations<'a> {
    pub q: &'a [i8],
    pub stride: usize,
    pub scales: &'a [f32],
    pub sums: &'a [i32],
}

/// Elements a strided buffer of `n` rows of `row_len` must hold, or an error on overflow.
pub fn strided_len(what: &str, n: usize, stride: usize, row_len: usize) -> Result<usize> {
    if stride < row_len {
        return Err(Error::invalid(format!(
            "{what} stride {stride} < row length {row_len}"
        )));
    }
    (n - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(row_len))
        .filter(|&v| v <= isize::MAX as usize / 4)
        .ok_or_else(|| {
            Error::invalid(format!(
                "{what}: {n} rows of stride {stride} overflow the address space"
            ))
        })
}

impl Matrix {
    /// Validates a packed buffer (`packed` may be longer than needed) and re-lays it out for the
    /// kernels of `ctx`.
    pub fn from_packed(ctx: &Context, layout: Layout, shape: Shape, packed: &[u8]) -> Result<Self> {
        let packed_bytes = layout.packed_size(shape)?;
        if packed.len() < packed_bytes {
            return Err(Error::too_small("packed", packed.len(), packed_bytes));
        }
        let packed = &packed[..packed_bytes];
        let stored = layout.validate(shape, packed)?;
        let per_block = layout.elements_per_scale(shape) != shape.elements();
        let padded_cols = match layout {
            Layout::I2s(_) => shape.cols,
            _ => shape.cols.next_multiple_of(KERNEL_BLOCK),
        };
        let group_cols = if per_block {
            layout.elements_per_scale(shape)
        } else {
            padded_cols
        };
        let (codes, variant) = match layout {
            // I2_S rows already are what the kernels read.
            Layout::I2s(v) => (packed[..i2s::code_bytes(shape)].to_vec(), v),
            _ => {
                let mut ternary = vec![0i8; shape.elements()];
                layout.unpack(shape, packed, &mut ternary)?;
                (
                    group_major_codes(&ternary, shape, padded_cols, group_cols),
                    I2sVariant::X86,
                )
            }
        };
        let scales = if per_block {
            Scales::PerGroup(stored)
        } else {
            Scales::Shared(stored[0])
        };
        Ok(Self {
            layout,
            shape,
            packed_bytes,
            codes,
            variant,
            padded_cols,
            group_cols,
            scales,
            kernel: ctx.kernels.i2s_dots,
        })
    }

    /// Quantizes `w` (`shape.elements()` floats) with `cfg` and packs it.
    pub fn from_f32(
        ctx: &Context,
        layout: Layout,
        shape: Shape,
        w: &[f32],
        cfg: &QuantConfig,
    ) -> Result<(Self, QuantStats)> {
        let (packed, stats) = quantize_packed(layout, shape, w, cfg)?;
        Ok((Self::from_packed(ctx, layout, shape, &packed)?, stats))
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }
    pub fn shape(&self) -> Shape {
        self.shape
    }
    pub fn packed_bytes(&self) -> usize {
        self.packed_bytes
    }
    /// The shared scale, or the first per-block scale.
    pub fn first_scale(&self) -> f32 {
        match &self.scales {
            Scales::Shared(s) => *s,
            Scales::PerGroup(v) => v[0],
        }
    }
    pub fn kernel_name(&self) -> &'static CStr {
        self.kernel.name
    }

    /// The weights as the GEMM applies them (for other backends, e.g. the CUDA upload):
    /// row-major `rows × cols` ternary values, the scales (one, or one per (row, group) at
    /// `[row · n_groups + g]`), and the group width in columns (meaningful with per-group scales).
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn ternary_and_scales(&self) -> (Vec<i8>, Vec<f32>, usize) {
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        let mut ternary = vec![0i8; rows * cols];
        match self.layout {
            Layout::I2s(v) => i2s::unpack(v, &self.codes, &mut ternary),
            _ => {
                let (g_cols, row_bytes) = (self.group_cols, self.group_cols / 4);
                for g in 0..self.padded_cols / g_cols {
                    for r in 0..rows {
                        let codes = &self.codes[(g * rows + r) * row_bytes..][..row_bytes];
                        for j in 0..g_cols.min(cols.saturating_sub(g * g_cols)) {
                            ternary[r * cols + g * g_cols + j] =
                                i2s::code_at(I2sVariant::X86, codes, j) as i8 - 1;
                        }
                    }
                }
            }
        }
        let scales = match &self.scales {
            Scales::Shared(s) => vec![*s],
            Scales::PerGroup(v) => v.clone(),
        };
        (ternary, scales, self.group_cols)
    }

    /// `y[t·y_stride + r] = Σ_k W[r][k]·x[t·x_stride + k]` for `n_tokens` tokens, BitNet style:
    /// activations are quantized with the arithmetic of `opts.compat` for this format.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        ctx: &Context,
        x: &[f32],
        n_tokens: usize,
        x_stride: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        let cols = self.shape.cols;
        let need = strided_len("x", n_tokens, x_stride, cols)?;
        if x.len() < need {
            return Err(Error::too_small("x", x.len() * 4, need * 4));
        }
        let arith = opts.compat.arith(self.layout.format())?;
        let stride = self.padded_cols;
        let mut q = vec![0i8; n_tokens * stride];
        if arith == Arith::Ggml {
            let mut block_scales = vec![0f32; n_tokens * (cols / q8k::BLOCK)];
            q8k::quantize_rows(
                x,
                x_stride,
                cols,
                n_tokens,
                &mut q,
                stride,
                &mut block_scales,
            );
            self.check_call(n_tokens, y, y_stride, opts)?;
            let Scales::PerGroup(w_scales) = &self.scales else {
                return Err(Error::unsupported(
                    "TERN_COMPAT_GGML needs per-block weight scales (TQ1_0, TQ2_0)",
                ));
            };
            self.run_ggml(
                ctx,
                w_scales,
                &q,
                &block_scales,
                n_tokens,
                y,
                y_stride,
                opts,
            );
            return Ok(());
        }
        let mut scales = vec![0f32; n_tokens];
        let mut sums = vec![0i32; n_tokens];
        arith.quantize_batch(
            x,
            x_stride,
            cols,
            n_tokens,
            &mut q,
            stride,
            &mut scales,
            Some(&mut sums),
        );
        let acts = Activations {
            q: &q,
            stride,
            scales: &scales,
            sums: &sums,
        };
        self.gemm_i8(ctx, &acts, n_tokens, y, y_stride, opts)
    }

    /// GEMM on activations the caller quantized per token (not `Compat::Ggml`, whose activations
    /// are per-block Q8_K).
    pub fn gemm_i8(
        &self,
        ctx: &Context,
        acts: &Activations,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        let cols = self.shape.cols;
        let need_q = strided_len("q", n_tokens, acts.stride, cols)?;
        if acts.q.len() < need_q {
            return Err(Error::too_small("q", acts.q.len(), need_q));
        }
        if acts.scales.len() < n_tokens || acts.sums.len() < n_tokens {
            return Err(Error::invalid(format!(
                "scales and sums need {n_tokens} entries (got {} and {})",
                acts.scales.len(),
                acts.sums.len()
            )));
        }
        let arith = opts.compat.arith(self.layout.format())?;
        if arith == Arith::Ggml {
            return Err(Error::unsupported(
                "TERN_COMPAT_GGML quantizes activations per 256-element block (Q8_K); use tern_gemm, which quantizes them itself",
            ));
        }
        self.check_call(n_tokens, y, y_stride, opts)?;
        // The kernels read `padded_cols` activations per token; pad a copy with zeros if needed.
        let padded;
        let acts = if self.padded_cols == cols {
            Activations { ..*acts }
        } else {
            let stride = self.padded_cols;
            let mut q = vec![0i8; n_tokens * stride];
            for t in 0..n_tokens {
                q[t * stride..][..cols].copy_from_slice(&acts.q[t * acts.stride..][..cols]);
            }
            padded = q;
            Activations {
                q: &padded,
                stride,
                ..*acts
            }
        };
        match &self.scales {
            Scales::Shared(w_scale) => {
                self.run_shared(ctx, arith, *w_scale, &acts, n_tokens, y, y_stride, opts)
            }
            Scales::PerGroup(w_scales) => {
                self.run_per_group(ctx, arith, w_scales, &acts, n_tokens, y, y_stride, opts)?
            }
        }
        Ok(())
    }

    /// Checks the output buffer and options against the matrix.
    fn check_call(
        &self,
        n_tokens: usize,
        y: &[f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        let rows = self.shape.rows;
        let need_y = strided_len("y", n_tokens, y_stride, rows)?;
        if y.len() < need_y {
            return Err(Error::too_small("y", y.len() * 4, need_y * 4));
        }
        let range = self.row_range(opts);
        if range.start >= range.end || range.end > rows {
            return Err(Error::invalid(format!(
                "row range [{}, {}) is empty or outside [0, {rows})",
                range.start, range.end
            )));
        }
        if let Some(bias) = opts.bias
            && bias.len() < rows
        {
            return Err(Error::invalid(format!(
                "bias has {} entries < rows = {rows}",
                bias.len()
            )));
        }
        Ok(())
    }

    fn row_range(&self, opts: &GemmOptions) -> Range<usize> {
        opts.rows.clone().unwrap_or(0..self.shape.rows)
    }

    /// Runs `body(r0, n)` for every chunk of the requested rows, spread over the threads, and
    /// gives it a writer for output element (token, row).
    fn for_row_chunks(
        &self,
        ctx: &Context,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        body: impl Fn(usize, usize, &dyn Fn(usize, usize, f32)) + Sync,
    ) {
        let range = self.row_range(opts);
        let out = OutPtr(y.as_mut_ptr());
        let emit = |t: usize, r: usize, v: f32| {
            let v = opts.bias.map_or(v, |b| v + b[r]);
            // SAFETY: `check_call` verified that y holds token t's row r; each (t, r) is written
            // by exactly one task.
            unsafe { out.write(t * y_stride + r, v) };
        };
        ctx.threads.for_each(range.len().div_ceil(ROW_CHUNK), |c| {
            let r0 = range.start + c * ROW_CHUNK;
            body(r0, ROW_CHUNK.min(range.end - r0), &emit);
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn run_shared(
        &self,
        ctx: &Context,
        arith: Arith,
        w_scale: f32,
        acts: &Activations,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) {
        let post: Vec<f32> = acts.scales[..n_tokens]
            .iter()
            .map(|&s| arith.post_scale(w_scale, s))
            .collect();
        self.for_row_chunks(ctx, y, y_stride, opts, |r0, n, emit| {
            let mut dots = vec![0i32; n * n_tokens];
            self.group_dots(0, r0, n, acts.q, acts.stride, n_tokens, &mut dots);
            for t in 0..n_tokens {
                for r in 0..n {
                    emit(
                        t,
                        r0 + r,
                        arith.output(dots[t * n + r], acts.sums[t], acts.scales[t], post[t]),
                    );
                }
            }
        });
    }

    /// Per-block scales, per-token activations (`Compat::Default` only):
    /// `y = (Σ_g f32(S_g)·w_g) / act_scale`, `S_g` the exact ternary dot of group `g`.
    #[allow(clippy::too_many_arguments)]
    fn run_per_group(
        &self,
        ctx: &Context,
        arith: Arith,
        w_scales: &[f32],
        acts: &Activations,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        if arith != Arith::Default {
            return Err(Error::unsupported(format!(
                "{arith:?} arithmetic needs one scale per tensor; {} has one per block",
                self.layout.format().name()
            )));
        }
        let g_cols = self.group_cols;
        let n_groups = self.padded_cols / g_cols;
        let group_sums = group_sums(acts.q, acts.stride, n_tokens, g_cols, n_groups);
        self.for_row_chunks(ctx, y, y_stride, opts, |r0, n, emit| {
            let mut dots = vec![0i32; n * n_tokens];
            let mut acc = vec![0f32; n * n_tokens];
            for g in 0..n_groups {
                self.group_dots(g, r0, n, acts.q, acts.stride, n_tokens, &mut dots);
                for t in 0..n_tokens {
                    for r in 0..n {
                        let s = dots[t * n + r] - group_sums[t * n_groups + g];
                        acc[t * n + r] += s as f32 * w_scales[(r0 + r) * n_groups + g];
                    }
                }
            }
            for t in 0..n_tokens {
                let s = acts.scales[t];
                for r in 0..n {
                    emit(t, r0 + r, if s == 0.0 { 0.0 } else { acc[t * n + r] / s });
                }
            }
        });
        Ok(())
    }

    /// ggml's mul_mat for TQ: `y = Σ_b f32(S_b)·(d_act_b·d_w_b)` in block order, with Q8_K
    /// activations (`q` per token, `block_scales[t·n_blocks + b]`).
    #[allow(clippy::too_many_arguments)]
    fn run_ggml(
        &self,
        ctx: &Context,
        w_scales: &[f32],
        q: &[i8],
        block_scales: &[f32],
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) {
        let stride = self.padded_cols;
        let g_cols = self.group_cols;
        let n_groups = self.padded_cols / g_cols;
        let group_sums = group_sums(q, stride, n_tokens, g_cols, n_groups);
        self.for_row_chunks(ctx, y, y_stride, opts, |r0, n, emit| {
            let mut dots = vec![0i32; n * n_tokens];
            let mut acc = vec![0f32; n * n_tokens];
            for g in 0..n_groups {
                self.group_dots(g, r0, n, q, stride, n_tokens, &mut dots);
                for t in 0..n_tokens {
                    let d_act = block_scales[t * n_groups + g];
                    for r in 0..n {
                        let s = dots[t * n + r] - group_sums[t * n_groups + g];
                        acc[t * n + r] += s as f32 * (d_act * w_scales[(r0 + r) * n_groups + g]);
                    }
                }
            }
            for t in 0..n_tokens {
                for r in 0..n {
                    emit(t, r0 + r, acc[t * n + r]);
                }
            }
        });
    }

    /// Code dots of rows `[r0, r0 + n)` over column group `g` against every token.
    #[allow(clippy::too_many_arguments)]
    fn group_dots(
        &self,
        g: usize,
        r0: usize,
        n: usize,
        q: &[i8],
        stride: usize,
        n_tokens: usize,
        dots: &mut [i32],
    ) {
        let g_cols = self.group_cols;
        let row_bytes = g_cols / 4;
        let base = g * self.shape.rows * row_bytes;
        let weights = &self.codes[base + r0 * row_bytes..base + (r0 + n) * row_bytes];
        (self.kernel.run)(
            self.variant,
            weights,
            g_cols,
            &q[g * g_cols..],
            stride,
            n_tokens,
            dots,
        );
    }
}

/// Σ q over each (token, group): `[t·n_groups + g]`.
fn group_sums(
    q: &[i8],
    stride: usize,
    n_tokens: usize,
    g_cols: usize,
    n_groups: usize,
) -> Vec<i32> {
    (0..n_tokens * n_groups)
        .map(|i| {
            let (t, g) = (i / n_groups, i % n_groups);
            q[t * stride + g * g_cols..][..g_cols]
                .iter()
                .map(|&v| v as i32)
                .sum()
        })
        .collect()
}

/// Packs ternary values into the kernel layout: rows padded with zeros to `padded_cols`, then for
/// each group of `group_cols` columns every row's slice of the group as I2_S x86 codes.
fn group_major_codes(
    ternary: &[i8],
    shape: Shape,
    padded_cols: usize,
    group_cols: usize,
) -> Vec<u8> {
    let row_bytes = group_cols / 4;
    let mut codes = vec![0u8; shape.rows * padded_cols / 4];
    let mut padded_row = vec![0i8; padded_cols];
    for r in 0..shape.rows {
        padded_row[..shape.cols].copy_from_slice(&ternary[r * shape.cols..][..shape.cols]);
        for (g, slice) in padded_row.chunks_exact(group_cols).enumerate() {
            let at = (g * shape.rows + r) * row_bytes;
            i2s::pack_codes(I2sVariant::X86, slice, &mut codes[at..at + row_bytes]);
        }
    }
    codes
}

/// The output pointer shared by the row tasks, which write disjoint elements.
struct OutPtr(*mut f32);

impl OutPtr {
    /// # Safety
    /// `index` must be in bounds of the output slice and written by one task only.
    unsafe fn write(&self, index: usize, v: f32) {
        unsafe { *self.0.add(index) = v };
    }
}
// SAFETY: tasks write disjoint elements of one live `&mut [f32]` (see `for_row_chunks`).
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}
