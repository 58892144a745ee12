//! `tern bench --peers`: tern's formats against the peers, in one run on this machine — the DRAM
//! read bandwidth (streaming read of a buffer ≫ L3), the int8 `vpdpbusd` peak, an f32 GEMV/GEMM
//! baseline, ggml's TQ2_0/TQ1_0 through the real libggml (loaded with dlopen, no link-time
//! dependency; skipped with a note when it is not found) — and the goals of the x86 issue.
//!
//! Method: every point runs its implementations round-robin (one timed call of each per round)
//! so machine noise hits all of them alike; medians over the rounds. With 1 token the weights
//! come from DRAM: each implementation rotates over copies of its matrix (≥ 2×L3 in all), so
//! the copy a call reads was evicted by the others, as the other layers' weights are in
//! inference; the round includes timed streaming reads with the same thread count, the
//! bandwidth the GEMVs are compared with: of a 256 MiB buffer on huge pages, and of the very
//! bytes the I2_S GEMV streams (another copy of them each round), which is what the decode goal
//! is judged against (memory allocated at different times streams at different rates on this
//! VM).
#![allow(clippy::needless_range_loop)]

use std::ffi::{CStr, CString, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tern::context::Context;
use tern::format::{Layout, Shape};
use tern::kernel::Isa;
use tern::matrix::{GemmOptions, Matrix};
use tern::pages::PageBuf;
use tern::quant::{QuantConfig, quantize_packed};

use super::{Rng, fmt_time, median};
use crate::args::BenchArgs;
use crate::machine;

/// bitnet.cpp's newest I2_S on this machine kind (the table): (rows, cols, tokens,
/// 1-thread seconds, 2-thread seconds).
const BITNET_CPP: [(usize, usize, usize, f64, f64); 5] = [
    (2560, 2560, 1, 123e-6, 64e-6),
    (6912, 2560, 1, 309e-6, 165e-6),
    (2560, 6912, 1, 209e-6, 139e-6),
    (2560, 2560, 128, 5.9e-3, 4.1e-3),
    (6912, 2560, 128, 15.7e-3, 10.8e-3),
];

/// tern's formats, in the order printed (name, `tern_format`).
const FORMATS: [(&str, i32); 5] = [
    ("I2_S", 1),
    ("TQ2_0", 5),
    ("TQ1_0", 4),
    ("TL1", 2),
    ("TL2", 3),
];

const MIB: usize = 1 << 20;
/// Rows of the primer matrices (two tiles, so a primer runs on both threads of a pool).
const PRIMER_ROWS: usize = 128;
/// The streaming-read buffer (≫ any L3 here).
const DRAM_BYTES: usize = 256 * MIB;

/// What a row of a point times.
#[derive(Clone, Copy, PartialEq)]
enum Row {
    /// The streaming read of the 256 MiB buffer.
    DramRead,
    /// The streaming read of the bytes the I2_S GEMV streams.
    SameBytesRead,
    /// A GEMV/GEMM implementation.
    Gemm,
}

/// One implementation timed at a point.
struct Entry {
    name: String,
    /// Bytes one call streams: the weights, or the buffer of a read row.
    weight_bytes: usize,
    kind: Row,
    times: Vec<f64>,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let started = Instant::now();
    let rounds_decode = if args.quick { 5 } else { 41 };
    let rounds_prefill = if args.quick { 2 } else { 9 };
    let threads: Vec<usize> = {
        let mut t: Vec<usize> = args
            .threads
            .iter()
            .map(|&n| if n == 0 { machine::cores() } else { n as usize })
            .collect();
        t.dedup();
        t
    };
    let l3 = l3_bytes();
    println!(
        "tern {} bench --peers: tern formats vs ggml (libggml) and an f32 baseline, same run",
        env!("CARGO_PKG_VERSION")
    );
    println!("cpu:      {}", machine::cpu_model());
    println!("cores:    {}", machine::cores());
    println!("features: {}", machine::feature_names());
    println!(
        "L3:       {} MiB (1-token points rotate over copies of each matrix, >= {} MiB in all)",
        l3 / MIB,
        2 * l3 / MIB
    );
    let ggml = match Ggml::load() {
        Ok(g) => {
            println!("ggml:     {}", g.path);
            Some(g)
        }
        Err(e) => {
            println!("ggml:     not found ({e}); the ggml rows are skipped");
            None
        }
    };
    let ctxs: Vec<(usize, Context)> = threads
        .iter()
        .map(|&n| Context::new(0, n as i32).map(|c| (n, c)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;

    // Machine limits. The read buffer lives for the whole run: memory freed and allocated again
    // can come back slower on this VM (free page reporting hands freed pages to the host, which
    // backs them anew), and a matrix built on it would be slowed for the whole run.
    let dram_buf = big_buffer(DRAM_BYTES);
    let peak = int8_peak();
    let dram = {
        ctxs.iter()
            .map(|(n, ctx)| {
                let t: Vec<f64> = (0..7).map(|_| time_read(ctx, &dram_buf)).collect();
                (*n, DRAM_BYTES as f64 / median(&t) / 1e9)
            })
            .collect::<Vec<_>>()
    };
    match peak {
        Some(p) => println!("int8 peak: {p:.1} GMAC/s per core (vpdpbusd zmm loop, 1 thread)"),
        None => println!("int8 peak: n/a (no AVX-512 VNNI)"),
    }
    for (n, bw) in &dram {
        println!(
            "DRAM read: {bw:.1} GB/s with {n} thread(s) (256 MiB, median of 7; re-measured in every 1-token round)"
        );
    }
    println!();

    let mut goals = Goals::default();
    for &(rows, cols) in &args.shapes {
        let shape = Shape::new(rows as i64, cols as i64).map_err(|e| e.to_string())?;
        let mut w = vec![0f32; rows * cols];
        Rng::new(0x7e5_0001 ^ ((rows as u64) << 32) ^ cols as u64).fill_normal(&mut w, 0.02);
        // Copies of every matrix for the 1-token points: a GEMV runs on copy `round % n`, so
        // the other copies (≥ 2×L3 in all) have evicted it since its last call, as the other
        // layers' weights do in inference.
        let any_decode = args.tokens.contains(&1);
        let copies = |bytes: usize| {
            if any_decode {
                (2 * l3).div_ceil(bytes.max(1)).max(2)
            } else {
                1
            }
        };
        // tern matrices, per context (layouts depend on the context's kernels). The copies are
        // made round-robin over contexts and formats, so every format gets the same mix of
        // memory: on this VM some freshly allocated memory streams 2-3x slower than the rest
        // (how the host backs it), and building one format's copies in a row could hand all of
        // them the slow part.
        let mut tern_m: Vec<Vec<(String, Vec<Matrix>)>> = Vec::new();
        let mut builds = Vec::new();
        for (ci, (_, ctx)) in ctxs.iter().enumerate() {
            let mut v = Vec::new();
            for (name, f) in FORMATS {
                let layout = Layout::new(f, 0, 0, 0, 0).map_err(|e| e.to_string())?;
                if layout.packed_size(shape).is_err() {
                    continue;
                }
                let (packed, _) = quantize_packed(layout, shape, &w, &QuantConfig::default())
                    .map_err(|e| format!("{name}: {e}"))?;
                let first =
                    Matrix::from_packed(ctx, layout, shape, &packed).map_err(|e| e.to_string())?;
                builds.push((ci, v.len(), layout, packed, copies(first.kernel_layout().1)));
                v.push((name.to_string(), vec![first]));
            }
            tern_m.push(v);
        }
        let most = builds.iter().map(|b| b.4).max().unwrap_or(1);
        for c in 1..most {
            for (ci, k, layout, packed, n) in &builds {
                if c < *n {
                    let m = Matrix::from_packed(&ctxs[*ci].1, *layout, shape, packed)
                        .map_err(|e| e.to_string())?;
                    tern_m[*ci][*k].1.push(m);
                }
            }
        }
        let ggml_m: Vec<Vec<GgmlMatrix>> = match &ggml {
            Some(g) if cols.is_multiple_of(256) => [("TQ2_0", 35), ("TQ1_0", 34)]
                .iter()
                .map(|&(n, ty)| {
                    let m = g.matrix(n, ty, &w, rows, cols);
                    let k = copies(m.data.len());
                    let mut v = Vec::with_capacity(k);
                    for _ in 1..k {
                        v.push(m.clone());
                    }
                    v.push(m);
                    v
                })
                .collect(),
            _ => Vec::new(),
        };
        // Primers (1 token): before each timed call the same implementation runs once on a
        // small matrix of this width (and a read row reads a small buffer), as the previous
        // layer's GEMV does in inference: the call's code, its buffers and the activations are
        // then where back-to-back layers leave them, and only the weights come from DRAM.
        // Without them a GEMV timed right after the 256 MiB read or the f32 baseline (which
        // evict L3) ran its code and buffers from DRAM: 5–9 µs more on 2560×2560 in one
        // process, on 1 and 2 threads, where the plain read lost nothing.
        let p_rows = rows.min(PRIMER_ROWS);
        let p_shape = Shape::new(p_rows as i64, cols as i64).map_err(|e| e.to_string())?;
        let p_w = &w[..p_rows * cols];
        // Packed once per format (the formats `tern_m` has, in its order), laid out per context.
        let mut p_packed = Vec::new();
        for (_, f) in FORMATS {
            let layout = Layout::new(f, 0, 0, 0, 0).map_err(|e| e.to_string())?;
            if layout.packed_size(shape).is_ok() {
                let (packed, _) = quantize_packed(layout, p_shape, p_w, &QuantConfig::default())
                    .map_err(|e| e.to_string())?;
                p_packed.push((layout, packed));
            }
        }
        let tern_p: Vec<Vec<Matrix>> = ctxs
            .iter()
            .map(|(_, ctx)| {
                p_packed
                    .iter()
                    .map(|(layout, packed)| Matrix::from_packed(ctx, *layout, p_shape, packed))
                    .collect::<Result<_, _>>()
            })
            .collect::<Result<_, _>>()
            .map_err(|e| e.to_string())?;
        let ggml_p: Vec<GgmlMatrix> = match &ggml {
            Some(g) if cols.is_multiple_of(256) => [("TQ2_0", 35), ("TQ1_0", 34)]
                .iter()
                .map(|&(n, ty)| g.matrix(n, ty, p_w, p_rows, cols))
                .collect(),
            _ => Vec::new(),
        };
        let f32_p = p_w.to_vec();
        let f32w: Vec<Vec<f32>> = vec![w; copies(rows * cols * 4)];
        if any_decode {
            // SAFETY: any f32 bytes are valid u8s, and u8 has no alignment to meet.
            let f32_bytes = f32w.iter().map(|v| unsafe { v.align_to::<u8>().1 });
            let tern_bytes = tern_m
                .iter()
                .flatten()
                .flat_map(|(_, ms)| ms)
                .map(|m| m.kernel_bytes());
            let ggml_bytes = ggml_m.iter().flatten().map(|m| &m.data[..]);
            settle(tern_bytes.chain(ggml_bytes).chain(f32_bytes).collect());
        }
        eprintln!(
            "{rows}x{cols}: matrices built (copies for 1-token points: tern I2_S {}, f32 {})",
            tern_m[0][0].1.len(),
            f32w.len()
        );

        for &tokens in &args.tokens {
            let mut x = vec![0f32; tokens * cols];
            Rng::new(0xac7_0002 ^ ((tokens as u64) << 32) ^ cols as u64).fill_normal(&mut x, 1.0);
            let mut y = vec![0f32; tokens * rows];
            let mut y_primer = vec![0f32; tokens * p_rows];
            let decode = tokens == 1;
            let mut per_threads: Vec<(usize, Vec<Entry>)> = Vec::new();
            let mut n_reads = 0;
            for (ci, (n, _)) in ctxs.iter().enumerate() {
                let entry = |name: String, weight_bytes, kind| Entry {
                    name,
                    weight_bytes,
                    kind,
                    times: Vec::new(),
                };
                // The read rows (1 token): the 256 MiB buffer, and the very bytes the I2_S
                // GEMV streams (its copies, rotated the same way, half a turn apart): what this
                // memory gives a plain read, which on this VM can be below the 256 MiB
                // buffer's rate.
                let i2s_copies = &tern_m[ci][0].1;
                let mut entries: Vec<Entry> = Vec::new();
                if decode {
                    entries.push(entry(
                        "DRAM read (256 MiB)".into(),
                        DRAM_BYTES,
                        Row::DramRead,
                    ));
                    entries.push(entry(
                        "read of I2_S's bytes".into(),
                        i2s_copies[0].kernel_bytes().len(),
                        Row::SameBytesRead,
                    ));
                }
                n_reads = entries.len();
                for (name, ms) in &tern_m[ci] {
                    let (layout, bytes) = ms[0].kernel_layout();
                    entries.push(entry(format!("tern {name} ({layout})"), bytes, Row::Gemm));
                }
                for gs in &ggml_m {
                    let name = format!("ggml {}", gs[0].name);
                    entries.push(entry(name, gs[0].data.len(), Row::Gemm));
                }
                let name = format!("f32 {}", f32_kernel_name());
                entries.push(entry(name, f32w[0].len() * 4, Row::Gemm));
                per_threads.push((*n, entries));
            }
            let rounds = if decode {
                rounds_decode
            } else {
                rounds_prefill
            };
            let mut q8 = Vec::new();
            // Every round runs the implementations in a new random order, so none always
            // follows the same one: right after the 256 MiB read (cold caches, TLB and
            // prefetchers) a GEMV takes up to ~20 µs longer on this machine kind.
            // 128 tokens: the rows of both thread counts share the rounds (one random order
            // per round), so a slow phase of this shared VM (seconds long) weighs on both alike
            // and the 1 → 2 thread scaling compares like with like (scaling in three alternating
            // runs each: one block of rounds per thread count 1.87/1.83, 1.02/1.97, 1.82/1.92;
            // shared rounds 1.91/1.94, 1.97/1.93, 1.96/1.97). 1 token: one block of rounds per
            // thread count, every goal compares rows of one thread count, and sharing the
            // rounds made the 2-thread GEMVs slower (2560×2560, four alternating runs: TL2 or
            // TQ1_0 at 1.14–1.23× I2_S in blocks, 0.71–1.08× shared; the pool's worker idles
            // through every 1-thread row, which it never does between back-to-back GEMVs).
            let blocks: Vec<Vec<usize>> = if decode {
                (0..per_threads.len()).map(|ci| vec![ci]).collect()
            } else {
                vec![(0..per_threads.len()).collect()]
            };
            for block in blocks {
                let mut order: Vec<(usize, usize)> = block
                    .iter()
                    .flat_map(|&ci| (0..per_threads[ci].1.len()).map(move |ei| (ci, ei)))
                    .collect();
                let mut shuffle = Rng::new(0x5a0f_f1e5 ^ rows as u64);
                for round in 0..=rounds {
                    for i in (1..order.len()).rev() {
                        order.swap(i, (shuffle.next_u64() % (i as u64 + 1)) as usize);
                    }
                    for &(ci, ei) in &order {
                        let ctx = &ctxs[ci].1;
                        let i2s_copies = &tern_m[ci][0].1;
                        let e = &mut per_threads[ci].1[ei];
                        // 1 token: the copy `round % copies`; 128 tokens: the one matrix.
                        let copy = if decode { round } else { 0 };
                        // Implementation `k` on copy `c` of its matrices, or on its primer.
                        let mut gemm = |k: usize, c: Option<usize>, y: &mut [f32]| {
                            let nt = tern_m[ci].len();
                            if k < nt {
                                let ms = &tern_m[ci][k].1;
                                let (m, m_rows) = match c {
                                    Some(c) => (&ms[c % ms.len()], rows),
                                    None => (&tern_p[ci][k], p_rows),
                                };
                                m.gemm(ctx, &x, tokens, cols, y, m_rows, &GemmOptions::default())
                                    .map_err(|e| e.to_string())
                            } else if k < nt + ggml_m.len() {
                                let lib = ggml.as_ref().expect("ggml rows only when loaded");
                                let gs = &ggml_m[k - nt];
                                let g = c.map_or(&ggml_p[k - nt], |c| &gs[c % gs.len()]);
                                lib.mul_mat(ctx, g, &x, tokens, y, &mut q8);
                                Ok(())
                            } else {
                                let (w, w_rows) = match c {
                                    Some(c) => (&f32w[c % f32w.len()], rows),
                                    None => (&f32_p, p_rows),
                                };
                                f32_gemm(ctx, w, w_rows, cols, &x, tokens, y);
                                Ok(())
                            }
                        };
                        if decode {
                            match e.kind {
                                Row::Gemm => gemm(ei - n_reads, None, &mut y_primer)?,
                                _ => {
                                    time_read(ctx, tern_p[ci][0].kernel_bytes());
                                }
                            }
                        }
                        wake_workers(ctx);
                        let dt = match e.kind {
                            Row::DramRead => time_read(ctx, &dram_buf),
                            // Not the copy the I2_S GEMV reads this round (it would find it
                            // in L3).
                            Row::SameBytesRead => {
                                let n = i2s_copies.len();
                                time_read(ctx, i2s_copies[(round + n / 2) % n].kernel_bytes())
                            }
                            Row::Gemm => {
                                let t0 = Instant::now();
                                gemm(ei - n_reads, Some(copy), &mut y)?;
                                t0.elapsed().as_secs_f64()
                            }
                        };
                        if round > 0 {
                            e.times.push(dt);
                        }
                    }
                }
            }
            // Report.
            let label = if decode {
                "weights from DRAM"
            } else {
                "weights in cache"
            };
            println!("== {rows}x{cols}, {tokens} token(s), {label} ==");
            let bitnet = BITNET_CPP
                .iter()
                .find(|b| b.0 == rows && b.1 == cols && b.2 == tokens);
            let mut i2s_1t = None;
            let mut rows_out = Vec::new();
            for (n, entries) in &per_threads {
                let read_bw = |e: &Entry| e.weight_bytes as f64 / median(&e.times) / 1e9;
                let (dram_bw, same_bw) = if decode {
                    (read_bw(&entries[0]), read_bw(&entries[1]))
                } else {
                    let bw = dram.iter().find(|d| d.0 == *n).map_or(f64::NAN, |d| d.1);
                    (bw, f64::NAN)
                };
                let i2s = entries
                    .iter()
                    .find(|e| e.name.starts_with("tern I2_S"))
                    .map(|e| median(&e.times));
                let tq2g = entries
                    .iter()
                    .find(|e| e.name.starts_with("ggml TQ2_0"))
                    .map(|e| median(&e.times));
                let bitnet_t = bitnet.map(|b| if *n == 1 { b.3 } else { b.4 });
                if *n == 1 {
                    i2s_1t = i2s;
                }
                for e in entries {
                    let m = median(&e.times);
                    let is_read = e.kind != Row::Gemm;
                    let gbs = e.weight_bytes as f64 / m / 1e9;
                    let gops = 2.0 * (rows * cols * tokens) as f64 / m / 1e9;
                    let frac = if decode {
                        format!("{:.0}% DRAM", 100.0 * gbs / dram_bw)
                    } else {
                        match peak {
                            Some(p) => {
                                format!("{:.0}% int8 peak", 100.0 * gops / 2.0 / (p * *n as f64))
                            }
                            None => "-".into(),
                        }
                    };
                    let ratio =
                        |r: Option<f64>| r.map_or("-".to_string(), |r| format!("{:.2}x", r / m));
                    rows_out.push([
                        n.to_string(),
                        e.name.clone(),
                        fmt_time(m),
                        format!("{gbs:.1}"),
                        if is_read {
                            "-".into()
                        } else {
                            format!("{gops:.0}")
                        },
                        if e.kind == Row::DramRead {
                            "-".into()
                        } else {
                            frac
                        },
                        if is_read { "-".into() } else { ratio(i2s) },
                        if is_read { "-".into() } else { ratio(tq2g) },
                        if is_read { "-".into() } else { ratio(bitnet_t) },
                    ]);
                }
                goals.record(
                    rows,
                    cols,
                    tokens,
                    *n,
                    entries,
                    (dram_bw, same_bw),
                    peak,
                    i2s_1t,
                );
            }
            print_rows(
                &[
                    "thr",
                    "implementation",
                    "median",
                    "W GB/s",
                    "GOP/s",
                    "fraction",
                    "vs I2_S",
                    "vs ggml TQ2_0",
                    "vs bitnet.cpp",
                ],
                &rows_out,
            );
            println!();
        }
    }
    // Weight quantization + packing.
    let (qr, qc) = (2560, 6912);
    let shape = Shape::new(qr, qc).map_err(|e| e.to_string())?;
    let mut w = vec![0f32; (qr * qc) as usize];
    Rng::new(99).fill_normal(&mut w, 0.02);
    println!("== weight quantization + packing, {qr}x{qc} f32 (absmean), 1 thread ==");
    let mut qrows = Vec::new();
    for (name, f) in FORMATS {
        let layout = Layout::new(f, 0, 0, 0, 0).map_err(|e| e.to_string())?;
        let reps = if args.quick { 1 } else { 5 };
        let t: Vec<f64> = (0..reps)
            .map(|_| {
                let t0 = Instant::now();
                let r = quantize_packed(layout, shape, &w, &QuantConfig::default());
                std::hint::black_box(r.is_ok());
                t0.elapsed().as_secs_f64()
            })
            .collect();
        let gbs = (w.len() * 4) as f64 / median(&t) / 1e9;
        goals.quant.push((name.to_string(), gbs));
        qrows.push([name.to_string(), fmt_time(median(&t)), format!("{gbs:.2}")]);
    }
    print_rows(&["format", "median", "f32 GB/s"], &qrows);
    println!();
    goals.print();
    println!();
    println!(
        "median over rounds; every round times each implementation once, in a new random order"
    );
    println!("  (round 0 is warm-up); at 128 tokens a round covers both thread counts.");
    println!("W GB/s: bytes of the weights as the kernel reads them / median (tern: its internal");
    println!("  layout, ggml: its blocks, f32: 4 bytes/weight); read rows: their bytes / median.");
    println!("fraction: 1 token: W GB/s / the 256 MiB read of the same rounds and thread count;");
    println!(
        "  the read of I2_S's bytes streams the copies the I2_S GEMV reads (rotated likewise,"
    );
    println!("  half a turn apart, so it never reads the copy that GEMV read in the same round).");
    println!("  128 tokens: (M*K*tokens MAC/s) / (int8 peak per core x threads).");
    println!("vs X: X's median / this median (> 1: faster than X). bitnet.cpp: the issue's table.");
    eprintln!(
        "bench --peers finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn print_rows<const N: usize>(header: &[&str; N], rows: &[[String; N]]) {
    let mut w: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (wi, c) in w.iter_mut().zip(r) {
            *wi = (*wi).max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(w[i] - c.chars().count());
                if i == 1 || (N == 3 && i == 0) {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|s| s.to_string()).collect());
    line(w.iter().map(|&n| "-".repeat(n)).collect());
    for r in rows {
        line(r.to_vec());
    }
}

/// The goals of the x86 issue, checked on this run's medians.
#[derive(Default)]
struct Goals {
    /// (shape, threads, I2_S W GB/s / the read of its bytes, / the 256 MiB read)
    decode_bw: Vec<(String, usize, f64, f64)>,
    /// (shape, best 1.6-bit format, its speedup over I2_S) at 2 threads, 1 token
    compact: Vec<(String, String, f64)>,
    /// (shape, threads, fraction of int8 peak per core)
    prefill_peak: Vec<(String, usize, f64)>,
    /// (shape, 2-thread speedup over 1 thread)
    scaling: Vec<(String, f64)>,
    /// (shape, tokens, threads, format, time / I2_S time)
    formats: Vec<(String, usize, usize, String, f64)>,
    quant: Vec<(String, f64)>,
}

impl Goals {
    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        rows: usize,
        cols: usize,
        tokens: usize,
        threads: usize,
        entries: &[Entry],
        (dram_bw, same_bw): (f64, f64),
        peak: Option<f64>,
        i2s_1t: Option<f64>,
    ) {
        let shape = format!("{rows}x{cols}");
        let med = |p: &str| {
            entries
                .iter()
                .find(|e| e.name.starts_with(p))
                .map(|e| (median(&e.times), e.weight_bytes))
        };
        let Some((i2s, i2s_bytes)) = med("tern I2_S") else {
            return;
        };
        if tokens == 1 {
            let bw = i2s_bytes as f64 / i2s / 1e9;
            self.decode_bw
                .push((shape.clone(), threads, bw / same_bw, bw / dram_bw));
            if threads == 2 {
                let best = ["tern TQ1_0", "tern TL2"]
                    .iter()
                    .filter_map(|p| med(p).map(|m| (p.trim_start_matches("tern "), m.0)))
                    .min_by(|a, b| a.1.total_cmp(&b.1));
                if let Some((n, t)) = best {
                    self.compact.push((shape.clone(), n.to_string(), i2s / t));
                }
            }
        } else if let Some(p) = peak {
            let macs = (rows * cols * tokens) as f64 / i2s / 1e9;
            self.prefill_peak
                .push((shape.clone(), threads, macs / (p * threads as f64)));
            if threads == 2
                && let Some(t1) = i2s_1t
            {
                self.scaling.push((shape.clone(), t1 / i2s));
            }
        }
        for f in ["TQ2_0", "TQ1_0", "TL1", "TL2"] {
            if let Some((t, _)) = med(&format!("tern {f}")) {
                self.formats
                    .push((shape.clone(), tokens, threads, f.to_string(), t / i2s));
            }
        }
    }

    fn print(&self) {
        println!("== goals (issue: x86 kernels that beat bitnet.cpp) ==");
        let mark = |ok: bool| if ok { "MET    " } else { "NOT MET" };
        for (s, n, same, dram) in &self.decode_bw {
            println!(
                "{} 1 token {s}, {n} thread(s): I2_S at {:.0}% of a plain read of the same bytes \
                 ({:.0}% of the 256 MiB read) (goal >= 90%)",
                mark(*same >= 0.9),
                100.0 * same,
                100.0 * dram
            );
        }
        for (s, name, r) in &self.compact {
            println!(
                "{} 1 token {s}, 2 threads: {name} {r:.2}x faster than I2_S (goal >= 1.15x)",
                mark(*r >= 1.15)
            );
        }
        for (s, n, f) in &self.prefill_peak {
            if *n == 1 {
                println!(
                    "{} 128 tokens {s}, 1 thread: I2_S at {:.0}% of the int8 peak (goal >= 80%)",
                    mark(*f >= 0.8),
                    100.0 * f
                );
            }
        }
        for (s, r) in &self.scaling {
            println!(
                "{} 128 tokens {s}: 2 threads {r:.2}x 1 thread (goal >= 1.8x)",
                mark(*r >= 1.8)
            );
        }
        for (s, t, n, f, r) in &self.formats {
            let limit = if f == "TQ2_0" { 1.05 } else { 1.3 };
            if f == "TL2" {
                continue;
            }
            println!(
                "{} {s} {t} token(s) {n} thread(s): {f} takes {r:.2}x I2_S's time (goal <= {limit:.2}x{})",
                mark(*r <= limit),
                if f == "TQ2_0" { ", 'as fast'" } else { "" }
            );
        }
        for (f, g) in &self.quant {
            println!(
                "{} quantize+pack 2560x6912 into {f}: {g:.2} GB/s of f32 per core (goal >= 1)",
                mark(*g >= 1.0)
            );
        }
    }
}

// ---- machine limits ------------------------------------------------------------------------

fn l3_bytes() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index3/size")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            let (n, mul) = match s.strip_suffix('K') {
                Some(n) => (n, 1 << 10),
                None => match s.strip_suffix('M') {
                    Some(n) => (n, 1 << 20),
                    None => (s, 1),
                },
            };
            n.parse::<usize>().ok().map(|n| n * mul)
        })
        .unwrap_or(32 * MIB)
        .max(8 * MIB)
}

