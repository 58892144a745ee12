//! The raw ggml tier on input it cannot take: bad sizes (negative, not whole blocks, 64 and 100
//! for I2_S), NULL and misaligned pointers, extents beyond PTRDIFF_MAX. Every call returns
//! normally (no abort, no unwinding into the test), writes nothing (the byte-count functions
//! return 0), and leaves a last error that names the function; the next valid call clears it.

mod common;

use std::ffi::{CStr, c_void};
use std::ptr::{null, null_mut};

use common::last_error;
use tern::ffi::*;

const SENTINEL: u8 = 0x5A;
const FSENTINEL: f32 = -12345.0;

#[track_caller]
fn expect_error(function: &str, needle: &str) {
    let msg = last_error();
    assert!(msg.starts_with(function), "{msg:?} should name {function}");
    assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
}

#[track_caller]
fn expect_clear() {
    let p = tern_last_error_message();
    assert!(
        p.is_null(),
        "a success clears the last error: {:?}",
        unsafe { CStr::from_ptr(p) }
    );
}

#[track_caller]
fn untouched(bytes: &[u8]) {
    assert!(bytes.iter().all(|&b| b == SENTINEL), "output was written");
}

#[track_caller]
fn untouched_f32(v: &[f32]) {
    assert!(
        v.iter().all(|&x| x.to_bits() == FSENTINEL.to_bits()),
        "output was written: {v:?}"
    );
}

/// A pointer to `f32` that is not 4-byte aligned.
fn misaligned(buf: &mut [u8]) -> *mut f32 {
    let p = buf.as_mut_ptr();
    p.wrapping_add(if (p as usize).is_multiple_of(4) { 1 } else { 0 })
        .cast()
}

const I2: &str = "tern_ggml_vec_dot_i2_i8_s";

#[test]
fn vec_dot_i2_i8_s_rejects_bad_input() {
    let vx = vec![0x55u8; 4 * 64]; // codes 1: the dot of a row is the sum of its activations
    let vy = vec![1i8; 4 * 256];
    let (px, py) = (vx.as_ptr().cast::<c_void>(), vy.as_ptr().cast::<c_void>());
    let call = |n: i32, s: *mut f32, bs: usize, vx, bx, vy, by, nrc| unsafe {
        tern_ggml_vec_dot_i2_i8_s(n, s, bs, vx, bx, vy, by, nrc)
    };
    for nrc in [1, 3, 4, 8] {
        for (n, needle) in [
            (64, "not a multiple of the block size 128"),
            (100, "not a multiple of the block size 128"),
            (127, "not a multiple"),
            (-128, "must be >= 0"),
            (i32::MIN, "must be >= 0"),
            (0, "n must be > 0"),
        ] {
            let mut s = [FSENTINEL; 8];
            call(n, s.as_mut_ptr(), 1, px, 128, py, 128, nrc);
            untouched_f32(&s);
            expect_error(I2, needle);
        }
    }
    let mut s = [FSENTINEL; 8];
    for nrc in [0, -1, -4, i32::MIN] {
        call(128, s.as_mut_ptr(), 1, px, 128, py, 128, nrc);
        expect_error(I2, "nrc must be > 0");
    }
    for nrc in [1, 4] {
        call(128, null_mut(), 1, px, 128, py, 128, nrc);
        expect_error(I2, "s is NULL");
        call(128, s.as_mut_ptr(), 1, null(), 128, py, 128, nrc);
        expect_error(I2, "vx is NULL");
        call(128, s.as_mut_ptr(), 1, px, 128, null(), 128, nrc);
        expect_error(I2, "vy is NULL");
        let mut raw = [SENTINEL; 64];
        call(128, misaligned(&mut raw), 1, px, 128, py, 128, nrc);
        expect_error(I2, "not aligned");
        untouched(&raw);
    }
    // Strides whose extents overflow, or pass PTRDIFF_MAX bytes.
    call(128, s.as_mut_ptr(), 1, px, 128, py, usize::MAX, 4);
    expect_error(I2, "overflow");
    call(128, s.as_mut_ptr(), usize::MAX / 8, px, 128, py, 128, 4);
    expect_error(I2, "PTRDIFF_MAX");
    call(128, s.as_mut_ptr(), 1, px, usize::MAX, py, 128, 3);
    expect_error(I2, "overflow");
    untouched_f32(&s);

    // The same call with valid sizes computes, and clears the error.
    call(128, s.as_mut_ptr(), 1, px, 128, py, 128, 1);
    expect_clear();
    assert_eq!(s[0], 128.0);
    call(256, s.as_mut_ptr(), 2, px, 256, py, 256, 4);
    expect_clear();
    assert_eq!([s[0], s[2], s[4], s[6]], [256.0; 4]);
}

