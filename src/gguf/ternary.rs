//! Ternary tensors inside GGUF files (and mainline's Q2_0 / Q1_0, whose values are −1..2 / ±1):
//! from a tensor to tern's packed `Layout` bytes (and a `Matrix`), and the conventions tern
//! writes.
//!
//! * TQ1_0 / TQ2_0 / Q2_0 / Q1_0: the tensor bytes are the packed matrix (`ne0 = cols`,
//!   `ne1 = rows`), with ggml's ids 34 / 35 / 42 / 41.
//! * I2_S: the tensor bytes (`M·K/4 + 32`) are the packed matrix, x86 128-element blocks unless
//!   the caller's layout says `TERN_I2S_ARM64`. The 28 bytes after the scale are not checked
//!   (bitnet.cpp's C quantizer leaves junk there).
//! * TL1 / TL2: the tensor holds the payload only; the f32 scale is the companion tensor
//!   `<name>_scale` (1 element, F32, F16 or BF16), as bitnet.cpp's converter writes it. Without a
//!   companion, the scale is read where bitnet.cpp's runtime reads it: at byte `M·K/4` (TL1) or
//!   `round_up_32(payload)` (TL2) from the tensor's start, if the file extends that far. The
//!   tiling is, in order: the caller's layout, the KV `tern.tiling.<name>` (UINT32 array `[BM,
//!   BK, bm]`, written by tern), or the library's choice for the shape (bitnet.cpp's presets for
//!   its model shapes). Only shapes bitnet.cpp itself can store are accepted in a file (tern's
//!   zero-padded extension has sizes that bitnet.cpp's `ggml_nbytes` would not match).

use std::borrow::Cow;

use half::{bf16, f16};

use super::reader::{Gguf, TensorInfo};
use super::types;
use super::value::{Array, Value, ValueType};
use crate::context::Context;
use crate::error::{Error, Result};
use crate::format::{Format, I2sVariant, Layout, Shape, Tiling, tl1, tl2};
use crate::matrix::Matrix;

/// The KV key holding the TL tiling tern used for tensor `name`.
pub fn tiling_key(name: &str) -> String {
    format!("tern.tiling.{name}")
}

/// The KV value for a TL tiling.
pub fn tiling_value(t: &Tiling) -> Value {
    Value::Array(Array::from_u32(&[
        t.tile_rows as u32,
        t.tile_k as u32,
        t.simd_rows as u32,
    ]))
}

/// The name of a TL tensor's scale companion.
pub fn scale_name(name: &str) -> String {
    format!("{name}_scale")
}

/// The matrix shape of a 2-D tensor: rows = `ne1`, cols = `ne0`.
pub fn matrix_shape(t: &TensorInfo) -> Result<Shape> {
    if t.dims[2] != 1 || t.dims[3] != 1 {
        return Err(Error::invalid(format!(
            "tensor '{}' has dims {:?}; a matrix needs ne2 = ne3 = 1",
            t.name_str(),
            t.dims
        )));
    }
    Shape::new(t.dims[1] as i64, t.dims[0] as i64)
        .map_err(|e| Error::invalid(format!("tensor '{}': {}", t.name_str(), e.message)))
}

/// A 1-element float tensor's value.
fn scalar_f32(g: &Gguf, t: &TensorInfo) -> Result<f32> {
    if t.elements() != 1 {
        return Err(Error::invalid(format!(
            "scale tensor '{}' has {} elements; expected 1",
            t.name_str(),
            t.elements()
        )));
    }
    let b = g.tensor_data(t);
    let v = match t.ty.name {
        "F32" => f32::from_le_bytes(b[..4].try_into().expect("4")),
        "F16" => f16::from_le_bytes([b[0], b[1]]).to_f32(),
        "BF16" => bf16::from_le_bytes([b[0], b[1]]).to_f32(),
        other => {
            return Err(Error::invalid(format!(
                "scale tensor '{}' is {other}; expected F32, F16 or BF16",
                t.name_str()
            )));
        }
    };
    Ok(v)
}