/// The streaming-read buffer, on huge pages like the tern matrices' tiles (a heap `Vec` of this
/// size gets 4 KiB pages here, which read ~20% slower on one thread and would flatter every
/// GEMV's fraction).
fn big_buffer(n: usize) -> PageBuf {
    let mut b = PageBuf::zeroed(n, "the streaming-read buffer").unwrap_or_else(|e| panic!("{e}"));
    for (i, v) in b.iter_mut().enumerate() {
        *v = ((i * 131) >> 7) as u8;
    }
    b
}

/// Sums a buffer as u64 words (a streaming read the compiler vectorizes), prefetching 4 KiB
/// ahead up to the buffer's end as the decode kernels do (without it a short read ramps up
/// slower than a GEMV).
fn read_sum(b: &[u8]) -> u64 {
    let mut acc = [0u64; 8];
    // SAFETY: any bytes are valid u64s; the unaligned head and tail are skipped.
    let (_, words, _) = unsafe { b.align_to::<u64>() };
    #[cfg(target_arch = "x86_64")]
    let end = words.as_ptr_range().end.cast::<i8>();
    for c in words.chunks_exact(8) {
        #[cfg(target_arch = "x86_64")]
        {
            let line = c.as_ptr().cast::<i8>().wrapping_add(4096);
            if line < end {
                // SAFETY: a prefetch is a hint; it never faults.
                unsafe {
                    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
                    _mm_prefetch::<_MM_HINT_T0>(line);
                }
            }
        }
        for j in 0..8 {
            acc[j] ^= c[j];
        }
    }
    std::hint::black_box(acc.iter().fold(0, |a, &v| a ^ v))
}