#[test]
fn quantize_i2_s_rejects_bad_input() {
    const F: &str = "tern_ggml_quantize_i2_s";
    let src = vec![0.5f32; 512];
    let mut dst = vec![SENTINEL; 512 / 4 + 32];
    let q = |src: *const f32, dst: *mut u8, nrow, n_per_row| unsafe {
        tern_ggml_quantize_i2_s(src, dst.cast(), nrow, n_per_row, null())
    };
    for (nrow, npr, needle) in [
        (1, 64, "not a multiple of the block size 128"),
        (1, 100, "not a multiple"),
        (3, 100, "not a multiple"),
        (-1, 128, "must be >= 0"),
        (1, -128, "must be >= 0"),
        (0, 128, "must be > 0"),
        (i64::MAX, 2, "overflows int64"),
        (1, 1 << 62, "PTRDIFF_MAX"),
    ] {
        assert_eq!(q(src.as_ptr(), dst.as_mut_ptr(), nrow, npr), 0);
        expect_error(F, needle);
        untouched(&dst);
    }
    assert_eq!(q(null(), dst.as_mut_ptr(), 1, 128), 0);
    expect_error(F, "src is NULL");
    assert_eq!(q(src.as_ptr(), null_mut(), 1, 128), 0);
    expect_error(F, "dst is NULL");
    let mut raw = vec![0u8; 4 * 128 + 4];
    assert_eq!(q(misaligned(&mut raw), dst.as_mut_ptr(), 1, 128), 0);
    expect_error(F, "not aligned");
    untouched(&dst);

    assert_eq!(q(src.as_ptr(), dst.as_mut_ptr(), 4, 128), 512 / 4 + 32);
    expect_clear();
}

type RowI8 = unsafe extern "C" fn(*const f32, *mut c_void, i64, *mut f32, *mut i32);

#[test]
fn quantize_row_i8_s_rejects_bad_input() {
    let both: [(&str, RowI8); 2] = [
        ("tern_ggml_quantize_row_i8_s", tern_ggml_quantize_row_i8_s),
        (
            "tern_ggml_quantize_row_i8_s_legacy",
            tern_ggml_quantize_row_i8_s_legacy,
        ),
    ];
    for (f, quantize) in both {
        let x = vec![0.25f32; 256];
        let mut y = vec![SENTINEL; 256];
        let (mut scale, mut sum) = (FSENTINEL, 0x5A5A_5A5A_i32);
        let call = |x: *const f32, y: *mut u8, n, sc: *mut f32, su: *mut i32| unsafe {
            quantize(x, y.cast(), n, sc, su)
        };
        for (n, needle) in [
            (0, "n must be > 0"),
            (-1, "must be >= 0"),
            (i64::MIN, ">= 0"),
        ] {
            call(x.as_ptr(), y.as_mut_ptr(), n, &mut scale, &mut sum);
            expect_error(f, needle);
        }
        call(x.as_ptr(), y.as_mut_ptr(), 1 << 62, &mut scale, &mut sum);
        expect_error(f, "PTRDIFF_MAX");
        call(null(), y.as_mut_ptr(), 256, &mut scale, &mut sum);
        expect_error(f, "x is NULL");
        call(x.as_ptr(), null_mut(), 256, &mut scale, &mut sum);
        expect_error(f, "y is NULL");
        call(x.as_ptr(), y.as_mut_ptr(), 256, null_mut(), &mut sum);
        expect_error(f, "act_scales is NULL");
        call(x.as_ptr(), y.as_mut_ptr(), 256, &mut scale, null_mut());
        expect_error(f, "act_sums is NULL");
        let mut raw = [SENTINEL; 8];
        call(
            x.as_ptr(),
            y.as_mut_ptr(),
            256,
            misaligned(&mut raw),
            &mut sum,
        );
        expect_error(f, "not aligned");
        untouched(&raw);
        untouched(&y);
        assert_eq!(scale.to_bits(), FSENTINEL.to_bits());
        assert_eq!(sum, 0x5A5A_5A5A);

        call(x.as_ptr(), y.as_mut_ptr(), 256, &mut scale, &mut sum);
        expect_clear();
        assert_eq!(sum, 127 * 256);
    }
}

