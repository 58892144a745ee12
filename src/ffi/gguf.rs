//! `tern_gguf` (reader) and `tern_gguf_writer`: GGUF files through the C API.
//!
//! The reader maps the file read-only and validates all of it at open; afterwards every getter is
//! a lookup. Strings and data pointers handed out stay valid until `tern_gguf_close`.

use std::ffi::{CStr, c_char, c_void};
use std::path::Path;

use super::args::{
    Versioned, check_output, handle_out, read_options, reference, slice, write_output,
};
use super::boundary::status_call;
use super::context::{context_or_global, tern_context};
use super::matrix::tern_matrix;
use super::types::{tern_layout, tern_status};
use super::weights::{in_bytes, layout_arg};
use crate::error::{Error, ErrorKind, Result};
use crate::format::Shape;
use crate::gguf::reader::MAX_DIMS;
use crate::gguf::value::numeric_array;
use crate::gguf::{
    Dialect, GStr, Gguf, ReadOptions, TensorData, Value, ValueType, Writer, ternary, types,
};

/// Which producer's type ids a GGUF file uses (`tern_gguf_open_options.dialect`,
/// `tern_gguf_writer_options.dialect`). They differ for TL2 (39 in bitnet.cpp merge-dev, 42 in
/// the current fork; 39 is MXFP4 and 42 Q2_0 in mainline ggml).
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_gguf_dialect {
    /// Reading: 36 = I2_S and 38 = TL1 always; 39/42 per tensor: TL2 or MXFP4/Q2_0, whichever
    /// size fits the bytes up to the next tensor; where both or neither fit, TL2 only for a
    /// tensor with a `<name>_scale` companion tensor. Bytes that fit only MXFP4/Q2_0 next to
    /// such a companion are an error. Writing: like BITNET_CURRENT, but Q2_0 is written too (as
    /// 42, without a companion: this rule reads it back as Q2_0).
    TERN_GGUF_DIALECT_AUTO = 0,
    /// Current ggml: 36–38 are removed types (rejected), 39 = MXFP4, 42 = Q2_0; the writer
    /// refuses I2_S/TL1/TL2.
    TERN_GGUF_DIALECT_MAINLINE = 1,
    /// bitnet.cpp merge-dev: I2_S 36, TL1 38, TL2 39 (no 40–42: Q2_0/Q1_0 are not written).
    TERN_GGUF_DIALECT_BITNET_LEGACY = 2,
    /// bitnet.cpp current fork: I2_S 36, TL1 38, TL2 42 (Q2_0 is not written; Q1_0 is 41).
    TERN_GGUF_DIALECT_BITNET_CURRENT = 3,
}

/// GGUF metadata value types (`gguf_type`).
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_gguf_type {
    TERN_GGUF_TYPE_UINT8 = 0,
    TERN_GGUF_TYPE_INT8 = 1,
    TERN_GGUF_TYPE_UINT16 = 2,
    TERN_GGUF_TYPE_INT16 = 3,
    TERN_GGUF_TYPE_UINT32 = 4,
    TERN_GGUF_TYPE_INT32 = 5,
    TERN_GGUF_TYPE_FLOAT32 = 6,
    TERN_GGUF_TYPE_BOOL = 7,
    TERN_GGUF_TYPE_STRING = 8,
    TERN_GGUF_TYPE_ARRAY = 9,
    TERN_GGUF_TYPE_UINT64 = 10,
    TERN_GGUF_TYPE_INT64 = 11,
    TERN_GGUF_TYPE_FLOAT64 = 12,
}

/// Options for `tern_gguf_open_with_options`. Initialize with `TERN_GGUF_OPEN_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gguf_open_options {
    /// `sizeof(tern_gguf_open_options)`.
    pub struct_size: u32,
    /// A `tern_gguf_dialect` value (default AUTO).
    pub dialect: i32,
}

/// Facts about an open file (filled by `tern_gguf_info`). Initialize with
/// `TERN_GGUF_PROPERTIES_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gguf_properties {
    pub struct_size: u32,
    /// GGUF version (2 or 3).
    pub version: u32,
    pub alignment: u64,
    /// Absolute file offset of the tensor data section.
    pub data_offset: u64,
    pub file_size: u64,
    pub n_tensors: u64,
    pub n_kv: u64,
    /// Whether tensor offsets are exactly ggml's contiguous layout (current ggml requires it;
    /// bitnet.cpp's fork did not check).
    pub ggml_contiguous: bool,
}

