//! Q2_0 and Q1_0 matrices through the GEMM driver on every ISA level this CPU has (panel layouts
//! on x86 SIMD levels, the row layout elsewhere), 1 and 2 threads:
//!
//! - `TERN_COMPAT_GGML` returns, for every row, the bits of `quant::ggml_dot`'s generic-order
//!   vec_dot of the same Q8_0 bytes (the activations quantized by ggml's quantizer of this
//!   architecture) plus the bias; Q1_0 is also within float rounding of stock x86's AVX2 order.
//! - `TERN_COMPAT_DEFAULT` returns the bits of its formula (per-token int8 activations,
//!   `Σ_b f32(S_b)·d_b / act_scale`, or `f32(Σ S)·(d/act_scale)` when every scale is equal),
//!   the same on every level.
//!
//! Data: code-3-heavy and random codes, all-zero blocks, zero / negative / subnormal f16 scales,
//! row counts that are not multiples of 64, columns 64·n / 128·n including non-multiples of 256,
//! 1 to 130 tokens, bias, row ranges. Further tests: the int16/int32 bounds with the largest
//! magnitudes (all codes 3, activations −128), the compat modes that do not apply, and calls
//! over the scratch bound (run in chunks of tokens) giving the same bits as small calls.

use half::f16;
use tern::context::Context;
use tern::format::{Layout, Shape, q1_0, q2_0};
use tern::kernel::Isa;
use tern::matrix::{Activations, GemmOptions, GemmOutput, Matrix};
use tern::quant::activation::Arith;
use tern::quant::{Compat, ggml_dot, q8_0};

/// xorshift64
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Q {
    Q2_0,
    Q1_0,
}

impl Q {
    fn layout(self) -> Layout {
        match self {
            Q::Q2_0 => Layout::new(6, 0, 0, 0, 0).unwrap(),
            Q::Q1_0 => Layout::new(7, 0, 0, 0, 0).unwrap(),
        }
    }
    fn block(self) -> usize {
        match self {
            Q::Q2_0 => q2_0::BLOCK,
            Q::Q1_0 => q1_0::BLOCK,
        }
    }
    fn block_bytes(self) -> usize {
        match self {
            Q::Q2_0 => q2_0::BLOCK_BYTES,
            Q::Q1_0 => q1_0::BLOCK_BYTES,
        }
    }
    fn name(self) -> &'static str {
        match self {
            Q::Q2_0 => "Q2_0",
            Q::Q1_0 => "Q1_0",
        }
    }
    /// The values (−1..=2 or ±1) of one block's code bytes.
    fn values(self, codes: &[u8], out: &mut [i8]) {
        match self {
            Q::Q2_0 => q2_0::unpack_codes(codes, out),
            Q::Q1_0 => q1_0::unpack_codes(codes, out),
        }
    }
    /// ggml's generic-order vec_dot of one weight row with its Q8_0 activation row.
    fn vec_dot(self, w: &[u8], y: &[u8]) -> f32 {
        match self {
            Q::Q2_0 => ggml_dot::vec_dot_q2_0_q8_0(w, y),
            Q::Q1_0 => ggml_dot::vec_dot_q1_0_q8_0_generic(w, y),
        }
    }
}

/// ggml's CPU `quantize_row_q8_0` on this architecture (what `TERN_COMPAT_GGML` follows).
fn q8_0_quantizer() -> fn(&[f32], &mut [u8]) {
    if cfg!(target_arch = "x86_64") {
        q8_0::quantize_block_x86
    } else if cfg!(target_arch = "aarch64") {
        q8_0::quantize_block_neon
    } else {
        q8_0::quantize_block_ref
    }
}

