//! The one panel driver (`PanelDotsFn`): checks a call, walks its run of tiles, cuts the tokens
//! into blocks and dispatches each block to a const-generic micro-kernel of one ISA. The ISA
//! files (`kernel::x86::panels_*`) implement `PanelMicroKernel` with the instruction-level code
//! only: decode a chunk of codes, multiply-accumulate, store.
//!
//! Everything here is `#[inline(always)]` and generic over the micro-kernel, so that each ISA's
//! `#[target_feature]` entry point (`PanelMicroKernel::run`, which calls `run_tiles`) compiles the
//! whole loop nest with that ISA's features and inlines the micro-kernels into it. An ISA file
//! declares its family with `panel_micro_kernel!` (one row: blocking, features, micro-kernels).

use std::arch::x86_64::*;

use super::{MAX_DOT_STEPS, PANEL_ROWS, PANELS, PanelGeom, PanelKind, TILE_ROWS, VEC_BYTES};
use crate::kernel::TileScaling;
use crate::kernel::x86::panel_scaling::scale_block;

/// How far ahead (bytes) the decode micro-kernels prefetch the weight stream: ~one DRAM latency
/// × bandwidth, past what the out-of-order window and the hardware prefetchers cover.
/// Tiles are contiguous, so the prefetch runs on into the next tile, up to the end of the run.
const DECODE_PREFETCH: usize = 4096;

/// How far ahead (bytes) `Ptrs::prefetch_ahead_l2` prefetches into L2, for micro-kernels whose
/// decode costs more per byte: even when memory-bound they have little slack to catch up after a
/// slow burst of DRAM latency, and the deeper L2 queue absorbs those.
const DECODE_PREFETCH_L2: usize = 12 << 10;

/// Most tokens of one block that any micro-kernel takes (the arms of `run_tiles`' dispatch).
const T_LIMIT: usize = 12;

/// Raw pointers of one validated call.
#[derive(Clone, Copy)]
pub(crate) struct Ptrs {
    pub(crate) tile: *const u8,
    pub(crate) acts: *const i8,
    pub(crate) dots: *mut i32,
    /// Tokens of the whole call (the activation interleave and the `dots` rows).
    pub(crate) nt: usize,
    /// `geom.n_dots()`, computed once per call (a division, which the dot loops would
    /// otherwise repeat).
    pub(crate) nd: usize,
    /// Where in `dots` the sums go (`dot_at`).
    pub(crate) strides: DotStrides,
    /// The end of the run's weights: prefetches stop there (past it they would fetch another
    /// thread's tiles or unrelated memory, a sizeable share of a small GEMV's traffic).
    pub(crate) end: *const u8,
    /// The call's per-group scales: then `dots` is one tile's work space and every block of
    /// rows and tokens is scaled into `ScalePtrs::acc` as soon as its dots are complete.
    pub(crate) scaling: Option<ScalePtrs>,
}

/// The layout of `Ptrs::dots`, in int32 steps: sum (token `t`, dot `d`, tile row `r`) at
/// `t·t + d·d + (r / 16)·panel + r % 16`.
#[derive(Clone, Copy)]
pub(crate) struct DotStrides {
    pub(crate) t: usize,
    pub(crate) d: usize,
    pub(crate) panel: usize,
}

impl DotStrides {
    /// `PanelDotsFn`'s output: `[(t·n_dots + d)·64 + r]`.
    fn output(nd: usize) -> Self {
        Self {
            t: nd * TILE_ROWS,
            d: TILE_ROWS,
            panel: PANEL_ROWS,
        }
    }

    /// The work space of a scaled call, panel-major: the sums a block of one panel and its tokens
    /// scales are consecutive 64-byte lines. (In the output layout a panel's line of one dot is
    /// every fourth line: 256 bytes apart, they fall into a quarter of L1's sets, and a block of
    /// many short dots, Q2_0's 80 per row at 2560 columns, misses L1.)
    fn work(nt: usize, nd: usize) -> Self {
        Self {
            t: nd * PANEL_ROWS,
            d: PANEL_ROWS,
            panel: nt * nd * PANEL_ROWS,
        }
    }
}

