//! The panel layout (`PanelDotsFn`, levels with panel kernels): 64-row tiles, lanes = rows,
//! each tile one sequential stream, 1.6- or 2-bit codes (see the module doc of `matrix`), and
//! its run path: tasks of whole tiles, each tile × token block one kernel call whose integer
//! dots the epilogues turn into outputs.

use std::ops::Range;

use half::f16;

use super::activations::{Activations, Prepared, QuantizedActs, zero_pad};
use super::epilogue::{acc_i32, epilogue_groups, epilogue_shared, summed_groups};
use super::parallel::{SharedMut, Slots, split};
use super::scratch::{TaskScratch, WorkScratch, take};
use super::{CallScales, Outputs, Scales, SharedOutputs};
use crate::context::Context;
use crate::error::{Error, Result, try_vec};
use crate::format::{I2sVariant, Layout, Peer, Shape, i2s};
use crate::kernel::panel::{self, MAX_DOT_STEPS, PanelGeom, PanelKind, TILE_ROWS};
use crate::kernel::{Kernel, PanelDotsFn, TileScaling};
use crate::pages::PageBuf;
use crate::quant::activation::{Arith, QuantizeTokenFn};
use crate::quant::q8_0;

/// Tokens per panel-kernel call (a multiple of the prefill micro-kernel's 12 would do; one
/// block of 12 keeps the activations of a call in L1).
pub(super) const TOKEN_BLOCK: usize = 12;

/// Most dots (int32) one decode kernel call writes for its run of tiles (16 KiB: they stay in
/// L1 for the epilogue).
const RUN_DOTS: usize = 4096;

/// The weights as `n_tiles` tiles of `geom.tile_bytes()` bytes, for `PanelDotsFn`.
pub(super) struct PanelWeights {
    tiles: PageBuf,
    geom: PanelGeom,
    n_tiles: usize,
    /// The matrix's columns (`geom.cols()` pads them).
    cols: usize,
    /// Consecutive groups one weight scale covers: 1, or 2 / 4 for Q2_0 / Q1_0, whose panels
    /// have a group per 32-column Q8_0 block (`TERN_COMPAT_GGML` needs a dot per Q8_0 block;
    /// the per-token modes merge a weight block's groups into one dot).
    block_merge: usize,
    /// Per-block scales tile by tile, `[tile · scales_stride + b·64 + r % 64]` (empty with
    /// one scale): one sequential stream beside the tiles' when a GEMV streams from DRAM, in
    /// f16 (the formats' own precision: Q2_0's scale per 64 weights adds 0.25 bit per weight,
    /// not 0.5).
    scales_t: Vec<f16>,
    /// `n_blocks · 64`, or 0 when every scale is the same: then all tiles share one tile's
    /// worth, which stays in L1 (read only by `TERN_COMPAT_GGML`: the per-token modes
    /// compute such a matrix as one-scale).
    scales_stride: usize,
    kernel: Kernel<PanelDotsFn>,
}

/// The ternary values a panel build reads.
enum TernarySource<'a> {
    /// Row-major, unpacked from the format.
    Unpacked(Vec<i8>),
    /// I2_S codes, decoded on the fly from the matrix's own bytes.
    I2s(I2sVariant, &'a [u8]),
}

/// How the panel tasks of a call run the kernel (`PanelWeights::dot_runs`).
#[derive(Clone, Copy)]
pub(super) struct DotRuns {
    /// The geometry the kernel computes dots in.
    pub(super) geom: PanelGeom,
    /// Tiles per kernel call.
    pub(super) run_len: usize,
    /// Whether the kernel applies per-group scales (`TileScaling`).
    pub(super) scaled: bool,
    /// The int32 dots one kernel call needs: those of every tile of the run, or with `scaled`
    /// one tile's work space.
    pub(super) run_dots: usize,
    /// The scaled sums one kernel call returns (with `scaled`).
    pub(super) run_sums: usize,
}

