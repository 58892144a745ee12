//! Scalar reference dot products of Q2_0 / Q1_0 weight rows with Q8_0 activation rows, in the
//! float summation order of stock ggml's CPU `vec_dot` (the oracle the SIMD kernels are held to).
//! Per Q8_0 block the integer sum is exact; the float steps are the ones ggml performs, each
//! rounded to f32 (no fused multiply-add unless ggml's own code fuses it):
//!
//! - [`vec_dot_q2_0_q8_0`]: `ggml_vec_dot_q2_0_q8_0_generic`, which is what every CPU runs
//!   (x86 maps the name to the generic code): per Q2_0 block `sumi += d1·(float)S` over its two
//!   Q8_0 blocks, then `sumf += d0·sumi`.
//! - [`vec_dot_q1_0_q8_0_generic`]: the same shape over four Q8_0 blocks per Q1_0 block
//!   (`ggml_vec_dot_q1_0_q8_0_generic`: CPUs without a SIMD kernel).
//! - [`vec_dot_q1_0_q8_0_avx2`]: the x86 AVX2 kernel `ggml_vec_dot_q1_0_q8_0`: eight lanes, lane
//!   `l` summing elements `4l..4l+3` of each Q8_0 block; per Q1_0 block
//!   `acc_block = d1₀·S₀`, then `acc_block = fma(d1ₖ, Sₖ, acc_block)` for k = 1..3, then
//!   `acc = fma(d0, acc_block, acc)`; finally ggml's `hsum_float_8`. Its sign flip of an
//!   activation byte wraps in int8 (−(−128) = −128), which this reproduces; the generic forms
//!   compute +128.
//!
//! `x` holds whole weight blocks, `y` the matching Q8_0 blocks (`n/32` of them).

use half::f16;

use super::q8_0;
use crate::format::{q1_0, q2_0};

fn d_of(block: &[u8]) -> f32 {
    f32::from(f16::from_le_bytes([block[0], block[1]]))
}

/// ggml `ggml_vec_dot_q2_0_q8_0` (generic, all CPUs): `x` Q2_0 blocks, `y` two Q8_0 blocks each.
pub fn vec_dot_q2_0_q8_0(x: &[u8], y: &[u8]) -> f32 {
    let mut values = [0i8; q2_0::BLOCK];
    let mut sumf = 0.0f32;
    for (xb, yb) in x
        .chunks_exact(q2_0::BLOCK_BYTES)
        .zip(y.chunks_exact(2 * q8_0::BLOCK_BYTES))
    {
        q2_0::unpack_codes(&xb[2..], &mut values);
        let mut sumi = 0.0f32;
        for (v, yk) in values
            .chunks_exact(q8_0::BLOCK)
            .zip(yb.chunks_exact(q8_0::BLOCK_BYTES))
        {
            let (d1, qy) = q8_0::block(yk);
            let s: i32 = v.iter().zip(qy).map(|(&a, &b)| a as i32 * b as i32).sum();
            sumi += d1 * s as f32;
        }
        sumf += d_of(xb) * sumi;
    }
    sumf
}

/// ggml `ggml_vec_dot_q1_0_q8_0_generic`: `x` Q1_0 blocks, `y` four Q8_0 blocks each.
pub fn vec_dot_q1_0_q8_0_generic(x: &[u8], y: &[u8]) -> f32 {
    let mut values = [0i8; q1_0::BLOCK];
    let mut sumf = 0.0f32;
    for (xb, yb) in x
        .chunks_exact(q1_0::BLOCK_BYTES)
        .zip(y.chunks_exact(4 * q8_0::BLOCK_BYTES))
    {
        q1_0::unpack_codes(&xb[2..], &mut values);
        let mut sumi = 0.0f32;
        for (v, yk) in values
            .chunks_exact(q8_0::BLOCK)
            .zip(yb.chunks_exact(q8_0::BLOCK_BYTES))
        {
            let (d1, qy) = q8_0::block(yk);
            let s: i32 = v.iter().zip(qy).map(|(&a, &b)| a as i32 * b as i32).sum();
            sumi += d1 * s as f32;
        }
        sumf += d_of(xb) * sumi;
    }
    sumf
}

/// ggml x86 AVX2 `ggml_vec_dot_q1_0_q8_0`, lane for lane (see the module comment).
pub fn vec_dot_q1_0_q8_0_avx2(x: &[u8], y: &[u8]) -> f32 {
    let mut values = [0i8; q1_0::BLOCK];
    let mut acc = [0.0f32; 8];
    for (xb, yb) in x
        .chunks_exact(q1_0::BLOCK_BYTES)
        .zip(y.chunks_exact(4 * q8_0::BLOCK_BYTES))
    {
        q1_0::unpack_codes(&xb[2..], &mut values);
        let mut acc_block = [0.0f32; 8];
        for (k, (v, yk)) in values
            .chunks_exact(q8_0::BLOCK)
            .zip(yb.chunks_exact(q8_0::BLOCK_BYTES))
            .enumerate()
        {
            let (d1, qy) = q8_0::block(yk);
            for (l, a) in acc_block.iter_mut().enumerate() {
                let s: i32 = (4 * l..4 * l + 4)
                    .map(|e| {
                        (if v[e] > 0 {
                            qy[e]
                        } else {
                            qy[e].wrapping_neg()
                        }) as i32
                    })
                    .sum();
                *a = if k == 0 {
                    d1 * s as f32
                } else {
                    d1.mul_add(s as f32, *a)
                };
            }
        }
        let d0 = d_of(xb);
        for (a, b) in acc.iter_mut().zip(acc_block) {
            *a = d0.mul_add(b, *a);
        }
    }
    hsum_float_8(acc)
}

/// ggml's x86 `hsum_float_8`: high half + low half, then lanes 0+2 and 1+3, then those two.
fn hsum_float_8(v: [f32; 8]) -> f32 {
    let r: [f32; 4] = std::array::from_fn(|i| v[4 + i] + v[i]);
    (r[0] + r[2]) + (r[1] + r[3])
}
