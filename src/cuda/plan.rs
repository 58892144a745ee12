//! What a CUDA GEMM launches, independent of who runs it: the kernel parameter block (mirrors
//! `TernCudaParams` in cuda/tern_kernels.cu), the workspace layout and the launch list. The
//! driver path (`driver.rs`) and the emulated kernels in the tests use the same plan.

use std::ffi::CStr;

use crate::error::{CEnum, Error, Result};
use crate::quant::activation::Arith;

/// Token counts up to this use the GEMV kernel (dp4a); larger batches the tensor-core GEMM.
pub const GEMV_MAX_TOKENS: usize = 8;
/// Tokens per GEMV block and rows per GEMV block (one warp each): `TERN_GEMV_*` in the .cu.
pub const GEMV_TOKENS: usize = 4;
pub const GEMV_ROWS: usize = 4;
/// GEMM block tile (`TERN_GM_BM`, `TERN_GM_BN`).
pub const GEMM_BM: usize = 64;
pub const GEMM_BN: usize = 32;
/// Largest token count of one call (keeps every grid dimension and int32 index in range).
pub const MAX_TOKENS: usize = 1 << 20;

/// Element types of activations and outputs (the C API's `tern_dtype`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    F32 = 0,
    F16 = 1,
    Bf16 = 2,
}

crate::c_enum!(
    Dtype,
    "dtype",
    [
        (Dtype::F32, "TERN_DTYPE_F32"),
        (Dtype::F16, "TERN_DTYPE_F16"),
        (Dtype::Bf16, "TERN_DTYPE_BF16"),
    ]
);

impl Dtype {
    pub fn from_i32(v: i32, what: &str) -> Result<Self> {
        Self::from_c_as(v.into(), || format!("{what} = {v}"))
    }
    pub fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }
}

/// The kernel's code for an arithmetic (`TERN_ARITH_*` in the .cu).
pub fn arith_code(arith: Arith) -> Result<i32> {
    match arith {
        Arith::Default => Ok(0),
        Arith::I2sCurrent => Ok(1),
        Arith::I2sLegacy => Ok(2),
        Arith::Lut => Ok(3),
        Arith::Ggml | Arith::GgmlQ8_0 => Err(Error::unsupported(
            "TERN_COMPAT_GGML (Q8_K / Q8_0 activation blocks) has no CUDA kernel; use TERN_COMPAT_DEFAULT",
        )),
    }
}

/// The single parameter of every kernel; device addresses as `u64` (host addresses when emulated).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct GemmParams {
    pub w: u64,
    pub w_scales: u64,
    pub bias: u64,
    pub x: u64,
    pub q: u64,
    pub act_scale: u64,
    pub act_sum: u64,
    pub y: u64,
    pub dots: u64,
    pub x_stride: i64,
    pub y_stride: i64,
    pub m: i32,
    pub k: i32,
    pub kp: i32,
    pub t: i32,
    pub n_groups: i32,
    pub group_cols: i32,
    pub code_offset: i32,
    pub x_dtype: i32,
    pub y_dtype: i32,
    pub arith: i32,
}

/// The kernels of cuda/tern_kernels.cu (ids as in tests/cuda_emu/harness.cpp).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GpuKernel {
    QuantizeAct = 0,
    Gemv = 1,
    GemmMma = 2,
}

/// Every kernel, in id order.
pub const GPU_KERNELS: [GpuKernel; 3] =
    [GpuKernel::QuantizeAct, GpuKernel::Gemv, GpuKernel::GemmMma];

