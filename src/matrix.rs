//! A packed ternary matrix, validated once and multiplied many times, and the GEMM driver that
//! quantizes activations, splits the work over threads and applies the epilogue.
//!
//! Every format is re-laid-out at creation into what the context's kernels read:
//!
//! * Levels with panel kernels (AVX-512 VNNI, `kernel::panel`): 64-row tiles, lanes = rows,
//!   each tile one sequential stream. The decision rule for the weight encoding: formats stored
//!   in under 2 bits per weight (TQ1_0 at 1.69, TL2 at 1.67) keep a 1.6-bit copy (`Trits5`,
//!   5 trits per byte) where the CPU can decode it (VBMI), so the matrix never grows and a GEMV
//!   streams fewer bytes than with 2-bit codes; everything else (I2_S, TQ2_0, TL1) gets 2-bit
//!   panels (`Codes2`), which decode with fewer instructions. Formats with a scale per 256-block
//!   (TQ) use one panel group per block, so the kernel returns every block's exact integer dot
//!   in one call and the epilogue scales them vectorized.
//! * Other levels (`I2sDotsFn`): I2_S codes row by row (I2_S matrices keep their own bytes;
//!   other formats are packed as 128-element x86 blocks, rows padded with zero weights to a
//!   multiple of 128). Formats with a scale per block are stored group by group (256 columns
//!   each) so each group's integer dots can be scaled.
//!
//! Steady-state calls allocate nothing: quantized activations, kernel outputs and accumulators
//! live in the calling thread's scratch (the tasks' buffers too, one set per thread slot), grown
//! fallibly before a call writes anything and reused by later calls. It is bounded by
//! `SCRATCH_BOUND`: bigger calls run in chunks of tokens.

use std::cell::RefCell;
use std::ffi::CStr;
use std::ops::Range;

use crate::context::Context;
use crate::error::{Error, Result, try_reserve, try_to_vec, try_vec};
use crate::format::{Format, I2sVariant, Layout, Shape, i2s};
use crate::kernel::panel::{self, MAX_DOT_STEPS, PanelGeom, PanelKind, TILE_ROWS};
use crate::kernel::{GroupScales, I2sDotsFn, Kernel, Kernels, PanelDotsFn, ScaleGroupsFn};
use crate::pages::PageBuf;
use crate::quant::activation::Arith;
use crate::quant::{Compat, QuantConfig, QuantStats, q8k, quantize_packed};

/// Output rows computed per task of the row layout: big enough to amortize a task, small enough
/// to balance.
const ROW_CHUNK: usize = 64;

/// Columns of one x86 I2_S block: the row layout pads rows to a multiple of it.
const KERNEL_BLOCK: usize = 128;

/// Tokens per panel-kernel call (a multiple of the prefill micro-kernel's 12 would do; one
/// block of 12 keeps the activations of a call in L1).
const TOKEN_BLOCK: usize = 12;

/// Most dots (int32) one decode kernel call writes for its run of tiles (16 KiB: they stay in
/// L1 for the epilogue).
const RUN_DOTS: usize = 4096;

pub struct Matrix {
    layout: Layout,
    shape: Shape,
    packed_bytes: usize,
    store: Store,
    scales: Scales,
}

/// The weights in the layout of the context's kernels.
enum Store {
    /// Row layout for `I2sDotsFn`.
    Rows {
        /// For each group of `group_cols` columns, `rows` rows of `group_cols/4` code bytes.
        /// One group of all (padded) columns when the matrix has one scale.
        codes: Vec<u8>,
        /// The block layout of `codes`.
        variant: I2sVariant,
        /// Row length in `codes` (≥ cols; the padding holds zero weights).
        padded_cols: usize,
        group_cols: usize,
        kernel: Kernel<I2sDotsFn>,
    },
    /// Panel layout for `PanelDotsFn`: `n_tiles` tiles of `geom.tile_bytes()` bytes.
    Panels {
        tiles: PageBuf,
        geom: PanelGeom,
        n_tiles: usize,
        /// Per-group scales tile by tile, `[tile · scales_stride + g·64 + r % 64]` (empty with
        /// one scale): one sequential stream beside the tiles' when a GEMV streams from DRAM.
        scales_t: Vec<f32>,
        /// `n_groups · 64`, or 0 when every scale is the same: then all tiles share one tile's
        /// worth, which stays in L1 (read only by `TERN_COMPAT_GGML`: the per-token modes
        /// compute such a matrix as one-scale).
        scales_stride: usize,
        kernel: Kernel<PanelDotsFn>,
        /// Applies `scales_t` to the dots of one tile and token (per-group scales only).
        scale_groups: ScaleGroupsFn,
    },
}

