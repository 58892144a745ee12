//! Weight formats: one file per format with its sizes, pack and unpack. `Layout` is a validated
//! description of how a matrix is stored; everything below the FFI works with it.

pub mod i2s;
pub mod q1_0;
pub mod q2_0;
pub mod qx_0;
pub mod tl1;
pub mod tl2;
mod tl_common;

pub use tl_common::Tiling;
pub mod tq;
pub mod tq1_0;
pub mod tq2_0;

use crate::error::{Error, Result, try_collect, try_reserve, try_vec};

/// The ternary storage formats (numbers are the C enum `tern_format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    I2S = 1,
    Tl1 = 2,
    Tl2 = 3,
    Tq1_0 = 4,
    Tq2_0 = 5,
}

impl Format {
    pub fn from_i32(v: i32) -> Result<Self> {
        Ok(match v {
            1 => Self::I2S,
            2 => Self::Tl1,
            3 => Self::Tl2,
            4 => Self::Tq1_0,
            5 => Self::Tq2_0,
            _ => {
                return Err(Error::invalid(format!(
                    "format {v} is unknown (allowed: 1 = I2_S, 2 = TL1, 3 = TL2, 4 = TQ1_0, 5 = TQ2_0)"
                )));
            }
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::I2S => "I2_S",
            Self::Tl1 => "TL1",
            Self::Tl2 => "TL2",
            Self::Tq1_0 => "TQ1_0",
            Self::Tq2_0 => "TQ2_0",
        }
    }
}

/// Largest supported `cols`: keeps every code dot (|code·act| ≤ 256 per element) exact in int32.
pub const MAX_COLS: usize = 1 << 22;

/// A validated matrix shape: both dimensions positive, `rows·cols` fits in memory arithmetic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    pub rows: usize,
    pub cols: usize,
}

impl Shape {
    pub fn new(rows: i64, cols: i64) -> Result<Self> {
        if rows <= 0 || cols <= 0 {
            return Err(Error::invalid(format!(
                "rows and cols must be > 0 (got rows = {rows}, cols = {cols})"
            )));
        }
        let (rows, cols) = (rows as u64, cols as u64);
        if cols as usize as u64 != cols || cols as usize > MAX_COLS {
            return Err(Error::invalid(format!(
                "cols = {cols} exceeds the maximum {MAX_COLS} (int32 dot products must stay exact)"
            )));
        }
        let elements = rows
            .checked_mul(cols)
            .filter(|&n| n <= (isize::MAX as u64) / 4);
        match elements {
            Some(_) => Ok(Self {
                rows: rows as usize,
                cols: cols as usize,
            }),
            None => Err(Error::invalid(format!(
                "rows·cols = {rows}·{cols} overflows the addressable size"
            ))),
        }
    }

    pub fn elements(self) -> usize {
        self.rows * self.cols
    }
}

/// The I2_S block size, which bitnet.cpp fixes at compile time per CPU family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum I2sVariant {
    /// 128-element blocks: x86 builds and the published GGUF files (`TERN_I2S_X86`).
    X86 = 0,
    /// 64-element blocks written by bitnet.cpp's ARM builds (`TERN_I2S_ARM64`).
    Arm64 = 1,
}

impl I2sVariant {
    pub fn block_len(self) -> usize {
        match self {
            Self::X86 => 128,
            Self::Arm64 => 64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::X86 => "x86 (128-element blocks)",
            Self::Arm64 => "arm64 (64-element blocks)",
        }
    }
}

/// How a matrix is stored. Only formats that are implemented have a variant here; the others are
/// rejected with `Unsupported` when a layout is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    I2s(I2sVariant),
    /// TL1 / TL2 with a tiling, or `None` to let the library choose one for each shape.
    Tl1(Option<Tiling>),
    Tl2(Option<Tiling>),
    Tq(tq::Kind),
}

impl Layout {
    /// Builds a layout from the raw fields of `tern_layout`.
    pub fn new(
        format: i32,
        variant: u32,
        tile_rows: u32,
        tile_k: u32,
        simd_rows: u32,
    ) -> Result<Self> {
        let format = Format::from_i32(format)?;
        let tiled = tile_rows != 0 || tile_k != 0 || simd_rows != 0;
        if tiled && matches!(format, Format::I2S | Format::Tq1_0 | Format::Tq2_0) {
            return Err(Error::invalid(format!(
                "{} takes no tiling: tile_rows, tile_k and simd_rows must be 0 (got {tile_rows}, {tile_k}, {simd_rows})",
                format.name()
            )));
        }
        let tiling = match (tile_rows, tile_k, simd_rows) {
            (0, 0, 0) => None,
            (r, k, b) if r != 0 && k != 0 && b != 0 => {
                Some(Tiling::new(r as usize, k as usize, b as usize))
            }
            _ => {
                return Err(Error::invalid(format!(
                    "tile_rows, tile_k and simd_rows must all be 0 (the library picks) or all be set (got {tile_rows}, {tile_k}, {simd_rows})"
                )));
            }
        };
        if variant != 0 && format != Format::I2S {
            return Err(Error::invalid(format!(
                "{} has no variants: variant must be 0 (got {variant})",
                format.name()
            )));
        }
        match format {
            Format::I2S => match variant {
                0 => Ok(Self::I2s(I2sVariant::X86)),
                1 => Ok(Self::I2s(I2sVariant::Arm64)),
                v => Err(Error::invalid(format!(
                    "I2_S variant {v} is unknown (allowed: 0 = TERN_I2S_X86, 1 = TERN_I2S_ARM64)"
                ))),
            },
            Format::Tq1_0 => Ok(Self::Tq(tq::Kind::Tq1_0)),
            Format::Tq2_0 => Ok(Self::Tq(tq::Kind::Tq2_0)),
            Format::Tl1 => Ok(Self::Tl1(tiling)),
            Format::Tl2 => Ok(Self::Tl2(tiling)),
        }
    }

