//! The calling thread's GEMM buffers: grown fallibly before a call writes anything, reused by
//! later calls (steady calls allocate nothing), bounded by `SCRATCH_BOUND`.

use std::cell::RefCell;

use super::activations::QuantScratch;
use crate::error::{Result, try_reserve};

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
            + 4 * (self.scales + self.sums + self.block_scales + self.gsums + self.post)
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
