//! Compile-time proof that every C enum and the Rust enum behind it agree. Each `paired!` list
//! maps the C values to the Rust ones: both mappings are exhaustive `match`es (a value added on
//! one side only does not compile), every pair must have the same number, and the Rust enum's
//! `CEnum::TABLE` (what parsing a C integer looks up) must list the same values in C order.

#[cfg(feature = "cuda")]
use super::cuda::tern_dtype;
use super::gguf::tern_gguf_dialect;
use super::types::*;
use crate::format::{Format, I2sVariant};
use crate::gguf::types::Dialect;
use crate::kernel::{Isa, feature};
use crate::quant::Method;
use crate::quant::activation::Compat;

/// `paired!(CEnum => RustEnum { C_VALUE => Rust::Value, … })`, in C order. `only_c [X]` names
/// C values that have no Rust value (requests such as `TERN_ISA_BEST`); a leading `table`
/// checks the Rust enum's `CEnum::TABLE` too.
macro_rules! paired {
    (table $c:ident => $r:ty { $($cv:ident => $rv:path),* $(,)? }) => {
        paired!($c => $r { $($cv => $rv),* });
        const _: () = {
            let table = <$r as crate::error::CEnum>::TABLE;
            let c_values = [$($c::$cv as i64),*];
            assert!(
                table.len() == c_values.len(),
                concat!(stringify!($r), "'s CEnum table misses values")
            );
            let mut i = 0;
            while i < table.len() {
                assert!(
                    table[i].0 as i64 == c_values[i],
                    concat!(stringify!($r), "'s CEnum table is not in C order")
                );
                i += 1;
            }
        };
    };
    ($c:ident => $r:ty { $($cv:ident => $rv:path),* $(,)? } $(only_c [$($ex:ident),*])?) => {
        const _: () = {
            const fn to_rust(c: $c) -> Option<$r> {
                match c {
                    $($c::$cv => Some($rv),)*
                    $($($c::$ex => None,)*)?
                }
            }
            const fn to_c(r: $r) -> $c {
                match r {
                    $($rv => $c::$cv),*
                }
            }
            $(
                assert!(
                    matches!(to_rust($c::$cv), Some(r) if r as i64 == $c::$cv as i64)
                        && to_c($rv) as i64 == $rv as i64,
                    concat!(stringify!($c), "::", stringify!($cv), " and ", stringify!($rv), " differ")
                );
            )*
        };
    };
}

paired!(tern_format => Format {
    TERN_FORMAT_I2_S => Format::I2S,
    TERN_FORMAT_TL1 => Format::Tl1,
    TERN_FORMAT_TL2 => Format::Tl2,
    TERN_FORMAT_TQ1_0 => Format::Tq1_0,
    TERN_FORMAT_TQ2_0 => Format::Tq2_0,
    TERN_FORMAT_Q2_0 => Format::Q2_0,
    TERN_FORMAT_Q1_0 => Format::Q1_0,
});

paired!(table tern_i2s_variant => I2sVariant {
    TERN_I2S_X86 => I2sVariant::X86,
    TERN_I2S_ARM64 => I2sVariant::Arm64,
});

paired!(table tern_quant_method => Method {
    TERN_QUANT_ABSMEAN => Method::Absmean,
    TERN_QUANT_PRESCALED => Method::Prescaled,
    TERN_QUANT_ABSMEAN_ROW => Method::AbsmeanRow,
    TERN_QUANT_ABSMEAN_GROUP => Method::AbsmeanGroup,
    TERN_QUANT_GGML_REF => Method::GgmlRef,
});

paired!(table tern_compat => Compat {
    TERN_COMPAT_DEFAULT => Compat::Default,
    TERN_COMPAT_BITNET_CPP => Compat::BitnetCpp,
    TERN_COMPAT_BITNET_CPP_LEGACY => Compat::BitnetCppLegacy,
    TERN_COMPAT_GGML => Compat::Ggml,
});

paired!(table tern_gguf_dialect => Dialect {
    TERN_GGUF_DIALECT_AUTO => Dialect::Auto,
    TERN_GGUF_DIALECT_MAINLINE => Dialect::Mainline,
    TERN_GGUF_DIALECT_BITNET_LEGACY => Dialect::BitnetLegacy,
    TERN_GGUF_DIALECT_BITNET_CURRENT => Dialect::BitnetCurrent,
});

// `TERN_ISA_BEST` (0) is a request, not a level: it has no `Isa` value.
paired!(tern_isa => Isa {
    TERN_ISA_SCALAR => Isa::Scalar,
    TERN_ISA_AVX2 => Isa::Avx2,
    TERN_ISA_AVX512 => Isa::Avx512,
    TERN_ISA_AVX512VNNI => Isa::Avx512Vnni,
    TERN_ISA_NEON => Isa::Neon,
    TERN_ISA_DOTPROD => Isa::Dotprod,
    TERN_ISA_I8MM => Isa::I8mm,
    TERN_ISA_AVXVNNI => Isa::AvxVnni,
    TERN_ISA_AVX512VBMI => Isa::Avx512Vbmi,
} only_c [TERN_ISA_BEST]);

