//! `tern_matrix`: create from packed bytes or floats, inspect, multiply.

use std::ffi::c_void;

use super::args::{
    Span, check_no_overlap, check_output, handle_out, optional_slice, positive, read_options,
    reference, slice, slice_mut, stride, write_output,
};
use super::boundary::status_call;
use super::context::{context_or_global, tern_context};
use super::types::{
    tern_gemm_options, tern_layout, tern_matrix_properties, tern_quant_options, tern_quant_stats,
    tern_status,
};
use super::weights::{in_bytes, layout_arg, quant_config_arg, stats_out};
use crate::error::{Error, Result};
use crate::format::{Layout, Shape};
use crate::matrix::{Activations, GemmOptions, GemmOutput, Matrix, strided_len};
use crate::quant::Compat;

/// A packed ternary weight matrix, validated once, with the kernel chosen by the context it was
/// created with. Immutable: any number of threads may multiply with it at once. Free with
/// `tern_matrix_destroy`.
pub struct tern_matrix {
    pub(crate) inner: Matrix,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<tern_matrix>();
};

/// Stores a new matrix in `*out` (set to NULL first; NULL or misaligned `out` is an error).
///
/// # Safety
/// Non-NULL, aligned `out` must be writable.
unsafe fn publish(out: *mut *mut tern_matrix, make: impl FnOnce() -> Result<Matrix>) -> Result<()> {
    unsafe { handle_out(out, "out") }?;
    let inner = make()?;
    unsafe { *out = Box::into_raw(Box::new(tern_matrix { inner })) };
    Ok(())
}

/// Validates a packed `rows × cols` buffer (`packed_len` ≥ `tern_packed_size`) and copies it into a new
/// matrix whose kernel is chosen from `ctx` (NULL = default context). Corrupt data is
/// `TERN_STATUS_INVALID_ARGUMENT`; memory the system refuses for the matrix's copy is
/// `TERN_STATUS_OUT_OF_MEMORY`. The caller keeps ownership of `packed`. Thread-safe.
///
/// # Safety
/// `packed` must hold `packed_len` bytes; `out` must be writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_create(
    ctx: *const tern_context,
    layout: *const tern_layout,
    packed: *const c_void,
    packed_len: usize,
    rows: i64,
    cols: i64,
    out: *mut *mut tern_matrix,
) -> tern_status {
    status_call(|| unsafe {
        publish(out, || {
            let ctx = context_or_global(ctx)?;
            let layout = layout_arg(layout, "layout")?;
            let shape = Shape::new(rows, cols)?;
            let packed = in_bytes(packed, packed_len, layout.packed_size(shape)?, "packed")?;
            Matrix::from_packed(ctx, layout, shape, packed)
        })
    })
}

/// Quantizes a row-major `rows × cols` f32 matrix `w` (options as `tern_quantize`; `opts` and
/// `stats` nullable) into a new matrix. Thread-safe.
///
/// # Safety
/// `w` must hold `rows·cols` floats; `out` must be writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_from_f32(
    ctx: *const tern_context,
    layout: *const tern_layout,
    w: *const f32,
    rows: i64,
    cols: i64,
    opts: *const tern_quant_options,
    stats: *mut tern_quant_stats,
    out: *mut *mut tern_matrix,
) -> tern_status {
    status_call(|| unsafe {
        publish(out, || {
            let ctx = context_or_global(ctx)?;
            let layout = layout_arg(layout, "layout")?;
            let shape = Shape::new(rows, cols)?;
            layout.check_shape(shape)?;
            let w = slice(w, shape.elements(), "w")?;
            let cfg = quant_config_arg(opts, layout)?;
            if !stats.is_null() {
                check_output(stats, "stats")?;
            }
            // The quantizer names its input `src` (the argument of tern_quantize); here the
            // caller's argument is `w`.
            let (matrix, s) = Matrix::from_f32(ctx, layout, shape, w, &cfg).map_err(|e| match e
                .message
                .strip_prefix("src[")
            {
                Some(rest) => Error::new(e.kind, format!("w[{rest}")),
                None => e,
            })?;
            if !stats.is_null() {
                write_output(stats, &stats_out(&s));
            }
            Ok(matrix)
        })
    })
}

