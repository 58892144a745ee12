//! Out of memory is a status, never an abort: under an address-space limit (RLIMIT_AS) too low
//! for a call's buffers, matrix creation, quantization, conversion and GEMM return
//! TERN_STATUS_OUT_OF_MEMORY with a message naming the size, write nothing, and work again once
//! memory is back. Each case runs in a child process (an abort fails the test, not the harness).

mod child;
mod common;

use std::ptr::{null, null_mut};

use child::AddressSpaceLimit;
use common::*;
use tern::ffi::tern_format::*;
use tern::ffi::tern_status::*;
use tern::ffi::*;

/// Headroom over what the process maps when the limit is set: room for small allocations
/// (messages, handles), far less than the buffers of the calls below.
const HEADROOM: usize = 512 << 10;

fn expect_oom(st: tern_status, what: &str) {
    assert_eq!(st, TERN_STATUS_OUT_OF_MEMORY, "{what}: {}", last_error());
    let msg = last_error();
    assert!(
        msg.starts_with("out of memory: cannot allocate ") && msg.contains(" bytes for "),
        "{what}: {msg}"
    );
}

fn packed_size(l: &tern_layout, rows: usize, cols: usize) -> usize {
    let mut size = 0;
    let st = unsafe { tern_packed_size(l, rows as i64, cols as i64, &mut size) };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    size
}

/// A packed `rows × cols` matrix of a repeating ternary pattern, scales 0.5.
fn packed(l: &tern_layout, rows: usize, cols: usize) -> Vec<u8> {
    let ternary: Vec<i8> = (0..rows * cols).map(|i| (i % 3) as i8 - 1).collect();
    let n_scales = if l.format == TERN_FORMAT_I2_S as i32 {
        1
    } else {
        rows * cols / 256
    };
    let scales = vec![0.5f32; n_scales];
    let size = packed_size(l, rows, cols);
    let mut buf = vec![0u8; size];
    let st = unsafe {
        tern_pack(
            l,
            ternary.as_ptr(),
            scales.as_ptr(),
            n_scales,
            rows as i64,
            cols as i64,
            buf.as_mut_ptr().cast(),
            size,
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
    buf
}

#[test]
fn matrix_create_out_of_memory() {
    child::run("matrix_create_out_of_memory", || {
        let (rows, cols) = (4096, 8192);
        // Panels (the best ISA) and rows (scalar) re-layouts; I2_S copies, TQ2_0 unpacks.
        for isa in [0, tern_isa::TERN_ISA_SCALAR as i32] {
            let ctx = context(isa, 1);
            for format in [TERN_FORMAT_I2_S, TERN_FORMAT_TQ2_0] {
                let l = layout(format as i32, 0);
                let buf = packed(&l, rows, cols);
                let (r, c) = (rows as i64, cols as i64);
                let mut m = std::ptr::dangling_mut::<tern_matrix>();
                let st = {
                    let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                        return;
                    };
                    unsafe {
                        tern_matrix_create(ctx, &l, buf.as_ptr().cast(), buf.len(), r, c, &mut m)
                    }
                };
                expect_oom(st, &format!("isa {isa}, format {format:?}"));
                assert!(m.is_null());
                let st = unsafe {
                    tern_matrix_create(ctx, &l, buf.as_ptr().cast(), buf.len(), r, c, &mut m)
                };
                assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
                unsafe { tern_matrix_destroy(m) };
            }
            unsafe { tern_context_destroy(ctx) };
        }
    });
}

#[test]
fn quantize_and_convert_out_of_memory() {
    child::run("quantize_and_convert_out_of_memory", || {
        let (rows, cols) = (2048, 4096);
        let (r, c) = (rows as i64, cols as i64);
        let mut rng = Rng::new(5);
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
        let (i2s_l, tq2) = (i2s(0), layout(TERN_FORMAT_TQ2_0 as i32, 0));
        // Made before the limit: the default context would fail to start its threads.
        let ctx = context(0, 1);
        let size = packed_size(&i2s_l, rows, cols);
        let mut dst = vec![0xA5u8; size];
        let st = {
            let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                return;
            };
            unsafe {
                tern_quantize(
                    ctx,
                    &i2s_l,
                    w.as_ptr(),
                    r,
                    c,
                    null(),
                    dst.as_mut_ptr().cast(),
                    size,
                    null_mut(),
                )
            }
        };
        expect_oom(st, "tern_quantize");
        assert!(dst.iter().all(|&b| b == 0xA5), "tern_quantize wrote dst");

        let mut m = std::ptr::dangling_mut::<tern_matrix>();
        let st = {
            let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                return;
            };
            unsafe {
                tern_matrix_from_f32(ctx, &i2s_l, w.as_ptr(), r, c, null(), null_mut(), &mut m)
            }
        };
        expect_oom(st, "tern_matrix_from_f32");
        assert!(m.is_null());

        let src = packed(&i2s_l, rows, cols);
        let mut floats = vec![-3.0f32; rows * cols];
        let st = {
            let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                return;
            };
            unsafe {
                tern_dequantize(
                    &i2s_l,
                    src.as_ptr().cast(),
                    src.len(),
                    r,
                    c,
                    floats.as_mut_ptr(),
                )
            }
        };
        expect_oom(st, "tern_dequantize");
        assert!(
            floats.iter().all(|&v| v == -3.0),
            "tern_dequantize wrote dst"
        );

        let tq_size = packed_size(&tq2, rows, cols);
        let mut tq = vec![0x5Au8; tq_size];
        let st = {
            let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                return;
            };
            unsafe {
                tern_convert(
                    &i2s_l,
                    src.as_ptr().cast(),
                    src.len(),
                    &tq2,
                    tq.as_mut_ptr().cast(),
                    tq_size,
                    r,
                    c,
                    null(),
                )
            }
        };
        expect_oom(st, "tern_convert");
        assert!(tq.iter().all(|&b| b == 0x5A), "tern_convert wrote dst");

        // With memory back, the same calls work.
        let st = unsafe {
            tern_quantize(
                null(),
                &i2s_l,
                w.as_ptr(),
                r,
                c,
                null(),
                dst.as_mut_ptr().cast(),
                size,
                null_mut(),
            )
        };
        assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
        unsafe { tern_context_destroy(ctx) };
    });
}

