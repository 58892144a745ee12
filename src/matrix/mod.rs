//! A packed ternary matrix, validated once and multiplied many times, and the GEMM driver that
//! quantizes activations, splits the work over threads and applies the epilogue.
//!
//! Every format is re-laid-out at creation into what the context's kernels read, one weight
//! plan per matrix (`WeightPlan`), chosen by `choose_kernel`:
//!
//! * Levels with panel kernels (AVX-512 VNNI, `kernel::panel`): `panels::PanelWeights`, 64-row
//!   tiles. The decision rule for the weight encoding: formats stored in under 2 bits per
//!   weight (TQ1_0 at 1.69, TL2 at 1.67) keep a 1.6-bit copy (`Trits5`, 5 trits per byte)
//!   where the CPU can decode it (VBMI), so the matrix never grows and a GEMV streams fewer
//!   bytes than with 2-bit codes; everything else (I2_S, TQ2_0, TL1, Q2_0, Q1_0) gets 2-bit
//!   panels (`Codes2`), which decode with fewer instructions (and hold Q2_0's code 3). Formats
//!   with a scale per block use one panel group per block (TQ's 256), or per 32-column Q8_0
//!   block for Q2_0 / Q1_0 (merged per weight block in the per-token modes), so the kernel
//!   returns every block's exact integer dot in one call and the epilogue scales them
//!   vectorized.
//! * Other levels (`I2sDotsFn`): `rows::RowWeights`, I2_S codes row by row (I2_S matrices keep
//!   their own bytes; other formats are packed as 128-element x86 blocks, or 64-element ARM
//!   blocks for Q2_0's 64-column scale blocks, rows padded with zero weights). Formats with a
//!   scale per block are stored group by group so each group's integer dots can be scaled.
//!
//! A call quantizes its activations (`activations`), hands them to the plan, whose tasks run
//! on the context's threads (`parallel`) and turn the kernels' integer dots into outputs
//! (`epilogue`). Steady-state calls allocate nothing: quantized activations, kernel outputs and
//! accumulators live in the calling thread's scratch (`scratch`; the tasks' buffers too, one
//! set per thread slot), grown fallibly before a call writes anything and reused by later
//! calls. It is bounded by `SCRATCH_BOUND`: bigger calls run in chunks of tokens.

mod activations;
mod epilogue;
mod panels;
mod parallel;
mod rows;
mod scratch;

use std::ffi::CStr;
use std::ops::Range;

pub use activations::Activations;
#[doc(hidden)]
pub use scratch::SCRATCH_BOUND;

use activations::{FloatActs, QuantizedActs};
use panels::PanelWeights;
use parallel::SharedOutputs;
use rows::RowWeights;
use scratch::{CALL_SCRATCH, CallScratch, WorkScratch, with_scratch};

use crate::context::Context;
use crate::error::{Error, Result, try_to_vec, try_vec};
use crate::format::{Format, Layout, Shape, Values};
use crate::kernel::panel::PanelKind;
use crate::kernel::{I2sDotsFn, Kernel, Kernels, PanelDotsFn};
use crate::quant::activation::Arith;
use crate::quant::{Compat, QuantConfig, QuantStats, q8_0, q8k, quantize_packed};

/// A ternary matrix validated once and re-laid-out for one context's kernels (`WeightPlan`),
/// with its scales; `gemm` and `gemm_i8` multiply it by activations. Immutable: share it across
/// threads and call it from several at once. Use it with the [`Context`] it was made for.
///
/// ```
/// use tern::{Activations, Compat, Context, GemmOptions, GemmOutput, I2sVariant, Layout, Matrix,
///            QuantConfig, Shape};
///
/// let ctx = Context::new(0, 2)?; // best ISA level, two threads
/// let shape = Shape::new(128, 256)?;
/// let w: Vec<f32> = (0..shape.elements()).map(|i| ((i * 5 % 17) as f32 - 8.0) / 8.0).collect();
/// let layout = Layout::I2s(I2sVariant::X86);
/// let (m, _stats) = Matrix::from_f32(&ctx, layout, shape, &w, &QuantConfig::default())?;
/// assert_eq!(m.shape(), shape);
///
/// // One token whose values are already int8 (absmax 127: the quantization is exact).
/// let q: Vec<i8> = (0..shape.cols).map(|k| if k == 0 { 127 } else { (k % 11) as i8 - 5 }).collect();
/// let x: Vec<f32> = q.iter().map(|&v| v as f32).collect();
/// let bias = vec![1.0f32; shape.rows]; // indexed by row: one per matrix row
/// let opts = GemmOptions { compat: Compat::Default, rows: Some(32..64), bias: Some(&bias) };
///
/// let mut y = vec![0.0f32; shape.rows];
/// let out = GemmOutput { y: &mut y, n_tokens: 1, stride: shape.rows };
/// m.gemm(&ctx, &x, shape.cols, out, &opts)?;
///
/// // The same token quantized by the caller: scale = 127 / absmax, sum = Σq.
/// let sum: i32 = q.iter().map(|&v| v as i32).sum();
/// let acts = Activations { q: &q, stride: shape.cols, scales: &[1.0], sums: &[sum] };
/// let mut y8 = vec![0.0f32; shape.rows];
/// let out = GemmOutput { y: &mut y8, n_tokens: 1, stride: shape.rows };
/// m.gemm_i8(&ctx, &acts, out, &opts)?;
/// assert_eq!(y, y8);
/// assert!(y[..32].iter().all(|&v| v == 0.0)); // only rows 32..64 are written
/// # Ok::<(), tern::Error>(())
/// ```
pub struct Matrix {
    layout: Layout,
    shape: Shape,
    packed_bytes: usize,
    plan: WeightPlan,
    scales: Scales,
}

