//! Weight and activation entry points: sizes, quantize, pack, unpack, dequantize.

use super::args::{
    Span, check_no_overlap, check_output, optional_slice_mut, optional_span, positive,
    read_options, reference, slice, slice_mut, span, stride, write_output,
};
use super::boundary::status_call;
use super::context::{context_or_global, tern_context};
use super::types::{
    tern_convert_options, tern_layout, tern_quant_options, tern_quant_stats, tern_status,
};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{Layout, Shape};
use crate::matrix::strided_len;
use crate::quant::{Compat, QuantConfig, QuantStats, quantize_packed, weight::DEFAULT_EPS};

/// Reads and validates a required `tern_layout`.
///
/// # Safety
/// Non-NULL `layout` must point to at least `layout->struct_size` readable bytes.
pub(crate) unsafe fn layout_arg(layout: *const tern_layout, name: &str) -> Result<Layout> {
    unsafe { reference(layout, name) }?;
    let empty = tern_layout {
        struct_size: 0,
        format: 0,
        variant: 0,
        tile_rows: 0,
        tile_k: 0,
        simd_rows: 0,
    };
    let l = unsafe { read_options(layout, empty, name) }?;
    // Name the argument: tern_convert takes two layouts, and "format 0 is unknown" alone
    // does not say which one is wrong.
    Layout::new(l.format, l.variant, l.tile_rows, l.tile_k, l.simd_rows)
        .map_err(|e| Error::new(e.kind, format!("{name}: {}", e.message)))
}

pub(crate) const DEFAULT_QUANT_OPTIONS: tern_quant_options = tern_quant_options {
    struct_size: size_of::<tern_quant_options>() as u32,
    method: 0,
    group_size: 0,
    eps: DEFAULT_EPS,
};

/// Reads `tern_quant_options` (NULL = defaults) and validates them for `layout`.
///
/// # Safety
/// As for `read_options`.
pub(crate) unsafe fn quant_config_arg(
    opts: *const tern_quant_options,
    layout: Layout,
) -> Result<QuantConfig> {
    let o = unsafe { read_options(opts, DEFAULT_QUANT_OPTIONS, "opts") }?;
    QuantConfig::new(o.method, o.group_size, o.eps, Some(layout))
}

pub(crate) fn stats_out(s: &QuantStats) -> tern_quant_stats {
    tern_quant_stats {
        struct_size: size_of::<tern_quant_stats>() as u32,
        sparsity: s.sparsity,
        bits_per_weight: s.bits_per_weight,
        compression_vs_f32: s.compression_vs_f32,
        compression_vs_f16: s.compression_vs_f16,
        scale_min: s.scale_min,
        scale_max: s.scale_max,
        rmse: s.rmse,
    }
}

fn too_small(name: &str, len: usize, required: usize) -> Error {
    Error::new(
        ErrorKind::BufferTooSmall,
        format!("{name}_len {len} < required {required} bytes"),
    )
}

/// Checks a caller's byte buffer of `len` bytes that must hold `required` as `in_bytes` and
/// `out_bytes` do, without making a slice; its span is the `required` bytes a call touches.
fn bytes_span(
    name: &'static str,
    ptr: *const std::ffi::c_void,
    len: usize,
    required: usize,
) -> Result<Span> {
    span(name, ptr as *const u8, len)?;
    if len < required {
        return Err(too_small(name, len, required));
    }
    Ok(Span::flat(name, ptr as *const u8, required))
}

/// A caller's output byte buffer of `len` bytes that must hold `required`.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` writable bytes.
unsafe fn out_bytes<'a>(
    ptr: *mut std::ffi::c_void,
    len: usize,
    required: usize,
    name: &str,
) -> Result<&'a mut [u8]> {
    let buf = unsafe { slice_mut(ptr as *mut u8, len, name) }?;
    if len < required {
        return Err(too_small(name, len, required));
    }
    Ok(&mut buf[..required])
}