/// The raw pointers of a checked `TileScaling` (`scales` and `acc` at the current tile).
#[derive(Clone, Copy)]
pub(crate) struct ScalePtrs {
    pub(crate) scales: *const half::f16,
    pub(crate) stride: usize,
    pub(crate) gsums: *const i32,
    /// Null without block scales.
    pub(crate) block_scales: *const f32,
    /// Dots per weight block in ggml's Q8_0 order; 0 for the per-dot formula.
    pub(crate) q8_0_block: usize,
    /// `TileScaling::q8_0_offsets`; null without them.
    pub(crate) q8_0_offsets: *const f32,
    pub(crate) acc: *mut f32,
    /// Whether the micro-kernels scale each dot as it ends (`PanelMicroKernel::scales_dots`),
    /// rather than the driver each block once its dots are complete (`scale_block`).
    pub(crate) in_kernel: bool,
}

impl Ptrs {
    /// Prefetches the weight line `DECODE_PREFETCH` bytes after `at`, if it is in the run.
    #[inline(always)]
    pub(crate) fn prefetch_ahead(self, at: *const u8) {
        let line = at.wrapping_add(DECODE_PREFETCH);
        if line < self.end {
            // SAFETY: a prefetch reads no memory in the language's sense and never faults.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(line.cast()) };
        }
    }

    /// Prefetches the weight line `DECODE_PREFETCH_L2` bytes after `at` into L2, if it is in
    /// the run.
    #[inline(always)]
    pub(crate) fn prefetch_ahead_l2(self, at: *const u8) {
        let line = at.wrapping_add(DECODE_PREFETCH_L2);
        if line < self.end {
            // SAFETY: as `prefetch_ahead`.
            unsafe { _mm_prefetch::<_MM_HINT_T1>(line.cast()) };
        }
    }

    /// The 4 activations of token `t` at k-step `ks`, as one dword.
    ///
    /// # Safety
    /// `(ks·nt + t)·4 + 4` bytes readable at `acts`.
    #[inline(always)]
    pub(crate) unsafe fn act_dword(self, ks: usize, t: usize) -> i32 {
        // SAFETY: see the function contract.
        unsafe { std::ptr::read_unaligned(self.acts.add((ks * self.nt + t) * 4).cast::<i32>()) }
    }

    /// Where, in `dots`, the sum of token `t`, dot `d`, tile row `row` goes.
    #[inline(always)]
    pub(crate) fn dot_at(self, t: usize, d: usize, row: usize) -> *mut i32 {
        let st = self.strides;
        self.dots
            .wrapping_add(t * st.t + d * st.d + row / PANEL_ROWS * st.panel + row % PANEL_ROWS)
    }

    /// The pointers of tile `i` of the run: its weights and its block of `dots`, or with a
    /// scaling its scales and results (the dots' work space is the same for every tile).
    #[inline(always)]
    fn tile(self, geom: &PanelGeom, i: usize) -> Ptrs {
        let tile = self.tile.wrapping_add(i * geom.tile_bytes());
        match self.scaling {
            None => Ptrs {
                tile,
                dots: self.dots.wrapping_add(i * self.nt * self.nd * TILE_ROWS),
                ..self
            },
            Some(s) => Ptrs {
                tile,
                scaling: Some(ScalePtrs {
                    scales: s.scales.wrapping_add(i * s.stride),
                    acc: s.acc.wrapping_add(i * self.nt * TILE_ROWS),
                    ..s
                }),
                ..self
            },
        }
    }

    /// Scales the dots of panels `p0..p0+P` × tokens `t0..t0+n` (just computed) into the
    /// results, when the call has a scaling.
    ///
    /// # Safety
    /// `ptrs` checked (with the scaling) for the call; the block's dots complete.
    #[inline(always)]
    unsafe fn scale<const P: usize>(self, p0: usize, t0: usize, n: usize) {
        if let Some(s) = self.scaling
            && !s.in_kernel
        {
            // SAFETY: the function contract.
            unsafe { scale_block::<P>(&s, self, p0, t0..t0 + n) }
        }
    }
}

