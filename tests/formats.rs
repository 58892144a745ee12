//! Every format through the C API: TL1/TL2 golden outputs through `tern_gemm`, conversions between
//! every pair of formats, GEMM on every format against exact integer math, TERN_COMPAT_GGML
//! against the ggml tier, and `tern_ternarize`.

mod common;

use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::ggml::*;
use tern::ffi::*;

const TL1: i32 = tern_format::TERN_FORMAT_TL1 as i32;
const TL2: i32 = tern_format::TERN_FORMAT_TL2 as i32;
const TQ1: i32 = tern_format::TERN_FORMAT_TQ1_0 as i32;
const TQ2: i32 = tern_format::TERN_FORMAT_TQ2_0 as i32;
const OK: tern_status = tern_status::TERN_STATUS_OK;

fn tiled(format: i32, bm: u32, bk: u32, simd: u32) -> tern_layout {
    tern_layout {
        tile_rows: bm,
        tile_k: bk,
        simd_rows: simd,
        ..layout(format, 0)
    }
}

/// Every layout under test, with library-chosen tilings for TL.
fn all_layouts() -> Vec<(&'static str, tern_layout)> {
    vec![
        ("i2s-x86", i2s(0)),
        ("i2s-arm", i2s(1)),
        ("tl1", layout(TL1, 0)),
        ("tl2", layout(TL2, 0)),
        ("tq1_0", layout(TQ1, 0)),
        ("tq2_0", layout(TQ2, 0)),
    ]
}

fn packed_size(l: &tern_layout, rows: usize, cols: usize) -> usize {
    let mut size = 0;
    let st = unsafe { tern_packed_size(l, rows as i64, cols as i64, &mut size) };
    assert_eq!(st, OK, "{}", last_error());
    size
}