impl Store {
    fn padded_cols(&self) -> usize {
        match self {
            Self::Rows { padded_cols, .. } => *padded_cols,
            Self::Panels { geom, .. } => geom.cols(),
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

/// The activations `run_panel_tasks` hands its tasks.
#[derive(Clone, Copy)]
enum Prepared<'a> {
    /// Quantized (and interleaved) by the caller, with the per-group sums or the per-token
    /// output factors of the call's scales.
    Caller {
        call_scales: CallScales<'a>,
        acts: &'a Activations<'a>,
        ibuf: &'a [i8],
        gsums: &'a [i32],
        post: &'a [f32],
    },
    /// One token each task quantizes into its own scratch; `w_scale` is the matrix's one scale
    /// (`CallScales::One`).
    Token { x: &'a [f32], w_scale: f32 },
}

impl Prepared<'_> {
    fn call_scales(&self) -> CallScales<'_> {
        match *self {
            Self::Caller { call_scales, .. } => call_scales,
            Self::Token { w_scale, .. } => CallScales::One(w_scale),
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

/// Which kernel (and weight layout) a matrix of `format` uses with `kernels`.
enum KernelChoice {
    /// The panel kernel for the layout and the scale kernel of its level.
    Panels(PanelKind, Kernel<PanelDotsFn>, ScaleGroupsFn),
    Rows(Kernel<I2sDotsFn>),
}

/// Panel kernels where the level has them — 1.6-bit panels for the formats stored in under 2
/// bits (TQ1_0, TL2) when the CPU can decode them, so the matrix never grows — else rows.
fn choose_kernel(kernels: &Kernels, format: Format) -> KernelChoice {
    match kernels.panel() {
        Some(pk) => match pk.bits16 {
            Some(k) if matches!(format, Format::Tq1_0 | Format::Tl2) => {
                KernelChoice::Panels(PanelKind::Trits5, k, pk.scale_groups)
            }
            _ => KernelChoice::Panels(PanelKind::Codes2, pk.bits2, pk.scale_groups),
        },
        None => KernelChoice::Rows(kernels.i2s_dots),
    }
}

/// The name of the kernel a matrix of `format` runs with `kernels` (`tern_context_kernel_name`).
pub fn kernel_name(kernels: &Kernels, format: Format) -> &'static CStr {
    match choose_kernel(kernels, format) {
        KernelChoice::Panels(_, k, _) => k.name,
        KernelChoice::Rows(k) => k.name,
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
        let per_block = layout.elements_per_scale(shape) != shape.elements();
        let scales = if per_block {
            Scales::per_group(stored)
        } else {
            Scales::Shared(stored[0])
        };
        let store = match choose_kernel(ctx.kernels, layout.format()) {
            KernelChoice::Panels(kind, kernel, scale_groups) => Self::panels(
                ctx,
                layout,
                shape,
                packed,
                &scales,
                kind,
                (kernel, scale_groups),
            )?,
            KernelChoice::Rows(kernel) => Self::rows(layout, shape, packed, per_block, kernel)?,
        };
        Ok(Self {
            layout,
            shape,
            packed_bytes,
            store,
            scales,
        })
    }

    /// The row layout (see the module doc).
    fn rows(
        layout: Layout,
        shape: Shape,
        packed: &[u8],
        per_block: bool,
        kernel: Kernel<I2sDotsFn>,
    ) -> Result<Store> {
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
            Layout::I2s(v) => (
                try_to_vec(&packed[..i2s::code_bytes(shape)], "the matrix's codes")?,
                v,
            ),
            _ => {
                let mut ternary = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
                layout.unpack(shape, packed, &mut ternary)?;
                (
                    group_major_codes(&ternary, shape, padded_cols, group_cols)?,
                    I2sVariant::X86,
                )
            }
        };
        Ok(Store::Rows {
            codes,
            variant,
            padded_cols,
            group_cols,
            kernel,
        })
    }

    /// The panel layout (see the module doc), tiles packed in parallel.
    fn panels(
        ctx: &Context,
        layout: Layout,
        shape: Shape,
        packed: &[u8],
        scales: &Scales,
        kind: PanelKind,
        (kernel, scale_groups): (Kernel<PanelDotsFn>, ScaleGroupsFn),
    ) -> Result<Store> {
        let (rows, cols) = (shape.rows, shape.cols);
        let geom = match scales {
            Scales::PerGroup { .. } => {
                let per = layout.elements_per_scale(shape);
                debug_assert!(per.is_multiple_of(16) && cols.is_multiple_of(per));
                PanelGeom {
                    kind,
                    group_steps: per / 4,
                    n_groups: cols / per,
                    merge: 1,
                }
            }
            Scales::Shared(_) => {
                let steps = cols.next_multiple_of(16) / 4;
                let n_groups = steps.div_ceil(MAX_DOT_STEPS);
                PanelGeom {
                    kind,
                    group_steps: steps.div_ceil(n_groups).next_multiple_of(4),
                    n_groups,
                    merge: 1,
                }
            }
        };
        let n_tiles = rows.div_ceil(TILE_ROWS);
        let tile_bytes = geom.tile_bytes();
        let mut tiles = PageBuf::zeroed(n_tiles * tile_bytes, "the matrix's weight tiles")?;
        // Ternary values row-major; I2_S is decoded on the fly from its own bytes.
        let ternary = match layout {
            Layout::I2s(_) => None,
            _ => {
                let mut t = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
                layout.unpack(shape, packed, &mut t)?;
                Some(t)
            }
        };
        let at = |r: usize, k: usize| -> i8 {
            if r >= rows || k >= cols {
                return 0;
            }
            match (&ternary, layout) {
                (Some(t), _) => t[r * cols + k],
                (None, Layout::I2s(v)) => i2s::code_at(v, packed, r * cols + k) as i8 - 1,
                (None, _) => unreachable!("only I2_S is decoded in place"),
            }
        };
        let out = SharedMut(tiles.as_mut_ptr());
        ctx.threads.for_each(n_tiles, |i| {
            // SAFETY: tile i's bytes are written by this task only, inside `tiles`.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.at(i * tile_bytes), tile_bytes) };
            panel::pack_tile(&geom, |r, k| at(i * TILE_ROWS + r, k), dst);
        });
        let ng = geom.n_groups;
        let (scales_t, scales_stride) = match scales {
            Scales::Shared(_) => (Vec::new(), 0),
            Scales::PerGroup {
                uniform: Some(s), ..
            } => (try_vec(ng * TILE_ROWS, *s, "the tile scales")?, 0),
            Scales::PerGroup {
                scales: v,
                uniform: None,
            } => {
                let mut t = try_vec(n_tiles * ng * TILE_ROWS, 0f32, "the tile scales")?;
                for r in 0..rows {
                    for g in 0..ng {
                        t[((r / TILE_ROWS) * ng + g) * TILE_ROWS + r % TILE_ROWS] = v[r * ng + g];
                    }
                }
                (t, ng * TILE_ROWS)
            }
        };
        Ok(Store::Panels {
            tiles,
            geom,
            n_tiles,
            scales_t,
            scales_stride,
            kernel,
            scale_groups,
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
            Scales::PerGroup { scales, .. } => scales[0],
        }
    }
    pub fn kernel_name(&self) -> &'static CStr {
        match &self.store {
            Store::Rows { kernel, .. } => kernel.name,
            Store::Panels { kernel, .. } => kernel.name,
        }
    }

    /// The weight layout the kernels read, for reports: `"rows"`, `"2-bit panels"` or
    /// `"1.6-bit panels"`, and its size in bytes.
    pub fn kernel_layout(&self) -> (&'static str, usize) {
        match &self.store {
            Store::Rows { codes, .. } => ("rows", codes.len()),
            Store::Panels { tiles, geom, .. } => (geom.kind.name(), tiles.len()),
        }
    }

    /// The bytes the kernels stream (benchmarks compare a GEMV with a plain read of them).
    pub fn kernel_bytes(&self) -> &[u8] {
        match &self.store {
            Store::Rows { codes, .. } => codes,
            Store::Panels { tiles, .. } => tiles,
        }
    }

    /// The weights as the GEMM applies them (for other backends, e.g. the CUDA upload):
    /// row-major `rows × cols` ternary values, the scales as `TERN_COMPAT_DEFAULT` applies them
    /// (one, or one per (row, group) at `[row · n_groups + g]`), and the group width in columns
    /// (meaningful with per-group scales). Both copies are allocated fallibly: the upload runs
    /// on a C call, where a refusal must be an error, not an abort.
    #[cfg_attr(not(feature = "cuda"), allow(dead_code))]
    pub(crate) fn ternary_and_scales(&self) -> Result<(Vec<i8>, Vec<f32>, usize)> {
        let (rows, cols) = (self.shape.rows, self.shape.cols);
        let mut ternary = try_vec(rows * cols, 0i8, "the ternary values")?;
        let group_cols = match &self.store {
            Store::Rows {
                codes,
                padded_cols,
                group_cols,
                ..
            } => {
                match self.layout {
                    Layout::I2s(v) => i2s::unpack(v, codes, &mut ternary),
                    _ => {
                        let (g_cols, row_bytes) = (*group_cols, group_cols / 4);
                        for g in 0..padded_cols / g_cols {
                            for r in 0..rows {
                                let codes = &codes[(g * rows + r) * row_bytes..][..row_bytes];
                                for j in 0..g_cols.min(cols.saturating_sub(g * g_cols)) {
                                    ternary[r * cols + g * g_cols + j] =
                                        i2s::code_at(I2sVariant::X86, codes, j) as i8 - 1;
                                }
                            }
                        }
                    }
                }
                *group_cols
            }
            Store::Panels { tiles, geom, .. } => {
                let tile_bytes = geom.tile_bytes();
                for r in 0..rows {
                    let tile = &tiles[r / TILE_ROWS * tile_bytes..][..tile_bytes];
                    for k in 0..cols {
                        ternary[r * cols + k] =
                            panel::code_at(geom, tile, r % TILE_ROWS, k) as i8 - 1;
                    }
                }
                match self.scales {
                    Scales::PerGroup { .. } => 4 * geom.group_steps,
                    Scales::Shared(_) => geom.cols(),
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

    /// `y[t·y_stride + r] = Σ_k W[r][k]·x[t·x_stride + k]` for `n_tokens` tokens, BitNet style:
    /// activations are quantized with the arithmetic of `opts.compat` for this format. Every
    /// check and the scratch allocation come before anything is written to `y`; calls whose
    /// scratch would exceed `SCRATCH_BOUND` run in chunks of tokens.
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
        if arith == Arith::Ggml {
            self.check_call(n_tokens, y, y_stride, opts)?;
            if !matches!(self.scales, Scales::PerGroup { .. }) {
                return Err(Error::unsupported(
                    "TERN_COMPAT_GGML needs per-block weight scales (TQ1_0, TQ2_0)",
                ));
            }
        } else {
            self.check_i8_call(arith, n_tokens, y, y_stride, opts)?;
        }
        let chunk = self.chunk_tokens(ctx, arith, n_tokens, true);
        with_scratch(&CALL_SCRATCH, |sc| {
            sc.grow(&self.scratch_need(ctx, arith, chunk, true))?;
            for t0 in (0..n_tokens).step_by(chunk) {
                let n = chunk.min(n_tokens - t0);
                let (x, y) = (&x[t0 * x_stride..], &mut y[t0 * y_stride..]);
                self.gemm_chunk(ctx, arith, x, n, x_stride, y, y_stride, opts, sc);
            }
            sc.trim();
            Ok(())
        })
    }

    /// One chunk of `gemm`, checked and with its scratch grown.
    #[allow(clippy::too_many_arguments)]
    fn gemm_chunk(
        &self,
        ctx: &Context,
        arith: Arith,
        x: &[f32],
        n_tokens: usize,
        x_stride: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        sc: &mut CallScratch,
    ) {
        let cols = self.shape.cols;
        let stride = self.store.padded_cols();
        let CallScratch {
            q,
            scales,
            sums,
            block_scales,
            work,
        } = sc;
        let q = take(q, n_tokens * stride);
        if arith == Arith::Ggml {
            let n_blocks = cols / q8k::BLOCK;
            let block_scales = take(block_scales, n_tokens * n_blocks);
            let (qs, bs) = (
                TokenRows::new(q, stride),
                TokenRows::new(block_scales, n_blocks),
            );
            for_ranges(ctx, n_tokens, |r| {
                // SAFETY: the ranges are disjoint, so are the rows borrowed.
                let (q, bs) = unsafe { (qs.rows(r.clone()), bs.rows(r.clone())) };
                let x = &x[r.start * x_stride..];
                q8k::quantize_rows(x, x_stride, cols, r.len(), q, stride, bs);
                zero_pad(q, stride, cols, r.len());
            });
            let acts = Activations {
                q,
                stride,
                scales: &[],
                sums: &[],
            };
            let block_scales = &*block_scales;
            self.run(
                ctx,
                arith,
                &acts,
                q.as_ptr(),
                Some(block_scales),
                n_tokens,
                y,
                y_stride,
                opts,
                work,
            )
        } else if n_tokens == 1
            && let Some(w_scale) = self.token_in_tasks(ctx)
        {
            let token = Prepared::Token {
                x: &x[..cols],
                w_scale,
            };
            let slots = &mut work.slots;
            self.run_panel_tasks(ctx, arith, token, None, 1, y, y_stride, opts, slots);
        } else {
            let (scales, sums) = (take(scales, n_tokens), take(sums, n_tokens));
            let (qs, ss, ms) = (
                TokenRows::new(q, stride),
                TokenRows::new(scales, 1),
                TokenRows::new(sums, 1),
            );
            for_ranges(ctx, n_tokens, |r| {
                // SAFETY: the ranges are disjoint, so are the rows borrowed.
                let (q, s, m) =
                    unsafe { (qs.rows(r.clone()), ss.rows(r.clone()), ms.rows(r.clone())) };
                let x = &x[r.start * x_stride..];
                arith.quantize_batch(x, x_stride, cols, r.len(), q, stride, s, Some(m));
                zero_pad(q, stride, cols, r.len());
            });
            let acts = Activations {
                q,
                stride,
                scales,
                sums,
            };
            self.run(
                ctx,
                arith,
                &acts,
                q.as_ptr(),
                None,
                n_tokens,
                y,
                y_stride,
                opts,
                work,
            )
        }
    }

    /// GEMM on activations the caller quantized per token (not `Compat::Ggml`, whose activations
    /// are per-block Q8_K). Checks and scratch as `gemm`.
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
                let n = chunk.min(n_tokens - t0);
                let acts = Activations {
                    q: &acts.q[t0 * acts.stride..],
                    stride: acts.stride,
                    scales: &acts.scales[t0..],
                    sums: &acts.sums[t0..],
                };
                let y = &mut y[t0 * y_stride..];
                let own = std::ptr::null();
                self.run(
                    ctx,
                    arith,
                    &acts,
                    own,
                    None,
                    n,
                    y,
                    y_stride,
                    opts,
                    &mut sc.work,
                );
            }
            sc.trim();
            Ok(())
        })
    }

    /// The scratch a call (or chunk) of `n_tokens` needs, `quantize`: whether the call
    /// quantizes the activations itself (`gemm`) or gets them quantized (`gemm_i8`). Mirrors
    /// what `gemm_chunk`, `run` and the task bodies take.
    fn scratch_need(&self, ctx: &Context, arith: Arith, n_tokens: usize, quantize: bool) -> Need {
        let n = n_tokens;
        let cols = self.shape.cols;
        let ggml = arith == Arith::Ggml;
        let mut need = Need {
            slots: ctx.threads.count(),
            ..Need::default()
        };
        if quantize {
            need.q = n * self.store.padded_cols();
            if ggml {
                need.block_scales = n * (cols / q8k::BLOCK);
            } else {
                (need.scales, need.sums) = (n, n);
            }
        }
        let call_scales = self.scales.for_call(ggml);
        match &self.store {
            Store::Panels { geom, .. } => {
                let pc = geom.cols();
                if quantize && n == 1 && !ggml && self.token_in_tasks(ctx).is_some() {
                    need.token = pc;
                } else {
                    need.acts = n * pc;
                    match call_scales {
                        CallScales::PerGroup(_) => need.gsums = n * geom.n_groups,
                        CallScales::One(_) => need.post = n,
                    }
                }
                let (_, run_len, tile_dots) = self.panel_runs(call_scales, n);
                need.dots = run_len * tile_dots;
                need.acc = TOKEN_BLOCK * TILE_ROWS;
            }
            Store::Rows { padded_cols, .. } => {
                if !quantize && *padded_cols != cols {
                    need.acts = n * padded_cols;
                }
                match call_scales {
                    CallScales::One(_) => {
                        need.post = n;
                        need.dots = 2 * ROW_CHUNK * n;
                    }
                    CallScales::PerGroup(_) => {
                        let (_, n_groups) = self.row_groups();
                        need.gsums = n * n_groups;
                        need.dots = ROW_CHUNK * n;
                        need.acc = ROW_CHUNK * n;
                    }
                }
            }
        }
        need
    }

    /// Tokens per chunk of a call of `n_tokens`: all of them when their scratch fits
    /// `SCRATCH_BOUND`, else as many whole token blocks as fit (at least one block).
    fn chunk_tokens(&self, ctx: &Context, arith: Arith, n_tokens: usize, quantize: bool) -> usize {
        let bytes = |n| self.scratch_need(ctx, arith, n, quantize).bytes();
        if n_tokens <= TOKEN_BLOCK || bytes(n_tokens) <= SCRATCH_BOUND {
            return n_tokens;
        }
        // Past two blocks the need grows linearly with the tokens.
        let (two, three) = (bytes(2 * TOKEN_BLOCK), bytes(3 * TOKEN_BLOCK));
        let per_block = (three - two).max(1);
        let base = two.saturating_sub(2 * per_block);
        let blocks = SCRATCH_BOUND.saturating_sub(base) / per_block;
        (blocks.max(1) * TOKEN_BLOCK).min(n_tokens)
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
        if arith == Arith::Ggml {
            return Err(Error::unsupported(
                "TERN_COMPAT_GGML quantizes activations per 256-element block (Q8_K); use tern_gemm, which quantizes them itself",
            ));
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

    /// The matrix's one scale when a one-token `gemm` has every task quantize the token itself
    /// (panel layouts with one scale per call, on several threads): no thread then waits for
    /// the caller's quantization or reads its buffer from another core. Quantizing one token's
    /// row again is cheaper for each thread than that wait and the cross-core read (a call the
    /// busy pool runs on its caller alone quantizes once per task).
    fn token_in_tasks(&self, ctx: &Context) -> Option<f32> {
        match (&self.store, self.scales.for_call(false)) {
            (Store::Panels { .. }, CallScales::One(w)) if ctx.threads.count() > 1 => Some(w),
            _ => None,
        }
    }

    /// Runs the checked call on the matrix's layout. `acts.q` rows hold at least `cols` values
    /// (the row layout reads `padded_cols`: rows are copied with zero padding unless `acts.q`
    /// is `own_q`, `gemm`'s own zero-padded buffer);
    /// `block_scales` are the Q8_K scales of `Arith::Ggml`.
    #[allow(clippy::too_many_arguments)]
    fn run(
        &self,
        ctx: &Context,
        arith: Arith,
        acts: &Activations,
        own_q: *const i8,
        block_scales: Option<&[f32]>,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        sc: &mut WorkScratch,
    ) {
        let cols = self.shape.cols;
        let padded_cols = self.store.padded_cols();
        // `gemm`'s own buffer: rows of `padded_cols`, zero-padded.
        let own = acts.stride == padded_cols && std::ptr::eq(acts.q.as_ptr(), own_q);
        if let Store::Panels { .. } = self.store {
            self.run_panels(
                ctx,
                arith,
                acts,
                own,
                block_scales,
                n_tokens,
                y,
                y_stride,
                opts,
                sc,
            );
            return;
        }
        // The row kernels read `padded_cols` activations per token; pad a copy if needed.
        let WorkScratch {
            acts: buf,
            epi,
            slots,
        } = sc;
        let padded;
        let acts = if padded_cols == cols || own {
            // Rows long enough: the caller's, or `gemm`'s own zero-padded buffer.
            Activations { ..*acts }
        } else {
            let q = take(buf, n_tokens * padded_cols);
            for t in 0..n_tokens {
                q[t * padded_cols..][..cols].copy_from_slice(&acts.q[t * acts.stride..][..cols]);
            }
            zero_pad(q, padded_cols, cols, n_tokens);
            padded = &*q;
            Activations {
                q: padded,
                stride: padded_cols,
                ..*acts
            }
        };
        match self.scales.for_call(block_scales.is_some()) {
            CallScales::One(w_scale) => self.run_shared(
                ctx, arith, w_scale, &acts, n_tokens, y, y_stride, opts, epi, slots,
            ),
            CallScales::PerGroup(w_scales) => self.run_per_group(
                ctx,
                w_scales,
                &acts,
                block_scales,
                n_tokens,
                y,
                y_stride,
                opts,
                epi,
                slots,
            ),
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

    /// The panel path on activations the caller quantized: interleaved per block of
    /// `TOKEN_BLOCK` tokens, with their per-group sums or per-token output factors, then
    /// `run_panel_tasks`.
    #[allow(clippy::too_many_arguments)]
    fn run_panels(
        &self,
        ctx: &Context,
        arith: Arith,
        acts: &Activations,
        acts_padded: bool,
        block_scales: Option<&[f32]>,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        sc: &mut WorkScratch,
    ) {
        let Store::Panels { geom, .. } = &self.store else {
            unreachable!("run_panels on the row layout");
        };
        let cols = self.shape.cols;
        let pc = geom.cols();
        let ng = geom.n_groups;
        let n_blocks = n_tokens.div_ceil(TOKEN_BLOCK);
        let WorkScratch {
            acts: ibuf,
            epi: Epi { gsums, post },
            slots,
        } = sc;
        let call_scales = self.scales.for_call(block_scales.is_some());
        let ibuf: &[i8] = if n_tokens == 1 && acts_padded {
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
        let gk = 4 * geom.group_steps;
        let (gsums, post): (&[i32], &[f32]) = match call_scales {
            CallScales::PerGroup(_) => {
                let g = take(gsums, n_tokens * ng);
                for t in 0..n_tokens {
                    let row = &acts.q[t * acts.stride..][..cols];
                    for (gi, out) in g[t * ng..][..ng].iter_mut().enumerate() {
                        *out = sum_i8(&row[gi * gk..((gi + 1) * gk).min(cols)]);
                    }
                }
                (g, &[])
            }
            CallScales::One(w) => {
                let p = take(post, n_tokens);
                for (p, &s) in p.iter_mut().zip(&acts.scales[..n_tokens]) {
                    *p = arith.post_scale(w, s);
                }
                (&[], p)
            }
        };
        let prepared = Prepared::Caller {
            call_scales,
            acts,
            ibuf,
            gsums,
            post,
        };
        self.run_panel_tasks(
            ctx,
            arith,
            prepared,
            block_scales,
            n_tokens,
            y,
            y_stride,
            opts,
            slots,
        );
    }

    /// How the panel tasks of a call of `n_tokens` call the kernel: the geometry it computes
    /// dots in, the tiles per call, and the dots one tile gives for one token block.
    fn panel_runs(&self, call_scales: CallScales, n_tokens: usize) -> (PanelGeom, usize, usize) {
        let Store::Panels { geom, .. } = &self.store else {
            unreachable!("panel_runs on the row layout");
        };
        // One scale: the kernel sums a per-block matrix's blocks into one dot per row (as few as
        // the int32 bound allows), instead of a dot per 256-column block.
        let kgeom = match call_scales {
            CallScales::One(_) => summed_groups(*geom),
            CallScales::PerGroup(_) => *geom,
        };
        // Decode (one token block): one kernel call streams a run of the task's tiles, so the
        // weight stream is not broken by a return and an epilogue per tile (each break stalls
        // the DRAM stream and the prefetcher); runs are capped so their dots stay in L1.
        // Prefill: one tile per call.
        let tile_dots = TOKEN_BLOCK.min(n_tokens) * kgeom.n_dots() * TILE_ROWS;
        let run_len = if n_tokens <= TOKEN_BLOCK {
            (RUN_DOTS / tile_dots).max(1)
        } else {
            1
        };
        (kgeom, run_len, tile_dots)
    }

    /// Tasks of whole tiles on activations `prepared` (each task streams its own contiguous
    /// weights; decode and prefill alike split rows, and token blocks too when there are fewer
    /// tiles than twice the threads), each tile × token block one kernel call whose integer dots
    /// the epilogue turns into outputs.
    #[allow(clippy::too_many_arguments)]
    fn run_panel_tasks(
        &self,
        ctx: &Context,
        arith: Arith,
        prepared: Prepared,
        block_scales: Option<&[f32]>,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        slots: &mut [TaskScratch],
    ) {
        let Store::Panels {
            tiles,
            geom,
            n_tiles,
            scales_t,
            scales_stride,
            kernel,
            scale_groups,
        } = &self.store
        else {
            unreachable!("run_panel_tasks on the row layout");
        };
        let (cols, pc, ng) = (self.shape.cols, geom.cols(), geom.n_groups);
        let n_blocks = n_tokens.div_ceil(TOKEN_BLOCK);
        let call_scales = prepared.call_scales();
        let (kgeom, run_len, tile_dots) = self.panel_runs(call_scales, n_tokens);
        let (kgeom, kng) = (&kgeom, kgeom.n_dots());

        let range = self.row_range(opts);
        let (tile_lo, tile_hi) = (range.start / TILE_ROWS, range.end.div_ceil(TILE_ROWS));
        debug_assert!(tile_hi <= *n_tiles);
        let n_t = tile_hi - tile_lo;
        let threads = ctx.threads.count();
        // Decode: one run of consecutive tiles per thread, each one sequential stream from DRAM
        // (several runs per thread claimed in turn would restart the stream at each claim, which
        // costs more than the load balance gains). Prefill: one tile per task (≥ 2 per
        // thread), claimed in order, so the threads end together even when the tiles do not
        // divide evenly; with fewer tiles, token blocks are split too.
        let (tile_parts, block_parts) = if threads == 1 {
            (1, 1)
        } else if n_blocks == 1 {
            (n_t.min(threads), 1)
        } else if n_t >= 2 * threads {
            (n_t, 1)
        } else {
            (n_t, n_blocks.min(threads))
        };
        let tile_bytes = geom.tile_bytes();
        let slots = Slots::new(slots);
        let out = SharedMut(y.as_mut_ptr());
        // Token t's outputs in rows `rows`. SAFETY (for every caller below): `check_call`
        // verified that y holds token t's rows in `range`; a task writes only rows of its own
        // tiles for tokens of its own blocks.
        let y_rows = |t: usize, rows: &Range<usize>| unsafe {
            std::slice::from_raw_parts_mut(out.at(t * y_stride + rows.start), rows.len())
        };
        let task = |slot: usize, i: usize| {
            let (tp, bp) = (i / block_parts, i % block_parts);
            let tiles_r = split(tile_lo..tile_hi, tile_parts, tp);
            let blocks_r = split(0..n_blocks, block_parts, bp);
            // SAFETY: tasks running at the same time have different slots.
            let TaskScratch { dots, acc, token } = unsafe { slots.get(slot) };
            let (token_scale, token_sum, token_post);
            let own;
            let (acts, ibuf, gsums, post): (&Activations, &[i8], &[i32], &[f32]) = match prepared {
                Prepared::Caller {
                    acts,
                    ibuf,
                    gsums,
                    post,
                    ..
                } => (acts, ibuf, gsums, post),
                Prepared::Token { x, w_scale } => {
                    // This task's own copy of the quantized token (zero-padded).
                    let q = take(token, pc);
                    let (s, sum) = arith.quantize_token(x, &mut q[..cols]);
                    zero_pad(q, pc, cols, 1);
                    (token_scale, token_sum) = ([s], [sum]);
                    token_post = [arith.post_scale(w_scale, s)];
                    own = Activations {
                        q,
                        stride: pc,
                        scales: &token_scale,
                        sums: &token_sum,
                    };
                    (&own, own.q, &[], &token_post)
                }
            };
            // One-scale outputs of token t in rows `rows` from their dots.
            let epilogue_one = |t: usize, dots: &[i32], rows: &Range<usize>| {
                let bias = opts.bias.map(|b| &b[rows.clone()]);
                let (sum, s) = (acts.sums[t], acts.scales[t]);
                epilogue_shared(arith, dots, sum, s, post[t], bias, y_rows(t, rows));
            };
            let dots = take(dots, run_len * tile_dots);
            let acc = take(acc, TOKEN_BLOCK * TILE_ROWS);
            for run_start in tiles_r.clone().step_by(run_len) {
                let run = run_start..(run_start + run_len).min(tiles_r.end);
                let w = &tiles[run.start * tile_bytes..run.end * tile_bytes];
                // Per-group scales (empty with one scale), read after the dots: loading
                // while the kernel runs, unless all tiles share one (then they are in L1).
                let tile_scales = |tile: usize| {
                    let at = tile * scales_stride;
                    scales_t.get(at..at + ng * TILE_ROWS).unwrap_or_default()
                };
                if *scales_stride > 0 {
                    run.clone()
                        .for_each(|tile| crate::kernel::prefetch(tile_scales(tile)));
                }
                for b in blocks_r.clone() {
                    let t0 = b * TOKEN_BLOCK;
                    let nb = TOKEN_BLOCK.min(n_tokens - t0);
                    let acts_b = &ibuf[t0 * pc..][..nb * pc];
                    (kernel.run)(kgeom, w, run.len(), acts_b, nb, dots);
                    if matches!(call_scales, CallScales::One(_)) && (nb, kng) == (1, 1) {
                        // One token, one dot per row: the run's dots are its rows in
                        // order, so one epilogue covers the whole run (per tile, its setup
                        // and copy would be repeated for every 64 rows).
                        let r0 = run.start * TILE_ROWS;
                        let rows = range.start.max(r0)..range.end.min(run.end * TILE_ROWS);
                        epilogue_one(t0, &dots[rows.start - r0..rows.end - r0], &rows);
                        continue;
                    }
                    for (ri, tile) in run.clone().enumerate() {
                        let dots = &dots[ri * nb * kng * TILE_ROWS..][..nb * kng * TILE_ROWS];
                        if let CallScales::PerGroup(_) = call_scales {
                            let job = GroupScales {
                                n_groups: ng,
                                n_tokens: nb,
                                dots,
                                gsums: &gsums[t0 * ng..][..nb * ng],
                                scales: tile_scales(tile),
                                block_scales: block_scales.map(|bs| &bs[t0 * ng..][..nb * ng]),
                            };
                            scale_groups(&job, acc);
                        }
                        let r0 = tile * TILE_ROWS;
                        let rows = range.start.max(r0)..range.end.min(r0 + TILE_ROWS);
                        let lanes = rows.start - r0..rows.end - r0;
                        for tl in 0..nb {
                            let t = t0 + tl;
                            let d = &dots[tl * kng * TILE_ROWS..][..kng * TILE_ROWS];
                            match call_scales {
                                CallScales::One(_) => {
                                    epilogue_one(t, &acc_i32(d, kng, lanes.clone()), &rows)
                                }
                                CallScales::PerGroup(_) => {
                                    let ggml = block_scales.is_some();
                                    let s = if ggml { 1.0 } else { acts.scales[t] };
                                    epilogue_groups(
                                        ggml,
                                        &acc[tl * TILE_ROWS..][lanes.clone()],
                                        s,
                                        opts.bias.map(|b| &b[rows.clone()]),
                                        y_rows(t, &rows),
                                    );
                                }
                            }
                        }
                    }
                }
            }
        };
        ctx.threads.for_each_slot(tile_parts * block_parts, task);
    }

    /// Runs `body(r0, n, scratch)` for every chunk of the requested rows, spread over the
    /// threads, and gives it a writer for output element (token, row).
    fn for_row_chunks(
        &self,
        ctx: &Context,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        slots: &mut [TaskScratch],
        body: impl Fn(usize, usize, &dyn Fn(usize, usize, f32), &mut TaskScratch) + Sync,
    ) {
        let range = self.row_range(opts);
        let slots = Slots::new(slots);
        let out = SharedMut(y.as_mut_ptr());
        let emit = |t: usize, r: usize, v: f32| {
            let v = opts.bias.map_or(v, |b| v + b[r]);
            // SAFETY: `check_call` verified that y holds token t's row r; each (t, r) is written
            // by exactly one task.
            unsafe { *out.at(t * y_stride + r) = v };
        };
        ctx.threads
            .for_each_slot(range.len().div_ceil(ROW_CHUNK), |slot, c| {
                let r0 = range.start + c * ROW_CHUNK;
                // SAFETY: tasks running at the same time have different slots.
                let ts = unsafe { slots.get(slot) };
                body(r0, ROW_CHUNK.min(range.end - r0), &emit, ts)
            });
    }

    /// One weight scale (or per-block scales that are all equal, the blocks' dots summed in
    /// int32): `Arith::output` per token and row.
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
        sc: &mut Epi,
        slots: &mut [TaskScratch],
    ) {
        let post = take(&mut sc.post, n_tokens);
        for (p, &s) in post.iter_mut().zip(&acts.scales[..n_tokens]) {
            *p = arith.post_scale(w_scale, s);
        }
        let post = &*post;
        let (_, n_groups) = self.row_groups();
        self.for_row_chunks(ctx, y, y_stride, opts, slots, |r0, n, emit, ts| {
            let (dots, group) = take(&mut ts.dots, 2 * n * n_tokens).split_at_mut(n * n_tokens);
            self.group_dots(0, r0, n, acts.q, acts.stride, n_tokens, dots);
            // A per-block matrix with equal scales: the blocks' dots summed exactly.
            for g in 1..n_groups {
                self.group_dots(g, r0, n, acts.q, acts.stride, n_tokens, group);
                for (d, &x) in dots.iter_mut().zip(&*group) {
                    *d = d.wrapping_add(x);
                }
            }
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

    /// Per-block weight scales, summed in block order: with per-token activations
    /// (`Compat::Default`, checked by the caller) `y = (Σ_g f32(S_g)·w_g) / act_scale`; with Q8_K
    /// activations (`block_scales[t·n_groups + g]`) ggml's mul_mat, `y = Σ_g f32(S_g)·(d_act_g·w_g)`.
    /// `S_g` is the exact ternary dot of group `g`.
    #[allow(clippy::too_many_arguments)]
    fn run_per_group(
        &self,
        ctx: &Context,
        w_scales: &[f32],
        acts: &Activations,
        block_scales: Option<&[f32]>,
        n_tokens: usize,
        y: &mut [f32],
        y_stride: usize,
        opts: &GemmOptions,
        sc: &mut Epi,
        slots: &mut [TaskScratch],
    ) {
        let (g_cols, n_groups) = self.row_groups();
        let (q, stride) = (acts.q, acts.stride);
        let group_sums = group_sums(&mut sc.gsums, q, stride, n_tokens, g_cols, n_groups);
        self.for_row_chunks(ctx, y, y_stride, opts, slots, |r0, n, emit, ts| {
            let dots = take(&mut ts.dots, n * n_tokens);
            let acc = take(&mut ts.acc, n * n_tokens);
            acc.fill(0.0);
            for g in 0..n_groups {
                self.group_dots(g, r0, n, q, stride, n_tokens, dots);
                for t in 0..n_tokens {
                    let d_act = block_scales.map(|bs| bs[t * n_groups + g]);
                    for r in 0..n {
                        let s = dots[t * n + r] - group_sums[t * n_groups + g];
                        let w = w_scales[(r0 + r) * n_groups + g];
                        acc[t * n + r] += s as f32 * d_act.map_or(w, |d| d * w);
                    }
                }
            }
            for t in 0..n_tokens {
                for r in 0..n {
                    let a = acc[t * n + r];
                    let v = match block_scales {
                        Some(_) => a,
                        None if acts.scales[t] == 0.0 => 0.0,
                        None => a / acts.scales[t],
                    };
                    emit(t, r0 + r, v);
                }
            }
        });
    }

    /// The row layout's column groups: (columns per group, groups).
    fn row_groups(&self) -> (usize, usize) {
        let Store::Rows {
            padded_cols,
            group_cols,
            ..
        } = &self.store
        else {
            unreachable!("row path on panels");
        };
        (*group_cols, padded_cols / group_cols)
    }

    /// Code dots of rows `[r0, r0 + n)` over column group `g` against every token (row layout).
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
        let Store::Rows {
            codes,
            variant,
            group_cols,
            kernel,
            ..
        } = &self.store
        else {
            unreachable!("row path on panels");
        };
        let g_cols = *group_cols;
        let row_bytes = g_cols / 4;
        let base = g * self.shape.rows * row_bytes;
        let weights = &codes[base + r0 * row_bytes..base + (r0 + n) * row_bytes];
        (kernel.run)(
            *variant,
            weights,
            g_cols,
            &q[g * g_cols..],
            stride,
            n_tokens,
            dots,
        );
    }
}

/// Most bytes of scratch a GEMM keeps per calling thread (`tern_gemm`'s doc states it): a call
/// whose activations, kernel outputs and accumulators would need more runs in chunks of tokens
/// (`Matrix::chunk_tokens`); scratch still above it after a call (one token block of a very wide
/// matrix) is released.
pub const SCRATCH_BOUND: usize = 2 << 20;

/// Buffers of the calling thread: the activations and per-token values of a call, and the
/// buffers of its tasks. Grown (fallibly) before a call writes anything, reused by later calls.
#[derive(Default)]
struct CallScratch {
    /// The caller's activations quantized (`gemm`).
    q: Vec<i8>,
    scales: Vec<f32>,
    sums: Vec<i32>,
    block_scales: Vec<f32>,
    /// What the kernels read and the epilogues need.
    work: WorkScratch,
}

#[derive(Default)]
struct WorkScratch {
    /// Activations as the kernels read them (interleaved or zero-padded).
    acts: Vec<i8>,
    epi: Epi,
    /// One `TaskScratch` per thread slot (`Threads::for_each_slot`).
    slots: Vec<TaskScratch>,
}

/// Per-token values of the epilogues.
#[derive(Default)]
struct Epi {
    gsums: Vec<i32>,
    post: Vec<f32>,
}

/// The buffers of one task (kernel outputs and accumulators).
#[derive(Default)]
struct TaskScratch {
    dots: Vec<i32>,
    acc: Vec<f32>,
    /// The token of `Prepared::Token`, quantized by this task.
    token: Vec<i8>,
}

/// Elements of each `CallScratch` buffer a call needs (`Matrix::scratch_need`); `slots`
/// task buffers of `dots`, `acc` and `token` each.
#[derive(Clone, Copy, Debug, Default)]
struct Need {
    q: usize,
    scales: usize,
    sums: usize,
    block_scales: usize,
    acts: usize,
    gsums: usize,
    post: usize,
    slots: usize,
    dots: usize,
    acc: usize,
    token: usize,
}

impl Need {
    fn bytes(&self) -> usize {
        let per_slot = 4 * (self.dots + self.acc) + self.token;
        self.q
            + 4 * (self.scales + self.sums + self.block_scales + self.gsums + self.post)
            + self.acts
            + self.slots * per_slot
    }
}

impl CallScratch {
    /// Grows every buffer to at least what `need` says; an allocation the system refuses is an
    /// `OutOfMemory` error (the buffers grown so far are kept for the next call).
    fn grow(&mut self, need: &Need) -> Result<()> {
        fn at_least<T: Copy + Default>(v: &mut Vec<T>, n: usize, what: &str) -> Result<()> {
            if v.len() < n {
                try_reserve(v, n - v.len(), what)?;
                v.resize(n, T::default());
            }
            Ok(())
        }
        const WHAT: &str = "the GEMM scratch";
        at_least(&mut self.q, need.q, WHAT)?;
        at_least(&mut self.scales, need.scales, WHAT)?;
        at_least(&mut self.sums, need.sums, WHAT)?;
        at_least(&mut self.block_scales, need.block_scales, WHAT)?;
        let work = &mut self.work;
        at_least(&mut work.acts, need.acts, WHAT)?;
        at_least(&mut work.epi.gsums, need.gsums, WHAT)?;
        at_least(&mut work.epi.post, need.post, WHAT)?;
        if work.slots.len() < need.slots {
            let more = need.slots - work.slots.len();
            try_reserve(&mut work.slots, more, WHAT)?;
            work.slots.resize_with(need.slots, TaskScratch::default);
        }
        for slot in &mut work.slots[..need.slots] {
            at_least(&mut slot.dots, need.dots, WHAT)?;
            at_least(&mut slot.acc, need.acc, WHAT)?;
            at_least(&mut slot.token, need.token, WHAT)?;
        }
        Ok(())
    }

    /// Bytes held.
    fn capacity_bytes(&self) -> usize {
        let w = &self.work;
        let slots: usize = w
            .slots
            .iter()
            .map(|s| 4 * (s.dots.capacity() + s.acc.capacity()) + s.token.capacity())
            .sum();
        self.q.capacity()
            + 4 * (self.scales.capacity() + self.sums.capacity() + self.block_scales.capacity())
            + w.acts.capacity()
            + 4 * (w.epi.gsums.capacity() + w.epi.post.capacity())
            + slots
    }

    /// Releases everything when more than `SCRATCH_BOUND` is held.
    fn trim(&mut self) {
        if self.capacity_bytes() > SCRATCH_BOUND {
            *self = Self::default();
        }
    }
}

thread_local! {
    static CALL_SCRATCH: RefCell<CallScratch> = RefCell::default();
}

/// Runs `f` on this thread's scratch, or on fresh buffers if it is in use (a re-entrant call,
/// e.g. a GEMM started from a task of another pool on this thread).
fn with_scratch<S: Default + 'static, R>(
    key: &'static std::thread::LocalKey<RefCell<S>>,
    f: impl FnOnce(&mut S) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut s) => f(&mut s),
        Err(_) => f(&mut S::default()),
    })
}

/// The first `n` elements of `v`, which `CallScratch::grow` made long enough (contents are
/// stale: callers overwrite them).
fn take<T>(v: &mut [T], n: usize) -> &mut [T] {
    &mut v[..n]
}

/// The task buffers of a call, shared by its tasks slot by slot.
struct Slots {
    ptr: SharedMut<TaskScratch>,
    len: usize,
}

impl Slots {
    fn new(slots: &mut [TaskScratch]) -> Self {
        Self {
            ptr: SharedMut(slots.as_mut_ptr()),
            len: slots.len(),
        }
    }

    /// Slot `slot`'s buffers.
    ///
    /// # Safety
    /// No other live reference to slot `slot` (tasks that run at the same time have different
    /// slots).
    #[allow(clippy::mut_from_ref)]
    unsafe fn get(&self, slot: usize) -> &mut TaskScratch {
        assert!(slot < self.len, "slot {slot} of {}", self.len);
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { &mut *self.ptr.at(slot) }
    }
}

/// Zeroes columns `cols..stride` of `n` rows of `stride`.
fn zero_pad(q: &mut [i8], stride: usize, cols: usize, n: usize) {
    if stride > cols {
        for t in 0..n {
            q[t * stride + cols..][..stride - cols].fill(0);
        }
    }
}

/// Items (tokens, token blocks) from which activation quantization and interleaving run on
/// every thread.
const PAR_ITEMS: usize = 8;

/// Runs `f` on `0..n` items split into one contiguous range per thread, or on the caller alone
/// for fewer than `PAR_ITEMS` items (waking the threads would cost more than the work).
fn for_ranges(ctx: &Context, n: usize, f: impl Fn(Range<usize>) + Sync + Send) {
    let parts = if n >= PAR_ITEMS {
        ctx.threads.count().min(n)
    } else {
        1
    };
    ctx.threads.for_each(parts, |i| f(split(0..n, parts, i)));
}

/// A buffer of per-token rows (`per_token` elements each) that tasks fill token range by range.
struct TokenRows<T> {
    ptr: SharedMut<T>,
    per_token: usize,
    len: usize,
}

impl<T> TokenRows<T> {
    fn new(buf: &mut [T], per_token: usize) -> Self {
        Self {
            ptr: SharedMut(buf.as_mut_ptr()),
            per_token,
            len: buf.len(),
        }
    }

    /// The rows of tokens `r`.
    ///
    /// # Safety
    /// The buffer outlives the slice, and no other live slice covers tokens `r`.
    #[allow(clippy::mut_from_ref)]
    unsafe fn rows(&self, r: Range<usize>) -> &mut [T] {
        assert!(
            r.end * self.per_token <= self.len,
            "token rows out of range"
        );
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.at(r.start * self.per_token),
                r.len() * self.per_token,
            )
        }
    }
}

/// Part `i` of `parts` near-equal parts of `r`.
fn split(r: Range<usize>, parts: usize, i: usize) -> Range<usize> {
    let n = r.len();
    r.start + n * i / parts..r.start + n * (i + 1) / parts
}

fn sum_i8(v: &[i8]) -> i32 {
    v.iter().map(|&x| x as i32).sum()
}

/// `geom` summing as many consecutive groups per dot as `MAX_DOT_STEPS` allows.
fn summed_groups(geom: PanelGeom) -> PanelGeom {
    let merge = (1..=geom.n_groups)
        .rev()
        .find(|m| geom.n_groups.is_multiple_of(*m) && m * geom.group_steps <= MAX_DOT_STEPS)
        .unwrap_or(1);
    PanelGeom { merge, ..geom }
}

/// The dots of lanes `lanes` of one token, summed over the `ng` groups of a one-scale matrix
/// (exact: the total of a row fits int32 as the single-group kernels' does).
fn acc_i32(d: &[i32], ng: usize, lanes: Range<usize>) -> Vec1 {
    let mut out = Vec1 {
        len: lanes.len(),
        ..Vec1::default()
    };
    out.v[..lanes.len()].copy_from_slice(&d[lanes.clone()]);
    for g in 1..ng {
        for (o, &x) in out.v.iter_mut().zip(&d[g * TILE_ROWS..][lanes.clone()]) {
            *o = o.wrapping_add(x);
        }
    }
    out
}

/// A tile's worth of int32 (stack, no allocation).
struct Vec1 {
    v: [i32; TILE_ROWS],
    len: usize,
}

impl Default for Vec1 {
    fn default() -> Self {
        Self {
            v: [0; TILE_ROWS],
            len: 0,
        }
    }
}

impl std::ops::Deref for Vec1 {
    type Target = [i32];
    fn deref(&self) -> &[i32] {
        &self.v[..self.len]
    }
}

impl std::ops::DerefMut for Vec1 {
    fn deref_mut(&mut self) -> &mut [i32] {
        &mut self.v[..self.len]
    }
}

/// One token's outputs of a one-scale matrix: `Arith::output` (+ bias) with the mode's branch
/// hoisted out of the loop so it vectorizes; bit-identical with `Arith::output`.
fn epilogue_shared(
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
        Arith::Default | Arith::Ggml | Arith::Lut if s == 0.0 => each!(|_: i32| 0.0f32),
        Arith::Default | Arith::Ggml => each!(|d: i32| (d - sum) as f32 * post),
        Arith::I2sCurrent => each!(|d: i32| (d as f32 - sum as f32) * post),
        Arith::I2sLegacy => each!(|d: i32| ((d as f32 - sum as f32) / s) * post),
        Arith::Lut => each!(|d: i32| (d - sum) as f32 / s * post),
    }
}