/// A caller's input byte buffer of `len` bytes that must hold `required`.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` readable bytes.
pub(crate) unsafe fn in_bytes<'a>(
    ptr: *const std::ffi::c_void,
    len: usize,
    required: usize,
    name: &str,
) -> Result<&'a [u8]> {
    let buf = unsafe { slice(ptr as *const u8, len, name) }?;
    if len < required {
        return Err(too_small(name, len, required));
    }
    Ok(&buf[..required])
}

/// Writes to `*out` the bytes a `rows × cols` matrix takes in `layout` (codes, scales and
/// padding). Thread-safe.
///
/// # Safety
/// `layout` and `out` must be valid pointers.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_packed_size(
    layout: *const tern_layout,
    rows: i64,
    cols: i64,
    out: *mut usize,
) -> tern_status {
    status_call(|| {
        let layout = unsafe { layout_arg(layout, "layout") }?;
        let out = unsafe { slice_mut(out, 1, "out") }?;
        out[0] = layout.packed_size(Shape::new(rows, cols)?)?;
        Ok(())
    })
}

/// Quantizes a row-major `rows × cols` f32 matrix `src` to ternary (Q1_0: binary ±1) and packs it
/// into `dst` (`dst_len` ≥ `tern_packed_size`). `opts` (nullable) picks the method (see
/// `tern_quant_method`: `TERN_QUANT_GGML_REF` is ggml's own quantizer of TQ1_0, TQ2_0, Q2_0 and
/// Q1_0, byte for byte); `stats` (nullable) receives what quantization did. `ctx` may be NULL. Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `src` must hold `rows·cols` floats, `dst` `dst_len` bytes; non-NULL structs must be valid.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_quantize(
    ctx: *const tern_context,
    layout: *const tern_layout,
    src: *const f32,
    rows: i64,
    cols: i64,
    opts: *const tern_quant_options,
    dst: *mut std::ffi::c_void,
    dst_len: usize,
    stats: *mut tern_quant_stats,
) -> tern_status {
    status_call(|| {
        unsafe { context_or_global(ctx) }?;
        let layout = unsafe { layout_arg(layout, "layout") }?;
        let shape = Shape::new(rows, cols)?;
        let required = layout.packed_size(shape)?;
        let src_span = span("src", src, shape.elements())?;
        let cfg = unsafe { quant_config_arg(opts, layout) }?;
        let dst_span = bytes_span("dst", dst, dst_len, required)?.written();
        check_no_overlap(&[src_span, dst_span])?;
        let src = unsafe { slice(src, shape.elements(), "src") }?;
        let dst = unsafe { out_bytes(dst, dst_len, required, "dst") }?;
        if !stats.is_null() {
            unsafe { check_output(stats, "stats") }?;
        }
        let (packed, s) = quantize_packed(layout, shape, src, &cfg)?;
        dst.copy_from_slice(&packed);
        if !stats.is_null() {
            unsafe { write_output(stats, &stats_out(&s)) };
        }
        Ok(())
    })
}

