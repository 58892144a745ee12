//! The raw tier: functions with the exact signatures of ggml / bitnet.cpp type traits, so a
//! llama.cpp fork can point its type table at them. They return `void` like ggml, check nothing
//! (the preconditions are documented), set no last error and allocate nothing per call beyond
//! what the kernel needs. A panic here aborts the process (Rust's `extern "C"` guarantee): it can
//! never unwind into C.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use crate::format::{I2sVariant, i2s};
use crate::kernel::{Isa, Kernels};
use crate::quant::Compat;

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
    let mut ternary = vec![0i8; n];
    let scale = crate::quant::weight::prescaled(src, &mut ternary);
    i2s::pack(I2sVariant::X86, &ternary, scale, dst);
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
    unsafe { quantize_row(Compat::BitnetCpp, x, y, n, act_scales, act_sums) }
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
    unsafe { quantize_row(Compat::BitnetCppLegacy, x, y, n, act_scales, act_sums) }
}

unsafe fn quantize_row(
    compat: Compat,
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
    let (s, total) = compat.quantize_token(x, q);
    unsafe {
        *scale = s;
        *sum = total;
    }
}
