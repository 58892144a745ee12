//! GGUF v3 writer following ggml's recipe (spec §4.5): header, KVs in insertion order, tensor
//! infos with offsets as running `align_up` sums, zero padding to the alignment, then each
//! tensor's bytes followed by zero padding. `general.alignment` is written (last) only when the
//! alignment is not the default 32. The file is written to a temporary name next to the target
//! and renamed into place, so a failure leaves no partial file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::reader::{DEFAULT_ALIGNMENT, MAGIC, MAX_DIMS, MAX_NAME};
use super::ternary::{file_payload, scale_name, tiling_key, tiling_value};
use super::types::{self, Dialect, GgmlType};
use super::value::{Value, encode_str};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{Layout, Shape};

/// Where a tensor's bytes come from at write time.
pub enum TensorData<'a> {
    /// Bytes the writer owns.
    Owned(Vec<u8>),
    /// Bytes the caller keeps alive until the file is written.
    Borrowed(&'a [u8]),
    /// Produced when the tensor is written (keeps memory to one tensor at a time); must return
    /// exactly the declared size.
    Lazy(Box<dyn FnOnce() -> Result<Vec<u8>> + 'a>),
}

struct Tensor<'a> {
    name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    size: u64,
    data: TensorData<'a>,
}

/// Progress of `Writer::write`: tensor index, tensor count, name, bytes written so far, total.
pub type Progress<'p> = &'p mut dyn FnMut(usize, usize, &str, u64, u64);

/// A `Progress` for a command line: a line to `log` at every 10 % step and at the end.
#[doc(hidden)]
pub fn percent_log(log: &mut dyn FnMut(&str)) -> impl FnMut(usize, usize, &str, u64, u64) + '_ {
    let mut last_pct = u64::MAX;
    move |i, n, name, done, total| {
        let pct = (done * 100).checked_div(total).unwrap_or(100);
        if i == n || pct / 10 != last_pct / 10 {
            last_pct = pct;
            if i == n {
                log(&format!("writing: 100% ({done} bytes)"));
            } else {
                log(&format!(
                    "writing: {pct:>3}% ({done} / {total} bytes) tensor {}/{n} {name}",
                    i + 1
                ));
            }
        }
    }
}

/// A GGUF v3 file being assembled: KVs and tensors are added (and checked) in memory, then
/// [`write`](Writer::write) writes the file in one pass, through a temporary file renamed into
/// place (see the [module](crate::gguf) example).
pub struct Writer<'a> {
    alignment: u64,
    dialect: Dialect,
    kvs: Vec<(String, Value)>,
    keys: HashSet<String>,
    tensors: Vec<Tensor<'a>>,
    names: HashSet<String>,
}

impl<'a> Writer<'a> {
    /// `alignment` 0 means 32; otherwise a power of two. `dialect` picks the TL2 id (AUTO =
    /// bitnet.cpp current, 42); MAINLINE refuses the bitnet.cpp types.
    pub fn new(alignment: u32, dialect: Dialect) -> Result<Self> {
        let alignment = match alignment {
            0 => DEFAULT_ALIGNMENT,
            a if a.is_power_of_two() => a as u64,
            a => {
                return Err(Error::invalid(format!(
                    "alignment {a} is not a power of two"
                )));
            }
        };
        Ok(Self {
            alignment,
            dialect,
            kvs: Vec::new(),
            keys: HashSet::new(),
            tensors: Vec::new(),
            names: HashSet::new(),
        })
    }

    /// The dialect it writes type ids in.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The tensor data alignment.
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Tensors added so far.
    pub fn tensor_count(&self) -> usize {
        self.tensors.len()
    }

    /// KV pairs the file will hold (`general.alignment` included when the writer adds it).
    pub fn kv_count(&self) -> usize {
        self.kvs.len()
            + usize::from(
                self.alignment != DEFAULT_ALIGNMENT && !self.keys.contains("general.alignment"),
            )
    }

    /// Adds a KV pair (keys non-empty and unique; `general.alignment` must be the UINT32 the
    /// writer was created with).
    pub fn add_kv(&mut self, key: &str, value: Value) -> Result<()> {
        if key.is_empty() {
            return Err(Error::invalid("GGUF keys must not be empty"));
        }
        if self.keys.contains(key) {
            return Err(Error::invalid(format!("key '{key}' was already added")));
        }
        if key == "general.alignment" && value != Value::U32(self.alignment as u32) {
            return Err(Error::invalid(format!(
                "general.alignment must be the UINT32 {} the writer was created with (got {:?})",
                self.alignment, value
            )));
        }
        self.keys.insert(key.to_owned());
        self.kvs.push((key.to_owned(), value));
        Ok(())
    }