impl PanelWeights {
    /// Packs the tiles (in parallel) and the tile-ordered scales of a matrix.
    pub(super) fn build(
        ctx: &Context,
        layout: Layout,
        shape: Shape,
        packed: &[u8],
        scales: &Scales,
        kind: PanelKind,
        kernel: Kernel<PanelDotsFn>,
    ) -> Result<Self> {
        let (rows, cols) = (shape.rows, shape.cols);
        let mut block_merge = 1;
        let geom = match scales {
            Scales::PerGroup { .. } => {
                let per = layout.elements_per_scale(shape);
                // ggml's Q8_0 peers need a dot per 32-column activation block.
                let group = match layout.format().spec().peer {
                    Peer::GgmlQ8_0 => q8_0::BLOCK,
                    _ => per,
                };
                debug_assert!(per.is_multiple_of(group) && cols.is_multiple_of(per));
                block_merge = per / group;
                PanelGeom {
                    kind,
                    group_steps: group / 4,
                    n_groups: cols / group,
                    merge: 1,
                }
            }
            Scales::Shared(_) => {
                let steps = cols.next_multiple_of(16) / 4;
                let n_groups = steps.div_ceil(MAX_DOT_STEPS);
                PanelGeom {
                    kind,
                    group_steps: steps
                        .div_ceil(n_groups)
                        .next_multiple_of(kind.group_step_multiple()),
                    n_groups,
                    merge: 1,
                }
            }
        };
        let n_tiles = rows.div_ceil(TILE_ROWS);
        let tile_bytes = geom.tile_bytes();
        let mut tiles = PageBuf::zeroed(n_tiles * tile_bytes, "the matrix's weight tiles")?;
        let ternary = match layout {
            Layout::I2s(v) => TernarySource::I2s(v, packed),
            _ => {
                let mut t = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
                layout.unpack(shape, packed, &mut t)?;
                TernarySource::Unpacked(t)
            }
        };
        let at = |r: usize, k: usize| -> i8 {
            if r >= rows || k >= cols {
                return 0;
            }
            match &ternary {
                TernarySource::Unpacked(t) => t[r * cols + k],
                TernarySource::I2s(v, packed) => i2s::code_at(*v, packed, r * cols + k) as i8 - 1,
            }
        };
        let out = SharedMut(tiles.as_mut_ptr());
        ctx.threads.for_each(n_tiles, |i| {
            // SAFETY: tile i's bytes are written by this task only, inside `tiles`.
            let dst = unsafe { std::slice::from_raw_parts_mut(out.at(i * tile_bytes), tile_bytes) };
            panel::pack_tile(&geom, |r, k| at(i * TILE_ROWS + r, k), dst);
        });
        let n_blocks = geom.n_groups / block_merge;
        let (scales_t, scales_stride) = tile_scales(scales, rows, n_tiles, n_blocks)?;
        Ok(Self {
            tiles,
            geom,
            n_tiles,
            cols,
            block_merge,
            scales_t,
            scales_stride,
            kernel,
        })
    }

    pub(super) fn geom(&self) -> &PanelGeom {
        &self.geom
    }

