//! Weight formats: one file per format with its sizes, pack and unpack. `Layout` is a validated
//! description of how a matrix is stored; everything below the FFI works with it.

mod convert;
pub mod i2s;
pub mod q1_0;
pub mod q2_0;
pub mod qx_0;
pub mod tl1;
pub mod tl2;
mod tl_common;

pub use convert::convert;
pub use tl_common::Tiling;
pub mod tq;
pub mod tq1_0;
pub mod tq2_0;

use crate::error::{CEnum, Error, Result, try_vec};

/// The ternary storage formats (numbers are the C enum `tern_format`, checked against it at
/// compile time in `ffi::enums`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    I2S = 1,
    Tl1 = 2,
    Tl2 = 3,
    Tq1_0 = 4,
    Tq2_0 = 5,
    Q2_0 = 6,
    Q1_0 = 7,
}

/// Every format's row, in `tern_format` order (`SPECS[f as usize - 1]` is `f`'s row). Adding a
/// format: its file with a `SPEC`, a `Format` value, a `Layout` variant if it carries parameters,
/// and one line here.
pub static SPECS: [&FormatSpec; 7] = [
    &i2s::SPEC,
    &tl1::SPEC,
    &tl2::SPEC,
    &tq1_0::SPEC,
    &tq2_0::SPEC,
    &q2_0::SPEC,
    &q1_0::SPEC,
];

const _: () = {
    let mut i = 0;
    while i < SPECS.len() {
        assert!(
            SPECS[i].format as usize == i + 1,
            "SPECS must be in tern_format order"
        );
        i += 1;
    }
};

impl Format {
    /// Every format, in `tern_format` order.
    pub fn all() -> impl Iterator<Item = Format> {
        SPECS.iter().map(|s| s.format)
    }

    pub fn from_i32(v: i32) -> Result<Self> {
        Self::all().find(|&f| f as i32 == v).ok_or_else(|| {
            let allowed: Vec<String> = SPECS
                .iter()
                .map(|s| format!("{} = {}", s.format as i32, s.name))
                .collect();
            Error::invalid(format!(
                "format {v} is unknown (allowed: {})",
                allowed.join(", ")
            ))
        })
    }

    /// Looks a format up by its name, case-insensitive, with or without its underscore
    /// ("tq2_0", "I2S").
    pub fn from_name(name: &str) -> Option<Self> {
        let bare = |s: &str| s.replace('_', "").to_ascii_lowercase();
        Self::all().find(|f| bare(f.name()) == bare(name))
    }

    /// The lower-case names of every format, for messages ("i2_s, tl1, …").
    pub fn names() -> String {
        let names: Vec<String> = Self::all().map(|f| f.name().to_ascii_lowercase()).collect();
        names.join(", ")
    }

    /// This format's row of the format table.
    pub fn spec(self) -> &'static FormatSpec {
        SPECS[self as usize - 1]
    }

    pub fn name(self) -> &'static str {
        self.spec().name
    }
}

/// Whose kernels a format comes from, which decides the compat modes it allows
/// (`quant::activation::Compat::arith`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// bitnet.cpp's I2_S kernels (current and merge-dev activation rules).
    BitnetI2s,
    /// bitnet.cpp's TL1/TL2 look-up-table kernels.
    BitnetLut,
    /// ggml's TQ kernels over Q8_K activations.
    GgmlQ8K,
    /// ggml's Q2_0/Q1_0 kernels over Q8_0 activations.
    GgmlQ8_0,
}

/// The weight values a format stores (before its scales).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Values {
    /// −1, 0, +1.
    Ternary,
    /// −1, 0, +1, +2 (Q2_0's four codes).
    TernaryPlusTwo,
    /// −1, +1 (Q1_0's sign bits).
    Binary,
}

impl Values {
    pub fn holds(self, v: i8) -> bool {
        match self {
            Self::Ternary => (-1..=1).contains(&v),
            Self::TernaryPlusTwo => (-1..=2).contains(&v),
            Self::Binary => v == -1 || v == 1,
        }
    }

    /// The values, for messages.
    pub fn allowed(self) -> &'static str {
        match self {
            Self::Ternary => "-1, 0 or 1",
            Self::TernaryPlusTwo => "-1, 0, 1 or 2",
            Self::Binary => "-1 or 1",
        }
    }
}

/// The GGUF type id a format is stored with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgufId {
    /// A mainline ggml type id, the same in every dialect.
    Mainline(u32),
    /// A bitnet.cpp fork id, the same in both of its dialects, absent from mainline.
    Bitnet(u32),
    /// bitnet.cpp's TL2, whose id moved between its dialects (legacy 39, current 42).
    BitnetTl2,
}

