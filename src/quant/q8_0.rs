//! ggml's Q8_0 activation blocks (the `vec_dot_type` of Q2_0 and Q1_0): per 32 values an f16 `d`
//! (bytes 0..2) and 32 int8 `qs`. ggml quantizes them three ways, and the CPU backend's mul_mat
//! uses its `from_float`, `quantize_row_q8_0` of `ggml-cpu/arch/<arch>/quants.c`:
//!
//! - [`quantize_block_x86`]: x86 with AVX or AVX2 (what stock ggml runs on this project's x86
//!   machines): `id = 127/amax`, round half to even, saturating packs.
//! - [`quantize_block_neon`]: ARM with NEON: `id = 1/d` with `d = amax/127`, round half to even.
//! - [`quantize_block_ref`]: `quantize_row_q8_0_ref` (the generic CPU path, and what model files
//!   are made with): `id = 1/d`, `roundf` (half away from zero).
//!
//! All three store `d = amax/127` as f16 (round to nearest even). They differ on ties and where
//! `127/amax` and `1/(amax/127)` round apart, so a kernel that must equal stock ggml uses the one
//! of the CPU ggml runs on.

use half::f16;

/// Elements per block (ggml `QK8_0`).
pub const BLOCK: usize = 32;
/// Bytes per block (`sizeof(block_q8_0)`).
pub const BLOCK_BYTES: usize = 2 + BLOCK;

/// `_mm_max_ps` on one lane: `a > b ? a : b`, so a NaN in either operand yields `b`.
fn max_ps(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// C's `(int)f` as x86 computes it (`cvttss2si` / `cvttps2dq`): truncation, and the "integer
/// indefinite" `i32::MIN` for NaN and out-of-range values, where C leaves the result undefined and
/// Rust's `as` would saturate. ggml's quantizers reach it when a block's `1/d` overflows f32.
pub(crate) fn x86_f32_to_i32(v: f32) -> i32 {
    if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) {
        i32::MIN
    } else {
        v as i32
    }
}

/// `cvtps2dq` (current rounding mode: nearest even, the default) then the saturating
/// `packs_epi32`/`packs_epi16` to int8: NaN and values beyond int32 give `i32::MIN`, so −128.
fn x86_to_i8(v: f32) -> i8 {
    x86_f32_to_i32(v.round_ties_even()).clamp(-128, 127) as i8
}

/// ggml x86 `quantize_row_q8_0` (AVX/AVX2 path) for one block: `x` 32 floats, `out` 34 bytes.
/// The absolute maximum is reduced in the same lane order with `maxps` semantics, so NaN inputs
/// give what ggml gives too. A block whose `127/amax` overflows (amax below about 3.7e-37)
/// multiplies by infinity and stores −128 everywhere, as ggml does.
pub fn quantize_block_x86(x: &[f32], out: &mut [u8]) {
    // Eight lanes over four 8-float registers, then 8 → 4 → 2 → 1.
    let mut m = [0.0f32; 8];
    for (l, m) in m.iter_mut().enumerate() {
        *m = x[l].abs();
        for r in 1..4 {
            *m = max_ps(*m, x[8 * r + l].abs());
        }
    }
    let m4: [f32; 4] = std::array::from_fn(|l| max_ps(m[4 + l], m[l]));
    let m2 = [max_ps(m4[0], m4[2]), max_ps(m4[1], m4[3])];
    let amax = max_ps(m2[0], m2[1]);
    let d = amax / 127.0;
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
    for (q, &v) in out[2..BLOCK_BYTES].iter_mut().zip(&x[..BLOCK]) {
        *q = x86_to_i8(v * id) as u8;
    }
}

/// ggml ARM NEON `quantize_row_q8_0` for one block of finite floats: `d = amax/127`, `id = 1/d`,
/// `vcvtnq_s32_f32` (nearest even).
pub fn quantize_block_neon(x: &[f32], out: &mut [u8]) {
    let amax = x[..BLOCK].iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in out[2..BLOCK_BYTES].iter_mut().zip(&x[..BLOCK]) {
        *q = (v * id).round_ties_even() as i32 as i8 as u8;
    }
}

/// ggml `quantize_row_q8_0_ref` for one block: `d = amax/127`, `id = 1/d`, `roundf` (half away
/// from zero), stored through C's float → int8 conversion. Where `1/d` overflows (amax below
/// about 4.3e-37) that conversion is undefined in C; this gives what x86 gives: the low byte of
/// the integer indefinite, 0.
pub fn quantize_block_ref(x: &[f32], out: &mut [u8]) {
    let amax = x[..BLOCK]
        .iter()
        .fold(0.0f32, |m, v| if m > v.abs() { m } else { v.abs() });
    let d = amax / 127.0;
    out[..2].copy_from_slice(&f16::from_f32(d).to_le_bytes());
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    for (q, &v) in out[2..BLOCK_BYTES].iter_mut().zip(&x[..BLOCK]) {
        *q = x86_f32_to_i32((v * id).round()) as u8;
    }
}

