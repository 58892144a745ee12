//! The CUDA kernels (cuda/tern_kernels.cu) compiled as host C++ under cuda/tern_cuda_emu.h and
//! run on the CPU, against tern's CPU GEMM (the scalar-exact oracle): quantized activations,
//! scales and sums equal; exact int32 dots equal; outputs bit-identical (f32) or equal to the
//! CPU's f32 result rounded to nearest even (f16, bf16). Random shapes with K and M tails, every
//! format, every compat mode the GPU has, 1..70 tokens (GEMV and tensor-core GEMM), strides,
//! bias and all dtypes; per-block scales that differ from block to block over 64 (Q2_0, with
//! its code 3 = +2), 128 (Q1_0) and 256 columns. Plus bitnet.cpp's GPU golden vectors (word
//! encoding and dots).
//!
//! The launch plan (grids, blocks, parameter block, workspace) is `tern::cuda::plan`, the same
//! code the driver path uses; only the executor differs. Needs a C++ compiler (`$CXX` or `c++`).
#![cfg(feature = "cuda")]

use std::ffi::{CString, c_void};
use std::path::PathBuf;
use std::sync::OnceLock;

use half::{bf16, f16};
use tern::context::Context;
use tern::cuda::layout::{
    CODE_OFFSET_TERNARY, CODE_OFFSET_WIDE, GpuWeights, decode_word, encode_word, zero_word,
};
use tern::cuda::plan::{self, Buffers, Call, Dtype, GemmParams, GpuKernel};
use tern::format::{Layout, Shape};
use tern::matrix::{GemmOptions, GemmOutput, Matrix};
use tern::quant::activation::Arith;
use tern::quant::{Compat, QuantConfig, quantize_packed};

type LaunchFn = unsafe extern "C" fn(i32, *const u32, *const u32, *const c_void) -> i32;
type SizeFn = unsafe extern "C" fn() -> u32;

/// Builds tests/cuda_emu/harness.cpp into a shared object once and loads it.
fn emu() -> LaunchFn {
    static LAUNCH: OnceLock<usize> = OnceLock::new();
    let f = *LAUNCH.get_or_init(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tern_cuda_emu_{}.so", std::process::id()));
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let status = std::process::Command::new(&cxx)
            .args([
                "-std=c++17",
                "-O2",
                "-ffp-contract=off",
                "-fno-strict-aliasing",
                "-fPIC",
                "-shared",
                "-Wall",
            ])
            .arg("-o")
            .arg(&out)
            .arg(root.join("tests/cuda_emu/harness.cpp"))
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C++ compiler {cxx}: {e}"));
        assert!(
            status.success(),
            "compiling tests/cuda_emu/harness.cpp failed"
        );
        let path = CString::new(out.to_str().unwrap()).unwrap();
        // SAFETY: loading a library we just built; its symbols have the declared signatures.
        unsafe {
            let h = libc::dlopen(path.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            assert!(!h.is_null(), "dlopen of the emulation harness failed");
            let size: SizeFn =
                std::mem::transmute(libc::dlsym(h, c"tern_emu_params_size".as_ptr()));
            assert_eq!(
                size() as usize,
                size_of::<GemmParams>(),
                "TernCudaParams and GemmParams differ in size"
            );
            let launch = libc::dlsym(h, c"tern_emu_launch".as_ptr());
            assert!(!launch.is_null());
            launch as usize
        }
    });
    // SAFETY: the address of `tern_emu_launch`.
    unsafe { std::mem::transmute::<usize, LaunchFn>(f) }
}

fn run(kernel: GpuKernel, grid: [u32; 3], block: [u32; 3], p: &GemmParams) {
    // SAFETY: p's addresses point into live host buffers sized by the plan.
    let r = unsafe {
        emu()(
            kernel as i32,
            grid.as_ptr(),
            block.as_ptr(),
            p as *const GemmParams as *const c_void,
        )
    };
    assert_eq!(r, 0);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn uniform(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() - 2.0
    }
}

#[derive(Clone, Copy, Debug)]
struct Case {
    layout: Layout,
    rows: usize,
    cols: usize,
    tokens: usize,
    compat: Compat,
    x_dtype: Dtype,
    y_dtype: Dtype,
    x_pad: usize,
    y_pad: usize,
    bias: bool,
    /// Per-row absmean (per-block formats): per-block scales that differ from row to row.
    per_row: bool,
}