/// One token's outputs of a per-block-scale matrix from its accumulated sums: `acc / s`
/// (0 for an all-zero token) in the default mode, `acc` itself in ggml's (+ bias).
fn epilogue_groups(ggml: bool, acc: &[f32], s: f32, bias: Option<&[f32]>, out: &mut [f32]) {
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
fn group_sums<'a>(
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

/// Packs ternary values into the kernel layout: rows padded with zeros to `padded_cols`, then for
/// each group of `group_cols` columns every row's slice of the group as I2_S x86 codes.
fn group_major_codes(
    ternary: &[i8],
    shape: Shape,
    padded_cols: usize,
    group_cols: usize,
) -> Result<Vec<u8>> {
    let row_bytes = group_cols / 4;
    let mut codes = try_vec(shape.rows * padded_cols / 4, 0u8, "the matrix's codes")?;
    let mut padded_row = try_vec(padded_cols, 0i8, "a padded row")?;
    for r in 0..shape.rows {
        padded_row[..shape.cols].copy_from_slice(&ternary[r * shape.cols..][..shape.cols]);
        for (g, slice) in padded_row.chunks_exact(group_cols).enumerate() {
            let at = (g * shape.rows + r) * row_bytes;
            i2s::pack_codes(I2sVariant::X86, slice, &mut codes[at..at + row_bytes]);
        }
    }
    Ok(codes)
}

/// A pointer shared by tasks that write disjoint elements (outputs, tiles).
struct SharedMut<T>(*mut T);

impl<T> SharedMut<T> {
    /// # Safety
    /// `index` must be in bounds of the buffer, and the elements written through the pointer
    /// written by one task only.
    unsafe fn at(&self, index: usize) -> *mut T {
        unsafe { self.0.add(index) }
    }
}
// SAFETY: tasks write disjoint elements of one live buffer (see the callers).
unsafe impl<T> Sync for SharedMut<T> {}
unsafe impl<T> Send for SharedMut<T> {}
