//! The driver-API path: device and module management, uploads and launches on the caller's
//! stream, through cudarc's `result`/`sys` layers (libcuda is loaded at run time).
//!
//! Every entry point first calls [`driver`], which checks `is_culib_present()` before any other
//! cudarc call (cudarc panics when libcuda is missing) and then `cuInit`; without a driver or a
//! GPU the result is [`CudaError::NoDevice`].

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::driver::{result, sys};

use super::layout::GpuWeights;
use super::plan::{self, Buffers, Call, Dtype, GemmParams};
use crate::error::Error;
use crate::format::Format;
use crate::matrix::Matrix;
use crate::quant::Compat;

const PTX: &str = concat!(
    include_str!(concat!(env!("OUT_DIR"), "/tern_kernels.ptx")),
    "\0"
);
const CUBIN_SM80: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tern_kernels.sm_80.cubin"));
const CUBIN_SM90: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/tern_kernels.sm_90.cubin"));

/// Why a CUDA call failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CudaError {
    /// No driver, or no GPU (`TERN_STATUS_NO_DEVICE`).
    NoDevice(String),
    /// The driver reported an error (`TERN_STATUS_CUDA_ERROR`).
    Driver(String),
    /// An argument or library error (its own status).
    Tern(Error),
}

impl From<Error> for CudaError {
    fn from(e: Error) -> Self {
        Self::Tern(e)
    }
}

impl fmt::Display for CudaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoDevice(m) | Self::Driver(m) => f.write_str(m),
            Self::Tern(e) => f.write_str(&e.message),
        }
    }
}

impl std::error::Error for CudaError {}

pub type CudaResult<T> = std::result::Result<T, CudaError>;

fn driver_error(what: &str, e: result::DriverError) -> CudaError {
    let name = e
        .error_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| format!("{:?}", e.0));
    let text = e
        .error_string()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let message = format!("{what}: {name} ({text})");
    if e.0 == sys::CUresult::CUDA_ERROR_NO_DEVICE {
        CudaError::NoDevice(message)
    } else {
        CudaError::Driver(message)
    }
}

/// Loads and initializes the driver once; `Err(NoDevice)` without one.
pub fn driver() -> CudaResult<()> {
    static INIT: OnceLock<CudaResult<()>> = OnceLock::new();
    INIT.get_or_init(|| {
        // SAFETY: only tries to dlopen libcuda; no other cudarc call happens before it succeeds.
        if !unsafe { sys::is_culib_present() } {
            return Err(CudaError::NoDevice(
                "no CUDA driver: libcuda.so (the NVIDIA driver) could not be loaded".into(),
            ));
        }
        result::init().map_err(|e| match driver_error("cuInit", e) {
            CudaError::Driver(m) => {
                CudaError::NoDevice(format!("the CUDA driver could not start: {m}"))
            }
            other => other,
        })
    })
    .clone()
}

/// Whether a driver and at least one GPU are present.
pub fn available() -> bool {
    driver().is_ok() && device_count().is_ok_and(|n| n > 0)
}

/// Number of CUDA devices (after [`driver`] succeeded).
pub fn device_count() -> CudaResult<i32> {
    driver()?;
    result::device::get_count().map_err(|e| driver_error("cuDeviceGetCount", e))
}

/// Makes `ctx` current on this thread until dropped (then restores the previous context).
struct CtxGuard;

impl CtxGuard {
    fn push(ctx: sys::CUcontext) -> CudaResult<Self> {
        // SAFETY: ctx is a retained primary context.
        unsafe { sys::cuCtxPushCurrent_v2(ctx) }
            .result()
            .map_err(|e| driver_error("cuCtxPushCurrent", e))?;
        Ok(Self)
    }
}

impl Drop for CtxGuard {
    fn drop(&mut self) {
        let mut old = std::ptr::null_mut();
        // SAFETY: pops what `push` pushed.
        let _ = unsafe { sys::cuCtxPopCurrent_v2(&mut old) };
    }
}

