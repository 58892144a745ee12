//! GGUF metadata values (`gguf_type`, spec §4.1): scalars, strings and one level of arrays.

use crate::error::{Error, Result};

/// `gguf_type` ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)] // the variants are the GGUF spec's type names
pub enum ValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl ValueType {
    /// The type with id `v`.
    pub fn from_u32(v: u32) -> Option<Self> {
        use ValueType::*;
        Some(match v {
            0 => U8,
            1 => I8,
            2 => U16,
            3 => I16,
            4 => U32,
            5 => I32,
            6 => F32,
            7 => Bool,
            8 => String,
            9 => Array,
            10 => U64,
            11 => I64,
            12 => F64,
            _ => return None,
        })
    }

    /// Bytes of one scalar value (`None` for STRING and ARRAY).
    pub fn scalar_size(self) -> Option<usize> {
        use ValueType::*;
        match self {
            U8 | I8 | Bool => Some(1),
            U16 | I16 => Some(2),
            U32 | I32 | F32 => Some(4),
            U64 | I64 | F64 => Some(8),
            String | Array => None,
        }
    }

    /// The spec's name ("UINT32").
    pub fn name(self) -> &'static str {
        use ValueType::*;
        match self {
            U8 => "UINT8",
            I8 => "INT8",
            U16 => "UINT16",
            I16 => "INT16",
            U32 => "UINT32",
            I32 => "INT32",
            F32 => "FLOAT32",
            Bool => "BOOL",
            String => "STRING",
            Array => "ARRAY",
            U64 => "UINT64",
            I64 => "INT64",
            F64 => "FLOAT64",
        }
    }

    /// Whether it is an integer type.
    pub fn is_integer(self) -> bool {
        use ValueType::*;
        matches!(self, U8 | I8 | U16 | I16 | U32 | I32 | U64 | I64)
    }
}

/// A string value: arbitrary bytes (GGUF does not require UTF-8 for values), kept with a
/// trailing NUL so C callers get a terminated pointer.
#[derive(Clone, PartialEq, Eq)]
pub struct GStr(Box<[u8]>);

impl GStr {
    /// A string of `bytes`.
    pub fn new(bytes: &[u8]) -> Self {
        let mut v = Vec::with_capacity(bytes.len() + 1);
        v.extend_from_slice(bytes);
        v.push(0);
        Self(v.into_boxed_slice())
    }
    /// The bytes without the NUL.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0[..self.0.len() - 1]
    }
    /// The bytes with the NUL (for C).
    pub fn as_bytes_with_nul(&self) -> &[u8] {
        &self.0
    }
    /// The bytes as UTF-8, invalid sequences replaced.
    pub fn to_str_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(self.as_bytes())
    }
}

impl std::fmt::Debug for GStr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.to_str_lossy())
    }
}

/// A list of byte strings in one buffer (each followed by a NUL for C): memory stays within
/// the bytes read plus one offset per string, whatever the count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StrList {
    buf: Vec<u8>,
    /// End (exclusive, before the NUL) of each string in `buf`.
    ends: Vec<usize>,
}

impl StrList {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends a string.
    pub fn push(&mut self, s: &[u8]) {
        self.buf.extend_from_slice(s);
        self.ends.push(self.buf.len());
        self.buf.push(0);
    }
    /// Strings in the list.
    pub fn len(&self) -> usize {
        self.ends.len()
    }
    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] + 1 }
    }
    /// String `i` without its NUL.
    pub fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        Some(&self.buf[self.start(i)..end])
    }
    /// String `i` with its NUL (for C).
    pub fn get_with_nul(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        Some(&self.buf[self.start(i)..=end])
    }
    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> {
        (0..self.len()).map(|i| self.get(i).expect("in range"))
    }
}

impl<S: AsRef<[u8]>> FromIterator<S> for StrList {
    fn from_iter<I: IntoIterator<Item = S>>(it: I) -> Self {
        let mut l = Self::new();
        it.into_iter().for_each(|s| l.push(s.as_ref()));
        l
    }
}

/// An array value: numeric elements kept as their little-endian bytes, or strings.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    /// Numbers of type `ty`, little-endian in `raw`.
    Numeric {
        /// The element type (not `String` or `Array`).
        ty: ValueType,
        /// The elements' bytes.
        raw: Vec<u8>,
    },
    /// Strings.
    Strings(StrList),
}

impl Array {
    /// The element type.
    pub fn elem_type(&self) -> ValueType {
        match self {
            Self::Numeric { ty, .. } => *ty,
            Self::Strings(_) => ValueType::String,
        }
    }

    /// Elements in the array.
    pub fn len(&self) -> usize {
        match self {
            Self::Numeric { ty, raw } => raw.len() / ty.scalar_size().expect("numeric"),
            Self::Strings(v) => v.len(),
        }
    }

    /// Whether the array is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a scalar value (`None` out of range).
    pub fn get(&self, i: usize) -> Option<Value> {
        match self {
            Self::Strings(v) => v.get(i).map(|s| Value::String(GStr::new(s))),
            Self::Numeric { ty, raw } => {
                let size = ty.scalar_size().expect("numeric");
                // Checked: `i` comes from the C API and may be any size_t.
                let start = i.checked_mul(size)?;
                let b = raw.get(start..start.checked_add(size)?)?;
                Some(Value::decode_scalar(*ty, b))
            }
        }
    }

    /// A numeric array from typed values.
    pub fn from_u32(values: &[u32]) -> Self {
        Self::Numeric {
            ty: ValueType::U32,
            raw: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        }
    }
}

