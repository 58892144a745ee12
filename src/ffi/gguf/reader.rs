//! The `tern_gguf` reader functions: open, describe, look up and read tensors and keys.

use super::*;

/// Opens, maps and fully validates the GGUF file at `path` (UTF-8 path, NUL-terminated) with
/// the default options (dialect AUTO). A corrupt or truncated file is
/// `TERN_STATUS_INVALID_ARGUMENT` with a message naming the problem and byte offset; big-endian
/// or version-1 files are `TERN_STATUS_UNSUPPORTED`. `*out` is set to NULL on failure.
///
/// # Safety
/// `path` must be NUL-terminated; `out` must be writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_open(
    path: *const c_char,
    out: *mut *mut tern_gguf,
) -> tern_status {
    unsafe { tern_gguf_open_with_options(path, std::ptr::null(), out) }
}

/// Like `tern_gguf_open` with options (NULL = defaults): `dialect` decides how the ambiguous
/// type ids 39 and 42 are read.
///
/// # Safety
/// As for `tern_gguf_open`; non-NULL `opts` must hold `opts->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_open_with_options(
    path: *const c_char,
    opts: *const tern_gguf_open_options,
    out: *mut *mut tern_gguf,
) -> tern_status {
    status_call(|| unsafe {
        handle_out(out, "out")?;
        let path = c_utf8(path, "path")?;
        let o = read_options(
            opts,
            tern_gguf_open_options {
                struct_size: size_of::<tern_gguf_open_options>() as u32,
                dialect: 0,
            },
            "opts",
        )?;
        let dialect = Dialect::from_i32(o.dialect)?;
        let inner = Gguf::open(Path::new(path), ReadOptions { dialect })?;
        *out = Box::into_raw(Box::new(tern_gguf { inner }));
        Ok(())
    })
}

/// Unmaps and frees a file. NULL is a no-op; every pointer obtained from it becomes invalid.
///
/// # Safety
/// Non-NULL `gguf` must come from `tern_gguf_open*` and not be closed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_close(gguf: *mut tern_gguf) {
    unsafe { crate::ffi::boundary::free_handle(gguf) }
}

/// Fills `*info` (caller sets `info->struct_size`). Thread-safe.
///
/// # Safety
/// `gguf` must be live; `info` writable for `info->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_info(
    gguf: *const tern_gguf,
    info: *mut tern_gguf_properties,
) -> tern_status {
    status_call(|| unsafe {
        let m = gguf_arg(gguf)?.meta();
        check_output(info, "info")?;
        let v = tern_gguf_properties {
            struct_size: 0,
            version: m.version,
            alignment: m.alignment,
            data_offset: m.data_offset,
            file_size: m.file_size,
            n_tensors: m.tensors.len() as u64,
            n_kv: m.kvs.len() as u64,
            ggml_contiguous: m.ggml_contiguous,
        };
        write_output(info, &v);
        Ok(())
    })
}

/// Writes the number of tensors to `*out`. Thread-safe.
///
/// # Safety
/// `gguf` must be live; `out` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_tensor_count(
    gguf: *const tern_gguf,
    out: *mut usize,
) -> tern_status {
    status_call(|| unsafe {
        let n = gguf_arg(gguf)?.meta().tensors.len();
        put(out, n, "out")
    })
}

/// Describes tensor `index` (0-based, file order) in `*info` (caller sets `info->struct_size`).
/// Thread-safe.
///
/// # Safety
/// `gguf` must be live; `info` writable for `info->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_tensor_info(
    gguf: *const tern_gguf,
    index: usize,
    info: *mut tern_gguf_tensor,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let m = g.meta();
        let t = m.tensors.get(index).ok_or_else(|| {
            Error::invalid(format!(
                "tensor index {index} is out of range (the file has {} tensors)",
                m.tensors.len()
            ))
        })?;
        check_output(info, "info")?;
        let mut dims = [1i64; 4];
        for (d, &v) in dims.iter_mut().zip(&t.dims) {
            *d = v as i64;
        }
        let v = tern_gguf_tensor {
            struct_size: 0,
            name: t.name.as_bytes_with_nul().as_ptr() as *const c_char,
            name_len: t.name.as_bytes().len(),
            ggml_type: t.type_id,
            type_name: static_type_name(t.ty.name),
            n_dims: t.n_dims,
            dims,
            file_offset: m.data_offset + t.offset,
            nbytes: t.size,
            format: t.ty.ternary.map_or(0, |f| f as i32),
            data: g.tensor_data(t).as_ptr() as *const c_void,
        };
        write_output(info, &v);
        Ok(())
    })
}

