//! The GEMM driver gives bit-identical outputs on every path: panel layouts (2-bit on AVX2 and
//! AVX-512 VNNI, 1.6-bit on AVX-512 VNNI) against the row layout of the other levels (scalar,
//! AVX-512BW; the other tests check every kernel against exact integer math), for every format and compat mode, with token counts across the
//! token blocks, unaligned row ranges, strides, bias, 1 and 2 threads, `gemm_i8` with garbage in
//! the stride padding, and repeated calls that reuse the scratch buffers.

use tern::context::Context;
use tern::format::{Layout, Shape};
use tern::kernel::Isa;
use tern::matrix::{Activations, GemmOptions, GemmOutput, Matrix};
use tern::quant::{Compat, Method, QuantConfig};

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

fn layouts() -> Vec<(&'static str, Layout, usize)> {
    // (name, layout, column multiple)
    vec![
        ("i2_s x86", Layout::new(1, 0, 0, 0, 0).unwrap(), 128),
        ("i2_s arm", Layout::new(1, 1, 0, 0, 0).unwrap(), 64),
        ("tl1", Layout::new(2, 0, 0, 0, 0).unwrap(), 128),
        ("tl2", Layout::new(3, 0, 0, 0, 0).unwrap(), 128),
        ("tq1_0", Layout::new(4, 0, 0, 0, 0).unwrap(), 256),
        ("tq2_0", Layout::new(5, 0, 0, 0, 0).unwrap(), 256),
    ]
}

fn compats(name: &str) -> Vec<Compat> {
    if name.starts_with("tq") {
        vec![Compat::Default, Compat::Ggml]
    } else {
        vec![Compat::Default, Compat::BitnetCpp, Compat::BitnetCppLegacy]
    }
}

#[test]
fn every_path_gives_the_same_bits() {
    let isas: Vec<Isa> = Isa::available().collect();
    let mut rng = Rng(0xfeed_beef_1234_5679);
    let mut checked = 0;
    for (name, layout, mult) in layouts() {
        for iter in 0..4 {
            let rows = [1, 63, 130, 200][iter] + rng.below(5);
            let cols = mult * (1 + rng.below(6));
            let Ok(shape) = Shape::new(rows as i64, cols as i64) else {
                continue;
            };
            let method = if name.starts_with("tq") && iter % 2 == 1 {
                Method::GgmlRef
            } else {
                Method::Absmean
            };
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.f() * 0.05).collect();
            let cfg = QuantConfig {
                method,
                ..QuantConfig::default()
            };
            let ctxs: Vec<Context> = isas
                .iter()
                .flat_map(|&isa| [(isa, 1), (isa, 2)])
                .map(|(isa, n)| Context::new(isa as i32, n).unwrap())
                .collect();
            let ms: Vec<Matrix> = ctxs
                .iter()
                .map(|c| Matrix::from_f32(c, layout, shape, &w, &cfg).unwrap().0)
                .collect();
            for tokens in [1, 2, 3, 4, 5, 12, 13, 25] {
                let x_stride = cols + rng.below(3) * 5;
                let y_stride = rows + rng.below(3) * 3;
                let mut x: Vec<f32> = (0..tokens * x_stride).map(|_| rng.f() * 4.0).collect();
                if tokens > 2 {
                    x[2 * x_stride..2 * x_stride + cols].fill(0.0);
                }
                let bias: Vec<f32> = (0..rows).map(|_| rng.f()).collect();
                let r0 = rng.below(rows);
                let r1 = r0 + 1 + rng.below(rows - r0);
                for compat in compats(name) {
                    for (use_bias, range) in [(false, None), (true, Some(r0..r1))] {
                        let opts = GemmOptions {
                            compat,
                            rows: range.clone(),
                            bias: use_bias.then_some(&bias[..]),
                        };
                        let mut first: Option<Vec<f32>> = None;
                        for (ctx, m) in ctxs.iter().zip(&ms) {
                            for _rep in 0..2 {
                                let mut y = vec![f32::NAN; tokens * y_stride];
                                m.gemm(
                                    ctx,
                                    &x,
                                    x_stride,
                                    GemmOutput {
                                        y: &mut y,
                                        n_tokens: tokens,
                                        stride: y_stride,
                                    },
                                    &opts,
                                )
                                .unwrap();
                                let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                                match &first {
                                    None => first = Some(y),
                                    Some(f) => {
                                        let fb: Vec<u32> = f.iter().map(|v| v.to_bits()).collect();
                                        assert_eq!(
                                            bits,
                                            fb,
                                            "{name} {rows}x{cols} t{tokens} {compat:?} {range:?} kernel {:?} threads {}",
                                            m.kernel_name(),
                                            ctx.threads.count()
                                        );
                                    }
                                }
                                checked += 1;
                            }
                        }
                    }
                }
                // gemm_i8 with garbage in the stride padding.
                let q_stride = cols + 7;
                let q: Vec<i8> = (0..tokens * q_stride).map(|_| rng.next() as i8).collect();
                let scales: Vec<f32> = (0..tokens).map(|t| 0.5 + t as f32).collect();
                let sums: Vec<i32> = (0..tokens)
                    .map(|t| q[t * q_stride..][..cols].iter().map(|&v| v as i32).sum())
                    .collect();
                let acts = Activations {
                    q: &q,
                    stride: q_stride,
                    scales: &scales,
                    sums: &sums,
                };
                let mut first: Option<Vec<u32>> = None;
                for (ctx, m) in ctxs.iter().zip(&ms) {
                    let mut y = vec![0f32; tokens * rows];
                    m.gemm_i8(
                        ctx,
                        &acts,
                        GemmOutput {
                            y: &mut y,
                            n_tokens: tokens,
                            stride: rows,
                        },
                        &GemmOptions::default(),
                    )
                    .unwrap();
                    let bits: Vec<u32> = y.iter().map(|v| v.to_bits()).collect();
                    match &first {
                        None => first = Some(bits),
                        Some(f) => assert_eq!(&bits, f, "gemm_i8 {name} {rows}x{cols} t{tokens}"),
                    }
                }
            }
        }
    }
    println!("{checked} outputs compared");
}

