//! `tern_cuda_*`: the CUDA backend's C API. Every build exports these functions (one ABI);
//! a library built without the cargo feature `cuda` answers every call with
//! `TERN_STATUS_NO_DEVICE` ("built without CUDA support") and `tern_cuda_available()` = false.
//!
//! With the feature, every function first checks for a CUDA driver (and, where it needs one, a
//! GPU): without them it returns `TERN_STATUS_NO_DEVICE` with a message, before looking at its
//! arguments, and never panics. Driver failures are `TERN_STATUS_CUDA_ERROR`.

use std::ffi::c_void;

use super::args::{Versioned, handle_out, positive, read_options, reference, stride};
use super::boundary::{status_call, value_call};
use super::context::tern_context;
use super::matrix::tern_matrix;
use super::types::tern_status;
use crate::error::{Error, ErrorKind, Result};
use crate::quant::Compat;
use imp::CudaError;

/// One `tern_cuda_gemm_ex` call, checked except for what needs the device.
#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
struct RawCall {
    x: u64,
    x_dtype: i32,
    x_stride: usize,
    n_tokens: usize,
    y: u64,
    y_dtype: i32,
    y_stride: usize,
    compat: Compat,
    bias: u64,
    stream: *mut c_void,
}

#[cfg(feature = "cuda")]
mod imp {
    pub use crate::cuda::CudaMatrix as Inner;
    use crate::cuda::driver;
    pub use crate::cuda::driver::CudaError;
    use crate::cuda::plan::Dtype;
    use crate::matrix::Matrix;

    pub fn available() -> bool {
        driver::available()
    }
    pub fn check_device() -> Result<(), CudaError> {
        driver::device_count().map(|_| ())
    }
    pub fn upload(m: &Matrix, device: i32) -> Result<Inner, CudaError> {
        Inner::upload(m, device)
    }
    pub fn dims(m: &Inner) -> (usize, usize) {
        (m.rows(), m.cols())
    }
    /// # Safety
    /// The caller's contract of `tern_cuda_gemm_ex`.
    pub unsafe fn gemm(m: &Inner, c: &super::RawCall) -> Result<(), CudaError> {
        let call = crate::cuda::GemmCall {
            x: c.x,
            x_dtype: Dtype::from_i32(c.x_dtype, "x_dtype")?,
            x_stride: c.x_stride,
            n_tokens: c.n_tokens,
            y: c.y,
            y_dtype: Dtype::from_i32(c.y_dtype, "y_dtype")?,
            y_stride: c.y_stride,
            compat: c.compat,
            bias: c.bias,
            dots: 0,
            stream: c.stream as _,
        };
        // SAFETY: forwarded from the caller.
        unsafe { m.gemm(&call) }
    }
}

#[cfg(not(feature = "cuda"))]
mod imp {
    use crate::error::Error;
    use crate::matrix::Matrix;

    #[allow(dead_code)]
    pub enum CudaError {
        NoDevice(String),
        Driver(String),
        Tern(Error),
    }
    impl From<Error> for CudaError {
        fn from(e: Error) -> Self {
            Self::Tern(e)
        }
    }
    /// No value exists: without the feature no upload succeeds.
    pub enum Inner {}

    pub fn available() -> bool {
        false
    }
    pub fn check_device() -> Result<(), CudaError> {
        Err(CudaError::NoDevice(
            "this tern library was built without CUDA support (cargo feature `cuda`): every tern_cuda_* call returns TERN_STATUS_NO_DEVICE".into(),
        ))
    }
    pub fn upload(_: &Matrix, _: i32) -> Result<Inner, CudaError> {
        check_device().map(|_| unreachable!("check_device fails without the feature"))
    }
    pub fn dims(m: &Inner) -> (usize, usize) {
        match *m {}
    }
    /// # Safety
    /// Never runs: `Inner` has no values.
    pub unsafe fn gemm(m: &Inner, _: &super::RawCall) -> Result<(), CudaError> {
        match *m {}
    }
}