#[cfg(feature = "cuda")]
paired!(table tern_dtype => crate::cuda::plan::Dtype {
    TERN_DTYPE_F32 => crate::cuda::plan::Dtype::F32,
    TERN_DTYPE_F16 => crate::cuda::plan::Dtype::F16,
    TERN_DTYPE_BF16 => crate::cuda::plan::Dtype::Bf16,
});

/// The feature bit of each `tern_cpu_feature` (exhaustive: a new C bit needs its Rust bit).
const fn feature_bit(c: tern_cpu_feature) -> u64 {
    use tern_cpu_feature::*;
    match c {
        TERN_CPU_FEATURE_AVX2 => feature::AVX2,
        TERN_CPU_FEATURE_FMA => feature::FMA,
        TERN_CPU_FEATURE_AVX512F => feature::AVX512F,
        TERN_CPU_FEATURE_AVX512BW => feature::AVX512BW,
        TERN_CPU_FEATURE_AVX512VL => feature::AVX512VL,
        TERN_CPU_FEATURE_AVX512VNNI => feature::AVX512VNNI,
        TERN_CPU_FEATURE_AVXVNNI => feature::AVXVNNI,
        TERN_CPU_FEATURE_NEON => feature::NEON,
        TERN_CPU_FEATURE_DOTPROD => feature::DOTPROD,
        TERN_CPU_FEATURE_I8MM => feature::I8MM,
        TERN_CPU_FEATURE_AVX512VBMI => feature::AVX512VBMI,
        TERN_CPU_FEATURE_F16C => feature::F16C,
    }
}

const _: () = {
    use tern_cpu_feature::*;
    let all = [
        TERN_CPU_FEATURE_AVX2,
        TERN_CPU_FEATURE_FMA,
        TERN_CPU_FEATURE_AVX512F,
        TERN_CPU_FEATURE_AVX512BW,
        TERN_CPU_FEATURE_AVX512VL,
        TERN_CPU_FEATURE_AVX512VNNI,
        TERN_CPU_FEATURE_AVXVNNI,
        TERN_CPU_FEATURE_NEON,
        TERN_CPU_FEATURE_DOTPROD,
        TERN_CPU_FEATURE_I8MM,
        TERN_CPU_FEATURE_AVX512VBMI,
        TERN_CPU_FEATURE_F16C,
    ];
    let mut i = 0;
    while i < all.len() {
        assert!(
            feature_bit(all[i]) == all[i] as u64,
            "a tern_cpu_feature bit differs from kernel::feature"
        );
        i += 1;
    }
};

/// Every status with its name, in value order (`tern_status_name` indexes it by value).
pub const STATUS_NAMES: [(tern_status, &std::ffi::CStr); 11] = {
    use tern_status::*;
    [
        (TERN_STATUS_OK, c"TERN_STATUS_OK"),
        (TERN_STATUS_NULL_POINTER, c"TERN_STATUS_NULL_POINTER"),
        (
            TERN_STATUS_INVALID_ARGUMENT,
            c"TERN_STATUS_INVALID_ARGUMENT",
        ),
        (TERN_STATUS_MISALIGNED, c"TERN_STATUS_MISALIGNED"),
        (
            TERN_STATUS_BUFFER_TOO_SMALL,
            c"TERN_STATUS_BUFFER_TOO_SMALL",
        ),
        (TERN_STATUS_UNSUPPORTED, c"TERN_STATUS_UNSUPPORTED"),
        (TERN_STATUS_NO_DEVICE, c"TERN_STATUS_NO_DEVICE"),
        (TERN_STATUS_CUDA_ERROR, c"TERN_STATUS_CUDA_ERROR"),
        (TERN_STATUS_OUT_OF_MEMORY, c"TERN_STATUS_OUT_OF_MEMORY"),
        (TERN_STATUS_PANIC, c"TERN_STATUS_PANIC"),
        (TERN_STATUS_INTERNAL, c"TERN_STATUS_INTERNAL"),
    ]
};

/// Index of a status in `STATUS_NAMES` (exhaustive: a new status needs its row).
const fn status_row(s: tern_status) -> usize {
    use tern_status::*;
    match s {
        TERN_STATUS_OK => 0,
        TERN_STATUS_NULL_POINTER => 1,
        TERN_STATUS_INVALID_ARGUMENT => 2,
        TERN_STATUS_MISALIGNED => 3,
        TERN_STATUS_BUFFER_TOO_SMALL => 4,
        TERN_STATUS_UNSUPPORTED => 5,
        TERN_STATUS_NO_DEVICE => 6,
        TERN_STATUS_CUDA_ERROR => 7,
        TERN_STATUS_OUT_OF_MEMORY => 8,
        TERN_STATUS_PANIC => 9,
        TERN_STATUS_INTERNAL => 10,
    }
}

const _: () = {
    let mut i = 0;
    while i < STATUS_NAMES.len() {
        let s = STATUS_NAMES[i].0;
        assert!(
            s as usize == i && status_row(s) == i,
            "STATUS_NAMES must list every status in value order"
        );
        i += 1;
    }
};