/// The parameters a `Layout` carries beyond its format (defaults where a format has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    pub variant: I2sVariant,
    /// TL1/TL2: the caller's tiling, or `None` for the library's choice per shape.
    pub tiling: Option<Tiling>,
}

/// One format's row: everything the library knows about a format. Each format file defines its
/// `SPEC`; `Format`, `Layout`, the kernels' layout choice, the compat modes and the GGUF reader
/// and writer read it from here.
pub struct FormatSpec {
    pub format: Format,
    /// The name used in messages and by ggml/bitnet.cpp ("I2_S", "TQ2_0").
    pub name: &'static str,
    /// The weight values it stores.
    pub values: Values,
    /// Stored in under 2 bits per weight: kernels prefer the compact (1.6-bit) panel layout.
    pub compact_panels: bool,
    /// One scale per block of elements (else one scale per tensor).
    pub per_block_scales: bool,
    /// Scales are stored as f16 (converting to it may need `allow_rounding`).
    pub f16_scales: bool,
    /// Whose kernels it comes from (the compat modes it allows).
    pub peer: Peer,
    /// Its GGUF type id.
    pub gguf_id: GgufId,
    /// `general.file_type` (llama_ftype) of a file converted to this format.
    pub file_type: u32,
    /// TL formats: resolves the layout's tiling for a shape (the caller's, checked, or the
    /// library's choice). `None`: the format takes no tiling (`tile_rows`, `tile_k` and
    /// `simd_rows` of `tern_layout` must be 0).
    pub tiling: Option<fn(Params, Shape) -> Result<Tiling>>,
    /// Builds the layout from `tern_layout.variant` and the parsed tiling (`None` for a format
    /// that takes none); rejects a variant the format does not have.
    pub layout: fn(variant: u32, tiling: Option<Tiling>) -> Result<Layout>,
    pub check_shape: fn(Params, Shape) -> Result<()>,
    /// Bytes of a packed matrix of a shape that passed `check_shape`.
    pub packed_size: fn(Params, Shape) -> Result<usize>,
    /// Consecutive row-major elements that share one scale.
    pub elements_per_scale: fn(Shape) -> usize,
    /// Packs checked ternary values and scales into exactly `packed_size` bytes.
    pub pack: PackFn,
    /// Checks exactly `packed_size` bytes and returns the scales.
    pub validate: fn(Params, Shape, &[u8]) -> Result<Vec<f32>>,
    /// Writes the ternary values of a buffer that passed `validate`.
    pub unpack: fn(Params, Shape, &[u8], &mut [i8]) -> Result<()>,
}

/// `FormatSpec::pack`: (params, shape, ternary values, scales, destination).
pub type PackFn = fn(Params, Shape, &[i8], &[f32], &mut [u8]) -> Result<()>;

