//! The ggml tensor-type registry: ids, names, block sizes and byte sizes of every type a GGUF
//! file may hold (spec `ggml_ternary_gguf.md` §3), plus bitnet.cpp's fork types whose sizes are
//! special cases (`bitnet_cpp.md` §1).
//!
//! # Which producer a type id belongs to (`Dialect`)
//!
//! Three id spaces overlap: mainline ggml, bitnet.cpp's legacy fork (merge-dev, TL2 = 39) and its
//! current fork (TL2 = 42, because 39–41 became MXFP4, NVFP4 and Q1_0). The rule:
//!
//! * 34 / 35 are TQ1_0 / TQ2_0 everywhere.
//! * 36 (I2_S) and 38 (TL1) are read as bitnet.cpp types in every dialect but `Mainline`: in
//!   mainline they are removed placeholders (`blck_size = 0`) that no current writer emits, so
//!   they are unambiguous. 37 (I8_S) is an activation-only type and never valid in a file.
//! * 39 and 42 depend on the dialect: `Mainline` reads MXFP4 / Q2_0; `BitnetLegacy` reads 39 as
//!   TL2 (42 does not exist there); `BitnetCurrent` reads 42 as TL2 and 39 as MXFP4.
//! * `Auto` (the default) decides per tensor from what the file holds (`resolve_tensor`):
//!   1. **Size.** Both producers lay tensors out back to back, each padded to the alignment, so
//!      the bytes from a tensor's offset to the next tensor's (its *room*) tell its size. A reading
//!      *fits tightly* when `size ≤ room ≤ size` rounded up to the alignment (for the last tensor:
//!      `size ≤ room`). TL2 stores about 0.21 bytes per weight, Q2_0 0.28 and MXFP4 0.53, so on
//!      real shapes at most one reading fits tightly, and that reading wins.
//!   2. **Companion.** bitnet.cpp's converter writes every TL tensor's scale as a 1-element
//!      F32/F16/BF16 tensor `<name>_scale`. When size does not decide (both or neither reading
//!      fits tightly: tiny tensors, the last tensor, files with gaps), a companion means TL2;
//!      otherwise the mainline type — unless only TL2's size fits the room at all.
//!   3. **Contradiction.** A tensor whose bytes fit only the mainline type but which has a TL2
//!      scale companion is an error naming both readings; open such a file with an explicit
//!      dialect. `general.architecture` does not enter the rule: both producers name BitNet models
//!      `bitnet…`, so it cannot tell them apart.
//!
//!   A tensor read as Q2_0 (42) or Q1_0 (41) becomes a tern `Q2_0` / `Q1_0` matrix like every
//!   weight type with a tern format; one read as TL2 becomes a TL2 matrix.
use crate::error::{CEnum, Error, ErrorKind, Result};
use crate::format::{Format, GgufId};

/// A GGUF producer's id space (C: `tern_gguf_dialect`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Decide per tensor (module doc). Writers treat it as `BitnetCurrent`, but also write Q2_0
    /// (42 without a companion, which this rule reads back as Q2_0).
    Auto = 0,
    /// Current ggml/llama.cpp: 36–38 are removed placeholders, 39 = MXFP4, 42 = Q2_0.
    Mainline = 1,
    /// bitnet.cpp merge-dev (Oct 2024): I2_S 36, TL1 38, TL2 39.
    BitnetLegacy = 2,
    /// bitnet.cpp current fork: I2_S 36, TL1 38, TL2 42.
    BitnetCurrent = 3,
}

crate::c_enum!(
    Dialect,
    "GGUF dialect",
    [
        (Dialect::Auto, "AUTO"),
        (Dialect::Mainline, "MAINLINE"),
        (Dialect::BitnetLegacy, "BITNET_LEGACY"),
        (Dialect::BitnetCurrent, "BITNET_CURRENT"),
    ]
);

