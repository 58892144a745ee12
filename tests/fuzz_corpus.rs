//! The seed corpus of every fuzz target (`fuzz/corpus/TARGET/`), generated here through the C API
//! so the seeds are valid inputs for the current formats. This test fails when the committed
//! files differ from what it generates; regenerate them with
//!   TERN_WRITE_FUZZ_CORPUS=1 cargo test --release --test fuzz_corpus
//! Seeds stay small (the fuzzers run with -max_len=4096; all of them together are a few KB).

use std::ffi::{CString, c_char};
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::atomic::{AtomicUsize, Ordering};

use tern::ffi::*;

use tern_gguf_type::*;
use tern_status::*;

const MAX_LEN: usize = 4096;
/// The targets that decode `fuzz_targets/common.rs`'s `case` header + packed data.
const FORMAT_TARGETS: [&str; 3] = ["unpack", "dequantize", "matrix_create"];

#[track_caller]
fn ok(st: tern_status) {
    assert_eq!(st, TERN_STATUS_OK, "{:?}", unsafe {
        let p = tern_last_error_message();
        (!p.is_null()).then(|| std::ffi::CStr::from_ptr(p).to_owned())
    });
}

fn layout(format: tern_format) -> tern_layout {
    tern_layout {
        struct_size: size_of::<tern_layout>() as u32,
        format: format as i32,
        variant: 0,
        tile_rows: 0,
        tile_k: 0,
        simd_rows: 0,
    }
}

/// Deterministic weights with all three ternary values and a non-trivial scale.
fn weights(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + i / 5) % 3) as f32 * 0.25 - 0.25)
        .collect()
}

/// `rows × cols` quantized into `format`, or None if the format cannot hold that shape.
fn packed(format: tern_format, rows: i64, cols: i64) -> Option<Vec<u8>> {
    let l = layout(format);
    let mut size = 0usize;
    if unsafe { tern_packed_size(&l, rows, cols, &mut size) } != TERN_STATUS_OK {
        return None;
    }
    let w = weights((rows * cols) as usize);
    let mut out = vec![0u8; size];
    let st = unsafe {
        tern_quantize(
            null(),
            &l,
            w.as_ptr(),
            rows,
            cols,
            null(),
            out.as_mut_ptr().cast(),
            size,
            null_mut(),
        )
    };
    (st == TERN_STATUS_OK).then_some(out)
}

const FORMATS: [(tern_format, &str); 5] = [
    (tern_format::TERN_FORMAT_I2_S, "i2_s"),
    (tern_format::TERN_FORMAT_TL1, "tl1"),
    (tern_format::TERN_FORMAT_TL2, "tl2"),
    (tern_format::TERN_FORMAT_TQ1_0, "tq1_0"),
    (tern_format::TERN_FORMAT_TQ2_0, "tq2_0"),
];

/// One seed per format: the 8-byte header `common::case` decodes (untiled, variant 0) for the
/// smallest shape the format packs, then its packed bytes.
fn format_seeds() -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (format, name) in FORMATS {
        let (rows, cols, data) = [(1i64, 128i64), (1, 256), (32, 32), (32, 256)]
            .into_iter()
            .find_map(|(r, c)| packed(format, r, c).map(|d| (r, c, d)))
            .unwrap_or_else(|| panic!("no small shape packs as {name}"));
        let c16 = (cols / 16 - 1) as u16;
        let mut seed = vec![
            format as u8 - 1,
            0,
            0,
            0,
            0,
            (rows - 1) as u8,
            c16 as u8,
            (c16 >> 8) as u8,
        ];
        seed.extend_from_slice(&data);
        seeds.push((format!("{name}-{rows}x{cols}"), seed));
    }
    seeds
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// Builds a GGUF file with the C writer and returns its bytes.
fn gguf(
    dir: &Path,
    name: &str,
    dialect: i32,
    alignment: u32,
    build: impl FnOnce(*mut tern_gguf_writer),
) -> Vec<u8> {
    let opts = tern_gguf_writer_options {
        struct_size: size_of::<tern_gguf_writer_options>() as u32,
        alignment,
        dialect,
    };
    let mut w = null_mut();
    ok(unsafe { tern_gguf_writer_create(&opts, &mut w) });
    build(w);
    let path = dir.join(name);
    let c_path = cstr(path.to_str().unwrap());
    ok(unsafe { tern_gguf_writer_write(w, c_path.as_ptr()) });
    unsafe { tern_gguf_writer_destroy(w) };
    std::fs::read(&path).unwrap()
}