/// One GPU: its primary context and tern's module loaded there. Kept for the process lifetime.
pub struct Device {
    pub ordinal: i32,
    pub name: String,
    pub compute_capability: (i32, i32),
    /// Which embedded image the driver accepted ("sm_90 cubin", "sm_80 cubin", "PTX ...").
    pub image: &'static str,
    pub sm_count: i32,
    ctx: sys::CUcontext,
    funcs: [sys::CUfunction; 3],
}

// SAFETY: driver-API handles may be used from any thread (with the context made current).
unsafe impl Send for Device {}
unsafe impl Sync for Device {}

impl Device {
    /// The device `ordinal`, opened on first use.
    pub fn get(ordinal: i32) -> CudaResult<Arc<Device>> {
        let count = device_count()?;
        if count == 0 {
            return Err(CudaError::NoDevice("the CUDA driver reports no GPU".into()));
        }
        if ordinal < 0 || ordinal >= count {
            return Err(Error::invalid(format!(
                "device {ordinal} does not exist ({count} CUDA devices: 0..{count})"
            ))
            .into());
        }
        static DEVICES: OnceLock<Mutex<HashMap<i32, Arc<Device>>>> = OnceLock::new();
        let mut map = DEVICES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(d) = map.get(&ordinal) {
            return Ok(d.clone());
        }
        let d = Arc::new(Self::open(ordinal)?);
        map.insert(ordinal, d.clone());
        Ok(d)
    }

    fn open(ordinal: i32) -> CudaResult<Self> {
        let dev = result::device::get(ordinal).map_err(|e| driver_error("cuDeviceGet", e))?;
        let name =
            result::device::get_name(dev).unwrap_or_else(|_| format!("CUDA device {ordinal}"));
        let attr = |a| {
            // SAFETY: dev is a valid device handle.
            unsafe { result::device::get_attribute(dev, a) }
                .map_err(|e| driver_error("cuDeviceGetAttribute", e))
        };
        use sys::CUdevice_attribute::*;
        let cc = (
            attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?,
            attr(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?,
        );
        let sm_count = attr(CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?;
        if cc.0 < 8 {
            return Err(Error::unsupported(format!(
                "{name} has compute capability {}.{}; tern's CUDA kernels need 8.0 or newer (int8 mma.sync m16n8k32)",
                cc.0, cc.1
            ))
            .into());
        }
        // SAFETY: dev is valid; the primary context stays retained for the process lifetime.
        let ctx = unsafe { result::primary_ctx::retain(dev) }
            .map_err(|e| driver_error("cuDevicePrimaryCtxRetain", e))?;
        let _guard = CtxGuard::push(ctx)?;
        let (module, image) = load_module(cc)?;
        let mut funcs = [std::ptr::null_mut(); 3];
        for k in plan::GPU_KERNELS {
            // SAFETY: module is loaded.
            funcs[k as usize] =
                unsafe { result::module::get_function(module, k.symbol().to_owned()) }.map_err(
                    |e| driver_error(&format!("cuModuleGetFunction({:?})", k.symbol()), e),
                )?;
        }
        Ok(Self {
            ordinal,
            name,
            compute_capability: cc,
            image,
            sm_count,
            ctx,
            funcs,
        })
    }
}

/// Loads the cubin matching the GPU (sm_90 for 9.0, sm_80 for 8.x), or else the PTX, which the
/// driver compiles for any sm_80+ GPU. A cubin the driver refuses falls back to the PTX.
fn load_module(cc: (i32, i32)) -> CudaResult<(sys::CUmodule, &'static str)> {
    let cubin = match cc {
        (9, 0) => Some((CUBIN_SM90, "sm_90 cubin")),
        (8, _) => Some((CUBIN_SM80, "sm_80 cubin")),
        _ => None,
    };
    if let Some((bytes, label)) = cubin {
        // An 8-byte aligned copy (the ELF image is read in place by the driver).
        let mut aligned = vec![0u64; bytes.len().div_ceil(8)];
        // SAFETY: the destination holds at least bytes.len() bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                aligned.as_mut_ptr() as *mut u8,
                bytes.len(),
            )
        };
        // SAFETY: a complete cubin image.
        if let Ok(m) = unsafe { result::module::load_data(aligned.as_ptr() as *const c_void) } {
            return Ok((m, label));
        }
    }
    // SAFETY: NUL-terminated PTX text.
    let m = unsafe { result::module::load_data(PTX.as_ptr() as *const c_void) }
        .map_err(|e| driver_error("loading tern's PTX (cuModuleLoadData)", e))?;
    Ok((m, "PTX compute_80, JIT-compiled by the driver"))
}

