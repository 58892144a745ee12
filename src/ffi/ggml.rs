#![allow(non_snake_case)] // ggml's own names (q8_K, tq1_0_q8_K) are kept verbatim.
//! The raw tier: functions with the exact signatures of ggml / bitnet.cpp type traits, so a
//! llama.cpp fork can point its type table at them. Like ggml they return `void` (or a byte
//! count), so there is no status; instead each function checks its arguments before it touches
//! any buffer and, on input it cannot take, writes nothing (every output keeps its bytes; the
//! byte-count functions return 0), records a message for `tern_last_error_message()` and returns.
//! A successful call clears the last error. Bodies run inside the same panic boundary as the rest
//! of the C API (`boundary::value_call`): nothing unwinds into C and nothing aborts the host.
//!
//! Checked everywhere: counts are non-negative and whole blocks; strided extents do not overflow;
//! no buffer spans more than PTRDIFF_MAX bytes; pointers are non-NULL, except that a buffer of
//! zero length is never read or written and may be NULL; `float` / `int32_t` pointers are aligned
//! to 4 bytes. Block pointers (`void *`) need no alignment: ggml guarantees none. What no check
//! can see is whether a buffer really holds the bytes its sizes address: that stays the caller's
//! contract (`# Safety` of each function). Nothing is allocated per call.

use std::ffi::{c_int, c_void};
use std::sync::OnceLock;

use half::f16;

use super::args::{slice, slice_mut};
use super::boundary::value_call;
use crate::error::{Error, Result};
use crate::format::{I2sVariant, i2s, tq};
use crate::kernel::Kernels;
use crate::quant::activation::Arith;
use crate::quant::q8k;

/// bitnet.cpp's x86 `PARALLEL_SIZE`: `nrc` divisible by it selects the activation-parallel path.
const PARALLEL_SIZE: usize = 4;

/// The raw tier has no context: it runs the best level's row of the ISA table.
fn kernels() -> &'static Kernels {
    static BEST: OnceLock<&'static Kernels> = OnceLock::new();
    BEST.get_or_init(Kernels::best)
}

/// Runs a raw-tier body at the C boundary: on error or panic the last error names `function`
/// and `fallback` is returned.
pub(super) fn raw_call<T>(function: &str, fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    value_call(fallback, || {
        body().map_err(|e| Error::new(e.kind, format!("{function}: {}", e.message)))
    })
}

/// A count of elements `v` that must be ≥ 0 and a multiple of `block`.
pub(super) fn whole_blocks(v: i64, block: usize, name: &str) -> Result<usize> {
    let n =
        usize::try_from(v).map_err(|_| Error::invalid(format!("{name} must be >= 0 (got {v})")))?;
    if !n.is_multiple_of(block) {
        return Err(Error::invalid(format!(
            "{name} = {n} is not a multiple of the block size {block}"
        )));
    }
    Ok(n)
}

/// `rows · per_row` as an element count (both ≥ 0, the product fits).
pub(super) fn product(rows: i64, per_row: i64) -> Result<i64> {
    if rows < 0 || per_row < 0 {
        return Err(Error::invalid(format!(
            "nrow = {rows} and n_per_row = {per_row} must be >= 0"
        )));
    }
    rows.checked_mul(per_row)
        .ok_or_else(|| Error::invalid(format!("nrow·n_per_row = {rows}·{per_row} overflows int64")))
}

/// Elements spanned by `count` ≥ 1 items of `len` elements, `stride` apart.
fn span(count: usize, stride: usize, len: usize, name: &str) -> Result<usize> {
    (count - 1)
        .checked_mul(stride)
        .and_then(|v| v.checked_add(len))
        .ok_or_else(|| {
            Error::invalid(format!(
                "{name}: {count} items {stride} apart overflow size_t"
            ))
        })
}

/// A buffer read by the raw tier; with `len` 0 it is not touched and may be NULL.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` readable elements for the returned lifetime.
pub(super) unsafe fn input<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    if len == 0 {
        return Ok(&[]);
    }
    unsafe { slice(ptr, len, name) }
}