/// Makes sure every worker of the context's pool is awake (spinning) before a timed call, as in
/// inference, where one GEMV follows another within the pool's spin window: after a long gap
/// (the 256 MiB read, the f32 baseline) waking a sleeping worker would add tens of µs to
/// whichever implementation came next. Gives up after 50 ms (a worker that cannot run).
fn wake_workers(ctx: &Context) {
    let n = ctx.threads.count();
    let started = AtomicUsize::new(0);
    let t0 = Instant::now();
    ctx.threads.for_each(n, |_| {
        started.fetch_add(1, Ordering::SeqCst);
        while started.load(Ordering::SeqCst) < n && t0.elapsed().as_millis() < 50 {
            std::hint::spin_loop();
        }
    });
}

/// How long every DRAM-timed buffer is streamed over and over before a shape's rounds.
const SETTLE: Duration = Duration::from_secs(1);

/// Streams `bufs` for `SETTLE`, untimed: on this VM memory written for the first time streams
/// slowly for a while (TL1's copies of 640×2560 ran I2_S's kernel at 1.5–8.4× its time in 5 of
/// 6 full runs, level later in the same run; in 10 full runs with this, never).
fn settle(bufs: Vec<&[u8]>) {
    let t0 = Instant::now();
    while t0.elapsed() < SETTLE {
        for b in &bufs {
            std::hint::black_box(read_sum(b));
        }
    }
}

