#![allow(non_snake_case)] // ggml's own names are kept verbatim.
//! The raw tier for mainline ggml's Q2_0 and Q1_0 and their Q8_0 activations: functions with the
//! exact signatures of ggml's type traits. Same contract as the TQ functions of `ggml` (argument
//! checks before any buffer is touched, nothing written on failure, the last error names the
//! function, a success clears it, nothing allocated per call).

use std::ffi::{c_int, c_void};

use super::args::slice_mut;
use super::ggml::{input, output, product, raw_call, whole_blocks};
use crate::error::{Error, Result};
use crate::format::qx_0::Codec;
use crate::format::{q1_0, q2_0};
use crate::quant::{ggml_dot, ggml_q, q8_0};

/// Block sizes of a type: (elements, bytes).
type Sizes = (usize, usize);
const Q2_0: Sizes = (q2_0::BLOCK, q2_0::BLOCK_BYTES);
const Q1_0: Sizes = (q1_0::BLOCK, q1_0::BLOCK_BYTES);
const Q8_0: Sizes = (q8_0::BLOCK, q8_0::BLOCK_BYTES);

/// Quantizes `k` floats (`names`: the C names of the input and the output) into whole blocks of
/// `sizes` with `block`; returns the bytes written.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/sizes.0` blocks.
unsafe fn quantize_row(
    (len, bytes): Sizes,
    block: fn(&[f32], &mut [u8]),
    x: *const f32,
    y: *mut c_void,
    k: i64,
    names: [&str; 2],
) -> Result<usize> {
    let blocks = whole_blocks(k, len, "k")? / len;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (x, y) = unsafe {
        (
            input(x, blocks * len, names[0])?,
            output(y as *mut u8, blocks * bytes, names[1])?,
        )
    };
    for (xb, yb) in x.chunks_exact(len).zip(y.chunks_exact_mut(bytes)) {
        block(xb, yb);
    }
    Ok(blocks * bytes)
}

/// ggml `quantize_row_q2_0` (`from_float` of Q2_0 = `quantize_row_q2_0_ref`), bit-exact:
/// per 64 floats `d = max|x|`, code `clamp(roundf(x/d) + 1, 0, 3)`.
///
/// Checked: `k` ≥ 0 and a multiple of 64 (0 writes nothing); for `k` > 0, `x` (4-byte aligned)
/// and `y` non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/64·18` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q2_0(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_q2_0", (), || unsafe {
        quantize_row(Q2_0, ggml_q::quantize_block_q2_0_ref, x, y, k, ["x", "y"]).map(drop)
    })
}

/// ggml `quantize_row_q1_0` (`from_float` of Q1_0 = `quantize_row_q1_0_ref`), bit-exact: per
/// 128 floats `d = Σ|x|/128` (summed in order in f32), bit `x >= 0`.
///
/// Checked: `k` ≥ 0 and a multiple of 128; otherwise as for `tern_ggml_quantize_row_q2_0`.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/128·18` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q1_0(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_q1_0", (), || unsafe {
        quantize_row(Q1_0, ggml_q::quantize_block_q1_0_ref, x, y, k, ["x", "y"]).map(drop)
    })
}

/// ggml `quantize_q2_0` (chunk quantizer): `nrow` rows of `n_per_row` floats; returns the bytes
/// written (`nrow·n_per_row/64·18`). The importance matrix is ignored, as in ggml.
///
/// Checked: `nrow` ≥ 0; `n_per_row` ≥ 0 and a multiple of 64; the product fits; for a non-empty
/// chunk, `src` (4-byte aligned) and `dst` non-NULL. Otherwise it returns 0, writes nothing and
/// the last error says why (an empty chunk also returns 0, with no error); a successful call
/// clears it.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats, `dst` the bytes returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_q2_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    raw_call("tern_ggml_quantize_q2_0", 0, || unsafe {
        whole_blocks(n_per_row, q2_0::BLOCK, "n_per_row")?;
        let k = product(nrow, n_per_row)?;
        quantize_row(
            Q2_0,
            ggml_q::quantize_block_q2_0_ref,
            src,
            dst,
            k,
            ["src", "dst"],
        )
    })
}

