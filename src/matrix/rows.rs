//! The row layout (`I2sDotsFn`, levels without panel kernels): I2_S codes row by row, grouped
//! by scale group, and its run path: tasks of `ROW_CHUNK` output rows, each computing its
//! rows' dots group by group for every token.

use super::activations::QuantizedActs;
use super::epilogue::group_sums;
use super::parallel::Slots;
use super::scratch::{EpilogueInputs, TaskScratch, WorkScratch, take};
use super::{CallScales, Outputs};
use crate::context::Context;
use crate::error::{Result, try_to_vec, try_vec};
use crate::format::{I2sVariant, Layout, Shape, i2s};
use crate::kernel::{I2sDotsFn, Kernel};

/// Output rows computed per task of the row layout: big enough to amortize a task, small enough
/// to balance.
pub(super) const ROW_CHUNK: usize = 64;

/// Columns of one x86 I2_S block: the row layout pads rows to a multiple of it.
const KERNEL_BLOCK: usize = 128;

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
    /// I2_S matrices keep their own bytes; other formats are packed as 128-element x86 blocks,
    /// rows padded with zero weights to a multiple of 128, group by group (`per_block`: one
    /// group per scale block).
    pub(super) fn build(
        layout: Layout,
        shape: Shape,
        packed: &[u8],
        per_block: bool,
        kernel: Kernel<I2sDotsFn>,
    ) -> Result<Self> {
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
        match layout {
            Layout::I2s(v) => i2s::unpack(v, &self.codes, ternary),
            _ => {
                let (g_cols, row_bytes) = (group_cols, group_cols / 4);
                for g in 0..padded_cols / g_cols {
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
        let g_cols = self.group_cols;
        let row_bytes = g_cols / 4;
        let base = g * self.rows * row_bytes;
        let weights = &self.codes[base + r0 * row_bytes..base + (r0 + n) * row_bytes];
        (self.kernel.run)(
            self.variant,
            weights,
            g_cols,
            &call.acts.q[g * g_cols..],
            call.acts.stride,
            call.n_tokens,
            dots,
        );
    }
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
