//! The GPU weight layout, made on the host from any tern format at upload time.
//!
//! Row-major `u32` words, `kp / 16` per row (`kp` = `cols` rounded up to [`KP_ALIGN`]; the
//! padding holds zero weights). A word holds 16 consecutive weights of one row as codes `t + 2`
//! (1, 2, 3), weight `e` at bit `8·(e % 4) + 2·(e / 4)`: bitnet.cpp's GPU word encoding
//! (`shared/spec/bitnet_cpp.md` §4), so `(word >> 2i) & 0x03030303` gives weights `4i..4i+3` as
//! bytes. Unlike bitnet.cpp's buffer, words are not permuted into 16×32 tiles: the GEMV reads a
//! row's words with consecutive lanes and the GEMM reads 64-weight runs of a row, both coalesced.

use crate::error::{Error, Result, try_vec};
use crate::matrix::Matrix;

/// Row length in weights is padded to a multiple of this (one GEMM k-tile).
pub const KP_ALIGN: usize = 128;
/// Columns per scale for per-block formats (TQ1_0/TQ2_0).
pub const GROUP_COLS: usize = 256;
/// A word of 16 zero weights (code 2 everywhere).
pub const ZERO_WORD: u32 = 0xAAAA_AAAA;

/// Encodes 16 ternary weights (each −1, 0 or 1) into one word.
pub fn encode_word(t: &[i8]) -> u32 {
    debug_assert_eq!(t.len(), 16);
    t.iter().enumerate().fold(0u32, |w, (e, &v)| {
        w | (((v + 2) as u32) << (8 * (e % 4) + 2 * (e / 4)))
    })
}

/// Decodes one word into 16 ternary weights (the inverse of [`encode_word`]).
pub fn decode_word(w: u32) -> [i8; 16] {
    std::array::from_fn(|e| ((w >> (8 * (e % 4) + 2 * (e / 4))) & 3) as i8 - 2)
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
    /// One scale, or `rows · n_groups` (`[row · n_groups + g]`).
    pub scales: Vec<f32>,
    /// 0 for one scale per tensor, else `cols / GROUP_COLS`.
    pub n_groups: usize,
}

impl GpuWeights {
    /// From row-major ternary values and their scales: one (`n_groups == 0`) or
    /// `rows · n_groups` per-256-column scales (`cols == n_groups · 256`). A value outside
    /// −1..=1 (Q2_0's +2, code 3) is refused: a word's 2-bit codes `t + 2` cannot hold it.
    pub fn from_ternary(
        ternary: &[i8],
        rows: usize,
        cols: usize,
        scales: Vec<f32>,
        n_groups: usize,
    ) -> Result<Self> {
        if ternary.len() != rows * cols {
            return Err(Error::invalid(format!(
                "{} ternary values for a {rows}×{cols} matrix",
                ternary.len()
            )));
        }
        let want = if n_groups == 0 { 1 } else { rows * n_groups };
        if scales.len() != want || (n_groups != 0 && cols != n_groups * GROUP_COLS) {
            return Err(Error::invalid(format!(
                "{} scales with n_groups = {n_groups} for a {rows}×{cols} matrix",
                scales.len()
            )));
        }
        if let Some(i) = ternary.iter().position(|v| !(-1..=1).contains(v)) {
            return Err(Error::unsupported(format!(
                "the weight at row {}, column {} is {}: the CUDA layout holds -1, 0 and +1 only (Q2_0's code 3, +2·d, has no CUDA kernel)",
                i / cols,
                i % cols,
                ternary[i]
            )));
        }
        let kp = cols.next_multiple_of(KP_ALIGN);
        let kw = kp / 16;
        let mut words = try_vec(rows * kw, ZERO_WORD, "the GPU weight words")?;
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
                *w = encode_word(&chunk);
            }
        }
        Ok(Self {
            rows,
            cols,
            kp,
            words,
            scales,
            n_groups,
        })
    }

    /// From a tern matrix of any format.
    pub fn from_matrix(m: &Matrix) -> Result<Self> {
        let shape = m.shape();
        let (ternary, scales, group_cols) = m.ternary_and_scales()?;
        let n_groups = if scales.len() == 1 {
            0
        } else {
            if group_cols != GROUP_COLS {
                return Err(Error::unsupported(format!(
                    "{} has per-block scales over {group_cols} columns that differ: the CUDA kernels handle 256-column blocks (or one scale for the whole matrix)",
                    m.layout().format().name()
                )));
            }
            shape.cols / GROUP_COLS
        };
        Self::from_ternary(&ternary, shape.rows, shape.cols, scales, n_groups)
    }

    /// Words per row.
    pub fn kw(&self) -> usize {
        self.kp / 16
    }
}