/// A random packed matrix: per block a scale (normal, zero, negative or subnormal f16) and codes
/// (random, all 3 / all +1, or a zero block), `kind` biasing the mix.
fn random_packed(q: Q, rows: usize, cols: usize, uniform: bool, rng: &mut Rng) -> Vec<u8> {
    let n_blocks = rows * cols / q.block();
    let shared = f16::from_f32(0.01 + rng.f().abs() * 0.05);
    let mut out = Vec::with_capacity(n_blocks * q.block_bytes());
    for _ in 0..n_blocks {
        let d = if uniform {
            shared
        } else {
            match rng.below(10) {
                0 => f16::from_bits(1 + rng.below(0x3ff) as u16),
                1 => f16::ZERO,
                2 => f16::from_f32(-0.02 * rng.f().abs()),
                _ => f16::from_f32(0.001 + rng.f().abs() * 0.1),
            }
        };
        out.extend_from_slice(&d.to_le_bytes());
        for _ in 0..q.block_bytes() - 2 {
            let byte = match (q, rng.below(8)) {
                // Code 3 everywhere (+2·d).
                (Q::Q2_0, 0 | 1) => 0xff,
                // Codes 3 and 2 mixed with random ones.
                (Q::Q2_0, 2) => 0xaa | rng.next() as u8,
                // All-zero values (code 1).
                (Q::Q2_0, 3) => 0x55,
                (Q::Q1_0, 0) => 0xff,
                (Q::Q1_0, 1) => 0x00,
                _ => rng.next() as u8,
            };
            out.push(byte);
        }
    }
    out
}

/// Activations with all-zero tokens, tiny and large magnitudes, ties at Q8_0's rounding.
/// Token rows of several kinds; every seventh has one value whose Q8_0 block scale overflows
/// f16 (`d` = 2e7 / 127 > 65504: ggml stores it as infinity).
fn random_acts(n: usize, cols: usize, rng: &mut Rng) -> Vec<f32> {
    let mut x = vec![0f32; n * cols];
    for t in 0..n {
        let row = &mut x[t * cols..][..cols];
        match t % 5 {
            1 => {}
            2 => row.iter_mut().for_each(|v| *v = rng.f() * 1e3),
            3 => row
                .iter_mut()
                .for_each(|v| *v = (rng.below(255) as f32 - 127.0) * 0.5),
            _ => row.iter_mut().for_each(|v| *v = rng.f()),
        }
        if t % 7 == 6 {
            row[rng.below(cols)] = 2e7;
        }
    }
    x
}

fn contexts() -> Vec<(String, Context)> {
    Isa::available()
        .flat_map(|isa| [(isa, 1), (isa, 2)])
        .map(|(isa, n)| {
            let ctx = Context::new(isa as i32, n).unwrap();
            (format!("{}×{n}", isa.name()), ctx)
        })
        .collect()
}

fn shapes(q: Q, rng: &mut Rng) -> Vec<(usize, usize)> {
    let b = q.block();
    vec![
        (1, b),
        (63, 2 * b),
        (65, 3 * b),
        (130 + rng.below(7), 5 * b),
        (64, 7 * b),
        (17, 40 * b),
    ]
}

/// A call's row range and bias (every other call uses both).
fn call_opts(rows: usize, i: usize, bias: &[f32]) -> (std::ops::Range<usize>, Option<&[f32]>) {
    if i.is_multiple_of(2) || rows < 3 {
        (0..rows, None)
    } else {
        (1..rows - 1, Some(bias))
    }
}