type RowFrom = unsafe extern "C" fn(*const f32, *mut c_void, i64);
type RowTo = unsafe extern "C" fn(*const c_void, *mut f32, i64);

/// (name, from_float, bytes per 256-block)
const FROM_FLOAT: [(&str, RowFrom, usize); 3] = [
    (
        "tern_ggml_quantize_row_tq1_0",
        tern_ggml_quantize_row_tq1_0,
        54,
    ),
    (
        "tern_ggml_quantize_row_tq2_0",
        tern_ggml_quantize_row_tq2_0,
        66,
    ),
    (
        "tern_ggml_quantize_row_q8_K",
        tern_ggml_quantize_row_q8_K,
        292,
    ),
];

#[test]
fn from_float_rows_reject_bad_input() {
    let x = vec![0.5f32; 512];
    for (f, quantize, block_bytes) in FROM_FLOAT {
        let mut y = vec![SENTINEL; 2 * block_bytes];
        let call = |x: *const f32, y: *mut u8, k| unsafe { quantize(x, y.cast(), k) };
        for (k, needle) in [
            (-256, "must be >= 0"),
            (100, "not a multiple of the block size 256"),
            (300, "not a multiple"),
            (1 << 62, "PTRDIFF_MAX"),
        ] {
            call(x.as_ptr(), y.as_mut_ptr(), k);
            expect_error(f, needle);
        }
        call(null(), y.as_mut_ptr(), 256);
        expect_error(f, "x is NULL");
        call(x.as_ptr(), null_mut(), 256);
        expect_error(f, "y is NULL");
        let mut raw = vec![0u8; 4 * 256 + 4];
        call(misaligned(&mut raw), y.as_mut_ptr(), 256);
        expect_error(f, "not aligned");
        untouched(&y);

        // k = 0 touches nothing, so NULL is fine; a success clears the last error.
        call(null(), null_mut(), 0);
        expect_clear();
        call(x.as_ptr(), y.as_mut_ptr(), 512);
        expect_clear();
        assert!(y.iter().any(|&b| b != SENTINEL));
    }
}

#[test]
fn to_float_rows_reject_bad_input() {
    let both: [(&str, RowTo, usize); 2] = [
        (
            "tern_ggml_dequantize_row_tq1_0",
            tern_ggml_dequantize_row_tq1_0,
            54,
        ),
        (
            "tern_ggml_dequantize_row_tq2_0",
            tern_ggml_dequantize_row_tq2_0,
            66,
        ),
    ];
    for (f, dequantize, block_bytes) in both {
        let x = vec![0u8; 2 * block_bytes];
        let mut y = vec![FSENTINEL; 512];
        let call = |x: *const u8, y: *mut f32, k| unsafe { dequantize(x.cast(), y, k) };
        for (k, needle) in [
            (-256, "must be >= 0"),
            (i64::MIN, "must be >= 0"),
            (100, "not a multiple of the block size 256"),
            (1 << 62, "PTRDIFF_MAX"),
        ] {
            call(x.as_ptr(), y.as_mut_ptr(), k);
            expect_error(f, needle);
        }
        call(null(), y.as_mut_ptr(), 256);
        expect_error(f, "x is NULL");
        call(x.as_ptr(), null_mut(), 256);
        expect_error(f, "y is NULL");
        let mut raw = vec![SENTINEL; 4 * 256 + 4];
        call(x.as_ptr(), misaligned(&mut raw), 256);
        expect_error(f, "not aligned");
        untouched(&raw);
        untouched_f32(&y);

        call(null(), null_mut(), 0);
        expect_clear();
        call(x.as_ptr(), y.as_mut_ptr(), 512);
        expect_clear();
        assert!(y.iter().all(|&v| v == 0.0), "zero blocks have scale 0");
    }
}

