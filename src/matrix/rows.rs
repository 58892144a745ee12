//! The row layout (`I2sDotsFn`, levels without panel kernels): I2_S codes row by row, grouped
//! by scale group, and its run path: tasks of `ROW_CHUNK` output rows, each computing its
//! rows' dots group by group for every token. ggml's Q8_0 order (Q2_0, Q1_0) needs a dot per
//! 32 columns, narrower than any I2_S block: each group's kernel call runs once per 32-column
//! block position `k` of the group, on a copy of the activations that keeps only those blocks.

use super::activations::QuantizedActs;
use super::epilogue::group_sums;
use super::parallel::Slots;
use super::scratch::{EpilogueInputs, TaskScratch, WorkScratch, take};
use super::{CallScales, Outputs};
use crate::context::Context;
use crate::error::{Result, try_to_vec, try_vec};
use crate::format::{I2sVariant, Layout, Shape, i2s};
use crate::kernel::{I2sDotsFn, Kernel};
use crate::quant::activation::Arith;
use crate::quant::q8_0;

/// Output rows computed per task of the row layout: big enough to amortize a task, small enough
/// to balance.
pub(super) const ROW_CHUNK: usize = 64;

/// The weights as I2_S code rows, for `I2sDotsFn`.
pub(super) struct RowWeights {
    /// For each group of `group_cols` columns, `rows` rows of `group_cols/4` code bytes.
    /// One group of all (padded) columns when the matrix has one scale.
    codes: Vec<u8>,
    /// The block layout of `codes`.
    variant: I2sVariant,
    /// The matrix's rows.
    rows: usize,
    /// Row length in `codes` (≥ cols; the padding holds zero weights).
    padded_cols: usize,
    group_cols: usize,
    kernel: Kernel<I2sDotsFn>,
}

impl RowWeights {
    /// I2_S matrices keep their own bytes; other formats are packed as 128-element x86 blocks
    /// (64-element ARM blocks when a scale block is not a multiple of 128: Q2_0's 64), rows
    /// padded with zero weights to a multiple of the block, group by group (`per_block`: one
    /// group per scale block).
    pub(super) fn build(
        layout: Layout,
        shape: Shape,
        packed: &[u8],
        per_block: bool,
        kernel: Kernel<I2sDotsFn>,
    ) -> Result<Self> {
        let per_scale = layout.elements_per_scale(shape);
        let variant = match layout {
            Layout::I2s(v) => v,
            _ if per_block && !per_scale.is_multiple_of(128) => I2sVariant::Arm64,
            _ => I2sVariant::X86,
        };
        let padded_cols = match layout {
            Layout::I2s(_) => shape.cols,
            _ => shape.cols.next_multiple_of(variant.block_len()),
        };
        let group_cols = if per_block { per_scale } else { padded_cols };
        debug_assert!(group_cols.is_multiple_of(variant.block_len()));
        let codes = match layout {
            // I2_S rows already are what the kernels read.
            Layout::I2s(_) => try_to_vec(&packed[..i2s::code_bytes(shape)], "the matrix's codes")?,
            _ => {
                let mut ternary = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
                layout.unpack(shape, packed, &mut ternary)?;
                group_major_codes(&ternary, shape, (padded_cols, group_cols), variant)?
            }
        };
        Ok(Self {
            codes,
            variant,
            rows: shape.rows,
            padded_cols,
            group_cols,
            kernel,
        })
    }

    pub(super) fn padded_cols(&self) -> usize {
        self.padded_cols
    }

