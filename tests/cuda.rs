//! The CUDA C API on this machine. Without the `cuda` feature, a driver or a GPU: every call
//! returns TERN_STATUS_NO_DEVICE with a message and nothing panics (this runs in CI, in both
//! builds). With a GPU (`tern_cuda_available()`, feature `cuda`): the kernels against tern_gemm,
//! bit for bit, on real hardware; otherwise those tests print "skipped: no CUDA device".

mod common;

use std::ffi::c_void;
use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::*;

fn cpu_matrix(
    format: i32,
    variant: u32,
    rows: usize,
    cols: usize,
    method: i32,
    seed: u64,
) -> *mut tern_matrix {
    let mut rng = Rng::new(seed);
    let w: Vec<f32> = (0..rows * cols)
        .map(|_| (rng.uniform() - 0.5) * 0.04)
        .collect();
    let l = layout(format, variant);
    let q = quant_options(method);
    let mut m = null_mut();
    let st = unsafe {
        tern_matrix_from_f32(
            null(),
            &l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            &q,
            null_mut(),
            &mut m,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    m
}

#[test]
fn no_device_everywhere_without_a_gpu() {
    if tern_cuda_available() {
        println!("skipped: a CUDA device is present (this test covers the no-device path)");
        return;
    }
    let m = cpu_matrix(1, 0, 8, 128, 0, 1);
    let no_device = tern_status::TERN_STATUS_NO_DEVICE;
    let mut out = 0x10 as *mut tern_cuda_matrix;
    assert_eq!(
        unsafe { tern_cuda_matrix_upload(null(), m, 0, &mut out) },
        no_device
    );
    assert!(out.is_null(), "out is set to NULL on failure");
    let msg = last_error();
    assert!(msg.contains("CUDA") || msg.contains("libcuda"), "{msg}");
    if cfg!(not(feature = "cuda")) {
        assert!(msg.contains("built without CUDA support"), "{msg}");
    }
    // Bad arguments still say NO_DEVICE first: there is nothing they could run on.
    assert_eq!(
        unsafe { tern_cuda_matrix_upload(null(), null(), -1, null_mut()) },
        no_device
    );
    let x = [0f32; 128];
    let mut y = [0f32; 8];
    let st = unsafe {
        tern_cuda_gemm(
            null(),
            x.as_ptr() as *const c_void,
            0,
            1,
            y.as_mut_ptr() as *mut c_void,
            0,
            null_mut(),
        )
    };
    assert_eq!(st, no_device);
    assert!(!last_error().is_empty());
    let opts = tern_cuda_gemm_options {
        struct_size: size_of::<tern_cuda_gemm_options>() as u32,
        compat: 0,
        x_stride: 0,
        y_stride: 0,
        bias: null(),
    };
    let st = unsafe { tern_cuda_gemm_ex(null(), null(), 7, -3, null_mut(), 9, null_mut(), &opts) };
    assert_eq!(st, no_device);
    unsafe { tern_cuda_matrix_destroy(null_mut()) };
    assert!(!tern_cuda_available());
    unsafe { tern_matrix_destroy(m) };
    println!("ok: every tern_cuda_* call returned TERN_STATUS_NO_DEVICE: {msg}");
}

/// Device buffers and a stream, through cudarc (test side only).
#[cfg(feature = "cuda")]
mod gpu {
    use cudarc::driver::{result, sys};

    pub fn init() -> sys::CUstream {
        result::init().unwrap();
        let dev = result::device::get(0).unwrap();
        unsafe {
            let ctx = result::primary_ctx::retain(dev).unwrap();
            result::ctx::set_current(ctx).unwrap();
        }
        result::stream::create(result::stream::StreamKind::NonBlocking).unwrap()
    }
    pub fn upload<T>(v: &[T]) -> sys::CUdeviceptr {
        unsafe {
            let p = result::malloc_sync(std::mem::size_of_val(v).max(1)).unwrap();
            result::memcpy_htod_sync(p, v).unwrap();
            p
        }
    }
    pub fn alloc(bytes: usize) -> sys::CUdeviceptr {
        unsafe {
            let p = result::malloc_sync(bytes).unwrap();
            result::memset_d8_sync(p, 0xEE, bytes).unwrap();
            p
        }
    }
    pub fn download<T: Copy + Default>(p: sys::CUdeviceptr, n: usize) -> Vec<T> {
        let mut v = vec![T::default(); n];
        unsafe { result::memcpy_dtoh_sync(&mut v, p).unwrap() };
        v
    }
    pub fn sync(s: sys::CUstream) {
        unsafe { result::stream::synchronize(s).unwrap() };
    }
    pub fn free(p: sys::CUdeviceptr) {
        unsafe { result::free_sync(p).unwrap() };
    }
}

#[cfg(feature = "cuda")]
fn to_bits(v: f32, dt: i32) -> u32 {
    match dt {
        0 => v.to_bits(),
        1 => half::f16::from_f32(v).to_bits() as u32,
        _ => half::bf16::from_f32(v).to_bits() as u32,
    }
}

#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
fn gpu_case(
    stream: *mut c_void,
    format: i32,
    variant: u32,
    rows: usize,
    cols: usize,
    tokens: usize,
    compat: i32,
    method: i32,
    x_dt: i32,
    y_dt: i32,
    bias: bool,
    seed: u64,
) {
    let m = cpu_matrix(format, variant, rows, cols, method, seed);
    let what = format!("format {format}");
    gpu_case_on(
        stream, m, &what, rows, cols, tokens, compat, x_dt, y_dt, bias, seed,
    );
}

/// `gpu_case` on the matrix `m` (destroyed at the end), `what` naming it in messages.
#[cfg(feature = "cuda")]
#[allow(clippy::too_many_arguments)]
fn gpu_case_on(
    stream: *mut c_void,
    m: *mut tern_matrix,
    what: &str,
    rows: usize,
    cols: usize,
    tokens: usize,
    compat: i32,
    x_dt: i32,
    y_dt: i32,
    bias: bool,
    seed: u64,
) {
    let mut rng = Rng::new(seed + 1);
    let x: Vec<f32> = (0..tokens * cols)
        .map(|_| rng.uniform() * 4.0 - 2.0)
        .collect();
    // The GPU gets x in its dtype; the CPU the same values widened to f32 (exact).
    let (x_cpu, x_dev) = match x_dt {
        0 => (x.clone(), gpu::upload(&x)),
        1 => {
            let h: Vec<half::f16> = x.iter().map(|&v| half::f16::from_f32(v)).collect();
            (h.iter().map(|v| v.to_f32()).collect(), gpu::upload(&h))
        }
        _ => {
            let h: Vec<half::bf16> = x.iter().map(|&v| half::bf16::from_f32(v)).collect();
            (h.iter().map(|v| v.to_f32()).collect(), gpu::upload(&h))
        }
    };
    let b: Vec<f32> = (0..rows).map(|_| rng.uniform()).collect();
    let mut opts = gemm_options(compat);
    if bias {
        opts.bias = b.as_ptr();
    }
    let mut y_cpu = vec![0f32; tokens * rows];
    let st = unsafe {
        tern_gemm(
            null(),
            m,
            x_cpu.as_ptr(),
            tokens as i64,
            0,
            y_cpu.as_mut_ptr(),
            0,
            &opts,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());

    let mut cm = null_mut();
    assert_eq!(
        unsafe { tern_cuda_matrix_upload(null(), m, 0, &mut cm) },
        tern_status::TERN_STATUS_OK,
        "{}",
        last_error()
    );
    let y_size = if y_dt == 0 { 4 } else { 2 };
    let y_dev = gpu::alloc(tokens * rows * y_size);
    let b_dev = gpu::upload(&b);
    let o = tern_cuda_gemm_options {
        struct_size: size_of::<tern_cuda_gemm_options>() as u32,
        compat,
        x_stride: 0,
        y_stride: 0,
        bias: if bias { b_dev as *const f32 } else { null() },
    };
    let st = unsafe {
        tern_cuda_gemm_ex(
            cm,
            x_dev as *const c_void,
            x_dt,
            tokens as i64,
            y_dev as *mut c_void,
            y_dt,
            stream,
            &o,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    gpu::sync(stream as _);
    let got: Vec<u32> = if y_dt == 0 {
        gpu::download::<u32>(y_dev, tokens * rows)
    } else {
        gpu::download::<u16>(y_dev, tokens * rows)
            .into_iter()
            .map(u32::from)
            .collect()
    };
    for (i, (&g, &c)) in got.iter().zip(&y_cpu).enumerate() {
        if c.is_nan() {
            continue; // 0·inf of BITNET_CPP's all-zero token: NaN bits differ between devices
        }
        assert_eq!(
            g,
            to_bits(c, y_dt),
            "y[{}][{}] {what} {rows}x{cols} T={tokens} compat {compat} x {x_dt} y {y_dt}",
            i / rows,
            i % rows
        );
    }
    println!(
        "ok (GPU): {what} {rows}x{cols} T={tokens} compat {compat} x_dtype {x_dt} y_dtype {y_dt} bias {bias}"
    );
    for p in [x_dev, y_dev, b_dev] {
        gpu::free(p);
    }
    unsafe {
        tern_cuda_matrix_destroy(cm);
        tern_matrix_destroy(m);
    }
}

#[cfg(feature = "cuda")]
#[test]
fn gpu_matches_cpu_bit_for_bit() {
    if !tern_cuda_available() {
        println!("skipped: no CUDA device");
        return;
    }
    let stream = gpu::init() as *mut c_void;
    let mut seed = 10;
    for &(format, variant, rows, cols, method) in &[
        (1, 0, 300, 640, 0),
        (1, 1, 77, 320, 0),
        (2, 0, 46, 200, 0),
        (3, 0, 65, 333, 0),
        (5, 0, 70, 768, 2),
        (4, 0, 33, 512, 0),
        (6, 0, 70, 320, 4),
        (6, 0, 40, 448, 2),
        (7, 0, 33, 384, 4),
    ] {
        let compats: &[i32] = if format >= 4 { &[0] } else { &[0, 1, 2] };
        for &compat in compats {
            for tokens in [1, 3, 8, 9, 70, 128] {
                seed += 2;
                gpu_case(
                    stream,
                    format,
                    variant,
                    rows,
                    cols,
                    tokens,
                    compat,
                    method,
                    0,
                    0,
                    tokens % 3 == 0,
                    seed,
                );
            }
        }
    }
    for x_dt in 0..3 {
        for y_dt in 0..3 {
            for tokens in [1, 40] {
                seed += 2;
                gpu_case(stream, 1, 0, 96, 256, tokens, 0, 0, x_dt, y_dt, true, seed);
                gpu_case(
                    null_mut(),
                    1,
                    0,
                    96,
                    256,
                    tokens,
                    0,
                    0,
                    x_dt,
                    y_dt,
                    false,
                    seed,
                );
            }
        }
    }
}

/// Q2_0 blocks with code 3 (+2·d) and a random `d` each, made from packed bytes (ggml's
/// quantizer never writes code 3), on the GPU against the CPU.
#[cfg(feature = "cuda")]
#[test]
fn gpu_q2_0_code_3() {
    if !tern_cuda_available() {
        println!("skipped: no CUDA device");
        return;
    }
    let stream = gpu::init() as *mut c_void;
    let (rows, cols) = (70usize, 320usize);
    for (i, tokens) in [1usize, 5, 9, 70].into_iter().enumerate() {
        let mut rng = Rng::new(500 + i as u64);
        let mut packed = Vec::new();
        for _ in 0..rows * cols / 64 {
            let d = half::f16::from_f32(rng.uniform() * 0.05);
            packed.extend_from_slice(&d.to_le_bytes());
            packed.extend((0..16).map(|_| rng.next_u64() as u8));
        }
        let l = layout(6, 0);
        let mut m = null_mut();
        let st = unsafe {
            tern_matrix_create(
                null(),
                &l,
                packed.as_ptr() as *const c_void,
                packed.len(),
                rows as i64,
                cols as i64,
                &mut m,
            )
        };
        assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
        gpu_case_on(
            stream,
            m,
            "Q2_0 with code 3",
            rows,
            cols,
            tokens,
            0,
            (i % 3) as i32,
            0,
            i % 2 == 0,
            600 + i as u64,
        );
    }
}

/// The 2B-4T shapes once each on the GPU (GEMV and GEMM), against the CPU.
#[cfg(feature = "cuda")]
#[test]
fn gpu_model_shapes() {
    if !tern_cuda_available() {
        println!("skipped: no CUDA device");
        return;
    }
    let stream = gpu::init() as *mut c_void;
    for (i, &(rows, cols)) in [(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)]
        .iter()
        .enumerate()
    {
        for tokens in [1, 128] {
            gpu_case(
                stream,
                1,
                0,
                rows,
                cols,
                tokens,
                0,
                0,
                2,
                2,
                false,
                1000 + i as u64,
            );
        }
    }
}

/// Exact int32 dots from the GPU (the Rust API's `dots` output) against the CPU's.
#[cfg(feature = "cuda")]
#[test]
fn gpu_exact_dots() {
    if !tern_cuda_available() {
        println!("skipped: no CUDA device");
        return;
    }
    use tern::cuda::plan::Dtype;
    use tern::cuda::{CudaMatrix, GemmCall};
    use tern::format::{Layout, Shape};
    use tern::quant::activation::Arith;
    use tern::quant::{Compat, QuantConfig, quantize_packed};
    let stream = gpu::init();
    let (rows, cols, tokens) = (200, 384, 50);
    let layout = Layout::new(1, 0, 0, 0, 0).unwrap();
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let mut rng = Rng::new(5);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() - 0.5).collect();
    let (packed, _) = quantize_packed(layout, shape, &w, &QuantConfig::default()).unwrap();
    let ctx = tern::context::Context::global().unwrap();
    let matrix = tern::matrix::Matrix::from_packed(ctx, layout, shape, &packed).unwrap();
    let mut ternary = vec![0i8; rows * cols];
    layout.unpack(shape, &packed, &mut ternary).unwrap();
    let x: Vec<f32> = (0..tokens * cols)
        .map(|_| rng.uniform() * 2.0 - 1.0)
        .collect();
    let mut q = vec![0i8; tokens * cols];
    let mut s = vec![0f32; tokens];
    let quantize = tern::kernel::Kernels::best().quantize_token;
    Arith::Default.quantize_batch(quantize, &x, cols, cols, tokens, &mut q, cols, &mut s, None);
    for t in [1usize, tokens] {
        let cm = CudaMatrix::upload(&matrix, 0).unwrap();
        let x_dev = gpu::upload(&x);
        let y_dev = gpu::alloc(t * rows * 4);
        let d_dev = gpu::alloc(t * rows * 4);
        let call = GemmCall {
            x: x_dev,
            x_dtype: Dtype::F32,
            x_stride: cols,
            n_tokens: t,
            y: y_dev,
            y_dtype: Dtype::F32,
            y_stride: rows,
            compat: Compat::Default,
            bias: 0,
            dots: d_dev,
            stream,
        };
        unsafe { cm.gemm(&call) }.unwrap();
        gpu::sync(stream);
        let dots: Vec<i32> = gpu::download(d_dev, t * rows);
        for tt in 0..t {
            for r in 0..rows {
                let want: i32 = (0..cols)
                    .map(|k| ternary[r * cols + k] as i32 * q[tt * cols + k] as i32)
                    .sum();
                assert_eq!(dots[tt * rows + r], want, "token {tt} row {r}");
            }
        }
        println!(
            "ok (GPU): exact dots {rows}x{cols} T={t} on {} ({})",
            cm.device().name,
            cm.device().image
        );
        for p in [x_dev, y_dev, d_dev] {
            gpu::free(p);
        }
    }
}