fn to_dtype(v: &[f32], dt: Dtype) -> (Vec<f32>, Vec<u8>) {
    match dt {
        Dtype::F32 => (v.to_vec(), v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        Dtype::F16 => {
            let h: Vec<f16> = v.iter().map(|&x| f16::from_f32(x)).collect();
            (
                h.iter().map(|x| x.to_f32()).collect(),
                h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            )
        }
        Dtype::Bf16 => {
            let h: Vec<bf16> = v.iter().map(|&x| bf16::from_f32(x)).collect();
            (
                h.iter().map(|x| x.to_f32()).collect(),
                h.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect(),
            )
        }
    }
}

fn out_bits(v: f32, dt: Dtype) -> u32 {
    match dt {
        Dtype::F32 => v.to_bits(),
        Dtype::F16 => f16::from_f32(v).to_bits() as u32,
        Dtype::Bf16 => bf16::from_f32(v).to_bits() as u32,
    }
}

fn is_nan_bits(v: u32, dt: Dtype) -> bool {
    match dt {
        Dtype::F32 => f32::from_bits(v).is_nan(),
        Dtype::F16 => f16::from_bits(v as u16).is_nan(),
        Dtype::Bf16 => bf16::from_bits(v as u16).is_nan(),
    }
}

fn read_out(y: &[u8], i: usize, dt: Dtype) -> u32 {
    match dt {
        Dtype::F32 => u32::from_le_bytes(y[4 * i..4 * i + 4].try_into().unwrap()),
        _ => u16::from_le_bytes(y[2 * i..2 * i + 2].try_into().unwrap()) as u32,
    }
}

/// Runs one case through the emulated kernels and the CPU; panics on any difference.
fn check(case: Case, seed: u64) {
    let Case {
        layout, rows, cols, ..
    } = case;
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let mut rng = Rng(seed | 1);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 0.02).collect();
    let method = if case.per_row { 2 } else { 0 };
    let cfg = QuantConfig::new(method, 0, 1e-5, Some(layout)).unwrap();
    let (packed, _) = quantize_packed(layout, shape, &w, &cfg).unwrap();
    check_packed(case, &packed, &mut rng);
}

