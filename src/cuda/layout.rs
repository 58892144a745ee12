//! The GPU weight layout, made on the host from any tern format at upload time.
//!
//! Row-major `u32` words, `kp / 16` per row (`kp` = `cols` rounded up to [`KP_ALIGN`]; the
//! padding holds zero weights). A word holds 16 consecutive weights of one row as 2-bit codes
//! `t + code_offset`, weight `e` at bit `8·(e % 4) + 2·(e / 4)`, so `(word >> 2i) & 0x03030303`
//! gives weights `4i..4i+3` as bytes and subtracting `code_offset` from each byte gives the int8
//! values. [`CODE_OFFSET_TERNARY`] (codes 1, 2, 3 for −1, 0, +1) is bitnet.cpp's GPU word
//! encoding (`shared/spec/bitnet_cpp.md` §4) and is used for every matrix it can hold; a matrix
//! holding a +2 (Q2_0's code 3, `+2·d`) takes [`CODE_OFFSET_WIDE`] (codes 0..3 for −1..+2).
//! Unlike bitnet.cpp's buffer, words are not permuted into 16×32 tiles: the GEMV reads a row's
//! words with consecutive lanes and the GEMM reads 64-weight runs of a row, both coalesced.
//!
//! Scales: one for the matrix, or one per (row, block of `group_cols` columns) with
//! `group_cols` 64 (Q2_0), 128 (Q1_0) or 256 (TQ1_0/TQ2_0).

use crate::error::{Error, Result, try_vec};
use crate::matrix::Matrix;

/// Row length in weights is padded to a multiple of this (one GEMM k-tile).
pub const KP_ALIGN: usize = 128;
/// Code offset of bitnet.cpp's word encoding: weights −1, 0, +1 as codes 1, 2, 3.
pub const CODE_OFFSET_TERNARY: u32 = 2;
/// Code offset of matrices holding a +2: weights −1..=2 as codes 0..=3.
pub const CODE_OFFSET_WIDE: u32 = 1;

/// Whether the kernels take per-block scales over `group_cols` columns: a power of two from 64
/// (the GEMV reduces `group_cols / 16` lanes per block, a divisor of the warp, and the GEMM
/// folds after whole 32-column mma k-steps) to 256.
pub fn group_cols_supported(group_cols: usize) -> bool {
    group_cols.is_power_of_two() && (64..=256).contains(&group_cols)
}

/// A word of 16 zero weights with `code_offset` (code `code_offset` everywhere).
pub fn zero_word(code_offset: u32) -> u32 {
    0x5555_5555 * code_offset
}

/// Encodes 16 weights (each in `−code_offset..=3 − code_offset`) into one word.
pub fn encode_word(t: &[i8], code_offset: u32) -> u32 {
    debug_assert_eq!(t.len(), 16);
    t.iter().enumerate().fold(0u32, |w, (e, &v)| {
        let code = (v as i32 + code_offset as i32) as u32;
        debug_assert!(code < 4, "weight {v} with code offset {code_offset}");
        w | (code << (8 * (e % 4) + 2 * (e / 4)))
    })
}

/// Decodes one word into 16 weights (the inverse of [`encode_word`] with the same offset).
pub fn decode_word(w: u32, code_offset: u32) -> [i8; 16] {
    std::array::from_fn(|e| ((w >> (8 * (e % 4) + 2 * (e / 4))) & 3) as i8 - code_offset as i8)
}

/// A matrix in the GPU layout, still on the host.
#[derive(Clone, Debug)]
pub struct GpuWeights {
    pub rows: usize,
    pub cols: usize,
    /// Padded row length in weights (multiple of [`KP_ALIGN`]).
    pub kp: usize,
    /// `rows · kp/16` words.
    pub words: Vec<u32>,
    /// [`CODE_OFFSET_TERNARY`], or [`CODE_OFFSET_WIDE`] when a weight is +2.
    pub code_offset: u32,
    /// One scale, or `rows · n_groups` (`[row · n_groups + g]`).
    pub scales: Vec<f32>,
    /// 0 for one scale per tensor, else `cols / group_cols`.
    pub n_groups: usize,
    /// Columns per scale (0 for one scale per tensor; see [`group_cols_supported`]).
    pub group_cols: usize,
}

impl GpuWeights {
    /// From row-major weights (−1..=2) and their scales: one (`group_cols == 0`) or
    /// `rows · cols / group_cols` per-block scales (`cols` a multiple of `group_cols`, and
    /// `group_cols` one the kernels take: [`group_cols_supported`]).
    pub fn from_ternary(
        ternary: &[i8],
        rows: usize,
        cols: usize,
        scales: Vec<f32>,
        group_cols: usize,
    ) -> Result<Self> {
        if ternary.len() != rows * cols {
            return Err(Error::invalid(format!(
                "{} ternary values for a {rows}×{cols} matrix",
                ternary.len()
            )));
        }
        if group_cols != 0
            && (!group_cols_supported(group_cols) || !cols.is_multiple_of(group_cols))
        {
            return Err(Error::unsupported(format!(
                "per-block scales over {group_cols} columns of a {rows}×{cols} matrix: the CUDA kernels take blocks of 64, 128 or 256 columns that tile the rows"
            )));
        }
        let n_groups = cols.checked_div(group_cols).unwrap_or(0);
        let want = if n_groups == 0 { 1 } else { rows * n_groups };
        if scales.len() != want {
            return Err(Error::invalid(format!(
                "{} scales with {group_cols}-column blocks for a {rows}×{cols} matrix ({want} expected)",
                scales.len()
            )));
        }
        if let Some(i) = ternary.iter().position(|v| !(-1..=2).contains(v)) {
            return Err(Error::invalid(format!(
                "the weight at row {}, column {} is {}: weights are -1..=2",
                i / cols,
                i % cols,
                ternary[i]
            )));
        }
        let code_offset = if ternary.contains(&2) {
            CODE_OFFSET_WIDE
        } else {
            CODE_OFFSET_TERNARY
        };
        let kp = cols.next_multiple_of(KP_ALIGN);
        let kw = kp / 16;
        let mut words = try_vec(rows * kw, zero_word(code_offset), "the GPU weight words")?;
        let mut chunk = [0i8; 16];
        for r in 0..rows {
            let row = &ternary[r * cols..][..cols];
            for (i, w) in words[r * kw..][..kw].iter_mut().enumerate() {
                let start = (i * 16).min(cols);
                let end = (i * 16 + 16).min(cols);
                if start == end {
                    break;
                }
                chunk.fill(0);
                chunk[..end - start].copy_from_slice(&row[start..end]);
                *w = encode_word(&chunk, code_offset);
            }
        }
        Ok(Self {
            rows,
            cols,
            kp,
            words,
            code_offset,
            scales,
            n_groups,
            group_cols,
        })
    }

    /// From a tern matrix of any format.
    pub fn from_matrix(m: &Matrix) -> Result<Self> {
        let shape = m.shape();
        let (ternary, scales, group_cols) = m.ternary_and_scales()?;
        let group_cols = if scales.len() == 1 { 0 } else { group_cols };
        if group_cols != 0 && !group_cols_supported(group_cols) {
            return Err(Error::unsupported(format!(
                "{} has per-block scales over {group_cols} columns: the CUDA kernels take blocks of 64, 128 or 256 columns",
                m.layout().format().name()
            )));
        }
        Self::from_ternary(&ternary, shape.rows, shape.cols, scales, group_cols)
    }

    /// Words per row.
    pub fn kw(&self) -> usize {
        self.kp / 16
    }
}