/// Packs `rows·cols` weight values and `n_scales` scales (exactly `tern_packed_size`'s format
/// count: 1 for I2_S/TL1/TL2, one per block for TQ1_0/TQ2_0 (256), Q2_0 (64) and Q1_0 (128);
/// finite, ≥ 0) into `dst`. The values are int8: -1, 0 or 1 for the ternary formats, -1, 0, 1 or
/// 2 for Q2_0 (2 is its code 3, `+2·d`), -1 or 1 for Q1_0; any other value is
/// `TERN_STATUS_INVALID_ARGUMENT` naming it. Scales go to f16 in TQ/Q formats (round to nearest
/// even; beyond the f16 range is an error). Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `ternary` must hold `rows·cols` values, `scales` `n_scales` floats, `dst` `dst_len` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_pack(
    layout: *const tern_layout,
    ternary: *const i8,
    scales: *const f32,
    n_scales: usize,
    rows: i64,
    cols: i64,
    dst: *mut std::ffi::c_void,
    dst_len: usize,
) -> tern_status {
    status_call(|| {
        let layout = unsafe { layout_arg(layout, "layout") }?;
        let shape = Shape::new(rows, cols)?;
        let required = layout.packed_size(shape)?;
        let ternary_span = span("ternary", ternary, shape.elements())?;
        let scales_span = span("scales", scales, n_scales)?;
        let want = layout.scale_count(shape);
        if n_scales != want {
            return Err(Error::invalid(format!(
                "n_scales = {n_scales}, but {} stores {want} scale(s) for a {rows} x {cols} matrix",
                layout.format().name()
            )));
        }
        let dst_span = bytes_span("dst", dst, dst_len, required)?.written();
        check_no_overlap(&[ternary_span, scales_span, dst_span])?;
        let ternary = unsafe { slice(ternary, shape.elements(), "ternary") }?;
        let scales = unsafe { slice(scales, n_scales, "scales") }?;
        let dst = unsafe { out_bytes(dst, dst_len, required, "dst") }?;
        layout.pack(shape, ternary, scales, dst)
    })
}

/// Checks a packed buffer and unpacks it into `rows·cols` int8 weight values and its scales
/// (`n_scales` ≥ the format's count; I2_S: 1). The values are those `tern_pack` takes: -1..1,
/// Q2_0 -1..2 (code 3 is 2), Q1_0 ±1. Q2_0/Q1_0 scales are ggml's f16 `d` as f32 and may be
/// negative (ggml accepts any finite `d`). Corrupt data (e.g. an I2_S code 3, a non-finite
/// scale) is `TERN_STATUS_INVALID_ARGUMENT`. Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `src` must hold `src_len` bytes, `ternary` `rows·cols` values, `scales` `n_scales` floats.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_unpack(
    layout: *const tern_layout,
    src: *const std::ffi::c_void,
    src_len: usize,
    rows: i64,
    cols: i64,
    ternary: *mut i8,
    scales: *mut f32,
    n_scales: usize,
) -> tern_status {
    status_call(|| {
        let layout = unsafe { layout_arg(layout, "layout") }?;
        let shape = Shape::new(rows, cols)?;
        let required = layout.packed_size(shape)?;
        let src_span = bytes_span("src", src, src_len, required)?;
        let ternary_span = span("ternary", ternary, shape.elements())?.written();
        let scales_span = span("scales", scales, n_scales)?.written();
        let want = layout.scale_count(shape);
        if n_scales < want {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("n_scales {n_scales} < required {want}"),
            ));
        }
        check_no_overlap(&[src_span, ternary_span, scales_span])?;
        let src = unsafe { in_bytes(src, src_len, required, "src") }?;
        let ternary = unsafe { slice_mut(ternary, shape.elements(), "ternary") }?;
        let scales_out = unsafe { slice_mut(scales, n_scales, "scales") }?;
        let scales = layout.validate(shape, src)?;
        layout.unpack(shape, src, ternary)?;
        scales_out[..want].copy_from_slice(&scales);
        Ok(())
    })
}

/// Checks a packed buffer and writes its `rows·cols` weights as floats (value × scale, as
/// `tern_unpack` gives them; for Q2_0/Q1_0 bit-identical to ggml's `dequantize_row_q2_0` /
/// `dequantize_row_q1_0`) to `dst`. Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `src` must hold `src_len` bytes and `dst` `rows·cols` floats.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_dequantize(
    layout: *const tern_layout,
    src: *const std::ffi::c_void,
    src_len: usize,
    rows: i64,
    cols: i64,
    dst: *mut f32,
) -> tern_status {
    status_call(|| {
        let layout = unsafe { layout_arg(layout, "layout") }?;
        let shape = Shape::new(rows, cols)?;
        let required = layout.packed_size(shape)?;
        let src_span = bytes_span("src", src, src_len, required)?;
        let dst_span = span("dst", dst, shape.elements())?.written();
        check_no_overlap(&[src_span, dst_span])?;
        let src = unsafe { in_bytes(src, src_len, required, "src") }?;
        let dst = unsafe { slice_mut(dst, shape.elements(), "dst") }?;
        layout.dequantize(shape, src, dst)
    })
}