/// Looks a tensor up by name: `*index` receives its index, or -1 if there is none (still
/// `TERN_STATUS_OK`). Thread-safe.
///
/// # Safety
/// `gguf` must be live; `name` NUL-terminated; `index` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_find_tensor(
    gguf: *const tern_gguf,
    name: *const c_char,
    index: *mut i64,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        put_position(name, "name", index, |n| g.meta().tensor_position(n))
    })
}

/// Writes the number of KV pairs to `*out`. Thread-safe.
///
/// # Safety
/// `gguf` must be live; `out` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_kv_count(
    gguf: *const tern_gguf,
    out: *mut usize,
) -> tern_status {
    status_call(|| unsafe {
        let n = gguf_arg(gguf)?.meta().kvs.len();
        put(out, n, "out")
    })
}

/// Describes KV pair `index` (0-based, file order) in `*info`. Thread-safe.
///
/// # Safety
/// `gguf` must be live; `info` writable for `info->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_kv_info(
    gguf: *const tern_gguf,
    index: usize,
    info: *mut tern_gguf_kv,
) -> tern_status {
    status_call(|| unsafe {
        let m = gguf_arg(gguf)?.meta();
        let kv = m.kvs.get(index).ok_or_else(|| {
            Error::invalid(format!(
                "KV index {index} is out of range (the file has {} KV pairs)",
                m.kvs.len()
            ))
        })?;
        check_output(info, "info")?;
        let (array_type, count) = match &kv.value {
            Value::Array(a) => (a.elem_type() as u32, a.len() as u64),
            v => (v.ty() as u32, 1),
        };
        let v = tern_gguf_kv {
            struct_size: 0,
            key: kv.key.as_bytes_with_nul().as_ptr() as *const c_char,
            key_len: kv.key.as_bytes().len(),
            value_type: kv.value.ty() as u32,
            array_type,
            count,
        };
        write_output(info, &v);
        Ok(())
    })
}

/// Looks a key up: `*index` receives its index, or -1 if absent (still OK). Thread-safe.
///
/// # Safety
/// `gguf` must be live; `key` NUL-terminated; `index` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_find_kv(
    gguf: *const tern_gguf,
    key: *const c_char,
    index: *mut i64,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        put_position(key, "key", index, |k| g.meta().kv_position(k))
    })
}

/// The string value of `key`: `*value` receives a NUL-terminated pointer valid until the file
/// is closed, `*len` (nullable) its length in bytes (the value may contain NUL bytes; GGUF does
/// not require UTF-8). A missing key or another type is `TERN_STATUS_INVALID_ARGUMENT`.
///
/// # Safety
/// `gguf` live; `key` NUL-terminated; `value` writable; `len` NULL or writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_get_string(
    gguf: *const tern_gguf,
    key: *const c_char,
    value: *mut *const c_char,
    len: *mut usize,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let key = c_utf8(key, "key")?;
        let s = str_of(key, kv_value(g, key)?)?;
        let _ = slice(value as *const *const c_char, 1, "value")?;
        if !len.is_null() {
            put(len, s.as_bytes().len(), "len")?;
        }
        *value = s.as_bytes_with_nul().as_ptr() as *const c_char;
        Ok(())
    })
}

/// The integer value of `key` (any integer type; a UINT64 above INT64_MAX is an error).
///
/// # Safety
/// `gguf` live; `key` NUL-terminated; `value` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_get_int(
    gguf: *const tern_gguf,
    key: *const c_char,
    value: *mut i64,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let key = c_utf8(key, "key")?;
        let v = int_of(key, kv_value(g, key)?)?;
        put(value, v, "value")
    })
}

/// The floating-point value of `key` (FLOAT32 or FLOAT64).
///
/// # Safety
/// `gguf` live; `key` NUL-terminated; `value` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_get_float(
    gguf: *const tern_gguf,
    key: *const c_char,
    value: *mut f64,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let key = c_utf8(key, "key")?;
        let v = kv_value(g, key)?;
        let f = v
            .as_f64()
            .ok_or_else(|| wrong_type(key, "FLOAT32 or FLOAT64", v))?;
        put(value, f, "value")
    })
}

