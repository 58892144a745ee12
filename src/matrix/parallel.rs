//! Splitting a call's work over the context's threads, and the unsafe helpers its tasks use to
//! write disjoint parts of one buffer.

use std::ops::Range;

use super::scratch::TaskScratch;
use crate::context::Context;

/// Items (tokens, token blocks) from which activation quantization and interleaving run on
/// every thread.
const PAR_ITEMS: usize = 8;

/// Part `i` of `parts` near-equal parts of `r`.
pub(super) fn split(r: Range<usize>, parts: usize, i: usize) -> Range<usize> {
    let n = r.len();
    r.start + n * i / parts..r.start + n * (i + 1) / parts
}

/// Runs `f` on `0..n` items split into one contiguous range per thread, or on the caller alone
/// for fewer than `PAR_ITEMS` items (waking the threads would cost more than the work).
pub(super) fn for_ranges(ctx: &Context, n: usize, f: impl Fn(Range<usize>) + Sync + Send) {
    let parts = if n >= PAR_ITEMS {
        ctx.threads.count().min(n)
    } else {
        1
    };
    ctx.threads.for_each(parts, |i| f(split(0..n, parts, i)));
}

/// A pointer shared by tasks that write disjoint elements (outputs, tiles).
pub(super) struct SharedMut<T>(pub(super) *mut T);

impl<T> SharedMut<T> {
    /// # Safety
    /// `index` must be in bounds of the buffer, and the elements written through the pointer
    /// written by one task only.
    pub(super) unsafe fn at(&self, index: usize) -> *mut T {
        unsafe { self.0.add(index) }
    }
}
// SAFETY: tasks write disjoint elements of one live buffer (see the callers).
unsafe impl<T> Sync for SharedMut<T> {}
unsafe impl<T> Send for SharedMut<T> {}

/// A buffer of per-token rows (`per_token` elements each) that tasks fill token range by range.
pub(super) struct TokenRows<T> {
    ptr: SharedMut<T>,
    per_token: usize,
    len: usize,
}

impl<T> TokenRows<T> {
    pub(super) fn new(buf: &mut [T], per_token: usize) -> Self {
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
    pub(super) unsafe fn rows(&self, r: Range<usize>) -> &mut [T] {
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

/// The task buffers of a call, shared by its tasks slot by slot.
pub(super) struct Slots {
    ptr: SharedMut<TaskScratch>,
    len: usize,
}

impl Slots {
    pub(super) fn new(slots: &mut [TaskScratch]) -> Self {
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
    pub(super) unsafe fn get(&self, slot: usize) -> &mut TaskScratch {
        assert!(slot < self.len, "slot {slot} of {}", self.len);
        // SAFETY: in bounds (asserted); exclusive by the caller's contract.
        unsafe { &mut *self.ptr.at(slot) }
    }
}

/// The output buffer of a call shared by its tasks, each of which writes its own (token, row)
/// elements: token `t`'s row `r` at `t·stride + r`, for rows in `rows`, plus `bias[r]`.
pub(super) struct SharedOutputs<'a> {
    ptr: SharedMut<f32>,
    stride: usize,
    pub(super) rows: Range<usize>,
    pub(super) bias: Option<&'a [f32]>,
    _y: std::marker::PhantomData<&'a mut [f32]>,
}

impl<'a> SharedOutputs<'a> {
    /// `y` holds every token's rows in `rows` (`Matrix::check_call` verified it).
    pub(super) fn new(
        y: &'a mut [f32],
        stride: usize,
        rows: Range<usize>,
        bias: Option<&'a [f32]>,
    ) -> Self {
        Self {
            ptr: SharedMut(y.as_mut_ptr()),
            stride,
            rows,
            bias,
            _y: std::marker::PhantomData,
        }
    }

    /// Token `t`'s output in row `r`.
    ///
    /// # Safety
    /// `r` lies in `self.rows`, `t` is a token of the call, and no other task writes the element.
    pub(super) unsafe fn at(&self, t: usize, r: usize) -> *mut f32 {
        // SAFETY: in bounds of `y` by `new`'s contract and the caller's.
        unsafe { self.ptr.at(t * self.stride + r) }
    }

    /// Token `t`'s outputs in rows `rows`.
    ///
    /// # Safety
    /// `rows` lies in `self.rows`, `t` is a token of the call, and no other live slice covers
    /// these elements (a task writes only its own rows for its own tokens).
    #[allow(clippy::mut_from_ref)]
    pub(super) unsafe fn rows(&self, t: usize, rows: &Range<usize>) -> &mut [f32] {
        // SAFETY: in bounds and exclusive by the caller's contract.
        unsafe { std::slice::from_raw_parts_mut(self.at(t, rows.start), rows.len()) }
    }
}
