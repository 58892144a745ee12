//! Compute kernels behind one dispatch table. A `Kernels` table is chosen once per context from
//! the CPU's features (capped by `max_isa`); kernels never validate arguments — callers
//! (`matrix/`, `ffi/ggml.rs`) hand them slices whose sizes are already checked.

#[cfg(target_arch = "aarch64")]
pub mod aarch64;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod job;
pub mod panel;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
pub mod x86;

use std::ffi::CStr;

use crate::error::{Error, Result};
use crate::format::I2sVariant;
#[cfg(target_arch = "x86_64")]
use crate::quant::activation;
use crate::quant::activation::{Arith, QuantizeTokenFn};
use crate::quant::{q8_0, q8k};

/// `tern_cpu_feature` bits reported by `tern_cpu_features`.
pub mod feature {
    pub const AVX2: u64 = 1 << 0;
    pub const FMA: u64 = 1 << 1;
    pub const AVX512F: u64 = 1 << 2;
    pub const AVX512BW: u64 = 1 << 3;
    pub const AVX512VL: u64 = 1 << 4;
    pub const AVX512VNNI: u64 = 1 << 5;
    pub const AVXVNNI: u64 = 1 << 6;
    pub const NEON: u64 = 1 << 7;
    pub const DOTPROD: u64 = 1 << 8;
    pub const I8MM: u64 = 1 << 9;
    pub const AVX512VBMI: u64 = 1 << 10;
    pub const F16C: u64 = 1 << 11;
}

/// The CPU features this process can use, detected once.
pub fn cpu_features() -> u64 {
    static FEATURES: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *FEATURES.get_or_init(detect_features)
}

#[cfg(target_arch = "x86_64")]
fn detect_features() -> u64 {
    use feature::*;
    let checks = [
        (std::arch::is_x86_feature_detected!("avx2"), AVX2),
        (std::arch::is_x86_feature_detected!("fma"), FMA),
        (std::arch::is_x86_feature_detected!("avx512f"), AVX512F),
        (std::arch::is_x86_feature_detected!("avx512bw"), AVX512BW),
        (std::arch::is_x86_feature_detected!("avx512vl"), AVX512VL),
        (
            std::arch::is_x86_feature_detected!("avx512vnni"),
            AVX512VNNI,
        ),
        (std::arch::is_x86_feature_detected!("avxvnni"), AVXVNNI),
        (
            std::arch::is_x86_feature_detected!("avx512vbmi"),
            AVX512VBMI,
        ),
        (std::arch::is_x86_feature_detected!("f16c"), F16C),
    ];
    checks.iter().filter(|c| c.0).fold(0, |acc, c| acc | c.1)
}

#[cfg(target_arch = "aarch64")]
fn detect_features() -> u64 {
    use feature::*;
    let checks = [
        (std::arch::is_aarch64_feature_detected!("neon"), NEON),
        (std::arch::is_aarch64_feature_detected!("dotprod"), DOTPROD),
        (std::arch::is_aarch64_feature_detected!("i8mm"), I8MM),
    ];
    checks.iter().filter(|c| c.0).fold(0, |acc, c| acc | c.1)
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_features() -> u64 {
    0
}

/// Instruction-set levels a context may be capped at (`tern_isa`; 0 = best available). Each level
/// is one `Kernels` row (`Kernels::for_isa`). The numbers are the C ABI's and never change, so a
/// new level gets the next free number wherever it ranks: levels compare by rank (`Isa::ALL`'s
/// order), never by number.
///
/// ```
/// use tern::Isa;
///
/// let best = Isa::best();
/// assert!(best.is_available() && Isa::Scalar.is_available());
/// assert_eq!(Isa::available().last(), Some(best));
/// println!("levels here: {:?}", Isa::available().map(Isa::name).collect::<Vec<_>>());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    /// Portable Rust: the oracle every other level matches bit for bit.
    Scalar = 1,
    /// x86-64 AVX2 + FMA (`vpmaddubsw`).
    Avx2 = 2,
    /// AVX-512 F/BW/VL.
    Avx512 = 3,
    /// AVX-512 VNNI (`vpdpbusd` panels).
    Avx512Vnni = 4,
    /// aarch64 NEON.
    Neon = 5,
    /// aarch64 NEON + dot product (`sdot`).
    Dotprod = 6,
    /// aarch64 NEON + dot product + int8 matrix multiply (`smmla`).
    I8mm = 7,
    /// AVX2 + FMA + AVX-VNNI: the 256-bit VEX `vpdpbusd` panels.
    AvxVnni = 8,
    /// AVX-512 VNNI + VBMI: adds the 1.6-bit panels (VBMI decodes them).
    Avx512Vbmi = 9,
}