    /// Adds a tensor of registry type `ty` with dims in ggml order (`dims[0]` = row length).
    /// Owned and borrowed data must be exactly the type's byte size for those dims.
    pub fn add_tensor(
        &mut self,
        name: &str,
        ty: GgmlType,
        dims: &[u64],
        data: TensorData<'a>,
    ) -> Result<()> {
        if name.len() >= MAX_NAME {
            return Err(Error::invalid(format!(
                "tensor name '{name}' is {} bytes; ggml allows at most {}",
                name.len(),
                MAX_NAME - 1
            )));
        }
        if name.contains('\0') {
            return Err(Error::invalid("tensor names must not contain NUL"));
        }
        if self.names.contains(name) {
            return Err(Error::invalid(format!("tensor '{name}' was already added")));
        }
        if dims.is_empty() || dims.len() > MAX_DIMS {
            return Err(Error::invalid(format!(
                "tensor '{name}' has {} dims; 1 to {MAX_DIMS} are allowed",
                dims.len()
            )));
        }
        let mut ne = [1u64; 4];
        let mut elements = 1u64;
        for (i, &d) in dims.iter().enumerate() {
            elements = elements
                .checked_mul(d)
                .filter(|&e| e <= i64::MAX as u64 && d <= i64::MAX as u64)
                .ok_or_else(|| {
                    Error::invalid(format!("tensor '{name}': dims {dims:?} overflow int64"))
                })?;
            ne[i] = d;
        }
        let size = ty
            .nbytes(&ne)
            .map_err(|e| Error::invalid(format!("tensor '{name}': {}", e.message)))?;
        let given = match &data {
            TensorData::Owned(v) => Some(v.len()),
            TensorData::Borrowed(b) => Some(b.len()),
            TensorData::Lazy(_) => None,
        };
        if let Some(len) = given
            && len as u64 != size
        {
            return Err(Error::invalid(format!(
                "tensor '{name}': {} with dims {dims:?} takes {size} bytes, got {len}",
                ty.name
            )));
        }
        self.names.insert(name.to_owned());
        self.tensors.push(Tensor {
            name: name.to_owned(),
            dims: dims.to_vec(),
            ty,
            size,
            data,
        });
        Ok(())
    }

    /// Adds a packed ternary matrix (tern's layout bytes, validated) as the GGUF type of its
    /// format. TL1/TL2 become bitnet.cpp's payload plus an F32 `<name>_scale` tensor right
    /// after it, and a `tern.tiling.<name>` KV records the tiling.
    pub fn add_ternary(
        &mut self,
        name: &str,
        layout: Layout,
        shape: Shape,
        packed: &[u8],
    ) -> Result<()> {
        let (ty, payload, scale) = file_payload(layout, shape, packed, self.dialect)?;
        let dims = [shape.cols as u64, shape.rows as u64];
        if let Some(scale) = scale {
            let sname = scale_name(name);
            if self.names.contains(&sname) || sname.len() >= MAX_NAME {
                return Err(Error::invalid(format!(
                    "cannot add the scale tensor '{sname}' for '{name}' (name taken or too long)"
                )));
            }
            let key = tiling_key(name);
            if self.keys.contains(&key) {
                return Err(Error::invalid(format!("key '{key}' was already added")));
            }
            let tiling = layout.tiling(shape)?.expect("TL layout");
            self.add_tensor(name, ty, &dims, TensorData::Owned(payload))?;
            self.add_tensor(
                &sname,
                types::F32,
                &[1],
                TensorData::Owned(scale.to_le_bytes().to_vec()),
            )?;
            self.add_kv(&key, tiling_value(&tiling))?;
            Ok(())
        } else {
            self.add_tensor(name, ty, &dims, TensorData::Owned(payload))
        }
    }

    /// The total file size the writer will produce.
    pub fn file_size(&self) -> u64 {
        let (header, _) = self.header();
        let mut n = header.len() as u64;
        for t in &self.tensors {
            n += t.size.next_multiple_of(self.alignment);
        }
        n
    }

    fn all_kvs(&self) -> Vec<(String, Value)> {
        let mut kvs = self.kvs.clone();
        if self.alignment != DEFAULT_ALIGNMENT && !self.keys.contains("general.alignment") {
            kvs.push((
                "general.alignment".into(),
                Value::U32(self.alignment as u32),
            ));
        }
        kvs
    }

