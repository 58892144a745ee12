#![allow(non_snake_case)] // ggml's own names (q8_K, tq1_0_q8_K) are kept verbatim.
//! The raw tier: functions with the exact signatures of ggml / bitnet.cpp type traits, so a
//! llama.cpp fork can point its type table at them. They return `void` like ggml, check nothing
//! (the preconditions are documented), set no last error and allocate nothing per call beyond
//! what the kernel needs. A panic here aborts the process (Rust's `extern "C"` guarantee): it can
//! never unwind into C.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use half::f16;

use crate::format::{I2sVariant, i2s, tq, tq1_0, tq2_0};
use crate::kernel::{Isa, Kernels};
use crate::quant::activation::Arith;
use crate::quant::q8k;

/// bitnet.cpp's x86 `PARALLEL_SIZE`: `nrc` divisible by it selects the activation-parallel path.
const PARALLEL_SIZE: usize = 4;

fn kernels() -> &'static Kernels {
    static BEST: OnceLock<&'static Kernels> = OnceLock::new();
    BEST.get_or_init(|| Kernels::for_isa(Isa::best()))
}

/// bitnet.cpp `ggml_vec_dot_i2_i8_s`: raw dot of unsigned I2_S codes (0/1/2, 128-element x86
/// layout, the file format) with int8 activations, **exact** in int32 and returned as float (no
/// scale, no `− act_sum`). bitnet.cpp's AVX2 kernel wraps its int16 accumulator on extreme inputs
/// (e.g. 4096 codes of 2 against activations of 127); this one never does.
///
/// Strides follow ggml's mixed units: `bx` in elements (row `r` at `vx + r·bx/4`), `by` in bytes,
/// `bs` in floats. If `nrc % 4 == 0`: one weight row against `nrc` activation columns
/// (`vy + c·by`), result `c` at `s[c·bs]`. Otherwise: `nrc` weight rows against one activation
/// vector, result `r` at `s[r]`.
///
/// # Safety
/// `n` > 0 and a multiple of 128; the buffers hold what the strides above address.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_vec_dot_i2_i8_s(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) {
    let (n, nrc) = (n as usize, nrc as usize);
    let run = kernels().i2s_dots.run;
    let mut dots = [0i32; 64];
    if nrc % PARALLEL_SIZE == 0 {
        // SAFETY: one row of n/4 bytes and nrc activation columns `by` bytes apart (contract).
        let row = unsafe { std::slice::from_raw_parts(vx as *const u8, n / 4) };
        for first in (0..nrc).step_by(dots.len()) {
            let count = dots.len().min(nrc - first);
            let acts = unsafe {
                std::slice::from_raw_parts((vy as *const i8).add(first * by), (count - 1) * by + n)
            };
            run(I2sVariant::X86, row, n, acts, by, count, &mut dots[..count]);
            for (c, &d) in dots[..count].iter().enumerate() {
                unsafe { *s.add((first + c) * bs) = d as f32 };
            }
        }
    } else {
        let acts = unsafe { std::slice::from_raw_parts(vy as *const i8, n) };
        for r in 0..nrc {
            let row =
                unsafe { std::slice::from_raw_parts((vx as *const u8).add(r * bx / 4), n / 4) };
            run(I2sVariant::X86, row, n, acts, n, 1, &mut dots[..1]);
            unsafe { *s.add(r) = dots[0] as f32 };
        }
    }
}

/// bitnet.cpp `quantize_i2_s` (ggml's chunk-quantizer signature): packs `nrow · n_per_row`
/// already-ternary floats (ternary × one scale) into the x86 I2_S layout at `dst` — codes, the f32
/// scale (max |w|) and 28 zero bytes — and returns `nrow·n_per_row/4 + 32`. `quant_weights` is
/// ignored, as in bitnet.cpp.
///
/// # Safety
/// `nrow·n_per_row` is a positive multiple of 128; `src` holds that many floats and `dst`
/// `nrow·n_per_row/4 + 32` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_i2_s(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    quant_weights: *const f32,
) -> usize {
    let _ = quant_weights;
    let n = (nrow * n_per_row) as usize;
    let size = n / 4 + i2s::TAIL_BYTES;
    // SAFETY: sizes per the contract.
    let (src, dst) = unsafe {
        (
            std::slice::from_raw_parts(src, n),
            std::slice::from_raw_parts_mut(dst as *mut u8, size),
        )
    };
    // bitnet.cpp's rule without a ternary buffer (the raw tier does not allocate): the scale is
    // max|w|, then each 128-element block is ternarized on the stack and packed.
    let scale = src.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)) as f32;
    let (codes, tail) = dst.split_at_mut(n / 4);
    let mut ternary = [0i8; 128];
    for (block, out) in src.chunks_exact(128).zip(codes.chunks_exact_mut(32)) {
        crate::quant::weight::prescaled(block, &mut ternary);
        i2s::pack_codes(I2sVariant::X86, &ternary, out);
    }
    tail[..4].copy_from_slice(&scale.to_le_bytes());
    tail[4..].fill(0);
    size
}

