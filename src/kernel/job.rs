//! The argument checks every SIMD code-dot kernel shares: one validated call (`Job`), whose
//! sizes the architecture-specific tiles then rely on.

use crate::format::I2sVariant;
use crate::kernel::Isa;

/// One validated kernel call: `n_rows` weight rows of `row_bytes` bytes against `n_tokens`
/// activation rows (token `t` at `acts[t·stride..]`, `n_blocks·block` elements read).
pub(crate) struct Job<'a> {
    pub(crate) weights: &'a [u8],
    pub(crate) row_bytes: usize,
    pub(crate) n_rows: usize,
    pub(crate) n_blocks: usize,
    pub(crate) acts: &'a [i8],
    pub(crate) stride: usize,
    pub(crate) n_tokens: usize,
    pub(crate) dots: &'a mut [i32],
}

impl<'a> Job<'a> {
    /// Checks the sizes the tiles rely on; `None` when there is nothing to compute.
    pub(crate) fn new(
        variant: I2sVariant,
        weights: &'a [u8],
        cols: usize,
        acts: &'a [i8],
        act_stride: usize,
        n_tokens: usize,
        dots: &'a mut [i32],
    ) -> Option<Self> {
        let block = variant.block_len();
        assert!(
            cols.is_multiple_of(block),
            "I2_S {} kernel: cols = {cols} is not a multiple of {block}",
            variant.name()
        );
        let row_bytes = cols / 4;
        if row_bytes == 0 || n_tokens == 0 {
            return None;
        }
        let n_rows = weights.len() / row_bytes;
        let acts_needed = (n_tokens - 1)
            .checked_mul(act_stride)
            .and_then(|v| v.checked_add(cols));
        assert!(
            acts_needed.is_some_and(|n| n <= acts.len()),
            "I2_S kernel: acts holds {} values, {n_tokens} tokens of stride {act_stride} need more",
            acts.len()
        );
        let dots_needed = n_tokens.checked_mul(n_rows);
        assert!(
            dots_needed.is_some_and(|n| n <= dots.len()),
            "I2_S kernel: dots holds {} values, {n_tokens}·{n_rows} needed",
            dots.len()
        );
        Some(Self {
            weights,
            row_bytes,
            n_rows,
            n_blocks: cols / block,
            acts,
            stride: act_stride,
            n_tokens,
            dots,
        })
    }
}

/// Runs `kernel` if the CPU has `isa` (checked once per call: the wrappers are safe `fn`s and may
/// be called from anywhere, not only through a table built for an available ISA).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    isa: Isa,
    kernel: unsafe fn(I2sVariant, &mut Job),
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    assert!(
        isa.is_available(),
        "the {} kernel needs CPU features this machine lacks",
        isa.name()
    );
    if let Some(mut job) = Job::new(variant, weights, cols, acts, act_stride, n_tokens, dots) {
        // SAFETY: the CPU has every feature `isa` needs (asserted above), which covers the
        // kernel's `target_feature`s; `job` is checked.
        unsafe { kernel(variant, &mut job) }
    }
}