/// A buffer written by the raw tier; with `len` 0 it is not touched and may be NULL.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` writable elements, not aliased, for the returned lifetime.
pub(super) unsafe fn output<'a, T>(ptr: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    if len == 0 {
        return Ok(&mut []);
    }
    unsafe { slice_mut(ptr, len, name) }
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
/// Checked: `n` > 0 and a multiple of 128; `nrc` > 0; `s`, `vx`, `vy` non-NULL, `s` 4-byte
/// aligned; the strided extents fit in PTRDIFF_MAX bytes. Otherwise nothing is written to `s`
/// and the last error says why; a successful call clears it.
///
/// # Safety
/// The buffers hold what the strides above address.
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
    raw_call("tern_ggml_vec_dot_i2_i8_s", (), || unsafe {
        vec_dot_i2_i8_s(n, s, bs, vx, bx, vy, by, nrc)
    })
}

#[allow(clippy::too_many_arguments)] // ggml's vec_dot signature
unsafe fn vec_dot_i2_i8_s(
    n: c_int,
    s: *mut f32,
    bs: usize,
    vx: *const c_void,
    bx: usize,
    vy: *const c_void,
    by: usize,
    nrc: c_int,
) -> Result<()> {
    let n = whole_blocks(n.into(), I2sVariant::X86.block_len(), "n")?;
    if n == 0 {
        return Err(Error::invalid("n must be > 0 (got 0)"));
    }
    let nrc = usize::try_from(nrc)
        .ok()
        .filter(|&r| r > 0)
        .ok_or_else(|| Error::invalid(format!("nrc must be > 0 (got {nrc})")))?;
    let run = kernels().i2s_dots.run;
    let mut dots = [0i32; 64];
    if nrc.is_multiple_of(PARALLEL_SIZE) {
        // SAFETY (all three): sizes per the contract, checked for NULL, alignment and range.
        let row = unsafe { slice(vx as *const u8, n / 4, "vx") }?;
        let acts = unsafe { slice(vy as *const i8, span(nrc, by, n, "vy")?, "vy") }?;
        let s = unsafe { slice_mut(s, span(nrc, bs, 1, "s")?, "s") }?;
        for first in (0..nrc).step_by(dots.len()) {
            let count = dots.len().min(nrc - first);
            let acts = &acts[first * by..][..(count - 1) * by + n];
            run(I2sVariant::X86, row, n, acts, by, count, &mut dots[..count]);
            for (c, &d) in dots[..count].iter().enumerate() {
                s[(first + c) * bs] = d as f32;
            }
        }
    } else {
        // Row `r` starts at byte `r·bx/4` (ggml computes the element offset, then divides).
        let last_row = (nrc - 1)
            .checked_mul(bx)
            .ok_or_else(|| Error::invalid(format!("vx: {nrc} rows {bx} apart overflow size_t")))?
            / 4;
        // SAFETY (all three): as above.
        let weights = unsafe { slice(vx as *const u8, last_row + n / 4, "vx") }?;
        let acts = unsafe { slice(vy as *const i8, n, "vy") }?;
        let s = unsafe { slice_mut(s, nrc, "s") }?;
        for (r, out) in s.iter_mut().enumerate() {
            let row = &weights[r * bx / 4..][..n / 4];
            run(I2sVariant::X86, row, n, acts, n, 1, &mut dots[..1]);
            *out = dots[0] as f32;
        }
    }
    Ok(())
}

/// bitnet.cpp `quantize_i2_s` (ggml's chunk-quantizer signature): packs `nrow · n_per_row`
/// already-ternary floats (ternary × one scale) into the x86 I2_S layout at `dst` — codes, the f32
/// scale (max |w|) and 28 zero bytes — and returns `nrow·n_per_row/4 + 32`. `quant_weights` is
/// ignored, as in bitnet.cpp.
///
/// Checked: `nrow`, `n_per_row` ≥ 0 with a product that is a positive multiple of 128; `src`
/// (4-byte aligned) and `dst` non-NULL. Otherwise it returns 0, writes nothing and the last error
/// says why; a successful call clears it.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats and `dst` `nrow·n_per_row/4 + 32` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_i2_s(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    quant_weights: *const f32,
) -> usize {
    let _ = quant_weights;
    raw_call("tern_ggml_quantize_i2_s", 0, || unsafe {
        quantize_i2_s(src, dst, nrow, n_per_row)
    })
}