/// bitnet.cpp `quantize_row_i8_s` as the current fork computes it (`TERN_COMPAT_BITNET_CPP`):
/// `n` floats → int8 at `y`, `*act_scales = 127/absmax`, `*act_sums = Σ q`.
///
/// # Safety
/// `x` holds `n` > 0 floats, `y` `n` bytes; `act_scales`, `act_sums` are writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_i8_s(
    x: *const f32,
    y: *mut c_void,
    n: i64,
    act_scales: *mut f32,
    act_sums: *mut i32,
) {
    unsafe { quantize_row(Arith::I2sCurrent, x, y, n, act_scales, act_sums) }
}

/// Like `tern_ggml_quantize_row_i8_s` with the merge-dev arithmetic
/// (`TERN_COMPAT_BITNET_CPP_LEGACY`: f64 absmax floored at 1e-5, half-to-even).
///
/// # Safety
/// As for `tern_ggml_quantize_row_i8_s`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_i8_s_legacy(
    x: *const f32,
    y: *mut c_void,
    n: i64,
    act_scales: *mut f32,
    act_sums: *mut i32,
) {
    unsafe { quantize_row(Arith::I2sLegacy, x, y, n, act_scales, act_sums) }
}

unsafe fn quantize_row(
    arith: Arith,
    x: *const f32,
    y: *mut c_void,
    n: i64,
    scale: *mut f32,
    sum: *mut i32,
) {
    let n = n as usize;
    // SAFETY: sizes per the callers' contracts.
    let (x, q) = unsafe {
        (
            std::slice::from_raw_parts(x, n),
            std::slice::from_raw_parts_mut(y as *mut i8, n),
        )
    };
    let (s, total) = arith.quantize_token(x, q);
    unsafe {
        *scale = s;
        *sum = total;
    }
}

/// Quantizes `k` floats (a multiple of 256, possibly 0) into TQ blocks with ggml's reference
/// rule (`quantize_row_tqX_0_ref`): per block `d = max|x|`, `t = round_half_away(x/d)`.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/256` blocks.
unsafe fn quantize_row_tq(kind: tq::Kind, x: *const f32, y: *mut c_void, k: i64) {
    let codec = kind.codec();
    let blocks = k as usize / tq::BLOCK;
    // SAFETY: sizes per the contract.
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(x, blocks * tq::BLOCK),
            std::slice::from_raw_parts_mut(y as *mut u8, blocks * codec.block_bytes),
        )
    };
    let mut ternary = [0i8; tq::BLOCK];
    for (xb, yb) in x
        .chunks_exact(tq::BLOCK)
        .zip(y.chunks_exact_mut(codec.block_bytes))
    {
        let d = tq::quantize_block_ref(xb, &mut ternary);
        (codec.pack)(&ternary, f16::from_f32(d), yb);
    }
}

/// Writes `k` floats `(t − 1)·d` from `k/256` TQ blocks (ggml `to_float`).
///
/// # Safety
/// `x` holds `k/256` blocks, `y` `k` floats.
unsafe fn dequantize_row_tq(kind: tq::Kind, x: *const c_void, y: *mut f32, k: i64) {
    let codec = kind.codec();
    let blocks = k as usize / tq::BLOCK;
    // SAFETY: sizes per the contract.
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(x as *const u8, blocks * codec.block_bytes),
            std::slice::from_raw_parts_mut(y, blocks * tq::BLOCK),
        )
    };
    let mut ternary = [0i8; tq::BLOCK];
    for (xb, yb) in x
        .chunks_exact(codec.block_bytes)
        .zip(y.chunks_exact_mut(tq::BLOCK))
    {
        (codec.unpack)(xb, &mut ternary);
        let d = f32::from(f16::from_le_bytes([
            xb[codec.block_bytes - 2],
            xb[codec.block_bytes - 1],
        ]));
        for (o, &t) in yb.iter_mut().zip(&ternary) {
            *o = t as f32 * d;
        }
    }
}

/// ggml's `vec_dot` of one TQ row with one Q8_K row: `Σ_blocks float(S_b)·(d_x·d_y)` summed in
/// block order in f32, `S_b` the exact integer dot of the block.
///
/// # Safety
/// `x` holds `n/256` TQ blocks, `y` `n/256` Q8_K blocks.
unsafe fn vec_dot_tq_q8k(
    kind: tq::Kind,
    n: c_int,
    s: *mut f32,
    x: *const c_void,
    y: *const c_void,
) {
    let codec = kind.codec();
    let blocks = n as usize / tq::BLOCK;
    // SAFETY: sizes per the contract.
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(x as *const u8, blocks * codec.block_bytes),
            std::slice::from_raw_parts(y as *const u8, blocks * q8k::BLOCK_BYTES),
        )
    };
    let mut ternary = [0i8; tq::BLOCK];
    let mut sum = 0.0f32;
    for (xb, yb) in x
        .chunks_exact(codec.block_bytes)
        .zip(y.chunks_exact(q8k::BLOCK_BYTES))
    {
        (codec.unpack)(xb, &mut ternary);
        let q = q8k::block(yb);
        let dot: i32 = ternary
            .iter()
            .zip(q.qs)
            .map(|(&t, &v)| t as i32 * v as i32)
            .sum();
        let dx = f32::from(f16::from_le_bytes([
            xb[codec.block_bytes - 2],
            xb[codec.block_bytes - 1],
        ]));
        sum += dot as f32 * (q.d * dx);
    }
    // SAFETY: `s` is writable (contract).
    unsafe { *s = sum };
}

