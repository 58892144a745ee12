//! In-place GEMM is refused: `tern_gemm` / `tern_gemm_i8` fail with INVALID_ARGUMENT, leaving
//! every buffer as it was, when the part of `y` they write shares a byte with an input (x, the
//! bias, q, scales, sums). On several threads such a call would compute from half-written
//! values. Strided buffers that interleave without sharing a byte still work.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::tern_status::*;
use tern::ffi::*;

const N: usize = 2560;

/// A 2-thread context and an N × N I2_S matrix (the shape and threads of the reported bug).
fn setup() -> (*mut tern_context, *mut tern_matrix) {
    let ctx = context(0, 2);
    let mut rng = Rng::new(7);
    let w: Vec<f32> = (0..N * N).map(|_| rng.uniform()).collect();
    let l = i2s(0);
    let mut m = null_mut();
    let st = unsafe {
        tern_matrix_from_f32(
            ctx,
            &l,
            w.as_ptr(),
            N as i64,
            N as i64,
            null(),
            null_mut(),
            &mut m,
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    (ctx, m)
}

fn teardown((ctx, m): (*mut tern_context, *mut tern_matrix)) {
    unsafe {
        tern_matrix_destroy(m);
        tern_context_destroy(ctx);
    }
}

fn expect_overlap(st: tern_status, output: &str, input: &str) {
    assert_eq!(st, TERN_STATUS_INVALID_ARGUMENT);
    let msg = last_error();
    assert!(
        msg.contains(&format!("{output} (written bytes"))
            && msg.contains(&format!("overlaps {input} (read bytes"))
            && msg.contains("in-place"),
        "{msg}"
    );
}

fn values(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.uniform()).collect()
}

#[test]
fn gemm_in_place_is_refused_and_writes_nothing() {
    let (ctx, m) = setup();
    let mut rng = Rng::new(1);
    // y == x: one buffer for both (the reported case, many times over so a race would show).
    let orig = values(&mut rng, N);
    let mut buf = orig.clone();
    for _ in 0..50 {
        let p = buf.as_mut_ptr();
        let st = unsafe { tern_gemm(ctx, m, p, 1, 0, p, 0, null()) };
        expect_overlap(st, "y", "x");
        assert!(buf == orig, "the buffer changed");
    }
    // Partial overlaps: y starts inside x, and x starts inside y.
    let mut big = values(&mut rng, 2 * N);
    let before = big.clone();
    let p = big.as_mut_ptr();
    let st = unsafe { tern_gemm(ctx, m, p, 1, 0, p.add(N - 1), 0, null()) };
    expect_overlap(st, "y", "x");
    let st = unsafe { tern_gemm(ctx, m, p.add(N - 1), 1, 0, p, 0, null()) };
    expect_overlap(st, "y", "x");
    // Several tokens: token 1's output row is token 0's input row.
    let st = unsafe { tern_gemm(ctx, m, p, 1, 0, p.add(N), 0, null()) };
    assert_eq!(st, TERN_STATUS_OK, "adjacent buffers: {}", last_error());
    big.copy_from_slice(&before);
    let mut three = values(&mut rng, 4 * N);
    let q = three.as_mut_ptr();
    let st = unsafe { tern_gemm(ctx, m, q, 2, 0, q.add(N), 0, null()) };
    expect_overlap(st, "y", "x");
    // Bias overlapping y (and only the entries read: rows [row_begin, row_end)).
    let x = values(&mut rng, N);
    let mut y = vec![-7.0f32; N];
    let mut opts = gemm_options(0);
    opts.bias = y.as_ptr();
    let st = unsafe { tern_gemm(ctx, m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, &opts) };
    expect_overlap(st, "y", "opts->bias");
    assert!(y.iter().all(|&v| v == -7.0), "y changed");
    // Only the bytes used count: with rows [N/2, N), a bias at z[0..N) is read at z[N/2..N),
    // which is the unwritten first half of a y at z[N/2..3N/2).
    let mut z = vec![0.5f32; 3 * N / 2];
    opts.row_begin = (N / 2) as i64;
    opts.bias = z.as_ptr();
    let y = unsafe { z.as_mut_ptr().add(N / 2) };
    let st = unsafe { tern_gemm(ctx, m, x.as_ptr(), 1, 0, y, 0, &opts) };
    assert_eq!(
        st,
        TERN_STATUS_OK,
        "bias in y's unwritten rows: {}",
        last_error()
    );
    assert!(z[..N].iter().all(|&v| v == 0.5), "unwritten rows changed");
    teardown((ctx, m));
}

#[test]
fn interleaved_buffers_that_share_no_byte_work() {
    let (ctx, m) = setup();
    let mut rng = Rng::new(2);
    let tokens = 3;
    let xs: Vec<f32> = values(&mut rng, tokens * N);
    let mut reference = vec![0f32; tokens * N];
    let st = unsafe {
        tern_gemm(
            ctx,
            m,
            xs.as_ptr(),
            tokens as i64,
            0,
            reference.as_mut_ptr(),
            0,
            null(),
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    // One buffer of rows of 2N: x in the first half of each row, y in the second.
    let stride = 2 * N;
    let mut buf = vec![0f32; tokens * stride];
    for t in 0..tokens {
        buf[t * stride..][..N].copy_from_slice(&xs[t * N..][..N]);
    }
    let p = buf.as_mut_ptr();
    let st = unsafe {
        tern_gemm(
            ctx,
            m,
            p,
            tokens as i64,
            stride as i64,
            p.add(N),
            stride as i64,
            null(),
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    for t in 0..tokens {
        assert!(
            buf[t * stride + N..][..N] == reference[t * N..][..N],
            "token {t}"
        );
        assert!(
            buf[t * stride..][..N] == xs[t * N..][..N],
            "x of token {t} changed"
        );
    }
    teardown((ctx, m));
}

#[test]
fn gemm_i8_output_overlapping_q_scales_or_sums_is_refused() {
    let (ctx, m) = setup();
    let mut rng = Rng::new(3);
    let x = values(&mut rng, N);
    // Room for q (N bytes), then scales and sums, in one f32 buffer that y may alias.
    let mut buf = vec![0f32; 2 * N + 4];
    let q = buf.as_mut_ptr().cast::<i8>();
    let scales = unsafe { buf.as_mut_ptr().add(N) };
    let sums = unsafe { buf.as_mut_ptr().add(N + 1).cast::<i32>() };
    let st =
        unsafe { tern_quantize_activations(ctx, x.as_ptr(), 1, N as i64, 0, 0, q, scales, sums) };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    let before = buf.clone();
    let base = buf.as_mut_ptr();
    // y over q (at its start, and starting in the middle of q), over scales, over sums.
    for (y, input) in [(base, "q"), (unsafe { base.add(N / 8) }, "q")] {
        let st = unsafe { tern_gemm_i8(ctx, m, q, scales, sums, 1, 0, y, 0, null()) };
        expect_overlap(st, "y", input);
    }
    // q is N bytes = N/4 floats: y placed after q but covering scales and sums.
    let after_q = unsafe { base.add(N / 4) };
    let st = unsafe { tern_gemm_i8(ctx, m, q, scales, sums, 1, 0, after_q, 0, null()) };
    expect_overlap(st, "y", "scales");
    let mut y = vec![0f32; N + 1];
    let st = unsafe {
        tern_gemm_i8(
            ctx,
            m,
            q,
            scales,
            y.as_mut_ptr().add(N).cast::<i32>(),
            1,
            0,
            y.as_mut_ptr(),
            0,
            null(),
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "sums just past y: {}", last_error());
    let st = unsafe {
        tern_gemm_i8(
            ctx,
            m,
            q,
            scales,
            y.as_mut_ptr().add(N - 1).cast::<i32>(),
            1,
            0,
            y.as_mut_ptr(),
            0,
            null(),
        )
    };
    expect_overlap(st, "y", "sums");
    let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
    assert!(bits(&buf) == bits(&before), "an input changed");
    teardown((ctx, m));
}
