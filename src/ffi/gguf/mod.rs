//! `tern_gguf` (reader) and `tern_gguf_writer`: GGUF files through the C API.
//!
//! The reader maps the file read-only and validates all of it at open; afterwards every getter is
//! a lookup. Strings and data pointers handed out stay valid until `tern_gguf_close`.

mod reader;
mod writer;

pub use reader::*;
pub use writer::*;

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

// Argument helpers shared by the reader and writer functions.

/// A required NUL-terminated string argument.
pub(super) unsafe fn c_str<'a>(p: *const c_char, name: &str) -> Result<&'a CStr> {
    if p.is_null() {
        return Err(Error::new(
            ErrorKind::NullPointer,
            format!("{name} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    Ok(unsafe { CStr::from_ptr(p) })
}

pub(super) unsafe fn c_utf8<'a>(p: *const c_char, name: &str) -> Result<&'a str> {
    unsafe { c_str(p, name) }?
        .to_str()
        .map_err(|e| Error::invalid(format!("{name} is not valid UTF-8 ({e})")))
}

pub(super) unsafe fn gguf_arg<'a>(g: *const tern_gguf) -> Result<&'a Gguf> {
    Ok(&unsafe { reference(g, "gguf") }?.inner)
}

pub(super) unsafe fn writer_arg<'a>(w: *mut tern_gguf_writer) -> Result<&'a mut Writer<'static>> {
    if w.is_null() {
        return Err(Error::new(ErrorKind::NullPointer, "writer is NULL"));
    }
    // SAFETY: a live writer used from one thread at a time (documented).
    Ok(&mut unsafe { &mut *w }.inner)
}

/// Writes `v` to a required out-pointer.
pub(super) unsafe fn put<T>(out: *mut T, v: T, name: &str) -> Result<()> {
    let _ = unsafe { slice(out as *const T, 1, name) }?;
    // SAFETY: checked non-NULL and aligned.
    unsafe { *out = v };
    Ok(())
}

/// Writes to `*index` the position `lookup` finds for the string argument `name` (`what`), or -1
/// when there is none (a name that is not UTF-8 names nothing in a GGUF file).
pub(super) unsafe fn put_position(
    name: *const c_char,
    what: &str,
    index: *mut i64,
    lookup: impl Fn(&str) -> Option<usize>,
) -> Result<()> {
    let name = unsafe { c_str(name, what) }?;
    let i = name.to_str().ok().and_then(lookup).map_or(-1, |i| i as i64);
    unsafe { put(index, i, "index") }
}

pub(super) fn static_type_name(name: &str) -> *const c_char {
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

pub(super) fn kv_value<'a>(g: &'a Gguf, key: &str) -> Result<&'a Value> {
    g.meta()
        .find_kv(key)
        .map(|kv| &kv.value)
        .ok_or_else(|| Error::invalid(format!("the GGUF file has no key '{key}'")))
}

pub(super) fn wrong_type(key: &str, want: &str, v: &Value) -> Error {
    Error::invalid(format!(
        "key '{key}' is {}, not {want}",
        match v {
            Value::Array(a) => format!("an array of {}", a.elem_type().name()),
            v => v.ty().name().to_string(),
        }
    ))
}

pub(super) fn array_elem(key: &str, v: &Value, index: usize) -> Result<Value> {
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

pub(super) fn int_of(key: &str, v: &Value) -> Result<i64> {
    v.as_i64().ok_or_else(|| match v {
        Value::U64(u) => Error::invalid(format!(
            "key '{key}' is the UINT64 {u}, which does not fit in int64_t"
        )),
        v => wrong_type(key, "an integer", v),
    })
}

pub(super) fn str_of<'v>(key: &str, v: &'v Value) -> Result<&'v GStr> {
    match v {
        Value::String(s) => Ok(s),
        v => Err(wrong_type(key, "a string", v)),
    }
}

pub(super) unsafe fn dims_arg(dims: *const i64, n_dims: u32) -> Result<[u64; 4]> {
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
pub(super) fn resolve_for_write(id: u32, dialect: Dialect) -> Result<types::GgmlType> {
    types::resolve(id, dialect, false)
}