type VecDot =
    unsafe extern "C" fn(i32, *mut f32, usize, *const c_void, usize, *const c_void, usize, i32);

#[test]
fn tq_vec_dots_reject_bad_input() {
    let both: [(&str, VecDot, usize); 2] = [
        (
            "tern_ggml_vec_dot_tq1_0_q8_K",
            tern_ggml_vec_dot_tq1_0_q8_K,
            54,
        ),
        (
            "tern_ggml_vec_dot_tq2_0_q8_K",
            tern_ggml_vec_dot_tq2_0_q8_K,
            66,
        ),
    ];
    let vy = vec![0u8; 2 * 292];
    for (f, dot, block_bytes) in both {
        let vx = vec![0u8; 2 * block_bytes];
        let (px, py) = (vx.as_ptr().cast::<c_void>(), vy.as_ptr().cast::<c_void>());
        let mut s = FSENTINEL;
        let call = |n, s: *mut f32, vx, vy, nrc| unsafe { dot(n, s, 0, vx, 0, vy, 0, nrc) };
        for (n, nrc, needle) in [
            (-256, 1, "must be >= 0"),
            (100, 1, "not a multiple of the block size 256"),
            (64, 1, "not a multiple"),
            (256, 2, "nrc must be 1"),
            (256, 0, "nrc must be 1"),
            (256, -1, "nrc must be 1"),
        ] {
            call(n, &mut s, px, py, nrc);
            expect_error(f, needle);
        }
        call(256, null_mut(), px, py, 1);
        expect_error(f, "s is NULL");
        call(256, &mut s, null(), py, 1);
        expect_error(f, "vx is NULL");
        call(256, &mut s, px, null(), 1);
        expect_error(f, "vy is NULL");
        let mut raw = [SENTINEL; 8];
        call(256, misaligned(&mut raw), px, py, 1);
        expect_error(f, "not aligned");
        untouched(&raw);
        assert_eq!(s.to_bits(), FSENTINEL.to_bits(), "*s untouched");

        // n = 0 reads no block (NULL allowed) and writes 0, like ggml.
        call(0, &mut s, null(), null(), 1);
        expect_clear();
        assert_eq!(s, 0.0);
        s = FSENTINEL;
        call(512, &mut s, px, py, 1);
        expect_clear();
        assert_eq!(s, 0.0);
    }
}

type Chunk = unsafe extern "C" fn(*const f32, *mut c_void, i64, i64, *const f32) -> usize;

#[test]
fn tq_chunk_quantizers_reject_bad_input() {
    let both: [(&str, Chunk, usize); 2] = [
        ("tern_ggml_quantize_tq1_0", tern_ggml_quantize_tq1_0, 54),
        ("tern_ggml_quantize_tq2_0", tern_ggml_quantize_tq2_0, 66),
    ];
    let src = vec![0.5f32; 512];
    for (f, quantize, block_bytes) in both {
        let mut dst = vec![SENTINEL; 2 * block_bytes];
        let call = |src: *const f32, dst: *mut u8, nrow, npr| unsafe {
            quantize(src, dst.cast(), nrow, npr, null())
        };
        for (nrow, npr, needle) in [
            (
                1,
                100,
                "n_per_row = 100 is not a multiple of the block size 256",
            ),
            (2, 128, "not a multiple"),
            (-1, 256, "must be >= 0"),
            (1, -256, "must be >= 0"),
            (i64::MAX, 256, "overflows int64"),
            (1 << 40, 1 << 22, "PTRDIFF_MAX"),
        ] {
            assert_eq!(call(src.as_ptr(), dst.as_mut_ptr(), nrow, npr), 0);
            expect_error(f, needle);
        }
        assert_eq!(call(null(), dst.as_mut_ptr(), 1, 256), 0);
        expect_error(f, "src is NULL");
        assert_eq!(call(src.as_ptr(), null_mut(), 1, 256), 0);
        expect_error(f, "dst is NULL");
        untouched(&dst);

        // An empty chunk is 0 bytes and no error; a real one returns its size.
        assert_eq!(call(null(), null_mut(), 0, 256), 0);
        expect_clear();
        assert_eq!(
            call(src.as_ptr(), dst.as_mut_ptr(), 2, 256),
            2 * block_bytes
        );
        expect_clear();
    }
}

