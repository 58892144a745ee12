//! ggml's Q8_K activation blocks (the `vec_dot_type` of TQ1_0/TQ2_0), bit-exact with
//! `quantize_row_q8_K_ref` (spec `ggml_ternary_gguf.md` §2.1): per 256 values an f32 `d`, 256
//! int8 `qs` in [-127, 127] and 16 int16 `bsums`.

/// Bytes of one Q8_K block: `d` f32 @0, `qs[256]` @4, `bsums[16]` i16 @260.
pub const BLOCK_BYTES: usize = 292;
pub const BLOCK: usize = 256;

/// ggml's `nearest_int`: round half to even through the float mantissa (valid for |v| ≤ 2^22),
/// computed the way ggml does: adding 1.5·2^23 leaves the rounded integer in the low mantissa
/// bits. The same result as `round_ties_even`, which on baseline x86-64 (no SSE4.1) is a libm
/// call per value; this form vectorizes.
fn nearest_int(v: f32) -> i32 {
    let val = v + 12_582_912.0;
    (val.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// Quantizes one block of 256 floats into `out` (292 bytes). As in ggml, an all-zero block gets
/// `d = 0` and zero `qs` and leaves `bsums` as they were.
pub fn quantize_block(x: &[f32], out: &mut [u8]) {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        out[0..4].copy_from_slice(&0f32.to_le_bytes());
        out[4..260].fill(0);
        return;
    }
    let iscale = -127.0f32 / max;
    for (q, &v) in out[4..260].iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8 as u8;
    }
    for k in 0..16 {
        let sum: i16 = out[4 + 16 * k..4 + 16 * (k + 1)]
            .iter()
            .map(|&q| q as i8 as i16)
            .sum();
        out[260 + 2 * k..262 + 2 * k].copy_from_slice(&sum.to_le_bytes());
    }
    out[0..4].copy_from_slice(&(1.0f32 / iscale).to_le_bytes());
}

/// The parts of a Q8_K block a dot product needs.
pub struct Block<'a> {
    pub d: f32,
    pub qs: &'a [i8],
}

pub fn block(bytes: &[u8]) -> Block<'_> {
    let d = f32::from_le_bytes(bytes[0..4].try_into().expect("4 bytes"));
    // SAFETY: i8 and u8 have the same layout; the range is in bounds.
    let qs = unsafe { std::slice::from_raw_parts(bytes[4..260].as_ptr() as *const i8, 256) };
    Block { d, qs }
}

/// Quantizes `n_tokens` tokens of `cols` floats (a multiple of 256; token `t` at
/// `x[t·x_stride..]`) into int8 `q` (token `t` at `q[t·q_stride..]`) and the per-block `d` in
/// `block_scales[t·cols/256 + b]` — the Q8_K numbers, without the block packing.
pub fn quantize_rows(
    x: &[f32],
    x_stride: usize,
    cols: usize,
    n_tokens: usize,
    q: &mut [i8],
    q_stride: usize,
    block_scales: &mut [f32],
) {
    let mut block = [0u8; BLOCK_BYTES];
    let n_blocks = cols / BLOCK;
    for t in 0..n_tokens {
        for b in 0..n_blocks {
            quantize_block(&x[t * x_stride + b * BLOCK..][..BLOCK], &mut block);
            let parts = self::block(&block);
            q[t * q_stride + b * BLOCK..][..BLOCK].copy_from_slice(parts.qs);
            block_scales[t * n_blocks + b] = parts.d;
        }
    }
}