/// `check` on the packed matrix `packed`, the activations drawn from `rng`.
fn check_packed(case: Case, packed: &[u8], rng: &mut Rng) {
    let ctx = Context::global().unwrap();
    let Case {
        layout,
        rows,
        cols,
        tokens,
        ..
    } = case;
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let matrix = Matrix::from_packed(ctx, layout, shape, packed).unwrap();
    let mut ternary = vec![0i8; rows * cols];
    layout.unpack(shape, packed, &mut ternary).unwrap();

    // Activations: normal, one outlier per token, one all-zero token when there are several,
    // some exact .5 ties after scaling (absmax 127 makes the scale 1).
    let x_stride = cols + case.x_pad;
    let mut x = vec![0f32; tokens * x_stride];
    for t in 0..tokens {
        let row = &mut x[t * x_stride..][..cols];
        match t % 5 {
            3 if tokens > 1 => {}
            4 => {
                for v in row.iter_mut() {
                    *v = ((rng.next() % 254) as f32 - 127.0) + 0.5;
                }
                row[0] = 127.0;
            }
            _ => {
                for v in row.iter_mut() {
                    *v = rng.normal();
                }
                row[(37 * t + 11) % cols] = 6.5 + t as f32;
            }
        }
    }
    let (x_cpu, x_dev) = to_dtype(&x, case.x_dtype);
    let bias: Vec<f32> = (0..rows).map(|_| rng.normal()).collect();

    // CPU oracle.
    let y_stride = rows + case.y_pad;
    let mut y_cpu = vec![0f32; tokens * y_stride];
    let opts = GemmOptions {
        compat: case.compat,
        rows: None,
        bias: case.bias.then_some(&bias[..]),
    };
    matrix
        .gemm(
            ctx,
            &x_cpu,
            x_stride,
            GemmOutput {
                y: &mut y_cpu,
                n_tokens: tokens,
                stride: y_stride,
            },
            &opts,
        )
        .unwrap();
    let arith = case.compat.arith(layout.format()).unwrap();
    let mut q_cpu = vec![0i8; tokens * cols];
    let mut s_cpu = vec![0f32; tokens];
    let mut sum_cpu = vec![0i32; tokens];
    arith.quantize_batch(
        tern::kernel::Kernels::best().quantize_token,
        &x_cpu,
        x_stride,
        cols,
        tokens,
        &mut q_cpu,
        cols,
        &mut s_cpu,
        Some(&mut sum_cpu),
    );

    // Emulated GPU.
    let gw = GpuWeights::from_matrix(&matrix).unwrap();
    let arith_code = plan::resolve_arith(layout.format(), case.compat, gw.n_groups).unwrap();
    let call = Call {
        rows,
        cols,
        kp: gw.kp,
        n_groups: gw.n_groups,
        group_cols: gw.group_cols,
        code_offset: gw.code_offset,
        n_tokens: tokens,
        x_dtype: case.x_dtype,
        x_stride,
        y_dtype: case.y_dtype,
        y_stride,
        arith: arith_code,
    };
    plan::check_call(rows, gw.kp, tokens, x_stride, y_stride).unwrap();
    let ws = plan::workspace(gw.kp, tokens);
    let mut workspace = vec![0u64; ws.bytes.div_ceil(8)];
    let mut y_dev = vec![0xEEu8; tokens * y_stride * case.y_dtype.size()];
    let mut dots = vec![0i32; tokens * rows];
    let base = workspace.as_mut_ptr() as u64;
    let buffers = Buffers {
        w: gw.words.as_ptr() as u64,
        w_scales: gw.scales.as_ptr() as u64,
        bias: if case.bias { bias.as_ptr() as u64 } else { 0 },
        x: x_dev.as_ptr() as u64,
        y: y_dev.as_mut_ptr() as u64,
        dots: dots.as_mut_ptr() as u64,
        workspace: base,
    };
    let p = plan::params(&call, &buffers);
    let launches = plan::launches(rows, tokens);
    for l in &launches {
        run(l.kernel, l.grid, l.block, &p);
    }
    let what = format!("{case:?}");

    // Activations: bytes of q (padding zero), scales, sums.
    let ws_bytes = unsafe { std::slice::from_raw_parts(base as *const u8, ws.bytes) };
    for t in 0..tokens {
        let q = &ws_bytes[ws.q + t * gw.kp..][..gw.kp];
        for k in 0..gw.kp {
            let want = if k < cols { q_cpu[t * cols + k] } else { 0 };
            assert_eq!(q[k] as i8, want, "q[{t}][{k}] {what}");
        }
        let s = f32::from_le_bytes(ws_bytes[ws.act_scale + 4 * t..][..4].try_into().unwrap());
        let sum = i32::from_le_bytes(ws_bytes[ws.act_sum + 4 * t..][..4].try_into().unwrap());
        assert_eq!(s.to_bits(), s_cpu[t].to_bits(), "act_scale[{t}] {what}");
        assert_eq!(sum, sum_cpu[t], "act_sum[{t}] {what}");
    }
    // Exact dots, then outputs bit for bit; the stride gaps stay untouched.
    for t in 0..tokens {
        for r in 0..rows {
            let want: i32 = (0..cols)
                .map(|k| ternary[r * cols + k] as i32 * q_cpu[t * cols + k] as i32)
                .sum();
            assert_eq!(dots[t * rows + r], want, "dot[{t}][{r}] {what}");
            let got = read_out(&y_dev, t * y_stride + r, case.y_dtype);
            let cpu = y_cpu[t * y_stride + r];
            if cpu.is_nan() {
                // 0·inf (BITNET_CPP's all-zero token): NaN bits differ between CPUs and GPUs.
                assert!(
                    is_nan_bits(got, case.y_dtype),
                    "y[{t}][{r}] = {got:#x}, CPU NaN {what}"
                );
                continue;
            }
            let want = out_bits(cpu, case.y_dtype);
            assert_eq!(got, want, "y[{t}][{r}] = {got:#x}, CPU {want:#x} {what}");
        }
        for r in rows..y_stride {
            let b = case.y_dtype.size();
            assert!(
                y_dev[(t * y_stride + r) * b..][..b]
                    .iter()
                    .all(|&v| v == 0xEE),
                "stride gap written {what}"
            );
        }
    }
    println!(
        "ok: {:?} {}x{} T={} {:?} x {:?} y {:?} kernels {:?}",
        layout.format(),
        rows,
        cols,
        tokens,
        case.compat,
        case.x_dtype,
        case.y_dtype,
        launches.iter().map(|l| l.kernel).collect::<Vec<_>>()
    );
}