/// One ISA's micro-kernels for one panel layout, and how the driver blocks tokens for them: a
/// block of `T ≤ T_MAX` tokens runs `one_token` for each token up to `T_SINGLE` tokens, covers
/// all 4 panels in one `block::<4, T>` call up to `T_WIDE`, in two `block::<2, T>` calls up to
/// `T_HALF`, else in four `block::<1, T>` calls (fewer panels per call leave registers for more
/// tokens' accumulators).
pub(crate) trait PanelMicroKernel {
    /// The layout it decodes.
    const KIND: PanelKind;
    /// Most tokens of one block (at most `T_LIMIT`).
    const T_MAX: usize;
    /// Blocks of up to this many tokens run all 4 panels per call.
    const T_WIDE: usize;
    /// Blocks of up to this many tokens (and more than `T_WIDE`) run 2 panels per call.
    const T_HALF: usize;
    /// What the CPU lacks when `cpu_ok` is false: the panic message of a refused call.
    const NEEDS: &'static str;

    /// Whether this CPU has the features `run` is compiled for.
    fn cpu_ok() -> bool;

    /// The `#[target_feature]` entry point: `run_tiles::<Self>`, compiled for the ISA.
    ///
    /// # Safety
    /// The CPU has the features (`cpu_ok`); `ptrs` checked by `checked_ptrs` for `n_tiles`
    /// tiles of `geom`.
    unsafe fn run(ptrs: Ptrs, geom: &PanelGeom, n_tiles: usize);

    /// Panels `p0..p0+P` × tokens `t0..t0+T` of one tile, every dot.
    ///
    /// # Safety
    /// The CPU has the features; `ptrs` (one tile) checked against `geom`; `p0 + P ≤ 4`,
    /// `t0 + T ≤ nt`.
    unsafe fn block<const P: usize, const T: usize>(
        ptrs: Ptrs,
        geom: &PanelGeom,
        p0: usize,
        t0: usize,
    );

    /// Whether a call of exactly one token (decode) runs `one_token`, a micro-kernel of its
    /// own, rather than the blocks below (where a one-token block takes `block::<4, 1>`).
    const ONE_TOKEN_CALLS: bool = false;
    /// Blocks of up to this many tokens run `one_token` token by token (its one call site),
    /// larger ones `block`.
    const T_SINGLE: usize = 0;

    /// Whether the micro-kernels scale the dots of `geom` in a call with a scaling as each dot
    /// ends (the running results in `ScalePtrs::acc`, no dots written; `ScalePtrs::in_kernel`);
    /// else the driver scales each block (`scale_block`).
    fn scales_dots(_geom: &PanelGeom) -> bool {
        false
    }

    /// Token `t0` of one tile alone (used where `ONE_TOKEN_CALLS` or `T_SINGLE`).
    ///
    /// # Safety
    /// As `block` with `T = 1`.
    #[inline(always)]
    unsafe fn one_token(ptrs: Ptrs, geom: &PanelGeom, t0: usize) {
        // SAFETY: the caller's contract.
        unsafe { Self::block::<PANELS, 1>(ptrs, geom, 0, t0) }
    }
}

/// `match $n` over the token counts `1..=T_LIMIT`, each arm running `$call` with the const
/// `$t` set to its count; counts for which `$tier` (of `$t`) is false cannot occur (the caller
/// chose the tier from `$n`), so their arms compile to nothing.
macro_rules! by_tokens {
    ($n:expr, $t:ident if $tier:expr => $call:expr) => {
        by_tokens!(@arms $n, $t, $tier, $call, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12])
    };
    (@arms $n:expr, $t:ident, $tier:expr, $call:expr, [$($count:literal),*]) => {
        match $n {
            $(
                $count => {
                    const $t: usize = $count;
                    if const { $tier } {
                        $call
                    } else {
                        // SAFETY: the caller chose this tier because `$n` lies in it.
                        unsafe { std::hint::unreachable_unchecked() }
                    }
                }
            )*
            // SAFETY: the caller's blocks have 1 ..= T_MAX ≤ T_LIMIT tokens.
            _ => unsafe { std::hint::unreachable_unchecked() },
        }
    };
}

