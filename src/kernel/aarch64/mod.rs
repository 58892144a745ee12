//! aarch64 SIMD kernels for I2_S code dots (`I2sDotsFn`), exact in int32 for every valid input.
//!
//! * `neon` (baseline ARMv8 Advanced SIMD): `smlal`/`smlal2` (code × act into int16 lanes) for a
//!   bounded number of blocks, then widened exactly with `sadalp` (`vpadalq_s16`). bitnet.cpp's
//!   non-dotprod path sums 32 blocks in int16 and wraps; this one never does.
//! * `dotprod` (ARMv8.2 `sdot`, via `asm!`: `vdotq_s32` is unstable on Rust 1.95): 4 products
//!   straight into each int32 lane. For one token the codes of two quarters stay in place
//!   (scaled by 16 and 4) to save decode instructions, in separate accumulators unscaled with
//!   `ssra` (see `dotprod.rs`).
//! * `i8mm` (ARMv8.6 `smmla`, via `asm!`): one instruction multiplies a 2×8 tile of codes (2 rows)
//!   by an 8×2 tile of activations (2 tokens) into a 2×2 int32 tile, twice the multiply-adds of
//!   an `sdot`. Used for ≥ 2 tokens, on activations interleaved in pairs of tokens once per call
//!   and column chunk (see `i8mm.rs`); one token takes the dotprod tiles.
//!
//! A block's codes are decoded 16 packed bytes at a time: byte `p` of a block holds elements
//! `p, p+Q, p+2Q, p+3Q` (Q = block/4) in bits 7:6, 5:4, 3:2, 1:0, so the 16 bytes at offset
//! `16·h` of a block give, for quarter `q`, the codes of elements `q·Q + 16·h + 0..16`, which
//! meet 16 contiguous activations. Quarter 0 is `ushr #6`, quarter 3 `and #3`, quarters 1 and 2
//! `ushr` + `and` (or one `and` in place when scaled).
//!
//! Every kernel works on register tiles of `R` weight rows × `T` tokens, tokens being the outer
//! loop (the tile's activations stay in L1 while the weight rows stream past), with the next
//! tile's rows prefetched into L2 as on x86 (`prefetch_next_tile`). A token group smaller than
//! its tile is padded by repeating its last token (the extra dots are computed, never stored);
//! leftover rows run one at a time. Instruction counts of the inner loops and what bounds each
//! kernel: docs/performance.md, "ARM (aarch64)".
//!
//! The safe wrappers below check the slice sizes once per call (the tiles use raw pointers) and
//! that the CPU has the features, so they are sound even if called outside the dispatch table.

mod dotprod;
mod i8mm;
mod neon;

use std::arch::aarch64::*;

use crate::format::I2sVariant;
use crate::kernel::Isa;
use crate::kernel::job::{Job, run};

impl<'a> Job<'a> {
    /// Start of weight row `r0`.
    ///
    /// # Safety
    /// `r0 < n_rows`: from there, rows `r0..n_rows` (`row_bytes` apart, each `row_bytes` long)
    /// are readable, as `new` checked.
    unsafe fn row(&self, r0: usize) -> *const u8 {
        // SAFETY: the offset is in bounds of `weights` (see above).
        unsafe { self.weights.as_ptr().add(r0 * self.row_bytes) }
    }

    /// Pointers to tokens `t0 .. t0 + nt`, padded to `T` by repeating the last one.
    ///
    /// # Safety
    /// `1 ≤ nt ≤ T` and `t0 + nt ≤ n_tokens`: every pointer then starts `n_blocks·block`
    /// readable values, as `new` checked.
    unsafe fn tokens<const T: usize>(&self, t0: usize, nt: usize) -> [*const i8; T] {
        // SAFETY: t0 + min(t, nt - 1) < n_tokens (see above).
        std::array::from_fn(|t| unsafe {
            self.acts.as_ptr().add((t0 + t.min(nt - 1)) * self.stride)
        })
    }

    /// The same call restricted to tokens `t0 .. t0 + nt` (`t0 + nt ≤ n_tokens`, `nt ≥ 1`).
    fn tokens_sub(&mut self, t0: usize, nt: usize) -> Job<'_> {
        assert!(nt >= 1 && t0 + nt <= self.n_tokens);
        Job {
            weights: self.weights,
            row_bytes: self.row_bytes,
            n_rows: self.n_rows,
            n_blocks: self.n_blocks,
            acts: &self.acts[t0 * self.stride..],
            stride: self.stride,
            n_tokens: nt,
            dots: &mut self.dots[t0 * self.n_rows..],
        }
    }

    /// Writes a tile's sums of its first `nt` tokens: `dots[(t0 + t)·n_rows + r0 + r] = sums[r][t]`.
    fn store<const R: usize, const T: usize>(
        &mut self,
        r0: usize,
        t0: usize,
        nt: usize,
        sums: [[i32; T]; R],
    ) {
        for (r, row) in sums.iter().enumerate() {
            for (t, &v) in row.iter().enumerate().take(nt) {
                self.dots[(t0 + t) * self.n_rows + r0 + r] = v;
            }
        }
    }

    /// As `store`, adding to the dots already there (a later column chunk of the same tile).
    fn accumulate<const R: usize, const T: usize>(
        &mut self,
        r0: usize,
        t0: usize,
        nt: usize,
        sums: [[i32; T]; R],
    ) {
        for (r, row) in sums.iter().enumerate() {
            for (t, &v) in row.iter().enumerate().take(nt) {
                self.dots[(t0 + t) * self.n_rows + r0 + r] += v;
            }
        }
    }
}

