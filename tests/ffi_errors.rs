//! Every error path of every checked C function: the right status, a message that says what is
//! wrong, and outputs left untouched. Plus the success-side conventions (last error cleared,
//! handles NULL on failure, struct_size handling, panics turned into a status).

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use common::*;
use tern::ffi::*;

use tern_status::*;

const ROWS: i64 = 8;
const COLS: i64 = 256;
const N: usize = (ROWS * COLS) as usize;
const PACKED: usize = N / 4 + 32;
const SENTINEL: u8 = 0x5A;

/// Asserts a failing status, a last-error message containing every `needle`, and returns it.
#[track_caller]
fn expect(st: tern_status, want: tern_status, needles: &[&str]) -> String {
    assert_eq!(st, want, "status (message: {:?})", unsafe { msg_or_none() });
    let msg = last_error();
    assert!(!msg.is_empty());
    for n in needles {
        assert!(msg.contains(n), "message {msg:?} should mention {n:?}");
    }
    msg
}

unsafe fn msg_or_none() -> Option<String> {
    let p = tern_last_error_message();
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

#[track_caller]
fn expect_ok(st: tern_status) {
    assert_eq!(st, TERN_STATUS_OK, "{:?}", unsafe { msg_or_none() });
    assert!(
        tern_last_error_message().is_null(),
        "a success clears the last error"
    );
}

fn weights() -> Vec<f32> {
    let mut rng = Rng::new(7);
    (0..N).map(|_| rng.uniform() * 0.05).collect()
}

fn packed_ok() -> Vec<u8> {
    let l = i2s(0);
    let w = weights();
    let mut out = vec![0u8; PACKED];
    expect_ok(unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            ROWS,
            COLS,
            null(),
            out.as_mut_ptr().cast(),
            out.len(),
            null_mut(),
        )
    });
    out
}

fn matrix() -> *mut tern_matrix {
    let p = packed_ok();
    let mut m = null_mut();
    expect_ok(unsafe {
        tern_matrix_create(
            null(),
            &i2s(0),
            p.as_ptr().cast(),
            p.len(),
            ROWS,
            COLS,
            &mut m,
        )
    });
    m
}

#[test]
fn status_names_cover_every_status_and_unknown_values() {
    let names: Vec<&str> = (0..=10)
        .map(|s| {
            unsafe { CStr::from_ptr(tern_status_name(s)) }
                .to_str()
                .unwrap()
        })
        .collect();
    assert_eq!(names[0], "TERN_STATUS_OK");
    assert_eq!(names[4], "TERN_STATUS_BUFFER_TOO_SMALL");
    assert_eq!(names[9], "TERN_STATUS_PANIC");
    assert!(
        names
            .iter()
            .all(|n| n.starts_with("TERN_STATUS_") && *n != "TERN_STATUS_UNKNOWN")
    );
    for bad in [-1, 11, i32::MAX, i32::MIN] {
        assert_eq!(
            unsafe { CStr::from_ptr(tern_status_name(bad)) }
                .to_str()
                .unwrap(),
            "TERN_STATUS_UNKNOWN"
        );
    }
}

#[test]
fn version_function_header_macros_and_cargo_agree() {
    let v = tern_version();
    let major: u32 = env!("CARGO_PKG_VERSION_MAJOR").parse().unwrap();
    let minor: u32 = env!("CARGO_PKG_VERSION_MINOR").parse().unwrap();
    let patch: u32 = env!("CARGO_PKG_VERSION_PATCH").parse().unwrap();
    assert_eq!(v, (major << 16) | (minor << 8) | patch);
    let s = unsafe { CStr::from_ptr(tern_version_string()) }
        .to_str()
        .unwrap();
    assert_eq!(s, env!("CARGO_PKG_VERSION"));
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/tern.h")).unwrap();
    for (name, value) in [
        ("MAJOR", major.to_string()),
        ("MINOR", minor.to_string()),
        ("PATCH", patch.to_string()),
    ] {
        assert!(
            header.contains(&format!("#define TERN_VERSION_{name} {value}\n")),
            "header TERN_VERSION_{name}"
        );
    }
    assert!(header.contains(&format!("#define TERN_VERSION_STRING \"{s}\"")));
}

