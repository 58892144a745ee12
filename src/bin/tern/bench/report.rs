//! The printed side of `tern bench`: the table and the JSON array of the points.

use super::*;

pub(super) fn print_table(points: &[Point], args: &BenchArgs) {
    let vs_column = args.vs.map(|vs| format!("x {}", vs.name()));
    let mut header = vec![
        "format",
        "kernel",
        "shape MxK",
        "tokens",
        "threads",
        "reps",
        "median",
        "GOPS",
        "W GB/s",
        "rel err",
        "ref rows",
        "same y",
    ];
    header.extend(vs_column.as_deref());
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|p| {
            let mut cells = vec![
                p.format.name().to_string(),
                p.kernel.clone(),
                format!("{}x{}", p.rows, p.cols),
                p.tokens.to_string(),
                p.threads.to_string(),
                format!("{}{}", p.reps, if p.capped { "*" } else { "" }),
                fmt_time(p.median_s),
                format!("{:.2}", p.gops),
                format!("{:.2}", p.weight_gbps),
                format!("{:.2e}", p.rel_err),
                format!("{}/{}", p.ref_rows, p.rows),
                match p.same_y {
                    None => "first".to_string(),
                    Some(true) => "yes".to_string(),
                    Some(false) => "NO".to_string(),
                },
            ];
            cells.extend(p.vs_ratio.map(|r| format!("{r:.3}")));
            cells
        })
        .collect();
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    // Left-align the text columns, right-align the numbers.
    let line = |cells: &[String]| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = " ".repeat(width[i] - c.chars().count());
                if i <= 1 || i == 11 {
                    format!("{c}{pad}")
                } else {
                    format!("{pad}{c}")
                }
            })
            .collect();
        parts.join("  ").trim_end().to_string()
    };
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    println!("{}", line(&header));
    println!(
        "{}",
        line(&width.iter().map(|&w| "-".repeat(w)).collect::<Vec<_>>())
    );
    let mut last = None;
    for (p, r) in points.iter().zip(&rows) {
        let group = (p.rows, p.cols, p.format.name(), p.tokens);
        if last.is_some_and(|g| g != group) {
            println!();
        }
        last = Some(group);
        println!("{}", line(r));
    }
    println!();
    println!(
        "median: median wall time of one Matrix::gemm call (activation quantization included);"
    );
    match &vs_column {
        None => println!(
            "        reps = timed calls after one warm-up call (>= {} s and >= {} reps)",
            reps_of(args).target_s,
            reps_of(args).min
        ),
        Some(col) => {
            println!(
                "        reps = rounds (--vs: the formats interleaved; each round times every format's"
            );
            println!(
                "        calls for ~{} s after one warm-up call); median over rounds of the mean call",
                reps_of(args).target_s / versus::rounds(args) as f64
            );
            println!(
                "{col}: median over the rounds of this format's time / the {} format's in the same round",
                col.trim_start_matches("x ")
            );
        }
    }
    if points.iter().any(|p| p.capped) {
        println!(
            "        * scalar kernel at >= {SLOW_TOKENS} tokens: a single call, no warm-up (it is the slow reference)"
        );
    }
    println!("GOPS:   2*M*K*tokens / median;  W GB/s: packed I2_S weight bytes / median");
    println!(
        "rel err: max|y - y_ref| / max|y_ref|, y_ref = dequantized W * x (f32 x) accumulated in f64;"
    );
    println!(
        "        it measures int8 activation quantization. The reference covers every row when"
    );
    println!("        M*K*tokens <= 2^28, else an evenly spaced subset of rows ('ref rows')");
    println!(
        "same y: output bit-identical to the first kernel/thread count of the same shape, format and tokens"
    );
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn json_num(v: f64) -> String {
    if v.is_finite() {
        format!("{v}")
    } else {
        "null".to_string()
    }
}

pub(super) fn json(points: &[Point]) -> String {
    let items: Vec<String> = points
        .iter()
        .map(|p| {
            let fields = [
                ("kernel", json_str(&p.kernel)),
                ("isa", json_str(p.isa.name())),
                ("format", json_str(p.format.name())),
                ("rows", p.rows.to_string()),
                ("cols", p.cols.to_string()),
                ("tokens", p.tokens.to_string()),
                ("threads", p.threads.to_string()),
                ("reps", p.reps.to_string()),
                ("reps_capped", p.capped.to_string()),
                ("median_s", json_num(p.median_s)),
                ("min_s", json_num(p.min_s)),
                ("gops", json_num(p.gops)),
                ("packed_bytes", p.packed_bytes.to_string()),
                ("weight_gb_per_s", json_num(p.weight_gbps)),
                ("rel_err", json_num(p.rel_err)),
                ("ref_rows", p.ref_rows.to_string()),
                (
                    "same_y_as_first",
                    p.same_y.map_or("null".to_string(), |b| b.to_string()),
                ),
                ("vs_ratio", p.vs_ratio.map_or("null".to_string(), json_num)),
            ];
            let body: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}: {v}", json_str(k)))
                .collect();
            format!("  {{{}}}", body.join(", "))
        })
        .collect();
    if items.is_empty() {
        "[]".to_string()
    } else {
        format!("[\n{}\n]", items.join(",\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_escapes_and_nan() {
        assert_eq!(json_str("a\"b\\\n"), "\"a\\\"b\\\\\\u000a\"");
        assert_eq!(json_num(f64::NAN), "null");
    }
}