impl Dialect {
    pub fn from_i32(v: i32) -> Result<Self> {
        Self::from_c(v.into())
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Mainline => "mainline",
            Self::BitnetLegacy => "bitnet-legacy",
            Self::BitnetCurrent => "bitnet-current",
        }
    }

    /// The id TL2 is written with.
    pub fn tl2_id(self) -> Option<u32> {
        match self {
            Self::Mainline => None,
            Self::BitnetLegacy => Some(39),
            Self::Auto | Self::BitnetCurrent => Some(42),
        }
    }
}

/// How a type's byte size is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sizing {
    /// `(ne0 / block) · type_size · ne1 · ne2 · ne3`, `ne0 % block == 0` (mainline types).
    Blocks { block: u64, type_size: u64 },
    /// bitnet.cpp I2_S: `ne0·ne1/4 + 32` (codes, then the f32 scale and 28 reserved bytes).
    I2s,
    /// bitnet.cpp TL1: `ne0·ne1/4` stored (the scale is the `<name>_scale` tensor; the fork
    /// reads 32 bytes more).
    Tl1,
    /// bitnet.cpp TL2: `(ne0 − 256)·ne1/3·5/8 + 256·ne1/2·4/8` stored (`ne0 ≥ 256`); the fork
    /// reads `round_up_32(that) + 32`.
    Tl2,
}

/// One entry of the registry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GgmlType {
    /// The id as stored in the file.
    pub id: u32,
    /// ggml's upper-case name (gguf-py's `GGMLQuantizationType` name).
    pub name: &'static str,
    pub sizing: Sizing,
    /// The tern format of a weight type tern reads and writes (the ternary types, Q2_0, Q1_0).
    pub ternary: Option<Format>,
}

const fn blocks(id: u32, name: &'static str, block: u64, type_size: u64) -> GgmlType {
    GgmlType {
        id,
        name,
        sizing: Sizing::Blocks { block, type_size },
        ternary: None,
    }
}

/// Mainline ggml types (Aug 2026), by id.
const MAINLINE: &[GgmlType] = &[
    blocks(0, "F32", 1, 4),
    blocks(1, "F16", 1, 2),
    blocks(2, "Q4_0", 32, 18),
    blocks(3, "Q4_1", 32, 20),
    blocks(6, "Q5_0", 32, 22),
    blocks(7, "Q5_1", 32, 24),
    blocks(8, "Q8_0", 32, 34),
    blocks(9, "Q8_1", 32, 36),
    blocks(10, "Q2_K", 256, 84),
    blocks(11, "Q3_K", 256, 110),
    blocks(12, "Q4_K", 256, 144),
    blocks(13, "Q5_K", 256, 176),
    blocks(14, "Q6_K", 256, 210),
    blocks(15, "Q8_K", 256, 292),
    blocks(16, "IQ2_XXS", 256, 66),
    blocks(17, "IQ2_XS", 256, 74),
    blocks(18, "IQ3_XXS", 256, 98),
    blocks(19, "IQ1_S", 256, 50),
    blocks(20, "IQ4_NL", 32, 18),
    blocks(21, "IQ3_S", 256, 110),
    blocks(22, "IQ2_S", 256, 82),
    blocks(23, "IQ4_XS", 256, 136),
    blocks(24, "I8", 1, 1),
    blocks(25, "I16", 1, 2),
    blocks(26, "I32", 1, 4),
    blocks(27, "I64", 1, 8),
    blocks(28, "F64", 1, 8),
    blocks(29, "IQ1_M", 256, 56),
    blocks(30, "BF16", 1, 2),
    GgmlType {
        id: 34,
        name: "TQ1_0",
        sizing: Sizing::Blocks {
            block: 256,
            type_size: 54,
        },
        ternary: Some(Format::Tq1_0),
    },
    GgmlType {
        id: 35,
        name: "TQ2_0",
        sizing: Sizing::Blocks {
            block: 256,
            type_size: 66,
        },
        ternary: Some(Format::Tq2_0),
    },
    blocks(39, "MXFP4", 32, 17),
    blocks(40, "NVFP4", 64, 36),
    GgmlType {
        id: 41,
        name: "Q1_0",
        sizing: Sizing::Blocks {
            block: 128,
            type_size: 18,
        },
        ternary: Some(Format::Q1_0),
    },
    GgmlType {
        id: 42,
        name: "Q2_0",
        sizing: Sizing::Blocks {
            block: 64,
            type_size: 18,
        },
        ternary: Some(Format::Q2_0),
    },
];