/// A TQ matrix whose block scales are all equal (one absmean scale, as BitNet models have)
/// computes `TERN_COMPAT_DEFAULT` exactly as a one-scale matrix with the same weights and scale
/// (`(dot − sum)·post_scale`, the blocks summed in int32): bit-identical with I2_S on every
/// path. Unequal block scales keep the per-block sum, which differs in rounding.
#[test]
fn equal_block_scales_compute_as_one_scale() {
    let i2s = Layout::new(1, 0, 0, 0, 0).unwrap();
    let mut rng = Rng(0x5ca1_e0f1_0c55_0001);
    let mut checked = 0;
    for (name, layout, _) in layouts().into_iter().filter(|l| l.0.starts_with("tq")) {
        for (rows, cols) in [(70, 256), (130, 768), (64, 2560)] {
            let shape = Shape::new(rows as i64, cols as i64).unwrap();
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.f() * 0.05).collect();
            let (packed, _) =
                tern::quant::quantize_packed(layout, shape, &w, &QuantConfig::default()).unwrap();
            let scales = layout.validate(shape, &packed).unwrap();
            assert!(scales.iter().all(|s| s.to_bits() == scales[0].to_bits()));
            let mut ternary = vec![0i8; rows * cols];
            layout.unpack(shape, &packed, &mut ternary).unwrap();
            let mut i2s_packed = vec![0u8; i2s.packed_size(shape).unwrap()];
            i2s.pack(shape, &ternary, &scales[..1], &mut i2s_packed)
                .unwrap();
            for tokens in [1, 5, 13] {
                let x: Vec<f32> = (0..tokens * cols).map(|_| rng.f() * 3.0).collect();
                for isa in Isa::available() {
                    let ctx = Context::new(isa as i32, 2).unwrap();
                    let run = |layout, packed: &[u8]| {
                        let m = Matrix::from_packed(&ctx, layout, shape, packed).unwrap();
                        let mut y = vec![0f32; tokens * rows];
                        m.gemm(
                            &ctx,
                            &x,
                            cols,
                            GemmOutput {
                                y: &mut y,
                                n_tokens: tokens,
                                stride: rows,
                            },
                            &GemmOptions::default(),
                        )
                        .unwrap();
                        y.iter().map(|v| v.to_bits()).collect::<Vec<u32>>()
                    };
                    assert_eq!(
                        run(layout, &packed),
                        run(i2s, &i2s_packed),
                        "{name} {rows}x{cols} t{tokens} {isa:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    println!("{checked} TQ/I2_S pairs compared");
}

/// One token on two threads (each task quantizes the token itself on panel layouts) checks the
/// call like every other path: a short `y`, a row range past the matrix or a short bias is an
/// error and `y` is left as it was.
#[test]
fn one_token_on_two_threads_rejects_bad_calls_untouched() {
    let mut rng = Rng(0x7e57_0c3e_1234_0001);
    let (rows, cols) = (130, 512);
    let shape = Shape::new(rows as i64, cols as i64).unwrap();
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.f() * 0.05).collect();
    let x: Vec<f32> = (0..cols).map(|_| rng.f()).collect();
    let bias = vec![0.5f32; rows - 1];
    for (name, layout, _) in layouts() {
        for isa in Isa::available() {
            let ctx = Context::new(isa as i32, 2).unwrap();
            let m = Matrix::from_f32(&ctx, layout, shape, &w, &QuantConfig::default())
                .unwrap()
                .0;
            let bad: [(usize, GemmOptions); 3] = [
                (rows - 1, GemmOptions::default()),
                (
                    rows,
                    GemmOptions {
                        rows: Some(rows - 2..rows + 1),
                        ..GemmOptions::default()
                    },
                ),
                (
                    rows,
                    GemmOptions {
                        bias: Some(&bias),
                        ..GemmOptions::default()
                    },
                ),
            ];
            for (y_len, opts) in bad {
                let mut y = vec![7f32; y_len];
                let r = m.gemm(
                    &ctx,
                    &x,
                    cols,
                    GemmOutput {
                        y: &mut y,
                        n_tokens: 1,
                        stride: rows,
                    },
                    &opts,
                );
                assert!(r.is_err(), "{name} {isa:?} y {y_len} {opts:?}");
                assert!(y.iter().all(|&v| v == 7.0), "{name} {isa:?}: y written");
            }
        }
    }
}
