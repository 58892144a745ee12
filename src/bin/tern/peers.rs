//! `tern bench --peers`: tern's formats against the peers, in one run on this machine — the DRAM
//! read bandwidth (streaming read of a buffer ≫ L3), the int8 and f32 FMA peaks of this CPU's
//! ISA, a cache-blocked f32 GEMM, ggml's TQ2_0/TQ1_0 through the real libggml (loaded with
//! dlopen, no link-time dependency; skipped with a note when it is not found) — and the goals of
//! the x86 kernel issue. Every number printed is measured in this run.
//!
//! Method: every point runs its implementations round-robin (one timed call of each per round)
//! so machine noise hits all of them alike; medians over the rounds. With 1 token the weights
//! come from DRAM: each implementation rotates over copies of its matrix (≥ 2×L3 in all), so
//! the copy a call reads was evicted by the others, as the other layers' weights are in
//! inference; the round includes timed streaming reads with the same thread count, the
//! bandwidth the GEMVs are compared with: of a 256 MiB buffer on huge pages, and of the very
//! bytes the I2_S GEMV streams (another copy of them each round), which is what the decode goal
//! is judged against (on a VM, memory allocated at different times can stream at different
//! rates).

#[path = "peers/f32_gemm.rs"]
mod f32_gemm;
#[path = "peers/ggml.rs"]
mod ggml;
#[path = "peers/goals.rs"]
mod goals;
#[path = "peers/limits.rs"]
mod limits;
#[path = "peers/report.rs"]
mod report;

use std::time::Instant;

use tern::context::Context;
use tern::format::{Layout, Shape};
use tern::matrix::{GemmOptions, GemmOutput, Matrix};
use tern::pages::PageBuf;
use tern::quant::{QuantConfig, quantize_packed};

use super::{Rng, fmt_time, median};
use crate::args::BenchArgs;
use crate::machine;
use f32_gemm::F32Matrix;
use ggml::{Ggml, GgmlMatrix};
use goals::{Goals, print_rows};
use limits::{MIB, Peak};
use report::{print_legend, report_point};

/// tern's formats, in the order printed (name, `tern_format`).
const FORMATS: [(&str, i32); 5] = [
    ("I2_S", 1),
    ("TQ2_0", 5),
    ("TQ1_0", 4),
    ("TL1", 2),
    ("TL2", 3),
];
/// ggml's ternary types (name, `ggml_type`).
const GGML_TYPES: [(&str, i32); 2] = [("TQ2_0", 35), ("TQ1_0", 34)];

/// Rows of the primer matrices (two tiles, so a primer runs on both threads of a pool).
const PRIMER_ROWS: usize = 128;
/// The streaming-read buffer (≫ any L3 here).
const DRAM_BYTES: usize = 256 * MIB;
/// The shape the quantize + pack rows time.
const QUANT_SHAPE: (i64, i64) = (2560, 6912);

/// tern's matrices of one shape: per context, (format name, copies).
type TernCopies = Vec<Vec<(String, Vec<Matrix>)>>;

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
pub struct Entry {
    name: String,
    /// Bytes one call streams: the weights, or the buffer of a read row.
    weight_bytes: usize,
    kind: Row,
    times: Vec<f64>,
}

