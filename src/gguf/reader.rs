//! GGUF v3 (and v2) reader over a memory map. Every count, length, offset, size, alignment and
//! type id is checked with checked arithmetic before use, and every allocation is bounded by the
//! bytes the file actually has, so a corrupt or truncated file is an error with a message (naming
//! the byte offset), never a crash or a huge allocation. Little-endian files only.
//!
//! What is checked (a superset of ggml's `gguf_init_from_file`, spec §4.3):
//! magic; version 2 or 3 (a version whose low 16 bits are 0 is a big-endian file); tensor and KV
//! counts fit in the bytes left; keys non-empty, UTF-8, unique; value types known, BOOL 0/1, no
//! nested arrays; `general.alignment` UINT32 and a power of two; tensor names UTF-8, without NUL,
//! shorter than 64 bytes, unique; `n_dims ≤ 4`; every dimension and the element count fit in
//! int64; the type id is known for the dialect and the row length is a multiple of its block;
//! byte sizes fit; each offset is a multiple of the alignment and the tensor lies inside the
//! file; tensors do not overlap. Whether the offsets are exactly ggml's contiguous layout is
//! reported (`ggml_contiguous`), not required: bitnet.cpp's fork never checked it.

use std::collections::HashMap;
use std::path::Path;

use super::mmap::Mmap;
use super::types::{self, Dialect, GgmlType, Sizing};
use super::value::{Array, GStr, StrList, Value, ValueType, numeric_array};

/// Initial capacity for lists whose length comes from the file: they grow as items are actually
/// parsed, so memory follows the bytes read, never a claimed count.
const INITIAL_CAPACITY: usize = 1024;
use crate::error::{Error, Result};

pub const MAGIC: &[u8; 4] = b"GGUF";
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// ggml's `GGML_MAX_NAME` (64, NUL included): names must be shorter.
pub const MAX_NAME: usize = 64;
pub const MAX_DIMS: usize = 4;

/// Reader settings (C: `tern_gguf_open_options`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadOptions {
    pub dialect: Dialect,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            dialect: Dialect::Auto,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Kv {
    /// UTF-8, with a trailing NUL for C.
    pub key: GStr,
    pub value: Value,
}

impl Kv {
    pub fn key_str(&self) -> &str {
        std::str::from_utf8(self.key.as_bytes()).expect("checked at parse time")
    }
}

#[derive(Clone, Debug)]
pub struct TensorInfo {
    /// UTF-8, without NUL, with a trailing NUL for C.
    pub name: GStr,
    pub n_dims: u32,
    /// ggml order (`ne[0]` = row length); unused dimensions are 1.
    pub dims: [u64; 4],
    /// The id stored in the file.
    pub type_id: u32,
    /// The resolved type (see `types` for the dialect rule).
    pub ty: GgmlType,
    /// Offset relative to the start of the data section.
    pub offset: u64,
    /// Bytes the tensor occupies in the file.
    pub size: u64,
}

impl TensorInfo {
    pub fn name_str(&self) -> &str {
        std::str::from_utf8(self.name.as_bytes()).expect("checked at parse time")
    }
    pub fn elements(&self) -> u64 {
        self.dims.iter().product()
    }
}

/// The parsed header of a GGUF file (everything but the tensor data).
#[derive(Clone, Debug)]
pub struct Metadata {
    pub version: u32,
    pub alignment: u64,
    /// Absolute offset of the data section.
    pub data_offset: u64,
    pub file_size: u64,
    pub kvs: Vec<Kv>,
    pub tensors: Vec<TensorInfo>,
    /// Whether tensor offsets are exactly ggml's contiguous layout (each offset = the sum of the
    /// previous tensors' sizes rounded up to the alignment), which current ggml requires.
    pub ggml_contiguous: bool,
    kv_index: HashMap<String, usize>,
    tensor_index: HashMap<String, usize>,
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn truncated(pos: usize, need: u64, len: usize, what: &str) -> Error {
    Error::invalid(format!(
        "truncated or corrupt GGUF: {what} at byte {pos} needs {need} bytes, but the file has only {} left ({len} bytes in all)",
        len - pos
    ))
}

impl<'a> Cursor<'a> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        if n > self.left() as u64 {
            return Err(truncated(self.pos, n, self.buf.len(), what));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4, what)?.try_into().expect("4"),
        ))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(
            self.take(8, what)?.try_into().expect("8"),
        ))
    }

    /// A GGUF string: u64 length + bytes.
    fn string(&mut self, what: &str) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = self.u64(&format!("the length of {what}"))?;
        if len > self.left() as u64 {
            return Err(Error::invalid(format!(
                "truncated or corrupt GGUF: {what} at byte {at} claims {len} bytes, but only {} are left",
                self.left()
            )));
        }
        self.take(len, what)
    }

    fn utf8(&mut self, what: &str) -> Result<&'a str> {
        let at = self.pos;
        let b = self.string(what)?;
        std::str::from_utf8(b).map_err(|e| {
            Error::invalid(format!(
                "corrupt GGUF: {what} at byte {at} is not valid UTF-8 ({e})"
            ))
        })
    }
}