fn layout(format: i32, variant: u32) -> Layout {
    Layout::new(format, variant, 0, 0, 0).unwrap()
}

fn base(layout: Layout, rows: usize, cols: usize, tokens: usize) -> Case {
    Case {
        layout,
        rows,
        cols,
        tokens,
        compat: Compat::Default,
        x_dtype: Dtype::F32,
        y_dtype: Dtype::F32,
        x_pad: 0,
        y_pad: 0,
        bias: false,
        per_row: false,
    }
}

#[test]
fn emulated_i2s_all_compat_modes() {
    // I2_S arm64 blocks allow K = 320 (not a multiple of 128: Kp tail); M tails for both tiles.
    let shapes = [(layout(1, 0), 77, 384), (layout(1, 1), 70, 320)];
    let mut seed = 1;
    for (l, m, k) in shapes {
        for compat in [Compat::Default, Compat::BitnetCpp, Compat::BitnetCppLegacy] {
            for tokens in [1, 3, 8, 9, 37] {
                seed += 1;
                check(
                    Case {
                        compat,
                        ..base(l, m, k, tokens)
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn emulated_tl1_tl2_any_shape() {
    let mut seed = 100;
    for (l, m, k) in [
        (layout(2, 0), 46, 200),
        (layout(3, 0), 65, 333),
        (layout(3, 0), 16, 96),
    ] {
        for compat in [Compat::Default, Compat::BitnetCpp] {
            for tokens in [1, 5, 33] {
                seed += 1;
                check(
                    Case {
                        compat,
                        x_pad: 3,
                        y_pad: 2,
                        ..base(l, m, k, tokens)
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn emulated_tq_per_block_scales() {
    let mut seed = 200;
    for (l, m, k) in [
        (layout(4, 0), 33, 512),
        (layout(5, 0), 70, 768),
        (layout(5, 0), 1, 256),
    ] {
        for tokens in [1, 4, 6, 40] {
            for per_row in [false, true] {
                seed += 1;
                check(
                    Case {
                        per_row,
                        bias: tokens % 2 == 0,
                        ..base(l, m, k, tokens)
                    },
                    seed,
                );
            }
        }
    }
}

#[test]
fn emulated_dtypes_bias_strides() {
    let dts = [Dtype::F32, Dtype::F16, Dtype::Bf16];
    let mut seed = 300;
    for x_dtype in dts {
        for y_dtype in dts {
            for tokens in [2, 45] {
                seed += 1;
                let c = Case {
                    x_dtype,
                    y_dtype,
                    bias: true,
                    x_pad: 5,
                    y_pad: 1,
                    ..base(layout(1, 0), 40, 256, tokens)
                };
                check(c, seed);
            }
        }
    }
}

/// The block scales of a generated TQ2_0 / Q2_0 / Q1_0 matrix.
#[derive(Clone, Copy, Debug)]
enum BlockScales {
    /// Every block has this `d` (the GPU gets one scale for the matrix).
    Uniform(f32),
    /// Each block draws its own `d`: different magnitudes, negative, an f16 subnormal.
    Random,
}

/// Weights per block of the ggml formats `block_packed` makes: TQ2_0 (5), Q2_0 (6), Q1_0 (7).
fn block_cols(format: i32) -> usize {
    match format {
        5 => 256,
        6 => 64,
        _ => 128,
    }
}

/// TQ2_0 (`format` 5: 64 code bytes, then the f16 `d`), Q2_0 (6: `d`, 16 code bytes) or Q1_0
/// (7: `d`, 16 sign bytes) blocks with random codes; 2-bit codes 0..=3 (Q2_0's 3 is +2·d) when
/// `code_3`, else 0..=2. Also returns whether the blocks' `d` differ.
fn block_packed(
    format: i32,
    rows: usize,
    cols: usize,
    scales: BlockScales,
    code_3: bool,
    rng: &mut Rng,
) -> (Vec<u8>, bool) {
    let code_bytes = block_cols(format) / if format == 7 { 8 } else { 4 };
    let mut out = Vec::new();
    let mut first_d = None;
    let mut differ = false;
    for _ in 0..rows * cols / block_cols(format) {
        let d = match scales {
            BlockScales::Uniform(d) => d,
            BlockScales::Random => {
                [0.0125, -0.02, 0.5, 3.0e-6, 0.007, -1.5][(rng.next() % 6) as usize]
            }
        };
        let d = f16::from_f32(d).to_le_bytes();
        differ |= *first_d.get_or_insert(d) != d;
        if format != 5 {
            out.extend_from_slice(&d);
        }
        for _ in 0..code_bytes {
            let r = rng.next() as u8;
            // Without code 3: clear the high bit of every code 3.
            out.push(if format != 7 && !code_3 {
                r & !((r & (r << 1)) & 0xAA)
            } else {
                r
            });
        }
        if format == 5 {
            out.extend_from_slice(&d);
        }
    }
    (out, differ)
}

/// One generated matrix (`block_packed`) through the emulated kernels against the CPU.
fn check_q(case: Case, scales: BlockScales, code_3: bool, seed: u64) {
    let mut rng = Rng(seed | 1);
    let Case {
        layout, rows, cols, ..
    } = case;
    let format = layout.format() as i32;
    let (packed, differ) = block_packed(format, rows, cols, scales, code_3, &mut rng);
    let ctx = Context::global().unwrap();
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let m = Matrix::from_packed(ctx, layout, shape, &packed).unwrap();
    let gw = GpuWeights::from_matrix(&m).unwrap();
    // Per-block scales on the GPU exactly when the blocks' `d` differ.
    let group_cols = if differ { block_cols(format) } else { 0 };
    assert_eq!(
        (gw.group_cols, gw.n_groups),
        (group_cols, cols.checked_div(group_cols).unwrap_or(0))
    );
    let wide = if code_3 {
        CODE_OFFSET_WIDE
    } else {
        CODE_OFFSET_TERNARY
    };
    assert_eq!(gw.code_offset, wide, "{case:?}");
    check_packed(case, &packed, &mut rng);
}

/// Token counts that take the GEMV (1..=8: one or two blocks of 4 tokens) and the GEMM (one or
/// several 32-token tiles, with tails).
const Q_TOKENS: [usize; 6] = [1, 4, 7, 9, 37, 70];

#[test]
fn emulated_q2_0_code_3_block_scales() {
    // K = 64·n with K % 128 = 64 (a padding half k-tile and 8 blocks per GEMV pass), K = 64,
    // K = 512 (whole tiles); M tails of both kernels.
    let dts = [Dtype::F32, Dtype::F16, Dtype::Bf16];
    let mut seed = 700u64;
    for (m, k) in [(70, 320), (1, 64), (33, 512), (65, 192)] {
        for (i, tokens) in Q_TOKENS.into_iter().enumerate() {
            seed += 1;
            let case = Case {
                bias: tokens % 2 == 0,
                x_dtype: dts[i % 3],
                y_dtype: dts[(i + seed as usize) % 3],
                x_pad: i % 2,
                y_pad: (i / 2) % 2,
                ..base(layout(6, 0), m, k, tokens)
            };
            check_q(case, BlockScales::Random, true, seed);
        }
    }
    // Code 3 with one scale for the matrix, and block scales without code 3.
    for tokens in [3, 40] {
        seed += 1;
        let case = base(layout(6, 0), 40, 448, tokens);
        check_q(case, BlockScales::Uniform(0.0125), true, seed);
        check_q(case, BlockScales::Random, false, seed);
    }
}

#[test]
fn emulated_q1_0_block_scales() {
    // K = 128·n with K % 256 = 128 (4 blocks per GEMV pass, one per GEMM k-tile).
    let dts = [Dtype::F32, Dtype::F16, Dtype::Bf16];
    let mut seed = 800u64;
    for (m, k) in [(33, 384), (65, 128), (7, 640)] {
        for (i, tokens) in Q_TOKENS.into_iter().enumerate() {
            seed += 1;
            let case = Case {
                bias: tokens % 2 == 1,
                x_dtype: dts[(i + 1) % 3],
                y_dtype: dts[(i + seed as usize) % 3],
                x_pad: (i / 2) % 2,
                y_pad: i % 2,
                ..base(layout(7, 0), m, k, tokens)
            };
            check_q(case, BlockScales::Random, false, seed);
        }
    }
    for tokens in [2, 33] {
        seed += 1;
        check_q(
            base(layout(7, 0), 20, 256, tokens),
            BlockScales::Uniform(-0.03),
            false,
            seed,
        );
    }
}

#[test]
fn emulated_tq2_0_block_scales_that_differ() {
    // 256-column blocks, each with its own `d` (2 blocks per GEMV pass, one per 2 GEMM k-tiles).
    let mut seed = 900u64;
    for (m, k) in [(33, 768), (5, 256)] {
        for (i, tokens) in Q_TOKENS.into_iter().enumerate() {
            seed += 1;
            let case = Case {
                bias: i % 2 == 0,
                y_dtype: [Dtype::F32, Dtype::Bf16][i % 2],
                ..base(layout(5, 0), m, k, tokens)
            };
            check_q(case, BlockScales::Random, false, seed);
        }
    }
}

/// What the CUDA path still refuses: ggml's Q8_0 arithmetic (`TERN_COMPAT_GGML`) on Q2_0 and
/// Q1_0, per-block scales over widths the kernels have no reduction for, values beyond −1..=2.
#[test]
fn q_formats_ggml_compat_and_bad_blocks_are_refused() {
    for format in [tern::format::Format::Q2_0, tern::format::Format::Q1_0] {
        let e = plan::resolve_arith(format, Compat::Ggml, 2).unwrap_err();
        assert!(e.message.contains("no CUDA kernel"), "{}", e.message);
        assert_eq!(plan::resolve_arith(format, Compat::Default, 2).unwrap(), 0);
    }
    let t = vec![1i8; 2 * 512];
    for group_cols in [32, 96, 512] {
        let n = 2 * 512 / group_cols;
        let e = GpuWeights::from_ternary(&t, 2, 512, vec![1.0; n], group_cols).unwrap_err();
        assert!(e.message.contains("64, 128 or 256"), "{}", e.message);
    }
    let e = GpuWeights::from_ternary(&t, 2, 512, vec![1.0; 3], 256).unwrap_err();
    assert!(e.message.contains("3 scales"), "{}", e.message);
    let mut t3 = t.clone();
    t3[512 + 70] = 3;
    let e = GpuWeights::from_ternary(&t3, 2, 512, vec![1.0], 0).unwrap_err();
    assert!(e.message.contains("row 1, column 70 is 3"), "{}", e.message);
}

/// Words with either code offset: every value round-trips, zero words decode to zeros, and a
/// +2 anywhere switches the whole matrix to the wide offset.
#[test]
fn word_encodings() {
    let mut rng = Rng(41);
    for (offset, lo, hi) in [(CODE_OFFSET_TERNARY, -1, 1), (CODE_OFFSET_WIDE, -1, 2)] {
        assert_eq!(decode_word(zero_word(offset), offset), [0; 16]);
        for _ in 0..200 {
            let t: Vec<i8> = (0..16)
                .map(|_| lo + (rng.next() % (hi - lo + 1) as u64) as i8)
                .collect();
            assert_eq!(decode_word(encode_word(&t, offset), offset), &t[..]);
        }
    }
    assert_eq!(zero_word(CODE_OFFSET_TERNARY), 0xAAAA_AAAA);
    let mut t = vec![0i8; 3 * 100];
    let gw = GpuWeights::from_ternary(&t, 3, 100, vec![1.0], 0).unwrap();
    assert_eq!(gw.code_offset, CODE_OFFSET_TERNARY);
    assert!(
        gw.words
            .iter()
            .all(|&w| w == zero_word(CODE_OFFSET_TERNARY))
    );
    t[250] = 2;
    let gw = GpuWeights::from_ternary(&t, 3, 100, vec![1.0], 0).unwrap();
    assert_eq!(gw.code_offset, CODE_OFFSET_WIDE);
    assert_eq!(
        decode_word(gw.words[2 * gw.kw() + 3], CODE_OFFSET_WIDE)[2],
        2
    );
    assert_eq!(gw.words[gw.kw() - 1], zero_word(CODE_OFFSET_WIDE));
}

#[test]
fn ggml_compat_is_rejected() {
    let e = plan::resolve_arith(tern::format::Format::Tq2_0, Compat::Ggml, 2).unwrap_err();
    assert!(e.message.contains("no CUDA kernel"), "{}", e.message);
    let e = plan::resolve_arith(tern::format::Format::Tq2_0, Compat::BitnetCpp, 2).unwrap_err();
    assert!(e.message.contains("TERN_COMPAT_DEFAULT"), "{}", e.message);
    assert_eq!(plan::arith_code(Arith::Default).unwrap(), 0);
}

fn golden(name: &str) -> Vec<u8> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cuda_emu/golden")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// bitnet.cpp's gpu/pack_weight.py output (shared/golden/bitnet_cpp/gpu): each of its words is
/// one of ours (same encoding; bitnet.cpp only permutes words into 16×32 tiles), and the
/// emulated GEMV and GEMM reproduce the reference int32 dots of gpu/test.py.
#[test]
fn bitnet_cpp_gpu_golden() {
    let (n, k) = (256usize, 256usize);
    let ternary: Vec<i8> = golden("s256x256.gpu_ternary_i8.bin")
        .into_iter()
        .map(|b| b as i8)
        .collect();
    let packed = golden("s256x256.gpu_packed_i8.bin");
    let act: Vec<i8> = golden("s256x256.gpu_act_i8.bin")
        .into_iter()
        .map(|b| b as i8)
        .collect();
    let ref_dot: Vec<i32> = golden("s256x256.gpu_ref_dot_i32.bin")
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let gw = GpuWeights::from_ternary(&ternary, n, k, vec![1.0], 0).unwrap();
    assert_eq!(gw.code_offset, CODE_OFFSET_TERNARY);
    let kw = gw.kw();
    let words: Vec<u32> = packed
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let tiles = k / 32;
    for g in 0..n / 16 {
        for tau in 0..tiles {
            for r in 0..16 {
                for h in 0..2 {
                    let theirs = words[(g * tiles + tau) * 32 + 16 * (r / 8) + 8 * h + r % 8];
                    let row = 16 * g + r;
                    let ours = gw.words[row * kw + 2 * tau + h];
                    assert_eq!(theirs, ours, "group {g} tile {tau} row {r} half {h}");
                    let chunk = &ternary[row * k + 32 * tau + 16 * h..][..16];
                    assert_eq!(decode_word(ours, CODE_OFFSET_TERNARY), chunk);
                    assert_eq!(encode_word(chunk, CODE_OFFSET_TERNARY), ours);
                }
            }
        }
    }
    // The dots: activations written straight into the workspace (no quantization kernel).
    for kernel in [GpuKernel::Gemv, GpuKernel::GemmMma] {
        let call = Call {
            rows: n,
            cols: k,
            kp: gw.kp,
            n_groups: 0,
            group_cols: 0,
            code_offset: gw.code_offset,
            n_tokens: 1,
            x_dtype: Dtype::F32,
            x_stride: k,
            y_dtype: Dtype::F32,
            y_stride: n,
            arith: 0,
        };
        let ws = plan::workspace(gw.kp, 1);
        let mut workspace = vec![0u64; ws.bytes.div_ceil(8)];
        let bytes =
            unsafe { std::slice::from_raw_parts_mut(workspace.as_mut_ptr() as *mut u8, ws.bytes) };
        for (i, &a) in act.iter().enumerate() {
            bytes[ws.q + i] = a as u8;
        }
        bytes[ws.act_scale..ws.act_scale + 4].copy_from_slice(&1.0f32.to_le_bytes());
        let mut y = vec![0f32; n];
        let mut dots = vec![0i32; n];
        let b = Buffers {
            w: gw.words.as_ptr() as u64,
            w_scales: gw.scales.as_ptr() as u64,
            bias: 0,
            x: 0,
            y: y.as_mut_ptr() as u64,
            dots: dots.as_mut_ptr() as u64,
            workspace: workspace.as_mut_ptr() as u64,
        };
        let p = plan::params(&call, &b);
        let grid = match kernel {
            GpuKernel::Gemv => [(n / 4) as u32, 1, 1],
            _ => [(n / 64) as u32, 1, 1],
        };
        run(kernel, grid, [128, 1, 1], &p);
        assert_eq!(dots, ref_dot, "{kernel:?}");
        // act_scale 1, weight scale 1, act_sum 0: y = f32(dot) exactly.
        for (yv, d) in y.iter().zip(&ref_dot) {
            assert_eq!(*yv, *d as f32);
        }
    }
}

/// The emulator itself: the mma fragment layout against a plain matrix product, with values
/// that make any misplaced byte visible; and both kernels' exact dots with weights −1..=1
/// (bitnet.cpp's word encoding) and −1..=2 (the wide one), activations down to −128.
#[test]
fn emulated_mma_matches_matrix_product() {
    // One GEMM block, M = 64 rows, K = 128, T = 32 tokens, q and weights set directly.
    let (m, k, t) = (64usize, 128usize, 32usize);
    let mut rng = Rng(77);
    for (hi, offset) in [(1, CODE_OFFSET_TERNARY), (2, CODE_OFFSET_WIDE)] {
        let ternary: Vec<i8> = (0..m * k)
            .map(|_| (rng.next() % (hi + 2)) as i8 - 1)
            .collect();
        let q: Vec<i8> = (0..t * k).map(|_| rng.next() as i8).collect();
        let gw = GpuWeights::from_ternary(&ternary, m, k, vec![1.0], 0).unwrap();
        assert_eq!(gw.code_offset, offset);
        let call = Call {
            rows: m,
            cols: k,
            kp: gw.kp,
            n_groups: 0,
            group_cols: 0,
            code_offset: gw.code_offset,
            n_tokens: t,
            x_dtype: Dtype::F32,
            x_stride: k,
            y_dtype: Dtype::F32,
            y_stride: m,
            arith: 0,
        };
        let ws = plan::workspace(gw.kp, t);
        for (kernel, grid) in [
            (GpuKernel::GemmMma, [1, 1, 1]),
            (GpuKernel::Gemv, [(m / 4) as u32, (t / 4) as u32, 1]),
        ] {
            let mut workspace = vec![0u64; ws.bytes.div_ceil(8)];
            let bytes = unsafe {
                std::slice::from_raw_parts_mut(workspace.as_mut_ptr() as *mut u8, ws.bytes)
            };
            for (i, &v) in q.iter().enumerate() {
                bytes[ws.q + i] = v as u8;
            }
            let mut y = vec![0f32; t * m];
            let mut dots = vec![0i32; t * m];
            let b = Buffers {
                w: gw.words.as_ptr() as u64,
                w_scales: gw.scales.as_ptr() as u64,
                y: y.as_mut_ptr() as u64,
                dots: dots.as_mut_ptr() as u64,
                workspace: workspace.as_mut_ptr() as u64,
                ..Default::default()
            };
            run(kernel, grid, [128, 1, 1], &plan::params(&call, &b));
            for tt in 0..t {
                for r in 0..m {
                    let want: i32 = (0..k)
                        .map(|kk| ternary[r * k + kk] as i32 * q[tt * k + kk] as i32)
                        .sum();
                    assert_eq!(
                        dots[tt * m + r],
                        want,
                        "{kernel:?} hi {hi} token {tt} row {r}"
                    );
                }
            }
        }
    }
}

/// Random shapes (M, K and token tails), formats, compat modes, dtypes, strides and bias.
#[test]
fn emulated_random_shapes() {
    let mut rng = Rng(0xC0FFEE);
    let dts = [Dtype::F32, Dtype::F16, Dtype::Bf16];
    let mut done = 0;
    while done < 20 {
        let (format, variant) = [
            (1, 0),
            (1, 1),
            (2, 0),
            (3, 0),
            (4, 0),
            (5, 0),
            (6, 0),
            (7, 0),
        ][(rng.next() % 8) as usize];
        let rows = 1 + (rng.next() % 150) as usize;
        let cols = match format {
            1 if variant == 0 => 128 * (1 + (rng.next() % 5) as usize),
            1 => 64 * (1 + (rng.next() % 9) as usize),
            4 | 5 => 256 * (1 + (rng.next() % 3) as usize),
            6 => 64 * (1 + (rng.next() % 9) as usize),
            7 => 128 * (1 + (rng.next() % 5) as usize),
            _ => 1 + (rng.next() % 400) as usize,
        };
        let l = layout(format, variant);
        let Ok(shape) = Shape::new(rows as i64, cols as i64) else {
            continue;
        };
        if l.check_shape(shape).is_err() {
            continue;
        }
        let compat = match format {
            4..=7 => Compat::Default,
            _ => [Compat::Default, Compat::BitnetCpp, Compat::BitnetCppLegacy]
                [(rng.next() % 3) as usize],
        };
        let tokens = 1 + (rng.next() % if rng.next().is_multiple_of(2) { 8 } else { 80 }) as usize;
        let c = Case {
            compat,
            x_dtype: dts[(rng.next() % 3) as usize],
            y_dtype: dts[(rng.next() % 3) as usize],
            x_pad: (rng.next() % 3) as usize,
            y_pad: (rng.next() % 3) as usize,
            bias: rng.next().is_multiple_of(2),
            per_row: format >= 4 && rng.next().is_multiple_of(2),
            ..base(l, rows, cols, tokens)
        };
        check(c, rng.next());
        done += 1;
    }
}
