//! The calling thread's GEMM buffers: grown fallibly before a call writes anything, reused by
//! later calls (steady calls allocate nothing), bounded by `SCRATCH_BOUND`.

use std::cell::RefCell;

use super::activations::QuantScratch;
use super::panels::TOKEN_BLOCK;
use super::rows::ROW_CHUNK;
use super::{CallScales, Matrix, WeightPlan};
use crate::context::Context;
use crate::error::{Result, try_reserve};
use crate::quant::activation::Arith;
use crate::quant::{q8_0, q8k};

/// Most bytes of scratch a GEMM keeps per calling thread (`tern_gemm`'s doc states it): a call
/// whose activations, kernel outputs and accumulators would need more runs in chunks of tokens
/// (`Matrix::chunk_tokens`); scratch still above it after a call (one token block of a very wide
/// matrix) is released.
pub const SCRATCH_BOUND: usize = 2 << 20;

/// Buffers of the calling thread: the activations and per-token values of a call, and the
/// buffers of its tasks. Grown (fallibly) before a call writes anything, reused by later calls.
#[derive(Default)]
pub(super) struct CallScratch {
    /// The caller's activations quantized (`gemm`).
    pub(super) quant: QuantScratch,
    /// What the kernels read and the epilogues need.
    pub(super) work: WorkScratch,
}

#[derive(Default)]
pub(super) struct WorkScratch {
    /// Activations as the kernels read them (interleaved or zero-padded).
    pub(super) acts: Vec<i8>,
    pub(super) epilogue: EpilogueInputs,
    /// One `TaskScratch` per thread slot (`Threads::for_each_slot`).
    pub(super) slots: Vec<TaskScratch>,
}

/// Per-token values the epilogues read: the activations' per-group sums (per-group scales) or
/// each token's output factor `Arith::post_scale` (one scale).
#[derive(Default)]
pub(super) struct EpilogueInputs {
    pub(super) gsums: Vec<i32>,
    /// ggml's Q8_0 order: `kernel::q8_0_offsets` of `gsums` and the block scales.
    pub(super) q8_0_offsets: Vec<f32>,
    pub(super) post: Vec<f32>,
}

/// The buffers of one task (kernel outputs and accumulators).
#[derive(Default)]
pub(super) struct TaskScratch {
    pub(super) dots: Vec<i32>,
    pub(super) acc: Vec<f32>,
    /// The token of `Prepared::Token`, quantized by this task.
    pub(super) token: Vec<i8>,
}

/// Elements of each `CallScratch` buffer a call needs (`Matrix::scratch_need`); `slots`
/// task buffers of `dots`, `acc` and `token` each.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Need {
    pub(super) q: usize,
    pub(super) scales: usize,
    pub(super) sums: usize,
    pub(super) block_scales: usize,
    pub(super) acts: usize,
    pub(super) gsums: usize,
    pub(super) q8_0_offsets: usize,
    pub(super) post: usize,
    pub(super) slots: usize,
    pub(super) dots: usize,
    pub(super) acc: usize,
    pub(super) token: usize,
}

impl Need {
    pub(super) fn bytes(&self) -> usize {
        let per_slot = 4 * (self.dots + self.acc) + self.token;
        self.q
            + 4 * (self.scales + self.sums + self.block_scales)
            + 4 * (self.gsums + self.q8_0_offsets + self.post)
            + self.acts
            + self.slots * per_slot
    }
}

impl CallScratch {
    /// Grows every buffer to at least what `need` says; an allocation the system refuses is an
    /// `OutOfMemory` error (the buffers grown so far are kept for the next call).
    pub(super) fn grow(&mut self, need: &Need) -> Result<()> {
        fn at_least<T: Copy + Default>(v: &mut Vec<T>, n: usize, what: &str) -> Result<()> {
            if v.len() < n {
                try_reserve(v, n - v.len(), what)?;
                v.resize(n, T::default());
            }
            Ok(())
        }
        const WHAT: &str = "the GEMM scratch";
        let quant = &mut self.quant;
        at_least(&mut quant.q, need.q, WHAT)?;
        at_least(&mut quant.scales, need.scales, WHAT)?;
        at_least(&mut quant.sums, need.sums, WHAT)?;
        at_least(&mut quant.block_scales, need.block_scales, WHAT)?;
        let work = &mut self.work;
        at_least(&mut work.acts, need.acts, WHAT)?;
        at_least(&mut work.epilogue.gsums, need.gsums, WHAT)?;
        at_least(&mut work.epilogue.q8_0_offsets, need.q8_0_offsets, WHAT)?;
        at_least(&mut work.epilogue.post, need.post, WHAT)?;
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
        let q = &self.quant;
        q.q.capacity()
            + 4 * (q.scales.capacity() + q.sums.capacity() + q.block_scales.capacity())
            + w.acts.capacity()
            + 4 * (w.epilogue.gsums.capacity() + w.epilogue.post.capacity())
            + 4 * w.epilogue.q8_0_offsets.capacity()
            + slots
    }