pub const F32: GgmlType = MAINLINE[0];
pub const F16: GgmlType = MAINLINE[1];
pub const BF16: GgmlType = MAINLINE[28];
pub const TQ1_0: GgmlType = MAINLINE[29];
pub const TQ2_0: GgmlType = MAINLINE[30];

pub const I2_S: GgmlType = GgmlType {
    id: 36,
    name: "I2_S",
    sizing: Sizing::I2s,
    ternary: Some(Format::I2S),
};
pub const TL1: GgmlType = GgmlType {
    id: 38,
    name: "TL1",
    sizing: Sizing::Tl1,
    ternary: Some(Format::Tl1),
};

/// bitnet.cpp's types whose id is the same in both of its dialects.
const BITNET: &[GgmlType] = &[I2_S, TL1];

/// TL2 with the id of `dialect` (39 legacy, 42 current).
pub const fn tl2(id: u32) -> GgmlType {
    GgmlType {
        id,
        name: "TL2",
        sizing: Sizing::Tl2,
        ternary: Some(Format::Tl2),
    }
}

fn mainline(id: u32) -> Option<GgmlType> {
    MAINLINE.iter().copied().find(|t| t.id == id)
}

/// Every name the registry knows, for messages.
fn known_ids() -> String {
    "0-3, 6-30 (mainline), 34 TQ1_0, 35 TQ2_0, 36 I2_S, 38 TL1, 39 MXFP4 or TL2 (bitnet.cpp legacy), \
     40 NVFP4, 41 Q1_0, 42 Q2_0 or TL2 (bitnet.cpp current)"
        .into()
}

/// Resolves a stored type id under `dialect`. `has_scale_companion` says whether the file has a
/// `<name>_scale` tensor (only consulted for 39/42 under `Auto`).
pub fn resolve(id: u32, dialect: Dialect, has_scale_companion: bool) -> Result<GgmlType> {
    let bitnet = dialect != Dialect::Mainline;
    let ty = match id {
        36 if bitnet => Some(I2_S),
        38 if bitnet => Some(TL1),
        37 => {
            return Err(Error::invalid(
                "type 37 is bitnet.cpp's I8_S, an activation-only type that never appears in a file",
            ));
        }
        4 | 5 | 31..=33 | 36..=38 => {
            return Err(Error::invalid(format!(
                "type {id} is a removed ggml type (block size 0){}",
                if matches!(id, 36 | 38) {
                    " in the mainline dialect; bitnet.cpp files use it for I2_S/TL1 (open with dialect AUTO or BITNET_*)"
                } else {
                    ""
                }
            )));
        }
        39 if dialect == Dialect::BitnetLegacy => Some(tl2(39)),
        39 if dialect == Dialect::Auto && has_scale_companion => Some(tl2(39)),
        42 if dialect == Dialect::BitnetCurrent => Some(tl2(42)),
        42 if dialect == Dialect::Auto && has_scale_companion => Some(tl2(42)),
        40..=42 if dialect == Dialect::BitnetLegacy => {
            return Err(Error::invalid(format!(
                "type {id} does not exist in bitnet.cpp's legacy (merge-dev) fork, whose last type is TL2 = 39"
            )));
        }
        _ => mainline(id),
    };
    ty.ok_or_else(|| {
        Error::invalid(format!(
            "type {id} is not a ggml type this reader knows (known: {})",
            known_ids()
        ))
    })
}

