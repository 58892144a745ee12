//! The `tern_gguf_writer` functions: assemble keys and tensors, then write the file.

use super::*;

/// Creates an empty writer (`opts` nullable: alignment 32, dialect AUTO). Keys and tensors are
/// written in the order they are added; data passed to the `add` functions is copied.
///
/// # Safety
/// `out` writable; non-NULL `opts` must hold `opts->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_create(
    opts: *const tern_gguf_writer_options,
    out: *mut *mut tern_gguf_writer,
) -> tern_status {
    status_call(|| unsafe {
        handle_out(out, "out")?;
        let o = read_options(
            opts,
            tern_gguf_writer_options {
                struct_size: size_of::<tern_gguf_writer_options>() as u32,
                alignment: 0,
                dialect: 0,
            },
            "opts",
        )?;
        let inner = Writer::new(o.alignment, Dialect::from_i32(o.dialect)?)?;
        *out = Box::into_raw(Box::new(tern_gguf_writer { inner }));
        Ok(())
    })
}

/// Frees a writer (NULL is a no-op).
///
/// # Safety
/// Non-NULL `writer` must come from `tern_gguf_writer_create` and not be destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_destroy(writer: *mut tern_gguf_writer) {
    unsafe { crate::ffi::boundary::free_handle(writer) }
}

/// Adds a STRING KV pair (`value` NUL-terminated; keys UTF-8, non-empty, unique).
///
/// # Safety
/// `writer` live; `key`, `value` NUL-terminated.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_string(
    writer: *mut tern_gguf_writer,
    key: *const c_char,
    value: *const c_char,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let key = c_utf8(key, "key")?;
        let v = c_str(value, "value")?;
        w.add_kv(key, Value::String(GStr::new(v.to_bytes())))
    })
}

/// Adds an integer KV pair of `value_type` (a `tern_gguf_type` integer type, or BOOL with 0/1);
/// `value` must fit the type.
///
/// # Safety
/// `writer` live; `key` NUL-terminated.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_int(
    writer: *mut tern_gguf_writer,
    key: *const c_char,
    value_type: u32,
    value: i64,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let key = c_utf8(key, "key")?;
        let range = || {
            Error::invalid(format!(
                "{value} does not fit the GGUF type {value_type} of key '{key}'"
            ))
        };
        let ty = ValueType::from_u32(value_type).ok_or_else(|| {
            Error::invalid(format!(
                "value_type {value_type} is not a GGUF type (0..=12)"
            ))
        })?;
        let v = match ty {
            ValueType::U8 => Value::U8(value.try_into().map_err(|_| range())?),
            ValueType::I8 => Value::I8(value.try_into().map_err(|_| range())?),
            ValueType::U16 => Value::U16(value.try_into().map_err(|_| range())?),
            ValueType::I16 => Value::I16(value.try_into().map_err(|_| range())?),
            ValueType::U32 => Value::U32(value.try_into().map_err(|_| range())?),
            ValueType::I32 => Value::I32(value.try_into().map_err(|_| range())?),
            ValueType::U64 => Value::U64(value.try_into().map_err(|_| range())?),
            ValueType::I64 => Value::I64(value),
            ValueType::Bool if value == 0 || value == 1 => Value::Bool(value == 1),
            ValueType::Bool => return Err(range()),
            _ => {
                return Err(Error::invalid(format!(
                    "value_type {} is not an integer type",
                    ty.name()
                )));
            }
        };
        w.add_kv(key, v)
    })
}

/// Adds a FLOAT32 or FLOAT64 KV pair.
///
/// # Safety
/// `writer` live; `key` NUL-terminated.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_float(
    writer: *mut tern_gguf_writer,
    key: *const c_char,
    value_type: u32,
    value: f64,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let key = c_utf8(key, "key")?;
        let v = match ValueType::from_u32(value_type) {
            Some(ValueType::F32) => Value::F32(value as f32),
            Some(ValueType::F64) => Value::F64(value),
            _ => {
                return Err(Error::invalid(format!(
                    "value_type {value_type} is not FLOAT32 (6) or FLOAT64 (12)"
                )));
            }
        };
        w.add_kv(key, v)
    })
}

/// Adds a numeric array KV pair: `count` elements of `elem_type` (any scalar `tern_gguf_type`
/// but STRING/ARRAY) as native little-endian values at `data` (copied; BOOL elements 0 or 1).
///
/// # Safety
/// `writer` live; `key` NUL-terminated; `data` holds `count` elements (may be NULL if 0).
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_array(
    writer: *mut tern_gguf_writer,
    key: *const c_char,
    elem_type: u32,
    data: *const c_void,
    count: usize,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let key = c_utf8(key, "key")?;
        let ty = ValueType::from_u32(elem_type).ok_or_else(|| {
            Error::invalid(format!("elem_type {elem_type} is not a GGUF type (0..=12)"))
        })?;
        let size = ty.scalar_size().ok_or_else(|| {
            Error::invalid(format!(
                "elem_type {} is not numeric (use tern_gguf_writer_add_string_array)",
                ty.name()
            ))
        })?;
        let bytes = count
            .checked_mul(size)
            .filter(|&b| b <= isize::MAX as usize)
            .ok_or_else(|| Error::invalid(format!("count {count} overflows")))?;
        let raw = copy_bytes(data, bytes, "data")?;
        if !cfg!(target_endian = "little") {
            return Err(Error::unsupported("GGUF arrays need a little-endian host"));
        }
        w.add_kv(key, Value::Array(numeric_array(ty, raw)?))
    })
}