#[test]
fn context_create_rejects_bad_options_and_nulls_out() {
    let mut ctx: *mut tern_context = std::ptr::dangling_mut::<tern_context>(); // garbage that must be reset
    expect(
        unsafe { tern_context_create(null(), null_mut()) },
        TERN_STATUS_NULL_POINTER,
        &["out"],
    );
    let base = tern_context_options {
        struct_size: size_of::<tern_context_options>() as u32,
        max_isa: 0,
        n_threads: 1,
        spin_us: tern::context::DEFAULT_SPIN_US,
    };
    let small = tern_context_options {
        struct_size: 4,
        ..base
    };
    expect(
        unsafe { tern_context_create(&small, &mut ctx) },
        TERN_STATUS_INVALID_ARGUMENT,
        &["struct_size = 4"],
    );
    assert!(ctx.is_null());
    let bad_isa = tern_context_options {
        max_isa: 99,
        ..base
    };
    expect(
        unsafe { tern_context_create(&bad_isa, &mut ctx) },
        TERN_STATUS_INVALID_ARGUMENT,
        &["max_isa 99", "allowed"],
    );
    let foreign = if cfg!(target_arch = "x86_64") {
        tern_isa::TERN_ISA_NEON
    } else {
        tern_isa::TERN_ISA_AVX2
    } as i32;
    let unavailable = tern_context_options {
        max_isa: foreign,
        ..base
    };
    expect(
        unsafe { tern_context_create(&unavailable, &mut ctx) },
        TERN_STATUS_UNSUPPORTED,
        &["not available"],
    );
    for n in [-1, 100_000] {
        let bad = tern_context_options {
            n_threads: n,
            ..base
        };
        expect(
            unsafe { tern_context_create(&bad, &mut ctx) },
            TERN_STATUS_INVALID_ARGUMENT,
            &["n_threads"],
        );
        assert!(ctx.is_null());
    }
    expect_ok(unsafe { tern_context_create(null(), &mut ctx) });
    assert!(!ctx.is_null());
    unsafe { tern_context_destroy(ctx) };
    unsafe { tern_context_destroy(null_mut()) };
}

#[test]
fn larger_struct_from_a_newer_header_is_accepted_only_with_zero_extra_fields() {
    #[repr(C)]
    struct Newer {
        base: tern_context_options,
        future: u32,
    }
    let mut v = Newer {
        base: tern_context_options {
            struct_size: size_of::<Newer>() as u32,
            max_isa: 0,
            n_threads: 1,
            spin_us: tern::context::DEFAULT_SPIN_US,
        },
        future: 0,
    };
    let mut ctx = null_mut();
    expect_ok(unsafe { tern_context_create(&v.base, &mut ctx) });
    unsafe { tern_context_destroy(ctx) };
    v.future = 1;
    expect(
        unsafe { tern_context_create(&v.base, &mut ctx) },
        TERN_STATUS_UNSUPPORTED,
        &["does not know"],
    );
}

#[test]
fn kernel_name_reports_and_rejects() {
    let name = unsafe { tern_context_kernel_name(null(), tern_format::TERN_FORMAT_I2_S as i32) };
    assert!(!name.is_null());
    assert!(
        unsafe { CStr::from_ptr(name) }
            .to_str()
            .unwrap()
            .starts_with("i2_s/")
    );
    assert!(unsafe { tern_context_kernel_name(null(), 0) }.is_null());
    assert!(last_error().contains("format 0 is unknown"));
    for f in [
        tern_format::TERN_FORMAT_TL1,
        tern_format::TERN_FORMAT_TL2,
        tern_format::TERN_FORMAT_TQ1_0,
        tern_format::TERN_FORMAT_TQ2_0,
    ] {
        assert!(!unsafe { tern_context_kernel_name(null(), f as i32) }.is_null());
    }
}

