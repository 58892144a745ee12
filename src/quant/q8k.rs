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
    let mut qs = [0i8; BLOCK];
    let d = quantize_values(x, &mut qs);
    out[4..260].copy_from_slice(&qs.map(|q| q as u8));
    out[0..4].copy_from_slice(&d.unwrap_or(0.0).to_le_bytes());
    if d.is_none() {
        return;
    }
    for (k, qs) in qs.chunks_exact(16).enumerate() {
        let sum: i16 = qs.iter().map(|&q| i16::from(q)).sum();
        out[260 + 2 * k..262 + 2 * k].copy_from_slice(&sum.to_le_bytes());
    }
}

/// A block's `qs` into `q` and its `d` (`None` for an all-zero block, whose `qs` are zero and
/// whose stored `d` is 0): ggml's first strict maximum of `|x|` (NaN never is one) and its
/// signed value `max`, `iscale = −127/max`, `qs = min(127, nearest_int(iscale·x))` truncated to
/// int8 as C's assignment does, `d = 1/iscale`.
fn quantize_values(x: &[f32], q: &mut [i8]) -> Option<f32> {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax == 0.0 {
        q.fill(0);
        return None;
    }
    let iscale = -127.0f32 / max;
    for (q, &v) in q.iter_mut().zip(x) {
        *q = nearest_int(iscale * v).min(127) as i8;
    }
    Some(1.0 / iscale)
}

/// `quant::BlockRowFn` for this block type.
pub type RowFn = super::BlockRowFn;

/// Checks a `RowFn` call's sizes.
fn check_row(x: &[f32], q: &[i8], d: &[f32]) -> usize {
    super::check_block_row(x, q, d, BLOCK, "Q8_K")
}

/// `RowFn` with `quantize_values`, block by block.
pub fn quantize_row(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let n = check_row(x, q, d);
    for j in 0..n {
        d[j] =
            quantize_values(&x[j * BLOCK..][..BLOCK], &mut q[j * BLOCK..][..BLOCK]).unwrap_or(0.0);
    }
}

/// `RowFn` with AVX2, `quantize_row`'s bits: the maximum of `|x|` over lanes (`maxps` with the
/// running maximum second, so NaNs are skipped as ggml's `>` skips them), its first position
/// found by comparing, and the same multiply, add and integer steps; the int8 values are each
/// int32's low byte (masked, then packed without saturation), as C's assignment truncates.
#[cfg(target_arch = "x86_64")]
pub fn quantize_row_x86_avx2(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let n = super::check_avx2_block_row(x, q, d, BLOCK, "Q8_K");
    for j in 0..n {
        // SAFETY: AVX2 present; block j lies in x and q (checked above).
        d[j] = unsafe { quantize_block_avx2(x[j * BLOCK..].as_ptr(), q[j * BLOCK..].as_mut_ptr()) };
    }
}

/// One block of `quantize_row_x86_avx2`: its `qs` into `q`, its `d` returned.
///
/// # Safety
/// 256 floats readable at `x`, 256 bytes writable at `q`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_block_avx2(x: *const f32, q: *mut i8) -> f32 {
    use std::arch::x86_64::*;
    const VECS: usize = BLOCK / 8;
    // SAFETY (all accesses): the function contract.
    unsafe {
        let abs = |v: __m256| _mm256_andnot_ps(_mm256_set1_ps(-0.0), v);
        let load = |i: usize| _mm256_loadu_ps(x.add(8 * i));
        let mut m = _mm256_setzero_ps();
        for i in 0..VECS {
            m = _mm256_max_ps(abs(load(i)), m);
        }
        let amax = crate::quant::lanes_max(m);
        if amax == 0.0 {
            std::ptr::write_bytes(q, 0, BLOCK);
            return 0.0;
        }
        let max = (0..VECS)
            .find_map(|i| {
                let hits = _mm256_cmp_ps::<_CMP_EQ_OQ>(abs(load(i)), _mm256_set1_ps(amax));
                let mask = _mm256_movemask_ps(hits);
                (mask != 0).then(|| *x.add(8 * i + mask.trailing_zeros() as usize))
            })
            .expect("amax is the |value| of one of the block's values");
        let iscale = -127.0f32 / max;
        let scale = _mm256_set1_ps(iscale);
        let (magic, low, half) = (
            _mm256_set1_ps(12_582_912.0),
            _mm256_set1_epi32(0x007f_ffff),
            _mm256_set1_epi32(0x0040_0000),
        );
        let (limit, byte) = (_mm256_set1_epi32(127), _mm256_set1_epi32(0xff));
        let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
        for k in 0..VECS / 4 {
            let i: [__m256i; 4] = std::array::from_fn(|r| {
                let val = _mm256_add_ps(_mm256_mul_ps(scale, load(4 * k + r)), magic);
                let v = _mm256_sub_epi32(_mm256_and_si256(_mm256_castps_si256(val), low), half);
                _mm256_and_si256(_mm256_min_epi32(v, limit), byte)
            });
            let packed = _mm256_packus_epi16(
                _mm256_packus_epi32(i[0], i[1]),
                _mm256_packus_epi32(i[2], i[3]),
            );
            let ordered = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(q.add(32 * k).cast(), ordered);
        }
        1.0 / iscale
    }
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

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The AVX2 row quantizer returns `quantize_row`'s bits (and `quantize_row` those of the
    /// block quantizer the ggml tier checks against ggml) on blocks of random, tied (`k + 0.5`
    /// after scaling), zero, subnormal, huge, infinite and NaN-holding values, and a repeated
    /// maximum of either sign.
    #[test]
    fn avx2_row_matches_the_scalar_row() {
        let n = 40;
        let x = crate::quant::test_blocks(n, BLOCK, |j, i, r, u| match j % 10 {
            0 => r,
            // max −127: iscale 1, every value its own scaled value, ties included.
            1 if i == 100 => -127.0,
            1 => (u % 254) as f32 / 2.0 - 63.5,
            2 => 0.0,
            3 => r * 1e-40,
            4 => r * 3e38,
            5 if i % 37 == 7 => f32::NAN,
            5 => r,
            6 if i == 200 => f32::NEG_INFINITY,
            6 => r,
            // The maximum three times (twice in one vector), first negative: the first one
            // sets the sign.
            7 if i == 50 => -0.75,
            7 if i == 53 || i == 60 => 0.75,
            7 => r * 0.5,
            8 if i == 3 => f32::NAN,
            8 => -0.0,
            _ => r * 1e5,
        });
        let (q, d) =
            crate::quant::assert_same_rows("Q8_K", quantize_row, quantize_row_x86_avx2, &x, BLOCK);
        let mut block_bytes = [0u8; BLOCK_BYTES];
        for j in 0..n {
            quantize_block(&x[j * BLOCK..][..BLOCK], &mut block_bytes);
            let parts = block(&block_bytes);
            assert_eq!(parts.qs, &q[j * BLOCK..][..BLOCK], "block {j}");
            assert_eq!(parts.d.to_bits(), d[j].to_bits(), "block {j}");
        }
    }
}