fn value(c: &mut Cursor<'_>, ty: ValueType, what: &str) -> Result<Value> {
    let at = c.pos;
    Ok(match ty {
        ValueType::String => Value::String(GStr::new(c.string(what)?)),
        ValueType::Array => {
            let raw_ty = c.u32(&format!("the element type of {what}"))?;
            let ety = ValueType::from_u32(raw_ty).ok_or_else(|| {
                Error::invalid(format!(
                    "corrupt GGUF: {what} at byte {at} has unknown element type {raw_ty} (valid: 0..=12)"
                ))
            })?;
            let count = c.u64(&format!("the element count of {what}"))?;
            match ety {
                ValueType::Array => {
                    return Err(Error::invalid(format!(
                        "corrupt GGUF: {what} at byte {at} is a nested array, which GGUF does not allow"
                    )));
                }
                ValueType::String => {
                    // Every string takes at least its 8-byte length: bound before allocating.
                    if count > (c.left() / 8) as u64 {
                        return Err(Error::invalid(format!(
                            "truncated or corrupt GGUF: {what} at byte {at} claims {count} strings, more than the {} bytes left can hold",
                            c.left()
                        )));
                    }
                    let mut v = StrList::new();
                    for i in 0..count {
                        v.push(c.string(&format!("element {i} of {what}"))?);
                    }
                    Value::Array(Array::Strings(v))
                }
                _ => {
                    let size = ety.scalar_size().expect("numeric") as u64;
                    let bytes = count.checked_mul(size).filter(|&b| b <= c.left() as u64);
                    let Some(bytes) = bytes else {
                        return Err(Error::invalid(format!(
                            "truncated or corrupt GGUF: {what} at byte {at} claims {count} {} elements, more than the {} bytes left can hold",
                            ety.name(),
                            c.left()
                        )));
                    };
                    let raw = c.take(bytes, what)?.to_vec();
                    Value::Array(numeric_array(ety, raw).map_err(|e| {
                        Error::invalid(format!("corrupt GGUF: {what} at byte {at}: {}", e.message))
                    })?)
                }
            }
        }
        _ => {
            let size = ty.scalar_size().expect("scalar") as u64;
            let b = c.take(size, what)?;
            if ty == ValueType::Bool && b[0] > 1 {
                return Err(Error::invalid(format!(
                    "corrupt GGUF: {what} at byte {at} is a BOOL of value {}, not 0 or 1",
                    b[0]
                )));
            }
            Value::decode_scalar(ty, b)
        }
    })
}

struct RawTensor {
    name: String,
    n_dims: u32,
    dims: [u64; 4],
    type_id: u32,
    offset: u64,
    at: usize,
}