    /// Releases everything when more than `SCRATCH_BOUND` is held.
    pub(super) fn trim(&mut self) {
        if self.capacity_bytes() > SCRATCH_BOUND {
            *self = Self::default();
        }
    }
}

thread_local! {
    pub(super) static CALL_SCRATCH: RefCell<CallScratch> = RefCell::default();
}

/// Runs `f` on this thread's scratch, or on fresh buffers if it is in use (a re-entrant call,
/// e.g. a GEMM started from a task of another pool on this thread).
pub(super) fn with_scratch<S: Default + 'static, R>(
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
pub(super) fn take<T>(v: &mut [T], n: usize) -> &mut [T] {
    &mut v[..n]
}

/// Sizing a call's scratch (the buffers `gemm_chunk`, `run` and the task bodies take).
impl Matrix {
    /// The scratch a call (or chunk) of `n_tokens` needs, `quantize`: whether the call
    /// quantizes the activations itself (`gemm`) or gets them quantized (`gemm_i8`). Mirrors
    /// what `gemm_chunk`, `run` and the task bodies take.
    pub(super) fn scratch_need(
        &self,
        ctx: &Context,
        arith: Arith,
        n_tokens: usize,
        quantize: bool,
    ) -> Need {
        let n = n_tokens;
        let cols = self.shape.cols;
        let ggml = arith.block_acts();
        let mut need = Need {
            slots: ctx.threads.count(),
            ..Need::default()
        };
        if quantize {
            need.q = n * self.plan.padded_cols();
            if ggml {
                let block = match arith {
                    Arith::GgmlQ8_0 => q8_0::BLOCK,
                    _ => q8k::BLOCK,
                };
                need.block_scales = n * (cols / block);
            } else {
                (need.scales, need.sums) = (n, n);
            }
        }
        let call_scales = self.scales.for_call(ggml);
        match &self.plan {
            WeightPlan::Panels(w) => {
                let geom = w.geom();
                let pc = geom.cols();
                if quantize && n == 1 && !ggml && self.token_in_tasks(ctx).is_some() {
                    need.token = pc;
                } else {
                    need.acts = n * pc;
                    match call_scales {
                        CallScales::PerGroup(_) => {
                            need.gsums = n * geom.n_groups;
                            if arith == Arith::GgmlQ8_0 {
                                need.q8_0_offsets = n * geom.n_groups;
                            }
                        }
                        CallScales::One(_) => need.post = n,
                    }
                }
                // A call's last chunk of tokens may be a short one, whose runs are longer: its
                // buffers are at most a one-token call's or a full block's.
                let (runs, short) = (
                    w.dot_runs(call_scales, n, arith),
                    w.dot_runs(call_scales, 1, arith),
                );
                need.dots = runs.run_dots.max(short.run_dots);
                need.acc = runs.run_sums.max(short.run_sums);
            }
            WeightPlan::Rows(w) => {
                let padded_cols = w.padded_cols();
                if !quantize && padded_cols != cols {
                    need.acts = n * padded_cols;
                }
                match call_scales {
                    CallScales::One(_) => {
                        need.post = n;
                        need.dots = 2 * ROW_CHUNK * n;
                    }
                    CallScales::PerGroup(_) if arith == Arith::GgmlQ8_0 => {
                        let (g_cols, _) = w.groups();
                        let sub = g_cols / q8_0::BLOCK;
                        need.acts = sub * n * padded_cols;
                        need.gsums = n * padded_cols / q8_0::BLOCK;
                        need.dots = sub * ROW_CHUNK * n;
                        need.acc = ROW_CHUNK * n;
                    }
                    CallScales::PerGroup(_) => {
                        let (_, n_groups) = w.groups();
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
    pub(super) fn chunk_tokens(
        &self,
        ctx: &Context,
        arith: Arith,
        n_tokens: usize,
        quantize: bool,
    ) -> usize {
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
}
