//! The C-visible enums and structs. Names are the C names (cbindgen emits them as they are);
//! enum values are appended only, never renumbered.
#![allow(non_camel_case_types, clippy::upper_case_acronyms)]

use std::ffi::c_char;

use super::args::Versioned;

/// Result of every fallible call. 0 is success; details are in `tern_last_error_message()`.
#[repr(i32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum tern_status {
    TERN_STATUS_OK = 0,
    /// A required pointer argument was NULL.
    TERN_STATUS_NULL_POINTER = 1,
    /// An argument is out of range, inconsistent, or the data is corrupt.
    TERN_STATUS_INVALID_ARGUMENT = 2,
    /// A typed pointer is not aligned to its element size.
    TERN_STATUS_MISALIGNED = 3,
    /// An output buffer is smaller than required; the message names the required size.
    TERN_STATUS_BUFFER_TOO_SMALL = 4,
    /// The request is valid but not available here (format, ISA, option).
    TERN_STATUS_UNSUPPORTED = 5,
    /// No CUDA driver or device.
    TERN_STATUS_NO_DEVICE = 6,
    /// The CUDA driver reported an error.
    TERN_STATUS_CUDA_ERROR = 7,
    /// An allocation failed (the system refused it, e.g. under an address-space limit); the
    /// message names its size in bytes. Nothing was written; the call may be retried.
    TERN_STATUS_OUT_OF_MEMORY = 8,
    /// A bug inside tern was caught at the boundary; the message has the details.
    TERN_STATUS_PANIC = 9,
    /// An internal failure that is not the caller's fault (e.g. threads could not start).
    TERN_STATUS_INTERNAL = 10,
}

/// Ternary storage formats (values of `tern_layout.format`).
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_format {
    /// bitnet.cpp I2_S: 2-bit codes, one f32 scale per tensor.
    TERN_FORMAT_I2_S = 1,
    /// bitnet.cpp TL1: pairs of weights as 4-bit LUT indices, tiled; one f32 scale per tensor.
    TERN_FORMAT_TL1 = 2,
    /// bitnet.cpp TL2: triples (4-bit index + sign bit) and pairs, tiled; one f32 scale per tensor.
    TERN_FORMAT_TL2 = 3,
    /// ggml TQ1_0: base-3, 54 bytes per 256 weights with an f16 scale (1.6875 bits/weight).
    TERN_FORMAT_TQ1_0 = 4,
    /// ggml TQ2_0: 2-bit codes, 66 bytes per 256 weights with an f16 scale (2.0625 bits/weight).
    TERN_FORMAT_TQ2_0 = 5,
    /// Mainline ggml Q2_0 (GGUF type 42): 64 weights in 18 bytes, an f16 scale `d` and 2-bit
    /// codes meaning −d, 0, +d and +2d (2.25 bits/weight).
    TERN_FORMAT_Q2_0 = 6,
    /// Mainline ggml Q1_0 (GGUF type 41): 128 binary weights ±d in 18 bytes, an f16 scale `d`
    /// and one sign bit each (1.125 bits/weight).
    TERN_FORMAT_Q1_0 = 7,
}

/// I2_S block layouts (values of `tern_layout.variant` for I2_S).
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_i2s_variant {
    /// 128-element blocks: x86 builds of bitnet.cpp and published GGUF files (default).
    TERN_I2S_X86 = 0,
    /// 64-element blocks written by bitnet.cpp's ARM builds.
    TERN_I2S_ARM64 = 1,
}