/// A copy of the caller's `len` bytes at `data` (not read, and may be NULL, when `len` is 0). The
/// allocation is fallible: a length no allocator can serve is OUT_OF_MEMORY, not an abort.
///
/// # Safety
/// Non-NULL `data` must point to `len` readable bytes.
unsafe fn copy_bytes(data: *const c_void, len: usize, name: &str) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    let src = unsafe { slice(data as *const u8, len, name) }?;
    let mut copy = Vec::new();
    copy.try_reserve_exact(len).map_err(|e| {
        Error::new(
            ErrorKind::OutOfMemory,
            format!("cannot allocate {len} bytes to copy {name}: {e}"),
        )
    })?;
    copy.extend_from_slice(src);
    Ok(copy)
}

/// Adds a string array KV pair of `count` NUL-terminated strings (copied).
///
/// # Safety
/// `writer` live; `key` NUL-terminated; `values` holds `count` non-NULL strings.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_string_array(
    writer: *mut tern_gguf_writer,
    key: *const c_char,
    values: *const *const c_char,
    count: usize,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let key = c_utf8(key, "key")?;
        let ptrs = if count == 0 {
            &[][..]
        } else {
            slice(values, count, "values")?
        };
        let items = ptrs
            .iter()
            .enumerate()
            .map(|(i, &p)| c_str(p, &format!("values[{i}]")).map(CStr::to_bytes))
            .collect::<Result<crate::gguf::StrList>>()?;
        w.add_kv(key, Value::Array(crate::gguf::Array::Strings(items)))
    })
}

/// Adds a tensor of ggml type id `ggml_type` (resolved in the writer's dialect) with `n_dims`
/// (1..=4) dims in ggml order (`dims[0]` = row length); `data_len` must equal the type's size
/// for those dims (`tern_gguf_tensor_size`). Data is copied. Names are UTF-8, < 64 bytes, unique.
///
/// # Safety
/// `writer` live; `name` NUL-terminated; `dims` holds `n_dims` values; `data` `data_len` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_tensor(
    writer: *mut tern_gguf_writer,
    name: *const c_char,
    ggml_type: u32,
    dims: *const i64,
    n_dims: u32,
    data: *const c_void,
    data_len: usize,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let name = c_utf8(name, "name")?;
        let ne = dims_arg(dims, n_dims)?;
        let ty = resolve_for_write(ggml_type, w.dialect())?;
        let bytes = copy_bytes(data, data_len, "data")?;
        w.add_tensor(name, ty, &ne[..n_dims as usize], TensorData::Owned(bytes))
    })
}

/// Adds a packed ternary matrix (`rows × cols` in `layout`, `packed_len` ≥ `tern_packed_size`;
/// validated) as the GGUF type of its format: TQ1_0 34, TQ2_0 35, I2_S 36, TL1 38, TL2 39/42 by
/// dialect, Q1_0 41, Q2_0 42 (not in the BITNET_CURRENT dialect, where 42 is TL2; neither in
/// BITNET_LEGACY). TL1/TL2 are written as bitnet.cpp's converter does (payload, then an F32
/// `<name>_scale` tensor) plus a `tern.tiling.<name>` key; they need a shape bitnet.cpp can
/// store (rows % 32 == 0; TL1 cols % 16 == 0, TL2 cols >= 256), else
/// `TERN_STATUS_UNSUPPORTED`. The MAINLINE dialect accepts only TQ1_0, TQ2_0, Q2_0 and Q1_0.
///
/// # Safety
/// `writer` live; `name` NUL-terminated; `packed` holds `packed_len` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_add_ternary(
    writer: *mut tern_gguf_writer,
    name: *const c_char,
    layout: *const tern_layout,
    packed: *const c_void,
    packed_len: usize,
    rows: i64,
    cols: i64,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let name = c_utf8(name, "name")?;
        let layout = layout_arg(layout, "layout")?;
        let shape = Shape::new(rows, cols)?;
        let packed = in_bytes(packed, packed_len, layout.packed_size(shape)?, "packed")?;
        w.add_ternary(name, layout, shape, packed)
    })
}

/// Writes the GGUF v3 file to `path` (through a temporary file renamed into place: on failure
/// nothing is left at `path`). The writer keeps its contents and may write again.
///
/// # Safety
/// `writer` live; `path` NUL-terminated.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_gguf_writer_write(
    writer: *mut tern_gguf_writer,
    path: *const c_char,
) -> tern_status {
    status_call(|| unsafe {
        let w = writer_arg(writer)?;
        let path = c_utf8(path, "path")?;
        w.write(Path::new(path), &mut |_, _, _, _, _| {})
            .map(|_| ())
    })
}
