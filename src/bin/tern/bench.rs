//! `tern bench`: times `Matrix::gemm` on BitNet-b1.58-2B-4T layer shapes for every kernel this
//! CPU has, 1 thread and all threads, and checks every result against an f64 reference.

use std::time::Instant;

use tern::context::Context;
use tern::format::{Format, Layout, Shape};
use tern::kernel::{Isa, Kernels};
use tern::matrix::{GemmOptions, GemmOutput, Matrix};
use tern::quant::{Method, QuantConfig, quantize_packed};

use crate::args::BenchArgs;
use crate::machine;

#[path = "peers.rs"]
mod peers;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/versus.rs"]
mod versus;

use report::{json, print_table};

/// The scalar kernel is the slow oracle: from this many tokens on it runs once, without warm-up.
const SLOW_TOKENS: usize = 32;
/// The f64 reference covers every row while rows·cols·tokens stays within this many
/// multiply-adds; above it, an evenly spaced subset of rows that fits.
const REF_BUDGET: usize = 1 << 28;
/// Standard deviation of the latent weights (BitNet-like init scale).
const WEIGHT_SIGMA: f64 = 0.02;

/// How many timed calls a point gets.
struct Reps {
    /// Seconds of timed calls to aim for.
    target_s: f64,
    min: usize,
    max: usize,
}

const NORMAL: Reps = Reps {
    target_s: 0.3,
    min: 3,
    max: 100_000,
};
const QUICK: Reps = Reps {
    target_s: 0.03,
    min: 2,
    max: 10_000,
};

/// One kernel × thread count, with its context.
struct Runner {
    isa: Isa,
    kernel: String,
    slow: bool,
    ctx: Context,
}

/// One measured point.
pub struct Point {
    pub format: Format,
    pub kernel: String,
    pub isa: Isa,
    pub rows: usize,
    pub cols: usize,
    pub tokens: usize,
    pub threads: usize,
    pub reps: usize,
    /// Reps capped at 1 (slow scalar kernel).
    pub capped: bool,
    pub median_s: f64,
    pub min_s: f64,
    pub packed_bytes: usize,
    pub gops: f64,
    pub weight_gbps: f64,
    /// max |y − y_ref| / max |y_ref| over the reference rows.
    pub rel_err: f64,
    pub ref_rows: usize,
    /// Whether `y` is bit-identical to the first point of the same shape, format and token count
    /// (`None` for that first point).
    pub same_y: Option<bool>,
    /// `--vs`: the median over rounds of this format's time / the `--vs` format's time.
    pub vs_ratio: Option<f64>,
}

pub fn run(args: &BenchArgs) -> Result<(), String> {
    if args.peers {
        return peers::run(args);
    }
    let started = Instant::now();
    let (runners, notes) = runners(args)?;
    let total = args.shapes.len() * args.formats.len() * args.tokens.len() * runners.len();
    print_header(args, &runners, notes, total);
    let mut points = Vec::with_capacity(total);
    match args.vs {
        Some(vs) => {
            for &shape in &args.shapes {
                versus::bench_shape(args, &runners, shape, vs, total, &mut points)?;
            }
        }
        None => {
            for (&(rows, cols), &format) in args
                .shapes
                .iter()
                .flat_map(|s| args.formats.iter().map(move |f| (s, f)))
            {
                bench_matrix(args, &runners, (rows, cols), format, total, &mut points)?;
            }
        }
    }

    if args.json {
        println!("{}", json(&points));
    } else {
        print_table(&points, args);
    }
    eprintln!("bench finished in {:.1} s", started.elapsed().as_secs_f64());
    let differing = points.iter().filter(|p| p.same_y == Some(false)).count();
    if differing > 0 {
        return Err(format!(
            "{differing} point(s) produced an output different from the first kernel's (see 'same y')"
        ));
    }
    Ok(())
}

