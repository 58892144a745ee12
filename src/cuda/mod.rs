//! The CUDA backend (feature `cuda`): W2A8 kernels for NVIDIA GPUs (sm_80 and newer).
//!
//! * `cuda/tern_kernels.cu`: activation quantization, a dp4a GEMV for ≤ 8 tokens and an int8
//!   tensor-core GEMM (`mma.sync` m16n8k32) for larger batches; committed as PTX (compute_80)
//!   plus sm_80/sm_90 cubins in `cuda/ptx/`, embedded in the library (`build.rs`).
//! * [`layout`]: the GPU weight layout, made on the host from any tern format.
//! * [`plan`]: kernel parameters, workspace and launch list of a call (shared with the
//!   emulated kernels of the tests, `tests/cuda_emu.rs`).
//! * [`driver`]: the driver-API path through cudarc, loaded at run time. Without a driver or
//!   GPU every entry point returns [`CudaError::NoDevice`]; nothing panics.

pub mod driver;
pub mod layout;
pub mod plan;

pub use driver::{CudaError, CudaMatrix, GemmCall, available};