#[test]
fn packed_size_validates_layout_and_shape() {
    let mut out = 77usize;
    let l = i2s(0);
    expect(
        unsafe { tern_packed_size(null(), ROWS, COLS, &mut out) },
        TERN_STATUS_NULL_POINTER,
        &["layout"],
    );
    expect(
        unsafe { tern_packed_size(&l, ROWS, COLS, null_mut()) },
        TERN_STATUS_NULL_POINTER,
        &["out"],
    );
    let cases: &[(tern_layout, i64, i64, tern_status, &str)] = &[
        (
            tern_layout {
                struct_size: 3,
                ..l
            },
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "struct_size",
        ),
        (
            layout(42, 0),
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "format 42 is unknown",
        ),
        (
            tern_layout {
                tile_rows: 32,
                ..layout(tern_format::TERN_FORMAT_TL2 as i32, 0)
            },
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "all be 0",
        ),
        (
            layout(tern_format::TERN_FORMAT_TQ1_0 as i32, 1),
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "no variants",
        ),
        (
            layout(tern_format::TERN_FORMAT_TQ2_0 as i32, 0),
            ROWS,
            200,
            TERN_STATUS_INVALID_ARGUMENT,
            "multiple of 256",
        ),
        (
            i2s(7),
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "variant 7",
        ),
        (
            tern_layout { tile_k: 64, ..l },
            ROWS,
            COLS,
            TERN_STATUS_INVALID_ARGUMENT,
            "no tiling",
        ),
        (l, 0, COLS, TERN_STATUS_INVALID_ARGUMENT, "rows = 0"),
        (l, ROWS, -128, TERN_STATUS_INVALID_ARGUMENT, "cols = -128"),
        (
            l,
            ROWS,
            200,
            TERN_STATUS_INVALID_ARGUMENT,
            "multiple of 128",
        ),
        (
            i2s(1),
            ROWS,
            96,
            TERN_STATUS_INVALID_ARGUMENT,
            "multiple of 64",
        ),
        (l, i64::MAX, 128, TERN_STATUS_INVALID_ARGUMENT, "overflows"),
        (
            l,
            1,
            1 << 23,
            TERN_STATUS_INVALID_ARGUMENT,
            "exceeds the maximum",
        ),
    ];
    for (lay, r, c, st, needle) in cases {
        expect(
            unsafe { tern_packed_size(lay, *r, *c, &mut out) },
            *st,
            &[needle],
        );
        assert_eq!(out, 77, "out untouched");
    }
    expect_ok(unsafe { tern_packed_size(&l, ROWS, COLS, &mut out) });
    assert_eq!(out, PACKED);
    expect_ok(unsafe { tern_packed_size(&i2s(1), ROWS, 64, &mut out) });
    assert_eq!(out, (ROWS * 64 / 4 + 32) as usize);
}

