//! GGUF reader/writer, ternary tensors in GGUF, the C API (`tern_gguf_*`) and its error paths,
//! and `tern convert` / `tern inspect` on a synthetic model.

mod common;

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::{Path, PathBuf};
use std::ptr;

use common::{last_error, layout};
use tern::context::Context;
use tern::ffi::*;
use tern::format::{I2sVariant, Layout, Shape};
use tern::gguf::reader::Metadata;
use tern::gguf::{
    Array, Dialect, Gguf, ReadOptions, TensorData, Value, ValueType, Writer, ternary, types,
};
use tern::matrix::{GemmOptions, GemmOutput, Matrix};
use tern::quant::{QuantConfig, quantize_packed};

const OK: tern_status = tern_status::TERN_STATUS_OK;
const INVALID: tern_status = tern_status::TERN_STATUS_INVALID_ARGUMENT;
const NULLP: tern_status = tern_status::TERN_STATUS_NULL_POINTER;
const UNSUPPORTED: tern_status = tern_status::TERN_STATUS_UNSUPPORTED;

/// A scratch path in a folder under Cargo's per-target test directory, emptied once per run
/// (the tests expect fresh paths; the system temp dir kept one folder per run).
fn tmp(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-tests");
        // A missing folder is fine; anything else fails in create_dir_all below.
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    d.join(name)
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn cpath(p: &Path) -> CString {
    cs(p.to_str().unwrap())
}

fn parse(b: &[u8]) -> Result<Metadata, String> {
    Metadata::parse(b, ReadOptions::default()).map_err(|e| e.message)
}

fn weights(rows: usize, cols: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(12345);
    (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

fn packed(l: Layout, rows: usize, cols: usize, seed: u32) -> Vec<u8> {
    let shape = Shape { rows, cols };
    quantize_packed(
        l,
        shape,
        &weights(rows, cols, seed),
        &QuantConfig::default(),
    )
    .unwrap()
    .0
}

/// A file with every KV type, float tensors and one tensor of each ternary format.
/// (name, layout, shape, packed bytes) of a ternary tensor in `sample`.
type Mat = (String, Layout, Shape, Vec<u8>);

fn sample(dialect: Dialect, alignment: u32) -> (Vec<u8>, Vec<Mat>) {
    let mut w = Writer::new(alignment, dialect).unwrap();
    w.add_kv("general.architecture", Value::string("bitnet"))
        .unwrap();
    w.add_kv("u8", Value::U8(200)).unwrap();
    w.add_kv("i8", Value::I8(-5)).unwrap();
    w.add_kv("u16", Value::U16(60000)).unwrap();
    w.add_kv("i16", Value::I16(-30000)).unwrap();
    w.add_kv("u32", Value::U32(4_000_000_000)).unwrap();
    w.add_kv("i32", Value::I32(-2_000_000_000)).unwrap();
    w.add_kv("f32", Value::F32(1.5)).unwrap();
    w.add_kv("bool", Value::Bool(true)).unwrap();
    w.add_kv("u64", Value::U64(u64::MAX)).unwrap();
    w.add_kv("i64", Value::I64(i64::MIN)).unwrap();
    w.add_kv("f64", Value::F64(-2.25)).unwrap();
    w.add_kv("ints", Value::Array(Array::from_u32(&[7, 8, 9])))
        .unwrap();
    w.add_kv(
        "strs",
        Value::Array(Array::Strings(
            [&b"x"[..], b"", b"yz"].into_iter().collect(),
        )),
    )
    .unwrap();
    let f: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
    w.add_tensor("f32.weight", types::F32, &[3, 2], TensorData::Owned(f))
        .unwrap();
    w.add_tensor("f16", types::F16, &[5], TensorData::Owned(vec![0; 10]))
        .unwrap();
    let mut mats = Vec::new();
    for (name, l, rows, cols) in [
        ("tq1", Layout::new(4, 0, 0, 0, 0).unwrap(), 3, 512),
        ("tq2", Layout::new(5, 0, 0, 0, 0).unwrap(), 5, 256),
        ("i2s", Layout::I2s(I2sVariant::X86), 4, 256),
        ("tl1", Layout::new(2, 0, 0, 0, 0).unwrap(), 64, 128),
        ("tl2", Layout::new(3, 0, 0, 0, 0).unwrap(), 32, 512),
    ] {
        let p = packed(l, rows, cols, rows as u32);
        w.add_ternary(name, l, Shape { rows, cols }, &p).unwrap();
        mats.push((name.to_string(), l, Shape { rows, cols }, p));
    }
    let mut out = Vec::new();
    w.write_to(&mut out, &mut |_, _, _, _, _| {}).unwrap();
    (out, mats)
}

fn write_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

// --------------------------------------------------------------------------------------------
// round trips

#[test]
fn writer_reader_round_trip() {
    for (dialect, align) in [
        (Dialect::Auto, 0),
        (Dialect::BitnetLegacy, 64),
        (Dialect::BitnetCurrent, 32),
    ] {
        let (bytes, mats) = sample(dialect, align);
        let m = Metadata::parse(&bytes, ReadOptions { dialect }).unwrap();
        let a = if align == 0 { 32 } else { align as u64 };
        assert_eq!((m.version, m.alignment), (3, a));
        assert!(m.ggml_contiguous);
        assert_eq!(m.data_offset % a, 0);
        assert_eq!(m.kvs[0].key_str(), "general.architecture");
        assert_eq!(m.find_kv("u64").unwrap().value, Value::U64(u64::MAX));
        assert_eq!(m.find_kv("i64").unwrap().value.as_i64(), Some(i64::MIN));
        assert_eq!(m.find_kv("bool").unwrap().value, Value::Bool(true));
        assert_eq!(
            m.find_kv("strs").unwrap().value,
            Value::Array(Array::Strings(
                [&b"x"[..], b"", b"yz"].into_iter().collect()
            ))
        );
        if align == 64 {
            assert_eq!(m.kvs.last().unwrap().key_str(), "general.alignment");
        } else {
            assert!(m.find_kv("general.alignment").is_none());
        }
        let tl2 = m.find_tensor("tl2").unwrap();
        assert_eq!(
            tl2.type_id,
            if dialect == Dialect::BitnetLegacy {
                39
            } else {
                42
            }
        );
        assert_eq!(m.find_tensor("tl2_scale").unwrap().ty, types::F32);
        assert_eq!(m.find_tensor("f32.weight").unwrap().dims, [3, 2, 1, 1]);
        assert_eq!(bytes.len() as u64, m.file_size);

        // Every ternary tensor gives the same matrix as the packed bytes it was written from.
        let path = write_file(&format!("rt-{align}.gguf"), &bytes);
        let g = Gguf::open(&path, ReadOptions { dialect }).unwrap();
        let ctx = Context::global().unwrap();
        for (name, l, shape, p) in &mats {
            let (_, _, got) = ternary::packed(&g, name, None).unwrap();
            if matches!(l, Layout::Tl1(_) | Layout::Tl2(_)) {
                assert_eq!(
                    &got[..],
                    &p[..],
                    "{name}: TL bytes rebuilt from payload + _scale"
                );
            } else {
                assert_eq!(&got[..], &p[..], "{name}");
            }
            let a = ternary::matrix(ctx, &g, name, None).unwrap();
            let b = Matrix::from_packed(ctx, *l, *shape, p).unwrap();
            let x = weights(2, shape.cols, 99);
            let (mut ya, mut yb) = (vec![0f32; 2 * shape.rows], vec![0f32; 2 * shape.rows]);
            a.gemm(
                ctx,
                &x,
                shape.cols,
                GemmOutput {
                    y: &mut ya,
                    n_tokens: 2,
                    stride: shape.rows,
                },
                &GemmOptions::default(),
            )
            .unwrap();
            b.gemm(
                ctx,
                &x,
                shape.cols,
                GemmOutput {
                    y: &mut yb,
                    n_tokens: 2,
                    stride: shape.rows,
                },
                &GemmOptions::default(),
            )
            .unwrap();
            assert_eq!(ya, yb, "{name}");
        }
    }
}

#[test]
fn tl2_id_follows_the_dialect() {
    let (bytes, _) = sample(Dialect::BitnetCurrent, 0);
    // Auto: 42 with a companion is TL2.
    let m = parse(&bytes).unwrap();
    assert_eq!(m.find_tensor("tl2").unwrap().ty.name, "TL2");
    // Legacy has no id 42; mainline rejects I2_S (36).
    let e = Metadata::parse(
        &bytes,
        ReadOptions {
            dialect: Dialect::BitnetLegacy,
        },
    )
    .unwrap_err();
    assert!(e.message.contains("type 42"), "{}", e.message);
    let e = Metadata::parse(
        &bytes,
        ReadOptions {
            dialect: Dialect::Mainline,
        },
    )
    .unwrap_err();
    assert!(e.message.contains("type 36"), "{}", e.message);
    // Mainline writer refuses bitnet.cpp types.
    let mut w = Writer::new(0, Dialect::Mainline).unwrap();
    let l = Layout::I2s(I2sVariant::X86);
    let e = w
        .add_ternary("x", l, Shape { rows: 1, cols: 128 }, &packed(l, 1, 128, 1))
        .unwrap_err();
    assert!(e.message.contains("mainline"), "{}", e.message);
}

// --------------------------------------------------------------------------------------------
// truncation and corruption

#[test]
fn every_truncation_is_an_error_or_only_drops_padding() {
    let (bytes, _) = sample(Dialect::Auto, 0);
    let full = parse(&bytes).unwrap();
    let data_end = full
        .tensors
        .iter()
        .map(|t| full.data_offset + t.offset + t.size)
        .max()
        .unwrap() as usize;
    for cut in 0..bytes.len() {
        match parse(&bytes[..cut]) {
            Err(msg) => assert!(!msg.is_empty()),
            Ok(m) => {
                assert!(
                    cut >= data_end,
                    "prefix of {cut} bytes parsed (data ends at {data_end})"
                );
                assert_eq!(m.tensors.len(), full.tensors.len());
            }
        }
    }
    // A few truncated files through the C API: status, message, NULL handle.
    for cut in [0, 3, 4, 23, 100, data_end - 1] {
        let p = write_file(&format!("cut-{cut}.gguf"), &bytes[..cut]);
        let mut g: *mut tern_gguf = ptr::dangling_mut::<tern_gguf>();
        let st = unsafe { tern_gguf_open(cpath(&p).as_ptr(), &mut g) };
        assert_eq!(st, INVALID, "cut {cut}");
        assert!(g.is_null());
        let msg = last_error();
        assert!(msg.contains("truncated") || msg.contains("GGUF"), "{msg}");
    }
}

/// Hand-encodes a GGUF file (independent of the writer) so fields can be corrupted.
struct Raw {
    b: Vec<u8>,
}

impl Raw {
    fn new(version: u32, n_tensors: u64, n_kv: u64) -> Self {
        let mut b = b"GGUF".to_vec();
        b.extend_from_slice(&version.to_le_bytes());
        b.extend_from_slice(&n_tensors.to_le_bytes());
        b.extend_from_slice(&n_kv.to_le_bytes());
        Self { b }
    }
    fn u32(mut self, v: u32) -> Self {
        self.b.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(mut self, v: u64) -> Self {
        self.b.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn str(self, s: &[u8]) -> Self {
        let mut r = self.u64(s.len() as u64);
        r.b.extend_from_slice(s);
        r
    }
    fn bytes(mut self, s: &[u8]) -> Self {
        self.b.extend_from_slice(s);
        self
    }
    /// A tensor info.
    fn tensor(self, name: &str, dims: &[u64], ty: u32, offset: u64) -> Self {
        let mut r = self.str(name.as_bytes()).u32(dims.len() as u32);
        for &d in dims {
            r = r.u64(d);
        }
        r.u32(ty).u64(offset)
    }
    /// Pads to 32 and appends `n` data bytes.
    fn data(mut self, n: usize) -> Vec<u8> {
        let pad = self.b.len().next_multiple_of(32);
        self.b.resize(pad + n, 0);
        self.b
    }
}

fn expect_err(bytes: &[u8], want: &str) {
    match parse(bytes) {
        Ok(_) => panic!("parsed, expected an error containing '{want}'"),
        Err(msg) => assert!(msg.contains(want), "'{msg}' does not contain '{want}'"),
    }
}

#[test]
fn corrupt_headers_are_rejected_with_messages() {
    let kv = |key: &[u8], ty: u32| Raw::new(3, 0, 1).str(key).u32(ty);
    // Baselines parse.
    parse(&kv(b"a", 4).u32(1).b).unwrap();
    parse(&Raw::new(2, 0, 0).b).unwrap();
    parse(&Raw::new(3, 1, 0).tensor("t", &[8], 0, 0).data(32)).unwrap();

    expect_err(b"GGU", "truncated");
    expect_err(b"GGML\x03\0\0\0", "not a GGUF file");
    expect_err(&Raw::new(1, 0, 0).b, "version 1");
    expect_err(&Raw::new(4, 0, 0).b, "version 4");
    expect_err(&Raw::new(0, 0, 0).b, "version 0");
    expect_err(&Raw::new(3 << 24, 0, 0).b, "big-endian");
    expect_err(&Raw::new(3, 0, u64::MAX).b, "key-value count");
    expect_err(&Raw::new(3, u64::MAX, 0).b, "tensor count");
    expect_err(&Raw::new(3, 1 << 40, 0).b, "tensor count");
    // Strings.
    expect_err(&Raw::new(3, 0, 1).u64(u64::MAX).bytes(&[0; 32]).b, "claims");
    expect_err(
        &Raw::new(3, 0, 1).u64(1 << 40).bytes(&[b'a'; 20]).b,
        "claims",
    );
    expect_err(&kv(b"", 4).u32(1).b, "empty key");
    expect_err(&kv(b"\xff\xfe", 4).u32(1).b, "UTF-8");
    expect_err(
        &Raw::new(3, 0, 2)
            .str(b"a")
            .u32(4)
            .u32(1)
            .str(b"a")
            .u32(4)
            .u32(2)
            .b,
        "duplicate key",
    );
    // Values.
    expect_err(&kv(b"a", 13).u32(1).b, "unknown value type 13");
    expect_err(&kv(b"a", 7).bytes(&[2, 0, 0, 0]).b, "BOOL");
    expect_err(&kv(b"a", 9).u32(9).u64(1).b, "nested array");
    expect_err(&kv(b"a", 9).u32(99).u64(1).b, "unknown element type");
    expect_err(&kv(b"a", 9).u32(4).u64(u64::MAX / 2).b, "claims");
    expect_err(&kv(b"a", 9).u32(8).u64(1 << 50).bytes(&[0; 64]).b, "claims");
    expect_err(&kv(b"a", 9).u32(7).u64(2).bytes(&[0, 3]).b, "not 0 or 1");
    expect_err(&kv(b"a", 8).u64(100).bytes(b"short").b, "claims");
    // Alignment.
    expect_err(&kv(b"general.alignment", 5).u32(32).b, "must be UINT32");
    expect_err(&kv(b"general.alignment", 4).u32(24).b, "power of two");
    expect_err(&kv(b"general.alignment", 4).u32(0).b, "power of two");
    // Tensor infos.
    let t =
        |name: &str, dims: &[u64], ty: u32, off: u64| Raw::new(3, 1, 0).tensor(name, dims, ty, off);
    expect_err(&t(&"n".repeat(64), &[8], 0, 0).data(32), "64-byte name");
    expect_err(&t("a\0b", &[8], 0, 0).data(32), "NUL");
    expect_err(
        &Raw::new(3, 2, 0)
            .tensor("t", &[8], 0, 0)
            .tensor("t", &[8], 0, 32)
            .data(64),
        "duplicate tensor name",
    );
    expect_err(&t("t", &[1, 1, 1, 1, 1], 0, 0).data(32), "n_dims = 5");
    expect_err(
        &t("t", &[1 << 40, 1 << 40], 0, 0).data(32),
        "overflow int64",
    );
    expect_err(&t("t", &[u64::MAX], 0, 0).data(32), "overflow int64");
    expect_err(&t("t", &[8], 37, 0).data(32), "I8_S");
    expect_err(&t("t", &[8], 43, 0).data(32), "type 43");
    expect_err(&t("t", &[8], 4, 0).data(32), "removed");
    expect_err(&t("t", &[8], u32::MAX, 0).data(32), "not a ggml type");
    expect_err(
        &t("t", &[100], 34, 0).data(32),
        "not a multiple of the block size 256",
    );
    expect_err(
        &t("t", &[8], 0, 16).data(64),
        "not a multiple of the alignment",
    );
    expect_err(&t("t", &[8], 0, 32).data(32), "ends past the data section");
    expect_err(
        &t("t", &[8], 0, u64::MAX - 31).data(32),
        "ends past the data section",
    );
    expect_err(
        &t("t", &[1 << 40], 0, 0).data(32),
        "ends past the data section",
    );
    expect_err(
        &Raw::new(3, 1, 0).tensor("t", &[8], 0, 0).b,
        "data section should start",
    );
    expect_err(
        &Raw::new(3, 2, 0)
            .tensor("a", &[16], 0, 0)
            .tensor("b", &[8], 0, 32)
            .data(64),
        "overlap",
    );
    expect_err(&t("t", &[64, 4, 2], 36, 0).data(256), "2-D");
    // Id 42 without a `_scale` companion is Q2_0 under AUTO; TL2 needs >= 256 columns.
    assert_eq!(
        parse(&t("t", &[128, 4], 42, 0).data(512)).unwrap().tensors[0]
            .ty
            .name,
        "Q2_0"
    );
    let e = Metadata::parse(
        &t("t", &[128, 4], 42, 0).data(512),
        ReadOptions {
            dialect: Dialect::BitnetCurrent,
        },
    )
    .unwrap_err();
    assert!(e.message.contains("ne0 = 128"), "{}", e.message);

    // Non-contiguous but valid offsets are accepted and reported.
    let m = parse(&Raw::new(3, 1, 0).tensor("t", &[8], 0, 32).data(64)).unwrap();
    assert!(!m.ggml_contiguous);
}

#[test]
fn corrupt_ternary_payloads_are_rejected() {
    let ctx = Context::global().unwrap();
    let (bytes, _) = sample(Dialect::Auto, 0);
    let m = parse(&bytes).unwrap();
    let at = |name: &str| (m.data_offset + m.find_tensor(name).unwrap().offset) as usize;
    let open =
        |b: &[u8], tag: &str| Gguf::open(&write_file(tag, b), ReadOptions::default()).unwrap();

    let mut b = bytes.clone();
    b[at("i2s")] = 0xFF; // code 3
    let e = ternary::matrix(ctx, &open(&b, "bad-i2s.gguf"), "i2s", None)
        .err()
        .unwrap();
    assert!(e.message.contains("code 3"), "{}", e.message);

    let mut b = bytes.clone();
    let d = at("tq2") + 64; // first block's fp16 d
    b[d..d + 2].copy_from_slice(&0x7E00u16.to_le_bytes()); // NaN
    assert!(ternary::matrix(ctx, &open(&b, "bad-tq.gguf"), "tq2", None).is_err());

    let mut b = bytes.clone();
    let s = at("tl1_scale");
    b[s..s + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    let e = ternary::matrix(ctx, &open(&b, "bad-tl1.gguf"), "tl1", None)
        .err()
        .unwrap();
    assert!(e.message.contains("scale"), "{}", e.message);

    let mut b = bytes.clone();
    b[at("tl2")] = 0xFF; // magnitude 15
    assert!(ternary::matrix(ctx, &open(&b, "bad-tl2.gguf"), "tl2", None).is_err());

    let g = open(&bytes, "ok.gguf");
    let e = ternary::matrix(ctx, &g, "f32.weight", None).err().unwrap();
    assert!(e.message.contains("not a type tern reads"), "{}", e.message);
    assert!(ternary::matrix(ctx, &g, "nope", None).is_err());
    // A layout of another format, or a TL tiling bitnet.cpp cannot use for the shape.
    assert!(ternary::matrix(ctx, &g, "i2s", Some(Layout::new(5, 0, 0, 0, 0).unwrap())).is_err());
    assert!(ternary::matrix(ctx, &g, "tl1", Some(Layout::new(2, 0, 64, 48, 32).unwrap())).is_err());
}

// --------------------------------------------------------------------------------------------
// C API

fn open_c(p: &Path) -> *mut tern_gguf {
    let mut g = ptr::null_mut();
    assert_eq!(
        unsafe { tern_gguf_open(cpath(p).as_ptr(), &mut g) },
        OK,
        "{}",
        last_error()
    );
    g
}

#[test]
fn c_api_reader() {
    let (bytes, mats) = sample(Dialect::Auto, 0);
    let p = write_file("capi.gguf", &bytes);
    let g = open_c(&p);
    unsafe {
        let mut info = tern_gguf_properties {
            struct_size: size_of::<tern_gguf_properties>() as u32,
            version: 0,
            alignment: 0,
            data_offset: 0,
            file_size: 0,
            n_tensors: 0,
            n_kv: 0,
            ggml_contiguous: false,
        };
        assert_eq!(tern_gguf_info(g, &mut info), OK);
        assert_eq!(
            (info.version, info.alignment, info.file_size),
            (3, 32, bytes.len() as u64)
        );
        assert!(info.ggml_contiguous);
        let mut n = 0usize;
        assert_eq!(tern_gguf_tensor_count(g, &mut n), OK);
        assert_eq!(n as u64, info.n_tensors);
        assert_eq!(tern_gguf_kv_count(g, &mut n), OK);
        assert_eq!(n as u64, info.n_kv);

        let mut idx = 0i64;
        assert_eq!(tern_gguf_find_tensor(g, cs("tq2").as_ptr(), &mut idx), OK);
        let mut t: tern_gguf_tensor = std::mem::zeroed();
        t.struct_size = size_of::<tern_gguf_tensor>() as u32;
        assert_eq!(tern_gguf_tensor_info(g, idx as usize, &mut t), OK);
        assert_eq!(CStr::from_ptr(t.name).to_str().unwrap(), "tq2");
        assert_eq!(CStr::from_ptr(t.type_name).to_str().unwrap(), "TQ2_0");
        assert_eq!((t.ggml_type, t.n_dims, t.dims), (35, 2, [256, 5, 1, 1]));
        assert_eq!(t.format, tern_format::TERN_FORMAT_TQ2_0 as i32);
        let data = std::slice::from_raw_parts(t.data as *const u8, t.nbytes as usize);
        assert_eq!(data, &mats[1].3[..]);
        assert_eq!(&bytes[t.file_offset as usize..][..t.nbytes as usize], data);
        assert_eq!(
            tern_gguf_find_tensor(g, cs("missing").as_ptr(), &mut idx),
            OK
        );
        assert_eq!(idx, -1);

        let mut kv: tern_gguf_kv = std::mem::zeroed();
        kv.struct_size = size_of::<tern_gguf_kv>() as u32;
        assert_eq!(tern_gguf_find_kv(g, cs("strs").as_ptr(), &mut idx), OK);
        assert_eq!(tern_gguf_kv_info(g, idx as usize, &mut kv), OK);
        assert_eq!((kv.value_type, kv.array_type, kv.count), (9, 8, 3));
        assert_eq!(CStr::from_ptr(kv.key).to_str().unwrap(), "strs");

        let mut s: *const c_char = ptr::null();
        let mut len = 0usize;
        assert_eq!(
            tern_gguf_get_string(g, cs("general.architecture").as_ptr(), &mut s, &mut len),
            OK
        );
        assert_eq!((CStr::from_ptr(s).to_str().unwrap(), len), ("bitnet", 6));
        assert_eq!(
            tern_gguf_get_array_string(g, cs("strs").as_ptr(), 2, &mut s, ptr::null_mut()),
            OK
        );
        assert_eq!(CStr::from_ptr(s).to_str().unwrap(), "yz");
        let mut v = 0i64;
        for (key, want) in [
            ("u8", 200),
            ("i8", -5),
            ("u32", 4_000_000_000),
            ("i64", i64::MIN),
            ("i16", -30000),
        ] {
            assert_eq!(tern_gguf_get_int(g, cs(key).as_ptr(), &mut v), OK, "{key}");
            assert_eq!(v, want, "{key}");
        }
        assert_eq!(
            tern_gguf_get_array_int(g, cs("ints").as_ptr(), 1, &mut v),
            OK
        );
        assert_eq!(v, 8);
        let mut f = 0f64;
        assert_eq!(tern_gguf_get_float(g, cs("f64").as_ptr(), &mut f), OK);
        assert_eq!(f, -2.25);

        // Errors leave outputs untouched and name the problem.
        v = 42;
        for (key, want) in [
            ("u64", "does not fit"),
            ("f32", "not an integer"),
            ("missing", "no key"),
            ("strs", "not an integer"),
        ] {
            assert_eq!(
                tern_gguf_get_int(g, cs(key).as_ptr(), &mut v),
                INVALID,
                "{key}"
            );
            assert!(last_error().contains(want), "{key}: {}", last_error());
            assert_eq!(v, 42);
        }
        assert_eq!(
            tern_gguf_get_array_int(g, cs("ints").as_ptr(), 3, &mut v),
            INVALID
        );
        assert!(last_error().contains("out of range"));
        assert_eq!(
            tern_gguf_get_array_int(g, cs("u8").as_ptr(), 0, &mut v),
            INVALID
        );
        assert_eq!(
            tern_gguf_get_array_string(g, cs("ints").as_ptr(), 0, &mut s, ptr::null_mut()),
            INVALID
        );
        assert_eq!(
            tern_gguf_get_string(g, cs("u8").as_ptr(), &mut s, ptr::null_mut()),
            INVALID
        );
        assert_eq!(tern_gguf_get_float(g, cs("u8").as_ptr(), &mut f), INVALID);
        assert_eq!(f, -2.25);
        assert_eq!(tern_gguf_get_int(g, ptr::null(), &mut v), NULLP);
        assert_eq!(
            tern_gguf_get_int(g, cs("u8").as_ptr(), ptr::null_mut()),
            NULLP
        );
        assert_eq!(
            tern_gguf_get_int(ptr::null(), cs("u8").as_ptr(), &mut v),
            NULLP
        );
        assert_eq!(
            tern_gguf_get_string(
                g,
                cs("general.architecture").as_ptr(),
                ptr::null_mut(),
                ptr::null_mut()
            ),
            NULLP
        );
        assert_eq!(tern_gguf_tensor_info(g, 1000, &mut t), INVALID);
        assert!(last_error().contains("out of range"));
        assert_eq!(tern_gguf_kv_info(g, 1000, &mut kv), INVALID);
        assert_eq!(tern_gguf_tensor_info(g, 0, ptr::null_mut()), NULLP);
        t.struct_size = 4;
        assert_eq!(tern_gguf_tensor_info(g, 0, &mut t), INVALID);
        info.struct_size = 0;
        assert_eq!(tern_gguf_info(g, &mut info), INVALID);
        assert_eq!(tern_gguf_tensor_count(ptr::null(), &mut n), NULLP);
        assert_eq!(tern_gguf_find_tensor(g, ptr::null(), &mut idx), NULLP);
        assert_eq!(
            tern_gguf_find_kv(g, cs("x").as_ptr(), ptr::null_mut()),
            NULLP
        );

        // Matrices.
        for (name, l, shape, _) in &mats {
            let mut m: *mut tern_matrix = ptr::null_mut();
            assert_eq!(
                tern_matrix_from_gguf(ptr::null(), g, cs(name).as_ptr(), &mut m),
                OK,
                "{name}: {}",
                last_error()
            );
            let mut props: tern_matrix_properties = std::mem::zeroed();
            props.struct_size = size_of::<tern_matrix_properties>() as u32;
            assert_eq!(tern_matrix_info(m, &mut props), OK);
            assert_eq!(
                (props.rows as usize, props.cols as usize),
                (shape.rows, shape.cols)
            );
            assert_eq!(props.format, l.format() as i32);
            tern_matrix_destroy(m);
        }
        let mut m: *mut tern_matrix = ptr::dangling_mut::<tern_matrix>();
        assert_eq!(
            tern_matrix_from_gguf(ptr::null(), g, cs("f32.weight").as_ptr(), &mut m),
            UNSUPPORTED
        );
        assert!(m.is_null());
        assert_eq!(
            tern_matrix_from_gguf(ptr::null(), g, cs("nope").as_ptr(), &mut m),
            INVALID
        );
        assert_eq!(
            tern_matrix_from_gguf(ptr::null(), g, ptr::null(), &mut m),
            NULLP
        );
        assert_eq!(
            tern_matrix_from_gguf(ptr::null(), ptr::null(), cs("tq2").as_ptr(), &mut m),
            NULLP
        );
        assert_eq!(
            tern_matrix_from_gguf(ptr::null(), g, cs("tq2").as_ptr(), ptr::null_mut()),
            NULLP
        );
        let arm = layout(tern_format::TERN_FORMAT_I2_S as i32, 1);
        assert_eq!(
            tern_matrix_from_gguf_layout(ptr::null(), g, cs("i2s").as_ptr(), &arm, &mut m),
            OK
        );
        tern_matrix_destroy(m);
        let wrong = layout(tern_format::TERN_FORMAT_TQ1_0 as i32, 0);
        assert_eq!(
            tern_matrix_from_gguf_layout(ptr::null(), g, cs("i2s").as_ptr(), &wrong, &mut m),
            INVALID
        );
        assert!(last_error().contains("layout asks for TQ1_0"));
        tern_gguf_close(g);
        tern_gguf_close(ptr::null_mut());
    }
}

#[test]
fn c_api_open_errors() {
    unsafe {
        let mut g: *mut tern_gguf = ptr::dangling_mut::<tern_gguf>();
        assert_eq!(tern_gguf_open(ptr::null(), &mut g), NULLP);
        assert!(g.is_null());
        assert_eq!(tern_gguf_open(cs("/x").as_ptr(), ptr::null_mut()), NULLP);
        assert_eq!(
            tern_gguf_open(cs("/nonexistent/file.gguf").as_ptr(), &mut g),
            INVALID
        );
        assert!(last_error().contains("cannot open"));
        assert_eq!(tern_gguf_open(cs("/tmp").as_ptr(), &mut g), INVALID);
        let empty = write_file("empty.gguf", b"");
        assert_eq!(tern_gguf_open(cpath(&empty).as_ptr(), &mut g), INVALID);
        assert!(last_error().contains("truncated"));
        let bad = c"\xff".as_ptr();
        assert_eq!(tern_gguf_open(bad, &mut g), INVALID);
        let (bytes, _) = sample(Dialect::Auto, 0);
        let p = write_file("opts.gguf", &bytes);
        let mut o = tern_gguf_open_options {
            struct_size: 0,
            dialect: 0,
        };
        assert_eq!(
            tern_gguf_open_with_options(cpath(&p).as_ptr(), &o, &mut g),
            INVALID
        );
        o.struct_size = size_of::<tern_gguf_open_options>() as u32;
        o.dialect = 9;
        assert_eq!(
            tern_gguf_open_with_options(cpath(&p).as_ptr(), &o, &mut g),
            INVALID
        );
        assert!(last_error().contains("dialect 9"));
        o.dialect = tern_gguf_dialect::TERN_GGUF_DIALECT_MAINLINE as i32;
        assert_eq!(
            tern_gguf_open_with_options(cpath(&p).as_ptr(), &o, &mut g),
            INVALID
        );
        assert!(last_error().contains("type 36"));
        assert!(g.is_null());
        o.dialect = tern_gguf_dialect::TERN_GGUF_DIALECT_BITNET_CURRENT as i32;
        assert_eq!(
            tern_gguf_open_with_options(cpath(&p).as_ptr(), &o, &mut g),
            OK
        );
        tern_gguf_close(g);
    }
}

#[test]
fn c_api_writer() {
    unsafe {
        let mut w: *mut tern_gguf_writer = ptr::null_mut();
        let mut o = tern_gguf_writer_options {
            struct_size: size_of::<tern_gguf_writer_options>() as u32,
            alignment: 24,
            dialect: 0,
        };
        assert_eq!(tern_gguf_writer_create(&o, &mut w), INVALID);
        assert!(w.is_null());
        o.alignment = 64;
        o.dialect = 7;
        assert_eq!(tern_gguf_writer_create(&o, &mut w), INVALID);
        o.dialect = tern_gguf_dialect::TERN_GGUF_DIALECT_BITNET_LEGACY as i32;
        assert_eq!(tern_gguf_writer_create(&o, &mut w), OK);
        assert_eq!(tern_gguf_writer_create(&o, ptr::null_mut()), NULLP);

        let k = |s: &str| cs(s);
        assert_eq!(
            tern_gguf_writer_add_string(
                w,
                k("general.architecture").as_ptr(),
                k("bitnet").as_ptr()
            ),
            OK
        );
        assert_eq!(
            tern_gguf_writer_add_string(w, k("general.architecture").as_ptr(), k("x").as_ptr()),
            INVALID
        );
        assert!(last_error().contains("already added"));
        assert_eq!(
            tern_gguf_writer_add_string(w, k("").as_ptr(), k("x").as_ptr()),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_string(w, k("a").as_ptr(), ptr::null()),
            NULLP
        );
        assert_eq!(
            tern_gguf_writer_add_string(ptr::null_mut(), k("a").as_ptr(), k("x").as_ptr()),
            NULLP
        );
        assert_eq!(tern_gguf_writer_add_int(w, k("n").as_ptr(), 4, 7), OK);
        assert_eq!(
            tern_gguf_writer_add_int(w, k("big").as_ptr(), 0, 256),
            INVALID
        );
        assert!(last_error().contains("does not fit"));
        assert_eq!(
            tern_gguf_writer_add_int(w, k("neg").as_ptr(), 10, -1),
            INVALID
        );
        assert_eq!(tern_gguf_writer_add_int(w, k("b").as_ptr(), 7, 2), INVALID);
        assert_eq!(tern_gguf_writer_add_int(w, k("b").as_ptr(), 7, 1), OK);
        assert_eq!(tern_gguf_writer_add_int(w, k("f").as_ptr(), 6, 1), INVALID);
        assert_eq!(tern_gguf_writer_add_int(w, k("f").as_ptr(), 99, 1), INVALID);
        assert_eq!(
            tern_gguf_writer_add_int(w, k("general.alignment").as_ptr(), 4, 32),
            INVALID
        );
        assert!(last_error().contains("general.alignment"));
        assert_eq!(
            tern_gguf_writer_add_float(w, k("eps").as_ptr(), 6, 1e-5),
            OK
        );
        assert_eq!(
            tern_gguf_writer_add_float(w, k("e2").as_ptr(), 4, 1.0),
            INVALID
        );
        let arr = [1i32, -2, 3];
        assert_eq!(
            tern_gguf_writer_add_array(w, k("arr").as_ptr(), 5, arr.as_ptr() as *const c_void, 3),
            OK
        );
        assert_eq!(
            tern_gguf_writer_add_array(w, k("arr2").as_ptr(), 8, arr.as_ptr() as *const c_void, 3),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_array(w, k("arr3").as_ptr(), 5, ptr::null(), 3),
            NULLP
        );
        assert_eq!(
            tern_gguf_writer_add_array(
                w,
                k("arr4").as_ptr(),
                7,
                [0u8, 5].as_ptr() as *const c_void,
                2
            ),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_array(w, k("empty").as_ptr(), 4, ptr::null(), 0),
            OK
        );
        let strs = [k("p"), k("qr")];
        let sp: Vec<*const c_char> = strs.iter().map(|s| s.as_ptr()).collect();
        assert_eq!(
            tern_gguf_writer_add_string_array(w, k("toks").as_ptr(), sp.as_ptr(), 2),
            OK
        );
        let p_str = k("p");
        let bad = [p_str.as_ptr(), ptr::null()];
        assert_eq!(
            tern_gguf_writer_add_string_array(w, k("toks2").as_ptr(), bad.as_ptr(), 2),
            NULLP
        );

        let f: Vec<f32> = (0..8).map(|i| i as f32).collect();
        let dims = [4i64, 2];
        let fp = f.as_ptr() as *const c_void;
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w").as_ptr(), 0, dims.as_ptr(), 2, fp, 32),
            OK
        );
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w").as_ptr(), 0, dims.as_ptr(), 2, fp, 32),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w2").as_ptr(), 0, dims.as_ptr(), 2, fp, 31),
            INVALID
        );
        assert!(last_error().contains("takes 32 bytes"));
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w3").as_ptr(), 0, dims.as_ptr(), 5, fp, 32),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w4").as_ptr(), 0, [-1i64].as_ptr(), 1, fp, 32),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_tensor(w, k("w5").as_ptr(), 37, dims.as_ptr(), 2, fp, 32),
            INVALID
        );
        assert_eq!(
            tern_gguf_writer_add_tensor(
                w,
                k(&"n".repeat(64)).as_ptr(),
                0,
                dims.as_ptr(),
                2,
                fp,
                32
            ),
            INVALID
        );

        let mut size = 0u64;
        assert_eq!(
            tern_gguf_tensor_size(35, 0, [512i64, 3].as_ptr(), 2, &mut size),
            OK
        );
        assert_eq!(size, 2 * 66 * 3);
        assert_eq!(
            tern_gguf_tensor_size(39, 2, [3200i64, 3200].as_ptr(), 2, &mut size),
            OK
        );
        assert_eq!(
            size,
            (3200 - 256) * 3200 / 3 * 5 / 8 + 256 * 3200 / 2 * 4 / 8
        );
        assert_eq!(
            tern_gguf_tensor_size(34, 0, [100i64].as_ptr(), 1, &mut size),
            INVALID
        );

        // Ternary matrices: TQ2_0 and TL2 (legacy id 39); a TL1 shape bitnet.cpp cannot store.
        for (fmt, rows, cols) in [(5, 4usize, 256usize), (3, 64, 256), (1, 2, 128)] {
            let l = Layout::new(fmt, 0, 0, 0, 0).unwrap();
            let p = packed(l, rows, cols, 3);
            let tl = layout(fmt, 0);
            let name = k(&format!("m{fmt}"));
            assert_eq!(
                tern_gguf_writer_add_ternary(
                    w,
                    name.as_ptr(),
                    &tl,
                    p.as_ptr() as *const c_void,
                    p.len(),
                    rows as i64,
                    cols as i64
                ),
                OK,
                "{}",
                last_error()
            );
        }
        let tl = layout(2, 0);
        let l = Layout::new(2, 0, 0, 0, 0).unwrap();
        let p = packed(l, 10, 20, 3);
        assert_eq!(
            tern_gguf_writer_add_ternary(
                w,
                k("odd").as_ptr(),
                &tl,
                p.as_ptr() as *const c_void,
                p.len(),
                10,
                20
            ),
            UNSUPPORTED
        );
        assert!(last_error().contains("zero-padded"), "{}", last_error());
        let tq = layout(5, 0);
        let mut corrupt = packed(Layout::new(5, 0, 0, 0, 0).unwrap(), 1, 256, 1);
        assert_eq!(
            tern_gguf_writer_add_ternary(
                w,
                k("short").as_ptr(),
                &tq,
                corrupt.as_ptr() as *const c_void,
                10,
                1,
                256
            ),
            tern_status::TERN_STATUS_BUFFER_TOO_SMALL
        );
        corrupt[64..66].copy_from_slice(&0x7C00u16.to_le_bytes()); // +inf d
        assert_eq!(
            tern_gguf_writer_add_ternary(
                w,
                k("inf").as_ptr(),
                &tq,
                corrupt.as_ptr() as *const c_void,
                corrupt.len(),
                1,
                256
            ),
            INVALID
        );

        // Write: a missing directory fails and leaves nothing; then a real write.
        let bad = tmp("no-such-dir").join("x.gguf");
        assert_eq!(tern_gguf_writer_write(w, cpath(&bad).as_ptr()), INVALID);
        assert!(!bad.exists());
        let out = tmp("writer.gguf");
        assert_eq!(
            tern_gguf_writer_write(w, cpath(&out).as_ptr()),
            OK,
            "{}",
            last_error()
        );
        let out2 = tmp("writer2.gguf");
        assert_eq!(tern_gguf_writer_write(w, cpath(&out2).as_ptr()), OK);
        assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
        assert_eq!(tern_gguf_writer_write(w, ptr::null()), NULLP);
        tern_gguf_writer_destroy(w);
        tern_gguf_writer_destroy(ptr::null_mut());

        let m = Metadata::parse(
            &std::fs::read(&out).unwrap(),
            ReadOptions {
                dialect: Dialect::BitnetLegacy,
            },
        )
        .unwrap();
        assert_eq!(m.alignment, 64);
        assert!(m.ggml_contiguous);
        assert_eq!(m.find_kv("arr").unwrap().value.ty(), ValueType::Array);
        assert_eq!(m.find_tensor("m3").unwrap().type_id, 39);
        assert_eq!(m.find_tensor("m3_scale").unwrap().elements(), 1);
        assert!(m.find_kv("tern.tiling.m3").is_some());
        assert_eq!(m.find_tensor("m1").unwrap().size, 2 * 128 / 4 + 32);
        let keys: Vec<&str> = m.kvs.iter().map(|kv| kv.key_str()).collect();
        assert_eq!(&keys[..3], ["general.architecture", "n", "b"]);
        assert_eq!(*keys.last().unwrap(), "general.alignment");
        assert!(m.find_tensor("odd").is_none() && m.find_tensor("inf").is_none());
    }
}