#[test]
fn ggml_mode_equals_the_generic_vec_dot_on_every_level() {
    let ctxs = contexts();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let quantize = q8_0_quantizer();
    let mut checked = 0;
    for q in [Q::Q2_0, Q::Q1_0] {
        for (i, (rows, cols)) in shapes(q, &mut rng).into_iter().enumerate() {
            let shape = Shape::new(rows as i64, cols as i64).unwrap();
            let packed = random_packed(q, rows, cols, i == 4, &mut rng);
            let bias: Vec<f32> = (0..rows).map(|_| rng.f()).collect();
            let row_bytes = cols / q.block() * q.block_bytes();
            for n in [1, 3, 12, 13, 130] {
                let x = random_acts(n, cols, &mut rng);
                let mut y8 = vec![0u8; cols / q8_0::BLOCK * q8_0::BLOCK_BYTES];
                let (range, b) = call_opts(rows, n + i, &bias);
                let mut want = vec![f32::NAN; n * rows];
                for t in 0..n {
                    q8_0::quantize_blocks(quantize, &x[t * cols..][..cols], &mut y8);
                    for r in range.clone() {
                        let w = &packed[r * row_bytes..][..row_bytes];
                        let v = q.vec_dot(w, &y8);
                        want[t * rows + r] = b.map_or(v, |b| v + b[r]);
                        if q == Q::Q1_0 {
                            let avx2 = ggml_dot::vec_dot_q1_0_q8_0_avx2(w, &y8);
                            let mag = 1e-5 * q1_0_magnitude(w, &y8) + 1e-30;
                            // With an infinite activation scale, an order gives ±inf or NaN.
                            assert!(
                                (v - avx2).abs() <= mag || (!v.is_finite() && !avx2.is_finite()),
                                "Q1_0 generic {v} vs AVX2 order {avx2}"
                            );
                        }
                    }
                }
                for (label, ctx) in &ctxs {
                    let m = Matrix::from_packed(ctx, q.layout(), shape, &packed).unwrap();
                    let mut y = vec![f32::NAN; n * rows];
                    let opts = GemmOptions {
                        compat: Compat::Ggml,
                        rows: Some(range.clone()),
                        bias: b,
                    };
                    let out = GemmOutput {
                        y: &mut y,
                        n_tokens: n,
                        stride: rows,
                    };
                    m.gemm(ctx, &x, cols, out, &opts).unwrap();
                    for (k, (g, w)) in y.iter().zip(&want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{} {rows}×{cols} {label} ({}) tokens {n}: token {} row {}: {g} vs {w}",
                            q.name(),
                            m.kernel_name().to_str().unwrap(),
                            k / rows,
                            k % rows
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} GGML-mode calls equal the oracle bit for bit");
}

/// Σ of the magnitudes of a Q1_0 row's products with its Q8_0 row (each `|d_w|·|d_a|·|q|`):
/// the scale of the rounding differences between two summation orders.
fn q1_0_magnitude(w: &[u8], y: &[u8]) -> f32 {
    let d = |b: &[u8]| f32::from(f16::from_le_bytes([b[0], b[1]])).abs();
    w.chunks_exact(q1_0::BLOCK_BYTES)
        .zip(y.chunks_exact(4 * q8_0::BLOCK_BYTES))
        .map(|(wb, yb)| {
            let inner: f32 = yb
                .chunks_exact(q8_0::BLOCK_BYTES)
                .map(|b| d(b) * b[2..].iter().map(|&v| (v as i8 as f32).abs()).sum::<f32>())
                .sum();
            d(wb) * inner
        })
        .sum()
}

/// `TERN_COMPAT_DEFAULT`'s formula on per-token activations `qa` (scale `s`): per-block scales
/// summed in block order, or the one-scale formula when all scales are equal.
fn default_oracle(q: Q, packed: &[u8], rows: usize, cols: usize, qa: &[i8], s: f32) -> Vec<f32> {
    let row_bytes = cols / q.block() * q.block_bytes();
    let mut vals = vec![0i8; q.block()];
    let d_of = |b: &[u8]| f32::from(f16::from_le_bytes([b[0], b[1]]));
    let first = d_of(packed).to_bits();
    let uniform = packed
        .chunks_exact(q.block_bytes())
        .all(|b| d_of(b).to_bits() == first);
    (0..rows)
        .map(|r| {
            let row = &packed[r * row_bytes..][..row_bytes];
            let mut acc = 0f32;
            let mut total = 0i32;
            for (bi, blk) in row.chunks_exact(q.block_bytes()).enumerate() {
                q.values(&blk[2..], &mut vals);
                let sb: i32 = vals
                    .iter()
                    .zip(&qa[bi * q.block()..])
                    .map(|(&v, &a)| v as i32 * a as i32)
                    .sum();
                total += sb;
                acc += sb as f32 * d_of(blk);
            }
            if s == 0.0 {
                0.0
            } else if uniform {
                total as f32 * (f32::from_bits(first) / s)
            } else {
                acc / s
            }
        })
        .collect()
}

#[test]
fn default_mode_is_its_formula_on_every_level() {
    let ctxs = contexts();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut checked = 0;
    for q in [Q::Q2_0, Q::Q1_0] {
        for (i, (rows, cols)) in shapes(q, &mut rng).into_iter().enumerate() {
            let shape = Shape::new(rows as i64, cols as i64).unwrap();
            let packed = random_packed(q, rows, cols, i % 3 == 1, &mut rng);
            let bias: Vec<f32> = (0..rows).map(|_| rng.f()).collect();
            for n in [1, 3, 12, 13, 130] {
                let x = random_acts(n, cols, &mut rng);
                let (range, b) = call_opts(rows, n + i, &bias);
                let mut want = vec![f32::NAN; n * rows];
                let mut qa = vec![0i8; n * cols];
                let mut scales = vec![0f32; n];
                let mut sums = vec![0i32; n];
                for t in 0..n {
                    let qt = &mut qa[t * cols..][..cols];
                    (scales[t], sums[t]) =
                        Arith::Default.quantize_token_scalar(&x[t * cols..][..cols], qt);
                    let o = default_oracle(q, &packed, rows, cols, qt, scales[t]);
                    for r in range.clone() {
                        want[t * rows + r] = b.map_or(o[r], |b| o[r] + b[r]);
                    }
                }
                for (label, ctx) in &ctxs {
                    let m = Matrix::from_packed(ctx, q.layout(), shape, &packed).unwrap();
                    let opts = GemmOptions {
                        compat: Compat::Default,
                        rows: Some(range.clone()),
                        bias: b,
                    };
                    for i8_call in [false, true] {
                        let mut y = vec![f32::NAN; n * rows];
                        let out = GemmOutput {
                            y: &mut y,
                            n_tokens: n,
                            stride: rows,
                        };
                        if i8_call {
                            let acts = Activations {
                                q: &qa,
                                stride: cols,
                                scales: &scales,
                                sums: &sums,
                            };
                            m.gemm_i8(ctx, &acts, out, &opts).unwrap();
                        } else {
                            m.gemm(ctx, &x, cols, out, &opts).unwrap();
                        }
                        for (k, (g, w)) in y.iter().zip(&want).enumerate() {
                            assert_eq!(
                                g.to_bits(),
                                w.to_bits(),
                                "{} {rows}×{cols} {label} tokens {n} gemm_i8 {i8_call}: token {} row {}: {g} vs {w}",
                                q.name(),
                                k / rows,
                                k % rows
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    println!("{checked} DEFAULT-mode calls equal the formula bit for bit");
}

/// The largest magnitudes the kernels can meet: every code 3 (+2) against activations of −128
/// (only `gemm_i8` can hand −128 in), over enough columns to fill every int16 accumulation
/// window many times and a large int32 sum: each output is exactly `2·(−128)·cols·d`.
#[test]
fn code_3_against_minus_128_is_exact() {
    let ctxs = contexts();
    let (rows, cols) = (70, 64 * 1024);
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let mut packed = Vec::new();
    for b in 0..rows * cols / q2_0::BLOCK {
        // Scales 1 and 0.5 (exact); a uniform and a per-block matrix.
        let d = if b.is_multiple_of(3) { 0.5f32 } else { 1.0 };
        packed.extend_from_slice(&f16::from_f32(d).to_le_bytes());
        packed.extend_from_slice(&[0xffu8; 16]);
    }
    let uniform: Vec<u8> = packed
        .chunks_exact(q2_0::BLOCK_BYTES)
        .flat_map(|b| {
            let mut b = b.to_vec();
            b[..2].copy_from_slice(&f16::ONE.to_le_bytes());
            b
        })
        .collect();
    let n = 2;
    let qa = vec![-128i8; n * cols];
    let (scales, sums) = (vec![1.0f32; n], vec![-128 * cols as i32; n]);
    let acts = Activations {
        q: &qa,
        stride: cols,
        scales: &scales,
        sums: &sums,
    };
    let blocks_per_row = cols / q2_0::BLOCK;
    for (label, ctx) in &ctxs {
        for (what, data) in [("per-block", &packed), ("uniform", &uniform)] {
            let m =
                Matrix::from_packed(ctx, Layout::new(6, 0, 0, 0, 0).unwrap(), shape, data).unwrap();
            let mut y = vec![f32::NAN; n * rows];
            let out = GemmOutput {
                y: &mut y,
                n_tokens: n,
                stride: rows,
            };
            m.gemm_i8(ctx, &acts, out, &GemmOptions::default()).unwrap();
            for (k, &v) in y.iter().enumerate() {
                let r = k % rows;
                // Σ_b d_b · (2·(−128)·64), the per-block sum exact in f32 here.
                let want = if what == "uniform" {
                    -256.0 * cols as f32
                } else {
                    (0..blocks_per_row)
                        .map(|b| {
                            if (r * blocks_per_row + b).is_multiple_of(3) {
                                0.5
                            } else {
                                1.0
                            }
                        })
                        .fold(0f32, |a, d| a + -256.0 * 64.0 * d)
                };
                assert_eq!(v, want, "{label} {what} row {r}");
            }
        }
    }
}

#[test]
fn compat_modes_that_do_not_apply_are_refused() {
    let ctx = Context::new(0, 1).unwrap();
    let shape = Shape::new(2, 128).unwrap();
    for q in [Q::Q2_0, Q::Q1_0] {
        let packed = random_packed(q, 2, 128, false, &mut Rng(7));
        let m = Matrix::from_packed(&ctx, q.layout(), shape, &packed).unwrap();
        let x = vec![0.5f32; 128];
        let mut y = vec![0f32; 2];
        for compat in [Compat::BitnetCpp, Compat::BitnetCppLegacy] {
            let opts = GemmOptions {
                compat,
                ..GemmOptions::default()
            };
            let out = GemmOutput {
                y: &mut y,
                n_tokens: 1,
                stride: 2,
            };
            let e = m.gemm(&ctx, &x, 128, out, &opts).unwrap_err().to_string();
            assert!(e.contains("TERN_COMPAT_DEFAULT or TERN_COMPAT_GGML"), "{e}");
        }
        let qa = vec![1i8; 128];
        let acts = Activations {
            q: &qa,
            stride: 128,
            scales: &[1.0],
            sums: &[128],
        };
        let opts = GemmOptions {
            compat: Compat::Ggml,
            ..GemmOptions::default()
        };
        let out = GemmOutput {
            y: &mut y,
            n_tokens: 1,
            stride: 2,
        };
        let e = m.gemm_i8(&ctx, &acts, out, &opts).unwrap_err().to_string();
        assert!(e.contains("32-element block (Q8_0)"), "{e}");
        assert_eq!(y, [0.0, 0.0], "nothing written");
    }
}

/// Calls whose scratch exceeds `SCRATCH_BOUND` run in chunks of tokens: the same bits as calls
/// of one token block each, in both modes, on the scalar level (row layout) and the best one.
#[test]
fn large_calls_run_in_chunks_with_the_same_bits() {
    let (rows, cols, n) = (64, 6912, 300);
    let mut rng = Rng(0x5eed_0bad_cafe_f00d);
    let x = random_acts(n, cols, &mut rng);
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    for q in [Q::Q2_0, Q::Q1_0] {
        let packed = random_packed(q, rows, cols, false, &mut rng);
        for isa in [Isa::Scalar, Isa::best()] {
            let ctx = Context::new(isa as i32, 2).unwrap();
            let m = Matrix::from_packed(&ctx, q.layout(), shape, &packed).unwrap();
            for compat in [Compat::Default, Compat::Ggml] {
                let opts = GemmOptions {
                    compat,
                    ..GemmOptions::default()
                };
                let run = |t0: usize, k: usize, y: &mut [f32]| {
                    let out = GemmOutput {
                        y,
                        n_tokens: k,
                        stride: rows,
                    };
                    m.gemm(&ctx, &x[t0 * cols..], cols, out, &opts).unwrap();
                };
                let mut whole = vec![f32::NAN; n * rows];
                run(0, n, &mut whole);
                let mut blocks = vec![f32::NAN; n * rows];
                for t0 in (0..n).step_by(12) {
                    let k = 12.min(n - t0);
                    run(t0, k, &mut blocks[t0 * rows..][..k * rows]);
                }
                let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                assert!(
                    bits(&whole) == bits(&blocks),
                    "{} {} {compat:?}: chunked outputs differ",
                    q.name(),
                    isa.name()
                );
            }
        }
    }
}