/// What every point shares: the contexts, the peers' library and the machine limits.
struct Setup {
    /// (threads, context), in the order of `--threads`.
    ctxs: Vec<(usize, Context)>,
    l3: usize,
    ggml: Option<Ggml>,
    /// The streaming-read buffer lives for the whole run: memory freed and allocated again can
    /// come back slower on a VM (free page reporting hands freed pages to the host, which backs
    /// them anew), and a matrix built on it would be slowed for the whole run.
    dram_buf: PageBuf,
    int8: Option<Peak>,
    f32: Option<Peak>,
    /// (threads, GB/s) of the big read, measured before the points.
    dram: Vec<(usize, f64)>,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    let started = Instant::now();
    let setup = Setup::new(args)?;
    let mut goals = Goals::new(setup.int8);
    for &(rows, cols) in &args.shapes {
        let m = Matrices::build(&setup, args, rows, cols)?;
        for &tokens in &args.tokens {
            let per_threads = time_point(&setup, &m, args, tokens)?;
            report_point(&setup, &m, tokens, &per_threads, &mut goals);
        }
    }
    bench_quantize(args, &mut goals)?;
    goals.print();
    println!();
    print_legend();
    eprintln!(
        "bench --peers finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

impl Setup {
    /// Loads the peers, measures the machine limits and prints the header.
    fn new(args: &BenchArgs) -> Result<Self, String> {
        let mut threads: Vec<usize> = args
            .threads
            .iter()
            .map(|&n| if n == 0 { machine::cores() } else { n as usize })
            .collect();
        threads.dedup();
        let l3 = limits::l3_bytes();
        println!(
            "tern {} bench --peers: tern formats vs ggml (libggml) and an f32 GEMM, same run",
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
        let dram_buf = limits::big_buffer(DRAM_BYTES);
        let (int8, f32) = (limits::int8_peak(), limits::f32_peak());
        let dram = ctxs
            .iter()
            .map(|(n, ctx)| {
                let t: Vec<f64> = (0..7).map(|_| limits::time_read(ctx, &dram_buf)).collect();
                (*n, DRAM_BYTES as f64 / median(&t) / 1e9)
            })
            .collect::<Vec<_>>();
        for (what, peak) in [("int8", int8), ("f32 FMA", f32)] {
            match peak {
                Some(p) => println!(
                    "{what} peak: {:.1} GMAC/s per core ({} loop, 1 thread, this run)",
                    p.gmacs, p.how
                ),
                None => println!("{what} peak: not measured (no x86 SIMD level for it)"),
            }
        }
        for (n, bw) in &dram {
            println!(
                "DRAM read: {bw:.1} GB/s with {n} thread(s) (256 MiB, median of 7; re-measured in every 1-token round)"
            );
        }
        println!(
            "f32 GEMM: {} (packed panels, cache-blocked)",
            f32_gemm::kernel_name()
        );
        println!();
        Ok(Self {
            ctxs,
            l3,
            ggml,
            dram_buf,
            int8,
            f32,
            dram,
        })
    }
}

/// Every implementation's matrices at one shape: copies for the 1-token points, and primers.
struct Matrices {
    rows: usize,
    cols: usize,
    /// The layouts depend on the context's kernels.
    tern: TernCopies,
    /// Per ggml type: copies.
    ggml: Vec<Vec<GgmlMatrix>>,
    f32: Vec<F32Matrix>,
    /// Primers (1 token): before each timed call the same implementation runs once on a small
    /// matrix of this width (and a read row reads a small buffer), as the previous layer's GEMV
    /// does in inference: the call's code, its buffers and the activations are then where
    /// back-to-back layers leave them, and only the weights come from DRAM. Without them a GEMV
    /// timed right after the big read or the f32 baseline (which evict L3) would also fetch its
    /// code and buffers from DRAM.
    p_rows: usize,
    tern_p: Vec<Vec<Matrix>>,
    ggml_p: Vec<GgmlMatrix>,
    f32_p: F32Matrix,
}

impl Matrices {
    fn build(setup: &Setup, args: &BenchArgs, rows: usize, cols: usize) -> Result<Self, String> {
        let shape = Shape::new(rows as i64, cols as i64).map_err(|e| e.to_string())?;
        let mut w = vec![0f32; rows * cols];
        Rng::new(0x7e5_0001 ^ ((rows as u64) << 32) ^ cols as u64).fill_normal(&mut w, 0.02);
        // Copies for the 1-token points: a GEMV runs on copy `round % n`, so the other copies
        // (≥ 2×L3 in all) have evicted it since its last call, as the other layers' weights do
        // in inference.
        let any_decode = args.tokens.contains(&1);
        let copies = |bytes: usize| {
            if any_decode {
                (2 * setup.l3).div_ceil(bytes.max(1)).max(2)
            } else {
                1
            }
        };
        let tern = tern_copies(setup, shape, &w, copies)?;
        let ggml = match &setup.ggml {
            Some(g) if cols.is_multiple_of(256) => GGML_TYPES
                .iter()
                .map(|&(n, ty)| {
                    let m = g.matrix(n, ty, &w, rows, cols);
                    let k = copies(m.data.len());
                    vec![m; k]
                })
                .collect(),
            _ => Vec::new(),
        };
        let n_f32 = copies(rows * cols * 4);
        let f32 = (0..n_f32).map(|_| F32Matrix::new(&w, rows, cols)).collect();
        let p_rows = rows.min(PRIMER_ROWS);
        let p_w = &w[..p_rows * cols];
        let p_shape = Shape::new(p_rows as i64, cols as i64).map_err(|e| e.to_string())?;
        let tern_p = tern_primers(setup, shape, p_shape, p_w)?;
        let ggml_p = match &setup.ggml {
            Some(g) if cols.is_multiple_of(256) => GGML_TYPES
                .iter()
                .map(|&(n, ty)| g.matrix(n, ty, p_w, p_rows, cols))
                .collect(),
            _ => Vec::new(),
        };
        let m = Self {
            rows,
            cols,
            tern,
            ggml,
            f32,
            p_rows,
            tern_p,
            ggml_p,
            f32_p: F32Matrix::new(p_w, p_rows, cols),
        };
        if any_decode {
            let tern_bytes = m.tern.iter().flatten().flat_map(|(_, ms)| ms);
            let ggml_bytes = m.ggml.iter().flatten().map(|g| &g.data[..]);
            let f32_bytes = m.f32.iter().map(F32Matrix::bytes);
            limits::settle(
                tern_bytes
                    .map(|t| t.kernel_bytes())
                    .chain(ggml_bytes)
                    .chain(f32_bytes)
                    .collect(),
            );
        }
        eprintln!(
            "{rows}x{cols}: matrices built (copies for 1-token points: tern I2_S {}, f32 {n_f32})",
            m.tern[0][0].1.len(),
        );
        Ok(m)
    }

    /// Implementation `k` of context `ci` (tern formats, then ggml types, then f32) on copy `c`
    /// of its matrices, or on its primer.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &self,
        setup: &Setup,
        ci: usize,
        k: usize,
        c: Option<usize>,
        x: &[f32],
        tokens: usize,
        y: &mut [f32],
        q8: &mut Vec<u8>,
    ) -> Result<(), String> {
        let ctx = &setup.ctxs[ci].1;
        let nt = self.tern[ci].len();
        if k < nt {
            let ms = &self.tern[ci][k].1;
            let (m, rows) = match c {
                Some(c) => (&ms[c % ms.len()], self.rows),
                None => (&self.tern_p[ci][k], self.p_rows),
            };
            m.gemm(
                ctx,
                x,
                self.cols,
                GemmOutput {
                    y,
                    n_tokens: tokens,
                    stride: rows,
                },
                &GemmOptions::default(),
            )
            .map_err(|e| e.to_string())
        } else if k < nt + self.ggml.len() {
            let lib = setup.ggml.as_ref().expect("ggml rows only when loaded");
            let gs = &self.ggml[k - nt];
            let g = c.map_or(&self.ggml_p[k - nt], |c| &gs[c % gs.len()]);
            lib.mul_mat(ctx, g, x, tokens, y, q8);
            Ok(())
        } else {
            let m = c.map_or(&self.f32_p, |c| &self.f32[c % self.f32.len()]);
            m.gemm(ctx, x, tokens, y);
            Ok(())
        }
    }
}

/// tern's matrices per context and format, with `copies(bytes)` copies each. The copies are
/// made round-robin over contexts and formats, so every format gets the same mix of memory: on
/// a VM some freshly allocated memory can stream slower than the rest (how the host backs it),
/// and building one format's copies in a row could hand all of them the slow part.
fn tern_copies(
    setup: &Setup,
    shape: Shape,
    w: &[f32],
    copies: impl Fn(usize) -> usize,
) -> Result<TernCopies, String> {
    let mut tern: TernCopies = Vec::new();
    let mut builds = Vec::new();
    for (ci, (_, ctx)) in setup.ctxs.iter().enumerate() {
        let mut v = Vec::new();
        for (name, f) in FORMATS {
            let layout = Layout::new(f, 0, 0, 0, 0).map_err(|e| e.to_string())?;
            if layout.packed_size(shape).is_err() {
                continue;
            }
            let (packed, _) = quantize_packed(layout, shape, w, &QuantConfig::default())
                .map_err(|e| format!("{name}: {e}"))?;
            let first =
                Matrix::from_packed(ctx, layout, shape, &packed).map_err(|e| e.to_string())?;
            builds.push((ci, v.len(), layout, packed, copies(first.kernel_layout().1)));
            v.push((name.to_string(), vec![first]));
        }
        tern.push(v);
    }
    let most = builds.iter().map(|b| b.4).max().unwrap_or(1);
    for c in 1..most {
        for (ci, k, layout, packed, n) in &builds {
            if c < *n {
                let m = Matrix::from_packed(&setup.ctxs[*ci].1, *layout, shape, packed)
                    .map_err(|e| e.to_string())?;
                tern[*ci][*k].1.push(m);
            }
        }
    }
    Ok(tern)
}

/// The primers of the formats `tern_copies` built at `shape`, in its order, per context.
fn tern_primers(
    setup: &Setup,
    shape: Shape,
    p_shape: Shape,
    p_w: &[f32],
) -> Result<Vec<Vec<Matrix>>, String> {
    let mut packed = Vec::new();
    for (_, f) in FORMATS {
        let layout = Layout::new(f, 0, 0, 0, 0).map_err(|e| e.to_string())?;
        if layout.packed_size(shape).is_ok() {
            let (p, _) = quantize_packed(layout, p_shape, p_w, &QuantConfig::default())
                .map_err(|e| e.to_string())?;
            packed.push((layout, p));
        }
    }
    setup
        .ctxs
        .iter()
        .map(|(_, ctx)| {
            packed
                .iter()
                .map(|(layout, p)| Matrix::from_packed(ctx, *layout, p_shape, p))
                .collect::<Result<_, _>>()
        })
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())
}

/// The rows of a point for context `ci`: the read rows (1 token), then every implementation.
fn entries(m: &Matrices, ci: usize, decode: bool) -> Vec<Entry> {
    let entry = |name: String, weight_bytes, kind| Entry {
        name,
        weight_bytes,
        kind,
        times: Vec::new(),
    };
    let mut v = Vec::new();
    if decode {
        // The 256 MiB buffer, and the very bytes the I2_S GEMV streams (its copies, rotated the
        // same way, half a turn apart): what this memory gives a plain read, which on a VM can
        // be below the big buffer's rate.
        v.push(entry(
            "DRAM read (256 MiB)".into(),
            DRAM_BYTES,
            Row::DramRead,
        ));
        let i2s = m.tern[ci][0].1[0].kernel_bytes().len();
        v.push(entry(
            "read of I2_S's bytes".into(),
            i2s,
            Row::SameBytesRead,
        ));
    }
    for (name, ms) in &m.tern[ci] {
        let (layout, bytes) = ms[0].kernel_layout();
        v.push(entry(format!("tern {name} ({layout})"), bytes, Row::Gemm));
    }
    for gs in &m.ggml {
        let name = format!("ggml {}", gs[0].name);
        v.push(entry(name, gs[0].data.len(), Row::Gemm));
    }
    let name = format!("f32 {}", f32_gemm::kernel_name());
    v.push(entry(name, m.f32[0].bytes().len(), Row::Gemm));
    v
}

/// Times every implementation at `tokens`: (threads, its rows) per context.
///
/// Every round runs the implementations in a new random order, so none always follows the same
/// one (right after the big read, with cold caches, TLB and prefetchers, a GEMV is slower).
/// 128 tokens: the rows of all thread counts share the rounds, so a slow phase of a shared VM
/// (seconds long) weighs on all alike and the thread scaling compares like with like. 1 token:
/// one block of rounds per thread count, as every decode goal compares rows of one thread count
/// and a pool whose worker idles through the 1-thread rows is not what back-to-back GEMVs see.
fn time_point(
    setup: &Setup,
    m: &Matrices,
    args: &BenchArgs,
    tokens: usize,
) -> Result<Vec<(usize, Vec<Entry>)>, String> {
    let (rows, cols) = (m.rows, m.cols);
    let decode = tokens == 1;
    let rounds = match (decode, args.quick) {
        (true, false) => 41,
        (true, true) => 5,
        (false, false) => 9,
        (false, true) => 2,
    };
    let mut x = vec![0f32; tokens * cols];
    Rng::new(0xac7_0002 ^ ((tokens as u64) << 32) ^ cols as u64).fill_normal(&mut x, 1.0);
    let mut y = vec![0f32; tokens * rows];
    let mut y_primer = vec![0f32; tokens * m.p_rows];
    let n_reads = if decode { 2 } else { 0 };
    let mut per_threads: Vec<(usize, Vec<Entry>)> = (0..setup.ctxs.len())
        .map(|ci| (setup.ctxs[ci].0, entries(m, ci, decode)))
        .collect();
    let blocks: Vec<Vec<usize>> = if decode {
        (0..per_threads.len()).map(|ci| vec![ci]).collect()
    } else {
        vec![(0..per_threads.len()).collect()]
    };
    let mut q8 = Vec::new();
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
                let ctx = &setup.ctxs[ci].1;
                let i2s_copies = &m.tern[ci][0].1;
                let e = &mut per_threads[ci].1[ei];
                if decode {
                    match e.kind {
                        Row::Gemm => m.call(
                            setup,
                            ci,
                            ei - n_reads,
                            None,
                            &x,
                            tokens,
                            &mut y_primer,
                            &mut q8,
                        )?,
                        _ => {
                            limits::time_read(ctx, m.tern_p[ci][0].kernel_bytes());
                        }
                    }
                }
                limits::wake_workers(ctx);
                let dt = match e.kind {
                    Row::DramRead => limits::time_read(ctx, &setup.dram_buf),
                    // Not the copy the I2_S GEMV reads this round (it would find it in L3).
                    Row::SameBytesRead => {
                        let n = i2s_copies.len();
                        limits::time_read(ctx, i2s_copies[(round + n / 2) % n].kernel_bytes())
                    }
                    Row::Gemm => {
                        // 1 token: the copy `round % copies`; more: the one matrix.
                        let copy = if decode { round } else { 0 };
                        let t0 = Instant::now();
                        m.call(
                            setup,
                            ci,
                            ei - n_reads,
                            Some(copy),
                            &x,
                            tokens,
                            &mut y,
                            &mut q8,
                        )?;
                        t0.elapsed().as_secs_f64()
                    }
                };
                if round > 0 {
                    e.times.push(dt);
                }
            }
        }
    }
    Ok(per_threads)
}

/// Times weight quantization + packing into every format on one thread.
fn bench_quantize(args: &BenchArgs, goals: &mut Goals) -> Result<(), String> {
    let (qr, qc) = QUANT_SHAPE;
    let shape = Shape::new(qr, qc).map_err(|e| e.to_string())?;
    let mut w = vec![0f32; (qr * qc) as usize];
    Rng::new(99).fill_normal(&mut w, 0.02);
    println!("== weight quantization + packing, {qr}x{qc} f32 (absmean), 1 thread ==");
    let mut table = Vec::new();
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
        table.push([name.to_string(), fmt_time(median(&t)), format!("{gbs:.2}")]);
    }
    print_rows(&["format", "median", "f32 GB/s"], &table);
    println!();
    Ok(())
}