/// (name, from_float, elements and bytes per block) of mainline ggml's Q2_0 / Q1_0 / Q8_0.
const Q_FROM_FLOAT: [(&str, RowFrom, i64, usize); 4] = [
    (
        "tern_ggml_quantize_row_q2_0",
        tern_ggml_quantize_row_q2_0,
        64,
        18,
    ),
    (
        "tern_ggml_quantize_row_q1_0",
        tern_ggml_quantize_row_q1_0,
        128,
        18,
    ),
    (
        "tern_ggml_quantize_row_q8_0",
        tern_ggml_quantize_row_q8_0,
        32,
        34,
    ),
    (
        "tern_ggml_quantize_row_q8_0_ref",
        tern_ggml_quantize_row_q8_0_ref,
        32,
        34,
    ),
];

#[test]
fn q_from_float_rows_reject_bad_input() {
    let x = vec![0.5f32; 256];
    for (f, quantize, block, block_bytes) in Q_FROM_FLOAT {
        let mut y = vec![SENTINEL; 2 * block_bytes];
        let call = |x: *const f32, y: *mut u8, k| unsafe { quantize(x, y.cast(), k) };
        let not_whole = format!("not a multiple of the block size {block}");
        for (k, needle) in [
            (-block, "must be >= 0"),
            (block + 16, not_whole.as_str()),
            (block / 2, "not a multiple"),
            (1 << 62, "PTRDIFF_MAX"),
        ] {
            call(x.as_ptr(), y.as_mut_ptr(), k);
            expect_error(f, needle);
        }
        call(null(), y.as_mut_ptr(), block);
        expect_error(f, "x is NULL");
        call(x.as_ptr(), null_mut(), block);
        expect_error(f, "y is NULL");
        let mut raw = vec![0u8; 4 * 128 + 4];
        call(misaligned(&mut raw), y.as_mut_ptr(), block);
        expect_error(f, "not aligned");
        untouched(&y);

        call(null(), null_mut(), 0);
        expect_clear();
        call(x.as_ptr(), y.as_mut_ptr(), 2 * block);
        expect_clear();
        assert!(y.iter().any(|&b| b != SENTINEL));
    }
}

#[test]
fn q_to_float_rows_reject_bad_input() {
    let both: [(&str, RowTo, i64); 2] = [
        (
            "tern_ggml_dequantize_row_q2_0",
            tern_ggml_dequantize_row_q2_0,
            64,
        ),
        (
            "tern_ggml_dequantize_row_q1_0",
            tern_ggml_dequantize_row_q1_0,
            128,
        ),
    ];
    for (f, dequantize, block) in both {
        let x = [0u8; 2 * 18];
        let mut y = vec![FSENTINEL; 256];
        let call = |x: *const u8, y: *mut f32, k| unsafe { dequantize(x.cast(), y, k) };
        let not_whole = format!("not a multiple of the block size {block}");
        for (k, needle) in [
            (-block, "must be >= 0"),
            (i64::MIN, "must be >= 0"),
            (block + 32, not_whole.as_str()),
            (1 << 62, "PTRDIFF_MAX"),
        ] {
            call(x.as_ptr(), y.as_mut_ptr(), k);
            expect_error(f, needle);
        }
        call(null(), y.as_mut_ptr(), block);
        expect_error(f, "x is NULL");
        call(x.as_ptr(), null_mut(), block);
        expect_error(f, "y is NULL");
        let mut raw = vec![SENTINEL; 4 * 128 + 4];
        call(x.as_ptr(), misaligned(&mut raw), block);
        expect_error(f, "not aligned");
        untouched(&raw);
        untouched_f32(&y);

        call(null(), null_mut(), 0);
        expect_clear();
        call(x.as_ptr(), y.as_mut_ptr(), 2 * block);
        expect_clear();
        assert!(
            y[..2 * block as usize].iter().all(|&v| v == 0.0),
            "zero blocks have scale 0"
        );
    }
}