/// One tensor of an open file (filled by `tern_gguf_tensor_info`). Initialize with
/// `TERN_GGUF_TENSOR_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gguf_tensor {
    pub struct_size: u32,
    /// NUL-terminated UTF-8 name, valid until the file is closed.
    pub name: *const c_char,
    pub name_len: usize,
    /// The ggml type id stored in the file.
    pub ggml_type: u32,
    /// Static name of the resolved type ("F32", "TQ2_0", "I2_S", "TL2", ...).
    pub type_name: *const c_char,
    pub n_dims: u32,
    /// ggml order: `dims[0]` is the row length (a matrix's cols), `dims[1]` its rows; unused
    /// dimensions are 1.
    pub dims: [i64; 4],
    /// Absolute file offset of the tensor's bytes.
    pub file_offset: u64,
    /// Bytes the tensor occupies in the file (for TL1/TL2 the payload without the scale).
    pub nbytes: u64,
    /// The `tern_format` of a ternary type, 0 for other types.
    pub format: i32,
    /// The tensor's bytes in the memory map, valid until the file is closed.
    pub data: *const c_void,
}

/// One KV pair (filled by `tern_gguf_kv_info`). Initialize with `TERN_GGUF_KV_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gguf_kv {
    pub struct_size: u32,
    /// NUL-terminated UTF-8 key, valid until the file is closed.
    pub key: *const c_char,
    pub key_len: usize,
    /// A `tern_gguf_type` value.
    pub value_type: u32,
    /// For arrays, the element type; otherwise equal to `value_type`.
    pub array_type: u32,
    /// For arrays, the element count; otherwise 1.
    pub count: u64,
}

/// Options for `tern_gguf_writer_create`. Initialize with `TERN_GGUF_WRITER_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gguf_writer_options {
    pub struct_size: u32,
    /// Data alignment, a power of two; 0 = 32 (ggml's default; other values are written as
    /// `general.alignment`).
    pub alignment: u32,
    /// A `tern_gguf_dialect`: which TL2 id to write (AUTO = 42, the current bitnet.cpp fork).
    pub dialect: i32,
}

// SAFETY: repr(C), leading u32 struct_size, any bytes valid (pointers only written by us).
unsafe impl Versioned for tern_gguf_open_options {
    const V1_SIZE: usize = size_of::<Self>();
}
unsafe impl Versioned for tern_gguf_properties {
    const V1_SIZE: usize = size_of::<Self>();
}
unsafe impl Versioned for tern_gguf_tensor {
    const V1_SIZE: usize = size_of::<Self>();
}
unsafe impl Versioned for tern_gguf_kv {
    const V1_SIZE: usize = size_of::<Self>();
}
unsafe impl Versioned for tern_gguf_writer_options {
    const V1_SIZE: usize = size_of::<Self>();
}

/// An open, validated, memory-mapped GGUF file. Immutable: any number of threads may read it
/// at once. Close with `tern_gguf_close`.
pub struct tern_gguf {
    inner: Gguf,
}

/// A GGUF file being assembled. Not thread-safe: use from one thread at a time. Free with
/// `tern_gguf_writer_destroy`.
pub struct tern_gguf_writer {
    inner: Writer<'static>,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<tern_gguf>();
};

// ---------------------------------------------------------------------------------------------
// helpers

/// A required NUL-terminated string argument.
unsafe fn c_str<'a>(p: *const c_char, name: &str) -> Result<&'a CStr> {
    if p.is_null() {
        return Err(Error::new(
            ErrorKind::NullPointer,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(p) })
}

unsafe fn c_utf8<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    unsafe { c_str(p, name) }?
        .to_str()
        .map_err(|e| Error::invalid(format!("{name} is not valid UTF-8 ({e})")))
}

unsafe fn gguf_arg<'a>(g: *const tern_gguf) -> Result<&'a Gguf> {
    Ok(&unsafe { reference(g, "gguf") }?.inner)
}

unsafe fn writer_arg<'a>(w: *mut tern_gguf_writer) -> Result<&'a mut Writer<'static>> {
    if w.is_null() {
        return Err(Error::new(ErrorKind::NullPointer, "writer is NULL"));
    }
    // SAFETY: a live writer used from one thread at a time (documented).
    Ok(&mut unsafe { &mut *w }.inner)
}

/// Writes `v` to a required out-pointer.
unsafe fn put<T>(out: *mut T, v: T, name: &str) -> Result<()> {
    let _ = unsafe { slice(out as *const T, 1, name) }?;
    // SAFETY: checked non-NULL and aligned.
    unsafe { *out = v };
    Ok(())
}

