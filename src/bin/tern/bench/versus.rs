//! `tern bench --vs FORMAT`: the formats of each shape timed interleaved, round by round, so that
//! each point's ratio to the `--vs` format comes from calls made side by side (this machine's
//! speed drifts by up to 1.5× within minutes, more than the differences between formats).

use super::*;

/// Rounds per point; each round times every format once, each round starting with the next
/// format.
const ROUNDS: usize = 15;
const QUICK_ROUNDS: usize = 3;

/// Rounds per point.
pub(super) fn rounds(args: &BenchArgs) -> usize {
    if args.quick { QUICK_ROUNDS } else { ROUNDS }
}

/// Every format of `--formats` on one shape: for each token count and runner, a warm-up call per
/// format, then the rounds; each format's point gets the median of its per-round ratios to `vs`.
pub(super) fn bench_shape(
    args: &BenchArgs,
    runners: &[Runner],
    (rows, cols): (usize, usize),
    vs: Format,
    total: usize,
    points: &mut Vec<Point>,
) -> Result<(), String> {
    let base = args
        .formats
        .iter()
        .position(|&f| f == vs)
        .ok_or_else(|| format!("--vs {}: not among --formats", vs.name()))?;
    let prepared = args
        .formats
        .iter()
        .map(|&f| prepare(args, runners, (rows, cols), f))
        .collect::<Result<Vec<_>, _>>()?;
    let n = prepared.len();
    let rounds = rounds(args);
    // Seconds of calls per format and round: the plain bench's time per point over the rounds.
    let round_s = reps_of(args).target_s / rounds as f64;
    for &tokens in &args.tokens {
        let x = activations(tokens, cols);
        let refs: Vec<Reference> = prepared
            .iter()
            .map(|(_, wdq)| Reference::new(wdq, cols, &x, tokens))
            .collect();
        let mut first_y: Vec<Option<Vec<f32>>> = vec![None; n];
        for (ri, runner) in runners.iter().enumerate() {
            let matrix = |f: usize| &prepared[f].0[ri];
            let mut ys: Vec<Vec<f32>> = (0..n).map(|_| vec![f32::NAN; tokens * rows]).collect();
            // The slow scalar kernel: one timed call per format, no warm-up (as the plain bench).
            let capped = runner.slow && tokens >= SLOW_TOKENS;
            let mut calls = vec![1usize; n];
            if !capped {
                for (f, c) in calls.iter_mut().enumerate() {
                    let t = call(runner, matrix(f), &x, tokens, &mut ys[f])?;
                    *c = ((round_s / t.max(1e-9)) as usize).clamp(1, 10_000);
                }
            }
            let rounds = if capped { 1 } else { rounds };
            let mut times = vec![Vec::with_capacity(rounds); n];
            for r in 0..rounds {
                for i in 0..n {
                    let f = (i + r) % n;
                    let mut spent = 0.0;
                    for _ in 0..calls[f] {
                        spent += call(runner, matrix(f), &x, tokens, &mut ys[f])?;
                    }
                    times[f].push(spent / calls[f] as f64);
                }
            }
            for f in 0..n {
                let ratios: Vec<f64> = times[f]
                    .iter()
                    .zip(&times[base])
                    .map(|(t, b)| t / b)
                    .collect();
                let y = std::mem::take(&mut ys[f]);
                let (m, reference) = (matrix(f), &refs[f]);
                let mut p = make_point(
                    runner,
                    m,
                    (tokens, y),
                    &times[f],
                    capped,
                    reference,
                    &mut first_y[f],
                );
                p.vs_ratio = Some(median(&ratios));
                log_point(&p, points.len() + 1, total);
                points.push(p);
            }
        }
    }
    Ok(())
}