/// Quantizes `n_tokens` rows of `cols` floats (row `t` at `x + t·x_stride`; stride 0 = `cols`)
/// to int8 per token, with the rounding of `compat` (a `tern_compat` value): writes `q`
/// (`n_tokens·cols`, packed), `scales` (`127/absmax` per token, a multiplier) and `sums` (Σ q per
/// token; nullable). `ctx` may be NULL. Writes nothing on failure. Thread-safe.
///
/// # Safety
/// Buffers must hold the sizes above.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_quantize_activations(
    ctx: *const tern_context,
    x: *const f32,
    n_tokens: i64,
    cols: i64,
    x_stride: i64,
    compat: i32,
    q: *mut i8,
    scales: *mut f32,
    sums: *mut i32,
) -> tern_status {
    status_call(|| {
        let ctx = unsafe { context_or_global(ctx) }?;
        let n = positive(n_tokens, "n_tokens")?;
        // Shape names its dimensions rows and cols; the rows here are the caller's n_tokens.
        let shape = Shape::new(n_tokens, cols)
            .map_err(|e| Error::new(e.kind, e.message.replace("rows", "n_tokens")))?;
        let x_stride = stride(x_stride, shape.cols, "x_stride")?;
        let arith = Compat::from_i32(compat)?.token_arith()?;
        let x_len = strided_len("x", n, x_stride, shape.cols)?;
        span("x", x, x_len)?;
        check_no_overlap(&[
            Span::rows("x", x, n, x_stride, 0..shape.cols),
            span("q", q, shape.elements())?.written(),
            span("scales", scales, n)?.written(),
            optional_span("sums", sums, n)?.written(),
        ])?;
        let x = unsafe { slice(x, x_len, "x") }?;
        let q = unsafe { slice_mut(q, shape.elements(), "q") }?;
        let scales = unsafe { slice_mut(scales, n, "scales") }?;
        let sums = unsafe { optional_slice_mut(sums, n, "sums") }?;
        let quantize = ctx.kernels.quantize_token;
        arith.quantize_batch(
            quantize, x, x_stride, shape.cols, n, q, shape.cols, scales, sums,
        );
        Ok(())
    })
}

/// Converts a packed `rows × cols` matrix from `from` to `to` (any pair of formats), keeping
/// every weight (value × scale) exactly, or fails with `TERN_STATUS_INVALID_ARGUMENT` and a
/// message naming the row, the block and the value or scales that do not fit:
/// - values: the ternary formats hold -1, 0, 1; Q2_0 also 2 (its code 3: only Q2_0 stores it);
///   Q1_0 only ±1 (a matrix with a 0 cannot become Q1_0). So Q1_0 converts to every format,
///   every format to Q2_0. A negative Q2_0/Q1_0 scale is folded into its block's signs.
/// - scales: where the target shares one scale over several source blocks (one per tensor for
///   I2_S/TL1/TL2; TQ's 256 elements over four Q2_0 or two Q1_0 blocks) they must be equal,
///   blocks of zeros aside; TQ1_0/TQ2_0/Q2_0/Q1_0 store f16 scales (rounding is an error unless
///   `opts->allow_rounding`).
///
/// `opts` may be NULL. Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `src` must hold `src_len` bytes and `dst` `dst_len` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_convert(
    from: *const tern_layout,
    src: *const std::ffi::c_void,
    src_len: usize,
    to: *const tern_layout,
    dst: *mut std::ffi::c_void,
    dst_len: usize,
    rows: i64,
    cols: i64,
    opts: *const tern_convert_options,
) -> tern_status {
    status_call(|| {
        let from = unsafe { layout_arg(from, "from") }?;
        let to = unsafe { layout_arg(to, "to") }?;
        let shape = Shape::new(rows, cols)?;
        let defaults = tern_convert_options {
            struct_size: size_of::<tern_convert_options>() as u32,
            allow_rounding: 0,
        };
        let o = unsafe { read_options(opts, defaults, "opts") }?;
        if o.allow_rounding > 1 {
            return Err(Error::invalid(format!(
                "opts->allow_rounding must be 0 or 1 (got {})",
                o.allow_rounding
            )));
        }
        let (src_required, dst_required) = (from.packed_size(shape)?, to.packed_size(shape)?);
        check_no_overlap(&[
            bytes_span("src", src, src_len, src_required)?,
            bytes_span("dst", dst, dst_len, dst_required)?.written(),
        ])?;
        let src = unsafe { in_bytes(src, src_len, src_required, "src") }?;
        let dst = unsafe { out_bytes(dst, dst_len, dst_required, "dst") }?;
        crate::format::convert(from, to, shape, src, dst, o.allow_rounding == 1)
    })
}