/// How `tern_quantize` turns floats into ternary values (`tern_quant_options.method`).
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
///
/// Into a format with per-block scales (TQ1_0, TQ2_0, Q2_0, Q1_0) a per-tensor or per-row scale
/// is stored in every block (f16, rounded to nearest even). Into Q1_0, whose values are ±1, the
/// methods binarize (BitNet b1): value = +1 where `W >= 0` else −1, scale = mean|W| of the
/// method's group (no `eps` floor; PRESCALED: max|W| per tensor).
pub enum tern_quant_method {
    /// BitNet b1.58 absmean per tensor: `s = 1/max(mean|W|, eps)`, `t = clamp(round_half_even(W·s), -1, 1)`, scale `1/s`.
    TERN_QUANT_ABSMEAN = 0,
    /// Input is already ternary × scale (bitnet.cpp `quantize_i2_s`): scale = max|W|, t = sign(W) with |W| < 1e-6 → 0.
    TERN_QUANT_PRESCALED = 1,
    /// Absmean with one scale per row (formats with per-block scales only).
    TERN_QUANT_ABSMEAN_ROW = 2,
    /// Absmean with one scale per `group_size` elements, a multiple of the format's block (TQ:
    /// 256, Q2_0: 64, Q1_0: 128; formats with per-block scales only).
    TERN_QUANT_ABSMEAN_GROUP = 3,
    /// ggml's reference quantizer, byte for byte: `quantize_row_tqX_0_ref` for TQ1_0/TQ2_0 (and
    /// `tern_ternarize`), `quantize_row_q2_0_ref` for Q2_0 (`d = max|W|` per 64, codes
    /// `clamp(roundf(W/d) + 1, 0, 3)`), `quantize_row_q1_0_ref` for Q1_0 (`d = mean|W|` per 128
    /// summed in f32, sign bits `W >= 0`). A block whose scale exceeds the f16 range is an error.
    TERN_QUANT_GGML_REF = 4,
}

/// Whose activation rounding and float epilogue a GEMM reproduces (`tern_gemm_options.compat`).
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_compat {
    /// Per-token absmax int8, half-to-even (BitNet training); `y = (dot − sum)·(w_scale/act_scale)`
    /// with the integer difference exact; an all-zero token gives 0. TQ1_0/TQ2_0: the same
    /// when all block scales are equal; else `y = (Σ_blocks f32(dot_b − sum_b)·w_b) / act_scale`
    /// summed in block order.
    TERN_COMPAT_DEFAULT = 0,
    /// Bit-exact with bitnet.cpp today for the matrix's format. I2_S: half away from zero,
    /// `(dot − sum)·(w_scale/act_scale)` in f32. TL1/TL2: the LUT kernels
    /// (`f32(Σ t·q) / act_scale · w_scale`, half-to-even, no absmax floor).
    TERN_COMPAT_BITNET_CPP = 1,
    /// Bit-exact with bitnet.cpp merge-dev. I2_S: f64 absmax floored at 1e-5, half-to-even,
    /// `((dot − sum)/act_scale)·w_scale`. TL1/TL2: the same LUT kernels as BITNET_CPP.
    TERN_COMPAT_BITNET_CPP_LEGACY = 2,
    /// ggml's mul_mat (`tern_gemm` only). TQ1_0/TQ2_0: activations quantized to Q8_K per 256
    /// block, `Σ_blocks f32(S_b)·(d_act·d_w)` summed in block order. Q2_0/Q1_0: Q8_0 per 32
    /// (the quantizer of this architecture's ggml), per weight block `sumf += d_w·Σ_k
    /// d_act,k·f32(S_k)` in ggml's generic order.
    TERN_COMPAT_GGML = 3,
}