/// The weights in the layout of the context's kernels.
enum WeightPlan {
    Rows(RowWeights),
    Panels(PanelWeights),
}

impl WeightPlan {
    /// The row width the kernels read activations at (≥ cols; zero weights past cols).
    fn padded_cols(&self) -> usize {
        match self {
            Self::Rows(w) => w.padded_cols(),
            Self::Panels(w) => w.geom().cols(),
        }
    }
}

/// The weight scales as the GEMM applies them.
#[derive(Clone, Debug, PartialEq)]
enum Scales {
    /// One scale for the whole matrix (I2_S, TL1, TL2).
    Shared(f32),
    /// One scale per (row, column group): `[row · n_groups + group]` (TQ1_0, TQ2_0).
    PerGroup {
        scales: Vec<f32>,
        /// The scale when all of them are bit-identical (a TQ matrix quantized with one absmean
        /// scale, as BitNet models are).
        uniform: Option<f32>,
    },
}

impl Scales {
    fn per_group(scales: Vec<f32>) -> Self {
        let uniform = scales
            .iter()
            .all(|s| s.to_bits() == scales[0].to_bits())
            .then_some(scales[0]);
        Self::PerGroup { scales, uniform }
    }

    /// The scales as a call applies them. With per-token activations (not ggml's per-block
    /// Q8_K ones) a per-block matrix whose scales are all equal computes exactly like a
    /// one-scale matrix: `(dot − sum)·post_scale`, the dot summed over the blocks in int32
    /// (`TERN_COMPAT_DEFAULT`'s formula; the blocks' float sums would only add rounding).
    fn for_call(&self, q8k_blocks: bool) -> CallScales<'_> {
        match self {
            Self::Shared(s) => CallScales::One(*s),
            Self::PerGroup {
                uniform: Some(s), ..
            } if !q8k_blocks => CallScales::One(*s),
            Self::PerGroup { scales, .. } => CallScales::PerGroup(scales),
        }
    }
}

/// `Scales::for_call`.
#[derive(Clone, Copy)]
enum CallScales<'a> {
    One(f32),
    PerGroup(&'a [f32]),
}

/// Per-call GEMM settings (the validated `tern_gemm_options`).
#[derive(Clone, Debug)]
pub struct GemmOptions<'a> {
    /// Whose activation rounding and arithmetic to follow (must apply to the matrix's format).
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

/// Elements a strided buffer of `n` rows of `row_len` must hold, or an error on overflow.
pub(crate) fn strided_len(what: &str, n: usize, stride: usize, row_len: usize) -> Result<usize> {
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

/// Which kernel (and weight layout) a matrix of `format` uses with `kernels`.
enum KernelChoice {
    /// The panel kernel for the layout.
    Panels(PanelKind, Kernel<PanelDotsFn>),
    Rows(Kernel<I2sDotsFn>),
}

/// Panel kernels where the level has them — 1.6-bit panels for the formats stored in under 2
/// bits (TQ1_0, TL2) when the CPU can decode them, 1-bit panels for binary ones (Q1_0) where
/// the level has them, so the matrix never grows — else rows.
fn choose_kernel(kernels: &Kernels, format: Format) -> KernelChoice {
    let spec = format.spec();
    match kernels.panel() {
        Some(pk) => match (pk.bits16, pk.bits1) {
            (Some(k), _) if spec.compact_panels => KernelChoice::Panels(PanelKind::Trits5, k),
            (_, Some(k)) if spec.values == Values::Binary => {
                KernelChoice::Panels(PanelKind::Bits1, k)
            }
            _ => KernelChoice::Panels(PanelKind::Codes2, pk.bits2),
        },
        None => KernelChoice::Rows(kernels.i2s_dots),
    }
}

/// The name of the kernel a matrix of `format` runs with `kernels` (`tern_context_kernel_name`).
#[doc(hidden)]
pub fn kernel_name(kernels: &Kernels, format: Format) -> &'static CStr {
    match choose_kernel(kernels, format) {
        KernelChoice::Panels(_, k) => k.name,
        KernelChoice::Rows(k) => k.name,
    }
}