/// Tokens `t0..t0+n` of one tile, `1 ≤ n ≤ K::T_MAX`, in the calls `PanelMicroKernel`
/// describes; the panel loop of a tier runs outside the match on `n`.
///
/// # Safety
/// As `PanelMicroKernel::block`.
#[inline(always)]
unsafe fn token_block<K: PanelMicroKernel>(ptrs: Ptrs, geom: &PanelGeom, t0: usize, n: usize) {
    // SAFETY (all calls): the panels lie in the tile, tokens within the caller's contract.
    // With a scaling, each call's block is scaled while its dots are in L1.
    if n <= K::T_SINGLE {
        for t in t0..t0 + n {
            unsafe {
                K::one_token(ptrs, geom, t);
                ptrs.scale::<PANELS>(0, t, 1);
            }
        }
    } else if n <= K::T_WIDE {
        by_tokens!(n, T if K::T_SINGLE < T && T <= K::T_WIDE => unsafe {
            K::block::<PANELS, T>(ptrs, geom, 0, t0);
            ptrs.scale::<PANELS>(0, t0, T);
        })
    } else if n <= K::T_HALF {
        for p0 in [0, 2] {
            by_tokens!(n, T if K::T_WIDE < T && T <= K::T_HALF => unsafe {
                K::block::<2, T>(ptrs, geom, p0, t0);
                ptrs.scale::<2>(p0, t0, T);
            })
        }
    } else {
        for p0 in 0..PANELS {
            by_tokens!(n, T if K::T_HALF < T && T <= K::T_MAX => unsafe {
                K::block::<1, T>(ptrs, geom, p0, t0);
                ptrs.scale::<1>(p0, t0, T);
            })
        }
    }
}

/// Every tile of a run: its one-token kernel for a one-token call (`ONE_TOKEN_CALLS`), else
/// blocks of up to `K::T_MAX` tokens, each dispatched to the micro-kernels of its exact token
/// count.
///
/// # Safety
/// As `PanelMicroKernel::run`; inlined into it, so compiled with the ISA's features.
#[inline(always)]
pub(crate) unsafe fn run_tiles<K: PanelMicroKernel>(ptrs: Ptrs, geom: &PanelGeom, n_tiles: usize) {
    const {
        assert!(K::T_SINGLE <= K::T_WIDE && K::T_WIDE <= K::T_HALF);
        assert!(K::T_HALF <= K::T_MAX && K::T_MAX <= T_LIMIT);
    }
    for i in 0..n_tiles {
        let ptrs = ptrs.tile(geom, i);
        // A constant condition first: without a kernel of its own, a one-token call takes the
        // one call site of `block::<4, 1>` below (a second one would stop its inlining).
        if K::ONE_TOKEN_CALLS && ptrs.nt == 1 {
            // SAFETY: one token, tile i of the checked run.
            unsafe {
                K::one_token(ptrs, geom, 0);
                ptrs.scale::<PANELS>(0, 0, 1);
            }
            continue;
        }
        let mut t0 = 0;
        while t0 < ptrs.nt {
            let n = (ptrs.nt - t0).min(K::T_MAX);
            // SAFETY: t0 + n ≤ nt, 1 ≤ n ≤ T_MAX, tile i of the checked run.
            unsafe { token_block::<K>(ptrs, geom, t0, n) };
            t0 += n;
        }
    }
}

const _: () = assert!(T_LIMIT == 12);

/// Checks one call's sizes (the micro-kernels use raw pointers) and returns its pointers, or
/// `None` when there is nothing to do (no tokens).
fn checked_ptrs(
    geom: &PanelGeom,
    tiles: &[u8],
    n_tiles: usize,
    acts: &[i8],
    n_tokens: usize,
    dots: &mut [i32],
    scaling: Option<&mut TileScaling>,
) -> Option<Ptrs> {
    assert!(
        geom.kind == PanelKind::Trits5
            || geom.group_steps.is_multiple_of(geom.kind.steps_per_chunk()),
        "{} need whole chunks of {} k-steps per group (got {})",
        geom.kind.name(),
        geom.kind.steps_per_chunk(),
        geom.group_steps
    );
    assert!(geom.group_steps > 0, "empty groups");
    assert!(
        geom.merge > 0
            && geom.n_groups.is_multiple_of(geom.merge)
            && geom.merge * geom.group_steps <= MAX_DOT_STEPS,
        "panel kernel: {} groups of {} k-steps cannot be summed {} at a time",
        geom.n_groups,
        geom.group_steps,
        geom.merge
    );
    let tile_bytes = n_tiles.checked_mul(geom.tile_bytes());
    assert!(
        tile_bytes.is_some_and(|n| tiles.len() >= n),
        "panel kernel: tiles hold {} bytes, {n_tiles} tiles of {} needed",
        tiles.len(),
        geom.tile_bytes()
    );
    assert!(
        acts.len() >= n_tokens * geom.cols(),
        "panel kernel: acts holds {} values, {} needed",
        acts.len(),
        n_tokens * geom.cols()
    );
    // With a scaling the dots are one tile's work space.
    let dot_tiles = if scaling.is_some() { 1 } else { n_tiles };
    let n_dots = dot_tiles * n_tokens * geom.n_dots() * TILE_ROWS;
    assert!(
        dots.len() >= n_dots,
        "panel kernel: dots holds {} values, {n_dots} needed",
        dots.len(),
    );
    let scaling = scaling.map(|job| checked_scaling(geom, n_tiles, n_tokens, job));
    const _: () = assert!(VEC_BYTES == 64 && TILE_ROWS == 64);
    (n_tokens > 0).then_some(Ptrs {
        tile: tiles.as_ptr(),
        end: tiles.as_ptr().wrapping_add(n_tiles * geom.tile_bytes()),
        acts: acts.as_ptr(),
        dots: dots.as_mut_ptr(),
        nt: n_tokens,
        nd: geom.n_dots(),
        strides: if scaling.is_some() {
            DotStrides::work(n_tokens, geom.n_dots())
        } else {
            DotStrides::output(geom.n_dots())
        },
        scaling,
    })
}