// --------------------------------------------------------------------------------------------
// convert / inspect

fn safetensors(path: &Path, tensors: &[(&str, &str, Vec<u64>, Vec<u8>)]) {
    let mut header = String::from("{");
    let mut data = Vec::new();
    for (i, (name, dtype, shape, raw)) in tensors.iter().enumerate() {
        let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
        header += &format!(
            "{}\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            if i > 0 { "," } else { "" },
            dims.join(","),
            data.len(),
            data.len() + raw.len()
        );
        data.extend_from_slice(raw);
    }
    header += "}";
    let mut f = (header.len() as u64).to_le_bytes().to_vec();
    f.extend_from_slice(header.as_bytes());
    f.extend_from_slice(&data);
    std::fs::write(path, f).unwrap();
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn cli_convert_and_inspect() {
    let exe = env!("CARGO_BIN_EXE_tern");
    let dir = tmp("cli");
    std::fs::create_dir_all(&dir).unwrap();
    let model = dir.join("m.safetensors");
    safetensors(
        &model,
        &[
            (
                "model.layers.0.mlp.down_proj.weight",
                "F32",
                vec![32, 256],
                f32_bytes(&weights(32, 256, 5)),
            ),
            (
                "model.norm.weight",
                "F32",
                vec![256],
                f32_bytes(&[1.0; 256]),
            ),
        ],
    );
    let out = dir.join("m.gguf");
    let run = |args: &[&str]| std::process::Command::new(exe).args(args).output().unwrap();
    let o = run(&[
        "convert",
        model.to_str().unwrap(),
        out.to_str().unwrap(),
        "--type",
        "tq1_0",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(&["inspect", out.to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success());
    assert!(
        text.contains("blk.0.ffn_down.weight")
            && text.contains("TQ1_0 (34)")
            && text.contains("sparsity"),
        "{text}"
    );
    for bad in [
        vec!["convert"],
        vec!["convert", "a", "b"],
        vec!["convert", "a", "b", "--type", "q4_0"],
        vec!["convert", "a", "b", "-t", "i2_s", "--bogus"],
        vec!["inspect"],
        vec!["inspect", "/nonexistent.gguf"],
        vec!["inspect", model.to_str().unwrap()],
    ] {
        let o = run(&bad);
        assert!(!o.status.success(), "{bad:?} should fail");
        assert!(
            String::from_utf8_lossy(&o.stderr).contains("tern: error"),
            "{bad:?}"
        );
    }
    assert!(run(&["convert", "--help"]).status.success());
    assert!(run(&["inspect", "--help"]).status.success());
}

// --------------------------------------------------------------------------------------------
// id 42 (and 39) under the AUTO dialect: mainline Q2_0 or bitnet.cpp's TL2 (rule: `gguf::types`)

/// Writes `tensors` (name, type, dims, bytes) with `dialect`'s writer, then an F32 tensor, so
/// every tensor of interest has a successor (the tight-fit test applies to it).
fn file_with(dialect: Dialect, tensors: &[(&str, types::GgmlType, &[u64], Vec<u8>)]) -> Vec<u8> {
    let mut w = Writer::new(32, dialect).unwrap();
    w.add_kv("general.architecture", Value::string("bitnet"))
        .unwrap();
    for (name, ty, dims, bytes) in tensors {
        w.add_tensor(name, *ty, dims, TensorData::Owned(bytes.clone()))
            .unwrap();
    }
    w.add_tensor(
        "output_norm.weight",
        types::F32,
        &[4],
        TensorData::Owned(vec![0; 16]),
    )
    .unwrap();
    let mut out = Vec::new();
    w.write_to(&mut out, &mut |_, _, _, _, _| {}).unwrap();
    out
}

fn type_of(bytes: &[u8], name: &str) -> &'static str {
    parse(bytes).unwrap().find_tensor(name).unwrap().ty.name
}

#[test]
fn auto_dialect_tells_mainline_q2_0_from_bitnet_tl2() {
    let q2_0 = types::resolve(42, Dialect::Mainline, false).unwrap();
    let q1_0 = types::resolve(41, Dialect::Mainline, false).unwrap();
    assert_eq!((q2_0.name, q2_0.block_size()), ("Q2_0", 64));
    assert_eq!((q1_0.name, q1_0.block_size()), ("Q1_0", 128));
    // A mainline file: Q2_0 (18 bytes per 64 weights) and Q1_0 (18 per 128) weights, no
    // companions. Both open, are named, and read as tern's Q2_0 / Q1_0 matrices.
    let shape = Shape {
        rows: 32,
        cols: 512,
    };
    let (q2_bytes, q1_bytes) = (
        packed(Layout::Q2_0, 32, 512, 3),
        packed(Layout::Q1_0, 32, 512, 4),
    );
    assert_eq!((q2_bytes.len(), q1_bytes.len()), (8 * 18 * 32, 4 * 18 * 32));
    let mainline = file_with(
        Dialect::Mainline,
        &[
            ("blk.0.ffn_down.weight", q2_0, &[512, 32], q2_bytes.clone()),
            ("blk.0.ffn_up.weight", q1_0, &[512, 32], q1_bytes.clone()),
        ],
    );
    let m = parse(&mainline).unwrap();
    let g = Gguf::open(
        &write_file("mainline-q.gguf", &mainline),
        ReadOptions::default(),
    )
    .unwrap();
    let ctx = Context::global().unwrap();
    for (name, ty, id, layout, bytes) in [
        ("blk.0.ffn_down.weight", "Q2_0", 42, Layout::Q2_0, &q2_bytes),
        ("blk.0.ffn_up.weight", "Q1_0", 41, Layout::Q1_0, &q1_bytes),
    ] {
        let t = m.find_tensor(name).unwrap();
        assert_eq!(
            (t.ty.name, t.type_id, t.ty.ternary),
            (ty, id, Some(layout.format()))
        );
        let (l, s, b) = ternary::packed(&g, name, None).unwrap();
        assert_eq!((l, s, &b[..]), (layout, shape, &bytes[..]));
        let mx = ternary::matrix(ctx, &g, name, None).unwrap();
        assert_eq!((mx.layout(), mx.shape()), (layout, shape));
    }
    // A Q2_0 tensor that is the file's last one: size does not decide, no companion → Q2_0.
    let mut w = Writer::new(32, Dialect::Mainline).unwrap();
    w.add_tensor(
        "w",
        q2_0,
        &[512, 32],
        TensorData::Owned(vec![0; 8 * 18 * 32]),
    )
    .unwrap();
    let mut last = Vec::new();
    w.write_to(&mut last, &mut |_, _, _, _, _| {}).unwrap();
    assert_eq!(type_of(&last, "w"), "Q2_0");

    // A bitnet.cpp (current fork) file: TL2 at id 42 with its `_scale` companion.
    let tl2 = Layout::new(3, 0, 0, 0, 0).unwrap();
    let shape = Shape {
        rows: 32,
        cols: 512,
    };
    let mut w = Writer::new(32, Dialect::BitnetCurrent).unwrap();
    w.add_ternary("blk.0.attn_q.weight", tl2, shape, &packed(tl2, 32, 512, 7))
        .unwrap();
    w.add_tensor(
        "output_norm.weight",
        types::F32,
        &[4],
        TensorData::Owned(vec![0; 16]),
    )
    .unwrap();
    let mut bitnet = Vec::new();
    w.write_to(&mut bitnet, &mut |_, _, _, _, _| {}).unwrap();
    let m = parse(&bitnet).unwrap();
    let t = m.find_tensor("blk.0.attn_q.weight").unwrap();
    assert_eq!((t.ty.name, t.type_id), ("TL2", 42));
    assert_eq!(t.ty.ternary, Some(tern::format::Format::Tl2));
    let g = Gguf::open(
        &write_file("bitnet-tl2.gguf", &bitnet),
        ReadOptions::default(),
    )
    .unwrap();
    let mx = ternary::matrix(ctx, &g, "blk.0.attn_q.weight", None).unwrap();
    assert_eq!(
        (mx.layout().format(), mx.shape()),
        (tern::format::Format::Tl2, shape)
    );

    // The same TL2 payload without its companion: its size alone says TL2 (Q2_0 would need more
    // bytes than the tensor has before the next one).
    let payload = {
        let d = m.data_offset as usize + t.offset as usize;
        bitnet[d..d + t.size as usize].to_vec()
    };
    let bare = file_with(
        Dialect::BitnetCurrent,
        &[("w", types::tl2(42), &[512, 32], payload.clone())],
    );
    assert_eq!(type_of(&bare, "w"), "TL2");
    // And the legacy fork's id 39 against MXFP4.
    let legacy = file_with(
        Dialect::BitnetLegacy,
        &[("w", types::tl2(39), &[512, 32], payload)],
    );
    assert_eq!(type_of(&legacy, "w"), "TL2");

    // A contradiction: bytes that fit Q2_0 tightly (and not TL2), plus a TL2 scale companion.
    let contradictory = file_with(
        Dialect::Mainline,
        &[
            ("w", q2_0, &[512, 32], vec![0; 8 * 18 * 32]),
            ("w_scale", types::F32, &[1], vec![0; 4]),
        ],
    );
    let e = parse(&contradictory).unwrap_err();
    assert!(
        e.contains("contradicts itself") && e.contains("Q2_0") && e.contains("MAINLINE"),
        "{e}"
    );
    // An explicit dialect settles it.
    let m = Metadata::parse(
        &contradictory,
        ReadOptions {
            dialect: Dialect::Mainline,
        },
    )
    .unwrap();
    assert_eq!(m.find_tensor("w").unwrap().ty.name, "Q2_0");
}