/// One streaming read of `buf` split in contiguous parts over the context's threads; seconds.
fn time_read(ctx: &Context, buf: &[u8]) -> f64 {
    let n = ctx.threads.count();
    let t0 = Instant::now();
    ctx.threads.for_each(n, |i| {
        let part = buf.len() / n;
        read_sum(&buf[i * part..(i + 1) * part]);
    });
    t0.elapsed().as_secs_f64()
}

/// GMAC/s of one core running independent `vpdpbusd zmm` (64 MACs each), best of 5.
fn int8_peak() -> Option<f64> {
    #[cfg(target_arch = "x86_64")]
    {
        if !Isa::Avx512Vnni.is_available() {
            return None;
        }
        let n = 20_000_000usize;
        let mut best = f64::INFINITY;
        for _ in 0..5 {
            let t0 = Instant::now();
            // SAFETY: the CPU has AVX-512 VNNI (checked above).
            std::hint::black_box(unsafe { dpbusd_loop(n) });
            best = best.min(t0.elapsed().as_secs_f64());
        }
        Some((n * 12 * 64) as f64 / best / 1e9)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = Isa::Scalar;
        None
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn dpbusd_loop(n: usize) -> i64 {
    use std::arch::x86_64::*;
    let a = _mm512_set1_epi8(std::hint::black_box(3));
    let b = _mm512_set1_epi8(std::hint::black_box(-2));
    let mut acc = [_mm512_setzero_si512(); 12];
    for _ in 0..n {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    let mut s = acc[0];
    for v in &acc[1..] {
        s = _mm512_xor_si512(s, *v);
    }
    _mm512_reduce_add_epi64(s)
}

// ---- f32 baseline --------------------------------------------------------------------------

fn f32_kernel_name() -> &'static str {
    if has_avx512f() {
        "AVX-512 FMA"
    } else {
        "autovectorized"
    }
}

fn has_avx512f() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `y[t·rows + r] = Σ_k w[r·cols + k]·x[t·cols + k]` in f32: tiles of 4 rows × 4 tokens (16
/// FMA accumulators), rows split over the context's threads.
fn f32_gemm(
    ctx: &Context,
    w: &[f32],
    rows: usize,
    cols: usize,
    x: &[f32],
    tokens: usize,
    y: &mut [f32],
) {
    let n_tasks = (rows.div_ceil(64)).min(4 * ctx.threads.count());
    let out = y.as_mut_ptr() as usize;
    ctx.threads.for_each(n_tasks, |i| {
        let (r0, r1) = (rows * i / n_tasks, rows * (i + 1) / n_tasks);
        let mut r = r0;
        while r < r1 {
            let nr = 4.min(r1 - r);
            let mut t = 0;
            while t < tokens {
                let nt = 4.min(tokens - t);
                let mut acc = [[0f32; 4]; 4];
                dot_tile(w, cols, r, nr, x, t, nt, &mut acc);
                for a in 0..nr {
                    for b in 0..nt {
                        // SAFETY: each (token, row) is written by the one task owning the row.
                        unsafe { *(out as *mut f32).add((t + b) * rows + r + a) = acc[a][b] };
                    }
                }
                t += nt;
            }
            r += nr;
        }
    });
}

#[allow(clippy::too_many_arguments)]
fn dot_tile(
    w: &[f32],
    cols: usize,
    r: usize,
    nr: usize,
    x: &[f32],
    t: usize,
    nt: usize,
    acc: &mut [[f32; 4]; 4],
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512f() && cols.is_multiple_of(16) && nr == 4 && nt == 4 {
        // SAFETY: AVX-512F present; rows r..r+4 and tokens t..t+4 are in bounds.
        unsafe {
            dot_tile_avx512(
                &w[r * cols..(r + 4) * cols],
                &x[t * cols..(t + 4) * cols],
                cols,
                acc,
            )
        };
        return;
    }
    for a in 0..nr {
        for b in 0..nt {
            let (wr, xr) = (&w[(r + a) * cols..][..cols], &x[(t + b) * cols..][..cols]);
            acc[a][b] = wr.iter().zip(xr).map(|(p, q)| p * q).sum();
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot_tile_avx512(w: &[f32], x: &[f32], cols: usize, acc: &mut [[f32; 4]; 4]) {
    use std::arch::x86_64::*;
    let mut s = [[_mm512_setzero_ps(); 4]; 4];
    let mut k = 0;
    while k < cols {
        // SAFETY: k + 16 ≤ cols; 4 rows of `cols` in `w` and `x`.
        unsafe {
            let wv: [__m512; 4] =
                std::array::from_fn(|a| _mm512_loadu_ps(w.as_ptr().add(a * cols + k)));
            for b in 0..4 {
                let xv = _mm512_loadu_ps(x.as_ptr().add(b * cols + k));
                for a in 0..4 {
                    s[a][b] = _mm512_fmadd_ps(wv[a], xv, s[a][b]);
                }
            }
        }
        k += 16;
    }
    for a in 0..4 {
        for b in 0..4 {
            acc[a][b] = _mm512_reduce_add_ps(s[a][b]);
        }
    }
}

// ---- ggml through dlopen -------------------------------------------------------------------

type FromFloat = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type VecDot =
    unsafe extern "C" fn(i32, *mut f32, usize, *const c_void, usize, *const c_void, usize, i32);

#[repr(C)]
struct TraitsCpu {
    from_float: Option<FromFloat>,
    vec_dot: Option<VecDot>,
    vec_dot_type: i32,
    nrows: i64,
}

/// The functions of libggml-base/libggml-cpu that the peer rows use.
struct Ggml {
    path: String,
    traits: unsafe extern "C" fn(i32) -> *const TraitsCpu,
    row_size: unsafe extern "C" fn(i32, i64) -> usize,
    quantize_chunk:
        unsafe extern "C" fn(i32, *const f32, *mut c_void, i64, i64, i64, *const f32) -> usize,
}

/// A weight matrix in ggml's blocks.
#[derive(Clone)]
struct GgmlMatrix {
    name: &'static str,
    ty: i32,
    data: Vec<u8>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
}

impl Ggml {
    /// Loads libggml-base and libggml-cpu from `TERN_GGML_LIB` (a directory), the Python
    /// package `libggml` (`pip install libggml-python`), or the default library path.
    fn load() -> Result<Self, String> {
        let mut dirs = Vec::new();
        if let Ok(d) = std::env::var("TERN_GGML_LIB") {
            dirs.push(d);
        }
        if let Ok(out) = std::process::Command::new("python3")
            .args([
                "-c",
                "import libggml, os; print(os.path.dirname(libggml.__file__))",
            ])
            .output()
            && out.status.success()
        {
            let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
            dirs.push(format!("{p}/lib64"));
            dirs.push(format!("{p}/lib"));
        }
        dirs.push(String::new());
        let mut last = String::from("no candidate directory");
        for d in dirs {
            let lib = |n: &str| {
                if d.is_empty() {
                    n.to_string()
                } else {
                    format!("{d}/{n}")
                }
            };
            match (
                dlopen(&lib("libggml-base.so")),
                dlopen(&lib("libggml-cpu.so")),
            ) {
                (Ok(base), Ok(cpu)) => {
                    let g = (|| -> Result<Self, String> {
                        // SAFETY: the symbols have these C signatures (ggml.h, ggml-cpu.h).
                        unsafe {
                            let init: unsafe extern "C" fn() =
                                std::mem::transmute(dlsym(cpu, "ggml_cpu_init")?);
                            init();
                            Ok(Self {
                                path: if d.is_empty() {
                                    "default library path".into()
                                } else {
                                    d.clone()
                                },
                                traits: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(i32) -> *const TraitsCpu,
                                >(dlsym(
                                    cpu,
                                    "ggml_get_type_traits_cpu",
                                )?),
                                row_size: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(i32, i64) -> usize,
                                >(dlsym(
                                    base,
                                    "ggml_row_size",
                                )?),
                                quantize_chunk: std::mem::transmute::<
                                    *mut c_void,
                                    unsafe extern "C" fn(
                                        i32,
                                        *const f32,
                                        *mut c_void,
                                        i64,
                                        i64,
                                        i64,
                                        *const f32,
                                    )
                                        -> usize,
                                >(dlsym(
                                    base,
                                    "ggml_quantize_chunk",
                                )?),
                            })
                        }
                    })();
                    match g {
                        Ok(g) => return Ok(g),
                        Err(e) => last = e,
                    }
                }
                (Err(e), _) | (_, Err(e)) => last = e,
            }
        }
        Err(last)
    }

    fn matrix(
        &self,
        name: &'static str,
        ty: i32,
        w: &[f32],
        rows: usize,
        cols: usize,
    ) -> GgmlMatrix {
        // SAFETY: ggml_row_size/ggml_quantize_chunk on a buffer of rows · row_size bytes.
        let row_bytes = unsafe { (self.row_size)(ty, cols as i64) };
        let mut data = vec![0u8; rows * row_bytes];
        unsafe {
            (self.quantize_chunk)(
                ty,
                w.as_ptr(),
                data.as_mut_ptr().cast(),
                0,
                rows as i64,
                cols as i64,
                std::ptr::null(),
            );
        }
        GgmlMatrix {
            name,
            ty,
            data,
            row_bytes,
            rows,
            cols,
        }
    }

    /// ggml's mul_mat for a TQ type on the CPU: activations → the type's `vec_dot_type` (Q8_K)
    /// with its `from_float`, then one `vec_dot` per (row, token), rows split over the threads
    /// in blocks of 16 rows × 16 tokens as ggml's mul_mat does.
    fn mul_mat(
        &self,
        ctx: &Context,
        m: &GgmlMatrix,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        q8: &mut Vec<u8>,
    ) {
        // SAFETY: the traits are static; from_float/vec_dot get buffers of the sizes ggml
        // computes for `cols` elements.
        unsafe {
            let tr = &*(self.traits)(m.ty);
            let vt = tr.vec_dot_type;
            let q_row = (self.row_size)(vt, m.cols as i64);
            q8.resize(tokens * q_row, 0);
            let from = (*(self.traits)(vt)).from_float.expect("Q8_K from_float");
            for t in 0..tokens {
                from(
                    x[t * m.cols..].as_ptr(),
                    q8[t * q_row..].as_mut_ptr().cast(),
                    m.cols as i64,
                );
            }
            let dot = tr.vec_dot.expect("vec_dot");
            let (rows, cols, rb) = (m.rows, m.cols, m.row_bytes);
            let blocks = rows.div_ceil(16);
            let out = y.as_mut_ptr() as usize;
            let (wp, qp) = (m.data.as_ptr() as usize, q8.as_ptr() as usize);
            ctx.threads.for_each(blocks, |b| {
                let r0 = b * 16;
                for t0 in (0..tokens).step_by(16) {
                    for r in r0..(r0 + 16).min(rows) {
                        for t in t0..(t0 + 16).min(tokens) {
                            dot(
                                cols as i32,
                                (out as *mut f32).add(t * rows + r),
                                0,
                                (wp as *const u8).add(r * rb).cast(),
                                0,
                                (qp as *const u8).add(t * q_row).cast(),
                                0,
                                1,
                            );
                        }
                    }
                }
            });
        }
    }
}

fn dlopen(path: &str) -> Result<*mut c_void, String> {
    let c = CString::new(path).map_err(|e| e.to_string())?;
    // SAFETY: a NUL-terminated path; RTLD_NOW | RTLD_GLOBAL so libggml-cpu finds libggml-base.
    let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_GLOBAL) };
    if h.is_null() {
        // SAFETY: dlerror returns a static message or NULL.
        let e = unsafe { libc::dlerror() };
        let msg = if e.is_null() {
            format!("dlopen {path} failed")
        } else {
            unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
        };
        return Err(msg);
    }
    Ok(h)
}

fn dlsym(h: *mut c_void, name: &str) -> Result<*mut c_void, String> {
    let c = CString::new(name).map_err(|e| e.to_string())?;
    // SAFETY: a live handle from dlopen and a NUL-terminated name.
    let p = unsafe { libc::dlsym(h, c.as_ptr()) };
    if p.is_null() {
        Err(format!("symbol {name} not found in libggml"))
    } else {
        Ok(p)
    }
}
