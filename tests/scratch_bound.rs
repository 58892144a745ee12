//! GEMM scratch is bounded: a long prefill on a wide matrix keeps at most `SCRATCH_BOUND` bytes
//! per calling thread during and after the call (it runs in chunks of tokens, with results
//! identical to small calls), and a call whose single token block needs more frees its scratch
//! afterwards. Measured with a counting allocator (this binary has one test, so only the test
//! harness's own thread allocates beside it; the pool's workers allocate nothing).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::*;
use tern::ffi::tern_format::*;
use tern::ffi::tern_status::*;
use tern::ffi::*;
use tern::matrix::SCRATCH_BOUND;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// Allocations made (any size).
static COUNT: AtomicUsize = AtomicUsize::new(0);

fn added(n: usize) {
    COUNT.fetch_add(1, SeqCst);
    let live = LIVE.fetch_add(n, SeqCst) + n;
    PEAK.fetch_max(live, SeqCst);
}

// SAFETY: forwards to the system allocator, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            added(l.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(l) };
        if !p.is_null() {
            added(l.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        LIVE.fetch_sub(l.size(), SeqCst);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            LIVE.fetch_sub(l.size(), SeqCst);
            added(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Small allocations of a fresh thread and the library's thread-local bookkeeping.
const SLACK: usize = 64 << 10;

fn matrix(ctx: *mut tern_context, format: i32, rows: usize, cols: usize) -> *mut tern_matrix {
    let mut rng = Rng::new(11);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
    let mut m = null_mut();
    let (r, c) = (rows as i64, cols as i64);
    let l = layout(format, 0);
    let st = unsafe { tern_matrix_from_f32(ctx, &l, w.as_ptr(), r, c, null(), null_mut(), &mut m) };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    m
}

struct Shared<T>(T);
// SAFETY: contexts and matrices may be used from any thread.
unsafe impl<T> Send for Shared<T> {}

/// Runs `tern_gemm` for `tokens` tokens on a fresh thread (so its scratch starts empty) and
/// returns the outputs, the most bytes allocated during the call and the bytes kept after it.
/// A second identical call on that thread must allocate nothing (the steady path).
fn gemm_on_fresh_thread(
    ctx: *mut tern_context,
    m: *mut tern_matrix,
    x: &[f32],
    tokens: usize,
    rows: usize,
) -> (Vec<f32>, usize, usize) {
    let mut y = vec![0f32; tokens * rows];
    let (p, yp) = (Shared((ctx, m, x.as_ptr())), Shared(y.as_mut_ptr()));
    let (peak, kept) = std::thread::scope(|s| {
        s.spawn(move || {
            let (p, yp) = (p, yp);
            let (ctx, m, x) = p.0;
            let base = LIVE.load(SeqCst);
            PEAK.store(base, SeqCst);
            let st = unsafe { tern_gemm(ctx, m, x, tokens as i64, 0, yp.0, 0, null()) };
            assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
            let peak = PEAK.load(SeqCst) - base;
            let kept = LIVE.load(SeqCst).saturating_sub(base);
            // The counter is process-wide, so it also sees the test harness's own thread (which
            // allocates, e.g., for its "running for over 60 seconds" notice under an emulator).
            // An allocation on the steady path shows in every repeat; a foreign one in few.
            let again: Vec<usize> = (0..3)
                .map(|_| {
                    let count = COUNT.load(SeqCst);
                    let st = unsafe { tern_gemm(ctx, m, x, tokens as i64, 0, yp.0, 0, null()) };
                    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
                    COUNT.load(SeqCst) - count
                })
                .collect();
            // A call whose scratch was freed after it (over the bound) allocates it again.
            if peak <= SCRATCH_BOUND {
                assert!(
                    again.contains(&0),
                    "every repeat of the same call allocated: {again:?} allocations"
                );
            }
            (peak, kept)
        })
        .join()
        .unwrap()
    });
    (y, peak, kept)
}

#[test]
fn gemm_scratch_stays_under_the_bound() {
    let (rows, cols, tokens) = (256, 6912, 512);
    let mut rng = Rng::new(4);
    let x: Vec<f32> = (0..tokens * cols).map(|_| rng.uniform()).collect();
    let scalar = tern_isa::TERN_ISA_SCALAR as i32;
    // Panels and rows, one scale and per-block scales, one and two threads.
    for (isa, threads, format) in [
        (0, 2, TERN_FORMAT_I2_S),
        (0, 1, TERN_FORMAT_TQ2_0),
        (scalar, 2, TERN_FORMAT_I2_S),
        (scalar, 1, TERN_FORMAT_TQ2_0),
    ] {
        let what = format!("isa {isa}, {threads} threads, {format:?}");
        let ctx = context(isa, threads);
        let m = matrix(ctx, format as i32, rows, cols);
        let (y, peak, kept) = gemm_on_fresh_thread(ctx, m, &x, tokens, rows);
        println!("{what}: peak {peak} bytes, kept {kept} bytes");
        assert!(
            peak <= SCRATCH_BOUND + SLACK,
            "{what}: {peak} bytes during the call"
        );
        assert!(kept <= SCRATCH_BOUND + SLACK, "{what}: {kept} bytes kept");
        // The same outputs as calls of one token block each.
        let mut small = vec![0f32; tokens * rows];
        for t0 in (0..tokens).step_by(12) {
            let n = 12.min(tokens - t0);
            let st = unsafe {
                tern_gemm(
                    ctx,
                    m,
                    x[t0 * cols..].as_ptr(),
                    n as i64,
                    0,
                    small[t0 * rows..].as_mut_ptr(),
                    0,
                    null(),
                )
            };
            assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
        }
        assert!(y == small, "{what}: chunked outputs differ");
        unsafe {
            tern_matrix_destroy(m);
            tern_context_destroy(ctx);
        }
    }

    // The decode path (one token, the pool's tasks quantizing it themselves on panels).
    let (rows, cols) = (2560, 2560);
    let x: Vec<f32> = (0..cols).map(|_| rng.uniform()).collect();
    for (isa, threads) in [(0, 2), (scalar, 2)] {
        let ctx = context(isa, threads);
        let m = matrix(ctx, TERN_FORMAT_I2_S as i32, rows, cols);
        let (_, peak, kept) = gemm_on_fresh_thread(ctx, m, &x, 1, rows);
        println!("GEMV, isa {isa}: peak {peak} bytes, kept {kept} bytes");
        unsafe {
            tern_matrix_destroy(m);
            tern_context_destroy(ctx);
        }
    }

    // So wide that one token block needs more than the bound at every ISA level (the scalar
    // level's scratch is the smallest: one int8 row per token): freed after the call.
    let (rows, cols, tokens) = (64, 196_608, 12);
    let x: Vec<f32> = (0..tokens * cols).map(|_| rng.uniform()).collect();
    let ctx = context(0, 2);
    let m = matrix(ctx, TERN_FORMAT_I2_S as i32, rows, cols);
    let (_, peak, kept) = gemm_on_fresh_thread(ctx, m, &x, tokens, rows);
    println!("{cols} columns: peak {peak} bytes, kept {kept} bytes");
    assert!(
        peak > SCRATCH_BOUND,
        "the wide call needed only {peak} bytes"
    );
    assert!(kept <= SLACK, "{kept} bytes kept after the wide call");
    unsafe {
        tern_matrix_destroy(m);
        tern_context_destroy(ctx);
    }
}