unsafe fn quantize_i2_s(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
) -> Result<usize> {
    let block = I2sVariant::X86.block_len();
    let n = whole_blocks(product(nrow, n_per_row)?, block, "nrow·n_per_row")?;
    if n == 0 {
        return Err(Error::invalid("nrow·n_per_row must be > 0 (got 0)"));
    }
    let size = n / 4 + i2s::TAIL_BYTES;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (src, dst) = unsafe {
        (
            slice(src, n, "src")?,
            slice_mut(dst as *mut u8, size, "dst")?,
        )
    };
    // bitnet.cpp's rule without a ternary buffer (the raw tier does not allocate): the scale is
    // max|w|, then each 128-element block is ternarized on the stack and packed.
    let scale = src.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64)) as f32;
    let (codes, tail) = dst.split_at_mut(n / 4);
    let mut ternary = [0i8; 128];
    for (block, out) in src.chunks_exact(block).zip(codes.chunks_exact_mut(32)) {
        crate::quant::weight::prescaled(block, &mut ternary);
        i2s::pack_codes(I2sVariant::X86, &ternary, out);
    }
    tail[..4].copy_from_slice(&scale.to_le_bytes());
    tail[4..].fill(0);
    Ok(size)
}

/// bitnet.cpp `quantize_row_i8_s` as the current fork computes it (`TERN_COMPAT_BITNET_CPP`):
/// `n` floats → int8 at `y`, `*act_scales = 127/absmax`, `*act_sums = Σ q`.
///
/// Checked: `n` > 0; `x`, `y`, `act_scales`, `act_sums` non-NULL, `x`, `act_scales` and
/// `act_sums` 4-byte aligned. Otherwise nothing is written and the last error says why; a
/// successful call clears it.
///
/// # Safety
/// `x` holds `n` floats, `y` `n` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_i8_s(
    x: *const f32,
    y: *mut c_void,
    n: i64,
    act_scales: *mut f32,
    act_sums: *mut i32,
) {
    raw_call("tern_ggml_quantize_row_i8_s", (), || unsafe {
        quantize_row(Arith::I2sCurrent, x, y, n, act_scales, act_sums)
    })
}

/// Like `tern_ggml_quantize_row_i8_s` with the merge-dev arithmetic
/// (`TERN_COMPAT_BITNET_CPP_LEGACY`: f64 absmax floored at 1e-5, half-to-even).
///
/// Checked, and on failure: as for `tern_ggml_quantize_row_i8_s`.
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
    raw_call("tern_ggml_quantize_row_i8_s_legacy", (), || unsafe {
        quantize_row(Arith::I2sLegacy, x, y, n, act_scales, act_sums)
    })
}

unsafe fn quantize_row(
    arith: Arith,
    x: *const f32,
    y: *mut c_void,
    n: i64,
    scale: *mut f32,
    sum: *mut i32,
) -> Result<()> {
    let n = whole_blocks(n, 1, "n")?;
    if n == 0 {
        return Err(Error::invalid("n must be > 0 (got 0)"));
    }
    // SAFETY: sizes per the callers' contracts, checked for NULL, alignment and range.
    let (x, q, scale, sum) = unsafe {
        (
            slice(x, n, "x")?,
            slice_mut(y as *mut i8, n, "y")?,
            slice_mut(scale, 1, "act_scales")?,
            slice_mut(sum, 1, "act_sums")?,
        )
    };
    (scale[0], sum[0]) = arith.quantize_token(kernels().quantize_token, x, q);
    Ok(())
}

