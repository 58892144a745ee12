//! x86-64 SIMD kernels for I2_S code dots (`I2sDotsFn`), exact in int32 for every valid input.
//!
//! * `avx2`: `vpmaddubsw` (u8 codes × i8 activations, pair sums |·| ≤ 512, never saturating)
//!   summed in int16 for a bounded number of steps, then widened with `vpmaddwd(·, 1)`.
//! * `avx512`: the same at 512 bits (AVX-512BW), and `vpdpbusd` (AVX-512 VNNI), which
//!   accumulates u8 × i8 products straight into int32 (codes left in place, scaled by 4^k, and
//!   unscaled per lane at the end: one `and` per 64 codes).
//!
//! Every kernel works on register tiles of `R` weight rows × `T` tokens: each decoded code vector
//! is reused for `T` tokens and each activation load for `R` rows. Tokens are the outer loop so a
//! tile's activations stay in L1 while the (4× smaller) weight rows stream past them; the next
//! tile's rows are prefetched into L2 (`prefetch_next_tile`) so a GEMV runs at DRAM bandwidth.
//!
//! The safe wrappers below check the slice sizes once per call (the tiles use raw pointers) and
//! that the CPU has the features, so they are sound even if called outside the dispatch table.

mod avx2;
mod avx512;
pub(crate) mod panel_scaling;
mod panels_avx2;
mod panels_avx512bw;
mod panels_avx512vnni;
mod panels_avxvnni;

pub use panels_avx2::{panel_dots_avx2, panel_dots_avx2_bits1};
pub use panels_avx512bw::panel_dots_bw;
pub use panels_avx512vnni::{has_vbmi, panel_dots_vnni};
pub use panels_avxvnni::{
    has_avxvnni, has_avxvnni_evex, panel_dots_avxvnni, panel_dots_avxvnni_evex,
};

use crate::kernel::Isa;
use crate::kernel::job::{Job, i2s_dots_entry};

impl Job<'_> {
    /// Token `t0` and the stride to the next: the x86 tiles take exactly `T` tokens (every
    /// `tile_loop!` entry has `NT = T`).
    ///
    /// # Safety
    /// `t0 + T ≤ n_tokens`: every token from `t0` then starts `n_blocks·block` readable values,
    /// as `new` checked.
    unsafe fn tokens<const T: usize>(&self, t0: usize, nt: usize) -> (*const i8, usize) {
        debug_assert_eq!(nt, T, "x86 tiles take exactly their token count");
        // SAFETY: t0 < n_tokens (see above).
        (
            unsafe { self.acts.as_ptr().add(t0 * self.stride) },
            self.stride,
        )
    }
}

/// Prefetches into L2, for block `b` (at `wb` in the tile's first row), the same block of the
/// next tile's `R` rows, one prefetch per cache line. A GEMV streams every weight byte once from
/// DRAM, but the tile reads `R` short interleaved streams that the hardware prefetchers follow
/// poorly (well below the sequential bandwidth); this keeps enough lines in flight
/// to reach it. L2 (T1), not L1: L1 prefetches hold the few L1 miss buffers and cap the rate.
/// The address may lie past the weights: a prefetch is a hint and never dereferences it.
#[inline(always)]
fn prefetch_next_tile<const L: usize, const R: usize>(wb: *const u8, rb: usize, b: usize) {
    use std::arch::x86_64::{_MM_HINT_T1, _mm_prefetch};
    if (b * (L / 4)).is_multiple_of(64) {
        for r in 0..R {
            // SAFETY: a prefetch never faults and reads no memory in the language's sense.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(wb.wrapping_add((R + r) * rb).cast()) };
        }
    }
}

i2s_dots_entry!(
    /// AVX2 (+FMA level) I2_S code dots.
    i2s_dots_avx2,
    Isa::Avx2,
    avx2::i2s_dots
);

i2s_dots_entry!(
    /// AVX-512BW I2_S code dots (`vpmaddubsw` + `vpmaddwd`).
    i2s_dots_avx512,
    Isa::Avx512,
    avx512::i2s_dots_bw
);

i2s_dots_entry!(
    /// AVX-512 VNNI I2_S code dots (`vpdpbusd`).
    i2s_dots_avx512vnni,
    Isa::Avx512Vnni,
    avx512::i2s_dots_vnni
);