/// `layout` helper for formats without variants: `variant` must be 0.
pub(crate) fn no_variant(name: &str, variant: u32) -> Result<()> {
    if variant != 0 {
        return Err(Error::invalid(format!(
            "{name} has no variants: variant must be 0 (got {variant})"
        )));
    }
    Ok(())
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

crate::c_enum!(
    I2sVariant,
    "I2_S variant",
    [
        (I2sVariant::X86, "TERN_I2S_X86"),
        (I2sVariant::Arm64, "TERN_I2S_ARM64"),
    ]
);

impl I2sVariant {
    /// Reads `tern_layout.variant` for I2_S.
    pub fn from_u32(v: u32) -> Result<Self> {
        Self::from_c(v.into())
    }

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
    Q2_0,
    Q1_0,
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
        let spec = Format::from_i32(format)?.spec();
        let tiled = tile_rows != 0 || tile_k != 0 || simd_rows != 0;
        if tiled && spec.tiling.is_none() {
            return Err(Error::invalid(format!(
                "{} takes no tiling: tile_rows, tile_k and simd_rows must be 0 (got {tile_rows}, {tile_k}, {simd_rows})",
                spec.name
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
        (spec.layout)(variant, tiling)
    }

    pub fn format(self) -> Format {
        match self {
            Self::I2s(_) => Format::I2S,
            Self::Tl1(_) => Format::Tl1,
            Self::Tl2(_) => Format::Tl2,
            Self::Tq(tq::Kind::Tq1_0) => Format::Tq1_0,
            Self::Tq(tq::Kind::Tq2_0) => Format::Tq2_0,
            Self::Q2_0 => Format::Q2_0,
            Self::Q1_0 => Format::Q1_0,
        }
    }

    /// The format's row of the format table.
    pub fn spec(self) -> &'static FormatSpec {
        self.format().spec()
    }

    /// The parameters this layout carries.
    pub fn params(self) -> Params {
        let (variant, tiling) = match self {
            Self::I2s(v) => (v, None),
            Self::Tl1(t) | Self::Tl2(t) => (I2sVariant::X86, t),
            Self::Tq(_) | Self::Q2_0 | Self::Q1_0 => (I2sVariant::X86, None),
        };
        Params { variant, tiling }
    }

    /// The TL tiling this layout uses for `shape` (`None` for formats without one).
    pub fn tiling(self, shape: Shape) -> Result<Option<Tiling>> {
        self.spec()
            .tiling
            .map(|resolve| resolve(self.params(), shape))
            .transpose()
    }

    /// Checks that this layout can store a matrix of `shape`.
    pub fn check_shape(self, shape: Shape) -> Result<()> {
        (self.spec().check_shape)(self.params(), shape)
    }

    /// Bytes of a packed matrix, including any trailing scale section.
    pub fn packed_size(self, shape: Shape) -> Result<usize> {
        self.check_shape(shape)?;
        (self.spec().packed_size)(self.params(), shape)
    }

    /// Consecutive row-major elements that share one scale (a divisor of `cols` or the whole
    /// matrix).
    pub fn elements_per_scale(self, shape: Shape) -> usize {
        (self.spec().elements_per_scale)(shape)
    }

    /// Number of scales the format stores for a matrix of `shape`.
    pub fn scale_count(self, shape: Shape) -> usize {
        shape.elements() / self.elements_per_scale(shape)
    }

    /// Packs weight values (`FormatSpec::values`: ternary for most formats) and scales
    /// (`scale_count` of them) into `dst` (at least `packed_size` bytes). Checks the values and
    /// scales first, so on error `dst` is untouched.
    pub fn pack(self, shape: Shape, ternary: &[i8], scales: &[f32], dst: &mut [u8]) -> Result<()> {
        let size = self.packed_size(shape)?;
        let (ternary, scales, dst) = (
            &ternary[..shape.elements()],
            &scales[..self.scale_count(shape)],
            &mut dst[..size],
        );
        check_values(self.spec().values, ternary)?;
        check_scales(scales)?;
        (self.spec().pack)(self.params(), shape, ternary, scales, dst)
    }

    /// Checks a packed buffer (at least `packed_size` bytes) and returns its scales.
    pub fn validate(self, shape: Shape, src: &[u8]) -> Result<Vec<f32>> {
        let size = self.packed_size(shape)?;
        (self.spec().validate)(self.params(), shape, &src[..size])
    }

    /// Writes the ternary values of a buffer that passed `validate` (so the shape is valid).
    pub fn unpack(self, shape: Shape, src: &[u8], ternary: &mut [i8]) -> Result<()> {
        let ternary = &mut ternary[..shape.elements()];
        (self.spec().unpack)(self.params(), shape, src, ternary)
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

/// Every value must be -1, 0 or 1.
pub fn check_ternary(values: &[i8]) -> Result<()> {
    check_values(Values::Ternary, values)
}

/// Every value must be one `kind` holds.
pub fn check_values(kind: Values, values: &[i8]) -> Result<()> {
    // Blocks are tested without an early exit, so the test vectorizes.
    const BLOCK: usize = 4096;
    let ok = |v: &i8| kind.holds(*v);
    let bad = values
        .chunks(BLOCK)
        .enumerate()
        .find(|(_, b)| !b.iter().fold(true, |all, v| all & ok(v)))
        .and_then(|(b, block)| Some(b * BLOCK + block.iter().position(|v| !ok(v))?));
    match bad {
        Some(i) => Err(Error::invalid(format!(
            "ternary[{i}] = {} is not {}",
            values[i],
            kind.allowed()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_builds_its_own_layout_and_parses_by_name_and_number() {
        for f in Format::all() {
            let spec = f.spec();
            assert_eq!(spec.format, f);
            assert_eq!(Layout::new(f as i32, 0, 0, 0, 0).unwrap().format(), f);
            assert_eq!(Format::from_i32(f as i32).unwrap(), f);
            assert_eq!(Format::from_name(&spec.name.to_ascii_lowercase()), Some(f));
            // A variant only I2_S has; a tiling only TL formats take.
            assert_eq!(Layout::new(f as i32, 1, 0, 0, 0).is_ok(), f == Format::I2S);
            assert_eq!(
                spec.tiling.is_some(),
                matches!(f, Format::Tl1 | Format::Tl2)
            );
        }
        assert_eq!(Format::from_name("i2s"), Some(Format::I2S));
        assert_eq!(Format::from_name("q2_0"), Some(Format::Q2_0));
        assert_eq!(Format::from_name("q4_0"), None);
        let e = Format::from_i32(9).unwrap_err().message;
        assert!(e.contains("1 = I2_S") && e.contains("5 = TQ2_0"), "{e}");
        let e = Layout::new(1, 7, 0, 0, 0).unwrap_err().message;
        assert!(e.contains("0 = TERN_I2S_X86, 1 = TERN_I2S_ARM64"), "{e}");
    }
}
