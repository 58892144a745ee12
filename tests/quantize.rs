//! Weight quantization semantics and pack/unpack round trips on random shapes, through the C API.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::*;

fn quantize(variant: u32, w: &[f32], rows: usize, cols: usize, method: i32) -> Vec<u8> {
    let l = i2s(variant);
    let mut size = 0;
    assert_eq!(
        unsafe { tern_packed_size(&l, rows as i64, cols as i64, &mut size) },
        tern_status::TERN_STATUS_OK
    );
    let mut out = vec![0u8; size];
    let o = quant_options(method);
    let st = unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            &o,
            out.as_mut_ptr().cast(),
            size,
            null_mut(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    out
}

fn unpack(variant: u32, p: &[u8], rows: usize, cols: usize) -> (Vec<i8>, f32) {
    let mut t = vec![0i8; rows * cols];
    let mut s = [0f32];
    let st = unsafe {
        tern_unpack(
            &i2s(variant),
            p.as_ptr().cast(),
            p.len(),
            rows as i64,
            cols as i64,
            t.as_mut_ptr(),
            s.as_mut_ptr(),
            1,
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    (t, s[0])
}

#[test]
fn absmean_matches_the_bitnet_b158_definition() {
    let mut rng = Rng::new(11);
    for (rows, cols) in [(3, 128), (17, 384), (64, 1024)] {
        let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() * 0.03).collect();
        let mean = (w.iter().map(|v| v.abs() as f64).sum::<f64>() / w.len() as f64) as f32;
        let inv = 1.0f32 / mean.max(1e-5);
        for variant in [0, 1] {
            let (t, scale) = unpack(variant, &quantize(variant, &w, rows, cols, 0), rows, cols);
            assert_eq!(scale, 1.0f32 / inv);
            for (i, (&wi, &ti)) in w.iter().zip(&t).enumerate() {
                let want = (wi * inv).round_ties_even().clamp(-1.0, 1.0) as i8;
                assert_eq!(ti, want, "element {i}");
            }
        }
    }
}

#[test]
fn absmean_of_an_all_zero_matrix_is_all_zero_with_the_eps_scale() {
    let w = vec![0f32; 4 * 128];
    let (t, scale) = unpack(0, &quantize(0, &w, 4, 128, 0), 4, 128);
    assert!(t.iter().all(|&v| v == 0));
    assert_eq!(scale, 1.0 / (1.0f32 / 1e-5));
}

#[test]
fn prescaled_keeps_fake_quantized_weights_exactly() {
    let mut rng = Rng::new(5);
    let scale = 0.0123f32;
    for (rows, cols) in [(1, 128), (9, 640), (31, 2560)] {
        let t: Vec<i8> = (0..rows * cols).map(|_| rng.below(3) as i8 - 1).collect();
        let w: Vec<f32> = t.iter().map(|&v| v as f32 * scale).collect();
        for variant in [0, 1] {
            let (back, s) = unpack(variant, &quantize(variant, &w, rows, cols, 1), rows, cols);
            assert_eq!(back, t);
            assert_eq!(s, scale);
            let mut deq = vec![0f32; rows * cols];
            let p = quantize(variant, &w, rows, cols, 1);
            let st = unsafe {
                tern_dequantize(
                    &i2s(variant),
                    p.as_ptr().cast(),
                    p.len(),
                    rows as i64,
                    cols as i64,
                    deq.as_mut_ptr(),
                )
            };
            assert_eq!(st, tern_status::TERN_STATUS_OK);
            assert_eq!(deq, w, "dequantize reproduces ternary × scale exactly");
        }
    }
}

#[test]
fn pack_unpack_round_trip_on_random_shapes_and_both_layouts() {
    let mut rng = Rng::new(99);
    for _ in 0..40 {
        let variant = rng.below(2) as u32;
        let block = if variant == 0 { 128 } else { 64 };
        let rows = 1 + rng.below(40) as usize;
        let cols = block * (1 + rng.below(30) as usize);
        let zero_rows = rng.below(2) == 0;
        let t: Vec<i8> = (0..rows * cols)
            .map(|i| {
                if zero_rows && (i / cols).is_multiple_of(3) {
                    0
                } else {
                    rng.below(3) as i8 - 1
                }
            })
            .collect();
        let scale = [rng.uniform().abs()];
        let l = i2s(variant);
        let mut size = 0;
        assert_eq!(
            unsafe { tern_packed_size(&l, rows as i64, cols as i64, &mut size) },
            tern_status::TERN_STATUS_OK
        );
        let mut p = vec![0u8; size];
        let st = unsafe {
            tern_pack(
                &l,
                t.as_ptr(),
                scale.as_ptr(),
                1,
                rows as i64,
                cols as i64,
                p.as_mut_ptr().cast(),
                size,
            )
        };
        assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
        assert!(
            p[size - 28..].iter().all(|&b| b == 0),
            "reserved tail is zero"
        );
        // Every element decodes through the reference decoder to its value + 1.
        let v = if variant == 0 {
            tern::format::I2sVariant::X86
        } else {
            tern::format::I2sVariant::Arm64
        };
        for (i, &ti) in t.iter().enumerate() {
            assert_eq!(tern::format::i2s::code_at(v, &p, i) as i8, ti + 1);
        }
        let (back, s) = unpack(variant, &p, rows, cols);
        assert_eq!(back, t);
        assert_eq!(s, scale[0]);
    }
}