/// ggml `quantize_row_tq1_0` (`from_float` of TQ1_0), bit-exact with the reference.
///
/// # Safety
/// `k` is a multiple of 256 (0 allowed); `x` holds `k` floats, `y` `k/256·54` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_tq1_0(x: *const f32, y: *mut c_void, k: i64) {
    unsafe { quantize_row_tq(tq::Kind::Tq1_0, x, y, k) }
}

/// ggml `quantize_row_tq2_0` (`from_float` of TQ2_0), bit-exact with the reference.
///
/// # Safety
/// `k` is a multiple of 256 (0 allowed); `x` holds `k` floats, `y` `k/256·66` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_tq2_0(x: *const f32, y: *mut c_void, k: i64) {
    unsafe { quantize_row_tq(tq::Kind::Tq2_0, x, y, k) }
}

/// ggml `dequantize_row_tq1_0` (`to_float`).
///
/// # Safety
/// `k` is a multiple of 256; `x` holds `k/256` blocks, `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_tq1_0(x: *const c_void, y: *mut f32, k: i64) {
    unsafe { dequantize_row_tq(tq::Kind::Tq1_0, x, y, k) }
}

/// ggml `dequantize_row_tq2_0` (`to_float`).
///
/// # Safety
/// `k` is a multiple of 256; `x` holds `k/256` blocks, `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_tq2_0(x: *const c_void, y: *mut f32, k: i64) {
    unsafe { dequantize_row_tq(tq::Kind::Tq2_0, x, y, k) }
}

/// ggml `quantize_row_q8_K`, bit-exact with `quantize_row_q8_K_ref` (an all-zero block gets
/// `d = 0`, zero `qs`, and its `bsums` are left as they were, as in ggml).
///
/// # Safety
/// `k` is a multiple of 256 (0 allowed); `x` holds `k` floats, `y` `k/256·292` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q8_K(x: *const f32, y: *mut c_void, k: i64) {
    let blocks = k as usize / q8k::BLOCK;
    // SAFETY: sizes per the contract.
    let (x, y) = unsafe {
        (
            std::slice::from_raw_parts(x, blocks * q8k::BLOCK),
            std::slice::from_raw_parts_mut(y as *mut u8, blocks * q8k::BLOCK_BYTES),
        )
    };
    for (xb, yb) in x
        .chunks_exact(q8k::BLOCK)
        .zip(y.chunks_exact_mut(q8k::BLOCK_BYTES))
    {
        q8k::quantize_block(xb, yb);
    }
}

/// ggml `ggml_vec_dot_tq1_0_q8_K` (`nrc` must be 1; `bs`, `bx`, `by` are ignored). The integer
/// block sums are exact; the float sum runs in block order as ggml's reference does.
///
/// # Safety
/// `n` is a multiple of 256; `vx` holds `n/256` TQ1_0 blocks, `vy` `n/256` Q8_K blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_vec_dot_tq1_0_q8_K(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) {
    let _ = (bs, bx, by, nrc);
    unsafe { vec_dot_tq_q8k(tq::Kind::Tq1_0, n, s, vx, vy) }
}

/// ggml `ggml_vec_dot_tq2_0_q8_K`; see `tern_ggml_vec_dot_tq1_0_q8_K`.
///
/// # Safety
/// `n` is a multiple of 256; `vx` holds `n/256` TQ2_0 blocks, `vy` `n/256` Q8_K blocks.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_vec_dot_tq2_0_q8_K(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) {
    let _ = (bs, bx, by, nrc);
    unsafe { vec_dot_tq_q8k(tq::Kind::Tq2_0, n, s, vx, vy) }
}

/// ggml `quantize_tq1_0` (chunk quantizer): `nrow` rows of `n_per_row` floats; returns the bytes
/// written. The importance matrix is ignored, as in ggml.
///
/// # Safety
/// `n_per_row` is a multiple of 256; buffers hold `nrow` rows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_tq1_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    unsafe { tern_ggml_quantize_row_tq1_0(src, dst, nrow * n_per_row) };
    (nrow * n_per_row) as usize / tq::BLOCK * tq1_0::BLOCK_BYTES
}

/// ggml `quantize_tq2_0` (chunk quantizer); see `tern_ggml_quantize_tq1_0`.
///
/// # Safety
/// `n_per_row` is a multiple of 256; buffers hold `nrow` rows.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_tq2_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    unsafe { tern_ggml_quantize_row_tq2_0(src, dst, nrow * n_per_row) };
    (nrow * n_per_row) as usize / tq::BLOCK * tq2_0::BLOCK_BYTES
}
