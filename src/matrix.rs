//! A packed ternary matrix, validated once and multiplied many times, and the GEMM driver that
//! quantizes activations, splits rows over threads and applies the epilogue.

use std::ffi::CStr;
use std::ops::Range;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::format::{I2sVariant, Layout, Shape, i2s};
use crate::kernel::{I2sDotsFn, Kernel};
use crate::quant::{Compat, QuantConfig, QuantStats, quantize_packed};

/// Output rows computed per task: big enough to amortize a task, small enough to balance.
const ROW_CHUNK: usize = 64;

pub struct Matrix {
    layout: Layout,
    shape: Shape,
    packed_bytes: usize,
    /// The weights re-laid-out for the kernel: I2_S codes, stored
    /// group by group — for each group of `group_cols` columns, `rows` rows of `group_cols/4`
    /// bytes. With one shared scale there is a single group of all columns (plain I2_S rows).
    codes: Vec<u8>,
    /// The block layout of `codes`: I2_S matrices keep theirs; others are packed as x86.
    variant: I2sVariant,
    group_cols: usize,
    scales: Scales,
    kernel: Kernel<I2sDotsFn>,
}

/// The weight scales as the GEMM applies them.
#[derive(Clone, Debug, PartialEq)]
enum Scales {
    /// One scale for the whole matrix.
    Shared(f32),
    /// One scale per (row, column group): `[row · n_groups + group]`.
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
        let shared = stored.iter().all(|&s| s == stored[0]);
        let group_cols = if shared {
            shape.cols
        } else {
            layout.elements_per_scale(shape)
        };
        let (codes, variant) = match layout {
            // I2_S rows already are what the kernels read.
            Layout::I2s(v) => (packed[..i2s::code_bytes(shape)].to_vec(), v),
            Layout::Tq(_) => {
                let mut ternary = vec![0i8; shape.elements()];
                layout.unpack(shape, packed, &mut ternary);
                (
                    group_major_codes(&ternary, shape, group_cols),
                    I2sVariant::X86,
                )
            }
        };
        let scales = if shared {
            Scales::Shared(stored[0])
        } else {
            Scales::PerGroup(stored)
        };
        Ok(Self {
            layout,
            shape,
            packed_bytes,
            codes,
            variant,
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

    /// `y[t·y_stride + r] = Σ_k W[r][k]·x[t·x_stride + k]` for `n_tokens` tokens, BitNet style:
    /// activations are quantized per token with `opts.compat`.
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
        let mut q = vec![0i8; n_tokens * cols];
        let mut scales = vec![0f32; n_tokens];
        let mut sums = vec![0i32; n_tokens];
        opts.compat
            .quantize_batch(x, x_stride, cols, &mut q, &mut scales, Some(&mut sums));
        let acts = Activations {
            q: &q,
            stride: cols,
            scales: &scales,
            sums: &sums,
        };
        self.gemm_i8(ctx, &acts, n_tokens, y, y_stride, opts)
    }

    /// GEMM on activations the caller quantized.
    pub fn gemm_i8(
        &self,
        ctx: &Context,
        acts: &Activations,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        let Shape { rows, cols } = self.shape;
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
        let need_y = strided_len("y", n_tokens, y_stride, rows)?;
        if y.len() < need_y {
            return Err(Error::too_small("y", y.len() * 4, need_y * 4));
        }
        let range = opts.rows.clone().unwrap_or(0..rows);
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

        let compat = opts.compat;
        if matches!(self.scales, Scales::PerGroup(_)) && compat != Compat::Default {
            return Err(Error::unsupported(format!(
                "{compat:?} reproduces bitnet.cpp, whose formats have one scale per tensor; this {} matrix has different scales per block, so only TERN_COMPAT_DEFAULT applies",
                self.layout.format().name()
            )));
        }
        let out = OutPtr(y.as_mut_ptr());
        let emit = |t: usize, r: usize, v: f32| {
            let v = opts.bias.map_or(v, |b| v + b[r]);
            // SAFETY: t < n_tokens and r < rows, so the index is below need_y ≤ y.len(); each
            // (t, row) is written by exactly one task.
            unsafe { out.write(t * y_stride + r, v) };
        };
        let n_chunks = range.len().div_ceil(ROW_CHUNK);
        match &self.scales {
            Scales::Shared(w_scale) => {
                let post: Vec<f32> = acts.scales[..n_tokens]
                    .iter()
                    .map(|&s| compat.post_scale(*w_scale, s))
                    .collect();
                ctx.threads.for_each(n_chunks, |c| {
                    let r0 = range.start + c * ROW_CHUNK;
                    let n = ROW_CHUNK.min(range.end - r0);
                    let mut dots = vec![0i32; n * n_tokens];
                    self.group_dots(0, r0, n, acts, n_tokens, &mut dots);
                    for t in 0..n_tokens {
                        for r in 0..n {
                            let v = compat.output(
                                dots[t * n + r],
                                acts.sums[t],
                                acts.scales[t],
                                post[t],
                            );
                            emit(t, r0 + r, v);
                        }
                    }
                });
            }
            Scales::PerGroup(w_scales) => {
                let g_cols = self.group_cols;
                let n_groups = cols / g_cols;
                let group_sums: Vec<i32> = (0..n_tokens * n_groups)
                    .map(|i| {
                        let (t, g) = (i / n_groups, i % n_groups);
                        acts.q[t * acts.stride + g * g_cols..][..g_cols]
                            .iter()
                            .map(|&v| v as i32)
                            .sum()
                    })
                    .collect();
                ctx.threads.for_each(n_chunks, |c| {
                    let r0 = range.start + c * ROW_CHUNK;
                    let n = ROW_CHUNK.min(range.end - r0);
                    let mut dots = vec![0i32; n * n_tokens];
                    let mut acc = vec![0f32; n * n_tokens];
                    for g in 0..n_groups {
                        self.group_dots(g, r0, n, acts, n_tokens, &mut dots);
                        for t in 0..n_tokens {
                            for r in 0..n {
                                let ternary_dot = dots[t * n + r] - group_sums[t * n_groups + g];
                                acc[t * n + r] +=
                                    ternary_dot as f32 * w_scales[(r0 + r) * n_groups + g];
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
            }
        }
        Ok(())
    }

    /// Code dots of rows `[r0, r0 + n)` over column group `g` against every token.
    fn group_dots(
        &self,
        g: usize,
        r0: usize,
        n: usize,
        acts: &Activations,
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
            &acts.q[g * g_cols..],
            acts.stride,
            n_tokens,
            dots,
        );
    }
}

/// Packs ternary values into the kernel layout: for each group of `group_cols` columns, every
/// row's slice of the group as I2_S x86 codes.
fn group_major_codes(ternary: &[i8], shape: Shape, group_cols: usize) -> Vec<u8> {
    let row_bytes = group_cols / 4;
    let mut codes = vec![0u8; shape.elements() / 4];
    for (g, out) in codes.chunks_exact_mut(shape.rows * row_bytes).enumerate() {
        for (r, row) in out.chunks_exact_mut(row_bytes).enumerate() {
            i2s::pack_codes(
                I2sVariant::X86,
                &ternary[r * shape.cols + g * group_cols..][..group_cols],
                row,
            );
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
// SAFETY: tasks write disjoint elements of one live `&mut [f32]` (see `gemm_i8`).
unsafe impl Sync for OutPtr {}
unsafe impl Send for OutPtr {}