/// The tensor infos before their types and sizes are resolved.
struct RawTensors {
    raw: Vec<RawTensor>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// Parses and validates the header of a whole file held in `buf`.
    pub fn parse(buf: &[u8], opts: ReadOptions) -> Result<Self> {
        let mut c = Cursor { buf, pos: 0 };
        let version = read_version(&mut c)?;
        let n_tensors = c.u64("the tensor count")?;
        let n_kv = c.u64("the key-value count")?;
        // Smallest encodings: a KV is an 8-byte key length + 1 key byte + 4-byte type + 1 byte;
        // a tensor info is an 8-byte name length + 4-byte n_dims + 4-byte type + 8-byte offset.
        if n_kv > i64::MAX as u64 || n_kv > (c.left() / 14) as u64 {
            return Err(Error::invalid(format!(
                "corrupt GGUF: the key-value count {n_kv} cannot fit in the {} bytes after the header",
                c.left()
            )));
        }
        if n_tensors > i64::MAX as u64 || n_tensors > (c.left() / 24) as u64 {
            return Err(Error::invalid(format!(
                "corrupt GGUF: the tensor count {n_tensors} cannot fit in the {} bytes after the header",
                c.left()
            )));
        }

        let (kvs, kv_index, alignment) = read_kvs(&mut c, n_kv)?;
        let RawTensors {
            raw,
            index: tensor_index,
        } = read_tensor_infos(&mut c, n_tensors)?;
        let file_size = buf.len() as u64;
        let infos_end = c.pos as u64;
        let data_offset = if n_tensors == 0 {
            infos_end
        } else {
            let d = infos_end.next_multiple_of(alignment);
            if d > file_size {
                return Err(Error::invalid(format!(
                    "truncated GGUF: the data section should start at byte {d} (tensor infos end at {infos_end}, alignment {alignment}), but the file has {file_size} bytes"
                )));
            }
            d
        };
        let data_len = file_size - data_offset;

        let tensors = resolve_tensors(&raw, &tensor_index, opts, alignment, data_len, file_size)?;
        check_disjoint(&tensors)?;
        let mut expected = 0u64;
        let mut ggml_contiguous = true;
        for t in &tensors {
            ggml_contiguous &= t.offset == expected;
            expected = expected.saturating_add(t.size.next_multiple_of(alignment));
        }

        Ok(Self {
            version,
            alignment,
            data_offset,
            file_size,
            kvs,
            tensors,
            ggml_contiguous,
            kv_index,
            tensor_index,
        })
    }
}

/// The magic and version: 2 and 3 are read, 1 and byte-swapped (big-endian) files are refused.
fn read_version(c: &mut Cursor) -> Result<u32> {
    let magic = c.take(4, "the magic \"GGUF\"")?;
    if magic != MAGIC {
        return Err(Error::invalid(format!(
            "not a GGUF file: the magic is {magic:02x?}, expected \"GGUF\" (47 47 55 46)"
        )));
    }
    let version = c.u32("the version")?;
    if version != 0 && version & 0xFFFF == 0 {
        return Err(Error::unsupported(format!(
            "GGUF version field {version:#010x} looks byte-swapped: big-endian GGUF files are not supported"
        )));
    }
    match version {
        2 | 3 => {}
        1 => {
            return Err(Error::unsupported(
                "GGUF version 1 (32-bit counts) is not supported; convert the file to version 3",
            ));
        }
        v => {
            return Err(Error::unsupported(format!(
                "GGUF version {v} is not supported (this reader reads versions 2 and 3)"
            )));
        }
    }
    Ok(version)
}

/// The key-value pairs, their index by key and the file's alignment (`general.alignment`).
fn read_kvs(c: &mut Cursor, n_kv: u64) -> Result<(Vec<Kv>, HashMap<String, usize>, u64)> {
    let cap = (n_kv as usize).min(INITIAL_CAPACITY);
    let mut kvs = Vec::with_capacity(cap);
    let mut kv_index = HashMap::with_capacity(cap);
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv as usize {
        let at = c.pos;
        let key = c.utf8(&format!("the key of KV {i}"))?;
        if key.is_empty() {
            return Err(Error::invalid(format!(
                "corrupt GGUF: KV {i} at byte {at} has an empty key"
            )));
        }
        if kv_index.contains_key(key) {
            return Err(Error::invalid(format!(
                "corrupt GGUF: duplicate key '{key}' (KV {i} at byte {at})"
            )));
        }
        let tpos = c.pos;
        let raw_ty = c.u32(&format!("the type of '{key}'"))?;
        let ty = ValueType::from_u32(raw_ty).ok_or_else(|| {
                Error::invalid(format!(
                    "corrupt GGUF: key '{key}' at byte {tpos} has unknown value type {raw_ty} (valid: 0..=12)"
                ))
            })?;
        let v = value(c, ty, &format!("the value of '{key}'"))?;
        if key == "general.alignment" {
            alignment = match v {
                Value::U32(a) if a != 0 && a.is_power_of_two() => a as u64,
                Value::U32(a) => {
                    return Err(Error::invalid(format!(
                        "corrupt GGUF: general.alignment = {a} is not a power of two"
                    )));
                }
                ref other => {
                    return Err(Error::invalid(format!(
                        "corrupt GGUF: general.alignment must be UINT32, got {}",
                        other.ty().name()
                    )));
                }
            };
        }
        kv_index.insert(key.to_owned(), i);
        kvs.push(Kv {
            key: GStr::new(key.as_bytes()),
            value: v,
        });
    }

    Ok((kvs, kv_index, alignment))
}