    /// Header, KVs, tensor infos and the padding before the data; plus the tensor offsets.
    fn header(&self) -> (Vec<u8>, Vec<u64>) {
        let kvs = self.all_kvs();
        let mut h = Vec::new();
        h.extend_from_slice(MAGIC);
        h.extend_from_slice(&3u32.to_le_bytes());
        h.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        h.extend_from_slice(&(kvs.len() as u64).to_le_bytes());
        for (k, v) in &kvs {
            encode_str(k.as_bytes(), &mut h);
            h.extend_from_slice(&(v.ty() as u32).to_le_bytes());
            v.encode(&mut h);
        }
        let mut offsets = Vec::with_capacity(self.tensors.len());
        let mut offset = 0u64;
        for t in &self.tensors {
            encode_str(t.name.as_bytes(), &mut h);
            h.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                h.extend_from_slice(&d.to_le_bytes());
            }
            h.extend_from_slice(&t.ty.id.to_le_bytes());
            h.extend_from_slice(&offset.to_le_bytes());
            offsets.push(offset);
            offset += t.size.next_multiple_of(self.alignment);
        }
        if !self.tensors.is_empty() {
            let padded = (h.len() as u64).next_multiple_of(self.alignment) as usize;
            h.resize(padded, 0);
        }
        (h, offsets)
    }

    /// Streams the file to `out`; returns the bytes written. Owned and borrowed data stay, so
    /// the writer can write again; lazy tensors are produced once (a second write fails).
    pub fn write_to(&mut self, out: &mut dyn Write, progress: Progress<'_>) -> Result<u64> {
        let io = |e: std::io::Error| Error::new(ErrorKind::Internal, format!("write failed: {e}"));
        let total = self.file_size();
        let (header, _) = self.header();
        out.write_all(&header).map_err(io)?;
        let mut written = header.len() as u64;
        let n = self.tensors.len();
        let zeros = vec![0u8; self.alignment as usize];
        for (i, t) in self.tensors.iter_mut().enumerate() {
            progress(i, n, &t.name, written, total);
            let produced = if matches!(t.data, TensorData::Lazy(_)) {
                let TensorData::Lazy(f) =
                    std::mem::replace(&mut t.data, TensorData::Owned(Vec::new()))
                else {
                    unreachable!("checked above")
                };
                Some(f()?)
            } else {
                None
            };
            let bytes: &[u8] = match (&produced, &t.data) {
                (Some(v), _) => v,
                (None, TensorData::Owned(v)) => v,
                (None, TensorData::Borrowed(b)) => b,
                (None, TensorData::Lazy(_)) => unreachable!("produced above"),
            };
            if bytes.len() as u64 != t.size {
                return Err(Error::invalid(format!(
                    "tensor '{}' has {} bytes, declared {} (a lazy tensor can be written once)",
                    t.name,
                    bytes.len(),
                    t.size
                )));
            }
            out.write_all(bytes).map_err(io)?;
            let pad = (t.size.next_multiple_of(self.alignment) - t.size) as usize;
            out.write_all(&zeros[..pad]).map_err(io)?;
            written += t.size + pad as u64;
        }
        progress(n, n, "", written, total);
        out.flush().map_err(io)?;
        Ok(written)
    }

    /// Writes the file to `path` (through a temporary file renamed into place).
    pub fn write(&mut self, path: &Path, progress: Progress<'_>) -> Result<u64> {
        let tmp = temp_path(path);
        let result = (|| {
            let f = File::create(&tmp)
                .map_err(|e| Error::invalid(format!("cannot create '{}': {e}", tmp.display())))?;
            let mut w = BufWriter::with_capacity(1 << 20, f);
            let n = self.write_to(&mut w, progress)?;
            let f = w.into_inner().map_err(|e| {
                Error::new(ErrorKind::Internal, format!("write failed: {}", e.error()))
            })?;
            f.sync_all()
                .map_err(|e| Error::new(ErrorKind::Internal, format!("sync failed: {e}")))?;
            std::fs::rename(&tmp, path).map_err(|e| {
                Error::invalid(format!(
                    "cannot rename '{}' to '{}': {e}",
                    tmp.display(),
                    path.display()
                ))
            })?;
            Ok(n)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn temp_path(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(format!(".tern-tmp-{}", std::process::id()));
    path.with_file_name(name)
}