#[test]
fn gemm_scratch_out_of_memory() {
    child::run("gemm_scratch_out_of_memory", || {
        // Prefill of 512 tokens on a wide matrix: megabytes of scratch (bounded, but far over
        // the headroom), on panels with two threads and on rows (scalar).
        let (rows, cols, tokens) = (256, 6912, 512);
        let mut rng = Rng::new(9);
        let x: Vec<f32> = (0..tokens * cols).map(|_| rng.uniform()).collect();
        let l = i2s(0);
        let buf = packed(&l, rows, cols);
        for (isa, threads) in [(0, 2), (tern_isa::TERN_ISA_SCALAR as i32, 1)] {
            let ctx = context(isa, threads);
            let mut m = null_mut();
            let st = unsafe {
                tern_matrix_create(
                    ctx,
                    &l,
                    buf.as_ptr().cast(),
                    buf.len(),
                    rows as i64,
                    cols as i64,
                    &mut m,
                )
            };
            assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
            let mut y = vec![f32::NAN; tokens * rows];
            let gemm = |y: &mut [f32]| unsafe {
                tern_gemm(
                    ctx,
                    m,
                    x.as_ptr(),
                    tokens as i64,
                    0,
                    y.as_mut_ptr(),
                    0,
                    null(),
                )
            };
            let st = {
                let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                    return;
                };
                gemm(&mut y)
            };
            expect_oom(st, &format!("tern_gemm, isa {isa}"));
            assert!(y.iter().all(|v| v.is_nan()), "tern_gemm wrote y");

            // tern_gemm_i8 on the caller's int8 activations (interleaving or padding scratch).
            let mut q = vec![0i8; tokens * cols];
            let (mut scales, mut sums) = (vec![0f32; tokens], vec![0i32; tokens]);
            let st = unsafe {
                tern_quantize_activations(
                    ctx,
                    x.as_ptr(),
                    tokens as i64,
                    cols as i64,
                    0,
                    0,
                    q.as_mut_ptr(),
                    scales.as_mut_ptr(),
                    sums.as_mut_ptr(),
                )
            };
            assert_eq!(st, TERN_STATUS_OK, "{}", last_error());
            let gemm_i8 = |y: &mut [f32]| unsafe {
                tern_gemm_i8(
                    ctx,
                    m,
                    q.as_ptr(),
                    scales.as_ptr(),
                    sums.as_ptr(),
                    tokens as i64,
                    0,
                    y.as_mut_ptr(),
                    0,
                    null(),
                )
            };
            if isa == 0 {
                // The rows layout reads an unpadded I2_S matrix's q in place (no scratch).
                let st = {
                    let Some(_limit) = AddressSpaceLimit::new(HEADROOM) else {
                        return;
                    };
                    gemm_i8(&mut y)
                };
                expect_oom(st, "tern_gemm_i8");
                assert!(y.iter().all(|v| v.is_nan()), "tern_gemm_i8 wrote y");
            }

            assert_eq!(gemm(&mut y), TERN_STATUS_OK, "{}", last_error());
            assert!(y.iter().all(|v| v.is_finite()));
            unsafe {
                tern_matrix_destroy(m);
                tern_context_destroy(ctx);
            }
        }
    });
}
