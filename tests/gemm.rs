//! GEMM on random shapes against an independent exact computation (unpacked ternary values ·
//! int8 activations in i64, then the documented epilogue), for every kernel, both I2_S layouts,
//! strides, row ranges, thread counts and token counts.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::*;

struct Setup {
    cols: usize,
    packed: Vec<u8>,
    ternary: Vec<i8>,
    w_scale: f32,
}

fn setup(rng: &mut Rng, variant: u32, rows: usize, cols: usize) -> Setup {
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() * 0.02).collect();
    let l = i2s(variant);
    let mut size = 0;
    assert_eq!(
        unsafe { tern_packed_size(&l, rows as i64, cols as i64, &mut size) },
        tern_status::TERN_STATUS_OK
    );
    let mut packed = vec![0u8; size];
    let st = unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            null(),
            packed.as_mut_ptr().cast(),
            size,
            null_mut(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK);
    let mut ternary = vec![0i8; rows * cols];
    let mut s = [0f32];
    let st = unsafe {
        tern_unpack(
            &l,
            packed.as_ptr().cast(),
            size,
            rows as i64,
            cols as i64,
            ternary.as_mut_ptr(),
            s.as_mut_ptr(),
            1,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK);
    Setup {
        cols,
        packed,
        ternary,
        w_scale: s[0],
    }
}

/// Expected DEFAULT-mode output from int8 activations: exact Σ t·q, then `· (w_scale/act_scale)`.
fn expected(s: &Setup, q: &[i8], scales: &[f32], t: usize, r: usize) -> f32 {
    if scales[t] == 0.0 {
        return 0.0;
    }
    let dot: i64 = (0..s.cols)
        .map(|k| s.ternary[r * s.cols + k] as i64 * q[t * s.cols + k] as i64)
        .sum();
    dot as f32 * (s.w_scale / scales[t])
}

#[test]
fn random_shapes_every_kernel_exact() {
    let mut rng = Rng::new(2024);
    let contexts: Vec<_> = available_isas()
        .into_iter()
        .flat_map(|isa| [(isa, 1), (isa, 2)])
        .collect();
    for iter in 0..24 {
        let variant = (iter % 2) as u32;
        let block = if variant == 0 { 128 } else { 64 };
        let rows = 1 + rng.below(150) as usize;
        let cols = block * (1 + rng.below(24) as usize);
        let tokens = [1, 2, 3, 5, 8, 13][rng.below(6) as usize];
        let s = setup(&mut rng, variant, rows, cols);
        let x_stride = cols + rng.below(3) as usize * 7;
        let y_stride = rows + rng.below(3) as usize * 5;
        let mut x: Vec<f32> = (0..tokens * x_stride)
            .map(|_| rng.uniform() * 3.0)
            .collect();
        if tokens > 1 {
            x[x_stride..x_stride + cols].fill(0.0); // an all-zero token
        }
        x[3] = 40.0; // an outlier sets token 0's absmax
        let mut q = vec![0i8; tokens * cols];
        let mut scales = vec![0f32; tokens];
        let st = unsafe {
            tern_quantize_activations(
                null(),
                x.as_ptr(),
                tokens as i64,
                cols as i64,
                x_stride as i64,
                0,
                q.as_mut_ptr(),
                scales.as_mut_ptr(),
                null_mut(),
            )
        };
        assert_eq!(st, tern_status::TERN_STATUS_OK);
        let (b, e) = if rng.below(2) == 0 {
            (0, 0)
        } else {
            (rng.below(rows as u64) as i64, rows as i64)
        };
        for &(isa, threads) in &contexts {
            let ctx = context(isa, threads);
            let mut m = null_mut();
            let l = i2s(variant);
            let st = unsafe {
                tern_matrix_create(
                    ctx,
                    &l,
                    s.packed.as_ptr().cast(),
                    s.packed.len(),
                    rows as i64,
                    cols as i64,
                    &mut m,
                )
            };
            assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
            let mut y = vec![f32::MIN; tokens * y_stride];
            let opts = tern_gemm_options {
                row_begin: b,
                row_end: e,
                ..gemm_options(0)
            };
            let st = unsafe {
                tern_gemm(
                    ctx,
                    m,
                    x.as_ptr(),
                    tokens as i64,
                    x_stride as i64,
                    y.as_mut_ptr(),
                    y_stride as i64,
                    &opts,
                )
            };
            assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
            let end = if e == 0 { rows } else { e as usize };
            for t in 0..tokens {
                for r in 0..y_stride {
                    let got = y[t * y_stride + r];
                    if (b as usize..end).contains(&r) {
                        assert_eq!(
                            got.to_bits(),
                            expected(&s, &q, &scales, t, r).to_bits(),
                            "isa {isa} thr {threads} {rows}x{cols} t{t} r{r}"
                        );
                    } else {
                        assert_eq!(
                            got,
                            f32::MIN,
                            "untouched outside the row range / stride gap"
                        );
                    }
                }
            }
            unsafe { tern_matrix_destroy(m) };
            unsafe { tern_context_destroy(ctx) };
        }
    }
}

#[test]
fn extreme_activations_do_not_overflow_any_kernel() {
    // Every weight +1 and every activation at ±absmax: |dot| = 127·cols, far beyond int16.
    let (rows, cols) = (6, 8192);
    let w = vec![0.5f32; rows * cols];
    for isa in available_isas() {
        let ctx = context(isa, 1);
        let mut m = null_mut();
        let st = unsafe {
            tern_matrix_from_f32(
                ctx,
                &i2s(0),
                w.as_ptr(),
                rows as i64,
                cols as i64,
                &quant_options(1),
                null_mut(),
                &mut m,
            )
        };
        assert_eq!(st, tern_status::TERN_STATUS_OK);
        for sign in [1.0f32, -1.0] {
            let x = vec![sign * 2.0; cols];
            let mut y = vec![0f32; rows];
            let st = unsafe { tern_gemm(ctx, m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, null()) };
            assert_eq!(st, tern_status::TERN_STATUS_OK);
            let want = (sign as i64 * 127 * cols as i64) as f32 * (0.5 / 63.5);
            assert!(y.iter().all(|&v| v == want), "isa {isa}: {y:?} vs {want}");
        }
        unsafe { tern_matrix_destroy(m) };
        unsafe { tern_context_destroy(ctx) };
    }
}