/// The TL tiling recorded in the file for `name`, if any.
fn file_tiling(g: &Gguf, name: &str) -> Result<Option<(u32, u32, u32)>> {
    let key = tiling_key(name);
    let Some(kv) = g.meta().find_kv(&key) else {
        return Ok(None);
    };
    let bad = || {
        Error::invalid(format!(
            "KV '{key}' must be a UINT32 array [tile_rows, tile_k, simd_rows]"
        ))
    };
    match &kv.value {
        Value::Array(a) if a.elem_type() == ValueType::U32 && a.len() == 3 => {
            let v: Vec<u32> = (0..3)
                .map(|i| match a.get(i) {
                    Some(Value::U32(x)) => x,
                    _ => 0,
                })
                .collect();
            Ok(Some((v[0], v[1], v[2])))
        }
        _ => Err(bad()),
    }
}

/// The layout, shape and packed bytes (tern's layout format) of ternary tensor `name`.
/// `layout` (optional) overrides the I2_S variant or the TL tiling; its format must match the
/// tensor's.
pub fn packed<'g>(
    g: &'g Gguf,
    name: &str,
    layout: Option<Layout>,
) -> Result<(Layout, Shape, Cow<'g, [u8]>)> {
    let t = g
        .meta()
        .find_tensor(name)
        .ok_or_else(|| Error::invalid(format!("the GGUF file has no tensor named '{name}'")))?;
    let format = t.ty.ternary.ok_or_else(|| {
        Error::unsupported(format!(
            "tensor '{name}' is {} (type {}), not a type tern reads as a matrix (TQ1_0, TQ2_0, I2_S, TL1, TL2, Q2_0, Q1_0)",
            t.ty.name, t.type_id
        ))
    })?;
    let shape = matrix_shape(t)?;
    if let Some(l) = layout
        && l.format() != format
    {
        return Err(Error::invalid(format!(
            "tensor '{name}' is {}, but the layout asks for {}",
            format.name(),
            l.format().name()
        )));
    }
    let layout = match (layout, format) {
        (Some(l), _) => l,
        (None, Format::I2S) => Layout::I2s(I2sVariant::X86),
        (None, Format::Tl1 | Format::Tl2) => match file_tiling(g, name)? {
            Some((r, k, b)) => Layout::new(format as i32, 0, r, k, b)
                .map_err(|e| Error::invalid(format!("{}: {}", tiling_key(name), e.message)))?,
            None => Layout::new(format as i32, 0, 0, 0, 0)?,
        },
        (None, _) => Layout::new(format as i32, 0, 0, 0, 0)?,
    };
    let size = layout.packed_size(shape)?;
    let data = g.tensor_data(t);
    match format {
        Format::I2S | Format::Tq1_0 | Format::Tq2_0 | Format::Q2_0 | Format::Q1_0 => {
            if data.len() < size {
                return Err(Error::invalid(format!(
                    "tensor '{name}' holds {} bytes, but a {}×{} {} matrix needs {size}",
                    data.len(),
                    shape.rows,
                    shape.cols,
                    format.name()
                )));
            }
            Ok((layout, shape, Cow::Borrowed(&data[..size])))
        }
        Format::Tl1 | Format::Tl2 => {
            let tiling = layout.tiling(shape)?.expect("TL layout");
            let (scale_off, bitnet) = if format == Format::Tl1 {
                (
                    tl1::scale_offset(&tiling, shape),
                    tl1::is_bitnet_layout(&tiling, shape),
                )
            } else {
                (
                    tl2::scale_offset(&tiling, shape),
                    tl2::is_bitnet_layout(&tiling, shape),
                )
            };
            if !bitnet || data.len() > scale_off {
                return Err(Error::invalid(format!(
                    "tensor '{name}': a {}×{} {} matrix with this tiling is not a layout bitnet.cpp can store ({} payload bytes in the file, scale expected at byte {scale_off})",
                    shape.rows,
                    shape.cols,
                    format.name(),
                    data.len()
                )));
            }
            let scale = match g.meta().find_tensor(&scale_name(name)) {
                Some(s) => scalar_f32(g, s)?,
                None => {
                    let start = (g.meta().data_offset + t.offset) as usize + scale_off;
                    let b = g.bytes().get(start..start + 4).ok_or_else(|| {
                        Error::invalid(format!(
                            "tensor '{name}' has no '{}' tensor and the file ends before the inline scale at byte {start}",
                            scale_name(name)
                        ))
                    })?;
                    f32::from_le_bytes(b.try_into().expect("4"))
                }
            };
            let mut buf = vec![0u8; size];
            buf[..data.len()].copy_from_slice(data);
            buf[scale_off..scale_off + 4].copy_from_slice(&scale.to_le_bytes());
            Ok((layout, shape, Cow::Owned(buf)))
        }
    }
}