/// ggml `quantize_q1_0` (chunk quantizer; `nrow·n_per_row/128·18` bytes); see
/// `tern_ggml_quantize_q2_0` (`n_per_row` a multiple of 128).
///
/// Checked, and on failure: as for `tern_ggml_quantize_q2_0`.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats, `dst` the bytes returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_q1_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    raw_call("tern_ggml_quantize_q1_0", 0, || unsafe {
        whole_blocks(n_per_row, q1_0::BLOCK, "n_per_row")?;
        let k = product(nrow, n_per_row)?;
        quantize_row(
            Q1_0,
            ggml_q::quantize_block_q1_0_ref,
            src,
            dst,
            k,
            ["src", "dst"],
        )
    })
}

/// The Q8_0 quantizer stock ggml's CPU backend runs on this CPU (its `from_float`): the AVX path
/// on x86-64 CPUs with AVX, NEON on aarch64, the reference elsewhere.
fn q8_0_native() -> fn(&[f32], &mut [u8]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx") {
        return q8_0::quantize_block_x86;
    }
    #[cfg(target_arch = "aarch64")]
    return q8_0::quantize_block_neon;
    #[allow(unreachable_code)]
    q8_0::quantize_block_ref
}

/// ggml CPU `quantize_row_q8_0` (the `from_float` stock ggml's mul_mat quantizes Q2_0/Q1_0
/// activations with), bit-exact with the one this CPU runs: on x86-64 with AVX the AVX/AVX2 code
/// (`id = 127/amax`, round half to even), on aarch64 the NEON code (`id = 1/d`, half to even),
/// elsewhere `quantize_row_q8_0_ref`. Per 32 floats: f16 `d = amax/127`, then 32 int8.
///
/// Checked: `k` ≥ 0 and a multiple of 32 (0 writes nothing); for `k` > 0, `x` (4-byte aligned)
/// and `y` non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/32·34` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q8_0(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_q8_0", (), || unsafe {
        quantize_row(Q8_0, q8_0_native(), x, y, k, ["x", "y"]).map(drop)
    })
}

/// ggml `quantize_row_q8_0_ref` (`id = 1/d`, `roundf` half away from zero: how model files and
/// ggml's generic CPU path quantize), bit-exact.
///
/// Checked, and on failure: as for `tern_ggml_quantize_row_q8_0`.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/32·34` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q8_0_ref(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_q8_0_ref", (), || unsafe {
        quantize_row(Q8_0, q8_0::quantize_block_ref, x, y, k, ["x", "y"]).map(drop)
    })
}

/// Writes `k` floats from `k/block` blocks of `codec` (ggml `to_float`: any scale bits accepted).
///
/// # Safety
/// `x` holds `k/block` blocks, `y` `k` floats.
unsafe fn dequantize_row(codec: &Codec, x: *const c_void, y: *mut f32, k: i64) -> Result<()> {
    let blocks = whole_blocks(k, codec.block, "k")? / codec.block;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range. The float output
    // is checked first: its byte size is the larger, so a count beyond PTRDIFF_MAX stops there.
    let (y, x) = unsafe {
        (
            output(y, blocks * codec.block, "y")?,
            input(x as *const u8, blocks * codec.block_bytes, "x")?,
        )
    };
    codec.dequantize_blocks(x, y);
    Ok(())
}

/// ggml `dequantize_row_q2_0` (`to_float`): `(q − 1)·d`, code 3 included (`+2·d`).
///
/// Checked: `k` ≥ 0 and a multiple of 64 (0 writes nothing); for `k` > 0, `x` and `y` (4-byte
/// aligned) non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k/64` blocks (18 bytes each), `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_q2_0(x: *const c_void, y: *mut f32, k: i64) {
    raw_call("tern_ggml_dequantize_row_q2_0", (), || unsafe {
        dequantize_row(&q2_0::CODEC, x, y, k)
    })
}