/// What the reader knows about a tensor, for the `Auto` rule of ids 39 and 42 (module doc).
pub struct Evidence<'a> {
    pub name: &'a str,
    pub dims: [u64; 4],
    /// The file has a 1-element `<name>_scale` tensor.
    pub companion: bool,
    /// Bytes from the tensor's offset to the next tensor's, or to the end of the data section.
    pub room: u64,
    /// No tensor follows (the room may hold trailing bytes).
    pub last: bool,
    pub alignment: u64,
}

/// Resolves the stored type id of a tensor in a file under `dialect`; under `Auto`, ids 39 and
/// 42 follow the module doc's rule.
pub fn resolve_tensor(id: u32, dialect: Dialect, ev: &Evidence) -> Result<GgmlType> {
    let main = mainline(id);
    let (true, Dialect::Auto, Some(main)) = (matches!(id, 39 | 42), dialect, main) else {
        return resolve(id, dialect, ev.companion);
    };
    let fork = tl2(id);
    let size = |t: GgmlType| t.nbytes(&ev.dims).ok();
    let fits = |s: Option<u64>| s.is_some_and(|s| s <= ev.room);
    let tight = |s: Option<u64>| {
        fits(s) && (ev.last || s.is_some_and(|s| ev.room <= s.next_multiple_of(ev.alignment)))
    };
    let (fork_size, main_size) = (size(fork), size(main));
    let is_fork = match (tight(fork_size), tight(main_size)) {
        (true, false) => true,
        (false, true) if ev.companion => {
            let shown = |s: Option<u64>| s.map_or("no valid size".into(), |s| format!("{s} bytes"));
            return Err(Error::invalid(format!(
                "tensor '{}' has type {id}, which is {} in mainline ggml and TL2 in bitnet.cpp: its {} bytes fit {} ({}) and not TL2 ({}), yet the file has TL2's scale companion '{}_scale'; the file contradicts itself: open it with the dialect MAINLINE or BITNET_{}",
                ev.name,
                main.name,
                ev.room,
                main.name,
                shown(main_size),
                shown(fork_size),
                ev.name,
                if id == 39 { "LEGACY" } else { "CURRENT" }
            )));
        }
        (false, true) => false,
        _ => (fits(fork_size) && !fits(main_size)) || ev.companion,
    };
    Ok(if is_fork { fork } else { main })
}

/// The registry entry for a ternary format when written under `dialect`.
pub fn for_format(format: Format, dialect: Dialect) -> Result<GgmlType> {
    let ty = match format.spec().gguf_id {
        // A reader of these dialects would take the id for another type.
        GgufId::Mainline(id @ 40..=42) if dialect == Dialect::BitnetLegacy => {
            return Err(Error::unsupported(format!(
                "{} (type {id}) does not exist in bitnet.cpp's legacy dialect; write it with the dialect MAINLINE or AUTO",
                format.name()
            )));
        }
        GgufId::Mainline(42) if dialect == Dialect::BitnetCurrent => {
            return Err(Error::unsupported(format!(
                "type 42 is TL2 in bitnet.cpp's current dialect, so {} cannot be written there; write it with the dialect MAINLINE or AUTO",
                format.name()
            )));
        }
        GgufId::Mainline(id) => mainline(id),
        GgufId::Bitnet(_) | GgufId::BitnetTl2 if dialect == Dialect::Mainline => {
            return Err(Error::unsupported(format!(
                "{} is a bitnet.cpp type with no id in mainline ggml; write it with a BITNET dialect",
                format.name()
            )));
        }
        GgufId::Bitnet(id) => BITNET.iter().copied().find(|t| t.id == id),
        GgufId::BitnetTl2 => dialect.tl2_id().map(tl2),
    };
    ty.filter(|t| t.ternary == Some(format)).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            format!(
                "the format table's GGUF id for {} is not in the type registry",
                format.name()
            ),
        )
    })
}

/// Looks a type up by its name (case-insensitive), for command-line options.
pub fn by_name(name: &str, dialect: Dialect) -> Option<GgmlType> {
    let up = name.to_ascii_uppercase();
    match up.as_str() {
        "I2_S" => Some(I2_S),
        "TL1" => Some(TL1),
        "TL2" => dialect.tl2_id().map(tl2),
        _ => MAINLINE.iter().copied().find(|t| t.name == up),
    }
}