/// Frees a matrix. NULL is a no-op; destroying twice or while in use is undefined behaviour.
///
/// # Safety
/// Non-NULL `matrix` must come from a `tern_matrix_*` constructor and not be destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_destroy(matrix: *mut tern_matrix) {
    unsafe { super::boundary::free_handle(matrix) }
}

/// Fills `*info` (caller sets `info->struct_size`, e.g. with `TERN_MATRIX_PROPERTIES_INIT`).
/// Thread-safe.
///
/// # Safety
/// `matrix` must be live; `info` must be writable for `info->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_info(
    matrix: *const tern_matrix,
    info: *mut tern_matrix_properties,
) -> tern_status {
    status_call(|| unsafe {
        let m = &reference(matrix, "matrix")?.inner;
        check_output(info, "info")?;
        // Only I2_S has variants; every other format reports 0.
        let variant = match m.layout() {
            Layout::I2s(v) => v as u32,
            _ => 0,
        };
        let value = tern_matrix_properties {
            struct_size: 0,
            format: m.layout().format() as i32,
            variant,
            rows: m.shape().rows as i64,
            cols: m.shape().cols as i64,
            packed_bytes: m.packed_bytes(),
            scale: m.first_scale(),
            kernel_name: m.kernel_name().as_ptr(),
        };
        write_output(info, &value);
        Ok(())
    })
}

const DEFAULT_GEMM_OPTIONS: tern_gemm_options = tern_gemm_options {
    struct_size: size_of::<tern_gemm_options>() as u32,
    compat: 0,
    row_begin: 0,
    row_end: 0,
    bias: std::ptr::null(),
};

/// The elements of `y` a call writes: rows `opts.rows` of each token.
fn y_span(y: *const f32, n: usize, y_stride: usize, opts: &GemmOptions) -> Span {
    let rows = opts
        .rows
        .clone()
        .expect("gemm_options_arg sets the row range");
    Span::rows("y", y, n, y_stride, rows).written()
}

/// The bias entries a call reads (`opts.rows`), or an empty span without a bias.
fn bias_span(opts: &GemmOptions) -> Span {
    let rows = opts
        .rows
        .clone()
        .expect("gemm_options_arg sets the row range");
    let ptr = opts.bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
    Span::rows("opts->bias", ptr, 1, rows.end, rows)
}

/// Reads `tern_gemm_options` (NULL = defaults) for a matrix with `rows` output rows.
unsafe fn gemm_options_arg<'a>(
    opts: *const tern_gemm_options,
    rows: usize,
) -> Result<GemmOptions<'a>> {
    let o = unsafe { read_options(opts, DEFAULT_GEMM_OPTIONS, "opts") }?;
    let compat = Compat::from_i32(o.compat)?;
    let end = if o.row_end == 0 {
        rows as i64
    } else {
        o.row_end
    };
    if o.row_begin < 0 || o.row_begin >= end || end > rows as i64 {
        return Err(Error::invalid(format!(
            "row range [row_begin, row_end) = [{}, {}) must satisfy 0 <= row_begin < row_end <= rows = {rows} (row_end 0 = rows)",
            o.row_begin, o.row_end
        )));
    }
    let bias = unsafe { optional_slice(o.bias, rows, "opts->bias") }?;
    Ok(GemmOptions {
        compat,
        rows: Some(o.row_begin as usize..end as usize),
        bias,
    })
}