/// ggml `dequantize_row_q1_0` (`to_float`): `bit ? d : −d`.
///
/// Checked: `k` ≥ 0 and a multiple of 128; otherwise as for `tern_ggml_dequantize_row_q2_0`.
///
/// # Safety
/// `x` holds `k/128` blocks (18 bytes each), `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_q1_0(x: *const c_void, y: *mut f32, k: i64) {
    raw_call("tern_ggml_dequantize_row_q1_0", (), || unsafe {
        dequantize_row(&q1_0::CODEC, x, y, k)
    })
}

/// One weight row of `codec` against one Q8_0 row with `dot`.
///
/// # Safety
/// `x` holds `n/block` blocks of `codec`, `y` `n/32` Q8_0 blocks.
unsafe fn vec_dot(
    codec: &Codec,
    dot: fn(&[u8], &[u8]) -> f32,
    n: c_int,
    s: *mut f32,
    x: *const c_void,
    y: *const c_void,
    nrc: c_int,
) -> Result<()> {
    let blocks = whole_blocks(n.into(), codec.block, "n")? / codec.block;
    if nrc != 1 {
        return Err(Error::invalid(format!(
            "nrc must be 1 (the type's nrows; got {nrc})"
        )));
    }
    let q8_blocks = blocks * codec.block / q8_0::BLOCK;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (x, y, s) = unsafe {
        (
            input(x as *const u8, blocks * codec.block_bytes, "vx")?,
            input(y as *const u8, q8_blocks * q8_0::BLOCK_BYTES, "vy")?,
            slice_mut(s, 1, "s")?,
        )
    };
    s[0] = dot(x, y);
    Ok(())
}

/// ggml `ggml_vec_dot_q2_0_q8_0` (`bs`, `bx`, `by` are ignored): the generic code every CPU runs
/// (x86 has no SIMD kernel for Q2_0), same float steps in the same order: bit-identical. Code 3
/// counts as +2.
///
/// Checked: `n` ≥ 0 and a multiple of 64 (0 gives `*s = 0`); `nrc` = 1; `s` non-NULL and 4-byte
/// aligned; for `n` > 0, `vx` and `vy` non-NULL. Otherwise `*s` is not written and the last error
/// says why; a successful call clears it.
///
/// # Safety
/// `vx` holds `n/64` Q2_0 blocks, `vy` `n/32` Q8_0 blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_vec_dot_q2_0_q8_0(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) {
    let _ = (bs, bx, by);
    raw_call("tern_ggml_vec_dot_q2_0_q8_0", (), || unsafe {
        vec_dot(&q2_0::CODEC, ggml_dot::vec_dot_q2_0_q8_0, n, s, vx, vy, nrc)
    })
}

/// The Q1_0 dot stock ggml runs on this CPU: the AVX2 kernel's order on x86-64 with AVX2 and
/// FMA, else the generic one. (x86 CPUs with AVX or SSSE3 but no AVX2 run two further orders,
/// not reproduced: there the result equals ggml's up to float rounding of the sums.)
fn q1_0_dot_native() -> fn(&[u8], &[u8]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        return ggml_dot::vec_dot_q1_0_q8_0_avx2;
    }
    ggml_dot::vec_dot_q1_0_q8_0_generic
}

/// ggml `ggml_vec_dot_q1_0_q8_0` (`bs`, `bx`, `by` are ignored), in the float order of the code
/// stock ggml runs on this CPU (x86-64 with AVX2: its eight-lane FMA kernel, including its int8
/// wrap of −(−128); elsewhere the generic code), bit-identical to it.
///
/// Checked: `n` ≥ 0 and a multiple of 128; otherwise as for `tern_ggml_vec_dot_q2_0_q8_0`.
///
/// # Safety
/// `vx` holds `n/128` Q1_0 blocks, `vy` `n/32` Q8_0 blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_vec_dot_q1_0_q8_0(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) {
    let _ = (bs, bx, by);
    raw_call("tern_ggml_vec_dot_q1_0_q8_0", (), || unsafe {
        vec_dot(&q1_0::CODEC, q1_0_dot_native(), n, s, vx, vy, nrc)
    })
}
