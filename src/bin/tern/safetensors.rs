//! safetensors reader: an 8-byte little-endian header length, a JSON header mapping tensor names
//! to `{"dtype", "shape", "data_offsets": [begin, end]}` (plus an optional `__metadata__` object of
//! strings), then the data. Memory-mapped; every size and offset is checked.

use std::path::Path;

use half::{bf16, f16};

use tern::error::{Error, Result};
use tern::gguf::Mmap;

use crate::json::{self, Json};

/// Largest header accepted (the reference implementation's limit is 100 MB).
pub const MAX_HEADER: u64 = 100 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F64,
    F32,
    F16,
    BF16,
    I64,
    I32,
    I16,
    I8,
    U8,
    Bool,
    U16,
    U32,
    U64,
    F8E4M3,
    F8E5M2,
}

impl Dtype {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "F64" => Self::F64,
            "F32" => Self::F32,
            "F16" => Self::F16,
            "BF16" => Self::BF16,
            "I64" => Self::I64,
            "I32" => Self::I32,
            "I16" => Self::I16,
            "I8" => Self::I8,
            "U8" => Self::U8,
            "BOOL" => Self::Bool,
            "U16" => Self::U16,
            "U32" => Self::U32,
            "U64" => Self::U64,
            "F8_E4M3" => Self::F8E4M3,
            "F8_E5M2" => Self::F8E5M2,
            _ => return None,
        })
    }

    pub fn size(self) -> u64 {
        match self {
            Self::F64 | Self::I64 | Self::U64 => 8,
            Self::F32 | Self::I32 | Self::U32 => 4,
            Self::F16 | Self::BF16 | Self::I16 | Self::U16 => 2,
            Self::I8 | Self::U8 | Self::Bool | Self::F8E4M3 | Self::F8E5M2 => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::F64 => "F64",
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::I64 => "I64",
            Self::I32 => "I32",
            Self::I16 => "I16",
            Self::I8 => "I8",
            Self::U8 => "U8",
            Self::Bool => "BOOL",
            Self::U16 => "U16",
            Self::U32 => "U32",
            Self::U64 => "U64",
            Self::F8E4M3 => "F8_E4M3",
            Self::F8E5M2 => "F8_E5M2",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Self::F32 | Self::F16 | Self::BF16)
    }
}

#[derive(Clone, Debug)]
pub struct Tensor {
    pub name: String,
    pub dtype: Dtype,
    /// PyTorch order (outermost first).
    pub shape: Vec<u64>,
    /// Byte range inside the data section.
    pub begin: u64,
    pub end: u64,
}

impl Tensor {
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }
}

pub struct SafeTensors {
    map: Mmap,
    data_start: usize,
    pub tensors: Vec<Tensor>,
}

fn bad(path: &Path, what: String) -> Error {
    Error::invalid(format!(
        "{}: invalid safetensors file: {what}",
        path.display()
    ))
}

impl SafeTensors {
    pub fn open(path: &Path) -> Result<Self> {
        let map = Mmap::open(path)?;
        // The `__metadata__` strings are checked but not needed by the converter.
        let (tensors, _, data_start) =
            Self::parse(map.bytes()).map_err(|e| bad(path, e.message))?;
        Ok(Self {
            map,
            data_start,
            tensors,
        })
    }