    pub(super) fn kernel_name(&self) -> &'static std::ffi::CStr {
        self.kernel.name
    }

    pub(super) fn tiles(&self) -> &[u8] {
        &self.tiles
    }

    /// Columns one weight scale covers (with per-block scales).
    pub(super) fn scale_cols(&self) -> usize {
        4 * self.geom.group_steps * self.block_merge
    }

    /// Row-major `rows × cols` ternary values into `ternary`.
    pub(super) fn unpack_ternary(&self, rows: usize, ternary: &mut [i8]) {
        let (geom, cols) = (&self.geom, self.cols);
        let tile_bytes = geom.tile_bytes();
        for r in 0..rows {
            let tile = &self.tiles[r / TILE_ROWS * tile_bytes..][..tile_bytes];
            for k in 0..cols {
                ternary[r * cols + k] = panel::code_at(geom, tile, r % TILE_ROWS, k) as i8 - 1;
            }
        }
    }

    /// How the panel tasks of a call of `n_tokens` with `arith` call the kernel.
    pub(super) fn dot_runs(
        &self,
        call_scales: CallScales,
        n_tokens: usize,
        arith: Arith,
    ) -> DotRuns {
        // One scale: the kernel sums a per-block matrix's blocks into one dot per row (as few as
        // the int32 bound allows), instead of a dot per block. Per-block scales: a dot per
        // weight block, or per Q8_0 block for ggml's Q8_0 order.
        let geom = match call_scales {
            CallScales::One(_) => summed_groups(self.geom),
            CallScales::PerGroup(_) if arith == Arith::GgmlQ8_0 => self.geom,
            CallScales::PerGroup(_) => PanelGeom {
                merge: self.block_merge,
                ..self.geom
            },
        };
        // `Codes2` and `Bits1` tile bytes do not depend on how the columns are cut into groups
        // (whole chunks follow each other group after group), so the 32-column groups of Q2_0 /
        // Q1_0 that one dot sums run as one group of the dot's width: fewer loop levels per dot.
        let geom = if geom.kind != PanelKind::Trits5 && self.block_merge > 1 {
            PanelGeom {
                group_steps: geom.group_steps * geom.merge,
                n_groups: geom.n_dots(),
                merge: 1,
                ..geom
            }
        } else {
            geom
        };
        // Decode (one token block): one kernel call streams a run of the task's tiles, so the
        // weight stream is not broken by a return and an epilogue per tile (each break stalls
        // the DRAM stream and the prefetcher); runs are capped so that what they return (dots,
        // or scaled sums) stays in L1. Prefill: one tile per call.
        let scaled = matches!(call_scales, CallScales::PerGroup(_));
        let nb = TOKEN_BLOCK.min(n_tokens);
        let tile_dots = nb * geom.n_dots() * TILE_ROWS;
        let tile_out = if scaled { nb * TILE_ROWS } else { tile_dots };
        let run_len = if n_tokens <= TOKEN_BLOCK {
            (RUN_DOTS / tile_out).max(1)
        } else {
            1
        };
        DotRuns {
            geom,
            run_len,
            scaled,
            run_dots: if scaled {
                tile_dots
            } else {
                run_len * tile_dots
            },
            run_sums: if scaled { run_len * tile_out } else { 0 },
        }
    }

    /// The panel path on activations the caller quantized: interleaved, with their per-group
    /// sums or per-token output factors, then `run_tasks`.
    pub(super) fn run(
        &self,
        ctx: &Context,
        acts: &QuantizedActs,
        call_scales: CallScales,
        out: Outputs,
        sc: &mut WorkScratch,
    ) {
        let WorkScratch {
            acts: ibuf,
            epilogue,
            slots,
        } = sc;
        let geom = self.dot_runs(call_scales, acts.n_tokens, acts.arith).geom;
        let prepared = acts.for_panels(ctx, &geom, call_scales, ibuf, epilogue);
        let (n, bs) = (acts.n_tokens, acts.block_scales);
        let call = PanelCall::new(self, ctx, acts.arith, prepared, n, bs, out);
        call.run(ctx, slots);
    }

    /// A one-token call whose tasks each quantize the token `x` themselves (`w_scale`: the
    /// matrix's one scale; see `Matrix::token_in_tasks`).
    pub(super) fn run_token(
        &self,
        ctx: &Context,
        arith: Arith,
        x: &[f32],
        w_scale: f32,
        out: Outputs,
        slots: &mut [TaskScratch],
    ) {
        let token = Prepared::Token { x, w_scale };
        let call = PanelCall::new(self, ctx, arith, token, 1, None, out);
        call.run(ctx, slots);
    }
}

/// The per-group scales in tile order and their stride per tile (see `PanelWeights`).
fn tile_scales(
    scales: &Scales,
    rows: usize,
    n_tiles: usize,
    ng: usize,
) -> Result<(Vec<f16>, usize)> {
    // Every per-block format stores f16 scales, so each converts back exactly; a value that
    // would not is refused rather than rounded.
    let exact = |v: f32, at: usize| {
        let h = f16::from_f32(v);
        if f32::from(h).to_bits() == v.to_bits() {
            Ok(h)
        } else {
            Err(Error::unsupported(format!(
                "block scale {v} (row {}, block {}) is not an f16 value: the panel layout keeps \
                 per-block scales as f16",
                at / ng.max(1),
                at % ng.max(1)
            )))
        }
    };
    Ok(match scales {
        Scales::Shared(_) => (Vec::new(), 0),
        Scales::PerGroup {
            uniform: Some(s), ..
        } => (
            try_vec(ng * TILE_ROWS, exact(*s, 0)?, "the tile scales")?,
            0,
        ),
        Scales::PerGroup {
            scales: v,
            uniform: None,
        } => {
            let mut t = try_vec(n_tiles * ng * TILE_ROWS, f16::ZERO, "the tile scales")?;
            for r in 0..rows {
                for g in 0..ng {
                    let at = r * ng + g;
                    t[((r / TILE_ROWS) * ng + g) * TILE_ROWS + r % TILE_ROWS] = exact(v[at], at)?;
                }
            }
            (t, ng * TILE_ROWS)
        }
    })
}

/// One call of the panel path: tasks of whole tiles on activations `prepared` (each task
/// streams its own contiguous weights; decode and prefill alike split rows, and token blocks
/// too when there are fewer tiles than twice the threads).
struct PanelCall<'a> {
    weights: &'a PanelWeights,
    arith: Arith,
    prepared: Prepared<'a>,
    call_scales: CallScales<'a>,
    /// The Q8_K / Q8_0 scales of `Arith::Ggml` / `GgmlQ8_0` (`QuantizedActs::block_scales`).
    block_scales: Option<&'a [f32]>,
    n_tokens: usize,
    n_blocks: usize,
    runs: DotRuns,
    /// Dots per row and token in `runs.geom`.
    row_dots: usize,
    /// The tiles that hold the requested rows.
    tiles: Range<usize>,
    /// Parts the tiles and the token blocks are split into: one task per pair.
    tile_parts: usize,
    block_parts: usize,
    out: SharedOutputs<'a>,
    /// The context's activation quantizer (`Prepared::Token` tasks quantize their own copy).
    quantize: QuantizeTokenFn,
}