impl Isa {
    /// Every level, lowest rank first: `best()` is the last one the CPU has. AVX-VNNI ranks above
    /// AVX-512BW: a CPU with AVX-512BW and AVX-VNNI but not AVX-512 VNNI (no shipping CPU; a VM
    /// can mask features that way) then runs the AVX-VNNI panels, since a `vpdpbusd` does the work of
    /// AVX-512BW's `vpmaddubsw` + `vpmaddwd` + `vpaddd` and the panels are the hot path of every
    /// format; its row kernel and activation quantizer are then the AVX2 ones, which only the
    /// formats without panels and the per-token preparation use. Every CPU with AVX-VNNI and
    /// AVX-512 VNNI takes an AVX-512 VNNI level, which ranks above both.
    pub const ALL: [Isa; 9] = [
        Self::Scalar,
        Self::Avx2,
        Self::Avx512,
        Self::AvxVnni,
        Self::Avx512Vnni,
        Self::Avx512Vbmi,
        Self::Neon,
        Self::Dotprod,
        Self::I8mm,
    ];

    /// The position in `ALL` (the order levels compare in).
    pub fn rank(self) -> usize {
        Self::ALL.iter().position(|&isa| isa == self).unwrap_or(0)
    }

    /// The lower-case name `tern info` prints ("avx2").
    pub fn name(self) -> &'static str {
        match self {
            Self::Scalar => "scalar",
            Self::Avx2 => "avx2",
            Self::AvxVnni => "avxvnni",
            Self::Avx512 => "avx512",
            Self::Avx512Vnni => "avx512vnni",
            Self::Avx512Vbmi => "avx512vbmi",
            Self::Neon => "neon",
            Self::Dotprod => "dotprod",
            Self::I8mm => "i8mm",
        }
    }

    /// The CPU features an ISA level needs.
    pub fn required_features(self) -> u64 {
        use feature::*;
        // Every x86 level with panels converts the f16 per-block scales with F16C (which every
        // CPU with AVX2 or AVX-512 has; checked anyway, as a VM may mask it).
        const AVX512: u64 = AVX512F | AVX512BW | AVX512VL | F16C;
        match self {
            Self::Scalar => 0,
            Self::Avx2 => AVX2 | FMA | F16C,
            Self::AvxVnni => AVX2 | FMA | F16C | AVXVNNI,
            Self::Avx512 => AVX512,
            Self::Avx512Vnni => AVX512 | AVX512VNNI,
            Self::Avx512Vbmi => AVX512 | AVX512VNNI | AVX512VBMI,
            Self::Neon => NEON,
            Self::Dotprod => NEON | DOTPROD,
            Self::I8mm => NEON | DOTPROD | I8MM,
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_available(self) -> bool {
        cpu_features() & self.required_features() == self.required_features()
    }

    /// Every level this CPU can run, lowest rank first.
    pub fn available() -> impl Iterator<Item = Isa> {
        Self::ALL.into_iter().filter(|isa| isa.is_available())
    }

    /// The best level this CPU can run.
    pub fn best() -> Isa {
        Self::available().last().unwrap_or(Self::Scalar)
    }

    /// Parses `max_isa` (0 = best) and checks that this CPU has it: asking for a level the CPU
    /// lacks is an error, never a silent downgrade.
    pub fn from_request(v: i32) -> Result<Isa> {
        if v == 0 {
            return Ok(Self::best());
        }
        let isa = Self::ALL
            .into_iter()
            .find(|isa| *isa as i32 == v)
            .ok_or_else(|| {
                let mut by_number = Self::ALL;
                by_number.sort_by_key(|isa| *isa as i32);
                let allowed: Vec<String> = by_number
                    .iter()
                    .map(|isa| format!("{} = {}", *isa as i32, isa.name().to_ascii_uppercase()))
                    .collect();
                Error::invalid(format!(
                    "max_isa {v} is unknown (allowed: 0 = best, {})",
                    allowed.join(", ")
                ))
            })?;
        if !isa.is_available() {
            return Err(Error::unsupported(format!(
                "max_isa {} is not available on this CPU (available: {})",
                isa.name(),
                Self::available()
                    .map(Isa::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(isa)
    }
}

impl PartialOrd for Isa {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Isa {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank().cmp(&other.rank())
    }
}

/// Code dots of I2_S rows against int8 tokens: `dots[t·n_rows + r] = Σ_k code[r][k]·acts[t][k]`
/// with codes {0, 1, 2, 3} (3: Q2_0's +2), exact in int32 for `cols ≤ format::MAX_COLS`. `weights` holds `n_rows` rows of `cols/4` bytes
/// (`cols` a multiple of the variant's block); token `t` is `acts[t·act_stride ..][..cols]`.
pub type I2sDotsFn = fn(
    variant: I2sVariant,
    weights: &[u8],
    cols: usize,
    acts: &[i8],
    act_stride: usize,
    n_tokens: usize,
    dots: &mut [i32],
);

/// Panel dots (layouts in `panel`): for each of `n_tiles` consecutive 64-row tiles `i`,
/// `dots[((i·n_tokens + t)·n_dots + d)·64 + r] = Σ_{k in dot d} code[r][k]·acts[t][k]`, dot `d`
/// covering groups `d·merge..(d+1)·merge` (`n_dots = n_groups / merge`), codes {0, 1, 2, 3}
/// (`Trits5`: {0, 1, 2}), exact in int32. `tiles` holds `n_tiles · geom.tile_bytes()` bytes (one call
/// streams a run of tiles without returning in between: from DRAM, a return and epilogue per
/// tile would break the weight stream); `acts` holds `n_tokens` tokens of `geom.cols()` values interleaved
/// by k-step (value (t, k) at `(k/4 · n_tokens + t)·4 + k%4`, see `panel::interleave_acts`).
///
/// With `scaling` (per-group weight scales), the dots go through the scales as the kernel
/// computes them (`TileScaling`): `dots` is then work space for one tile (`n_tokens · n_dots ·
/// 64` values, each block of rows and tokens read back while it is in L1) and the results are
/// `scaling.acc`.
pub type PanelDotsFn = fn(
    geom: &panel::PanelGeom,
    tiles: &[u8],
    n_tiles: usize,
    acts: &[i8],
    n_tokens: usize,
    dots: &mut [i32],
    scaling: Option<&mut TileScaling>,
);

/// A tile run's per-group weight scales, which a `PanelDotsFn` applies to each block of rows and
/// tokens right after its dots (a separate pass over all of a tile's dots read them back from
/// L2: with Q2_0's and Q1_0's 32-column dots, hundreds of KiB per tile at 12 tokens).
///
/// For tile `i`, token `t`, lane `l`: `acc[(i·n_tokens + t)·64 + l]` = from 0.0, over the dots
/// `d` in order, `+= f32(dot − gsums[t·n_dots + d]) · s` with `s = scales[i·stride + d·64 + l]`
/// (f16, exact as f32: every per-block format stores f16 scales; half the bytes of f32 beside a
/// GEMV's weight stream),
/// or `block_scales[t·n_dots + d] · scales[..]` when given (`q8_0_block: None`; TQ, and Q2_0 /
/// Q1_0 per token); or, in ggml's Q8_0 order (`Some(n)`: `n` dots per weight block `b`),
/// `+= scales[i·stride + b·64 + l] · sumi` with `sumi` = from 0.0, over the block's dots in
/// order, `+= block_scales[t·n_dots + d] · f32(dot − gsums[..])`. Every product and sum is
/// rounded on its own (no fused multiply-add): each kernel returns `scalar::panel_dots`' bits.
/// `stride` 0: every tile has the first tile's scales.
///
/// `q8_0_offsets` (optional, in the Q8_0 order only): `−block_scales[i] · gsums[i]` for every
/// dot, each exact (`q8_0_offsets`), with which a kernel may compute a dot's `block_scales[i] ·
/// f32(dot − gsums[i])` as one fused multiply-add of `f32(dot)`: the same bits.
pub struct TileScaling<'a> {
    pub scales: &'a [half::f16],
    pub stride: usize,
    pub gsums: &'a [i32],
    pub block_scales: Option<&'a [f32]>,
    pub q8_0_block: Option<usize>,
    pub q8_0_offsets: Option<&'a [f32]>,
    pub acc: &'a mut [f32],
}

/// Fills `out[i]` with `−block_scales[i] · gsums[i]` and says whether every one is exact in f32
/// (finite and equal to the f64 product, itself exact for |gsums[i]| ≤ 2^24). Then
/// `fma(b, f32(dot), −b·g)` rounds the exact value `b·(dot − g)` once, as the Q8_0 order's
/// `b · f32(dot − g)` does (`f32(dot − g)` is exact below 2^24), so the kernels that scale each
/// dot as it ends take a fused multiply-add for a subtraction, a conversion and a
/// multiplication. (A zero product may differ in its sign only, which no sum that starts at
/// +0.0 keeps.) ggml's Q8_0 scales are f16 values (11 significant bits) and a 32-column block's
/// sum at most 4096 in magnitude (13 bits), so every product is exact there, unless a scale is
/// infinite (an f16 overflow of the activations' maximum).
pub fn q8_0_offsets(gsums: &[i32], block_scales: &[f32], out: &mut [f32]) -> bool {
    let mut exact = true;
    for ((o, &g), &b) in out.iter_mut().zip(gsums).zip(block_scales) {
        *o = -b * g as f32;
        exact &= g.unsigned_abs() <= 1 << 24
            && o.is_finite()
            && f64::from(*o) == -f64::from(b) * f64::from(g);
    }
    exact
}

/// The per-group inputs of one tile for the scalar scale oracles (`scalar::scale_groups`,
/// `scalar::scale_q8_0`): the exact group sums of `n_tokens` tokens (`dots[(t·n_groups + g)·64 +
/// l]`), the activations' group sums `gsums[t·n_groups + g]`, the tile's weight scales
/// `scales[g·64 + l]` (per weight block in the Q8_0 order) and the activations' block scales
/// `block_scales[t·n_groups + g]`.
pub struct GroupScales<'a> {
    pub n_groups: usize,
    pub n_tokens: usize,
    pub dots: &'a [i32],
    pub gsums: &'a [i32],
    pub scales: &'a [f32],
    pub block_scales: Option<&'a [f32]>,
}

/// The panel kernels of a level: `Matrix` uses them (and the panel layout) when a level has
/// them, else the row-layout `I2sDotsFn`.
pub struct PanelKernels {
    /// 2-bit panels.
    pub bits2: Kernel<PanelDotsFn>,
    /// 1.6-bit panels, where the CPU can decode them.
    pub bits16: Option<Kernel<PanelDotsFn>>,
    /// 1-bit panels (Q1_0), where the level has a kernel for them.
    pub bits1: Option<Kernel<PanelDotsFn>>,
}

#[cfg(target_arch = "x86_64")]
static VNNI_PANELS: PanelKernels = PanelKernels {
    bits2: Kernel {
        name: c"i2_s/avx512vnni",
        run: x86::panel_dots_vnni,
    },
    bits16: None,
    bits1: None,
};

#[cfg(target_arch = "x86_64")]
static VNNI_VBMI_PANELS: PanelKernels = PanelKernels {
    bits2: VNNI_PANELS.bits2,
    bits16: Some(Kernel {
        name: c"t1_6/avx512vnni",
        run: x86::panel_dots_vnni,
    }),
    bits1: None,
};

#[cfg(target_arch = "x86_64")]
static AVX2_PANELS: PanelKernels = PanelKernels {
    bits2: Kernel {
        name: c"i2_s/avx2",
        run: x86::panel_dots_avx2,
    },
    bits16: None,
    bits1: Some(Kernel {
        name: c"b1/avx2",
        run: x86::panel_dots_avx2_bits1,
    }),
};

#[cfg(target_arch = "x86_64")]
static BW_PANELS: PanelKernels = PanelKernels {
    bits2: Kernel {
        name: c"i2_s/avx512",
        run: x86::panel_dots_bw,
    },
    bits16: None,
    bits1: None,
};

#[cfg(target_arch = "x86_64")]
static AVXVNNI_PANELS: PanelKernels = PanelKernels {
    bits2: Kernel {
        name: c"i2_s/avxvnni",
        run: x86::panel_dots_avxvnni,
    },
    bits16: None,
    bits1: None,
};

#[cfg(target_arch = "x86_64")]
static AVXVNNI_EVEX_PANELS: PanelKernels = PanelKernels {
    bits2: Kernel {
        name: c"i2_s/avxvnni-evex",
        run: x86::panel_dots_avxvnni_evex,
    },
    bits16: None,
    bits1: None,
};

/// The AVX-VNNI panel kernels compiled with EVEX encodings (AVX-512 VL + VNNI), where this CPU
/// runs them. They exist so that tests can run the AVX-VNNI kernel's code on CPUs with AVX-512
/// VL + VNNI but no AVX-VNNI (no emulator has AVX-VNNI); no context uses them.
#[doc(hidden)]
pub fn avxvnni_evex_panels() -> Option<&'static PanelKernels> {
    #[cfg(target_arch = "x86_64")]
    if x86::has_avxvnni_evex() {
        return Some(&AVXVNNI_EVEX_PANELS);
    }
    None
}

/// One kernel with the name `tern_context_kernel_name` reports for it.
#[derive(Clone, Copy)]
pub struct Kernel<F> {
    pub name: &'static CStr,
    pub run: F,
}

/// One ISA level's row of the table: everything a context at that level runs. A context picks
/// its row once (`Context::new`, from `max_isa`); the GEMM driver, the activation quantizers and
/// the `tern_ggml_*` tier (the best row) take the row's kernels instead of probing the CPU.
pub struct Kernels {
    pub isa: Isa,
    /// The I2_S row-layout kernel: formats without panels at this level, and the ggml tier.
    pub i2s_dots: Kernel<I2sDotsFn>,
    /// The panel kernels (2-bit, 1.6-bit, group scaling), if the level has them (`panel()`).
    panels: Option<&'static PanelKernels>,
    /// The per-token int8 activation quantizer (`Arith::quantize_token`).
    pub quantize_token: QuantizeTokenFn,
    /// ggml's Q8_0 activation blocks (`Arith::GgmlQ8_0`), as this architecture's ggml makes them.
    pub quantize_q8_0: q8_0::RowFn,
    /// ggml's Q8_K activation blocks (`Arith::Ggml`, TQ1_0 / TQ2_0): one rule everywhere
    /// (`quantize_row_q8_K_ref`); the level picks the instructions.
    pub quantize_q8_k: q8k::RowFn,
}

static SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    i2s_dots: Kernel {
        name: c"i2_s/scalar",
        run: scalar::i2s_dots,
    },
    panels: None,
    quantize_token: Arith::quantize_token_scalar,
    quantize_q8_0: q8_0::quantize_row_arch,
    quantize_q8_k: q8k::quantize_row,
};

#[cfg(target_arch = "x86_64")]
static AVX2: Kernels = Kernels {
    isa: Isa::Avx2,
    i2s_dots: Kernel {
        name: c"i2_s/avx2",
        run: x86::i2s_dots_avx2,
    },
    panels: Some(&AVX2_PANELS),
    quantize_token: activation::quantize_token_avx2,
    quantize_q8_0: q8_0::quantize_row_x86_avx2,
    quantize_q8_k: q8k::quantize_row_x86_avx2,
};

/// AVX2's row with the AVX-VNNI panels (`vpdpbusd` in place of `vpmaddubsw` + `vpmaddwd`).
#[cfg(target_arch = "x86_64")]
static AVXVNNI: Kernels = Kernels {
    isa: Isa::AvxVnni,
    panels: Some(&AVXVNNI_PANELS),
    ..AVX2
};

#[cfg(target_arch = "x86_64")]
static AVX512: Kernels = Kernels {
    isa: Isa::Avx512,
    i2s_dots: Kernel {
        name: c"i2_s/avx512",
        run: x86::i2s_dots_avx512,
    },
    panels: Some(&BW_PANELS),
    quantize_token: activation::quantize_token_avx512,
    quantize_q8_0: q8_0::quantize_row_x86_avx2,
    quantize_q8_k: q8k::quantize_row_x86_avx2,
};

#[cfg(target_arch = "x86_64")]
static AVX512VNNI: Kernels = Kernels {
    isa: Isa::Avx512Vnni,
    i2s_dots: Kernel {
        name: c"i2_s/avx512vnni",
        run: x86::i2s_dots_avx512vnni,
    },
    panels: Some(&VNNI_PANELS),
    quantize_token: activation::quantize_token_avx512,
    quantize_q8_0: q8_0::quantize_row_x86_avx2,
    quantize_q8_k: q8k::quantize_row_x86_avx2,
};

/// AVX-512 VNNI's row with the 1.6-bit panels, which need VBMI to decode.
#[cfg(target_arch = "x86_64")]
static AVX512VBMI: Kernels = Kernels {
    isa: Isa::Avx512Vbmi,
    panels: Some(&VNNI_VBMI_PANELS),
    ..AVX512VNNI
};

#[cfg(target_arch = "aarch64")]
static NEON: Kernels = Kernels {
    isa: Isa::Neon,
    i2s_dots: Kernel {
        name: c"i2_s/neon",
        run: aarch64::i2s_dots_neon,
    },
    ..SCALAR
};

#[cfg(target_arch = "aarch64")]
static DOTPROD: Kernels = Kernels {
    isa: Isa::Dotprod,
    i2s_dots: Kernel {
        name: c"i2_s/dotprod",
        run: aarch64::i2s_dots_dotprod,
    },
    ..SCALAR
};

#[cfg(target_arch = "aarch64")]
static I8MM: Kernels = Kernels {
    isa: Isa::I8mm,
    i2s_dots: Kernel {
        name: c"i2_s/i8mm",
        run: aarch64::i2s_dots_i8mm,
    },
    ..SCALAR
};

impl Kernels {
    /// The panel kernels of this level, if it has them: AVX-512 VNNI (1.6-bit too at the VBMI
    /// level), AVX-VNNI's 256-bit `vpdpbusd` ones, AVX-512BW's 512-bit `vpmaddubsw` ones and
    /// AVX2's 256-bit ones (the last three 2-bit only). Panels are used wherever a level has
    /// them: each 64-row tile is one sequential stream and the kernel returns exact integer dots
    /// per block, so they beat the row kernels at every format and token count; the timings are
    /// in docs/performance.md.
    pub fn panel(&self) -> Option<&'static PanelKernels> {
        self.panels
    }

    /// The row of level `isa` (which the caller has checked is available: `Isa::from_request`).
    /// The SIMD kernels re-check the CPU features on every call, so a row for a missing level
    /// panics instead of running illegal instructions. A level of another architecture gets the
    /// scalar row.
    pub fn for_isa(isa: Isa) -> &'static Kernels {
        match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &AVX2,
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => &AVXVNNI,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &AVX512,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => &AVX512VNNI,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vbmi => &AVX512VBMI,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &NEON,
            #[cfg(target_arch = "aarch64")]
            Isa::Dotprod => &DOTPROD,
            #[cfg(target_arch = "aarch64")]
            Isa::I8mm => &I8MM,
            _ => &SCALAR,
        }
    }

    /// The row of the best level this CPU has (what `max_isa = 0` picks).
    pub fn best() -> &'static Kernels {
        Self::for_isa(Isa::best())
    }
}
