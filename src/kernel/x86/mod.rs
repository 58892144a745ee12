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
mod panels_avx2;
mod panels_avx512bw;
mod panels_avx512vnni;
mod panels_avxvnni;

pub use panels_avx2::{panel_dots_avx2, scale_groups_avx2, scale_q8_0_avx2};
pub use panels_avx512bw::panel_dots_bw;
pub use panels_avx512vnni::{has_vbmi, panel_dots_vnni};
pub use panels_avxvnni::{
    has_avxvnni, has_avxvnni_evex, panel_dots_avxvnni, panel_dots_avxvnni_evex,
};

use crate::format::I2sVariant;
use crate::kernel::Isa;
use crate::kernel::job::{Job, run};

impl<'a> Job<'a> {
    /// Start of weight row `r0` and of token `t0`.
    ///
    /// # Safety
    /// `r0 < n_rows` and `t0 < n_tokens`: from there, rows `r0..n_rows` (`row_bytes` apart, each
    /// `row_bytes` long) and tokens `t0..n_tokens` (`stride` apart, each `n_blocks·block` long)
    /// are readable, as `new` checked.
    unsafe fn at(&self, r0: usize, t0: usize) -> (*const u8, *const i8) {
        // SAFETY: both offsets are in bounds of their slices (see above).
        unsafe {
            (
                self.weights.as_ptr().add(r0 * self.row_bytes),
                self.acts.as_ptr().add(t0 * self.stride),
            )
        }
    }

    /// Writes a tile's sums: `dots[(t0 + t)·n_rows + r0 + r] = sums[r][t]`.
    fn store<const R: usize, const T: usize>(&mut self, r0: usize, t0: usize, sums: [[i32; T]; R]) {
        for (r, row) in sums.iter().enumerate() {
            for (t, &v) in row.iter().enumerate() {
                self.dots[(t0 + t) * self.n_rows + r0 + r] = v;
            }
        }
    }
}

/// Expands to the tile loop of one kernel. `[(T, R), ...]` lists every token count `T` from the
/// largest down to 1 with the rows `R` of its tile: tokens go in groups of the largest `T` (the
/// remainder takes its own entry), rows in groups of `R` and then one by one.
/// `$tile::<L, R, T>(w, row_bytes, a, stride, n_blocks)` must read only rows `w + r·row_bytes`
/// (`r < R`) and tokens `a + t·stride` (`t < T`), `n_blocks` blocks of `L` elements each.
macro_rules! tile_loop {
    ($job:expr, $tile:ident, $l:expr, [$(($t:literal, $r:literal)),+ $(,)?]) => {{
        let job: &mut $crate::kernel::x86::Job = $job;
        let t_max = 0 $(.max($t))+;
        let mut t0 = 0;
        while t0 < job.n_tokens {
            let nt = (job.n_tokens - t0).min(t_max);
            match nt {
                $(
                    $t => {
                        let mut r0 = 0;
                        while r0 < job.n_rows {
                            let (rb, st, nb) = (job.row_bytes, job.stride, job.n_blocks);
                            // SAFETY: r0 + R (or r0 + 1) ≤ n_rows and t0 + T ≤ n_tokens, so
                            // the tile reads only rows and tokens that `Job::new` checked; the
                            // caller enabled the tile's target features.
                            unsafe {
                                let (w, a) = job.at(r0, t0);
                                if job.n_rows - r0 >= $r {
                                    job.store(r0, t0, $tile::<{ $l }, $r, $t>(w, rb, a, st, nb));
                                    r0 += $r;
                                } else {
                                    job.store(r0, t0, $tile::<{ $l }, 1, $t>(w, rb, a, st, nb));
                                    r0 += 1;
                                }
                            }
                        }
                    }
                )+
                _ => unreachable!("no tile for {nt} tokens"),
            }
            t0 += nt;
        }
    }};
}
pub(crate) use tile_loop;

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

/// AVX2 (+FMA level) I2_S code dots.
pub fn i2s_dots_avx2(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::Avx2,
        avx2::i2s_dots,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}

/// AVX-512BW I2_S code dots (`vpmaddubsw` + `vpmaddwd`).
pub fn i2s_dots_avx512(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::Avx512,
        avx512::i2s_dots_bw,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}

/// AVX-512 VNNI I2_S code dots (`vpdpbusd`).
pub fn i2s_dots_avx512vnni(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::Avx512Vnni,
        avx512::i2s_dots_vnni,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}