    pub fn format(self) -> Format {
        match self {
            Self::I2s(_) => Format::I2S,
            Self::Tl1(_) => Format::Tl1,
            Self::Tl2(_) => Format::Tl2,
            Self::Tq(tq::Kind::Tq1_0) => Format::Tq1_0,
            Self::Tq(tq::Kind::Tq2_0) => Format::Tq2_0,
        }
    }

    /// Checks that this layout can store a matrix of `shape`.
    pub fn check_shape(self, shape: Shape) -> Result<()> {
        match self {
            Self::I2s(v) => i2s::check_shape(v, shape),
            Self::Tl1(_) | Self::Tl2(_) => self.tiling(shape).map(|_| ()),
            Self::Tq(_) => tq::check_shape(self.format().name(), shape),
        }
    }

    /// The TL tiling for `shape`: the caller's (checked) or the library's choice.
    fn tiling(self, shape: Shape) -> Result<Tiling> {
        match self {
            Self::Tl1(Some(t)) => tl1::check_tiling(&t, shape).map(|_| t),
            Self::Tl1(None) => tl1::choose_tiling(shape),
            Self::Tl2(Some(t)) => tl2::check_tiling(&t, shape).map(|_| t),
            Self::Tl2(None) => tl2::choose_tiling(shape),
            _ => Err(Error::invalid(format!(
                "{} has no tiling",
                self.format().name()
            ))),
        }
    }

    /// Bytes of a packed matrix, including any trailing scale section.
    pub fn packed_size(self, shape: Shape) -> Result<usize> {
        self.check_shape(shape)?;
        Ok(match self {
            Self::I2s(_) => i2s::packed_size(shape),
            Self::Tl1(_) => tl1::packed_size(&self.tiling(shape)?, shape),
            Self::Tl2(_) => tl2::packed_size(&self.tiling(shape)?, shape),
            Self::Tq(kind) => tq::block_count(shape) * kind.codec().block_bytes,
        })
    }

    /// Consecutive row-major elements that share one scale (a divisor of `cols` or the whole
    /// matrix).
    pub fn elements_per_scale(self, shape: Shape) -> usize {
        match self {
            Self::I2s(_) | Self::Tl1(_) | Self::Tl2(_) => shape.elements(),
            Self::Tq(_) => tq::BLOCK,
        }
    }

    /// Number of scales the format stores for a matrix of `shape`.
    pub fn scale_count(self, shape: Shape) -> usize {
        shape.elements() / self.elements_per_scale(shape)
    }

    /// Packs ternary values and scales (`scale_count` of them) into `dst` (at least
    /// `packed_size` bytes). Checks the values and scales first, so on error `dst` is untouched.
    pub fn pack(self, shape: Shape, ternary: &[i8], scales: &[f32], dst: &mut [u8]) -> Result<()> {
        let size = self.packed_size(shape)?;
        let (ternary, scales, dst) = (
            &ternary[..shape.elements()],
            &scales[..self.scale_count(shape)],
            &mut dst[..size],
        );
        check_ternary(ternary)?;
        check_scales(scales)?;
        match self {
            Self::I2s(v) => i2s::pack(v, ternary, scales[0], dst),
            Self::Tl1(_) => tl1::pack(&self.tiling(shape)?, shape, ternary, scales[0], dst),
            Self::Tl2(_) => tl2::pack(&self.tiling(shape)?, shape, ternary, scales[0], dst),
            Self::Tq(kind) => kind.codec().pack_all(ternary, scales, dst)?,
        }
        Ok(())
    }

    /// Checks a packed buffer (at least `packed_size` bytes) and returns its scales.
    pub fn validate(self, shape: Shape, src: &[u8]) -> Result<Vec<f32>> {
        let size = self.packed_size(shape)?;
        match self {
            Self::I2s(_) => Ok(vec![i2s::validate(src, shape)?]),
            Self::Tl1(_) => Ok(vec![tl1::validate(
                &self.tiling(shape)?,
                shape,
                &src[..size],
            )?]),
            Self::Tl2(_) => Ok(vec![tl2::validate(
                &self.tiling(shape)?,
                shape,
                &src[..size],
            )?]),
            Self::Tq(kind) => kind.codec().validate_all(&src[..size]),
        }
    }

