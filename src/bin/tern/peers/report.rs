//! The printed side of `--peers`: each point's table (with its goals recorded) and the legend.

use super::goals::{Goals, PointResult, print_rows};
use super::{Entry, Matrices, Row, Setup, fmt_time, median};
/// Prints a point's table and records its goals.
pub(super) fn report_point(
    setup: &Setup,
    m: &Matrices,
    tokens: usize,
    per_threads: &[(usize, Vec<Entry>)],
    goals: &mut Goals,
) {
    let (rows, cols) = (m.rows, m.cols);
    let decode = tokens == 1;
    let label = if decode {
        "weights from DRAM"
    } else {
        "weights in cache"
    };
    println!("== {rows}x{cols}, {tokens} token(s), {label} ==");
    let mut i2s_1t = None;
    let mut table = Vec::new();
    for (n, entries) in per_threads {
        let read_bw = |e: &Entry| e.weight_bytes as f64 / median(&e.times) / 1e9;
        let (dram_bw, same_bw) = if decode {
            (read_bw(&entries[0]), read_bw(&entries[1]))
        } else {
            let bw = setup
                .dram
                .iter()
                .find(|d| d.0 == *n)
                .map_or(f64::NAN, |d| d.1);
            (bw, f64::NAN)
        };
        let med = |prefix: &str| {
            entries
                .iter()
                .find(|e| e.name.starts_with(prefix))
                .map(|e| median(&e.times))
        };
        let (i2s, tq2g) = (med("tern I2_S"), med("ggml TQ2_0"));
        if *n == 1 {
            i2s_1t = i2s;
        }
        for e in entries {
            table.push(table_row(setup, m, tokens, *n, e, dram_bw, i2s, tq2g));
        }
        goals.record(&PointResult {
            rows,
            cols,
            tokens,
            threads: *n,
            entries,
            dram_bw,
            same_bw,
            i2s_1t,
        });
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
        ],
        &table,
    );
    println!();
}

/// One row of a point's table.
#[allow(clippy::too_many_arguments)]
fn table_row(
    setup: &Setup,
    m: &Matrices,
    tokens: usize,
    threads: usize,
    e: &Entry,
    dram_bw: f64,
    i2s: Option<f64>,
    tq2g: Option<f64>,
) -> [String; 8] {
    let t = median(&e.times);
    let is_read = e.kind != Row::Gemm;
    let gbs = e.weight_bytes as f64 / t / 1e9;
    let gops = 2.0 * (m.rows * m.cols * tokens) as f64 / t / 1e9;
    // 1 token: of the big read; more: of the peak of the instructions the row runs.
    let frac = if e.kind == Row::DramRead {
        "-".to_string()
    } else if tokens == 1 {
        format!("{:.0}% DRAM", 100.0 * gbs / dram_bw)
    } else {
        let (peak, what) = if e.name.starts_with("f32") {
            (setup.f32, "f32 peak")
        } else {
            (setup.int8, "int8 peak")
        };
        peak.map_or("-".to_string(), |p| {
            format!(
                "{:.0}% {what}",
                100.0 * gops / 2.0 / (p.gmacs * threads as f64)
            )
        })
    };
    let ratio = |r: Option<f64>| match r {
        Some(r) if !is_read => format!("{:.2}x", r / t),
        _ => "-".to_string(),
    };
    [
        threads.to_string(),
        e.name.clone(),
        fmt_time(t),
        format!("{gbs:.1}"),
        if is_read {
            "-".into()
        } else {
            format!("{gops:.0}")
        },
        frac,
        ratio(i2s),
        ratio(tq2g),
    ]
}

pub(super) fn print_legend() {
    println!(
        "median over rounds; every round times each implementation once, in a new random order"
    );
    println!("  (round 0 is warm-up); at 128 tokens a round covers both thread counts.");
    println!("W GB/s: bytes of the weights as the kernel reads them / median (tern: its internal");
    println!(
        "  layout, ggml: its blocks, f32: its packed panels); read rows: their bytes / median."
    );
    println!("fraction: 1 token: W GB/s / the 256 MiB read of the same rounds and thread count;");
    println!(
        "  the read of I2_S's bytes streams the copies the I2_S GEMV reads (rotated likewise,"
    );
    println!("  half a turn apart, so it never reads the copy that GEMV read in the same round).");
    println!("  128 tokens: (M*K*tokens MAC/s) / (the peak per core measured above x threads):");
    println!("  the int8 peak for tern and ggml, the f32 FMA peak for the f32 GEMM.");
    println!("vs X: X's median / this median (> 1: faster than X), X measured in this run.");
}