#[test]
fn quantize_error_paths_leave_dst_and_stats_untouched() {
    let l = i2s(0);
    let w = weights();
    let mut dst = vec![SENTINEL; PACKED];
    let mut stats = tern_quant_stats {
        struct_size: size_of::<tern_quant_stats>() as u32,
        sparsity: -1.0,
        bits_per_weight: -1.0,
        compression_vs_f32: -1.0,
        compression_vs_f16: -1.0,
        scale_min: -1.0,
        scale_max: -1.0,
        rmse: -1.0,
    };
    let run = |l: &tern_layout,
               src: *const f32,
               opts: *const tern_quant_options,
               dst: *mut u8,
               len: usize,
               stats: *mut tern_quant_stats| unsafe {
        tern_quantize(null(), l, src, ROWS, COLS, opts, dst.cast(), len, stats)
    };
    let d = dst.as_mut_ptr();
    expect(
        run(&l, null(), null(), d, PACKED, &mut stats),
        TERN_STATUS_NULL_POINTER,
        &["src"],
    );
    expect(
        run(&l, w.as_ptr(), null(), null_mut(), PACKED, &mut stats),
        TERN_STATUS_NULL_POINTER,
        &["dst"],
    );
    let msg = expect(
        run(&l, w.as_ptr(), null(), d, PACKED - 1, &mut stats),
        TERN_STATUS_BUFFER_TOO_SMALL,
        &[],
    );
    assert!(
        msg.contains(&PACKED.to_string()),
        "names the required size: {msg}"
    );
    let misaligned = unsafe { (w.as_ptr() as *const u8).add(1) } as *const f32;
    expect(
        run(&l, misaligned, null(), d, PACKED, &mut stats),
        TERN_STATUS_MISALIGNED,
        &["src"],
    );
    let bad_opts: &[(tern_quant_options, tern_status, &str)] = &[
        (quant_options(9), TERN_STATUS_INVALID_ARGUMENT, "method 9"),
        (
            quant_options(2),
            TERN_STATUS_INVALID_ARGUMENT,
            "one scale per tensor",
        ),
        (
            quant_options(3),
            TERN_STATUS_INVALID_ARGUMENT,
            "one scale per tensor",
        ),
        (quant_options(4), TERN_STATUS_INVALID_ARGUMENT, "GGML_REF"),
        (
            tern_quant_options {
                group_size: 64,
                ..quant_options(0)
            },
            TERN_STATUS_INVALID_ARGUMENT,
            "group_size",
        ),
        (
            tern_quant_options {
                eps: 0.0,
                ..quant_options(0)
            },
            TERN_STATUS_INVALID_ARGUMENT,
            "eps",
        ),
        (
            tern_quant_options {
                eps: f32::NAN,
                ..quant_options(0)
            },
            TERN_STATUS_INVALID_ARGUMENT,
            "eps",
        ),
        (
            tern_quant_options {
                struct_size: 2,
                ..quant_options(0)
            },
            TERN_STATUS_INVALID_ARGUMENT,
            "struct_size",
        ),
    ];
    for (o, st, needle) in bad_opts {
        expect(
            run(&l, w.as_ptr(), o, d, PACKED, &mut stats),
            *st,
            &[needle],
        );
    }
    let mut nan = w.clone();
    nan[17] = f32::NAN;
    expect(
        run(&l, nan.as_ptr(), null(), d, PACKED, &mut stats),
        TERN_STATUS_INVALID_ARGUMENT,
        &["src[17]"],
    );
    let mut small_stats = stats;
    small_stats.struct_size = 8;
    expect(
        run(&l, w.as_ptr(), null(), d, PACKED, &mut small_stats),
        TERN_STATUS_INVALID_ARGUMENT,
        &["stats"],
    );
    assert!(
        dst.iter().all(|&b| b == SENTINEL),
        "dst untouched after failures"
    );
    assert_eq!(stats.sparsity, -1.0, "stats untouched after failures");

    expect_ok(run(
        &l,
        w.as_ptr(),
        null(),
        dst.as_mut_ptr(),
        PACKED,
        &mut stats,
    ));
    assert!(stats.sparsity > 0.0 && stats.sparsity < 1.0);
    assert!((stats.bits_per_weight - PACKED as f64 * 8.0 / N as f64).abs() < 1e-12);
    assert!(stats.scale_min == stats.scale_max && stats.scale_min > 0.0);
    assert!(stats.rmse > 0.0);
}