/// The output side of a call: `n_tokens` rows of outputs, token `t`'s at `y[t·stride..]`.
pub struct GemmOutput<'a> {
    /// The outputs: at least `(n_tokens − 1)·stride + rows` floats.
    pub y: &'a mut [f32],
    /// Tokens (activation rows) in the call.
    pub n_tokens: usize,
    /// Floats from one token's outputs to the next (≥ the matrix's rows).
    pub stride: usize,
}

/// Where a checked call (or chunk) writes: token `t`'s row `r` at `y[t·stride + r]` for the
/// rows in `rows`, plus `bias[r]`.
struct Outputs<'a> {
    y: &'a mut [f32],
    stride: usize,
    rows: Range<usize>,
    bias: Option<&'a [f32]>,
}

impl<'a> Outputs<'a> {
    /// The outputs shared by the tasks of a call.
    fn shared(self) -> SharedOutputs<'a> {
        SharedOutputs::new(self.y, self.stride, self.rows, self.bias)
    }
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
        // A per-block format keeps its per-block scales even with one block (ggml's modes
        // need them).
        let per_block = layout.format().spec().per_block_scales;
        let scales = if per_block {
            Scales::per_group(stored)
        } else {
            Scales::Shared(stored[0])
        };
        let plan = match choose_kernel(ctx.kernels, layout.format()) {
            KernelChoice::Panels(kind, kernel) => {
                let w = PanelWeights::build(ctx, layout, shape, packed, &scales, kind, kernel)?;
                WeightPlan::Panels(w)
            }
            KernelChoice::Rows(kernel) => {
                WeightPlan::Rows(RowWeights::build(layout, shape, packed, per_block, kernel)?)
            }
        };
        Ok(Self {
            layout,
            shape,
            packed_bytes,
            plan,
            scales,
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

    /// How the matrix was stored when it was made.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// Its shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }
    /// The size of its packed bytes in `layout` (what `from_packed` read).
    pub fn packed_bytes(&self) -> usize {
        self.packed_bytes
    }
    /// The shared scale, or the first per-block scale.
    pub fn first_scale(&self) -> f32 {
        match &self.scales {
            Scales::Shared(s) => *s,
            Scales::PerGroup { scales, .. } => scales[0],
        }
    }
    /// The name of the kernel its GEMMs run ("avx2_i2s", …), for reports.
    pub fn kernel_name(&self) -> &'static CStr {
        match &self.plan {
            WeightPlan::Rows(w) => w.kernel_name(),
            WeightPlan::Panels(w) => w.kernel_name(),
        }
    }

    /// The weight layout the kernels read, for reports: `"rows"`, `"2-bit panels"` or
    /// `"1.6-bit panels"`, and its size in bytes.
    #[doc(hidden)]
    pub fn kernel_layout(&self) -> (&'static str, usize) {
        match &self.plan {
            WeightPlan::Rows(w) => ("rows", w.codes().len()),
            WeightPlan::Panels(w) => (w.geom().kind.name(), w.tiles().len()),
        }
    }

    /// The bytes the kernels stream (benchmarks compare a GEMV with a plain read of them).
    #[doc(hidden)]
    pub fn kernel_bytes(&self) -> &[u8] {
        match &self.plan {
            WeightPlan::Rows(w) => w.codes(),
            WeightPlan::Panels(w) => w.tiles(),
        }
    }

    /// The weights as the GEMM applies them (for other backends, e.g. the CUDA upload):
    /// row-major `rows × cols` values (−1..=1, and +2 for Q2_0's code 3), the scales as `TERN_COMPAT_DEFAULT` applies them
    /// (one, or one per (row, group) at `[row · n_groups + g]`), and the group width in columns
    /// (meaningful with per-group scales). Both copies are allocated fallibly: the upload runs
    /// on a C call, where a refusal must be an error, not an abort.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn ternary_and_scales(&self) -> Result<(Vec<i8>, Vec<f32>, usize)> {
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        let mut ternary = try_vec(rows * cols, 0i8, "the ternary values")?;
        let group_cols = match &self.plan {
            WeightPlan::Rows(w) => w.unpack_ternary(self.layout, cols, &mut ternary),
            WeightPlan::Panels(w) => {
                w.unpack_ternary(rows, &mut ternary);
                match self.scales {
                    Scales::PerGroup { .. } => w.scale_cols(),
                    Scales::Shared(_) => w.geom().cols(),
                }
            }
        };
        // As the per-token arithmetic applies them (the other backends have no Q8_K mode).
        let scales = match self.scales.for_call(false) {
            CallScales::One(s) => vec![s],
            CallScales::PerGroup(v) => try_to_vec(v, "the scales")?,
        };
        Ok((ternary, scales, group_cols))
    }

    /// `y[t·out.stride + r] = Σ_k W[r][k]·x[t·x_stride + k]` for `out.n_tokens` tokens, BitNet
    /// style: activations are quantized with the arithmetic of `opts.compat` for this format.
    /// Every check and the scratch allocation come before anything is written to `y`; calls
    /// whose scratch would exceed `SCRATCH_BOUND` run in chunks of tokens.
    pub fn gemm(
        &self,
        ctx: &Context,
        x: &[f32],
        x_stride: usize,
        out: GemmOutput,
        opts: &GemmOptions,
    ) -> Result<()> {
        let GemmOutput {
            y,
            n_tokens,
            stride: y_stride,
        } = out;
        let cols = self.shape.cols;
        let need = strided_len("x", n_tokens, x_stride, cols)?;
        if x.len() < need {
            return Err(Error::too_small("x", x.len() * 4, need * 4));
        }
        let arith = opts.compat.arith(self.layout.format())?;
        if arith.block_acts() {
            self.check_call(n_tokens, y, y_stride, opts)?;
            if !matches!(self.scales, Scales::PerGroup { .. }) {
                return Err(Error::unsupported(
                    "TERN_COMPAT_GGML needs per-block weight scales (TQ1_0, TQ2_0, Q2_0, Q1_0)",
                ));
            }
        } else {
            self.check_i8_call(arith, n_tokens, y, y_stride, opts)?;
        }
        let chunk = self.chunk_tokens(ctx, arith, n_tokens, true);
        with_scratch(&CALL_SCRATCH, |sc| {
            sc.grow(&self.scratch_need(ctx, arith, chunk, true))?;
            for t0 in (0..n_tokens).step_by(chunk) {
                let x = FloatActs {
                    x: &x[t0 * x_stride..],
                    stride: x_stride,
                    cols,
                    n_tokens: chunk.min(n_tokens - t0),
                };
                let out = self.outputs(&mut y[t0 * y_stride..], y_stride, opts);
                self.gemm_chunk(ctx, arith, &x, out, sc);
            }
            sc.trim();
            Ok(())
        })
    }

    /// The outputs of a checked call in `y`.
    fn outputs<'a>(&self, y: &'a mut [f32], stride: usize, opts: &GemmOptions<'a>) -> Outputs<'a> {
        Outputs {
            y,
            stride,
            rows: self.row_range(opts),
            bias: opts.bias,
        }
    }

    /// One chunk of `gemm`, checked and with its scratch grown: quantizes `x` per Q8_K block
    /// (`Arith::Ggml`), per Q8_0 block (`Arith::GgmlQ8_0`) or per token, or leaves a one token
    /// to the panel tasks.
    fn gemm_chunk(
        &self,
        ctx: &Context,
        arith: Arith,
        x: &FloatActs,
        out: Outputs,
        sc: &mut CallScratch,
    ) {
        let width = self.plan.padded_cols();
        let CallScratch { quant, work } = sc;
        if arith == Arith::Ggml {
            let acts = x.quantize_q8k(ctx, width, quant);
            self.run(ctx, &acts, out, work)
        } else if arith == Arith::GgmlQ8_0 {
            let acts = x.quantize_q8_0(ctx, width, quant);
            self.run(ctx, &acts, out, work)
        } else if x.n_tokens == 1
            && let Some((panels, w_scale)) = self.token_in_tasks(ctx)
        {
            let token = &x.x[..x.cols];
            panels.run_token(ctx, arith, token, w_scale, out, &mut work.slots);
        } else {
            let acts = x.quantize_per_token(ctx, arith, width, quant);
            self.run(ctx, &acts, out, work)
        }
    }

    /// GEMM on activations the caller quantized per token (not `Compat::Ggml`, whose activations
    /// are per-block Q8_K). Checks and scratch as `gemm`.
    pub fn gemm_i8(
        &self,
        ctx: &Context,
        acts: &Activations,
        out: GemmOutput,
        opts: &GemmOptions,
    ) -> Result<()> {
        let GemmOutput {
            y,
            n_tokens,
            stride: y_stride,
        } = out;
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
        // Σq of `cols` int8 values lies in [-128·cols, 127·cols]; a sum outside it is corrupt
        // input, and the epilogue's `dot - sum` would overflow int32.
        let (lo, hi) = (-128 * cols as i64, 127 * cols as i64);
        if let Some(t) = acts.sums[..n_tokens]
            .iter()
            .position(|&s| !(lo..=hi).contains(&(s as i64)))
        {
            return Err(Error::invalid(format!(
                "sums[{t}] = {} is outside [{lo}, {hi}], the range of a sum of {cols} int8 values",
                acts.sums[t]
            )));
        }
        let arith = opts.compat.arith(self.layout.format())?;
        self.check_i8_call(arith, n_tokens, y, y_stride, opts)?;
        let chunk = self.chunk_tokens(ctx, arith, n_tokens, false);
        with_scratch(&CALL_SCRATCH, |sc| {
            sc.grow(&self.scratch_need(ctx, arith, chunk, false))?;
            for t0 in (0..n_tokens).step_by(chunk) {
                let acts = QuantizedActs {
                    arith,
                    acts: Activations {
                        q: &acts.q[t0 * acts.stride..],
                        stride: acts.stride,
                        scales: &acts.scales[t0..],
                        sums: &acts.sums[t0..],
                    },
                    n_tokens: chunk.min(n_tokens - t0),
                    cols,
                    zero_padded: false,
                    block_scales: None,
                };
                let out = self.outputs(&mut y[t0 * y_stride..], y_stride, opts);
                self.run(ctx, &acts, out, &mut sc.work);
            }
            sc.trim();
            Ok(())
        })
    }

    /// The checks of a call on per-token int8 activations (not `Arith::Ggml`'s Q8_K blocks).
    fn check_i8_call(
        &self,
        arith: Arith,
        n_tokens: usize,
        y: &[f32],
        y_stride: usize,
        opts: &GemmOptions,
    ) -> Result<()> {
        if arith.block_acts() {
            let (n, kind) = match arith {
                Arith::GgmlQ8_0 => (q8_0::BLOCK, "Q8_0"),
                _ => (q8k::BLOCK, "Q8_K"),
            };
            return Err(Error::unsupported(format!(
                "TERN_COMPAT_GGML quantizes activations per {n}-element block ({kind}); use tern_gemm, which quantizes them itself"
            )));
        }
        self.check_call(n_tokens, y, y_stride, opts)?;
        if let Scales::PerGroup { .. } = self.scales
            && arith != Arith::Default
        {
            return Err(Error::unsupported(format!(
                "{arith:?} arithmetic needs one scale per tensor; {} has one per block",
                self.layout.format().name()
            )));
        }
        Ok(())
    }

    /// The panel weights and the matrix's one scale when a one-token `gemm` has every task
    /// quantize the token itself (panel layouts with one scale per call, on several threads):
    /// no thread then waits for the caller's quantization or reads its buffer from another
    /// core. Quantizing one token's row again is cheaper for each thread than that wait and the
    /// cross-core read (a call the busy pool runs on its caller alone quantizes once per task).
    fn token_in_tasks(&self, ctx: &Context) -> Option<(&PanelWeights, f32)> {
        match (&self.plan, self.scales.for_call(false)) {
            (WeightPlan::Panels(w), CallScales::One(s)) if ctx.threads.count() > 1 => Some((w, s)),
            _ => None,
        }
    }

    /// Runs a checked call on the matrix's weight plan.
    fn run(&self, ctx: &Context, acts: &QuantizedActs, out: Outputs, sc: &mut WorkScratch) {
        let call_scales = self.scales.for_call(acts.block_scales.is_some());
        match &self.plan {
            WeightPlan::Panels(w) => w.run(ctx, acts, call_scales, out, sc),
            WeightPlan::Rows(w) => w.run(ctx, acts, call_scales, out, sc),
        }
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
}