/// Element `index` of the string array `key` (pointer valid until close; `len` nullable).
///
/// # Safety
/// As for `tern_gguf_get_string`.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_get_array_string(
    gguf: *const tern_gguf,
    key: *const c_char,
    index: usize,
    value: *mut *const c_char,
    len: *mut usize,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let key = c_utf8(key, "key")?;
        let Value::Array(crate::gguf::Array::Strings(items)) = kv_value(g, key)? else {
            return Err(wrong_type(key, "a string array", kv_value(g, key)?));
        };
        let s = items.get_with_nul(index).ok_or_else(|| {
            Error::invalid(format!(
                "index {index} is out of range for key '{key}' ({} elements)",
                items.len()
            ))
        })?;
        let _ = slice(value as *const *const c_char, 1, "value")?;
        if !len.is_null() {
            put(len, s.len() - 1, "len")?;
        }
        *value = s.as_ptr() as *const c_char;
        Ok(())
    })
}

/// Element `index` of the integer array `key`.
///
/// # Safety
/// As for `tern_gguf_get_int`.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_get_array_int(
    gguf: *const tern_gguf,
    key: *const c_char,
    index: usize,
    value: *mut i64,
) -> tern_status {
    status_call(|| unsafe {
        let g = gguf_arg(gguf)?;
        let key = c_utf8(key, "key")?;
        let e = array_elem(key, kv_value(g, key)?, index)?;
        let v = int_of(key, &e)?;
        put(value, v, "value")
    })
}

/// Creates a matrix from weight tensor `name` (TQ1_0, TQ2_0, I2_S, TL1, TL2, Q2_0 or Q1_0) with
/// the kernels of `ctx` (NULL = default). Type 42 is Q2_0 or TL2 by the file's dialect (AUTO:
/// `tern_gguf_dialect`'s rule). I2_S is read as x86 128-element blocks; TL1/TL2 take their scale
/// from the `<name>_scale` tensor and their tiling from the `tern.tiling.<name>` key, else the
/// library's choice (bitnet.cpp's presets for its model shapes). Non-ternary tensors are
/// `TERN_STATUS_UNSUPPORTED`; corrupt data `TERN_STATUS_INVALID_ARGUMENT`. Thread-safe.
///
/// # Safety
/// `gguf` live; `name` NUL-terminated; `out` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_from_gguf(
    ctx: *const tern_context,
    gguf: *const tern_gguf,
    name: *const c_char,
    out: *mut *mut tern_matrix,
) -> tern_status {
    unsafe { tern_matrix_from_gguf_layout(ctx, gguf, name, std::ptr::null(), out) }
}

/// Like `tern_matrix_from_gguf`, with `layout` (nullable) overriding the I2_S variant
/// (`TERN_I2S_ARM64` for files quantized by bitnet.cpp's ARM builds) or the TL tiling; its format
/// must be the tensor's.
///
/// # Safety
/// As for `tern_matrix_from_gguf`; non-NULL `layout` must hold `layout->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_matrix_from_gguf_layout(
    ctx: *const tern_context,
    gguf: *const tern_gguf,
    name: *const c_char,
    layout: *const tern_layout,
    out: *mut *mut tern_matrix,
) -> tern_status {
    status_call(|| unsafe {
        handle_out(out, "out")?;
        let ctx = context_or_global(ctx)?;
        let g = gguf_arg(gguf)?;
        let name = c_utf8(name, "name")?;
        let layout = if layout.is_null() {
            None
        } else {
            Some(layout_arg(layout, "layout")?)
        };
        let inner = ternary::matrix(ctx, g, name, layout)?;
        *out = Box::into_raw(Box::new(tern_matrix { inner }));
        Ok(())
    })
}

/// Bytes a tensor of ggml type `ggml_type` (resolved under `dialect`; for TL2 give the
/// BITNET_* dialect) with `n_dims` dims (ggml order) occupies in a GGUF file. Shapes of more than
/// INT64_MAX elements (ggml's limit) are INVALID_ARGUMENT.
///
/// # Safety
/// `dims` must hold `n_dims` values; `out` writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_tensor_size(
    ggml_type: u32,
    dialect: i32,
    dims: *const i64,
    n_dims: u32,
    out: *mut u64,
) -> tern_status {
    status_call(|| unsafe {
        let dialect = Dialect::from_i32(dialect)?;
        let ne = dims_arg(dims, n_dims)?;
        let ty = resolve_for_write(ggml_type, dialect)?;
        let n = ty.nbytes(&ne)?;
        put(out, n, "out")
    })
}