    pub(super) fn kernel_name(&self) -> &'static std::ffi::CStr {
        self.kernel.name
    }

    pub(super) fn codes(&self) -> &[u8] {
        &self.codes
    }

    /// The column groups: (columns per group, groups).
    pub(super) fn groups(&self) -> (usize, usize) {
        (self.group_cols, self.padded_cols / self.group_cols)
    }

    /// Row-major `rows × cols` ternary values into `ternary`; returns the group width.
    pub(super) fn unpack_ternary(&self, layout: Layout, cols: usize, ternary: &mut [i8]) -> usize {
        let (rows, padded_cols, group_cols) = (self.rows, self.padded_cols, self.group_cols);
        let variant = self.variant;
        match layout {
            Layout::I2s(v) => i2s::unpack(v, &self.codes, ternary),
            _ => {
                let (g_cols, row_bytes) = (group_cols, group_cols / 4);
                for g in 0..padded_cols / g_cols {
                    for r in 0..rows {
                        let codes = &self.codes[(g * rows + r) * row_bytes..][..row_bytes];
                        for j in 0..g_cols.min(cols.saturating_sub(g * g_cols)) {
                            ternary[r * cols + g * g_cols + j] =
                                i2s::code_at(variant, codes, j) as i8 - 1;
                        }
                    }
                }
            }
        }
        group_cols
    }

    /// Runs a checked call: the kernels read `padded_cols` activations per token, so rows that
    /// are not zero-padded to it are copied with padding first.
    pub(super) fn run(
        &self,
        ctx: &Context,
        acts: &QuantizedActs,
        call_scales: CallScales,
        out: Outputs,
        sc: &mut WorkScratch,
    ) {
        let WorkScratch {
            acts: buf,
            epilogue,
            slots,
        } = sc;
        if let (Arith::GgmlQ8_0, CallScales::PerGroup(w_scales)) = (acts.arith, call_scales) {
            // `gemm`'s own rows, zero-padded already.
            return self.run_q8_0(ctx, acts, w_scales, out, (buf, epilogue), slots);
        }
        let acts = acts.padded_to(self.padded_cols, buf);
        match call_scales {
            CallScales::One(w_scale) => self.run_shared(ctx, &acts, w_scale, out, epilogue, slots),
            CallScales::PerGroup(w_scales) => {
                self.run_per_group(ctx, &acts, w_scales, out, epilogue, slots)
            }
        }
    }

    /// Runs `body(r0, n, scratch)` for every chunk of the requested rows, spread over the
    /// threads, and gives it a writer for output element (token, row).
    fn for_row_chunks(
        &self,
        ctx: &Context,
        out: Outputs,
        slots: &mut [TaskScratch],
        body: impl Fn(usize, usize, &dyn Fn(usize, usize, f32), &mut TaskScratch) + Sync,
    ) {
        let range = out.rows.clone();
        let slots = Slots::new(slots);
        let out = out.shared();
        let emit = |t: usize, r: usize, v: f32| {
            let v = out.bias.map_or(v, |b| v + b[r]);
            // SAFETY: r is a requested row and t a token of the call (`check_call` verified that
            // y holds them); each (t, r) is written by exactly one task.
            unsafe { *out.at(t, r) = v };
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
    fn run_shared(
        &self,
        ctx: &Context,
        call: &QuantizedActs,
        w_scale: f32,
        out: Outputs,
        sc: &mut EpilogueInputs,
        slots: &mut [TaskScratch],
    ) {
        let (arith, acts, n_tokens) = (call.arith, &call.acts, call.n_tokens);
        let post = take(&mut sc.post, n_tokens);
        for (p, &s) in post.iter_mut().zip(&acts.scales[..n_tokens]) {
            *p = arith.post_scale(w_scale, s);
        }
        let post = &*post;
        let (_, n_groups) = self.groups();
        self.for_row_chunks(ctx, out, slots, |r0, n, emit, ts| {
            let (dots, group) = take(&mut ts.dots, 2 * n * n_tokens).split_at_mut(n * n_tokens);
            self.group_dots(0, r0, n, call, dots);
            // A per-block matrix with equal scales: the blocks' dots summed exactly.
            for g in 1..n_groups {
                self.group_dots(g, r0, n, call, group);
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
    fn run_per_group(
        &self,
        ctx: &Context,
        call: &QuantizedActs,
        w_scales: &[f32],
        out: Outputs,
        sc: &mut EpilogueInputs,
        slots: &mut [TaskScratch],
    ) {
        let (acts, n_tokens, block_scales) = (&call.acts, call.n_tokens, call.block_scales);
        let (g_cols, n_groups) = self.groups();
        let (q, stride) = (acts.q, acts.stride);
        let group_sums = group_sums(&mut sc.gsums, q, stride, n_tokens, g_cols, n_groups);
        self.for_row_chunks(ctx, out, slots, |r0, n, emit, ts| {
            let dots = take(&mut ts.dots, n * n_tokens);
            let acc = take(&mut ts.acc, n * n_tokens);
            acc.fill(0.0);
            for g in 0..n_groups {
                self.group_dots(g, r0, n, call, dots);
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

    /// Code dots of rows `[r0, r0 + n)` over column group `g` against every token of `call`.
    fn group_dots(&self, g: usize, r0: usize, n: usize, call: &QuantizedActs, dots: &mut [i32]) {
        let acts = (call.acts.q, call.acts.stride, call.n_tokens);
        self.group_dots_of(g, r0, n, acts, dots);
    }

    /// `group_dots` on the tokens `(q, stride, n_tokens)`.
    fn group_dots_of(
        &self,
        g: usize,
        r0: usize,
        n: usize,
        (q, stride, n_tokens): (&[i8], usize, usize),
        dots: &mut [i32],
    ) {
        let g_cols = self.group_cols;
        let row_bytes = g_cols / 4;
        let base = g * self.rows * row_bytes;
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

    /// ggml's Q8_0 order (`Arith::GgmlQ8_0`, `TileScaling`'s Q8_0 formula) on Q8_0 activations
    /// (`block_scales[t·n32 + j]`, rows zero-padded): for every weight group (block) of `sub`
    /// 32-column blocks, the kernel runs once per position `k < sub` on the copy of the
    /// activations that keeps only the blocks `j ≡ k (mod sub)`, which gives the exact dot of
    /// block `g·sub + k`.
    fn run_q8_0(
        &self,
        ctx: &Context,
        call: &QuantizedActs,
        w_scales: &[f32],
        out: Outputs,
        (buf, sc): (&mut [i8], &mut EpilogueInputs),
        slots: &mut [TaskScratch],
    ) {
        let (acts, n_tokens) = (&call.acts, call.n_tokens);
        let bs = call.block_scales.unwrap_or_default();
        let (g_cols, n_groups) = self.groups();
        let pc = self.padded_cols;
        let (sub, n32) = (g_cols / q8_0::BLOCK, pc / q8_0::BLOCK);
        let masked = take(buf, sub * n_tokens * pc);
        masked.fill(0);
        for t in 0..n_tokens {
            let row = &acts.q[t * acts.stride..][..pc];
            for (j, block) in row.chunks_exact(q8_0::BLOCK).enumerate() {
                let at = ((j % sub) * n_tokens + t) * pc + j * q8_0::BLOCK;
                masked[at..at + q8_0::BLOCK].copy_from_slice(block);
            }
        }
        let masked = &*masked;
        let gsums = group_sums(
            &mut sc.gsums,
            acts.q,
            acts.stride,
            n_tokens,
            q8_0::BLOCK,
            n32,
        );
        self.for_row_chunks(ctx, out, slots, |r0, n, emit, ts| {
            let dots = take(&mut ts.dots, sub * n * n_tokens);
            let acc = take(&mut ts.acc, n * n_tokens);
            acc.fill(0.0);
            for g in 0..n_groups {
                for (k, dots) in dots.chunks_exact_mut(n * n_tokens).enumerate() {
                    let q = &masked[k * n_tokens * pc..][..n_tokens * pc];
                    self.group_dots_of(g, r0, n, (q, pc, n_tokens), dots);
                }
                for t in 0..n_tokens {
                    for r in 0..n {
                        let mut sumi = 0.0f32;
                        for k in 0..sub {
                            let j = t * n32 + g * sub + k;
                            let s = dots[(k * n_tokens + t) * n + r] - gsums[j];
                            sumi += bs[j] * s as f32;
                        }
                        acc[t * n + r] += w_scales[(r0 + r) * n_groups + g] * sumi;
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
}

/// Packs values (−1..=2) into the kernel layout: rows padded with zeros to `padded_cols`, then
/// for each group of `group_cols` columns every row's slice of the group as I2_S `variant` codes.
fn group_major_codes(
    ternary: &[i8],
    shape: Shape,
    (padded_cols, group_cols): (usize, usize),
    variant: I2sVariant,
) -> Result<Vec<u8>> {
    let row_bytes = group_cols / 4;
    let mut codes = try_vec(shape.rows * padded_cols / 4, 0u8, "the matrix's codes")?;
    let mut padded_row = try_vec(padded_cols, 0i8, "a padded row")?;
    for r in 0..shape.rows {
        padded_row[..shape.cols].copy_from_slice(&ternary[r * shape.cols..][..shape.cols]);
        for (g, slice) in padded_row.chunks_exact(group_cols).enumerate() {
            let at = (g * shape.rows + r) * row_bytes;
            i2s::pack_codes(variant, slice, &mut codes[at..at + row_bytes]);
        }
    }
    Ok(codes)
}
