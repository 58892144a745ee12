//! The driver every SIMD I2_S row kernel shares: one validated call (`Job`), whose sizes the
//! architecture-specific tiles then rely on, the tile loop over rows × token groups
//! (`tile_loop!`), and the safe entry points (`i2s_dots_entry!`). Each architecture supplies only
//! how a tile receives its tokens (`Job::tokens`) and the tiles themselves.

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

impl Job<'_> {
    /// Start of weight row `r0`.
    ///
    /// # Safety
    /// `r0 < n_rows`: from there, rows `r0..n_rows` (`row_bytes` apart, each `row_bytes` long)
    /// are readable, as `new` checked.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) unsafe fn row(&self, r0: usize) -> *const u8 {
        // SAFETY: the offset is in bounds of `weights` (see above).
        unsafe { self.weights.as_ptr().add(r0 * self.row_bytes) }
    }

    /// Writes a tile's sums of its first `nt` tokens: `dots[(t0 + t)·n_rows + r0 + r] = sums[r][t]`.
    #[cfg_attr(
        not(any(target_arch = "x86_64", target_arch = "aarch64")),
        allow(dead_code)
    )]
    pub(crate) fn store<const R: usize, const T: usize>(
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
}

/// Expands to the tile loop of one kernel. Each entry `(NT => T, R, tile, rest)` handles a group
/// of `NT` tokens given to `T`-token tiles (`Job::tokens`: on x86 `NT = T`, on aarch64 a smaller
/// group is padded by repeating its last token): rows in groups of `R` with `tile::<L, R, T>`,
/// the remaining rows one at a time with `rest::<L, 1, T>`. Tokens go in groups of the largest
/// `NT`; the remainder takes its own entry, so every count from the largest down to 1 needs one.
/// A tile `f::<L, R, T>(w, row_bytes, toks, n_blocks)` must read only rows `w + r·row_bytes`
/// (`r < R`) and the `T` tokens `toks` describes, `n_blocks` blocks of `L` elements each.
macro_rules! tile_loop {
    ($job:expr, $l:expr, [$(($nt:literal => $t:literal, $r:literal, $tile:ident, $rest:ident)),+ $(,)?]) => {{
        let job: &mut $crate::kernel::job::Job = $job;
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
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_imports)
)]
pub(crate) use tile_loop;

/// `tile_loop!` with the block length of `variant` (128 for x86 files, 64 for ARM ones) and the
/// same tiles for both.
macro_rules! variant_tile_loop {
    ($job:expr, $variant:expr, $tiles:tt) => {
        match $variant {
            $crate::format::I2sVariant::X86 => $crate::kernel::job::tile_loop!($job, 128, $tiles),
            $crate::format::I2sVariant::Arm64 => $crate::kernel::job::tile_loop!($job, 64, $tiles),
        }
    };
}
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_imports)
)]
pub(crate) use variant_tile_loop;

/// Expands to a level's safe `I2sDotsFn` entry point: `run` with the level's `Isa` (checked on
/// every call) and its kernel.
macro_rules! i2s_dots_entry {
    ($(#[$doc:meta])* $name:ident, $isa:expr, $kernel:path) => {
        $(#[$doc])*
        pub fn $name(
            variant: $crate::format::I2sVariant,
            weights: &[u8],
            cols: usize,
            acts: &[i8],
            act_stride: usize,
            n_tokens: usize,
            dots: &mut [i32],
        ) {
            $crate::kernel::job::run(
                $isa, $kernel, variant, weights, cols, acts, act_stride, n_tokens, dots,
            );
        }
    };
}
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(unused_imports)
)]
pub(crate) use i2s_dots_entry;