/// The tensor infos in file order, with their index by name.
fn read_tensor_infos(c: &mut Cursor, n_tensors: u64) -> Result<RawTensors> {
    let cap = (n_tensors as usize).min(INITIAL_CAPACITY);
    let mut raw = Vec::with_capacity(cap);
    let mut tensor_index = HashMap::with_capacity(cap);
    for i in 0..n_tensors as usize {
        let at = c.pos;
        let name = c.utf8(&format!("the name of tensor {i}"))?;
        if name.len() >= MAX_NAME {
            return Err(Error::invalid(format!(
                "corrupt GGUF: tensor {i} at byte {at} has a {}-byte name; ggml allows at most {}",
                name.len(),
                MAX_NAME - 1
            )));
        }
        if name.contains('\0') {
            return Err(Error::invalid(format!(
                "corrupt GGUF: the name of tensor {i} at byte {at} contains a NUL byte"
            )));
        }
        if tensor_index.contains_key(name) {
            return Err(Error::invalid(format!(
                "corrupt GGUF: duplicate tensor name '{name}' (tensor {i} at byte {at})"
            )));
        }
        let dpos = c.pos;
        let n_dims = c.u32(&format!("n_dims of tensor '{name}'"))?;
        if n_dims as usize > MAX_DIMS {
            return Err(Error::invalid(format!(
                "corrupt GGUF: tensor '{name}' has n_dims = {n_dims} at byte {dpos}; at most {MAX_DIMS} are allowed"
            )));
        }
        let mut dims = [1u64; 4];
        let mut elements: u64 = 1;
        for (d, slot) in dims.iter_mut().enumerate().take(n_dims as usize) {
            let v = c.u64(&format!("dimension {d} of tensor '{name}'"))?;
            elements = elements
                    .checked_mul(v)
                    .filter(|&e| e <= i64::MAX as u64 && v <= i64::MAX as u64)
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "corrupt GGUF: tensor '{name}' dimension {d} = {v} makes the element count overflow int64"
                        ))
                    })?;
            *slot = v;
        }
        let type_id = c.u32(&format!("the type of tensor '{name}'"))?;
        let offset = c.u64(&format!("the offset of tensor '{name}'"))?;
        tensor_index.insert(name.to_owned(), i);
        raw.push(RawTensor {
            name: name.to_owned(),
            n_dims,
            dims,
            type_id,
            offset,
            at,
        });
    }

    Ok(RawTensors {
        raw,
        index: tensor_index,
    })
}