    /// Parses a whole file's bytes: tensors (in header order), metadata, data start.
    #[allow(clippy::type_complexity)]
    pub fn parse(b: &[u8]) -> Result<(Vec<Tensor>, Vec<(String, String)>, usize)> {
        let e = |s: String| Error::invalid(s);
        if b.len() < 8 {
            return Err(e(format!(
                "{} bytes is too short for the 8-byte header length",
                b.len()
            )));
        }
        let n = u64::from_le_bytes(b[..8].try_into().expect("8"));
        if n > MAX_HEADER || n > (b.len() - 8) as u64 {
            return Err(e(format!(
                "header length {n} exceeds the file ({} bytes) or the {MAX_HEADER}-byte limit",
                b.len()
            )));
        }
        let data_start = 8 + n as usize;
        let header = json::parse(&b[8..data_start])?;
        let Json::Object(entries) = header else {
            return Err(e("the header is not a JSON object".into()));
        };
        let data_len = (b.len() - data_start) as u64;
        let mut tensors = Vec::with_capacity(entries.len());
        let mut metadata = Vec::new();
        for (name, v) in entries {
            if name == "__metadata__" {
                let Json::Object(m) = v else {
                    return Err(e("__metadata__ is not an object".into()));
                };
                for (k, v) in m {
                    let s = v
                        .as_str()
                        .ok_or_else(|| e(format!("__metadata__.{k} is not a string")))?;
                    metadata.push((k, s.to_owned()));
                }
                continue;
            }
            let dtype_s = v
                .get("dtype")
                .and_then(Json::as_str)
                .ok_or_else(|| e(format!("tensor '{name}' has no string \"dtype\"")))?;
            let dtype = Dtype::parse(dtype_s)
                .ok_or_else(|| e(format!("tensor '{name}' has unknown dtype '{dtype_s}'")))?;
            let shape: Vec<u64> = v
                .get("shape")
                .and_then(Json::as_array)
                .and_then(|a| a.iter().map(Json::as_u64).collect::<Option<Vec<_>>>())
                .ok_or_else(|| {
                    e(format!(
                        "tensor '{name}' has no \"shape\" array of non-negative integers"
                    ))
                })?;
            let offs: Vec<u64> = v
                .get("data_offsets")
                .and_then(Json::as_array)
                .and_then(|a| a.iter().map(Json::as_u64).collect::<Option<Vec<_>>>())
                .filter(|o| o.len() == 2)
                .ok_or_else(|| {
                    e(format!(
                        "tensor '{name}' has no \"data_offsets\" [begin, end]"
                    ))
                })?;
            let (begin, end) = (offs[0], offs[1]);
            let bytes = shape
                .iter()
                .try_fold(dtype.size(), |acc, &d| acc.checked_mul(d))
                .ok_or_else(|| e(format!("tensor '{name}': shape {shape:?} overflows")))?;
            if begin > end || end > data_len || end - begin != bytes {
                return Err(e(format!(
                    "tensor '{name}' ({} {shape:?} = {bytes} bytes) has data_offsets [{begin}, {end}] inconsistent with its size or the {data_len}-byte data section",
                    dtype.name()
                )));
            }
            tensors.push(Tensor {
                name,
                dtype,
                shape,
                begin,
                end,
            });
        }
        let mut order: Vec<&Tensor> = tensors.iter().filter(|t| t.end > t.begin).collect();
        order.sort_by_key(|t| t.begin);
        for w in order.windows(2) {
            if w[0].end > w[1].begin {
                return Err(e(format!(
                    "tensors '{}' and '{}' overlap",
                    w[0].name, w[1].name
                )));
            }
        }
        Ok((tensors, metadata, data_start))
    }

    pub fn data(&self, t: &Tensor) -> &[u8] {
        &self.map.bytes()[self.data_start + t.begin as usize..self.data_start + t.end as usize]
    }

    /// A float tensor as f32 values.
    pub fn to_f32(&self, t: &Tensor) -> Result<Vec<f32>> {
        let b = self.data(t);
        Ok(match t.dtype {
            Dtype::F32 => b
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                .collect(),
            Dtype::F16 => b
                .chunks_exact(2)
                .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            Dtype::BF16 => b
                .chunks_exact(2)
                .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
                .collect(),
            other => {
                return Err(Error::unsupported(format!(
                    "tensor '{}' is {}; only F32, F16 and BF16 convert to floats",
                    t.name,
                    other.name()
                )));
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut v = (header.len() as u64).to_le_bytes().to_vec();
        v.extend_from_slice(header.as_bytes());
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn parse_and_errors() {
        let ok = file(
            r#"{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
            &[0; 8],
        );
        let (t, m, _) = SafeTensors::parse(&ok).unwrap();
        assert_eq!(t[0].shape, [2]);
        assert_eq!(m, [("format".to_string(), "pt".to_string())]);
        for cut in 0..ok.len() {
            assert!(SafeTensors::parse(&ok[..cut]).is_err(), "cut {cut}");
        }
        for bad in [
            r#"{"a":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
            r#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[2]}}"#,
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,8]}}"#,
            r#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[2,6]}}"#,
            r#"[]"#,
        ] {
            assert!(SafeTensors::parse(&file(bad, &[0; 8])).is_err(), "{bad}");
        }
    }
}
