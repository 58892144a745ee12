//! Many host threads sharing one matrix and one context (the way a server's request threads or
//! a cgo program's goroutines call tern) get results bitwise equal to one thread's. A context
//! runs one job on its pool at a time and runs a concurrent call on its caller alone, and each
//! host thread keeps its own scratch, so nothing may leak between calls that overlap in time.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::tern_compat::*;
use tern::ffi::tern_format::*;
use tern::ffi::tern_status::*;
use tern::ffi::*;

const HOST_THREADS: usize = 8;
const ROUNDS: usize = 6;

/// Pointers crossing into the host threads: contexts and matrices are thread-safe (`tern.h`).
#[derive(Clone, Copy)]
struct Shared(*const tern_context, *const tern_matrix);
// SAFETY: tern documents contexts and matrices as safe to use from any thread at once.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

fn gemm(s: Shared, x: &[f32], tokens: usize, rows: usize, compat: i32) -> Vec<f32> {
    let mut y = vec![f32::NAN; tokens * rows];
    let opts = gemm_options(compat);
    let st = unsafe {
        tern_gemm(
            s.0,
            s.1,
            x.as_ptr(),
            tokens as i64,
            0,
            y.as_mut_ptr(),
            0,
            &opts,
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    y
}

#[test]
fn host_threads_sharing_a_matrix_and_a_context_match_one_thread() {
    let (rows, cols) = (640, 2560);
    let mut rng = Rng::new(23);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() - 0.5).collect();
    // Token counts that take different paths: the one-token GEMV (quantized per task on a
    // pool), a few tokens, and enough for several token blocks.
    let token_counts = [1usize, 3, 17];
    let xs: Vec<Vec<f32>> = token_counts
        .iter()
        .map(|&t| (0..t * cols).map(|_| rng.uniform() - 0.5).collect())
        .collect();
    let cases = [
        (TERN_FORMAT_I2_S, TERN_COMPAT_DEFAULT),
        (TERN_FORMAT_TQ2_0, TERN_COMPAT_GGML),
        (TERN_FORMAT_TQ1_0, TERN_COMPAT_DEFAULT),
    ];
    let single = context(0, 1);
    // A 2-thread pool shared by every host thread, and the default context (ctx = NULL).
    let pool = context(0, 2);
    for (format, compat) in cases {
        let l = layout(format as i32, 0);
        let mut m = null_mut();
        let st = unsafe {
            tern_matrix_from_f32(
                pool,
                &l,
                w.as_ptr(),
                rows as i64,
                cols as i64,
                null(),
                null_mut(),
                &mut m,
            )
        };
        assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
        let compat = compat as i32;
        let want: Vec<Vec<f32>> = token_counts
            .iter()
            .zip(&xs)
            .map(|(&t, x)| gemm(Shared(single, m), x, t, rows, compat))
            .collect();
        for ctx in [pool as *const tern_context, null()] {
            let shared = Shared(ctx, m);
            let which = if ctx.is_null() { "NULL" } else { "2 threads" };
            std::thread::scope(|s| {
                for h in 0..HOST_THREADS {
                    let (xs, want) = (&xs, &want);
                    s.spawn(move || {
                        for round in 0..ROUNDS {
                            // Each host thread walks the token counts in its own order, so
                            // calls of different shapes overlap.
                            let i = (h + round) % token_counts.len();
                            let y = gemm(shared, &xs[i], token_counts[i], rows, compat);
                            let same = y
                                .iter()
                                .zip(&want[i])
                                .all(|(a, b)| a.to_bits() == b.to_bits());
                            assert!(
                                same,
                                "format {format:?}, host thread {h}, round {round}, {} tokens, \
                                 ctx {which}: outputs differ from one thread's",
                                token_counts[i]
                            );
                        }
                    });
                }
            });
        }
        unsafe { tern_matrix_destroy(m) };
    }
    unsafe {
        tern_context_destroy(pool);
        tern_context_destroy(single);
    }
}
