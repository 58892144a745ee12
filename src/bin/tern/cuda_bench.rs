//! `tern bench --cuda`: the CUDA kernels (W2A8: GEMV for ≤ 8 tokens, int8 tensor-core GEMM
//! above) on the bench shapes, against a bf16 cuBLAS GEMM (cublasGemmEx, bf16 in/out, f32
//! compute) of the same dequantized weights. Activations and outputs are bf16 for both. Each
//! point: one result checked against tern's CPU GEMM (bit-exact after bf16 rounding), warm-up,
//! then the mean of repeated calls timed with CUDA events on one stream.

use super::args::BenchArgs;

#[cfg(not(feature = "cuda"))]
pub fn run(_: &BenchArgs) -> Result<(), String> {
    Err("this tern was built without the `cuda` feature; rebuild with `cargo build --release --features cuda`".into())
}

#[cfg(feature = "cuda")]
pub fn run(b: &BenchArgs) -> Result<(), String> {
    imp::run(b)
}

#[cfg(feature = "cuda")]
mod imp {
    use std::ffi::c_void;
    use std::time::Instant;

    use cudarc::cublas::{result as blas, sys as blas_sys};
    use cudarc::driver::{result, sys};
    use half::bf16;
    use tern::context::Context;
    use tern::cuda::driver::{Device, device_count};
    use tern::cuda::plan::{Dtype, GEMV_MAX_TOKENS};
    use tern::cuda::{CudaMatrix, GemmCall};
    use tern::format::{I2sVariant, Layout, Shape};
    use tern::matrix::{GemmOptions, GemmOutput, Matrix};
    use tern::quant::{Compat, QuantConfig, quantize_packed};

    use super::BenchArgs;

    fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
        move |e| format!("{what}: {e}")
    }

    struct Rng(u64);
    impl Rng {
        fn normal(&mut self) -> f32 {
            let mut s = 0.0;
            for _ in 0..4 {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                s += (self.0 >> 40) as f32 / (1u64 << 24) as f32;
            }
            s - 2.0
        }
    }

    /// Device buffer freed on drop.
    struct Buf(sys::CUdeviceptr);
    impl Buf {
        fn from<T>(v: &[T]) -> Result<Self, String> {
            unsafe {
                let p = result::malloc_sync(std::mem::size_of_val(v)).map_err(err("cuMemAlloc"))?;
                result::memcpy_htod_sync(p, v).map_err(err("cuMemcpyHtoD"))?;
                Ok(Self(p))
            }
        }
        fn zeroed(bytes: usize) -> Result<Self, String> {
            unsafe {
                let p = result::malloc_sync(bytes).map_err(err("cuMemAlloc"))?;
                result::memset_d8_sync(p, 0, bytes).map_err(err("cuMemset"))?;
                Ok(Self(p))
            }
        }
    }
    impl Drop for Buf {
        fn drop(&mut self) {
            let _ = unsafe { result::free_sync(self.0) };
        }
    }

    /// Mean microseconds per call of `f` on `stream`: 3 warm-up calls, then batches until
    /// `min_s` seconds or `max_reps` calls.
    fn time(
        stream: sys::CUstream,
        quick: bool,
        mut f: impl FnMut() -> Result<(), String>,
    ) -> Result<f64, String> {
        for _ in 0..3 {
            f()?;
        }
        unsafe { result::stream::synchronize(stream) }.map_err(err("sync"))?;
        let (min_s, min_reps) = if quick { (0.02, 5) } else { (0.3, 20) };
        let start = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
            .map_err(err("cuEventCreate"))?;
        let stop = result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
            .map_err(err("cuEventCreate"))?;
        let wall = Instant::now();
        let mut reps = 0usize;
        let mut total_ms = 0.0f64;
        while reps < min_reps || wall.elapsed().as_secs_f64() < min_s {
            let n = 10;
            unsafe { result::event::record(start, stream) }.map_err(err("cuEventRecord"))?;
            for _ in 0..n {
                f()?;
            }
            unsafe { result::event::record(stop, stream) }.map_err(err("cuEventRecord"))?;
            unsafe { result::event::synchronize(stop) }.map_err(err("cuEventSynchronize"))?;
            total_ms += unsafe { result::event::elapsed(start, stop) }
                .map_err(err("cuEventElapsedTime"))? as f64;
            reps += n;
            if reps >= 100_000 {
                break;
            }
        }
        unsafe {
            let _ = result::event::destroy(start);
            let _ = result::event::destroy(stop);
        }
        Ok(total_ms * 1000.0 / reps as f64)
    }

    struct Row {
        rows: usize,
        cols: usize,
        tokens: usize,
        kernel: &'static str,
        tern_us: f64,
        cublas_us: Option<f64>,
        exact: bool,
    }

    /// The device, its stream and (where libcublas loads) a cuBLAS handle on that stream.
    struct Gpu {
        device: std::sync::Arc<Device>,
        stream: sys::CUstream,
        blas: Option<blas_sys::cublasHandle_t>,
    }

    impl Gpu {
        fn open() -> Result<Self, String> {
            let n = device_count().map_err(|e| format!("no CUDA device: {e}"))?;
            if n == 0 {
                return Err("no CUDA device: the driver reports no GPU".into());
            }
            let device = Device::get(0).map_err(|e| format!("CUDA device 0: {e}"))?;
            result::init().map_err(err("cuInit"))?;
            let dev = result::device::get(0).map_err(err("cuDeviceGet"))?;
            let stream = unsafe {
                let ctx =
                    result::primary_ctx::retain(dev).map_err(err("cuDevicePrimaryCtxRetain"))?;
                result::ctx::set_current(ctx).map_err(err("cuCtxSetCurrent"))?;
                result::stream::create(result::stream::StreamKind::NonBlocking)
                    .map_err(err("cuStreamCreate"))?
            };
            let blas = if unsafe { blas_sys::is_culib_present() } {
                let h = blas::create_handle().map_err(err("cublasCreate"))?;
                unsafe { blas::set_stream(h, stream as _) }.map_err(err("cublasSetStream"))?;
                Some(h)
            } else {
                None
            };
            Ok(Self {
                device,
                stream,
                blas,
            })
        }
    }

    impl Drop for Gpu {
        fn drop(&mut self) {
            if let Some(h) = self.blas {
                let _ = unsafe { blas::destroy_handle(h) };
            }
        }
    }

    pub fn run(b: &BenchArgs) -> Result<(), String> {
        let gpu = Gpu::open()?;
        let device = &gpu.device;
        eprintln!(
            "tern bench --cuda: {} (compute capability {}.{}, {} SMs), kernels from the {}",
            device.name,
            device.compute_capability.0,
            device.compute_capability.1,
            device.sm_count,
            device.image
        );
        if gpu.blas.is_none() {
            eprintln!(
                "cuBLAS not found (libcublas.so.12 / libcublas.so): no bf16 baseline. `pip install nvidia-cublas-cu12` and add its lib/ to LD_LIBRARY_PATH"
            );
        }
        let mut out = Vec::new();
        for &(rows, cols) in &b.shapes {
            for row in bench_shape(&gpu, b, rows, cols)? {
                if !b.json {
                    print_row(&row, out.is_empty());
                }
                out.push(row);
            }
        }
        if b.json {
            print_json(device, &out);
        }
        if out.iter().any(|r| !r.exact) {
            return Err(
                "some GPU results differ from tern's CPU GEMM (see the 'exact' column)".into(),
            );
        }
        Ok(())
    }

    /// One shape at every token count of `b`: an I2_S matrix of random weights, uploaded, its
    /// GPU result checked once against the CPU GEMM (bf16 of the f32 result, bit for bit), then
    /// timed against cuBLAS on the same weights dequantized to bf16.
    fn bench_shape(gpu: &Gpu, b: &BenchArgs, rows: usize, cols: usize) -> Result<Vec<Row>, String> {
        let ctx = Context::global().map_err(|e| e.message)?;
        let layout = Layout::I2s(I2sVariant::X86);
        let shape = Shape::new(rows as i64, cols as i64).map_err(|e| e.message)?;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (rows * 31 + cols) as u64);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.02).collect();
        let cfg = QuantConfig::default();
        let (packed, _) = quantize_packed(layout, shape, &w, &cfg).map_err(|e| e.message)?;
        let matrix = Matrix::from_packed(ctx, layout, shape, &packed).map_err(|e| e.message)?;
        let cm = CudaMatrix::upload(&matrix, 0).map_err(|e| format!("upload: {e}"))?;
        let mut deq = vec![0f32; rows * cols];
        layout
            .dequantize(shape, &packed, &mut deq)
            .map_err(|e| e.message)?;
        let w_bf16: Vec<bf16> = deq.iter().map(|&v| bf16::from_f32(v)).collect();
        let w_dev = Buf::from(&w_bf16)?;
        let stream = gpu.stream;
        let mut out = Vec::new();
        for &tokens in &b.tokens {
            let x: Vec<f32> = (0..tokens * cols).map(|_| rng.normal()).collect();
            let x_bf16: Vec<bf16> = x.iter().map(|&v| bf16::from_f32(v)).collect();
            let x_cpu: Vec<f32> = x_bf16.iter().map(|v| v.to_f32()).collect();
            let x_dev = Buf::from(&x_bf16)?;
            let y_dev = Buf::zeroed(tokens * rows * 2)?;
            let call = GemmCall {
                x: x_dev.0,
                x_dtype: Dtype::Bf16,
                x_stride: cols,
                n_tokens: tokens,
                y: y_dev.0,
                y_dtype: Dtype::Bf16,
                y_stride: rows,
                compat: Compat::Default,
                bias: 0,
                dots: 0,
                stream,
            };
            unsafe { cm.gemm(&call) }.map_err(|e| format!("tern_cuda_gemm: {e}"))?;
            unsafe { result::stream::synchronize(stream) }.map_err(err("sync"))?;
            let mut got = vec![0u16; tokens * rows];
            unsafe { result::memcpy_dtoh_sync(&mut got, y_dev.0) }.map_err(err("cuMemcpyDtoH"))?;
            let mut y_cpu = vec![0f32; tokens * rows];
            let y = GemmOutput {
                y: &mut y_cpu,
                n_tokens: tokens,
                stride: rows,
            };
            matrix
                .gemm(ctx, &x_cpu, cols, y, &GemmOptions::default())
                .map_err(|e| e.message)?;
            let exact = got
                .iter()
                .zip(&y_cpu)
                .all(|(&g, &c)| g == bf16::from_f32(c).to_bits());
            let tern_us = time(stream, b.quick, || {
                unsafe { cm.gemm(&call) }.map_err(|e| e.to_string())
            })?;
            let cublas_us = match gpu.blas {
                None => None,
                Some(h) => Some(cublas_time(
                    h,
                    stream,
                    b.quick,
                    (rows, cols, tokens),
                    &w_dev,
                    &x_dev,
                )?),
            };
            let kernel = if tokens <= GEMV_MAX_TOKENS {
                "gemv (dp4a)"
            } else {
                "gemm (mma s8)"
            };
            out.push(Row {
                rows,
                cols,
                tokens,
                kernel,
                tern_us,
                cublas_us,
                exact,
            });
        }
        Ok(out)
    }

    /// Microseconds of cuBLAS's bf16 GEMM (f32 compute) of the same product.
    fn cublas_time(
        h: blas_sys::cublasHandle_t,
        stream: sys::CUstream,
        quick: bool,
        (rows, cols, tokens): (usize, usize, usize),
        w_dev: &Buf,
        x_dev: &Buf,
    ) -> Result<f64, String> {
        let yb = Buf::zeroed(tokens * rows * 2)?;
        let (alpha, beta) = (1.0f32, 0.0f32);
        let gemm = || unsafe {
            blas::gemm_ex(
                h,
                blas_sys::cublasOperation_t::CUBLAS_OP_T,
                blas_sys::cublasOperation_t::CUBLAS_OP_N,
                rows as i32,
                tokens as i32,
                cols as i32,
                &alpha as *const f32 as *const c_void,
                w_dev.0 as *const c_void,
                blas_sys::cudaDataType::CUDA_R_16BF,
                cols as i32,
                x_dev.0 as *const c_void,
                blas_sys::cudaDataType::CUDA_R_16BF,
                cols as i32,
                &beta as *const f32 as *const c_void,
                yb.0 as *mut c_void,
                blas_sys::cudaDataType::CUDA_R_16BF,
                rows as i32,
                blas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                blas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
            .map_err(|e| format!("cublasGemmEx: {e:?}"))
        };
        time(stream, quick, gemm)
    }

    fn print_json(device: &Device, out: &[Row]) {
        let items: Vec<String> = out
            .iter()
            .map(|r| {
                format!(
                    "{{\"device\":{:?},\"image\":{:?},\"rows\":{},\"cols\":{},\"tokens\":{},\"kernel\":{:?},\"tern_us\":{:.3},\"cublas_bf16_us\":{},\"exact\":{}}}",
                    device.name,
                    device.image,
                    r.rows,
                    r.cols,
                    r.tokens,
                    r.kernel,
                    r.tern_us,
                    r.cublas_us.map_or("null".into(), |v| format!("{v:.3}")),
                    r.exact
                )
            })
            .collect();
        println!("[{}]", items.join(",\n "));
    }

    fn print_row(r: &Row, header: bool) {
        if header {
            println!(
                "{:>11} {:>6} {:<14} {:>10} {:>12} {:>8} {:>10} {:>6}",
                "shape",
                "tokens",
                "kernel",
                "tern µs",
                "cuBLAS bf16",
                "speedup",
                "weights GB/s",
                "exact"
            );
        }
        let gbs = (r.rows * r.cols) as f64 / 4.0 / (r.tern_us * 1e3);
        let (blas, speedup) = match r.cublas_us {
            Some(c) => (format!("{c:.2}"), format!("{:.2}x", c / r.tern_us)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:>11} {:>6} {:<14} {:>10.2} {:>12} {:>8} {:>10.1} {:>6}",
            format!("{}x{}", r.rows, r.cols),
            r.tokens,
            r.kernel,
            r.tern_us,
            blas,
            speedup,
            gbs,
            if r.exact { "yes" } else { "NO" }
        );
    }
}