impl GgmlType {
    /// Elements per block (1 for the bitnet.cpp types, which ggml sizes specially).
    pub fn block_size(&self) -> u64 {
        match self.sizing {
            Sizing::Blocks { block, .. } => block,
            _ => 1,
        }
    }

    /// Bytes the tensor occupies in the file for dims `ne` (ggml order). Every product is
    /// checked; a shape the type cannot hold is an error naming why.
    pub fn nbytes(&self, ne: &[u64; 4]) -> Result<u64> {
        let overflow = || {
            Error::invalid(format!(
                "{} tensor of dims {ne:?}: byte size overflows 64 bits",
                self.name
            ))
        };
        let rest = ne[1]
            .checked_mul(ne[2])
            .and_then(|v| v.checked_mul(ne[3]))
            .ok_or_else(overflow)?;
        let bitnet_2d = || -> Result<u64> {
            if ne[2] != 1 || ne[3] != 1 {
                return Err(Error::invalid(format!(
                    "{} tensors are 2-D matrices (got dims {ne:?})",
                    self.name
                )));
            }
            ne[0].checked_mul(ne[1]).ok_or_else(overflow)
        };
        match self.sizing {
            Sizing::Blocks { block, type_size } => {
                if !ne[0].is_multiple_of(block) {
                    return Err(Error::invalid(format!(
                        "{} tensor has {} elements per row, not a multiple of the block size {block}",
                        self.name, ne[0]
                    )));
                }
                (ne[0] / block)
                    .checked_mul(type_size)
                    .and_then(|v| v.checked_mul(rest))
                    .ok_or_else(overflow)
            }
            Sizing::I2s => Ok(bitnet_2d()? / 4 + 32),
            Sizing::Tl1 => Ok(bitnet_2d()? / 4),
            Sizing::Tl2 => {
                bitnet_2d()?;
                if ne[0] < 256 {
                    return Err(Error::invalid(format!(
                        "TL2 tensors need at least 256 columns (bitnet.cpp's size formula); got ne0 = {}",
                        ne[0]
                    )));
                }
                tl2_stored_bytes(ne[0], ne[1]).ok_or_else(overflow)
            }
        }
    }
}

