//! Scalar reference kernels: the oracle every SIMD and GPU path is tested against. Written for
//! obviousness first; plain loops that the compiler may vectorize.

use crate::format::{I2sVariant, i2s};
use crate::kernel::panel::{self, PanelGeom, TILE_ROWS};
use crate::kernel::{GroupScales, TileScaling};

pub fn i2s_dots(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
) {
    let row_bytes = cols / 4;
    let n_rows = weights.len() / row_bytes;
    let block = variant.block_len();
    // One block of decoded codes at a time, on the stack: the raw ggml tier may run this kernel
    // and must not allocate.
    let mut codes = [0u8; 128];
    let codes = &mut codes[..block];
    for (r, row) in weights.chunks_exact(row_bytes).enumerate() {
        for t in 0..n_tokens {
            dots[t * n_rows + r] = 0;
        }
        for b in 0..cols / block {
            for (j, code) in codes.iter_mut().enumerate() {
                *code = i2s::code_at(variant, row, b * block + j);
            }
            for t in 0..n_tokens {
                let act = &acts[t * act_stride + b * block..][..block];
                let sum: i32 = codes
                    .iter()
                    .zip(act)
                    .map(|(&c, &a)| c as i32 * a as i32)
                    .sum();
                dots[t * n_rows + r] += sum;
            }
        }
    }
}

/// Panel dots (`PanelDotsFn`) through the layout's reference decoder `panel::code_at`; with a
/// scaling, each tile's dots through `scale_groups` or `scale_q8_0`.
pub fn panel_dots(
    geom: &PanelGeom,
    tiles: &[u8],
    n_tiles: usize,
    acts: &[i8],
    n_tokens: usize,
    dots: &mut [i32],
    mut scaling: Option<&mut TileScaling>,
) {
    let k_dot = 4 * geom.group_steps * geom.merge;
    let act = |t: usize, k: usize| acts[(k / 4 * n_tokens + t) * 4 + k % 4] as i32;
    let nd = geom.n_dots();
    let per_tile = n_tokens * nd * TILE_ROWS;
    for i in 0..n_tiles {
        let tile = &tiles[i * geom.tile_bytes()..][..geom.tile_bytes()];
        // With a scaling, `dots` is one tile's work space.
        let at = if scaling.is_some() { 0 } else { i * per_tile };
        let dots = &mut dots[at..][..per_tile];
        for d in 0..nd {
            for r in 0..TILE_ROWS {
                let codes: Vec<i32> = (d * k_dot..(d + 1) * k_dot)
                    .map(|k| panel::code_at(geom, tile, r, k) as i32)
                    .collect();
                for t in 0..n_tokens {
                    dots[(t * nd + d) * TILE_ROWS + r] = codes
                        .iter()
                        .enumerate()
                        .map(|(i, &c)| c * act(t, d * k_dot + i))
                        .sum();
                }
            }
        }
        if let Some(TileScaling {
            scales,
            stride,
            gsums,
            block_scales,
            q8_0_block,
            // The oracle computes each product in the formula's own form.
            q8_0_offsets: _,
            acc,
        }) = scaling.as_deref_mut()
        {
            let n_scales = nd / q8_0_block.unwrap_or(1) * TILE_ROWS;
            let scales: Vec<f32> = scales[i * *stride..][..n_scales]
                .iter()
                .map(|&s| f32::from(s))
                .collect();
            let job = GroupScales {
                n_groups: nd,
                n_tokens,
                dots,
                gsums,
                scales: &scales,
                block_scales: *block_scales,
            };
            let acc = &mut acc[i * n_tokens * TILE_ROWS..][..n_tokens * TILE_ROWS];
            match q8_0_block {
                Some(per_block) => scale_q8_0(&job, *per_block, acc),
                None => scale_groups(&job, acc),
            }
        }
    }
}

/// Per-group weight scales of one tile (`TileScaling` without `q8_0_block`).
pub fn scale_groups(job: &GroupScales, acc: &mut [f32]) {
    let ng = job.n_groups;
    for t in 0..job.n_tokens {
        let acc = &mut acc[t * TILE_ROWS..][..TILE_ROWS];
        acc.fill(0.0);
        for g in 0..ng {
            let tg = t * ng + g;
            let d = &job.dots[tg * TILE_ROWS..][..TILE_ROWS];
            let w = &job.scales[g * TILE_ROWS..][..TILE_ROWS];
            for ((a, &d), &w) in acc.iter_mut().zip(d).zip(w) {
                let s = match job.block_scales {
                    Some(bs) => bs[tg] * w,
                    None => w,
                };
                *a += (d - job.gsums[tg]) as f32 * s;
            }
        }
    }
}

/// ggml's Q8_0-order block scales of one tile (`TileScaling` with `q8_0_block`).
pub fn scale_q8_0(job: &GroupScales, per_block: usize, acc: &mut [f32]) {
    let ng = job.n_groups;
    let bs = job.block_scales.expect("Q8_0 block scales");
    for t in 0..job.n_tokens {
        let acc = &mut acc[t * TILE_ROWS..][..TILE_ROWS];
        acc.fill(0.0);
        for b in 0..ng / per_block {
            let w = &job.scales[b * TILE_ROWS..][..TILE_ROWS];
            for (l, a) in acc.iter_mut().enumerate() {
                let mut sumi = 0.0f32;
                for g in b * per_block..(b + 1) * per_block {
                    let tg = t * ng + g;
                    sumi += bs[tg] * (job.dots[tg * TILE_ROWS + l] - job.gsums[tg]) as f32;
                }
                *a += w[l] * sumi;
            }
        }
    }
}