/// The activations one panel task reads.
struct TaskActs<'a> {
    acts: &'a Activations<'a>,
    /// Interleaved per token block.
    ibuf: &'a [i8],
    gsums: &'a [i32],
    q8_0_offsets: Option<&'a [f32]>,
    post: &'a [f32],
}

impl<'a> PanelCall<'a> {
    fn new(
        weights: &'a PanelWeights,
        ctx: &Context,
        arith: Arith,
        prepared: Prepared<'a>,
        n_tokens: usize,
        block_scales: Option<&'a [f32]>,
        out: Outputs<'a>,
    ) -> Self {
        let n_blocks = n_tokens.div_ceil(TOKEN_BLOCK);
        let call_scales = prepared.call_scales();
        let runs = weights.dot_runs(call_scales, n_tokens, arith);
        let range = out.rows.clone();
        let (tile_lo, tile_hi) = (range.start / TILE_ROWS, range.end.div_ceil(TILE_ROWS));
        debug_assert!(tile_hi <= weights.n_tiles);
        let n_t = tile_hi - tile_lo;
        let threads = ctx.threads.count();
        // Decode: one run of consecutive tiles per thread, each one sequential stream from DRAM
        // (several runs per thread claimed in turn would restart the stream at each claim, which
        // costs more than the load balance gains). Prefill: one tile per task (≥ 2 per
        // thread), claimed in order, so the threads end together even when the tiles do not
        // divide evenly; with fewer tiles, token blocks are split too.
        let (tile_parts, block_parts) = if threads == 1 {
            (1, 1)
        } else if n_blocks == 1 {
            (n_t.min(threads), 1)
        } else if n_t >= 2 * threads {
            (n_t, 1)
        } else {
            (n_t, n_blocks.min(threads))
        };
        Self {
            weights,
            arith,
            prepared,
            call_scales,
            block_scales,
            n_tokens,
            n_blocks,
            runs,
            row_dots: runs.geom.n_dots(),
            tiles: tile_lo..tile_hi,
            tile_parts,
            block_parts,
            out: out.shared(),
            quantize: ctx.kernels.quantize_token,
        }
    }

    /// Runs every task on the context's threads.
    fn run(&self, ctx: &Context, slots: &mut [TaskScratch]) {
        let slots = Slots::new(slots);
        let task = |slot: usize, i: usize| {
            // SAFETY: tasks running at the same time have different slots.
            let ts = unsafe { slots.get(slot) };
            self.task(i, ts);
        };
        ctx.threads
            .for_each_slot(self.tile_parts * self.block_parts, task);
    }

    /// Task `i`: its part of the tiles for its part of the token blocks.
    fn task(&self, i: usize, ts: &mut TaskScratch) {
        let (tp, bp) = (i / self.block_parts, i % self.block_parts);
        let tiles_r = split(self.tiles.clone(), self.tile_parts, tp);
        let blocks_r = split(0..self.n_blocks, self.block_parts, bp);
        let TaskScratch { dots, acc, token } = ts;
        let (cols, pc) = (self.weights.cols, self.weights.geom.cols());
        let (token_scale, token_sum, token_post);
        let own;
        let acts = match self.prepared {
            Prepared::Caller {
                acts,
                ibuf,
                gsums,
                q8_0_offsets,
                post,
                ..
            } => TaskActs {
                acts,
                ibuf,
                gsums,
                q8_0_offsets,
                post,
            },
            Prepared::Token { x, w_scale } => {
                // This task's own copy of the quantized token (zero-padded).
                let arith = self.arith;
                let q = take(token, pc);
                let (s, sum) = arith.quantize_token(self.quantize, x, &mut q[..cols]);
                zero_pad(q, pc, cols, 1);
                (token_scale, token_sum) = ([s], [sum]);
                token_post = [arith.post_scale(w_scale, s)];
                own = Activations {
                    q,
                    stride: pc,
                    scales: &token_scale,
                    sums: &token_sum,
                };
                TaskActs {
                    acts: &own,
                    ibuf: own.q,
                    gsums: &[],
                    q8_0_offsets: None,
                    post: &token_post,
                }
            }
        };
        let dots = take(dots, self.runs.run_dots);
        let acc = take(acc, self.runs.run_sums);
        for run_start in tiles_r.clone().step_by(self.runs.run_len) {
            let run = run_start..(run_start + self.runs.run_len).min(tiles_r.end);
            self.tile_run(run, blocks_r.clone(), &acts, dots, acc);
        }
    }