/// bitnet.cpp's TL2 payload size `(K − 256)·M/3·5/8 + 256·M/2·4/8` (C integer arithmetic, left
/// to right); `k ≥ 256`.
pub fn tl2_stored_bytes(k: u64, m: u64) -> Option<u64> {
    let a = (k - 256).checked_mul(m)? / 3;
    let a = a.checked_mul(5)? / 8;
    let b = 256u64.checked_mul(m)? / 2;
    let b = b.checked_mul(4)? / 8;
    a.checked_add(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_resolve_per_dialect() {
        use Dialect::*;
        assert_eq!(resolve(34, Mainline, false).unwrap().name, "TQ1_0");
        assert_eq!(resolve(36, Auto, false).unwrap(), I2_S);
        assert!(resolve(36, Mainline, false).is_err());
        assert!(resolve(37, Auto, false).is_err());
        assert_eq!(resolve(39, Auto, false).unwrap().name, "MXFP4");
        assert_eq!(resolve(39, Auto, true).unwrap(), tl2(39));
        assert_eq!(resolve(39, BitnetLegacy, false).unwrap(), tl2(39));
        assert_eq!(resolve(39, BitnetCurrent, true).unwrap().name, "MXFP4");
        assert_eq!(resolve(42, BitnetCurrent, false).unwrap(), tl2(42));
        assert_eq!(resolve(42, Auto, false).unwrap().name, "Q2_0");
        assert!(resolve(42, BitnetLegacy, false).is_err());
        assert!(resolve(43, Auto, false).is_err());
        assert!(resolve(u32::MAX, Auto, false).is_err());
    }

    #[test]
    fn q_formats_are_written_where_their_ids_mean_them() {
        use Dialect::*;
        for d in [Auto, Mainline] {
            assert_eq!(for_format(Format::Q2_0, d).unwrap().id, 42);
            assert_eq!(for_format(Format::Q1_0, d).unwrap().id, 41);
        }
        assert_eq!(for_format(Format::Q1_0, BitnetCurrent).unwrap().id, 41);
        let e = for_format(Format::Q2_0, BitnetCurrent).unwrap_err();
        assert!(e.message.contains("TL2"), "{}", e.message);
        assert!(for_format(Format::Q1_0, BitnetLegacy).is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(TQ2_0.nbytes(&[512, 3, 1, 1]).unwrap(), 2 * 66 * 3);
        assert!(TQ1_0.nbytes(&[100, 1, 1, 1]).is_err());
        assert_eq!(I2_S.nbytes(&[128, 4, 1, 1]).unwrap(), 128 + 32);
        assert_eq!(TL1.nbytes(&[64, 32, 1, 1]).unwrap(), 512);
        // 2B-4T-like 3200 columns: bitnet.cpp's formula.
        let p = tl2(42).nbytes(&[3200, 3200, 1, 1]).unwrap();
        assert_eq!(p, (3200 - 256) * 3200 / 3 * 5 / 8 + 256 * 3200 / 2 * 4 / 8);
        assert!(tl2(42).nbytes(&[128, 32, 1, 1]).is_err());
        assert!(F32.nbytes(&[u64::MAX, 2, 1, 1]).is_err());
        assert!(I2_S.nbytes(&[128, 4, 2, 1]).is_err());
    }

    #[test]
    fn auto_rule_for_39_and_42() {
        let ev = |dims: [u64; 4], companion, room, last| Evidence {
            name: "w",
            dims,
            companion,
            room,
            last,
            alignment: 32,
        };
        let auto = |e: &Evidence| resolve_tensor(42, Dialect::Auto, e).map(|t| t.name);
        let q2 = |k: u64, m: u64| k / 64 * 18 * m;
        let t2 = |k: u64, m: u64| tl2_stored_bytes(k, m).unwrap();
        let tight = |n: u64| n.next_multiple_of(32);
        let dims = [2560, 640, 1, 1];
        // Size decides, with or without a companion.
        assert_eq!(
            auto(&ev(dims, false, tight(q2(2560, 640)), false)),
            Ok("Q2_0")
        );
        assert_eq!(
            auto(&ev(dims, true, tight(t2(2560, 640)), false)),
            Ok("TL2")
        );
        assert_eq!(
            auto(&ev(dims, false, tight(t2(2560, 640)), false)),
            Ok("TL2")
        );
        // Bytes that fit only Q2_0, next to a TL2 companion: a contradiction.
        let e = auto(&ev(dims, true, tight(q2(2560, 640)), false)).unwrap_err();
        assert!(e.message.contains("contradicts itself"), "{}", e.message);
        // The last tensor (room may exceed the size): the companion decides.
        assert_eq!(auto(&ev(dims, true, 1 << 30, true)), Ok("TL2"));
        assert_eq!(auto(&ev(dims, false, 1 << 30, true)), Ok("Q2_0"));
        // Room for TL2 only (a file with gaps): TL2 even without a companion.
        assert_eq!(auto(&ev(dims, false, t2(2560, 640) + 64, false)), Ok("TL2"));
        // Explicit dialects are not second-guessed.
        let e = ev(dims, true, tight(q2(2560, 640)), false);
        assert_eq!(
            resolve_tensor(42, Dialect::Mainline, &e).unwrap().name,
            "Q2_0"
        );
        assert_eq!(
            resolve_tensor(42, Dialect::BitnetCurrent, &e).unwrap().name,
            "TL2"
        );
        // 39: MXFP4 (17 bytes per 32) against legacy TL2.
        let mx = ev(dims, false, tight(2560 / 32 * 17 * 640), false);
        assert_eq!(
            resolve_tensor(39, Dialect::Auto, &mx).unwrap().name,
            "MXFP4"
        );
    }
}