/// Element types of CUDA activations and outputs (`x_dtype`, `y_dtype`).
#[repr(i32)]
#[derive(Clone, Copy, Debug)]
pub enum tern_dtype {
    /// IEEE binary32.
    TERN_DTYPE_F32 = 0,
    /// IEEE binary16 (outputs rounded to nearest even).
    TERN_DTYPE_F16 = 1,
    /// bfloat16 (outputs rounded to nearest even).
    TERN_DTYPE_BF16 = 2,
}

/// A ternary matrix in GPU memory (`tern_cuda_matrix_upload`). Immutable: any number of threads
/// and streams of its device may multiply with it at once. Free with `tern_cuda_matrix_destroy`.
pub struct tern_cuda_matrix {
    inner: imp::Inner,
}

/// Options of `tern_cuda_gemm_ex` (`TERN_CUDA_GEMM_OPTIONS_INIT`). NULL = all defaults.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct tern_cuda_gemm_options {
    /// `sizeof(tern_cuda_gemm_options)`.
    pub struct_size: u32,
    /// A `tern_compat` value (default `TERN_COMPAT_DEFAULT`; `TERN_COMPAT_GGML` is not available).
    pub compat: i32,
    /// Row strides of `d_x` and `d_y` in elements; 0 = packed (`cols`, `rows`).
    pub x_stride: i64,
    pub y_stride: i64,
    /// Nullable DEVICE pointer: `rows` floats added to every token's output row.
    pub bias: *const f32,
}

// SAFETY: repr(C), leading u32 struct_size, plain data.
unsafe impl Versioned for tern_cuda_gemm_options {
    const V1_SIZE: usize = std::mem::size_of::<tern_cuda_gemm_options>();
}

impl Default for tern_cuda_gemm_options {
    fn default() -> Self {
        Self {
            struct_size: Self::V1_SIZE as u32,
            compat: 0,
            x_stride: 0,
            y_stride: 0,
            bias: std::ptr::null(),
        }
    }
}

/// Runs a CUDA body: like `status_call`, plus NO_DEVICE and CUDA_ERROR statuses.
fn cuda_call(body: impl FnOnce() -> std::result::Result<(), CudaError>) -> tern_status {
    let mut device_status = None;
    let status = status_call(|| {
        body().map_err(|e| match e {
            CudaError::Tern(e) => e,
            CudaError::NoDevice(m) => {
                device_status = Some(tern_status::TERN_STATUS_NO_DEVICE);
                Error::new(ErrorKind::Unsupported, m)
            }
            CudaError::Driver(m) => {
                device_status = Some(tern_status::TERN_STATUS_CUDA_ERROR);
                Error::new(ErrorKind::Internal, m)
            }
        })
    });
    match (status, device_status) {
        (tern_status::TERN_STATUS_OK, _) | (_, None) => status,
        (_, Some(s)) => s,
    }
}

fn lift<T>(r: Result<T>) -> std::result::Result<T, CudaError> {
    r.map_err(CudaError::Tern)
}

/// True when a CUDA driver and at least one GPU are present (the CUDA functions can work).
/// Never fails; without a driver it returns false. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn tern_cuda_available() -> bool {
    value_call(false, || Ok(imp::available()))
}

/// Copies `matrix` (any format) to GPU `device` in the CUDA kernels' layout and stores a new
/// handle in `*out` (set to NULL first). `ctx` is accepted for symmetry and may be NULL.
/// Needs a GPU of compute capability 8.0 or newer (else `TERN_STATUS_UNSUPPORTED`).
/// Thread-safe.
///
/// # Safety
/// `matrix` must be a live `tern_matrix`; `out` must be writable.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_cuda_matrix_upload(
    ctx: *const tern_context,
    matrix: *const tern_matrix,
    device: i32,
    out: *mut *mut tern_cuda_matrix,
) -> tern_status {
    let _ = ctx;
    cuda_call(|| {
        // `*out` is NULL before the device check can fail; its own error comes after that check.
        let out_checked = unsafe { handle_out(out, "out") };
        imp::check_device()?;
        lift(out_checked)?;
        let m = lift(unsafe { reference(matrix, "matrix") })?;
        let inner = imp::upload(&m.inner, device)?;
        unsafe { *out = Box::into_raw(Box::new(tern_cuda_matrix { inner })) };
        Ok(())
    })
}