fn pack(l: &tern_layout, t: &[i8], scales: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; packed_size(l, rows, cols)];
    let st = unsafe {
        tern_pack(
            l,
            t.as_ptr(),
            scales.as_ptr(),
            scales.len(),
            rows as i64,
            cols as i64,
            out.as_mut_ptr().cast(),
            out.len(),
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    out
}

fn unpack(
    l: &tern_layout,
    p: &[u8],
    rows: usize,
    cols: usize,
    n_scales: usize,
) -> (Vec<i8>, Vec<f32>) {
    let mut t = vec![9i8; rows * cols];
    let mut s = vec![0f32; n_scales];
    let st = unsafe {
        tern_unpack(
            l,
            p.as_ptr().cast(),
            p.len(),
            rows as i64,
            cols as i64,
            t.as_mut_ptr(),
            s.as_mut_ptr(),
            n_scales,
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    (t, s)
}

fn random_ternary(rng: &mut Rng, n: usize) -> Vec<i8> {
    (0..n).map(|_| rng.below(3) as i8 - 1).collect()
}

fn create(
    ctx: *const tern_context,
    l: &tern_layout,
    p: &[u8],
    rows: usize,
    cols: usize,
) -> *mut tern_matrix {
    let mut m = null_mut();
    let st = unsafe {
        tern_matrix_create(
            ctx,
            l,
            p.as_ptr().cast(),
            p.len(),
            rows as i64,
            cols as i64,
            &mut m,
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    m
}

fn gemm(
    ctx: *const tern_context,
    m: *const tern_matrix,
    x: &[f32],
    tokens: usize,
    rows: usize,
    compat: i32,
) -> Vec<f32> {
    let mut y = vec![f32::NAN; tokens * rows];
    let o = gemm_options(compat);
    let st = unsafe { tern_gemm(ctx, m, x.as_ptr(), tokens as i64, 0, y.as_mut_ptr(), 0, &o) };
    assert_eq!(st, OK, "{}", last_error());
    y
}

#[test]
fn tl_golden_outputs_through_tern_gemm_with_bitnet_compat() {
    // (format, case, BM, BK, bm) as in tests/data/tl*/kernel_config_tl*.ini.
    let cases = [
        (TL1, "tl1", "s256x256", 256, 256, 128, 64, 64),
        (TL1, "tl1", "s320x3200", 320, 3200, 320, 128, 64),
        (TL1, "tl1", "s256x1536", 256, 1536, 128, 64, 64),
        (TL2, "tl2", "s256x256", 256, 256, 128, 96, 32),
        (TL2, "tl2", "s320x3200", 320, 3200, 320, 96, 32),
        (TL2, "tl2", "s256x1536", 256, 1536, 128, 192, 32),
    ];
    for (format, dir, case, rows, cols, bm, bk, simd) in cases {
        let l = tiled(format, bm, bk, simd);
        let payload = read_bytes(&format!("{dir}/{case}.{dir}_weight.bin"));
        let scale = read_f32(&format!("{dir}/{case}.{dir}_scale_f32.bin"));
        // The runtime buffer: payload, zeros up to the scale offset, the scale, 28 zero bytes.
        let size = packed_size(&l, rows, cols);
        let mut buf = vec![0u8; size];
        buf[..payload.len()].copy_from_slice(&payload);
        buf[size - 32..size - 28].copy_from_slice(&scale[0].to_le_bytes());
        // Packing the golden f32 weights gives the same buffer.
        let w = read_f32(&format!("inputs/{case}.weights_f32.bin"));
        let mut ours = vec![0u8; size];
        let st = unsafe {
            tern_quantize(
                null(),
                &l,
                w.as_ptr(),
                rows as i64,
                cols as i64,
                &quant_options(1),
                ours.as_mut_ptr().cast(),
                size,
                null_mut(),
            )
        };
        assert_eq!(st, OK, "{}", last_error());
        assert_eq!(ours, buf, "{dir} {case}: tern_quantize PRESCALED bytes");
        for (acts, tokens, out) in [
            (
                format!("inputs/{case}.acts_f32.bin"),
                1,
                format!("{dir}/{case}.{dir}_out_f32.bin"),
            ),
            (
                "inputs/s256x256.acts8_f32.bin".to_string(),
                8,
                format!("{dir}/s256x256_t8.{dir}_out_f32.bin"),
            ),
        ] {
            if tokens == 8 && case != "s256x256" {
                continue;
            }
            let x = read_f32(&acts);
            let want = read_f32(&out);
            for isa in available_isas() {
                let ctx = context(isa, 2);
                let m = create(ctx, &l, &buf, rows, cols);
                for compat in [1, 2] {
                    let y = gemm(ctx, m, &x, tokens, rows, compat);
                    let same = y.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(
                        same,
                        "{dir} {case} t{tokens} isa {isa} compat {compat}: outputs differ from bitnet.cpp"
                    );
                }
                unsafe { tern_matrix_destroy(m) };
                unsafe { tern_context_destroy(ctx) };
            }
        }
    }
}

#[test]
fn every_format_converts_to_every_other_losslessly() {
    let mut rng = Rng::new(77);
    for (rows, cols) in [(64, 512), (40, 768), (3, 256)] {
        let t = random_ternary(&mut rng, rows * cols);
        let scale = 0.125f32; // exact in f16
        for (from_name, from) in all_layouts() {
            if packed_size_ok(&from, rows, cols).is_none() {
                continue;
            }
            let from_n = scale_count(&from, rows, cols);
            let src = pack(&from, &t, &vec![scale; from_n], rows, cols);
            for (to_name, to) in all_layouts() {
                let Some(size) = packed_size_ok(&to, rows, cols) else {
                    continue;
                };
                let mut dst = vec![0xEEu8; size];
                let st = unsafe {
                    tern_convert(
                        &from,
                        src.as_ptr().cast(),
                        src.len(),
                        &to,
                        dst.as_mut_ptr().cast(),
                        size,
                        rows as i64,
                        cols as i64,
                        null(),
                    )
                };
                assert_eq!(st, OK, "{from_name} -> {to_name}: {}", last_error());
                let (back, scales) = unpack(&to, &dst, rows, cols, scale_count(&to, rows, cols));
                assert_eq!(back, t, "{from_name} -> {to_name}: ternary values");
                assert!(
                    scales.iter().all(|&s| s == scale),
                    "{from_name} -> {to_name}: scales"
                );
                assert_eq!(
                    dst,
                    pack(&to, &t, &vec![scale; scales.len()], rows, cols),
                    "{from_name} -> {to_name}: bytes"
                );
            }
        }
    }
}

fn packed_size_ok(l: &tern_layout, rows: usize, cols: usize) -> Option<usize> {
    let mut size = 0;
    (unsafe { tern_packed_size(l, rows as i64, cols as i64, &mut size) } == OK).then_some(size)
}

fn scale_count(l: &tern_layout, rows: usize, cols: usize) -> usize {
    if l.format == TQ1 || l.format == TQ2 {
        rows * cols / 256
    } else {
        1
    }
}

#[test]
fn conversions_that_would_change_the_weights_are_refused() {
    let (rows, cols) = (4, 512);
    let mut rng = Rng::new(3);
    let t = random_ternary(&mut rng, rows * cols);
    // An f32 scale f16 cannot hold: TQ refuses unless rounding is allowed.
    let src = pack(&i2s(0), &t, &[0.1], rows, cols);
    let tq = layout(TQ2, 0);
    let mut dst = vec![0x11u8; packed_size(&tq, rows, cols)];
    let run = |opts: *const tern_convert_options, dst: &mut [u8]| unsafe {
        tern_convert(
            &i2s(0),
            src.as_ptr().cast(),
            src.len(),
            &tq,
            dst.as_mut_ptr().cast(),
            dst.len(),
            rows as i64,
            cols as i64,
            opts,
        )
    };
    assert_eq!(
        run(null(), &mut dst),
        tern_status::TERN_STATUS_INVALID_ARGUMENT
    );
    assert!(last_error().contains("allow_rounding"), "{}", last_error());
    assert!(dst.iter().all(|&b| b == 0x11), "dst untouched");
    let rounding = tern_convert_options {
        struct_size: size_of::<tern_convert_options>() as u32,
        allow_rounding: 1,
    };
    assert_eq!(run(&rounding, &mut dst), OK);
    let bad = tern_convert_options {
        allow_rounding: 2,
        ..rounding
    };
    assert_eq!(
        run(&bad, &mut dst),
        tern_status::TERN_STATUS_INVALID_ARGUMENT
    );
    // Different block scales cannot become one per-tensor scale.
    let blocks = rows * cols / 256;
    let scales: Vec<f32> = (0..blocks).map(|b| 0.25 * (1 + b % 2) as f32).collect();
    let tq_src = pack(&tq, &t, &scales, rows, cols);
    let mut out = vec![0u8; packed_size(&i2s(0), rows, cols)];
    let st = unsafe {
        tern_convert(
            &tq,
            tq_src.as_ptr().cast(),
            tq_src.len(),
            &i2s(0),
            out.as_mut_ptr().cast(),
            out.len(),
            rows as i64,
            cols as i64,
            null(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_INVALID_ARGUMENT);
    assert!(
        last_error().contains("different scales"),
        "{}",
        last_error()
    );
    // TQ needs cols % 256 == 0.
    let src128 = pack(&i2s(0), &t[..4 * 128], &[0.5], 4, 128);
    let st = unsafe {
        tern_convert(
            &i2s(0),
            src128.as_ptr().cast(),
            src128.len(),
            &tq,
            out.as_mut_ptr().cast(),
            out.len(),
            4,
            128,
            null(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("multiple of 256"));
}

/// Expected DEFAULT output from the ternary values and per-block scales: exact integer dots per
/// scale group, `Σ_g f32(S_g)·w_g` in group order, divided by the token's scale — or, with one
/// scale, `f32(S)·(w/s)`.
fn expected_default(
    t: &[i8],
    scales: &[f32],
    per: usize,
    cols: usize,
    q: &[i8],
    act_scale: f32,
    r: usize,
) -> f32 {
    if act_scale == 0.0 {
        return 0.0;
    }
    let row = &t[r * cols..][..cols];
    let dot =
        |range: std::ops::Range<usize>| -> i32 { range.map(|k| row[k] as i32 * q[k] as i32).sum() };
    if per >= t.len() {
        return dot(0..cols) as f32 * (scales[0] / act_scale);
    }
    let groups = cols / per;
    let mut acc = 0f32;
    for g in 0..groups {
        acc += dot(g * per..(g + 1) * per) as f32 * scales[(r * cols) / per + g];
    }
    acc / act_scale
}

#[test]
fn gemm_on_every_format_equals_exact_integer_math() {
    let mut rng = Rng::new(1234);
    for (rows, cols, tokens) in [(70, 512, 3), (33, 768, 1), (128, 1024, 5), (5, 256, 2)] {
        let t = random_ternary(&mut rng, rows * cols);
        let x: Vec<f32> = (0..tokens * cols).map(|_| rng.uniform() * 4.0).collect();
        let mut q = vec![0i8; tokens * cols];
        let mut s = vec![0f32; tokens];
        let st = unsafe {
            tern_quantize_activations(
                null(),
                x.as_ptr(),
                tokens as i64,
                cols as i64,
                0,
                0,
                q.as_mut_ptr(),
                s.as_mut_ptr(),
                null_mut(),
            )
        };
        assert_eq!(st, OK);
        for (name, l) in all_layouts() {
            let n_scales = scale_count(&l, rows, cols);
            // TQ gets a different (f16-exact) scale per block; the others one scale.
            let scales: Vec<f32> = (0..n_scales).map(|b| 0.0625 * (1 + b % 5) as f32).collect();
            let per = rows * cols / n_scales;
            let p = pack(&l, &t, &scales, rows, cols);
            for isa in available_isas() {
                let ctx = context(isa, 2);
                let m = create(ctx, &l, &p, rows, cols);
                let y = gemm(ctx, m, &x, tokens, rows, 0);
                for tok in 0..tokens {
                    for r in 0..rows {
                        let want = expected_default(
                            &t,
                            &scales,
                            per,
                            cols,
                            &q[tok * cols..][..cols],
                            s[tok],
                            r,
                        );
                        assert_eq!(
                            y[tok * rows + r].to_bits(),
                            want.to_bits(),
                            "{name} isa {isa} {rows}x{cols} t{tok} r{r}"
                        );
                    }
                }
                unsafe { tern_matrix_destroy(m) };
                unsafe { tern_context_destroy(ctx) };
            }
        }
    }
}

#[test]
fn ggml_compat_gemm_equals_the_ggml_tier_vec_dot() {
    let mut rng = Rng::new(55);
    let (rows, cols, tokens) = (24, 1024, 3);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
    let mut x: Vec<f32> = (0..tokens * cols).map(|_| rng.uniform() * 2.0).collect();
    x[cols..cols + 256].fill(0.0); // an all-zero Q8_K block
    for (format, block_bytes, quant_row, vec_dot) in [
        (
            TQ1,
            54usize,
            tern_ggml_quantize_row_tq1_0
                as unsafe extern "C" fn(*const f32, *mut std::ffi::c_void, i64),
            tern_ggml_vec_dot_tq1_0_q8_K
                as unsafe extern "C" fn(
                    i32,
                    *mut f32,
                    usize,
                    *const std::ffi::c_void,
                    usize,
                    *const std::ffi::c_void,
                    usize,
                    i32,
                ),
        ),
        (
            TQ2,
            66,
            tern_ggml_quantize_row_tq2_0,
            tern_ggml_vec_dot_tq2_0_q8_K,
        ),
    ] {
        let l = layout(format, 0);
        let mut m = null_mut();
        let st = unsafe {
            tern_matrix_from_f32(
                null(),
                &l,
                w.as_ptr(),
                rows as i64,
                cols as i64,
                &quant_options(4),
                null_mut(),
                &mut m,
            )
        };
        assert_eq!(st, OK, "{}", last_error());
        let y = gemm(
            null(),
            m,
            &x,
            tokens,
            rows,
            tern_compat::TERN_COMPAT_GGML as i32,
        );
        let row_bytes = cols / 256 * block_bytes;
        let mut wq = vec![0u8; rows * row_bytes];
        unsafe { quant_row(w.as_ptr(), wq.as_mut_ptr().cast(), (rows * cols) as i64) };
        let mut xq = vec![0u8; tokens * cols / 256 * 292];
        unsafe {
            tern_ggml_quantize_row_q8_K(x.as_ptr(), xq.as_mut_ptr().cast(), (tokens * cols) as i64)
        };
        for tok in 0..tokens {
            for r in 0..rows {
                let mut want = 0f32;
                unsafe {
                    vec_dot(
                        cols as i32,
                        &mut want,
                        0,
                        wq[r * row_bytes..].as_ptr().cast(),
                        0,
                        xq[tok * cols / 256 * 292..].as_ptr().cast(),
                        0,
                        1,
                    )
                };
                assert_eq!(
                    y[tok * rows + r].to_bits(),
                    want.to_bits(),
                    "format {format} t{tok} r{r}"
                );
            }
        }
        unsafe { tern_matrix_destroy(m) };
    }
}

#[test]
fn bitnet_compat_is_refused_for_tq_and_ggml_compat_for_bitnet_formats() {
    let mut rng = Rng::new(8);
    let t = random_ternary(&mut rng, 4 * 256);
    for (l, compat, needle) in [
        (
            layout(TQ2, 0),
            1,
            "TERN_COMPAT_BITNET_CPP does not apply to TQ2_0",
        ),
        (layout(TL1, 0), 3, "TERN_COMPAT_GGML does not apply to TL1"),
    ] {
        let p = pack(&l, &t, &vec![0.5; scale_count(&l, 4, 256)], 4, 256);
        let m = create(null(), &l, &p, 4, 256);
        let x = vec![1f32; 256];
        let mut y = vec![7f32; 4];
        let o = gemm_options(compat);
        let st = unsafe { tern_gemm(null(), m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, &o) };
        assert_eq!(st, tern_status::TERN_STATUS_UNSUPPORTED);
        assert!(last_error().contains(needle), "{}", last_error());
        assert_eq!(y, vec![7f32; 4]);
        unsafe { tern_matrix_destroy(m) };
    }
}

#[test]
fn ternarize_counts_scales_per_method_and_matches_quantize() {
    let mut rng = Rng::new(21);
    let (rows, cols) = (6, 512);
    let w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform() * 0.1).collect();
    for (method, group, count) in [
        (0, 0, 1),
        (1, 0, 1),
        (2, 0, rows),
        (3, 128, rows * cols / 128),
        (4, 0, rows * cols / 256),
    ] {
        let opts = tern_quant_options {
            group_size: group,
            ..quant_options(method)
        };
        let mut t = vec![9i8; rows * cols];
        let mut s = vec![0f32; count + 1];
        let mut n = 0usize;
        let st = unsafe {
            tern_ternarize(
                &opts,
                w.as_ptr(),
                rows as i64,
                cols as i64,
                t.as_mut_ptr(),
                s.as_mut_ptr(),
                s.len(),
                &mut n,
            )
        };
        assert_eq!(st, OK, "method {method}: {}", last_error());
        assert_eq!(n, count, "method {method}");
        assert!(t.iter().all(|v| (-1..=1).contains(v)));
        let st = unsafe {
            tern_ternarize(
                &opts,
                w.as_ptr(),
                rows as i64,
                cols as i64,
                t.as_mut_ptr(),
                s.as_mut_ptr(),
                count - 1,
                null_mut(),
            )
        };
        if count > 1 {
            assert_eq!(st, tern_status::TERN_STATUS_BUFFER_TOO_SMALL);
            assert!(last_error().contains(&format!("required {count}")));
        }
    }
    // ABSMEAN_ROW into TQ2_0 keeps each row's scale in every block of the row.
    let l = layout(TQ2, 0);
    let mut p = vec![0u8; packed_size(&l, rows, cols)];
    let st = unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            &quant_options(2),
            p.as_mut_ptr().cast(),
            p.len(),
            null_mut(),
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    let (_, scales) = unpack(&l, &p, rows, cols, rows * cols / 256);
    for r in 0..rows {
        assert_eq!(scales[2 * r], scales[2 * r + 1]);
    }
    // A per-row method cannot go into a per-tensor format (TL2 included).
    let l = layout(TL2, 0);
    let mut p = vec![0u8; packed_size(&l, rows, cols)];
    let st = unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            &quant_options(2),
            p.as_mut_ptr().cast(),
            p.len(),
            null_mut(),
        )
    };
    assert_eq!(st, tern_status::TERN_STATUS_INVALID_ARGUMENT);
    assert!(last_error().contains("one scale per tensor"));
}

#[test]
fn context_kernel_name_is_the_kernel_each_format_runs() {
    let mut rng = Rng::new(4);
    let (rows, cols) = (64, 512);
    let t = random_ternary(&mut rng, rows * cols);
    for isa in available_isas() {
        let ctx = context(isa, 1);
        for (name, l) in all_layouts() {
            let p = pack(&l, &t, &vec![0.5; scale_count(&l, rows, cols)], rows, cols);
            let m = create(ctx, &l, &p, rows, cols);
            let mut info = tern_matrix_properties {
                struct_size: size_of::<tern_matrix_properties>() as u32,
                format: 0,
                variant: 0,
                rows: 0,
                cols: 0,
                packed_bytes: 0,
                scale: 0.0,
                kernel_name: null(),
            };
            assert_eq!(unsafe { tern_matrix_info(m, &mut info) }, OK);
            let from_ctx = unsafe { tern_context_kernel_name(ctx, l.format) };
            let (a, b) = unsafe {
                (
                    std::ffi::CStr::from_ptr(info.kernel_name),
                    std::ffi::CStr::from_ptr(from_ctx),
                )
            };
            assert_eq!(a, b, "{name} isa {isa}");
            unsafe { tern_matrix_destroy(m) };
        }
        unsafe { tern_context_destroy(ctx) };
    }
}