    /// One token's outputs of a one-scale matrix in rows `rows` from their dots.
    fn epilogue_one(&self, acts: &TaskActs, t: usize, dots: &[i32], rows: &Range<usize>) {
        let bias = self.out.bias.map(|b| &b[rows.clone()]);
        let (sum, s) = (acts.acts.sums[t], acts.acts.scales[t]);
        // SAFETY: `rows` are requested rows of a tile of this task and t a token of its blocks
        // (`check_call` verified that y holds them); no other task writes them.
        let y = unsafe { self.out.rows(t, rows) };
        epilogue_shared(self.arith, dots, sum, s, acts.post[t], bias, y);
    }

    /// The kernel calls on tiles `run` for token blocks `blocks`, and their epilogues.
    fn tile_run(
        &self,
        run: Range<usize>,
        blocks: Range<usize>,
        acts: &TaskActs,
        dots: &mut [i32],
        acc: &mut [f32],
    ) {
        let PanelWeights {
            tiles,
            geom,
            block_merge,
            scales_t,
            scales_stride,
            kernel,
            ..
        } = self.weights;
        let pc = geom.cols();
        let (n_tokens, call_scales, row_dots) = (self.n_tokens, self.call_scales, self.row_dots);
        let block_scales = self.block_scales;
        let range = &self.out.rows;
        let tile_bytes = geom.tile_bytes();
        let w = &tiles[run.start * tile_bytes..run.end * tile_bytes];
        for b in blocks {
            let t0 = b * TOKEN_BLOCK;
            let nb = TOKEN_BLOCK.min(n_tokens - t0);
            let acts_b = &acts.ibuf[t0 * pc..][..nb * pc];
            let nd = row_dots;
            // Per-group scales (`scales_t` streams beside the tiles, read as each block of
            // rows and tokens is scaled).
            let mut scaling = self.runs.scaled.then(|| TileScaling {
                scales: &scales_t[run.start * scales_stride..],
                stride: *scales_stride,
                gsums: &acts.gsums[t0 * nd..][..nb * nd],
                block_scales: block_scales.map(|bs| &bs[t0 * nd..][..nb * nd]),
                q8_0_block: (self.arith == Arith::GgmlQ8_0).then_some(*block_merge),
                q8_0_offsets: acts.q8_0_offsets.map(|o| &o[t0 * nd..][..nb * nd]),
                acc: &mut acc[..run.len() * nb * TILE_ROWS],
            });
            (kernel.run)(
                &self.runs.geom,
                w,
                run.len(),
                acts_b,
                nb,
                dots,
                scaling.as_mut(),
            );
            if matches!(call_scales, CallScales::One(_)) && (nb, row_dots) == (1, 1) {
                // One token, one dot per row: the run's dots are its rows in
                // order, so one epilogue covers the whole run (per tile, its setup
                // and copy would be repeated for every 64 rows).
                let r0 = run.start * TILE_ROWS;
                let rows = range.start.max(r0)..range.end.min(run.end * TILE_ROWS);
                self.epilogue_one(acts, t0, &dots[rows.start - r0..rows.end - r0], &rows);
                continue;
            }
            for (ri, tile) in run.clone().enumerate() {
                let r0 = tile * TILE_ROWS;
                let rows = range.start.max(r0)..range.end.min(r0 + TILE_ROWS);
                let lanes = rows.start - r0..rows.end - r0;
                for tl in 0..nb {
                    let t = t0 + tl;
                    match call_scales {
                        CallScales::One(_) => {
                            let at = (ri * nb + tl) * row_dots * TILE_ROWS;
                            let d = &dots[at..][..row_dots * TILE_ROWS];
                            self.epilogue_one(acts, t, &acc_i32(d, row_dots, lanes.clone()), &rows)
                        }
                        CallScales::PerGroup(_) => {
                            let ggml = block_scales.is_some();
                            let s = if ggml { 1.0 } else { acts.acts.scales[t] };
                            epilogue_groups(
                                ggml,
                                &acc[(ri * nb + tl) * TILE_ROWS..][lanes.clone()],
                                s,
                                self.out.bias.map(|b| &b[rows.clone()]),
                                // SAFETY: as in `epilogue_one`.
                                unsafe { self.out.rows(t, &rows) },
                            );
                        }
                    }
                }
            }
        }
    }
}