/// A matrix from ternary tensor `name` (see `packed`).
pub fn matrix(ctx: &Context, g: &Gguf, name: &str, layout: Option<Layout>) -> Result<Matrix> {
    let (layout, shape, bytes) = packed(g, name, layout)?;
    Matrix::from_packed(ctx, layout, shape, &bytes)
        .map_err(|e| Error::new(e.kind, format!("tensor '{name}': {}", e.message)))
}

/// Counts of (-1, 0, +1, +2) values of weight tensor `name` (+2 only in Q2_0, its code 3), and
/// its first scale.
pub fn census(g: &Gguf, name: &str) -> Result<([u64; 4], f32)> {
    let (layout, shape, bytes) = packed(g, name, None)?;
    let scales = layout.validate(shape, &bytes)?;
    let mut t = vec![0i8; shape.elements()];
    layout.unpack(shape, &bytes, &mut t)?;
    let mut n = [0u64; 4];
    for v in t {
        n[(v + 1) as usize] += 1;
    }
    Ok((n, scales.first().copied().unwrap_or(0.0)))
}

/// Checks that a `shape` matrix in `layout` can be written to a GGUF under `dialect`: the
/// format has an id there and, for TL1/TL2, the shape is one bitnet.cpp can store unpadded.
/// Returns the registry type and, for TL, the byte offset of the scale in tern's packed bytes.
pub fn file_payload_size_check(
    layout: Layout,
    shape: Shape,
    dialect: types::Dialect,
) -> Result<(types::GgmlType, Option<usize>)> {
    let ty = types::for_format(layout.format(), dialect)?;
    layout.check_shape(shape)?;
    let scale_off = match layout {
        Layout::Tl1(_) | Layout::Tl2(_) => {
            let tiling = layout.tiling(shape)?.expect("TL layout");
            let (off, bitnet) = if layout.format() == Format::Tl1 {
                (
                    tl1::scale_offset(&tiling, shape),
                    tl1::is_bitnet_layout(&tiling, shape),
                )
            } else {
                (
                    tl2::scale_offset(&tiling, shape),
                    tl2::is_bitnet_layout(&tiling, shape),
                )
            };
            let stored = ty.nbytes(&[shape.cols as u64, shape.rows as u64, 1, 1])? as usize;
            if !bitnet || stored > off {
                return Err(Error::unsupported(format!(
                    "a {}×{} matrix needs tern's zero-padded {} layout, which bitnet.cpp's GGUF sizes cannot express \
                     (bitnet.cpp stores TL1 with rows % 32 == 0 and cols % 16 == 0, TL2 with rows % 32 == 0 and cols >= 256)",
                    shape.rows,
                    shape.cols,
                    layout.format().name()
                )));
            }
            Some(off)
        }
        _ => None,
    };
    Ok((ty, scale_off))
}

/// The bytes tern stores for a packed ternary matrix in a GGUF tensor, the registry type, and
/// the TL scale (which goes to the `<name>_scale` companion).
pub fn file_payload(
    layout: Layout,
    shape: Shape,
    packed: &[u8],
    dialect: types::Dialect,
) -> Result<(types::GgmlType, Vec<u8>, Option<f32>)> {
    let (ty, scale_off) = file_payload_size_check(layout, shape, dialect)?;
    let size = layout.packed_size(shape)?;
    if packed.len() < size {
        return Err(Error::too_small("packed", packed.len(), size));
    }
    let scales = layout.validate(shape, &packed[..size])?;
    let stored = ty.nbytes(&[shape.cols as u64, shape.rows as u64, 1, 1])? as usize;
    match scale_off {
        Some(off) => {
            if packed[stored..off].iter().any(|&b| b != 0) {
                return Err(Error::invalid(format!(
                    "{} payload has nonzero bytes past bitnet.cpp's size {stored}",
                    layout.format().name()
                )));
            }
            Ok((ty, packed[..stored].to_vec(), Some(scales[0])))
        }
        None => Ok((ty, packed[..size].to_vec(), None)),
    }
}