/// Checks a `TileScaling` against a call's geometry and returns its pointers.
fn checked_scaling(
    geom: &PanelGeom,
    n_tiles: usize,
    n_tokens: usize,
    job: &mut TileScaling,
) -> ScalePtrs {
    let nd = geom.n_dots();
    let per_block = job.q8_0_block.unwrap_or(1);
    assert!(
        per_block > 0 && nd.is_multiple_of(per_block),
        "panel kernel: {nd} dots do not make weight blocks of {per_block}"
    );
    let scales = n_tiles
        .saturating_sub(1)
        .checked_mul(job.stride)
        .and_then(|n| n.checked_add(nd / per_block * TILE_ROWS));
    let sums = n_tokens * nd;
    assert!(
        scales.is_some_and(|n| job.scales.len() >= n)
            && job.gsums.len() >= sums
            && job.block_scales.is_none_or(|b| b.len() >= sums)
            && (job.q8_0_block.is_none() || job.block_scales.is_some())
            && job
                .q8_0_offsets
                .is_none_or(|o| job.q8_0_block.is_some() && o.len() >= sums)
            && job.acc.len() >= n_tiles * n_tokens * TILE_ROWS,
        "panel kernel: the scales of {n_tiles} tiles × {n_tokens} tokens × {nd} dots (blocks of \
         {per_block}) need {scales:?} weight scales (got {}), {sums} sums (got {}), {sums} block \
         scales (got {:?}, required by the Q8_0 order), {sums} offsets if any (got {:?}, in the \
         Q8_0 order only) and {} results (got {})",
        job.scales.len(),
        job.gsums.len(),
        job.block_scales.map(<[f32]>::len),
        job.q8_0_offsets.map(<[f32]>::len),
        n_tiles * n_tokens * TILE_ROWS,
        job.acc.len()
    );
    ScalePtrs {
        scales: job.scales.as_ptr(),
        stride: job.stride,
        gsums: job.gsums.as_ptr(),
        block_scales: job.block_scales.map_or(std::ptr::null(), <[f32]>::as_ptr),
        q8_0_block: job.q8_0_block.unwrap_or(0),
        q8_0_offsets: job.q8_0_offsets.map_or(std::ptr::null(), <[f32]>::as_ptr),
        acc: job.acc.as_mut_ptr(),
        in_kernel: false,
    }
}