/// A metadata value, one variant per GGUF type.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)] // the variants are the GGUF spec's types
pub enum Value {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(GStr),
    Array(Array),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl Value {
    /// A string value.
    pub fn string(s: &str) -> Self {
        Self::String(GStr::new(s.as_bytes()))
    }

    /// The value's type.
    pub fn ty(&self) -> ValueType {
        match self {
            Self::U8(_) => ValueType::U8,
            Self::I8(_) => ValueType::I8,
            Self::U16(_) => ValueType::U16,
            Self::I16(_) => ValueType::I16,
            Self::U32(_) => ValueType::U32,
            Self::I32(_) => ValueType::I32,
            Self::F32(_) => ValueType::F32,
            Self::Bool(_) => ValueType::Bool,
            Self::String(_) => ValueType::String,
            Self::Array(_) => ValueType::Array,
            Self::U64(_) => ValueType::U64,
            Self::I64(_) => ValueType::I64,
            Self::F64(_) => ValueType::F64,
        }
    }

    /// Decodes a scalar of a numeric type from exactly `scalar_size` bytes (BOOL: nonzero =
    /// true; the reader rejects values other than 0/1 before this).
    pub(crate) fn decode_scalar(ty: ValueType, b: &[u8]) -> Self {
        let a2 = || [b[0], b[1]];
        let a4 = || [b[0], b[1], b[2], b[3]];
        let a8 = || b[..8].try_into().expect("8 bytes");
        match ty {
            ValueType::U8 => Self::U8(b[0]),
            ValueType::I8 => Self::I8(b[0] as i8),
            ValueType::Bool => Self::Bool(b[0] != 0),
            ValueType::U16 => Self::U16(u16::from_le_bytes(a2())),
            ValueType::I16 => Self::I16(i16::from_le_bytes(a2())),
            ValueType::U32 => Self::U32(u32::from_le_bytes(a4())),
            ValueType::I32 => Self::I32(i32::from_le_bytes(a4())),
            ValueType::F32 => Self::F32(f32::from_le_bytes(a4())),
            ValueType::U64 => Self::U64(u64::from_le_bytes(a8())),
            ValueType::I64 => Self::I64(i64::from_le_bytes(a8())),
            ValueType::F64 => Self::F64(f64::from_le_bytes(a8())),
            ValueType::String | ValueType::Array => unreachable!("not a scalar type"),
        }
    }

    /// An integer value of any integer type as i64 (`None` for other types or a UINT64 above
    /// `i64::MAX`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Self::U8(v) => Some(v.into()),
            Self::I8(v) => Some(v.into()),
            Self::U16(v) => Some(v.into()),
            Self::I16(v) => Some(v.into()),
            Self::U32(v) => Some(v.into()),
            Self::I32(v) => Some(v.into()),
            Self::U64(v) => i64::try_from(v).ok(),
            Self::I64(v) => Some(v),
            _ => None,
        }
    }

    /// A float value (F32, F64) as f64 (`None` for other types).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Self::F32(v) => Some(v.into()),
            Self::F64(v) => Some(v),
            _ => None,
        }
    }

    /// A string value's bytes.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::String(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// Appends the value's GGUF encoding (type id not included).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::U8(v) => out.push(*v),
            Self::I8(v) => out.push(*v as u8),
            Self::Bool(v) => out.push(*v as u8),
            Self::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::String(s) => encode_str(s.as_bytes(), out),
            Self::Array(a) => {
                out.extend_from_slice(&(a.elem_type() as u32).to_le_bytes());
                out.extend_from_slice(&(a.len() as u64).to_le_bytes());
                match a {
                    Array::Numeric { raw, .. } => out.extend_from_slice(raw),
                    Array::Strings(v) => v.iter().for_each(|s| encode_str(s, out)),
                }
            }
        }
    }

    /// A short human-readable rendering (arrays: type, length and the first few elements).
    pub fn display(&self) -> String {
        match self {
            Self::String(s) => format!("{:?}", s.to_str_lossy()),
            Self::Array(a) => {
                const SHOWN: usize = 6;
                let items: Vec<String> = (0..a.len().min(SHOWN))
                    .map(|i| a.get(i).expect("in range").display())
                    .collect();
                let more = if a.len() > SHOWN { ", …" } else { "" };
                format!(
                    "[{}; {}] [{}{more}]",
                    a.elem_type().name(),
                    a.len(),
                    items.join(", ")
                )
            }
            Self::F32(v) => format!("{v:?}"),
            Self::F64(v) => format!("{v:?}"),
            Self::Bool(v) => v.to_string(),
            Self::U64(v) => v.to_string(),
            v => v
                .as_i64()
                .expect("the remaining types are integers")
                .to_string(),
        }
    }
}

pub(crate) fn encode_str(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// Checks a numeric array's element type and byte length.
pub(crate) fn numeric_array(ty: ValueType, raw: Vec<u8>) -> Result<Array> {
    let size = ty.scalar_size().ok_or_else(|| {
        Error::invalid(format!(
            "{} arrays are not numeric (use a string array; nested arrays are not allowed)",
            ty.name()
        ))
    })?;
    if !raw.len().is_multiple_of(size) {
        return Err(Error::invalid(format!(
            "{} array data of {} bytes is not a whole number of {size}-byte elements",
            ty.name(),
            raw.len()
        )));
    }
    if ty == ValueType::Bool
        && let Some(i) = raw.iter().position(|&b| b > 1)
    {
        return Err(Error::invalid(format!(
            "BOOL array element {i} is {}, not 0 or 1",
            raw[i]
        )));
    }
    Ok(Array::Numeric { ty, raw })
}