/// Writes to `*index` the position `lookup` finds for the string argument `name` (`what`), or -1
/// when there is none (a name that is not UTF-8 names nothing in a GGUF file).
unsafe fn put_position(
    name: *const c_char,
    what: &str,
    index: *mut i64,
    lookup: impl Fn(&str) -> Option<usize>,
) -> Result<()> {
    let name = unsafe { c_str(name, what) }?;
    let i = name.to_str().ok().and_then(lookup).map_or(-1, |i| i as i64);
    unsafe { put(index, i, "index") }
}

fn static_type_name(name: &str) -> *const c_char {
    const NAMES: &[&CStr] = &[
        c"F32", c"F16", c"Q4_0", c"Q4_1", c"Q5_0", c"Q5_1", c"Q8_0", c"Q8_1", c"Q2_K", c"Q3_K",
        c"Q4_K", c"Q5_K", c"Q6_K", c"Q8_K", c"IQ2_XXS", c"IQ2_XS", c"IQ3_XXS", c"IQ1_S", c"IQ4_NL",
        c"IQ3_S", c"IQ2_S", c"IQ4_XS", c"I8", c"I16", c"I32", c"I64", c"F64", c"IQ1_M", c"BF16",
        c"TQ1_0", c"TQ2_0", c"MXFP4", c"NVFP4", c"Q1_0", c"Q2_0", c"I2_S", c"TL1", c"TL2",
    ];
    NAMES
        .iter()
        .find(|c| c.to_bytes() == name.as_bytes())
        .map_or(c"?".as_ptr(), |c| c.as_ptr())
}

fn kv_value<'a>(g: &'a Gguf, key: &str) -> Result<&'a Value> {
    g.meta()
        .find_kv(key)
        .map(|kv| &kv.value)
        .ok_or_else(|| Error::invalid(format!("the GGUF file has no key '{key}'")))
}

fn wrong_type(key: &str, want: &str, v: &Value) -> Error {
    Error::invalid(format!(
        "key '{key}' is {}, not {want}",
        match v {
            Value::Array(a) => format!("an array of {}", a.elem_type().name()),
            v => v.ty().name().to_string(),
        }
    ))
}

fn array_elem(key: &str, v: &Value, index: usize) -> Result<Value> {
    let Value::Array(a) = v else {
        return Err(wrong_type(key, "an array", v));
    };
    a.get(index).ok_or_else(|| {
        Error::invalid(format!(
            "index {index} is out of range for key '{key}' ({} elements)",
            a.len()
        ))
    })
}

fn int_of(key: &str, v: &Value) -> Result<i64> {
    v.as_i64().ok_or_else(|| match v {
        Value::U64(u) => Error::invalid(format!(
            "key '{key}' is the UINT64 {u}, which does not fit in int64_t"
        )),
        v => wrong_type(key, "an integer", v),
    })
}

fn str_of<'v>(key: &str, v: &'v Value) -> Result<&'v GStr> {
    match v {
        Value::String(s) => Ok(s),
        v => Err(wrong_type(key, "a string", v)),
    }
}

// ---------------------------------------------------------------------------------------------
// reader

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
    unsafe { super::boundary::free_handle(gguf) }
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

unsafe fn dims_arg(dims: *const i64, n_dims: u32) -> Result<[u64; 4]> {
    if n_dims == 0 || n_dims as usize > MAX_DIMS {
        return Err(Error::invalid(format!(
            "n_dims must be 1..={MAX_DIMS} (got {n_dims})"
        )));
    }
    let d = unsafe { slice(dims, n_dims as usize, "dims") }?;
    let mut ne = [1u64; 4];
    for (i, &v) in d.iter().enumerate() {
        if v < 0 {
            return Err(Error::invalid(format!("dims[{i}] = {v} is negative")));
        }
        ne[i] = v as u64;
    }
    // ggml counts elements in int64 (`ggml_nelements`), and the reader rejects files beyond it:
    // a shape whose product does not fit cannot be sized, written or read back.
    let elements = ne.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d));
    if elements.is_none_or(|e| e > i64::MAX as u64) {
        return Err(Error::invalid(format!(
            "the element count of dims {:?} overflows: more than INT64_MAX elements",
            &ne[..n_dims as usize]
        )));
    }
    Ok(ne)
}

/// A type id for writing or sizing, read like a file without `_scale` companions: under AUTO,
/// 39 is MXFP4 and 42 is Q2_0; raw TL2 needs a BITNET dialect (`add_ternary` handles TL2 itself).
fn resolve_for_write(id: u32, dialect: Dialect) -> Result<types::GgmlType> {
    types::resolve(id, dialect, false)
}

// ---------------------------------------------------------------------------------------------
// writer

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
    unsafe { super::boundary::free_handle(writer) }
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