/// Quantizes whole blocks (`x.len()` a multiple of 32 floats, `out` 34 bytes per block) with
/// one of the block functions above.
pub fn quantize_blocks(quantize: fn(&[f32], &mut [u8]), x: &[f32], out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(BLOCK).zip(out.chunks_exact_mut(BLOCK_BYTES)) {
        quantize(xb, ob);
    }
}

/// The f16 scale and the int8 values of a block.
pub fn block(bytes: &[u8]) -> (f32, &[i8]) {
    let d = f32::from(f16::from_le_bytes([bytes[0], bytes[1]]));
    // SAFETY: i8 and u8 have the same layout; the range is in bounds.
    let qs =
        unsafe { std::slice::from_raw_parts(bytes[2..BLOCK_BYTES].as_ptr() as *const i8, BLOCK) };
    (d, qs)
}

/// `quant::BlockRowFn` for this block type.
pub type RowFn = super::BlockRowFn;

/// Checks a `RowFn` call's sizes.
fn check_row(x: &[f32], q: &[i8], d: &[f32]) -> usize {
    super::check_block_row(x, q, d, BLOCK, "Q8_0")
}

/// `RowFn` with the block quantizer of this architecture's ggml (see the module doc): the
/// oracle of the SIMD row quantizers.
pub fn quantize_row_arch(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let n = check_row(x, q, d);
    let quantize = if cfg!(target_arch = "x86_64") {
        quantize_block_x86
    } else if cfg!(target_arch = "aarch64") {
        quantize_block_neon
    } else {
        quantize_block_ref
    };
    let mut bytes = [0u8; BLOCK_BYTES];
    for j in 0..n {
        quantize(&x[j * BLOCK..][..BLOCK], &mut bytes);
        let (dj, v) = block(&bytes);
        d[j] = dj;
        q[j * BLOCK..][..BLOCK].copy_from_slice(v);
    }
}

/// `RowFn` of ggml's x86 AVX2 path with its instructions (`quantize_block_x86`'s bits): the
/// absolute maximum reduced with `maxps` in ggml's lane order, `round(v · 127/amax)` to nearest
/// even, saturating packs and the lane permutation that undoes them.
#[cfg(target_arch = "x86_64")]
pub fn quantize_row_x86_avx2(x: &[f32], q: &mut [i8], d: &mut [f32]) {
    let n = super::check_avx2_block_row(x, q, d, BLOCK, "Q8_0");
    // SAFETY: AVX2 present; blocks 0..n lie in x, q and d (checked above).
    unsafe { quantize_row_x86_avx2_impl(x.as_ptr(), q.as_mut_ptr(), d.as_mut_ptr(), n) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn quantize_row_x86_avx2_impl(x: *const f32, q: *mut i8, d: *mut f32, n: usize) {
    use std::arch::x86_64::*;
    let sign = _mm256_set1_ps(-0.0);
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for j in 0..n {
        // SAFETY (all accesses): block j of the checked buffers (the caller's contract).
        unsafe {
            let v: [__m256; 4] = std::array::from_fn(|r| _mm256_loadu_ps(x.add(j * BLOCK + 8 * r)));
            let mut m = _mm256_andnot_ps(sign, v[0]);
            for v in &v[1..] {
                m = _mm256_max_ps(m, _mm256_andnot_ps(sign, *v));
            }
            let amax = crate::quant::lanes_max(m);
            *d.add(j) = f32::from(f16::from_f32(amax / 127.0));
            let id = _mm256_set1_ps(if amax != 0.0 { 127.0 / amax } else { 0.0 });
            let i = v.map(|v| {
                _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
                    v, id,
                )))
            });
            let packed = _mm256_packs_epi16(
                _mm256_packs_epi32(i[0], i[1]),
                _mm256_packs_epi32(i[2], i[3]),
            );
            let ordered = _mm256_permutevar8x32_epi32(packed, order);
            _mm256_storeu_si256(q.add(j * BLOCK).cast(), ordered);
        }
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// The AVX2 row quantizer returns the scalar emulation's bits on blocks of random, tied
    /// (`k + 0.5` after scaling), zero, tiny (127/amax overflows), huge and NaN-holding values.
    #[test]
    fn avx2_row_matches_the_x86_emulation() {
        let x = crate::quant::test_blocks(64, BLOCK, |j, i, r, u| match j % 8 {
            0 => r,
            // amax 127: every value is its own scaled value, ties included.
            1 if i == 0 => 127.0,
            1 => (u % 254) as f32 / 2.0 - 63.5,
            2 => 0.0,
            3 => r * 1e-38,
            4 => r * 3e38,
            5 if i == 7 => f32::NAN,
            5 => r,
            6 => -r.abs() * 1e-3,
            _ => r * 1e5,
        });
        crate::quant::assert_same_rows("Q8_0", quantize_row_arch, quantize_row_x86_avx2, &x, BLOCK);
    }
}