/// Prints the machine facts and the plan: to stdout above the table, or to stderr when stdout is
/// JSON.
fn print_header(args: &BenchArgs, runners: &[Runner], notes: Vec<String>, total: usize) {
    // Machine facts go to stdout above the table, or to stderr when stdout is JSON.
    let mut header = vec![
        format!(
            "tern {} bench: Matrix::gemm of every format, {} weights, TERN_COMPAT_DEFAULT",
            env!("CARGO_PKG_VERSION"),
            if args.ggml_ref {
                "ggml-reference (per-block formats) / absmean"
            } else {
                "absmean"
            }
        ),
        format!("cpu:      {}", machine::cpu_model()),
        format!("cores:    {}", machine::cores()),
        format!("features: {}", machine::feature_names()),
    ];
    let mut seen = Vec::new();
    let kernels: Vec<String> = runners
        .iter()
        .filter(|r| {
            !seen.contains(&r.kernel) && {
                seen.push(r.kernel.clone());
                true
            }
        })
        .map(|r| format!("{} ({})", r.kernel, r.isa.name()))
        .collect();
    header.push(format!("kernels:  {}", kernels.join(", ")));
    header.extend(notes);
    header.push(format!(
        "points:   {total} ({} shapes x {} formats x {} token counts x {} kernel/thread combinations){}",
        args.shapes.len(),
        args.formats.len(),
        args.tokens.len(),
        runners.len(),
        if args.quick {
            ", --quick: few reps, numbers are rough"
        } else {
            ""
        }
    ));
    for line in &header {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if !args.json {
        println!();
    }
}

/// Quantizes one shape's weights in `format` once, builds a matrix per runner and times every
/// token count on each, appending the points.
fn bench_matrix(
    args: &BenchArgs,
    runners: &[Runner],
    (rows, cols): (usize, usize),
    format: Format,
    total: usize,
    points: &mut Vec<Point>,
) -> Result<(), String> {
    let reps = reps_of(args);
    let (matrices, wdq) = prepare(args, runners, (rows, cols), format)?;
    for &tokens in &args.tokens {
        let x = activations(tokens, cols);
        let reference = Reference::new(&wdq, cols, &x, tokens);
        let mut first_y: Option<Vec<f32>> = None;

        for (runner, m) in runners.iter().zip(&matrices) {
            let p = time_point(runner, m, &x, tokens, &reference, &mut first_y, reps)?;
            log_point(&p, points.len() + 1, total);
            points.push(p);
        }
    }
    Ok(())
}

/// One shape's weights quantized in `format` (the same latent weights for every format), a
/// matrix per runner, and the dequantized weights the reference uses.
fn prepare(
    args: &BenchArgs,
    runners: &[Runner],
    (rows, cols): (usize, usize),
    format: Format,
) -> Result<(Vec<Matrix>, Vec<f32>), String> {
    let shape = Shape::new(rows as i64, cols as i64).map_err(|e| e.to_string())?;
    let layout = Layout::new(format as i32, 0, 0, 0, 0).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    // Latent weights → ternary, once per shape; each context gets its own Matrix of them.
    let mut w = vec![0f32; shape.elements()];
    Rng::new(0x7e5_0001 ^ ((rows as u64) << 32) ^ cols as u64).fill_normal(&mut w, WEIGHT_SIGMA);
    let cfg = QuantConfig {
        method: if args.ggml_ref && format.spec().per_block_scales {
            Method::GgmlRef
        } else {
            Method::Absmean
        },
        ..QuantConfig::default()
    };
    let (packed, _) = quantize_packed(layout, shape, &w, &cfg).map_err(|e| e.to_string())?;
    let mut wdq = w;
    layout
        .dequantize(shape, &packed, &mut wdq)
        .map_err(|e| e.to_string())?;
    let matrices = runners
        .iter()
        .map(|r| Matrix::from_packed(&r.ctx, layout, shape, &packed))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    eprintln!(
        "{rows}x{cols} {}: weights quantized in {:.2} s",
        format.name(),
        t0.elapsed().as_secs_f64()
    );
    Ok((matrices, wdq))
}

/// The activations of a point (the same for every format).
fn activations(tokens: usize, cols: usize) -> Vec<f32> {
    let mut x = vec![0f32; tokens * cols];
    Rng::new(0xac7_0002 ^ ((tokens as u64) << 32) ^ cols as u64).fill_normal(&mut x, 1.0);
    x
}

/// The f64 reference outputs of a point's sampled rows (`y[i·tokens + t]` for row `rows[i]`) and
/// their largest magnitude.
struct Reference {
    rows: Vec<usize>,
    y: Vec<f64>,
    max: f64,
}

impl Reference {
    /// The reference of dequantized weights `wdq` (`cols` per row) on `tokens` tokens `x`.
    fn new(wdq: &[f32], cols: usize, x: &[f32], tokens: usize) -> Self {
        let rows = reference_rows(wdq.len() / cols, cols, tokens);
        let y = reference(wdq, cols, x, tokens, &rows);
        Self {
            max: y.iter().fold(0f64, |m, v| m.max(v.abs())),
            rows,
            y,
        }
    }
}

/// Times one runner's matrix on `tokens` tokens and checks its outputs against the reference and
/// against the first runner's (`first_y`, set by the first call).
fn time_point(
    runner: &Runner,
    m: &Matrix,
    x: &[f32],
    tokens: usize,
    reference: &Reference,
    first_y: &mut Option<Vec<f32>>,
    reps: &Reps,
) -> Result<Point, String> {
    let mut y = vec![f32::NAN; tokens * m.shape().rows];
    let capped = runner.slow && tokens >= SLOW_TOKENS;
    let times = time_gemm(runner, m, x, tokens, &mut y, reps, capped)?;
    Ok(make_point(
        runner,
        m,
        (tokens, y),
        &times,
        capped,
        reference,
        first_y,
    ))
}

/// The point of one runner's matrix from its call times and its output `y` of `tokens` tokens,
/// checked against the reference and against the first runner's (`first_y`, set by the first).
fn make_point(
    runner: &Runner,
    m: &Matrix,
    (tokens, y): (usize, Vec<f32>),
    times: &[f64],
    capped: bool,
    reference: &Reference,
    first_y: &mut Option<Vec<f32>>,
) -> Point {
    let (rows, cols) = (m.shape().rows, m.shape().cols);
    let (median_s, min_s) = (
        median(times),
        times.iter().copied().fold(f64::INFINITY, f64::min),
    );
    let mut max_err = 0f64;
    for (i, &r) in reference.rows.iter().enumerate() {
        for t in 0..tokens {
            let d = (y[t * rows + r] as f64 - reference.y[i * tokens + t]).abs();
            max_err = if d.is_nan() {
                f64::INFINITY
            } else {
                max_err.max(d)
            };
        }
    }
    let same_y = match first_y {
        None => {
            *first_y = Some(y);
            None
        }
        Some(f) => Some(f.iter().zip(&y).all(|(a, b)| a.to_bits() == b.to_bits())),
    };
    let packed_bytes = m.packed_bytes();
    Point {
        format: m.layout().format(),
        kernel: m.kernel_name().to_string_lossy().into_owned(),
        isa: runner.isa,
        rows,
        cols,
        tokens,
        threads: runner.ctx.threads.count(),
        reps: times.len(),
        capped,
        median_s,
        min_s,
        packed_bytes,
        gops: 2.0 * (rows * cols * tokens) as f64 / median_s / 1e9,
        weight_gbps: packed_bytes as f64 / median_s / 1e9,
        rel_err: if reference.max > 0.0 {
            max_err / reference.max
        } else {
            max_err
        },
        ref_rows: reference.rows.len(),
        same_y,
        vs_ratio: None,
    }
}

/// The progress line of point `index` of `total`.
fn log_point(p: &Point, index: usize, total: usize) {
    eprintln!(
        "[{:>w$}/{total}] {:<5} {:<18} {:>10} t={:<4} threads={:<3} reps={:<6} {:>10} {:>8.2} GOPS {:>7.2} GB/s  err {:.2e}{}",
        index,
        p.format.name(),
        p.kernel,
        format!("{}x{}", p.rows, p.cols),
        p.tokens,
        p.threads,
        format!("{}{}", p.reps, if p.capped { "*" } else { "" }),
        fmt_time(p.median_s),
        p.gops,
        p.weight_gbps,
        p.rel_err,
        if p.same_y == Some(false) {
            "  y DIFFERS from the first kernel"
        } else {
            ""
        },
        w = total.to_string().len(),
    );
}

/// The contexts to run: thread counts (deduplicated by what they resolve to) × ISA levels
/// (deduplicated by the kernel they pick), plus notes on what was dropped.
fn runners(args: &BenchArgs) -> Result<(Vec<Runner>, Vec<String>), String> {
    let mut notes = Vec::new();
    let isas: Vec<Isa> = args
        .isas
        .clone()
        .unwrap_or_else(|| Isa::available().collect());
    let mut kernels: Vec<(Isa, &'static Kernels)> = Vec::new();
    for isa in isas {
        let k = Kernels::for_isa(isa);
        // Levels differ by any kernel a format runs (AVX2 and AVX-VNNI share the row kernel).
        let runs = |k: &Kernels| machine::format_kernels(k);
        match kernels.iter().find(|(_, seen)| runs(seen) == runs(k)) {
            Some((first, _)) => notes.push(format!(
                "note:     {} uses the same kernels as {} ({}); not run twice",
                isa.name(),
                first.name(),
                machine::name(tern::matrix::kernel_name(k, Format::I2S))
            )),
            None => kernels.push((isa, k)),
        }
    }
    let mut threads: Vec<(i32, usize)> = Vec::new();
    for &n in &args.threads {
        let resolved = if n == 0 { machine::cores() } else { n as usize };
        match threads.iter().find(|t| t.1 == resolved) {
            Some(t) => notes.push(format!(
                "note:     threads {n} resolves to {resolved} thread(s), same as {}; not run twice",
                t.0
            )),
            None => threads.push((n, resolved)),
        }
    }
    let mut runners = Vec::new();
    for &(n, _) in &threads {
        for &(isa, k) in &kernels {
            let ctx = Context::new(isa as i32, n).map_err(|e| {
                format!(
                    "cannot create a context (max_isa {}, n_threads {n}): {e}",
                    isa.name()
                )
            })?;
            runners.push(Runner {
                isa,
                kernel: machine::name(tern::matrix::kernel_name(k, Format::I2S)),
                slow: k.isa == Isa::Scalar,
                ctx,
            });
        }
    }
    Ok((runners, notes))
}

/// Times `gemm` calls: one warm-up call, then timed calls until they add up to the target time
/// and the minimum count.
/// `capped`: a single call, no warm-up.
fn time_gemm(
    r: &Runner,
    m: &Matrix,
    x: &[f32],
    tokens: usize,
    y: &mut [f32],
    reps: &Reps,
    capped: bool,
) -> Result<Vec<f64>, String> {
    if capped {
        return Ok(vec![call(r, m, x, tokens, y)?]);
    }
    call(r, m, x, tokens, y)?;
    let mut times = Vec::new();
    let mut spent = 0.0;
    while times.len() < reps.max && (times.len() < reps.min || spent < reps.target_s) {
        let t = call(r, m, x, tokens, y)?;
        spent += t;
        times.push(t);
    }
    Ok(times)
}

/// One `Matrix::gemm` call of `tokens` tokens `x` into `y`, timed (seconds).
fn call(r: &Runner, m: &Matrix, x: &[f32], tokens: usize, y: &mut [f32]) -> Result<f64, String> {
    let (rows, cols) = (m.shape().rows, m.shape().cols);
    let t = Instant::now();
    m.gemm(
        &r.ctx,
        x,
        cols,
        GemmOutput {
            y,
            n_tokens: tokens,
            stride: rows,
        },
        &GemmOptions::default(),
    )
    .map_err(|e| {
        format!(
            "gemm failed ({} {rows}x{cols}, {tokens} tokens): {e}",
            r.kernel
        )
    })?;
    Ok(t.elapsed().as_secs_f64())
}

fn reps_of(args: &BenchArgs) -> &'static Reps {
    if args.quick { &QUICK } else { &NORMAL }
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The rows the reference covers: all, or an evenly spaced subset within `REF_BUDGET`.
fn reference_rows(rows: usize, cols: usize, tokens: usize) -> Vec<usize> {
    let n = (REF_BUDGET / (cols * tokens)).clamp(1, rows);
    (0..n).map(|i| i * rows / n).collect()
}

/// `y_ref[i·tokens + t] = Σ_k wdq[rows[i]][k]·x[t][k]` in f64, over all cores.
fn reference(wdq: &[f32], cols: usize, x: &[f32], tokens: usize, rows: &[usize]) -> Vec<f64> {
    let mut out = vec![0f64; rows.len() * tokens];
    let per = rows.len().div_ceil(machine::cores()).max(1);
    std::thread::scope(|s| {
        for (chunk, idx) in out.chunks_mut(per * tokens).zip(rows.chunks(per)) {
            s.spawn(move || {
                for (o, &r) in chunk.chunks_mut(tokens).zip(idx) {
                    let w = &wdq[r * cols..][..cols];
                    for (t, v) in o.iter_mut().enumerate() {
                        *v = dot_f64(w, &x[t * cols..][..cols]);
                    }
                }
            });
        }
    });
    out
}

fn dot_f64(a: &[f32], b: &[f32]) -> f64 {
    let mut acc = [0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac
        .remainder()
        .iter()
        .zip(bc.remainder())
        .map(|(&p, &q)| p as f64 * q as f64)
        .sum();
    for (p, q) in ac.zip(bc) {
        for j in 0..4 {
            acc[j] += p[j] as f64 * q[j] as f64;
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// splitmix64: small, seeded, reproducible across platforms.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// N(0, sigma²) by Box–Muller.
    fn fill_normal(&mut self, out: &mut [f32], sigma: f64) {
        for pair in out.chunks_mut(2) {
            let r = (-2.0 * self.uniform().ln()).sqrt() * sigma;
            let a = std::f64::consts::TAU * self.uniform();
            pair[0] = (r * a.cos()) as f32;
            if let Some(v) = pair.get_mut(1) {
                *v = (r * a.sin()) as f32;
            }
        }
    }
}

fn fmt_time(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{:.3} s", s)
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_rows_cover_or_sample() {
        assert_eq!(reference_rows(640, 2560, 1).len(), 640);
        let r = reference_rows(6912, 2560, 128);
        assert!(r.len() * 2560 * 128 <= REF_BUDGET && r.len() > 100);
        assert!(r.windows(2).all(|w| w[0] < w[1]) && *r.last().unwrap() < 6912);
    }

    #[test]
    fn helpers() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(dot_f64(&[1.0, 2.0, 3.0, 4.0, 5.0], &[1.0; 5]), 15.0);
        let mut v = vec![0f32; 10_001];
        Rng::new(1).fill_normal(&mut v, 1.0);
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(
            mean.abs() < 0.05 && (var - 1.0).abs() < 0.05,
            "mean {mean} var {var}"
        );
    }
}