fn add_ternary(w: *mut tern_gguf_writer, name: &str, format: tern_format, rows: i64, cols: i64) {
    let data = packed(format, rows, cols).unwrap();
    let l = layout(format);
    let name = cstr(name);
    ok(unsafe {
        tern_gguf_writer_add_ternary(
            w,
            name.as_ptr(),
            &l,
            data.as_ptr().cast(),
            data.len(),
            rows,
            cols,
        )
    });
}

fn gguf_seeds() -> Vec<(String, Vec<u8>)> {
    // One directory per call: the tests of this file run in parallel.
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("tern-fuzz-corpus-{}-{call}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (auto, legacy, current) = (0, 2, 3);
    let seeds = vec![
        // Every KV value type, no tensors.
        (
            "kv.gguf".to_string(),
            gguf(&dir, "kv.gguf", auto, 0, |w| {
                let k = |s: &str| cstr(s);
                unsafe {
                    ok(tern_gguf_writer_add_string(
                        w,
                        k("general.architecture").as_ptr(),
                        k("bitnet").as_ptr(),
                    ));
                    for (key, ty, v) in [
                        ("u8", TERN_GGUF_TYPE_UINT8, 200),
                        ("i16", TERN_GGUF_TYPE_INT16, -300),
                        ("u32", TERN_GGUF_TYPE_UINT32, 4_000_000_000),
                        ("i64", TERN_GGUF_TYPE_INT64, i64::MIN),
                        ("u64", TERN_GGUF_TYPE_UINT64, i64::MAX),
                        ("bool", TERN_GGUF_TYPE_BOOL, 1),
                    ] {
                        ok(tern_gguf_writer_add_int(w, k(key).as_ptr(), ty as u32, v));
                    }
                    ok(tern_gguf_writer_add_float(
                        w,
                        k("f32").as_ptr(),
                        TERN_GGUF_TYPE_FLOAT32 as u32,
                        0.5,
                    ));
                    ok(tern_gguf_writer_add_float(
                        w,
                        k("f64").as_ptr(),
                        TERN_GGUF_TYPE_FLOAT64 as u32,
                        -1e300,
                    ));
                    let items = [k("a"), k(""), k("tokens")];
                    let ptrs: Vec<*const c_char> = items.iter().map(|s| s.as_ptr()).collect();
                    ok(tern_gguf_writer_add_string_array(
                        w,
                        k("strs").as_ptr(),
                        ptrs.as_ptr(),
                        ptrs.len(),
                    ));
                    let ints = [1i32, -2, 3];
                    ok(tern_gguf_writer_add_array(
                        w,
                        k("ints").as_ptr(),
                        TERN_GGUF_TYPE_INT32 as u32,
                        ints.as_ptr().cast(),
                        3,
                    ));
                    let bools = [0u8, 1];
                    ok(tern_gguf_writer_add_array(
                        w,
                        k("bools").as_ptr(),
                        TERN_GGUF_TYPE_BOOL as u32,
                        bools.as_ptr().cast(),
                        2,
                    ));
                    ok(tern_gguf_writer_add_array(
                        w,
                        k("empty").as_ptr(),
                        TERN_GGUF_TYPE_FLOAT64 as u32,
                        null(),
                        0,
                    ));
                }
            }),
        ),
        // Plain tensors (F32, F16, a 3-D I8) with a non-default alignment.
        (
            "plain.gguf".to_string(),
            gguf(&dir, "plain.gguf", auto, 64, |w| unsafe {
                let f32s: Vec<u8> = (0..8)
                    .flat_map(|i| (i as f32 - 3.5).to_le_bytes())
                    .collect();
                ok(tern_gguf_writer_add_tensor(
                    w,
                    cstr("f32").as_ptr(),
                    0,
                    [4i64, 2].as_ptr(),
                    2,
                    f32s.as_ptr().cast(),
                    32,
                ));
                ok(tern_gguf_writer_add_tensor(
                    w,
                    cstr("f16").as_ptr(),
                    1,
                    [3i64].as_ptr(),
                    1,
                    [0u8, 60, 0, 188, 0, 0].as_ptr().cast(),
                    6,
                ));
                ok(tern_gguf_writer_add_tensor(
                    w,
                    cstr("i8").as_ptr(),
                    24,
                    [2i64, 1, 2].as_ptr(),
                    3,
                    [1u8, 2, 3, 4].as_ptr().cast(),
                    4,
                ));
            }),
        ),
        // The ggml ternary types, readable by every dialect.
        (
            "tq.gguf".to_string(),
            gguf(&dir, "tq.gguf", auto, 0, |w| {
                add_ternary(w, "tq1", tern_format::TERN_FORMAT_TQ1_0, 2, 256);
                add_ternary(w, "tq2", tern_format::TERN_FORMAT_TQ2_0, 2, 256);
            }),
        ),
        // bitnet.cpp's types: I2_S and TL1 (current fork), TL2 as merge-dev writes it (id 39).
        (
            "bitnet.gguf".to_string(),
            gguf(&dir, "bitnet.gguf", current, 0, |w| {
                unsafe {
                    ok(tern_gguf_writer_add_string(
                        w,
                        cstr("general.architecture").as_ptr(),
                        cstr("bitnet-b1.58").as_ptr(),
                    ));
                }
                add_ternary(w, "i2s", tern_format::TERN_FORMAT_I2_S, 2, 128);
                add_ternary(w, "tl1", tern_format::TERN_FORMAT_TL1, 32, 32);
            }),
        ),
        (
            "tl2-legacy.gguf".to_string(),
            gguf(&dir, "tl2-legacy.gguf", legacy, 0, |w| {
                add_ternary(w, "tl2", tern_format::TERN_FORMAT_TL2, 32, 256);
            }),
        ),
    ];
    let _ = std::fs::remove_dir_all(&dir);
    seeds
}

fn corpus() -> Vec<(&'static str, String, Vec<u8>)> {
    let mut all = Vec::new();
    let formats = format_seeds();
    for target in FORMAT_TARGETS {
        for (name, bytes) in &formats {
            all.push((target, name.clone(), bytes.clone()));
        }
    }
    for (name, bytes) in gguf_seeds() {
        all.push(("gguf_open", name, bytes));
    }
    all
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus")
}

#[test]
fn fuzz_seed_corpus_is_current() {
    let corpus = corpus();
    let total: usize = corpus.iter().map(|(_, _, b)| b.len()).sum();
    for (target, name, bytes) in &corpus {
        assert!(
            bytes.len() <= MAX_LEN,
            "{target}/{name} is {} bytes > -max_len {MAX_LEN}",
            bytes.len()
        );
    }
    assert!(total <= 32 * 1024, "the seed corpus grew to {total} bytes");

    let root = corpus_dir();
    let mut targets: Vec<&str> = corpus.iter().map(|(t, _, _)| *t).collect();
    targets.dedup();
    if std::env::var_os("TERN_WRITE_FUZZ_CORPUS").is_some_and(|v| v == "1") {
        for t in &targets {
            let _ = std::fs::remove_dir_all(root.join(t));
            std::fs::create_dir_all(root.join(t)).unwrap();
        }
        for (target, name, bytes) in &corpus {
            std::fs::write(root.join(target).join(name), bytes).unwrap();
        }
        println!(
            "wrote {} seeds ({total} bytes) under {}",
            corpus.len(),
            root.display()
        );
        return;
    }
    let regen = "regenerate with TERN_WRITE_FUZZ_CORPUS=1 cargo test --release --test fuzz_corpus";
    for t in &targets {
        let mut committed: Vec<String> = std::fs::read_dir(root.join(t))
            .unwrap_or_else(|e| panic!("fuzz/corpus/{t}: {e}; {regen}"))
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        committed.sort();
        let mut want: Vec<String> = corpus
            .iter()
            .filter(|(x, _, _)| x == t)
            .map(|(_, n, _)| n.clone())
            .collect();
        want.sort();
        assert_eq!(
            committed, want,
            "fuzz/corpus/{t} has other files than the generated seeds; {regen}"
        );
    }
    for (target, name, bytes) in &corpus {
        let on_disk = std::fs::read(root.join(target).join(name)).unwrap();
        assert!(
            &on_disk == bytes,
            "fuzz/corpus/{target}/{name} is stale; {regen}"
        );
    }
}

/// The GGUF seeds are valid files: each opens, and each ternary tensor becomes a matrix.
#[test]
fn gguf_seeds_open() {
    let dir = std::env::temp_dir().join(format!("tern-fuzz-seeds-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, bytes) in gguf_seeds() {
        let path = dir.join(&name);
        std::fs::write(&path, &bytes).unwrap();
        let c_path = cstr(path.to_str().unwrap());
        let mut g = null_mut();
        ok(unsafe { tern_gguf_open(c_path.as_ptr(), &mut g) });
        let mut n = 0usize;
        ok(unsafe { tern_gguf_tensor_count(g, &mut n) });
        for i in 0..n {
            let mut t = tern_gguf_tensor {
                struct_size: size_of::<tern_gguf_tensor>() as u32,
                ..unsafe { std::mem::zeroed() }
            };
            ok(unsafe { tern_gguf_tensor_info(g, i, &mut t) });
            if t.format != 0 {
                let mut m = null_mut();
                ok(unsafe { tern_matrix_from_gguf(null(), g, t.name, &mut m) });
                unsafe { tern_matrix_destroy(m) };
            }
        }
        unsafe { tern_gguf_close(g) };
    }
    let _ = std::fs::remove_dir_all(&dir);
}