/// Quantizes a row-major `rows × cols` f32 matrix to ternary values (`rows·cols` int8 in {-1, 0,
/// 1}) and scales, without packing — for fake-quantization / STE training code. The method
/// (`opts`, NULL = absmean per tensor) decides the scale count: 1 (ABSMEAN, PRESCALED), `rows`
/// (ABSMEAN_ROW), `rows·cols/group_size` (ABSMEAN_GROUP) or `rows·cols/256` (GGML_REF); element
/// `i` uses scale `i / (rows·cols / count)`. `n_scales` must be at least that count; the count is
/// written to `*n_scales_out` (nullable). Writes nothing on failure. Thread-safe.
///
/// # Safety
/// `src` holds `rows·cols` floats, `ternary` `rows·cols` bytes, `scales` `n_scales` floats.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_ternarize(
    opts: *const tern_quant_options,
    src: *const f32,
    rows: i64,
    cols: i64,
    ternary: *mut i8,
    scales: *mut f32,
    n_scales: usize,
    n_scales_out: *mut usize,
) -> tern_status {
    status_call(|| {
        let shape = Shape::new(rows, cols)?;
        let o = unsafe { read_options(opts, DEFAULT_QUANT_OPTIONS, "opts") }?;
        let cfg = QuantConfig::new(o.method, o.group_size, o.eps, None)?;
        if cfg.method == crate::quant::Method::GgmlRef && !shape.cols.is_multiple_of(256) {
            return Err(Error::invalid(format!(
                "TERN_QUANT_GGML_REF works on 256-element blocks: cols must be a multiple of 256 (got {})",
                shape.cols
            )));
        }
        check_no_overlap(&[
            span("src", src, shape.elements())?,
            span("ternary", ternary, shape.elements())?.written(),
            span("scales", scales, n_scales)?.written(),
            optional_span("n_scales_out", n_scales_out, 1)?.written(),
        ])?;
        let src = unsafe { slice(src, shape.elements(), "src") }?;
        let ternary = unsafe { slice_mut(ternary, shape.elements(), "ternary") }?;
        let scales = unsafe { slice_mut(scales, n_scales, "scales") }?;
        let count_out = unsafe { optional_slice_mut(n_scales_out, 1, "n_scales_out") }?;
        let t = crate::quant::weight::ternarize(&cfg, src, shape)?;
        if n_scales < t.scales.len() {
            return Err(Error::new(
                ErrorKind::BufferTooSmall,
                format!("n_scales {n_scales} < required {}", t.scales.len()),
            ));
        }
        ternary.copy_from_slice(&t.values);
        scales[..t.scales.len()].copy_from_slice(&t.scales);
        if let Some(c) = count_out {
            c[0] = t.scales.len();
        }
        Ok(())
    })
}