    /// Writes the ternary values of a buffer that passed `validate` (so the shape is valid).
    pub fn unpack(self, shape: Shape, src: &[u8], ternary: &mut [i8]) -> Result<()> {
        let ternary = &mut ternary[..shape.elements()];
        match self {
            Self::I2s(v) => i2s::unpack(v, &src[..i2s::code_bytes(shape)], ternary),
            Self::Tl1(_) => tl1::unpack(&self.tiling(shape)?, shape, src, ternary),
            Self::Tl2(_) => tl2::unpack(&self.tiling(shape)?, shape, src, ternary)?,
            Self::Tq(kind) => kind.codec().unpack_all(src, ternary),
        }
        Ok(())
    }

    /// Checks a packed buffer and writes its weights as floats (ternary × scale) to `dst`
    /// (`shape.elements()` floats); on error `dst` is untouched.
    pub fn dequantize(self, shape: Shape, src: &[u8], dst: &mut [f32]) -> Result<()> {
        let scales = self.validate(shape, src)?;
        let mut ternary = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
        self.unpack(shape, src, &mut ternary)?;
        let per = self.elements_per_scale(shape);
        for ((out, t), scale) in dst.chunks_mut(per).zip(ternary.chunks(per)).zip(&scales) {
            for (o, &v) in out.iter_mut().zip(t) {
                *o = v as f32 * scale;
            }
        }
        Ok(())
    }
}

/// Converts a packed `shape` matrix from layout `from` to layout `to`. Lossless: the ternary values
/// are kept and every scale must be storable exactly by the target (one per tensor: all equal;
/// f16 for TQ types, where `allow_rounding` accepts rounding to the nearest f16). On error `dst`
/// is untouched.
pub fn convert(
    from: Layout,
    to: Layout,
    shape: Shape,
    src: &[u8],
    dst: &mut [u8],
    allow_rounding: bool,
) -> Result<()> {
    let scales = from.validate(shape, src)?;
    to.check_shape(shape)?;
    let (per_from, per_to) = (from.elements_per_scale(shape), to.elements_per_scale(shape));
    let to_scales: Vec<f32> = if per_to >= per_from {
        let merged = per_to / per_from;
        let mut out = Vec::new();
        try_reserve(&mut out, scales.len() / merged, "the converted scales")?;
        for (i, group) in scales.chunks(merged).enumerate() {
            if let Some(other) = group.iter().find(|&&v| v != group[0]) {
                return Err(Error::invalid(format!(
                    "{} stores one scale per {} elements, but the {} source has different scales ({} and {other}) within scale group {i}; converting would change the weights",
                    to.format().name(),
                    per_to,
                    from.format().name(),
                    group[0]
                )));
            }
            out.push(group[0]);
        }
        out
    } else {
        try_collect(
            (0..shape.elements() / per_to).map(|i| scales[i * per_to / per_from]),
            "the converted scales",
        )?
    };
    if let Layout::Tq(_) = to
        && !allow_rounding
        && let Some(&s) = to_scales
            .iter()
            .find(|&&s| f32::from(half::f16::from_f32(s)) != s)
    {
        return Err(Error::invalid(format!(
            "scale {s} is not representable in {}'s f16 scales (nearest {}); set allow_rounding to accept the rounding",
            to.format().name(),
            f32::from(half::f16::from_f32(s))
        )));
    }
    let mut ternary = try_vec(shape.elements(), 0i8, "the unpacked ternary values")?;
    from.unpack(shape, src, &mut ternary)?;
    to.pack(shape, &ternary, &to_scales, dst)
}

/// Every value must be -1, 0 or 1.
pub fn check_ternary(values: &[i8]) -> Result<()> {
    // Blocks are tested without an early exit, so the test vectorizes.
    const BLOCK: usize = 4096;
    let ok = |v: &i8| (-1..=1).contains(v);
    let bad = values
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, b)| !b.iter().fold(true, |all, v| all & ok(v)))
        .and_then(|(b, block)| Some(b * BLOCK + block.iter().position(|v| !ok(v))?));
    match bad {
        Some(i) => Err(Error::invalid(format!(
            "ternary[{i}] = {} is not -1, 0 or 1",
            values[i]
        ))),
        None => Ok(()),
    }
}

/// Every scale must be finite and >= 0 (a negative scale would flip the weights' signs).
pub fn check_scales(scales: &[f32]) -> Result<()> {
    match scales.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
        Some(i) => Err(Error::invalid(format!(
            "scales[{i}] = {} is not a finite value >= 0",
            scales[i]
        ))),
        None => Ok(()),
    }
}