impl GpuKernel {
    pub fn symbol(self) -> &'static CStr {
        match self {
            Self::QuantizeAct => c"tern_quantize_act",
            Self::Gemv => c"tern_gemv",
            Self::GemmMma => c"tern_gemm_mma",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Launch {
    pub kernel: GpuKernel,
    pub grid: [u32; 3],
    pub block: [u32; 3],
}

/// Byte offsets of the per-call scratch buffer: `q` (`t · kp` int8), `act_scale` (`t` f32),
/// `act_sum` (`t` i32); each 256-byte aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workspace {
    pub q: usize,
    pub act_scale: usize,
    pub act_sum: usize,
    pub bytes: usize,
}

pub fn workspace(kp: usize, n_tokens: usize) -> Workspace {
    let q_bytes = (n_tokens * kp).next_multiple_of(256);
    let f_bytes = (n_tokens * 4).next_multiple_of(256);
    Workspace {
        q: 0,
        act_scale: q_bytes,
        act_sum: q_bytes + f_bytes,
        bytes: q_bytes + 2 * f_bytes,
    }
}

/// Quantize the activations, then GEMV (≤ [`GEMV_MAX_TOKENS`] tokens) or GEMM.
pub fn launches(rows: usize, n_tokens: usize) -> Vec<Launch> {
    let quant = Launch {
        kernel: GpuKernel::QuantizeAct,
        grid: [n_tokens as u32, 1, 1],
        block: [256, 1, 1],
    };
    let main = if n_tokens <= GEMV_MAX_TOKENS {
        Launch {
            kernel: GpuKernel::Gemv,
            grid: [
                rows.div_ceil(GEMV_ROWS) as u32,
                n_tokens.div_ceil(GEMV_TOKENS) as u32,
                1,
            ],
            block: [(GEMV_ROWS * 32) as u32, 1, 1],
        }
    } else {
        Launch {
            kernel: GpuKernel::GemmMma,
            grid: [
                rows.div_ceil(GEMM_BM) as u32,
                n_tokens.div_ceil(GEMM_BN) as u32,
                1,
            ],
            block: [128, 1, 1],
        }
    };
    vec![quant, main]
}

/// Checks a call's sizes: everything the kernels index with int32 stays in range.
pub fn check_call(
    rows: usize,
    kp: usize,
    n_tokens: usize,
    x_stride: usize,
    y_stride: usize,
) -> Result<()> {
    if n_tokens == 0 || n_tokens > MAX_TOKENS {
        return Err(Error::invalid(format!(
            "n_tokens = {n_tokens} is outside [1, {MAX_TOKENS}]"
        )));
    }
    if rows > i32::MAX as usize / 2 || kp > i32::MAX as usize / 2 {
        return Err(Error::invalid(format!(
            "a {rows}×{kp} matrix is too large for the CUDA kernels"
        )));
    }
    if x_stride > i64::MAX as usize / 4 || y_stride > i64::MAX as usize / 4 {
        return Err(Error::invalid("stride too large"));
    }
    Ok(())
}

/// The arithmetic a CUDA GEMM runs for this matrix: as `tern_gemm` resolves `compat` for the
/// format; per-block scales take `TERN_COMPAT_DEFAULT` only (as on the CPU).
pub fn resolve_arith(
    format: crate::format::Format,
    compat: crate::quant::Compat,
    n_groups: usize,
) -> Result<i32> {
    let arith = compat.arith(format)?;
    let code = arith_code(arith)?;
    if n_groups != 0 && arith != Arith::Default {
        return Err(Error::unsupported(format!(
            "{} with per-block scales ({}) takes TERN_COMPAT_DEFAULT only",
            compat.name(),
            format.name()
        )));
    }
    Ok(code)
}

/// The buffers of one call (device addresses, or host addresses when emulated).
#[derive(Clone, Copy, Debug, Default)]
pub struct Buffers {
    pub w: u64,
    pub w_scales: u64,
    /// 0 = no bias.
    pub bias: u64,
    pub x: u64,
    pub y: u64,
    /// 0 = don't write the exact dots.
    pub dots: u64,
    /// Base of a [`workspace`] of the call's size.
    pub workspace: u64,
}

/// One call's shapes and element types.
#[derive(Clone, Copy, Debug)]
pub struct Call {
    pub rows: usize,
    pub cols: usize,
    pub kp: usize,
    /// 0 for one weight scale, else `cols / group_cols` blocks per row.
    pub n_groups: usize,
    /// Columns per weight scale (0 for one scale; `layout::group_cols_supported`).
    pub group_cols: usize,
    /// The weight words' code offset (`layout::CODE_OFFSET_*`).
    pub code_offset: u32,
    pub n_tokens: usize,
    pub x_dtype: Dtype,
    pub x_stride: usize,
    pub y_dtype: Dtype,
    pub y_stride: usize,
    pub arith: i32,
}

/// The kernel parameter block of a call (checked by [`check_call`] first).
pub fn params(call: &Call, b: &Buffers) -> GemmParams {
    let ws = workspace(call.kp, call.n_tokens);
    GemmParams {
        w: b.w,
        w_scales: b.w_scales,
        bias: b.bias,
        x: b.x,
        q: b.workspace + ws.q as u64,
        act_scale: b.workspace + ws.act_scale as u64,
        act_sum: b.workspace + ws.act_sum as u64,
        y: b.y,
        dots: b.dots,
        x_stride: call.x_stride as i64,
        y_stride: call.y_stride as i64,
        m: call.rows as i32,
        k: call.cols as i32,
        kp: call.kp as i32,
        t: call.n_tokens as i32,
        n_groups: call.n_groups as i32,
        group_cols: call.group_cols as i32,
        code_offset: call.code_offset as i32,
        x_dtype: call.x_dtype as i32,
        y_dtype: call.y_dtype as i32,
        arith: call.arith,
    }
}