/// Expands to the tile loop of one kernel. Each entry `(NT => T, R, tile, rest)` handles a group
/// of `NT` tokens (padded to `T`, see `Job::tokens`): rows in groups of `R` with
/// `tile::<L, R, T>`, the remaining rows one at a time with `rest::<L, 1, T>`. Tokens go in
/// groups of the largest `NT`; the remainder takes its own entry, so every count from the
/// largest down to 1 needs one.
/// A tile `f::<L, R, T>(w, row_bytes, toks, n_blocks)` must read only rows `w + r·row_bytes`
/// (`r < R`) and the `T` tokens `toks`, `n_blocks` blocks of `L` elements each.
macro_rules! tile_loop {
    ($job:expr, $l:expr, [$(($nt:literal => $t:literal, $r:literal, $tile:ident, $rest:ident)),+ $(,)?]) => {{
        let job: &mut $crate::kernel::aarch64::Job = $job;
        let t_max = 0 $(.max($nt))+;
        let mut t0 = 0;
        while t0 < job.n_tokens {
            let nt = (job.n_tokens - t0).min(t_max);
            match nt {
                $(
                    $nt => {
                        let (rb, nb) = (job.row_bytes, job.n_blocks);
                        // SAFETY: 1 ≤ NT ≤ T and t0 + NT ≤ n_tokens.
                        let toks = unsafe { job.tokens::<$t>(t0, $nt) };
                        let mut r0 = 0;
                        while r0 < job.n_rows {
                            // SAFETY: r0 + R (or r0 + 1) ≤ n_rows and the tokens were checked,
                            // so the tile reads only rows and tokens that `Job::new` checked;
                            // the caller enabled the tile's target features.
                            unsafe {
                                let w = job.row(r0);
                                if job.n_rows - r0 >= $r {
                                    job.store(r0, t0, $nt, $tile::<{ $l }, $r, $t>(w, rb, toks, nb));
                                    r0 += $r;
                                } else {
                                    job.store(r0, t0, $nt, $rest::<{ $l }, 1, $t>(w, rb, toks, nb));
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
/// next tile's `R` rows, one prefetch per 64-byte line (the x86 kernels' scheme: the tile reads
/// `R` short interleaved streams; this keeps enough lines in flight for a GEMV to stream at
/// DRAM bandwidth). The address may lie past the weights: `prfm` is a hint and never faults.
#[inline(always)]
fn prefetch_next_tile<const L: usize, const R: usize>(wb: *const u8, rb: usize, b: usize) {
    if (b * (L / 4)).is_multiple_of(64) {
        for r in 0..R {
            let p = wb.wrapping_add((R + r) * rb);
            // SAFETY: a prefetch never faults and reads no memory in the language's sense.
            unsafe {
                std::arch::asm!("prfm pldl2keep, [{p}]", p = in(reg) p,
                    options(nostack, preserves_flags, readonly))
            };
        }
    }
}

/// The codes (0..=3) of quarter `Q` of 16 packed bytes, as int8 lanes.
#[target_feature(enable = "neon")]
#[inline]
fn codes<const Q: usize>(raw: uint8x16_t) -> int8x16_t {
    let c = match Q {
        0 => vshrq_n_u8::<6>(raw),
        1 => vandq_u8(vshrq_n_u8::<4>(raw), vdupq_n_u8(3)),
        2 => vandq_u8(vshrq_n_u8::<2>(raw), vdupq_n_u8(3)),
        _ => vandq_u8(raw, vdupq_n_u8(3)),
    };
    vreinterpretq_s8_u8(c)
}

/// 16 packed bytes at `p`.
///
/// # Safety
/// 16 bytes readable at `p`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load16(p: *const u8) -> uint8x16_t {
    // SAFETY: see the function contract.
    unsafe { vld1q_u8(p) }
}

/// 16 activations at `p`.
///
/// # Safety
/// 16 values readable at `p`.
#[target_feature(enable = "neon")]
#[inline]
unsafe fn load_acts(p: *const i8) -> int8x16_t {
    // SAFETY: see the function contract.
    unsafe { vld1q_s8(p) }
}

/// Baseline NEON I2_S code dots (`smlal` into int16, widened by `sadalp`).
pub fn i2s_dots_neon(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::Neon,
        neon::i2s_dots,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}

/// Dotprod (`sdot`) I2_S code dots.
pub fn i2s_dots_dotprod(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::Dotprod,
        dotprod::i2s_dots,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}

/// I8MM (`smmla`) I2_S code dots; one token uses the dotprod tiles.
pub fn i2s_dots_i8mm(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    run(
        Isa::I8mm,
        i8mm::i2s_dots,
        variant,
        weights,
        cols,
        acts,
        act_stride,
        n_tokens,
        dots,
    );
}