/// The `PanelDotsFn` of micro-kernel `K`: checks the call's sizes, its layout and the CPU, then
/// runs `K` over the tiles.
pub(crate) fn panel_dots<K: PanelMicroKernel>(
    geom: &PanelGeom,
    tiles: &[u8],
    n_tiles: usize,
    acts: &[i8],
    n_tokens: usize,
    dots: &mut [i32],
    scaling: Option<&mut TileScaling>,
) {
    let ptrs = checked_ptrs(geom, tiles, n_tiles, acts, n_tokens, dots, scaling);
    assert!(
        geom.kind == K::KIND,
        "this panel kernel runs {}, not {} (1.6-bit panels need AVX-512 VNNI and VBMI; 1-bit \
         panels run on the AVX2 level)",
        K::KIND.name(),
        geom.kind.name()
    );
    let Some(mut ptrs) = ptrs else {
        return;
    };
    if let Some(s) = &mut ptrs.scaling {
        // The micro-kernels scale the Q8_0 order with the offsets' fused multiply-adds; without
        // exact offsets (an infinite activation scale) the driver scales in the oracle's form.
        s.in_kernel = K::scales_dots(geom) && (s.q8_0_block == 0 || !s.q8_0_offsets.is_null());
    }
    if !K::cpu_ok() {
        // A message without arguments, as the other refusals.
        std::panic::panic_any(K::NEEDS);
    }
    // SAFETY: features checked, sizes checked.
    unsafe { K::run(ptrs, geom, n_tiles) }
}

/// Declares one ISA's micro-kernel family for one layout: the struct, its `PanelMicroKernel`
/// row (token blocking, `#[target_feature]` entry, CPU check, micro-kernels) and, where named,
/// its public `PanelDotsFn`. The micro-kernels are functions of the ISA file:
/// `$block::<P, T>(ptrs, geom, p0, t0)` and `$one(ptrs, geom, t0)`.
macro_rules! panel_micro_kernel {
    (
        $(#[$attr:meta])*
        struct $name:ident: $kind:ident, tokens $t_wide:expr, $t_half:expr, $t_max:expr;
        features $features:literal, cpu $cpu:expr, needs $needs:expr;
        block $block:ident $(, one token $one:ident: calls $calls:literal, blocks $single:expr)?;
        $(scales dots $scales_dots:ident;)?
        $($(#[$fn_attr:meta])* pub fn $dots:ident;)?
    ) => {
        $(#[$attr])*
        pub(super) struct $name;

        impl $crate::kernel::panel::driver::PanelMicroKernel for $name {
            const KIND: $crate::kernel::panel::PanelKind = $crate::kernel::panel::PanelKind::$kind;
            const T_WIDE: usize = $t_wide;
            const T_HALF: usize = $t_half;
            const T_MAX: usize = $t_max;
            const NEEDS: &'static str = $needs;

            fn cpu_ok() -> bool {
                $cpu
            }

            #[target_feature(enable = $features)]
            unsafe fn run(
                ptrs: $crate::kernel::panel::driver::Ptrs,
                geom: &$crate::kernel::panel::PanelGeom,
                n_tiles: usize,
            ) {
                // SAFETY: the caller's contract.
                unsafe { $crate::kernel::panel::driver::run_tiles::<Self>(ptrs, geom, n_tiles) }
            }

            #[inline(always)]
            unsafe fn block<const P: usize, const T: usize>(
                ptrs: $crate::kernel::panel::driver::Ptrs,
                geom: &$crate::kernel::panel::PanelGeom,
                p0: usize,
                t0: usize,
            ) {
                // SAFETY: the caller's contract (the features: `run` inlines this).
                unsafe { $block::<P, T>(ptrs, geom, p0, t0) }
            }

            $(
                fn scales_dots(geom: &$crate::kernel::panel::PanelGeom) -> bool {
                    $scales_dots(geom)
                }
            )?

            $(
                const ONE_TOKEN_CALLS: bool = $calls;
                const T_SINGLE: usize = $single;

                #[inline(always)]
                unsafe fn one_token(
                    ptrs: $crate::kernel::panel::driver::Ptrs,
                    geom: &$crate::kernel::panel::PanelGeom,
                    t0: usize,
                ) {
                    // SAFETY: as `block`.
                    unsafe { $one(ptrs, geom, t0) }
                }
            )?
        }

        $(
            $(#[$fn_attr])*
            pub fn $dots(
                geom: &$crate::kernel::panel::PanelGeom,
                tiles: &[u8],
                n_tiles: usize,
                acts: &[i8],
                n_tokens: usize,
                dots: &mut [i32],
                scaling: Option<&mut $crate::kernel::TileScaling>,
            ) {
                $crate::kernel::panel::driver::panel_dots::<$name>(
                    geom, tiles, n_tiles, acts, n_tokens, dots, scaling,
                );
            }
        )?
    };
}
pub(crate) use panel_micro_kernel;