/// A matrix uploaded to one GPU in the kernels' layout. Immutable; usable from any thread and
/// any stream of its device.
pub struct CudaMatrix {
    device: Arc<Device>,
    rows: usize,
    cols: usize,
    kp: usize,
    n_groups: usize,
    group_cols: usize,
    code_offset: u32,
    format: Format,
    w: sys::CUdeviceptr,
    scales: sys::CUdeviceptr,
    bytes: usize,
}

// SAFETY: device memory addresses are plain integers; the matrix is never written after upload.
unsafe impl Send for CudaMatrix {}
unsafe impl Sync for CudaMatrix {}

/// Copies a host slice into a new device allocation (context current).
fn alloc_copy<T>(src: &[T]) -> CudaResult<sys::CUdeviceptr> {
    let bytes = std::mem::size_of_val(src).max(1);
    // SAFETY: plain allocation and a synchronous copy of `src`.
    unsafe {
        let p = result::malloc_sync(bytes).map_err(|e| driver_error("cuMemAlloc", e))?;
        if let Err(e) = result::memcpy_htod_sync(p, src) {
            let _ = result::free_sync(p);
            return Err(driver_error("cuMemcpyHtoD", e));
        }
        Ok(p)
    }
}

/// One GEMM call on device buffers.
#[derive(Clone, Copy, Debug)]
pub struct GemmCall {
    /// `n_tokens` rows of `cols` values of `x_dtype`, row `t` at `t·x_stride` elements.
    pub x: sys::CUdeviceptr,
    pub x_dtype: Dtype,
    pub x_stride: usize,
    pub n_tokens: usize,
    /// `n_tokens` rows of `rows` values of `y_dtype`, row `t` at `t·y_stride` elements.
    pub y: sys::CUdeviceptr,
    pub y_dtype: Dtype,
    pub y_stride: usize,
    pub compat: Compat,
    /// f32[rows] on the device, or 0.
    pub bias: sys::CUdeviceptr,
    /// i32[n_tokens][rows] on the device for the exact integer dots (tests), or 0.
    pub dots: sys::CUdeviceptr,
    /// The caller's stream (null = the legacy default stream).
    pub stream: sys::CUstream,
}

