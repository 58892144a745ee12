#![no_main]
//! The GGUF reader through the C API, on arbitrary bytes: the input is written to a file (there
//! is no open-from-memory call) and opened under two dialects; when it opens, every getter runs
//! on every tensor and KV pair, and every tensor goes through `tern_matrix_from_gguf` (plus one
//! GEMM when that succeeds). Any status is fine; a crash, a hang or a panic status is not, nor
//! an answer that contradicts another (a name or key that `find` does not give back).

use std::ffi::{CStr, c_char};
use std::path::PathBuf;
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tern::ffi::*;

use tern_status::*;

/// One scratch file per fuzzing process (libFuzzer's -jobs/-workers run several).
fn scratch() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        std::env::temp_dir().join(format!("tern-fuzz-gguf-{}.gguf", std::process::id()))
    })
}

#[track_caller]
fn not_panic(st: tern_status) -> bool {
    assert_ne!(st, TERN_STATUS_PANIC, "panic status: {:?}", unsafe {
        last_error()
    });
    st == TERN_STATUS_OK
}

unsafe fn last_error() -> Option<String> {
    let p = tern_last_error_message();
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

/// A NUL-terminated string from the library whose full length is `len` bytes, and whether C sees
/// all of it (GGUF keys may contain NUL bytes; C then sees only the part before the first).
unsafe fn c_text<'a>(p: *const c_char, len: usize) -> (&'a CStr, bool) {
    assert!(!p.is_null());
    let s = unsafe { CStr::from_ptr(p) };
    assert!(
        s.to_bytes().len() <= len,
        "length {len} disagrees with the string"
    );
    // SAFETY: the library promises `len` bytes and a NUL after them.
    assert_eq!(unsafe { *p.add(len) }, 0, "no NUL after {len} bytes");
    (s, s.to_bytes().len() == len)
}

unsafe fn walk(g: *mut tern_gguf) {
    let mut props = tern_gguf_properties {
        struct_size: size_of::<tern_gguf_properties>() as u32,
        ..unsafe { std::mem::zeroed() }
    };
    assert!(not_panic(unsafe { tern_gguf_info(g, &mut props) }));

    let mut n_kv = 0usize;
    assert!(not_panic(unsafe { tern_gguf_kv_count(g, &mut n_kv) }));
    assert_eq!(n_kv as u64, props.n_kv);
    for i in 0..n_kv {
        let mut kv = tern_gguf_kv {
            struct_size: size_of::<tern_gguf_kv>() as u32,
            ..unsafe { std::mem::zeroed() }
        };
        assert!(not_panic(unsafe { tern_gguf_kv_info(g, i, &mut kv) }));
        let (key, whole) = unsafe { c_text(kv.key, kv.key_len) };
        let mut at = -2i64;
        assert!(not_panic(unsafe {
            tern_gguf_find_kv(g, key.as_ptr(), &mut at)
        }));
        if whole {
            assert_eq!(at, i as i64, "find_kv does not give key {key:?} back");
        }
        let (mut s, mut len, mut int, mut float) = (null(), 0usize, 0i64, 0f64);
        not_panic(unsafe { tern_gguf_get_string(g, key.as_ptr(), &mut s, &mut len) });
        not_panic(unsafe { tern_gguf_get_int(g, key.as_ptr(), &mut int) });
        not_panic(unsafe { tern_gguf_get_float(g, key.as_ptr(), &mut float) });
        // Arrays: the first and last few elements, and one past the end (an error, not a read).
        let n = kv.count as usize;
        for j in (0..n.min(4)).chain(n.saturating_sub(4)..n + 1) {
            not_panic(unsafe { tern_gguf_get_array_string(g, key.as_ptr(), j, &mut s, &mut len) });
            not_panic(unsafe { tern_gguf_get_array_int(g, key.as_ptr(), j, &mut int) });
        }
    }

    let mut n_tensors = 0usize;
    assert!(not_panic(unsafe {
        tern_gguf_tensor_count(g, &mut n_tensors)
    }));
    assert_eq!(n_tensors as u64, props.n_tensors);
    for i in 0..n_tensors {
        let mut t = tern_gguf_tensor {
            struct_size: size_of::<tern_gguf_tensor>() as u32,
            ..unsafe { std::mem::zeroed() }
        };
        assert!(not_panic(unsafe { tern_gguf_tensor_info(g, i, &mut t) }));
        let (name, whole) = unsafe { c_text(t.name, t.name_len) };
        assert!(whole, "tensor names have no NUL (the reader checks)");
        let mut at = -2i64;
        assert!(not_panic(unsafe {
            tern_gguf_find_tensor(g, name.as_ptr(), &mut at)
        }));
        assert_eq!(at, i as i64, "find_tensor does not give {name:?} back");
        // The reader promised the data lies in the file: touch every byte of it.
        assert!(t.file_offset + t.nbytes <= props.file_size);
        if t.nbytes > 0 {
            let data =
                unsafe { std::slice::from_raw_parts(t.data as *const u8, t.nbytes as usize) };
            std::hint::black_box(data.iter().fold(0u8, |a, &b| a ^ b));
        }
        let mut size = 0u64;
        let n_dims = t.n_dims.min(4);
        if not_panic(unsafe {
            tern_gguf_tensor_size(t.ggml_type, 0, t.dims.as_ptr(), n_dims, &mut size)
        }) && t.format == 0
        {
            assert_eq!(
                size, t.nbytes,
                "tensor_size disagrees with the reader for {name:?}"
            );
        }
        let mut m = null_mut();
        if not_panic(unsafe { tern_matrix_from_gguf(null(), g, name.as_ptr(), &mut m) }) {
            unsafe { gemm_once(m) };
        }
    }
}

unsafe fn gemm_once(m: *mut tern_matrix) {
    let mut info = tern_matrix_properties {
        struct_size: size_of::<tern_matrix_properties>() as u32,
        ..unsafe { std::mem::zeroed() }
    };
    assert!(not_panic(unsafe { tern_matrix_info(m, &mut info) }));
    // Bounded by the file (max_len), but keep a GEMM cheap whatever the dims claim.
    if info
        .rows
        .checked_mul(info.cols)
        .is_some_and(|e| e <= 1 << 22)
    {
        let x = vec![1.0f32; info.cols as usize];
        let mut y = vec![0f32; info.rows as usize];
        let st = unsafe { tern_gemm(null(), m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, null()) };
        assert_eq!(st, TERN_STATUS_OK, "{:?}", unsafe { last_error() });
    }
    unsafe { tern_matrix_destroy(m) };
}

fuzz_target!(|input: &[u8]| {
    let path = scratch();
    std::fs::write(path, input).expect("write the scratch file");
    let c_path = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // AUTO always; one explicit dialect chosen by the length, so every dialect gets inputs.
    for dialect in [0, 1 + (input.len() % 3) as i32] {
        let opts = tern_gguf_open_options {
            struct_size: size_of::<tern_gguf_open_options>() as u32,
            dialect,
        };
        let mut g = null_mut();
        let st = unsafe { tern_gguf_open_with_options(c_path.as_ptr(), &opts, &mut g) };
        if not_panic(st) {
            unsafe { walk(g) };
            unsafe { tern_gguf_close(g) };
        } else {
            assert!(g.is_null(), "failed open left a handle");
        }
    }
});