#[test]
fn pack_and_unpack_validate_values_scales_and_corruption() {
    let l = i2s(0);
    let mut rng = Rng::new(3);
    let t: Vec<i8> = (0..N).map(|_| rng.below(3) as i8 - 1).collect();
    let mut dst = vec![SENTINEL; PACKED];
    let d = dst.as_mut_ptr().cast();
    let scale = [0.5f32];
    let mut bad = t.clone();
    bad[5] = 2;
    expect(
        unsafe { tern_pack(&l, bad.as_ptr(), scale.as_ptr(), 1, ROWS, COLS, d, PACKED) },
        TERN_STATUS_INVALID_ARGUMENT,
        &["ternary[5] = 2"],
    );
    expect(
        unsafe { tern_pack(&l, t.as_ptr(), scale.as_ptr(), 2, ROWS, COLS, d, PACKED) },
        TERN_STATUS_INVALID_ARGUMENT,
        &["n_scales = 2"],
    );
    for s in [-1.0f32, f32::NAN, f32::INFINITY] {
        let bad_scale = [s];
        expect(
            unsafe { tern_pack(&l, t.as_ptr(), bad_scale.as_ptr(), 1, ROWS, COLS, d, PACKED) },
            TERN_STATUS_INVALID_ARGUMENT,
            &["scales[0]"],
        );
    }
    expect(
        unsafe { tern_pack(&l, t.as_ptr(), scale.as_ptr(), 1, ROWS, COLS, d, 10) },
        TERN_STATUS_BUFFER_TOO_SMALL,
        &["required 544"],
    );
    expect(
        unsafe { tern_pack(&l, null(), scale.as_ptr(), 1, ROWS, COLS, d, PACKED) },
        TERN_STATUS_NULL_POINTER,
        &["ternary"],
    );
    expect(
        unsafe { tern_pack(&l, t.as_ptr(), null(), 1, ROWS, COLS, d, PACKED) },
        TERN_STATUS_NULL_POINTER,
        &["scales"],
    );
    assert!(dst.iter().all(|&b| b == SENTINEL));
    expect_ok(unsafe { tern_pack(&l, t.as_ptr(), scale.as_ptr(), 1, ROWS, COLS, d, PACKED) });

    let mut back = vec![9i8; N];
    let mut s = [7.0f32];
    let run = |src: &[u8], len: usize, back: &mut [i8], s: &mut [f32], n_s: usize| unsafe {
        tern_unpack(
            &l,
            src.as_ptr().cast(),
            len,
            ROWS,
            COLS,
            back.as_mut_ptr(),
            s.as_mut_ptr(),
            n_s,
        )
    };
    let mut corrupt = dst.clone();
    corrupt[3] = 0b1111_0101;
    expect(
        run(&corrupt, PACKED, &mut back, &mut s, 1),
        TERN_STATUS_INVALID_ARGUMENT,
        &["byte 3", "code 3"],
    );
    let mut nan_scale = dst.clone();
    nan_scale[N / 4..N / 4 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    expect(
        run(&nan_scale, PACKED, &mut back, &mut s, 1),
        TERN_STATUS_INVALID_ARGUMENT,
        &["scale"],
    );
    expect(
        run(&dst, PACKED - 32, &mut back, &mut s, 1),
        TERN_STATUS_BUFFER_TOO_SMALL,
        &["required 544"],
    );
    expect(
        run(&dst, PACKED, &mut back, &mut s, 0),
        TERN_STATUS_BUFFER_TOO_SMALL,
        &["n_scales"],
    );
    assert!(
        back.iter().all(|&v| v == 9) && s[0] == 7.0,
        "outputs untouched"
    );
    expect_ok(run(&dst, PACKED, &mut back, &mut s, 1));
    assert_eq!(back, t);
    assert_eq!(s[0], 0.5);
}

#[test]
fn dequantize_checks_and_reconstructs() {
    let l = i2s(0);
    let p = packed_ok();
    let mut out = vec![f32::NAN; N];
    expect(
        unsafe { tern_dequantize(&l, p.as_ptr().cast(), 100, ROWS, COLS, out.as_mut_ptr()) },
        TERN_STATUS_BUFFER_TOO_SMALL,
        &["544"],
    );
    expect(
        unsafe { tern_dequantize(&l, p.as_ptr().cast(), p.len(), ROWS, COLS, null_mut()) },
        TERN_STATUS_NULL_POINTER,
        &["dst"],
    );
    let mis = unsafe { (out.as_mut_ptr() as *mut u8).add(2) } as *mut f32;
    expect(
        unsafe { tern_dequantize(&l, p.as_ptr().cast(), p.len(), ROWS, COLS, mis) },
        TERN_STATUS_MISALIGNED,
        &["dst"],
    );
    assert!(out.iter().all(|v| v.is_nan()));
    expect_ok(unsafe {
        tern_dequantize(&l, p.as_ptr().cast(), p.len(), ROWS, COLS, out.as_mut_ptr())
    });
    let scale = f32::from_le_bytes(p[N / 4..N / 4 + 4].try_into().unwrap());
    assert!(out.iter().all(|&v| v == 0.0 || v.abs() == scale));
}

#[test]
fn quantize_activations_error_paths() {
    let x = vec![0.5f32; 2 * 256];
    let mut q = vec![3i8; 2 * 256];
    let mut s = [9.0f32; 2];
    let sums = [9i32; 2];
    let run = |n: i64, stride: i64, compat: i32, x: *const f32, q: *mut i8, s: *mut f32| unsafe {
        tern_quantize_activations(
            null(),
            x,
            n,
            256,
            stride,
            compat,
            q,
            s,
            sums.as_ptr() as *mut i32,
        )
    };
    expect(
        run(0, 0, 0, x.as_ptr(), q.as_mut_ptr(), s.as_mut_ptr()),
        TERN_STATUS_INVALID_ARGUMENT,
        &["n_tokens"],
    );
    expect(
        run(2, 100, 0, x.as_ptr(), q.as_mut_ptr(), s.as_mut_ptr()),
        TERN_STATUS_INVALID_ARGUMENT,
        &["x_stride"],
    );
    expect(
        run(2, -1, 0, x.as_ptr(), q.as_mut_ptr(), s.as_mut_ptr()),
        TERN_STATUS_INVALID_ARGUMENT,
        &["x_stride"],
    );
    expect(
        run(2, 0, 5, x.as_ptr(), q.as_mut_ptr(), s.as_mut_ptr()),
        TERN_STATUS_INVALID_ARGUMENT,
        &["compat 5"],
    );
    expect(
        run(2, 0, 0, null(), q.as_mut_ptr(), s.as_mut_ptr()),
        TERN_STATUS_NULL_POINTER,
        &["x"],
    );
    expect(
        run(2, 0, 0, x.as_ptr(), null_mut(), s.as_mut_ptr()),
        TERN_STATUS_NULL_POINTER,
        &["q"],
    );
    let mis = unsafe { (s.as_mut_ptr() as *mut u8).add(1) } as *mut f32;
    expect(
        run(2, 0, 0, x.as_ptr(), q.as_mut_ptr(), mis),
        TERN_STATUS_MISALIGNED,
        &["scales"],
    );
    assert!(q.iter().all(|&v| v == 3) && s == [9.0; 2] && sums == [9; 2]);
    // sums may be NULL.
    expect_ok(unsafe {
        tern_quantize_activations(
            null(),
            x.as_ptr(),
            2,
            256,
            0,
            0,
            q.as_mut_ptr(),
            s.as_mut_ptr(),
            null_mut(),
        )
    });
    assert!(q.iter().all(|&v| v == 127) && s == [254.0; 2]);
}

#[test]
fn matrix_constructors_and_info_error_paths() {
    let l = i2s(0);
    let p = packed_ok();
    let mut m: *mut tern_matrix = std::ptr::dangling_mut::<tern_matrix>();
    expect(
        unsafe { tern_matrix_create(null(), &l, null(), p.len(), ROWS, COLS, &mut m) },
        TERN_STATUS_NULL_POINTER,
        &["packed"],
    );
    assert!(m.is_null(), "out reset to NULL on failure");
    expect(
        unsafe { tern_matrix_create(null(), &l, p.as_ptr().cast(), 10, ROWS, COLS, &mut m) },
        TERN_STATUS_BUFFER_TOO_SMALL,
        &["544"],
    );
    expect(
        unsafe {
            tern_matrix_create(
                null(),
                &l,
                p.as_ptr().cast(),
                p.len(),
                ROWS,
                COLS,
                null_mut(),
            )
        },
        TERN_STATUS_NULL_POINTER,
        &["out"],
    );
    let mut corrupt = p.clone();
    corrupt[0] = 0xFF;
    expect(
        unsafe {
            tern_matrix_create(
                null(),
                &l,
                corrupt.as_ptr().cast(),
                p.len(),
                ROWS,
                COLS,
                &mut m,
            )
        },
        TERN_STATUS_INVALID_ARGUMENT,
        &["corrupt"],
    );
    let w = weights();
    expect(
        unsafe { tern_matrix_from_f32(null(), &l, null(), ROWS, COLS, null(), null_mut(), &mut m) },
        TERN_STATUS_NULL_POINTER,
        &["w"],
    );
    expect(
        unsafe {
            tern_matrix_from_f32(
                null(),
                &l,
                w.as_ptr(),
                ROWS,
                100,
                null(),
                null_mut(),
                &mut m,
            )
        },
        TERN_STATUS_INVALID_ARGUMENT,
        &["multiple of 128"],
    );
    expect(
        unsafe {
            tern_matrix_from_f32(
                null(),
                &l,
                w.as_ptr(),
                ROWS,
                COLS,
                &quant_options(2),
                null_mut(),
                &mut m,
            )
        },
        TERN_STATUS_INVALID_ARGUMENT,
        &["ABSMEAN_ROW"],
    );
    assert!(m.is_null());

    expect_ok(unsafe {
        tern_matrix_from_f32(
            null(),
            &l,
            w.as_ptr(),
            ROWS,
            COLS,
            null(),
            null_mut(),
            &mut m,
        )
    });
    let mut info = tern_matrix_properties {
        struct_size: size_of::<tern_matrix_properties>() as u32,
        format: 0,
        variant: 9,
        rows: 0,
        cols: 0,
        packed_bytes: 0,
        scale: 0.0,
        kernel_name: null(),
    };
    expect(
        unsafe { tern_matrix_info(null(), &mut info) },
        TERN_STATUS_NULL_POINTER,
        &["matrix"],
    );
    expect(
        unsafe { tern_matrix_info(m, null_mut()) },
        TERN_STATUS_NULL_POINTER,
        &["info"],
    );
    let mut small = tern_matrix_properties {
        struct_size: 2,
        ..info
    };
    expect(
        unsafe { tern_matrix_info(m, &mut small) },
        TERN_STATUS_INVALID_ARGUMENT,
        &["struct_size"],
    );
    assert_eq!(info.rows, 0);
    expect_ok(unsafe { tern_matrix_info(m, &mut info) });
    assert_eq!(
        (
            info.format,
            info.variant,
            info.rows,
            info.cols,
            info.packed_bytes
        ),
        (1, 0, ROWS, COLS, PACKED)
    );
    assert!(
        unsafe { CStr::from_ptr(info.kernel_name) }
            .to_str()
            .unwrap()
            .starts_with("i2_s/")
    );
    unsafe { tern_matrix_destroy(m) };
    unsafe { tern_matrix_destroy(null_mut()) };
}

#[test]
fn gemm_error_paths_row_ranges_and_bias() {
    let m = matrix();
    let x = vec![0.25f32; 2 * COLS as usize];
    let mut y = vec![-7.0f32; 2 * ROWS as usize];
    let run =
        |m: *const tern_matrix,
         x: *const f32,
         n: i64,
         xs: i64,
         y: *mut f32,
         ys: i64,
         o: *const tern_gemm_options| unsafe { tern_gemm(null(), m, x, n, xs, y, ys, o) };
    let yp = y.as_mut_ptr();
    let opts = gemm_options(0);
    expect(
        run(null(), x.as_ptr(), 2, 0, yp, 0, &opts),
        TERN_STATUS_NULL_POINTER,
        &["matrix"],
    );
    expect(
        run(m, null(), 2, 0, yp, 0, &opts),
        TERN_STATUS_NULL_POINTER,
        &["x"],
    );
    expect(
        run(m, x.as_ptr(), 2, 0, null_mut(), 0, &opts),
        TERN_STATUS_NULL_POINTER,
        &["y"],
    );
    expect(
        run(m, x.as_ptr(), 0, 0, yp, 0, &opts),
        TERN_STATUS_INVALID_ARGUMENT,
        &["n_tokens"],
    );
    expect(
        run(m, x.as_ptr(), -3, 0, yp, 0, &opts),
        TERN_STATUS_INVALID_ARGUMENT,
        &["n_tokens"],
    );
    expect(
        run(m, x.as_ptr(), 2, 5, yp, 0, &opts),
        TERN_STATUS_INVALID_ARGUMENT,
        &["x_stride"],
    );
    expect(
        run(m, x.as_ptr(), 2, 0, yp, 3, &opts),
        TERN_STATUS_INVALID_ARGUMENT,
        &["y_stride"],
    );
    expect(
        run(m, x.as_ptr(), 2, i64::MAX, yp, 0, &opts),
        TERN_STATUS_INVALID_ARGUMENT,
        &["overflow"],
    );
    expect(
        run(m, x.as_ptr(), 2, 0, yp, 0, &gemm_options(7)),
        TERN_STATUS_INVALID_ARGUMENT,
        &["compat 7"],
    );
    expect(
        run(m, x.as_ptr(), 2, 0, yp, 0, &gemm_options(3)),
        TERN_STATUS_UNSUPPORTED,
        &["TERN_COMPAT_GGML does not apply to I2_S"],
    );
    for (b, e) in [(-1, 0), (4, 4), (5, 2), (0, ROWS + 1)] {
        let o = tern_gemm_options {
            row_begin: b,
            row_end: e,
            ..opts
        };
        expect(
            run(m, x.as_ptr(), 2, 0, yp, 0, &o),
            TERN_STATUS_INVALID_ARGUMENT,
            &["row_begin"],
        );
    }
    let o = tern_gemm_options {
        struct_size: 4,
        ..opts
    };
    expect(
        run(m, x.as_ptr(), 2, 0, yp, 0, &o),
        TERN_STATUS_INVALID_ARGUMENT,
        &["struct_size"],
    );
    assert!(y.iter().all(|&v| v == -7.0), "y untouched after failures");

    // Full result, then a row slice with a bias touches exactly that slice.
    let mut full = vec![0f32; 2 * ROWS as usize];
    expect_ok(run(m, x.as_ptr(), 2, 0, full.as_mut_ptr(), 0, null()));
    let bias: Vec<f32> = (0..ROWS).map(|r| r as f32).collect();
    let o = tern_gemm_options {
        row_begin: 2,
        row_end: 5,
        bias: bias.as_ptr(),
        ..opts
    };
    expect_ok(run(m, x.as_ptr(), 2, 0, y.as_mut_ptr(), 0, &o));
    for t in 0..2 {
        for r in 0..ROWS as usize {
            let v = y[t * ROWS as usize + r];
            if (2..5).contains(&r) {
                assert_eq!(v, full[t * ROWS as usize + r] + r as f32);
            } else {
                assert_eq!(v, -7.0, "row {r} outside the range untouched");
            }
        }
    }

    // gemm_i8: NULL scales/sums and misaligned sums.
    let q = vec![1i8; 2 * COLS as usize];
    let s = [1.0f32; 2];
    let sums = [COLS as i32; 2];
    let run8 = |s: *const f32, sums: *const i32| unsafe {
        tern_gemm_i8(
            null(),
            m,
            q.as_ptr(),
            s,
            sums,
            2,
            0,
            y.as_ptr() as *mut f32,
            0,
            null(),
        )
    };
    expect(
        run8(null(), sums.as_ptr()),
        TERN_STATUS_NULL_POINTER,
        &["scales"],
    );
    expect(
        run8(s.as_ptr(), null()),
        TERN_STATUS_NULL_POINTER,
        &["sums"],
    );
    let mis = unsafe { (sums.as_ptr() as *const u8).add(1) } as *const i32;
    expect(run8(s.as_ptr(), mis), TERN_STATUS_MISALIGNED, &["sums"]);
    expect_ok(run8(s.as_ptr(), sums.as_ptr()));
    unsafe { tern_matrix_destroy(m) };
}

#[test]
fn all_zero_tokens_give_zero_in_default_mode_and_bitnet_cpps_nan_in_compat_mode() {
    let m = matrix();
    let x = vec![0f32; COLS as usize];
    let mut y = vec![1f32; ROWS as usize];
    expect_ok(unsafe { tern_gemm(null(), m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, null()) });
    assert!(y.iter().all(|&v| v == 0.0));
    // bitnet.cpp today computes w_scale / 0 and multiplies 0 by it; we reproduce that exactly.
    expect_ok(unsafe {
        tern_gemm(
            null(),
            m,
            x.as_ptr(),
            1,
            0,
            y.as_mut_ptr(),
            0,
            &gemm_options(1),
        )
    });
    assert!(y.iter().all(|v| v.is_nan()));
    // merge-dev floors absmax at 1e-5, so it gives 0.
    expect_ok(unsafe {
        tern_gemm(
            null(),
            m,
            x.as_ptr(),
            1,
            0,
            y.as_mut_ptr(),
            0,
            &gemm_options(2),
        )
    });
    assert!(y.iter().all(|&v| v == 0.0));
    unsafe { tern_matrix_destroy(m) };
}

#[test]
fn panics_become_a_status_with_a_message() {
    let st = tern::ffi::boundary::status_call(|| panic!("boom {}", 42));
    assert_eq!(st, TERN_STATUS_PANIC);
    assert!(last_error().contains("boom 42"));
    let v = tern::ffi::boundary::value_call(5u32, || panic!("value panic"));
    assert_eq!(v, 5);
    assert!(last_error().contains("value panic"));
}

#[test]
fn last_error_is_per_thread() {
    let mut out = 0usize;
    expect(
        unsafe { tern_packed_size(null(), 1, 1, &mut out) },
        TERN_STATUS_NULL_POINTER,
        &["layout"],
    );
    std::thread::spawn(|| assert!(tern_last_error_message().is_null()))
        .join()
        .unwrap();
    assert!(last_error().contains("layout"));
}
