//! Inputs at the edges of what C can pass: a FIFO given as a GGUF path, element counts beyond
//! INT64_MAX, lengths beyond PTRDIFF_MAX and array counts no allocator can serve. Each must be
//! an error with a message (never a hang, an abort or undefined behaviour), and write nothing.

mod common;

use std::ffi::{CString, c_void};
use std::ptr::{null, null_mut};
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use tern::ffi::*;

use tern_status::*;

#[track_caller]
fn expect(st: tern_status, want: tern_status, needle: &str) {
    assert_eq!(st, want);
    let msg = last_error();
    assert!(
        msg.contains(needle),
        "message {msg:?} should mention {needle:?}"
    );
}

/// Opening a FIFO for reading blocks until a writer appears; tern_gguf_open must instead see
/// that it is not a regular file and fail at once.
#[test]
fn gguf_open_rejects_a_fifo_without_blocking() {
    let dir = std::env::temp_dir().join(format!("tern-fifo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("model.gguf");
    let _ = std::fs::remove_file(&fifo);
    let path = CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0, "mkfifo");

    let (tx, rx) = mpsc::channel();
    let p = path.clone();
    std::thread::spawn(move || {
        let mut g = null_mut();
        let st = unsafe { tern_gguf_open(p.as_ptr(), &mut g) };
        let msg = (st != TERN_STATUS_OK).then(last_error);
        tx.send((st, g.is_null(), msg)).unwrap();
    });
    // A hang is the bug: the opener thread stays blocked and the test fails here.
    let got = rx.recv_timeout(Duration::from_secs(10));
    std::fs::remove_file(&fifo).unwrap();
    let _ = std::fs::remove_dir(&dir);
    let (st, out_null, msg) = got.expect("tern_gguf_open on a FIFO did not return within 10 s");
    assert_eq!(st, TERN_STATUS_INVALID_ARGUMENT);
    assert!(out_null, "out is NULL on failure");
    let msg = msg.unwrap();
    assert!(msg.contains("not a regular file"), "{msg}");
}

#[test]
fn tensor_size_rejects_more_than_int64_max_elements() {
    const I8: u32 = 24; // 1 byte per element: the byte size itself would still fit in u64
    let dims = [1i64 << 62, 3];
    let mut out = 0x5A5A_5A5A_u64;
    let st = unsafe { tern_gguf_tensor_size(I8, 0, dims.as_ptr(), 2, &mut out) };
    expect(st, TERN_STATUS_INVALID_ARGUMENT, "INT64_MAX elements");
    assert_eq!(out, 0x5A5A_5A5A, "out untouched");

    // The largest count that fits is still sized.
    let dims = [i64::MAX];
    let st = unsafe { tern_gguf_tensor_size(I8, 0, dims.as_ptr(), 1, &mut out) };
    assert_eq!(st, TERN_STATUS_OK);
    assert_eq!(out, i64::MAX as u64);
}

#[test]
fn writer_add_tensor_rejects_more_than_int64_max_elements() {
    let w = writer();
    let name = CString::new("t").unwrap();
    let dims = [1i64 << 62, 3];
    let data = [0u8; 4];
    let st = unsafe {
        tern_gguf_writer_add_tensor(
            w,
            name.as_ptr(),
            24,
            dims.as_ptr(),
            2,
            data.as_ptr().cast(),
            4,
        )
    };
    expect(st, TERN_STATUS_INVALID_ARGUMENT, "INT64_MAX elements");
    unsafe { tern_gguf_writer_destroy(w) };
}

/// A `(ptr, len)` whose len spans more than PTRDIFF_MAX bytes cannot be a real buffer: even an
/// output buffer that is "more than large enough" is rejected, and nothing is written.
#[test]
fn lengths_beyond_ptrdiff_max_are_rejected() {
    let (rows, cols) = (4i64, 128i64);
    let w: Vec<f32> = (0..rows * cols).map(|i| (i % 3) as f32 - 1.0).collect();
    let l = i2s(0);
    let mut dst = vec![0x5Au8; 4096];
    for len in [usize::MAX, isize::MAX as usize + 1] {
        let st = unsafe {
            tern_quantize(
                null(),
                &l,
                w.as_ptr(),
                rows,
                cols,
                null(),
                dst.as_mut_ptr().cast(),
                len,
                null_mut(),
            )
        };
        expect(st, TERN_STATUS_INVALID_ARGUMENT, "PTRDIFF_MAX");
        assert!(dst.iter().all(|&b| b == 0x5A), "nothing written");
    }

    // The limit is in bytes, not elements: 2^60 pointers are 2^63 bytes.
    let w = writer();
    let key = CString::new("k").unwrap();
    let item = CString::new("v").unwrap();
    let values = [item.as_ptr(); 2];
    let st = unsafe {
        tern_gguf_writer_add_string_array(w, key.as_ptr(), values.as_ptr(), 1usize << 60)
    };
    expect(st, TERN_STATUS_INVALID_ARGUMENT, "PTRDIFF_MAX");
    unsafe { tern_gguf_writer_destroy(w) };
}

#[test]
fn writer_add_array_with_a_huge_count_is_an_error() {
    let w = writer();
    let key = CString::new("k").unwrap();
    let data = [1u8; 16];
    // 1-byte elements: SIZE_MAX/2 bytes is exactly PTRDIFF_MAX, so only the copy's allocation
    // can fail.
    let st = unsafe {
        tern_gguf_writer_add_array(
            w,
            key.as_ptr(),
            tern_gguf_type::TERN_GGUF_TYPE_UINT8 as u32,
            data.as_ptr().cast::<c_void>(),
            usize::MAX / 2,
        )
    };
    expect(st, TERN_STATUS_OUT_OF_MEMORY, "cannot allocate");
    // Wider elements overflow the byte count first.
    let st = unsafe {
        tern_gguf_writer_add_array(
            w,
            key.as_ptr(),
            tern_gguf_type::TERN_GGUF_TYPE_UINT32 as u32,
            data.as_ptr().cast::<c_void>(),
            usize::MAX / 2,
        )
    };
    expect(st, TERN_STATUS_INVALID_ARGUMENT, "overflows");
    // The writer is still usable, and the failed calls added nothing.
    let st = unsafe {
        tern_gguf_writer_add_array(
            w,
            key.as_ptr(),
            tern_gguf_type::TERN_GGUF_TYPE_UINT8 as u32,
            data.as_ptr().cast::<c_void>(),
            data.len(),
        )
    };
    assert_eq!(st, TERN_STATUS_OK, "the key was not taken by a failed add");
    unsafe { tern_gguf_writer_destroy(w) };
}

fn writer() -> *mut tern_gguf_writer {
    let mut w = null_mut();
    assert_eq!(
        unsafe { tern_gguf_writer_create(null(), &mut w) },
        TERN_STATUS_OK
    );
    w
}
