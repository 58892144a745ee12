//! Criterion benches (`cargo bench`): `Matrix::gemm` per format at the BitNet-b1.58-2B-4T layer
//! shapes — GEMV (1 token) and GEMM (128 tokens), best kernels of this CPU, 1 thread and all
//! cores — and weight quantization + packing of a 2560×6912 f32 matrix per format.
//!
//! Weights stay in cache between iterations here (criterion repeats one call); `tern bench
//! --peers` measures GEMVs with the weights streamed from DRAM and compares with the peers.
//! `TERN_BENCH_QUICK=1` limits the run to one shape (a smoke test).

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tern::context::Context;
use tern::format::{Layout, Shape};
use tern::matrix::{GemmOptions, GemmOutput, Matrix};
use tern::quant::{QuantConfig, quantize_packed};

const FORMATS: [(&str, i32); 5] = [
    ("i2_s", 1),
    ("tq2_0", 5),
    ("tq1_0", 4),
    ("tl1", 2),
    ("tl2", 3),
];

fn shapes() -> Vec<(usize, usize)> {
    if std::env::var_os("TERN_BENCH_QUICK").is_some() {
        vec![(640, 2560)]
    } else {
        vec![(2560, 2560), (640, 2560), (6912, 2560), (2560, 6912)]
    }
}

/// Deterministic N(0, sigma²)-ish values (sum of uniforms), no dependencies.
fn values(n: usize, seed: u64, sigma: f32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            let mut acc = 0f32;
            for _ in 0..4 {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                acc += (s >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            }
            acc * sigma * 1.7
        })
        .collect()
}

fn gemm(c: &mut Criterion) {
    let contexts = [
        ("1t", Context::new(0, 1).expect("context")),
        ("all", Context::new(0, 0).expect("context")),
    ];
    for tokens in [1usize, 128] {
        let mut group = c.benchmark_group(if tokens == 1 { "gemv" } else { "gemm128" });
        group
            .sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_secs(if tokens == 1 { 1 } else { 2 }));
        for (rows, cols) in shapes() {
            let shape = Shape::new(rows as i64, cols as i64).expect("shape");
            let w = values(rows * cols, (rows * 31 + cols) as u64, 0.02);
            let x = values(tokens * cols, 7 + tokens as u64, 1.0);
            let mut y = vec![0f32; tokens * rows];
            group.throughput(Throughput::Elements((rows * cols * tokens) as u64));
            for (name, f) in FORMATS {
                let layout = Layout::new(f, 0, 0, 0, 0).expect("layout");
                let (packed, _) =
                    quantize_packed(layout, shape, &w, &QuantConfig::default()).expect("pack");
                for (tname, ctx) in &contexts {
                    // Other formats on one thread only, to keep `cargo bench` short.
                    if *tname != "1t" && name != "i2_s" {
                        continue;
                    }
                    let m = Matrix::from_packed(ctx, layout, shape, &packed).expect("matrix");
                    let id = BenchmarkId::new(format!("{name}/{tname}"), format!("{rows}x{cols}"));
                    group.bench_function(id, |b| {
                        b.iter(|| {
                            m.gemm(
                                ctx,
                                black_box(&x),
                                cols,
                                GemmOutput {
                                    y: &mut y,
                                    n_tokens: tokens,
                                    stride: rows,
                                },
                                &GemmOptions::default(),
                            )
                            .expect("gemm");
                            black_box(&y);
                        })
                    });
                }
            }
        }
        group.finish();
    }
}

fn quantize(c: &mut Criterion) {
    let (rows, cols) = (2560usize, 6912usize);
    let shape = Shape::new(rows as i64, cols as i64).expect("shape");
    let w = values(rows * cols, 99, 0.02);
    let mut group = c.benchmark_group("quantize_pack");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Bytes((w.len() * 4) as u64));
    for (name, f) in FORMATS {
        let layout = Layout::new(f, 0, 0, 0, 0).expect("layout");
        group.bench_function(BenchmarkId::new(name, format!("{rows}x{cols}")), |b| {
            b.iter(|| {
                black_box(quantize_packed(
                    layout,
                    shape,
                    black_box(&w),
                    &QuantConfig::default(),
                ))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, gemm, quantize);
criterion_main!(benches);