/// Each tensor's type (ids 39/42 weighed against the bytes up to the next tensor and the
/// `<name>_scale` companions) and size, checked against the alignment and the data section.
fn resolve_tensors(
    raw: &[RawTensor],
    tensor_index: &HashMap<String, usize>,
    opts: ReadOptions,
    alignment: u64,
    data_len: u64,
    file_size: u64,
) -> Result<Vec<TensorInfo>> {
    let is_scale = |name: &str| {
        tensor_index
            .get(name)
            .is_some_and(|&j| raw[j].dims.iter().product::<u64>() == 1)
    };
    let mut starts: Vec<u64> = raw.iter().map(|t| t.offset).collect();
    starts.sort_unstable();
    let mut tensors = Vec::with_capacity(raw.len());
    for t in raw {
        // The bytes up to the next tensor (or the end of the data): what the AUTO dialect
        // weighs the candidate sizes of an id 39/42 tensor against.
        let next = starts.partition_point(|&o| o <= t.offset);
        let evidence = types::Evidence {
            name: &t.name,
            dims: t.dims,
            companion: is_scale(&format!("{}_scale", t.name)),
            room: starts
                .get(next)
                .copied()
                .unwrap_or(data_len)
                .saturating_sub(t.offset),
            last: next == starts.len(),
            alignment,
        };
        let ty = types::resolve_tensor(t.type_id, opts.dialect, &evidence).map_err(|e| {
            Error::invalid(format!(
                "corrupt or unsupported GGUF: tensor '{}' (info at byte {}): {}",
                t.name, t.at, e.message
            ))
        })?;
        let size = ty.nbytes(&t.dims).map_err(|e| {
            Error::invalid(format!(
                "corrupt GGUF: tensor '{}' (info at byte {}): {}",
                t.name, t.at, e.message
            ))
        })?;
        if !t.offset.is_multiple_of(alignment) {
            return Err(Error::invalid(format!(
                "corrupt GGUF: tensor '{}' has offset {}, not a multiple of the alignment {alignment}",
                t.name, t.offset
            )));
        }
        match t.offset.checked_add(size) {
            Some(end) if end <= data_len => {}
            _ => {
                return Err(Error::invalid(format!(
                    "truncated or corrupt GGUF: tensor '{}' ({} bytes at data offset {}) ends past the data section of {data_len} bytes (file of {file_size} bytes)",
                    t.name, size, t.offset
                )));
            }
        }
        tensors.push(TensorInfo {
            name: GStr::new(t.name.as_bytes()),
            n_dims: t.n_dims,
            dims: t.dims,
            type_id: t.type_id,
            ty,
            offset: t.offset,
            size,
        });
    }

    Ok(tensors)
}

/// No two tensors share a byte.
fn check_disjoint(tensors: &[TensorInfo]) -> Result<()> {
    let mut order: Vec<usize> = (0..tensors.len()).collect();
    order.sort_by_key(|&i| (tensors[i].offset, tensors[i].size));
    for w in order.windows(2) {
        let (a, b) = (&tensors[w[0]], &tensors[w[1]]);
        if a.offset + a.size > b.offset {
            return Err(Error::invalid(format!(
                "corrupt GGUF: tensors '{}' (bytes {}..{}) and '{}' (from byte {}) overlap",
                a.name_str(),
                a.offset,
                a.offset + a.size,
                b.name_str(),
                b.offset
            )));
        }
    }
    Ok(())
}

impl Metadata {
    pub fn find_kv(&self, key: &str) -> Option<&Kv> {
        self.kv_index.get(key).map(|&i| &self.kvs[i])
    }

    pub fn kv_position(&self, key: &str) -> Option<usize> {
        self.kv_index.get(key).copied()
    }

    pub fn find_tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index.get(name).map(|&i| &self.tensors[i])
    }

    pub fn tensor_position(&self, name: &str) -> Option<usize> {
        self.tensor_index.get(name).copied()
    }

    /// The string value of `key` as UTF-8, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.find_kv(key)
            .and_then(|kv| kv.value.as_bytes())
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// The architecture (`general.architecture`), if any.
    pub fn architecture(&self) -> Option<&str> {
        self.get_str("general.architecture")
    }

    /// Whether any tensor uses a bitnet.cpp fork type.
    pub fn has_bitnet_types(&self) -> bool {
        self.tensors
            .iter()
            .any(|t| !matches!(t.ty.sizing, Sizing::Blocks { .. }))
    }
}

/// An open GGUF file: the validated metadata and a read-only map of the file.
pub struct Gguf {
    map: Mmap,
    meta: Metadata,
}

impl Gguf {
    pub fn open(path: &Path, opts: ReadOptions) -> Result<Self> {
        let map = Mmap::open(path)?;
        let meta = Metadata::parse(map.bytes(), opts)
            .map_err(|e| Error::new(e.kind, format!("{}: {}", path.display(), e.message)))?;
        Ok(Self { map, meta })
    }

    pub fn meta(&self) -> &Metadata {
        &self.meta
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.map.bytes()
    }

    /// The data section (from `data_offset` to the end of the file).
    pub fn data_section(&self) -> &[u8] {
        &self.map.bytes()[self.meta.data_offset as usize..]
    }

    /// A tensor's bytes in the file (validated to lie inside it at open).
    pub fn tensor_data(&self, t: &TensorInfo) -> &[u8] {
        let start = (self.meta.data_offset + t.offset) as usize;
        &self.map.bytes()[start..start + t.size as usize]
    }
}