impl CudaMatrix {
    /// Re-lays `m` out for the kernels and copies it to device `ordinal`.
    pub fn upload(m: &Matrix, ordinal: i32) -> CudaResult<Self> {
        let device = Device::get(ordinal)?;
        let gw = GpuWeights::from_matrix(m)?;
        plan::check_call(gw.rows, gw.kp, 1, 0, 0)?;
        let _guard = CtxGuard::push(device.ctx)?;
        let w = alloc_copy(&gw.words)?;
        let scales = match alloc_copy(&gw.scales) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: allocated above, never shared.
                let _ = unsafe { result::free_sync(w) };
                return Err(e);
            }
        };
        Ok(Self {
            bytes: gw.words.len() * 4 + gw.scales.len() * 4,
            device,
            rows: gw.rows,
            cols: gw.cols,
            kp: gw.kp,
            n_groups: gw.n_groups,
            group_cols: gw.group_cols,
            code_offset: gw.code_offset,
            format: m.layout().format(),
            w,
            scales,
        })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
    /// Device memory held (weights + scales).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// `y = W·x` the BitNet way (as `tern_gemm` with `call.compat`), enqueued on `call.stream`.
    ///
    /// # Safety
    /// The device pointers of `call` must be valid for the sizes it states, on this matrix's
    /// device, and `call.stream` must be a live stream of that device's primary context (or null).
    pub unsafe fn gemm(&self, call: &GemmCall) -> CudaResult<()> {
        let arith = plan::resolve_arith(self.format, call.compat, self.n_groups)?;
        plan::check_call(
            self.rows,
            self.kp,
            call.n_tokens,
            call.x_stride,
            call.y_stride,
        )?;
        if call.x_stride < self.cols || call.y_stride < self.rows {
            return Err(Error::invalid(format!(
                "x_stride {} < cols {} or y_stride {} < rows {}",
                call.x_stride, self.cols, call.y_stride, self.rows
            ))
            .into());
        }
        let plan_call = Call {
            rows: self.rows,
            cols: self.cols,
            kp: self.kp,
            n_groups: self.n_groups,
            group_cols: self.group_cols,
            code_offset: self.code_offset,
            n_tokens: call.n_tokens,
            x_dtype: call.x_dtype,
            x_stride: call.x_stride,
            y_dtype: call.y_dtype,
            y_stride: call.y_stride,
            arith,
        };
        let ws = plan::workspace(self.kp, call.n_tokens);
        let _guard = CtxGuard::push(self.device.ctx)?;
        let stream = call.stream;
        // Stream-ordered scratch; devices without memory pools get a plain allocation and a
        // stream synchronization before it is freed.
        // SAFETY: allocation only.
        let (base, pooled) = match unsafe { result::malloc_async(stream, ws.bytes) } {
            Ok(p) => (p, true),
            Err(_) => (
                unsafe { result::malloc_sync(ws.bytes) }
                    .map_err(|e| driver_error("cuMemAlloc", e))?,
                false,
            ),
        };
        let buffers = Buffers {
            w: self.w,
            w_scales: self.scales,
            bias: call.bias,
            x: call.x,
            y: call.y,
            dots: call.dots,
            workspace: base,
        };
        let mut params: GemmParams = plan::params(&plan_call, &buffers);
        let mut launched = Ok(());
        for l in plan::launches(self.rows, call.n_tokens) {
            let mut args = [&mut params as *mut GemmParams as *mut c_void];
            // SAFETY: the function belongs to the current context; params is copied at launch.
            let r = unsafe {
                result::launch_kernel(
                    self.device.funcs[l.kernel as usize],
                    (l.grid[0], l.grid[1], l.grid[2]),
                    (l.block[0], l.block[1], l.block[2]),
                    0,
                    stream,
                    &mut args,
                )
            };
            if let Err(e) = r {
                launched = Err(driver_error(
                    &format!("launching {:?}", l.kernel.symbol()),
                    e,
                ));
                break;
            }
        }
        // SAFETY: frees the scratch after the kernels (stream order, or after a sync).
        let freed = unsafe {
            if pooled {
                result::free_async(base, stream).map_err(|e| driver_error("cuMemFreeAsync", e))
            } else {
                sys::cuStreamSynchronize(stream)
                    .result()
                    .map_err(|e| driver_error("cuStreamSynchronize", e))
                    .and(result::free_sync(base).map_err(|e| driver_error("cuMemFree", e)))
            }
        };
        launched.and(freed)
    }
}

impl Drop for CudaMatrix {
    fn drop(&mut self) {
        if let Ok(_guard) = CtxGuard::push(self.device.ctx) {
            // SAFETY: allocations owned by this matrix.
            unsafe {
                let _ = result::free_sync(self.w);
                let _ = result::free_sync(self.scales);
            }
        }
    }
}