/// `y[t][r] = Σ_k W[r][k]·x[t][k]` for `n_tokens` tokens, BitNet style: each token of `x` (row
/// `t` at `x + t·x_stride`, stride 0 = cols) is quantized to int8 per `opts->compat`; output row
/// `t` is at `y + t·y_stride` (0 = rows). `opts` may be NULL. Only rows `[row_begin, row_end)`
/// of each output token are written. `ctx` (NULL = default) supplies the threads. Thread-safe.
///
/// No in-place use: a call whose written part of `y` shares a byte with the part of `x` it reads
/// (`cols` floats of each token) or with `opts->bias[row_begin..row_end]` fails with
/// `TERN_STATUS_INVALID_ARGUMENT` (the message names both byte ranges); strided buffers that
/// interleave without sharing a byte are accepted.
///
/// Scratch: each calling thread keeps the buffers of its calls for the next (no allocation on
/// the steady path), at most 2 MiB of them: a call that needs more runs in chunks of tokens
/// (the results are the same), and scratch above 2 MiB after a call (a matrix so wide that 12
/// tokens need more) is freed. An allocation the system refuses is
/// `TERN_STATUS_OUT_OF_MEMORY` with nothing written to `y`.
///
/// # Safety
/// `x` and `y` must hold the strided sizes above; `matrix` must be live.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gemm(
    ctx: *const tern_context,
    matrix: *const tern_matrix,
    x: *const f32,
    n_tokens: i64,
    x_stride: i64,
    y: *mut f32,
    y_stride: i64,
    opts: *const tern_gemm_options,
) -> tern_status {
    status_call(|| unsafe {
        let ctx = context_or_global(ctx)?;
        let m = &reference(matrix, "matrix")?.inner;
        let Shape { rows, cols } = m.shape();
        let n = positive(n_tokens, "n_tokens")?;
        let x_stride = stride(x_stride, cols, "x_stride")?;
        let y_stride = stride(y_stride, rows, "y_stride")?;
        let x = slice(x, strided_len("x", n, x_stride, cols)?, "x")?;
        let y_len = strided_len("y", n, y_stride, rows)?;
        let opts = gemm_options_arg(opts, rows)?;
        check_no_overlap(&[
            y_span(y, n, y_stride, &opts),
            Span::rows("x", x.as_ptr(), n, x_stride, 0..cols),
            bias_span(&opts),
        ])?;
        let y = slice_mut(y, y_len, "y")?;
        let out = GemmOutput {
            y,
            n_tokens: n,
            stride: y_stride,
        };
        m.gemm(ctx, x, x_stride, out, &opts)
    })
}

/// Like `tern_gemm` for activations the caller already quantized (e.g. with
/// `tern_quantize_activations`): `q` holds `n_tokens` rows of `cols` int8 (stride `q_stride`, 0 =
/// cols), `scales` and `sums` one entry per token. `opts->compat` selects the epilogue. As for
/// `tern_gemm`, the written part of `y` must not share a byte with `q`, `scales`, `sums` or the
/// bias (`TERN_STATUS_INVALID_ARGUMENT`), and scratch is bounded the same way.
///
/// # Safety
/// Buffers must hold the sizes above; `matrix` must be live.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gemm_i8(
    ctx: *const tern_context,
    matrix: *const tern_matrix,
    q: *const i8,
    scales: *const f32,
    sums: *const i32,
    n_tokens: i64,
    q_stride: i64,
    y: *mut f32,
    y_stride: i64,
    opts: *const tern_gemm_options,
) -> tern_status {
    status_call(|| unsafe {
        let ctx = context_or_global(ctx)?;
        let m = &reference(matrix, "matrix")?.inner;
        let Shape { rows, cols } = m.shape();
        let n = positive(n_tokens, "n_tokens")?;
        let q_stride = stride(q_stride, cols, "q_stride")?;
        let y_stride = stride(y_stride, rows, "y_stride")?;
        let acts = Activations {
            q: slice(q, strided_len("q", n, q_stride, cols)?, "q")?,
            stride: q_stride,
            scales: slice(scales, n, "scales")?,
            sums: slice(sums, n, "sums")?,
        };
        let y_len = strided_len("y", n, y_stride, rows)?;
        let opts = gemm_options_arg(opts, rows)?;
        check_no_overlap(&[
            y_span(y, n, y_stride, &opts),
            Span::rows("q", acts.q.as_ptr(), n, q_stride, 0..cols),
            Span::rows("scales", acts.scales.as_ptr(), 1, n, 0..n),
            Span::rows("sums", acts.sums.as_ptr(), 1, n, 0..n),
            bias_span(&opts),
        ])?;
        let y = slice_mut(y, y_len, "y")?;
        let out = GemmOutput {
            y,
            n_tokens: n,
            stride: y_stride,
        };
        m.gemm_i8(ctx, &acts, out, &opts)
    })
}