#[test]
fn q_vec_dots_reject_bad_input() {
    let both: [(&str, VecDot, i32); 2] = [
        (
            "tern_ggml_vec_dot_q2_0_q8_0",
            tern_ggml_vec_dot_q2_0_q8_0,
            64,
        ),
        (
            "tern_ggml_vec_dot_q1_0_q8_0",
            tern_ggml_vec_dot_q1_0_q8_0,
            128,
        ),
    ];
    let vy = vec![0u8; 8 * 34];
    for (f, dot, block) in both {
        let vx = [0u8; 2 * 18];
        let (px, py) = (vx.as_ptr().cast::<c_void>(), vy.as_ptr().cast::<c_void>());
        let mut s = FSENTINEL;
        let call = |n, s: *mut f32, vx, vy, nrc| unsafe { dot(n, s, 0, vx, 0, vy, 0, nrc) };
        let not_whole = format!("not a multiple of the block size {block}");
        for (n, nrc, needle) in [
            (-block, 1, "must be >= 0"),
            (block + 32, 1, not_whole.as_str()),
            (32, 1, "not a multiple"),
            (block, 2, "nrc must be 1"),
            (block, 0, "nrc must be 1"),
            (block, -1, "nrc must be 1"),
        ] {
            call(n, &mut s, px, py, nrc);
            expect_error(f, needle);
        }
        call(block, null_mut(), px, py, 1);
        expect_error(f, "s is NULL");
        call(block, &mut s, null(), py, 1);
        expect_error(f, "vx is NULL");
        call(block, &mut s, px, null(), 1);
        expect_error(f, "vy is NULL");
        let mut raw = [SENTINEL; 8];
        call(block, misaligned(&mut raw), px, py, 1);
        expect_error(f, "not aligned");
        untouched(&raw);
        assert_eq!(s.to_bits(), FSENTINEL.to_bits(), "*s untouched");

        call(0, &mut s, null(), null(), 1);
        expect_clear();
        assert_eq!(s, 0.0);
        s = FSENTINEL;
        call(2 * block, &mut s, px, py, 1);
        expect_clear();
        assert_eq!(s, 0.0);
    }
}

#[test]
fn q_chunk_quantizers_reject_bad_input() {
    let both: [(&str, Chunk, i64); 2] = [
        ("tern_ggml_quantize_q2_0", tern_ggml_quantize_q2_0, 64),
        ("tern_ggml_quantize_q1_0", tern_ggml_quantize_q1_0, 128),
    ];
    let src = vec![0.5f32; 256];
    for (f, quantize, block) in both {
        let mut dst = vec![SENTINEL; 2 * 18];
        let call = |src: *const f32, dst: *mut u8, nrow, npr| unsafe {
            quantize(src, dst.cast(), nrow, npr, null())
        };
        let not_whole = format!("n_per_row = 100 is not a multiple of the block size {block}");
        for (nrow, npr, needle) in [
            (1, 100, not_whole.as_str()),
            (2, block / 2, "not a multiple"),
            (-1, block, "must be >= 0"),
            (1, -block, "must be >= 0"),
            (i64::MAX, block, "overflows int64"),
            (1 << 40, 1 << 22, "PTRDIFF_MAX"),
        ] {
            assert_eq!(call(src.as_ptr(), dst.as_mut_ptr(), nrow, npr), 0);
            expect_error(f, needle);
        }
        assert_eq!(call(null(), dst.as_mut_ptr(), 1, block), 0);
        expect_error(f, "src is NULL");
        assert_eq!(call(src.as_ptr(), null_mut(), 1, block), 0);
        expect_error(f, "dst is NULL");
        untouched(&dst);

        assert_eq!(call(null(), null_mut(), 0, block), 0);
        expect_clear();
        assert_eq!(call(src.as_ptr(), dst.as_mut_ptr(), 2, block), 2 * 18);
        expect_clear();
    }
}