/// Quantizes `k` floats into TQ blocks with ggml's reference rule (`quantize_row_tqX_0_ref`): per
/// block `d = max|x|`, `t = round_half_away(x/d)`. `names` are the C names of `x` and `y`.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/256` blocks.
unsafe fn quantize_row_tq(
    kind: tq::Kind,
    x: *const f32,
    y: *mut c_void,
    k: i64,
    names: [&str; 2],
) -> Result<()> {
    let codec = kind.codec();
    let blocks = whole_blocks(k, tq::BLOCK, "k")? / tq::BLOCK;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (x, y) = unsafe {
        (
            input(x, blocks * tq::BLOCK, names[0])?,
            output(y as *mut u8, blocks * codec.block_bytes, names[1])?,
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
    Ok(())
}

/// Writes `k` floats `(t − 1)·d` from `k/256` TQ blocks (ggml `to_float`).
///
/// # Safety
/// `x` holds `k/256` blocks, `y` `k` floats.
unsafe fn dequantize_row_tq(kind: tq::Kind, x: *const c_void, y: *mut f32, k: i64) -> Result<()> {
    let codec = kind.codec();
    let blocks = whole_blocks(k, tq::BLOCK, "k")? / tq::BLOCK;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range. The float output
    // is checked first: its byte size is the larger, so a count beyond PTRDIFF_MAX stops there.
    let (y, x) = unsafe {
        (
            output(y, blocks * tq::BLOCK, "y")?,
            input(x as *const u8, blocks * codec.block_bytes, "x")?,
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
    Ok(())
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
    nrc: c_int,
) -> Result<()> {
    let codec = kind.codec();
    let blocks = whole_blocks(n.into(), tq::BLOCK, "n")? / tq::BLOCK;
    if nrc != 1 {
        return Err(Error::invalid(format!(
            "nrc must be 1 (the type's nrows; got {nrc})"
        )));
    }
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (x, y, s) = unsafe {
        (
            input(x as *const u8, blocks * codec.block_bytes, "vx")?,
            input(y as *const u8, blocks * q8k::BLOCK_BYTES, "vy")?,
            slice_mut(s, 1, "s")?,
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
    s[0] = sum;
    Ok(())
}

/// ggml `quantize_row_tq1_0` (`from_float` of TQ1_0), bit-exact with the reference.
///
/// Checked: `k` ≥ 0 and a multiple of 256 (0 writes nothing); for `k` > 0, `x` (4-byte aligned)
/// and `y` non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/256·54` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_tq1_0(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_tq1_0", (), || unsafe {
        quantize_row_tq(tq::Kind::Tq1_0, x, y, k, ["x", "y"])
    })
}

/// ggml `quantize_row_tq2_0` (`from_float` of TQ2_0), bit-exact with the reference.
///
/// Checked, and on failure: as for `tern_ggml_quantize_row_tq1_0`.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/256·66` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_tq2_0(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_tq2_0", (), || unsafe {
        quantize_row_tq(tq::Kind::Tq2_0, x, y, k, ["x", "y"])
    })
}

/// ggml `dequantize_row_tq1_0` (`to_float`).
///
/// Checked: `k` ≥ 0 and a multiple of 256 (0 writes nothing); for `k` > 0, `x` and `y` (4-byte
/// aligned) non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k/256` blocks (54 bytes each), `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_tq1_0(x: *const c_void, y: *mut f32, k: i64) {
    raw_call("tern_ggml_dequantize_row_tq1_0", (), || unsafe {
        dequantize_row_tq(tq::Kind::Tq1_0, x, y, k)
    })
}

/// ggml `dequantize_row_tq2_0` (`to_float`).
///
/// Checked, and on failure: as for `tern_ggml_dequantize_row_tq1_0`.
///
/// # Safety
/// `x` holds `k/256` blocks (66 bytes each), `y` `k` floats.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_dequantize_row_tq2_0(x: *const c_void, y: *mut f32, k: i64) {
    raw_call("tern_ggml_dequantize_row_tq2_0", (), || unsafe {
        dequantize_row_tq(tq::Kind::Tq2_0, x, y, k)
    })
}

/// ggml `quantize_row_q8_K`, bit-exact with `quantize_row_q8_K_ref` (an all-zero block gets
/// `d = 0`, zero `qs`, and its `bsums` are left as they were, as in ggml).
///
/// Checked: `k` ≥ 0 and a multiple of 256 (0 writes nothing); for `k` > 0, `x` (4-byte aligned)
/// and `y` non-NULL. Otherwise nothing is written and the last error says why; a successful call
/// clears it.
///
/// # Safety
/// `x` holds `k` floats, `y` `k/256·292` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_row_q8_K(x: *const f32, y: *mut c_void, k: i64) {
    raw_call("tern_ggml_quantize_row_q8_K", (), || unsafe {
        quantize_row_q8k(x, y, k)
    })
}