/// `tern_cuda_gemm_ex` with default options (TERN_COMPAT_DEFAULT, packed rows, no bias).
///
/// # Safety
/// As for `tern_cuda_gemm_ex`.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_cuda_gemm(
    matrix: *const tern_cuda_matrix,
    d_x: *const c_void,
    x_dtype: i32,
    n_tokens: i64,
    d_y: *mut c_void,
    y_dtype: i32,
    cuda_stream: *mut c_void,
) -> tern_status {
    unsafe {
        tern_cuda_gemm_ex(
            matrix,
            d_x,
            x_dtype,
            n_tokens,
            d_y,
            y_dtype,
            cuda_stream,
            std::ptr::null(),
        )
    }
}

/// `y[t][r] = Σ_k W[r][k]·x[t][k]` on the GPU, the BitNet way, as `tern_gemm` computes it
/// (activations quantized per token on the GPU with the rounding of `opts->compat`; the float
/// epilogue is the same formula, so f32 outputs equal `tern_gemm`'s bit for bit). `d_x` and `d_y`
/// are DEVICE pointers (`n_tokens` rows of `cols` / `rows` elements of `x_dtype` / `y_dtype`,
/// `TERN_DTYPE_*`). The work is enqueued on `cuda_stream` (a `CUstream`/`cudaStream_t` of the
/// device's primary context, i.e. the runtime API's; NULL = the legacy default stream) and the
/// call returns without waiting; scratch memory is stream-ordered. Thread-safe.
///
/// # Safety
/// The device pointers must be valid for the stated sizes on the matrix's device.
#[must_use]
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn tern_cuda_gemm_ex(
    matrix: *const tern_cuda_matrix,
    d_x: *const c_void,
    x_dtype: i32,
    n_tokens: i64,
    d_y: *mut c_void,
    y_dtype: i32,
    cuda_stream: *mut c_void,
    opts: *const tern_cuda_gemm_options,
) -> tern_status {
    cuda_call(|| {
        imp::check_device()?;
        let m = &lift(unsafe { reference(matrix, "matrix") })?.inner;
        if d_x.is_null() || d_y.is_null() {
            let which = if d_x.is_null() { "d_x" } else { "d_y" };
            return Err(Error::new(ErrorKind::NullPointer, format!("{which} is NULL")).into());
        }
        let o = lift(unsafe { read_options(opts, tern_cuda_gemm_options::default(), "opts") })?;
        let (rows, cols) = imp::dims(m);
        let call = RawCall {
            x: d_x as u64,
            x_dtype,
            x_stride: stride(o.x_stride, cols, "opts->x_stride")?,
            n_tokens: positive(n_tokens, "n_tokens")?,
            y: d_y as u64,
            y_dtype,
            y_stride: stride(o.y_stride, rows, "opts->y_stride")?,
            compat: Compat::from_i32(o.compat)?,
            bias: o.bias as u64,
            stream: cuda_stream,
        };
        // SAFETY: the caller's contract on the device pointers and the stream.
        unsafe { imp::gemm(m, &call) }
    })
}

/// Frees a CUDA matrix (its device memory, with cuMemFree). Don't destroy it while kernels using
/// it may still run on some stream. NULL is a no-op.
///
/// # Safety
/// Non-NULL `matrix` must come from `tern_cuda_matrix_upload` and not be destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_cuda_matrix_destroy(matrix: *mut tern_cuda_matrix) {
    if !matrix.is_null() {
        value_call((), || {
            // SAFETY: the caller hands back ownership.
            drop(unsafe { Box::from_raw(matrix) });
            Ok(())
        });
    }
}