/// Instruction-set caps for `tern_context_options.max_isa`.
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_isa {
    /// The best this CPU has.
    TERN_ISA_BEST = 0,
    TERN_ISA_SCALAR = 1,
    /// AVX2 + FMA: 2-bit panel kernels for every format, "i2_s/avx2" (`vpmaddubsw`).
    TERN_ISA_AVX2 = 2,
    /// AVX-512 F/BW/VL without VNNI: 2-bit panel kernels for every format, "i2_s/avx512"
    /// (512-bit `vpmaddubsw`).
    TERN_ISA_AVX512 = 3,
    /// AVX-512 VNNI: 2-bit panel kernels for every format, "i2_s/avx512vnni".
    TERN_ISA_AVX512VNNI = 4,
    TERN_ISA_NEON = 5,
    TERN_ISA_DOTPROD = 6,
    TERN_ISA_I8MM = 7,
    /// AVX2 + FMA + AVX-VNNI (e.g. Intel Alder Lake): 2-bit panel kernels for every format,
    /// "i2_s/avxvnni" (VEX `vpdpbusd`). Ranks above AVX512 and below AVX512VNNI.
    TERN_ISA_AVXVNNI = 8,
    /// AVX-512 VNNI + VBMI: as AVX512VNNI, and 1.6-bit panels ("t1_6/avx512vnni") for TQ1_0
    /// and TL2. The highest x86 level.
    TERN_ISA_AVX512VBMI = 9,
}

/// Bits of `tern_cpu_features()`.
#[repr(u32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_cpu_feature {
    TERN_CPU_FEATURE_AVX2 = 1 << 0,
    TERN_CPU_FEATURE_FMA = 1 << 1,
    TERN_CPU_FEATURE_AVX512F = 1 << 2,
    TERN_CPU_FEATURE_AVX512BW = 1 << 3,
    TERN_CPU_FEATURE_AVX512VL = 1 << 4,
    TERN_CPU_FEATURE_AVX512VNNI = 1 << 5,
    TERN_CPU_FEATURE_AVXVNNI = 1 << 6,
    TERN_CPU_FEATURE_NEON = 1 << 7,
    TERN_CPU_FEATURE_DOTPROD = 1 << 8,
    TERN_CPU_FEATURE_I8MM = 1 << 9,
    TERN_CPU_FEATURE_AVX512VBMI = 1 << 10,
    TERN_CPU_FEATURE_F16C = 1 << 11,
}

/// Options for `tern_context_create`. Initialize with `TERN_CONTEXT_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_context_options {
    /// `sizeof(tern_context_options)`, set by the INIT macro.
    pub struct_size: u32,
    /// A `tern_isa` value: the highest instruction set the kernels may use (0 = best available).
    /// Asking for one this CPU lacks is `TERN_STATUS_UNSUPPORTED`.
    pub max_isa: i32,
    /// Threads per call: 0 = all cores, 1 = the caller's thread only, N = a pool of N.
    pub n_threads: i32,
    /// How long, in microseconds, the pool's idle workers spin (burning CPU) waiting for the next
    /// call before they sleep; 0 = sleep at once (a call then pays a thread wake-up, a few
    /// microseconds), at most 1000000. Default `TERN_DEFAULT_SPIN_US` (100): it bridges the gaps
    /// between the GEMVs of one layer, while a host that runs its own threads between calls
    /// (attention, sampling, its own thread pool) loses at most that much CPU per worker after
    /// each call. Callers built against a header without this field (a smaller `struct_size`)
    /// get the default; options zeroed by hand instead of `TERN_CONTEXT_OPTIONS_INIT` get 0.
    pub spin_us: u32,
}

/// How a matrix is stored. Initialize with `TERN_LAYOUT_INIT(format)`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_layout {
    /// `sizeof(tern_layout)`.
    pub struct_size: u32,
    /// A `tern_format` value.
    pub format: i32,
    /// I2_S: a `tern_i2s_variant` value. Other formats: 0.
    pub variant: u32,
    /// TL1/TL2 rows per tile (BM); 0 = chosen by the library. Must be 0 for I2_S.
    pub tile_rows: u32,
    /// TL1/TL2 reduction block (BK); 0 = chosen by the library. Must be 0 for I2_S.
    pub tile_k: u32,
    /// TL1/TL2 SIMD row block (bm); 0 = chosen by the library. Must be 0 for I2_S.
    pub simd_rows: u32,
}