unsafe fn quantize_row_q8k(x: *const f32, y: *mut c_void, k: i64) -> Result<()> {
    let blocks = whole_blocks(k, q8k::BLOCK, "k")? / q8k::BLOCK;
    // SAFETY: sizes per the contract, checked for NULL, alignment and range.
    let (x, y) = unsafe {
        (
            input(x, blocks * q8k::BLOCK, "x")?,
            output(y as *mut u8, blocks * q8k::BLOCK_BYTES, "y")?,
        )
    };
    for (xb, yb) in x
        .chunks_exact(q8k::BLOCK)
        .zip(y.chunks_exact_mut(q8k::BLOCK_BYTES))
    {
        q8k::quantize_block(xb, yb);
    }
    Ok(())
}

/// ggml `ggml_vec_dot_tq1_0_q8_K` (`bs`, `bx`, `by` are ignored). The integer block sums are
/// exact; the float sum runs in block order as ggml's reference does.
///
/// Checked: `n` ≥ 0 and a multiple of 256 (0 gives `*s = 0`); `nrc` = 1; `s` non-NULL and 4-byte
/// aligned; for `n` > 0, `vx` and `vy` non-NULL. Otherwise `*s` is not written and the last error
/// says why; a successful call clears it.
///
/// # Safety
/// `vx` holds `n/256` TQ1_0 blocks, `vy` `n/256` Q8_K blocks.
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
    let _ = (bs, bx, by);
    raw_call("tern_ggml_vec_dot_tq1_0_q8_K", (), || unsafe {
        vec_dot_tq_q8k(tq::Kind::Tq1_0, n, s, vx, vy, nrc)
    })
}

/// ggml `ggml_vec_dot_tq2_0_q8_K`; see `tern_ggml_vec_dot_tq1_0_q8_K`.
///
/// Checked, and on failure: as for `tern_ggml_vec_dot_tq1_0_q8_K`.
///
/// # Safety
/// `vx` holds `n/256` TQ2_0 blocks, `vy` `n/256` Q8_K blocks.
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
    let _ = (bs, bx, by);
    raw_call("tern_ggml_vec_dot_tq2_0_q8_K", (), || unsafe {
        vec_dot_tq_q8k(tq::Kind::Tq2_0, n, s, vx, vy, nrc)
    })
}

/// A TQ chunk: `nrow` rows of `n_per_row` (a multiple of 256) floats; returns the bytes written.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats, `dst` the blocks they make.
unsafe fn quantize_tq(
    kind: tq::Kind,
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
) -> Result<usize> {
    whole_blocks(n_per_row, tq::BLOCK, "n_per_row")?;
    let k = product(nrow, n_per_row)?;
    unsafe { quantize_row_tq(kind, src, dst, k, ["src", "dst"]) }?;
    Ok(k as usize / tq::BLOCK * kind.codec().block_bytes)
}

/// ggml `quantize_tq1_0` (chunk quantizer): `nrow` rows of `n_per_row` floats; returns the bytes
/// written (`nrow·n_per_row/256·54`). The importance matrix is ignored, as in ggml.
///
/// Checked: `nrow` ≥ 0; `n_per_row` ≥ 0 and a multiple of 256; the product fits; for a non-empty
/// chunk, `src` (4-byte aligned) and `dst` non-NULL. Otherwise it returns 0, writes nothing and
/// the last error says why (an empty chunk also returns 0, with no error); a successful call
/// clears it.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats, `dst` the bytes returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_tq1_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    raw_call("tern_ggml_quantize_tq1_0", 0, || unsafe {
        quantize_tq(tq::Kind::Tq1_0, src, dst, nrow, n_per_row)
    })
}

/// ggml `quantize_tq2_0` (chunk quantizer; `nrow·n_per_row/256·66` bytes); see
/// `tern_ggml_quantize_tq1_0`.
///
/// Checked, and on failure: as for `tern_ggml_quantize_tq1_0`.
///
/// # Safety
/// `src` holds `nrow·n_per_row` floats, `dst` the bytes returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ggml_quantize_tq2_0(
    src: *const f32,
    dst: *mut c_void,
    nrow: i64,
    n_per_row: i64,
    imatrix: *const f32,
) -> usize {
    let _ = imatrix;
    raw_call("tern_ggml_quantize_tq2_0", 0, || unsafe {
        quantize_tq(tq::Kind::Tq2_0, src, dst, nrow, n_per_row)
    })
}
