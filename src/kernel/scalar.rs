//! Scalar reference kernels: the oracle every SIMD and GPU path is tested against. Written for
//! obviousness first; plain loops that the compiler may vectorize.

use crate::format::{I2sVariant, i2s};

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
    let mut codes = vec![0u8; cols];
    for (r, row) in weights.chunks_exact(row_bytes).enumerate() {
        for (k, code) in codes.iter_mut().enumerate() {
            *code = i2s::code_at(variant, row, k);
        }
        for t in 0..n_tokens {
            let act = &acts[t * act_stride..][..cols];
            dots[t * n_rows + r] = codes
                .iter()
                .zip(act)
                .map(|(&c, &a)| c as i32 * a as i32)
                .sum();
        }
    }
}