/// Options for weight quantization. Initialize with `TERN_QUANT_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_quant_options {
    /// `sizeof(tern_quant_options)`.
    pub struct_size: u32,
    /// A `tern_quant_method` value (default `TERN_QUANT_ABSMEAN`).
    pub method: i32,
    /// Elements per scale for `TERN_QUANT_ABSMEAN_GROUP`; must be 0 otherwise.
    pub group_size: u32,
    /// Floor of mean|W| for the absmean methods (default 1e-5); must be finite and > 0.
    pub eps: f32,
}

/// Options for `tern_convert`. Initialize with `TERN_CONVERT_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_convert_options {
    /// `sizeof(tern_convert_options)`.
    pub struct_size: u32,
    /// 1: round scales the target cannot store exactly (f32 → f16 for TQ1_0, TQ2_0, Q2_0,
    /// Q1_0) to the nearest value. 0 (default): such a conversion fails with TERN_STATUS_INVALID_ARGUMENT.
    pub allow_rounding: u32,
}

/// What quantization did (filled by `tern_quantize` / `tern_matrix_from_f32`). Set `struct_size`
/// (`TERN_QUANT_STATS_INIT`) before the call; the library writes at most that many bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_quant_stats {
    /// `sizeof(tern_quant_stats)`, set by the caller.
    pub struct_size: u32,
    /// Fraction of weights that are 0.
    pub sparsity: f64,
    /// Stored bits per weight, scales and padding included.
    pub bits_per_weight: f64,
    /// f32 bytes / packed bytes.
    pub compression_vs_f32: f64,
    /// f16 bytes / packed bytes.
    pub compression_vs_f16: f64,
    /// Smallest and largest stored scale.
    pub scale_min: f32,
    pub scale_max: f32,
    /// Root-mean-square of (input − ternary·scale).
    pub rmse: f64,
}

/// Options for `tern_gemm` / `tern_gemm_i8`. Initialize with `TERN_GEMM_OPTIONS_INIT`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_gemm_options {
    /// `sizeof(tern_gemm_options)`.
    pub struct_size: u32,
    /// A `tern_compat` value (default `TERN_COMPAT_DEFAULT`).
    pub compat: i32,
    /// Compute only output rows `[row_begin, row_end)`; other elements of `y` are not touched.
    /// `row_end = 0` means "all rows". For engines that split rows over their own threads.
    pub row_begin: i64,
    pub row_end: i64,
    /// Nullable: `rows` floats added to every token's output row.
    pub bias: *const f32,
}

/// Facts about a matrix (filled by `tern_matrix_info`). Set `struct_size`
/// (`TERN_MATRIX_PROPERTIES_INIT`) before the call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_matrix_properties {
    /// `sizeof(tern_matrix_properties)`, set by the caller.
    pub struct_size: u32,
    /// The `tern_format` and variant the matrix was created from.
    pub format: i32,
    pub variant: u32,
    pub rows: i64,
    pub cols: i64,
    /// Size of the packed file-format representation (what `tern_packed_size` returns).
    pub packed_bytes: usize,
    /// The tensor scale (one-scale formats) or the first scale.
    pub scale: f32,
    /// Static string naming the kernel this matrix runs with, e.g. "i2_s/scalar".
    pub kernel_name: *const c_char,
}

// SAFETY: all of these are repr(C), start with `u32 struct_size`, and any bytes are valid values
// (pointers are only dereferenced after their own checks).
unsafe impl Versioned for tern_context_options {
    /// The first version ended before `spin_us`.
    const V1_SIZE: usize = std::mem::offset_of!(Self, spin_us);
    const OLDER_SIZES: &'static [usize] = &[Self::V1_SIZE];
}
unsafe impl Versioned for tern_layout {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
unsafe impl Versioned for tern_quant_options {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
unsafe impl Versioned for tern_convert_options {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
unsafe impl Versioned for tern_quant_stats {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
unsafe impl Versioned for tern_gemm_options {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
unsafe impl Versioned for tern_matrix_properties {
    const V1_SIZE: usize = std::mem::size_of::<Self>();
}
