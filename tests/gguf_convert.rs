//! `tern convert IN.gguf OUT.gguf --type FORMAT` (`tern::gguf::retype`): ternary tensors change
//! format with the same values and scales; every key and every other tensor is copied byte for
//! byte; conversions that would lose information fail and name the tensor.

use std::path::{Path, PathBuf};

use half::f16;
use tern::format::{Format, I2sVariant, Layout, Shape};
use tern::gguf::retype::{RetypeOptions, file_type, retype};
use tern::gguf::{Array, Dialect, Gguf, ReadOptions, TensorData, Value, ValueType, Writer};
use tern::gguf::{ternary, types};

/// A scratch path under Cargo's per-target test directory, emptied once per run.
fn tmp(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-convert-tests");
        // A missing folder is fine; anything else fails in create_dir_all below.
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    d.join(name)
}

/// Deterministic ternary values with about a third zeros.
fn trits(n: usize, seed: u32) -> Vec<i8> {
    let mut s = seed.wrapping_mul(2654435761).wrapping_add(977);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 3) as i8 - 1
        })
        .collect()
}

fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn strs(v: &[&str]) -> Value {
    Value::Array(Array::Strings(v.iter().map(|s| s.as_bytes()).collect()))
}

fn numeric(ty: ValueType, raw: Vec<u8>) -> Value {
    Value::Array(Array::Numeric { ty, raw })
}

const I2S: Layout = Layout::I2s(I2sVariant::X86);

/// A bitnet.cpp-style file: `bitnet-b1.58` keys, a fake Llama-3 tokenizer, float tensors of
/// three types and I2_S matrices `(name, rows, cols)` with tensor scale `scale`.
fn source(path: &Path, alignment: u32, scale: f32, mats: &[(&str, usize, usize)]) {
    let mut w = Writer::new(alignment, Dialect::Auto).unwrap();
    let kvs: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::string("bitnet-b1.58")),
        ("general.name", Value::string("fixture")),
        ("general.file_type", Value::U32(40)),
        ("general.quantization_version", Value::U32(2)),
        ("bitnet-b1.58.block_count", Value::U32(1)),
        ("bitnet-b1.58.embedding_length", Value::U32(256)),
        (
            "bitnet-b1.58.attention.layer_norm_rms_epsilon",
            Value::F32(1e-5),
        ),
        ("bitnet-b1.58.rope.freq_base", Value::F32(500000.0)),
        ("tokenizer.ggml.model", Value::string("gpt2")),
        (
            "tokenizer.ggml.tokens",
            strs(&["<|begin_of_text|>", "a", "b", "ab", "\u{120}x", ""]),
        ),
        (
            "tokenizer.ggml.token_type",
            numeric(
                ValueType::I32,
                [3i32, 1, 1, 1, 1, 6]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.scores",
            numeric(
                ValueType::F32,
                [0.0f32, -1.5, -2.0, -0.25, f32::MIN_POSITIVE, -0.0]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            ),
        ),
        ("tokenizer.ggml.merges", strs(&["a b", "\u{120} x"])),
        ("tokenizer.ggml.bos_token_id", Value::U32(0)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
        (
            "tokenizer.chat_template",
            Value::string("{% for m in messages %}{{ m.content }}{% endfor %}"),
        ),
        ("test.i64", Value::I64(i64::MIN)),
        ("test.f64", Value::F64(-2.25)),
        ("test.u8s", numeric(ValueType::U8, vec![1, 2, 255])),
    ];
    for (k, v) in kvs {
        w.add_kv(k, v).unwrap();
    }
    w.add_tensor(
        "token_embd.weight",
        types::F16,
        &[256, 6],
        TensorData::Owned(bytes(256 * 6 * 2, 1)),
    )
    .unwrap();
    for (i, &(name, rows, cols)) in mats.iter().enumerate() {
        let shape = Shape { rows, cols };
        let mut buf = vec![0u8; I2S.packed_size(shape).unwrap()];
        I2S.pack(shape, &trits(rows * cols, i as u32 + 1), &[scale], &mut buf)
            .unwrap();
        w.add_ternary(name, I2S, shape, &buf).unwrap();
        w.add_tensor(
            &format!("blk.{i}.norm.weight"),
            types::F32,
            &[cols as u64],
            TensorData::Owned(bytes(cols * 4, i as u8)),
        )
        .unwrap();
    }
    w.add_tensor(
        "output.weight",
        types::BF16,
        &[256, 3],
        TensorData::Owned(bytes(256 * 3 * 2, 7)),
    )
    .unwrap();
    w.write(path, &mut |_, _, _, _, _| {}).unwrap();
}

const MATS: &[(&str, usize, usize)] = &[
    ("blk.0.attn_q.weight", 64, 512),
    ("blk.0.ffn_down.weight", 32, 512),
];

fn open(p: &Path) -> Gguf {
    Gguf::open(p, ReadOptions::default()).unwrap()
}

/// The ternary values and scales of tensor `name`.
fn values(g: &Gguf, name: &str) -> (Vec<i8>, Vec<f32>) {
    let (l, shape, b) = ternary::packed(g, name, None).unwrap();
    let scales = l.validate(shape, &b).unwrap();
    let mut t = vec![0i8; shape.elements()];
    l.unpack(shape, &b, &mut t).unwrap();
    (t, scales)
}

fn run(input: &Path, output: &Path, opts: &RetypeOptions) -> Result<(), String> {
    retype(input, output, opts, &mut |_| {})
        .map(|_| ())
        .map_err(|e| e.message)
}

fn opts(format: Format) -> RetypeOptions {
    RetypeOptions::new(format)
}

/// `out` is `src` with the ternary tensors in `format`: keys in order and equal (file type
/// set), other tensors byte-identical, ternary values equal and every scale `scale`.
fn check_retyped(src: &Gguf, out: &Gguf, format: Format, scale: f32) {
    let (sm, om) = (src.meta(), out.meta());
    assert_eq!(om.alignment, sm.alignment);
    assert!(om.ggml_contiguous);
    let tl = matches!(format, Format::Tl1 | Format::Tl2);
    let tiling_keys = if tl { MATS.len() } else { 0 };
    assert_eq!(om.kvs.len(), sm.kvs.len() + tiling_keys);
    for (a, b) in sm.kvs.iter().zip(&om.kvs) {
        assert_eq!(a.key_str(), b.key_str());
        if a.key_str() == "general.file_type" {
            assert_eq!(b.value, Value::U32(file_type(format)));
        } else {
            assert_eq!(a.value, b.value, "{}", a.key_str());
        }
    }
    for kv in &om.kvs[sm.kvs.len()..] {
        assert!(kv.key_str().starts_with("tern.tiling."), "{}", kv.key_str());
    }
    let mut names = Vec::new();
    for t in &sm.tensors {
        names.push(t.name_str().to_string());
        if tl && t.ty.ternary.is_some() {
            names.push(ternary::scale_name(t.name_str()));
        }
    }
    let got: Vec<&str> = om.tensors.iter().map(|t| t.name_str()).collect();
    assert_eq!(got, names);
    for a in &sm.tensors {
        let b = om.find_tensor(a.name_str()).unwrap();
        assert_eq!(a.dims, b.dims, "{}", a.name_str());
        if a.ty.ternary.is_some() {
            assert_eq!(b.ty.ternary, Some(format));
            let (va, sa) = values(src, a.name_str());
            let (vb, sb) = values(out, b.name_str());
            assert_eq!(va, vb, "{}: ternary values", a.name_str());
            assert!(sa.iter().all(|&s| s == scale), "{sa:?}");
            assert!(sb.iter().all(|&s| s == scale), "{}: {sb:?}", a.name_str());
        } else {
            assert_eq!((a.type_id, a.n_dims), (b.type_id, b.n_dims));
            assert_eq!(src.tensor_data(a), out.tensor_data(b), "{}", a.name_str());
        }
    }
}

#[test]
fn every_format_and_back_is_lossless() {
    for alignment in [32, 64] {
        let src_path = tmp(&format!("src-{alignment}.gguf"));
        source(&src_path, alignment, 0.75, MATS);
        let src_bytes = std::fs::read(&src_path).unwrap();
        let src = open(&src_path);
        assert_eq!(
            src.meta().find_kv("general.alignment").is_some(),
            alignment != 32
        );
        // Already I2_S: the file comes back as it was.
        let same = tmp(&format!("same-{alignment}.gguf"));
        run(&src_path, &same, &opts(Format::I2S)).unwrap();
        assert_eq!(std::fs::read(&same).unwrap(), src_bytes);
        let mut firsts = Vec::new();
        for format in [Format::Tq1_0, Format::Tq2_0, Format::Tl1, Format::Tl2] {
            let mid = tmp(&format!("mid-{alignment}-{}.gguf", format.name()));
            run(&src_path, &mid, &opts(format)).unwrap();
            check_retyped(&src, &open(&mid), format, 0.75);
            // And back: byte-identical to the source (tern wrote its I2_S tail as zeros).
            let back = tmp(&format!("back-{alignment}-{}.gguf", format.name()));
            run(&mid, &back, &opts(Format::I2S)).unwrap();
            assert_eq!(
                std::fs::read(&back).unwrap(),
                src_bytes,
                "I2_S -> {} -> I2_S",
                format.name()
            );
            firsts.push((format, mid));
        }
        // Between the other formats, directly: the same file as from the source.
        for (from, from_path) in &firsts {
            for (to, to_path) in &firsts {
                if from == to {
                    continue;
                }
                let p = tmp(&format!("x-{alignment}-{}-{}.gguf", from.name(), to.name()));
                run(from_path, &p, &opts(*to)).unwrap();
                assert_eq!(
                    std::fs::read(&p).unwrap(),
                    std::fs::read(to_path).unwrap(),
                    "{} -> {}",
                    from.name(),
                    to.name()
                );
            }
        }
    }
}

#[test]
fn tl2_id_follows_the_dialect() {
    let src = tmp("dialect-src.gguf");
    source(&src, 32, 0.75, MATS);
    for (dialect, id) in [(Dialect::BitnetLegacy, 39), (Dialect::BitnetCurrent, 42)] {
        let out = tmp(&format!("dialect-{id}.gguf"));
        let o = RetypeOptions {
            dialect,
            ..opts(Format::Tl2)
        };
        run(&src, &out, &o).unwrap();
        let g = Gguf::open(&out, ReadOptions { dialect }).unwrap();
        let t = g.meta().find_tensor(MATS[0].0).unwrap();
        assert_eq!((t.type_id, t.ty.ternary), (id, Some(Format::Tl2)));
    }
    let o = RetypeOptions {
        dialect: Dialect::Mainline,
        ..opts(Format::Tl2)
    };
    let e = run(&src, &tmp("dialect-mainline.gguf"), &o).unwrap_err();
    assert!(e.contains(MATS[0].0) && e.contains("mainline"), "{e}");
}

/// Microsoft's I2_S files hold junk in the 28 reserved tail bytes: ignored when converting,
/// kept when the tensor stays I2_S.
#[test]
fn bitnet_cpp_tail_bytes() {
    let src_path = tmp("tail-src.gguf");
    source(&src_path, 32, 0.75, MATS);
    let mut b = std::fs::read(&src_path).unwrap();
    let (start, codes) = {
        let g = open(&src_path);
        let t = g.meta().find_tensor(MATS[0].0).unwrap();
        (
            (g.meta().data_offset + t.offset) as usize,
            MATS[0].1 * MATS[0].2 / 4,
        )
    };
    b[start + codes + 4..start + codes + 32].fill(0xA5);
    let junk = tmp("tail-junk.gguf");
    std::fs::write(&junk, &b).unwrap();
    let same = tmp("tail-same.gguf");
    run(&junk, &same, &opts(Format::I2S)).unwrap();
    assert_eq!(std::fs::read(&same).unwrap(), b);
    let tq = tmp("tail-tq2.gguf");
    run(&junk, &tq, &opts(Format::Tq2_0)).unwrap();
    check_retyped(&open(&junk), &open(&tq), Format::Tq2_0, 0.75);
}

#[test]
fn scale_rounding_is_an_error_unless_allowed() {
    let src = tmp("round-src.gguf");
    source(&src, 32, 0.1, MATS);
    let out = tmp("round-out.gguf");
    for format in [Format::Tq1_0, Format::Tq2_0] {
        let e = run(&src, &out, &opts(format)).unwrap_err();
        assert!(
            e.contains(MATS[0].0) && e.contains("--allow-rounding") && e.contains("f16"),
            "{e}"
        );
        assert!(!out.exists(), "nothing is written on error");
    }
    // The one-scale formats take the f32 scale as it is.
    let tl = tmp("round-tl1.gguf");
    run(&src, &tl, &opts(Format::Tl1)).unwrap();
    check_retyped(&open(&src), &open(&tl), Format::Tl1, 0.1);

    let o = RetypeOptions {
        allow_rounding: true,
        ..opts(Format::Tq2_0)
    };
    let r = retype(&src, &out, &o, &mut |_| {}).unwrap();
    assert_eq!(r.rounded.len(), MATS.len());
    let rounded = f16::from_f32(0.1).to_f32();
    assert!(r.rounded.iter().all(|&(_, e)| {
        e > 0.0 && e == ((rounded as f64 - 0.1f32 as f64) / 0.1f32 as f64).abs()
    }));
    let (g, s) = (open(&out), open(&src));
    for (name, ..) in MATS {
        let (vo, so) = values(&g, name);
        assert_eq!(vo, values(&s, name).0);
        assert!(so.iter().all(|&x| x == rounded));
    }
    // Back to I2_S: the rounded scale is the tensor's scale now (one value, exact in f32).
    let back = tmp("round-back.gguf");
    run(&out, &back, &opts(Format::I2S)).unwrap();
    assert_eq!(values(&open(&back), MATS[0].0).1, vec![rounded]);
}

#[test]
fn shapes_a_format_cannot_store_name_the_tensor() {
    // 384 columns: fine for I2_S (x86: 128), not for TQ (256).
    let src = tmp("shape-src.gguf");
    source(&src, 32, 0.5, &[("blk.0.attn_k.weight", 32, 384)]);
    for format in [Format::Tq1_0, Format::Tq2_0] {
        let e = run(&src, &tmp("shape-tq.gguf"), &opts(format)).unwrap_err();
        assert!(
            e.contains("blk.0.attn_k.weight") && e.contains("256"),
            "{e}"
        );
    }
    // 8 rows: no TL tiling bitnet.cpp can store.
    let src = tmp("shape-src-tl.gguf");
    source(&src, 32, 0.5, &[("blk.0.attn_v.weight", 8, 256)]);
    for format in [Format::Tl1, Format::Tl2] {
        let e = run(&src, &tmp("shape-tl.gguf"), &opts(format)).unwrap_err();
        assert!(e.contains("blk.0.attn_v.weight"), "{e}");
    }
}

/// A TQ file whose blocks have different scales cannot become a one-scale format.
#[test]
fn per_block_scales_do_not_fit_one_scale() {
    let tq = Layout::new(Format::Tq2_0 as i32, 0, 0, 0, 0).unwrap();
    let shape = Shape {
        rows: 32,
        cols: 512,
    };
    let mut scales = vec![0.5f32; 64];
    scales[63] = 0.25;
    let mut buf = vec![0u8; tq.packed_size(shape).unwrap()];
    tq.pack(shape, &trits(32 * 512, 9), &scales, &mut buf)
        .unwrap();
    let mut w = Writer::new(32, Dialect::Auto).unwrap();
    w.add_kv("general.architecture", Value::string("bitnet"))
        .unwrap();
    w.add_ternary("blk.3.ffn_up.weight", tq, shape, &buf)
        .unwrap();
    let src = tmp("blocks-src.gguf");
    w.write(&src, &mut |_, _, _, _, _| {}).unwrap();
    for format in [Format::I2S, Format::Tl1, Format::Tl2] {
        let e = run(&src, &tmp("blocks-out.gguf"), &opts(format)).unwrap_err();
        assert!(
            e.contains("blk.3.ffn_up.weight") && e.contains("different scales"),
            "{}: {e}",
            format.name()
        );
    }
    // TQ1_0 keeps per-block scales.
    let out = tmp("blocks-tq1.gguf");
    run(&src, &out, &opts(Format::Tq1_0)).unwrap();
    let (v, s) = values(&open(&out), "blk.3.ffn_up.weight");
    assert_eq!(v, trits(32 * 512, 9));
    assert_eq!(s, scales);
    // An all-zero block's scale changes no weight: ggml's quantizer stores 0 there.
    let mut zeros = trits(32 * 512, 9);
    zeros[256 * 5..256 * 6].fill(0);
    zeros[256 * 63..].fill(0);
    let mut scales = vec![0.5f32; 64];
    (scales[5], scales[63]) = (0.0, 0.25);
    tq.pack(shape, &zeros, &scales, &mut buf).unwrap();
    let mut w = Writer::new(32, Dialect::Auto).unwrap();
    w.add_ternary("blk.3.ffn_up.weight", tq, shape, &buf)
        .unwrap();
    let src = tmp("blocks-zero.gguf");
    w.write(&src, &mut |_, _, _, _, _| {}).unwrap();
    for format in [Format::I2S, Format::Tl1, Format::Tl2] {
        let p = tmp(&format!("blocks-zero-{}.gguf", format.name()));
        run(&src, &p, &opts(format)).unwrap();
        assert_eq!(
            values(&open(&p), "blk.3.ffn_up.weight"),
            (zeros.clone(), vec![0.5])
        );
    }
    // general.file_type is added when the source has none.
    assert_eq!(
        open(&out)
            .meta()
            .find_kv("general.file_type")
            .unwrap()
            .value,
        Value::U32(36)
    );
}

#[test]
fn arch_rename_keeps_the_key_order() {
    let src = tmp("arch-src.gguf");
    source(&src, 32, 0.75, MATS);
    let out = tmp("arch-out.gguf");
    let o = RetypeOptions {
        arch: Some("bitnet".into()),
        ..opts(Format::Tq2_0)
    };
    run(&src, &out, &o).unwrap();
    let (s, g) = (open(&src), open(&out));
    assert_eq!(g.meta().architecture(), Some("bitnet"));
    assert_eq!(s.meta().kvs.len(), g.meta().kvs.len());
    for (a, b) in s.meta().kvs.iter().zip(&g.meta().kvs) {
        let want = a
            .key_str()
            .strip_prefix("bitnet-b1.58.")
            .map_or(a.key_str().to_string(), |r| format!("bitnet.{r}"));
        assert_eq!(b.key_str(), want);
        if !matches!(a.key_str(), "general.architecture" | "general.file_type") {
            assert_eq!(a.value, b.value);
        }
    }
    assert_eq!(
        g.meta().find_kv("bitnet.block_count").unwrap().value,
        Value::U32(1)
    );
}

#[test]
fn bad_inputs() {
    // No ternary tensor.
    let mut w = Writer::new(32, Dialect::Auto).unwrap();
    w.add_kv("general.architecture", Value::string("llama"))
        .unwrap();
    w.add_tensor("x", types::F32, &[4], TensorData::Owned(vec![0; 16]))
        .unwrap();
    let float = tmp("float.gguf");
    w.write(&float, &mut |_, _, _, _, _| {}).unwrap();
    let e = run(&float, &tmp("float-out.gguf"), &opts(Format::Tq2_0)).unwrap_err();
    assert!(e.contains("no weight tensors"), "{e}");
    // Writing over the input.
    let src = tmp("self.gguf");
    source(&src, 32, 0.75, MATS);
    let e = run(&src, &src, &opts(Format::Tq2_0)).unwrap_err();
    assert!(e.contains("is the input"), "{e}");
    // Missing and corrupt inputs.
    assert!(run(&tmp("missing.gguf"), &tmp("o.gguf"), &opts(Format::Tq2_0)).is_err());
    let bad = tmp("truncated.gguf");
    let b = std::fs::read(&src).unwrap();
    std::fs::write(&bad, &b[..b.len() / 2]).unwrap();
    assert!(run(&bad, &tmp("o.gguf"), &opts(Format::Tq2_0)).is_err());
}

#[test]
fn cli_retypes_a_gguf() {
    let exe = env!("CARGO_BIN_EXE_tern");
    let src = tmp("cli-src.gguf");
    source(&src, 32, 0.75, MATS);
    let out = tmp("cli-out.gguf");
    let cmd = |args: &[&str]| std::process::Command::new(exe).args(args).output().unwrap();
    let (s, o) = (src.to_str().unwrap(), out.to_str().unwrap());
    let r = cmd(&["convert", s, o, "--type", "tq2_0"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(r.status.success(), "{err}");
    assert!(
        err.contains("I2_S -> TQ2_0") && err.contains("--arch bitnet"),
        "{err}"
    );
    assert!(String::from_utf8_lossy(&r.stdout).contains("2 ternary converted to TQ2_0"));
    check_retyped(&open(&src), &open(&out), Format::Tq2_0, 0.75);
    let r = cmd(&["convert", s, o, "-t", "tq1_0", "--arch=bitnet", "-q"]);
    assert!(r.status.success() && r.stderr.is_empty());
    assert_eq!(open(&out).meta().architecture(), Some("bitnet"));

    let round = tmp("cli-round.gguf");
    source(&round, 32, 0.1, MATS);
    let rs = round.to_str().unwrap();
    let r = cmd(&["convert", rs, o, "--type", "tq2_0"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains(MATS[0].0), "{err}");
    let r = cmd(&["convert", rs, o, "--type", "tq2_0", "--allow-rounding"]);
    assert!(r.status.success());

    // Options of the other input kind are refused.
    let r = cmd(&["convert", s, o, "--type", "tq2_0", "--pattern", "q_proj"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success() && err.contains("safetensors input"),
        "{err}"
    );
    let dir = tmp("cli-model");
    std::fs::create_dir_all(&dir).unwrap();
    let r = cmd(&[
        "convert",
        dir.to_str().unwrap(),
        o,
        "--type",
        "tq2_0",
        "--allow-rounding",
    ]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("GGUF input"), "{err}");
    let r = cmd(&["convert", "/nonexistent/in.gguf", o, "-t", "tq2_0"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success() && err.contains("cannot open"), "{err}");
    let help = cmd(&["convert", "--help"]);
    assert!(String::from_utf8_lossy(&help.stdout).contains("IN.gguf OUT.gguf"));
}

/// A mainline-style file (dialect MAINLINE) with one Q2_0 or Q1_0 tensor.
fn mainline_q(path: &Path, l: Layout, shape: Shape, values: &[i8], scales: &[f32]) {
    let mut packed = vec![0u8; l.packed_size(shape).unwrap()];
    l.pack(shape, values, scales, &mut packed).unwrap();
    let mut w = Writer::new(32, Dialect::Mainline).unwrap();
    w.add_kv("general.architecture", Value::string("bitnet"))
        .unwrap();
    w.add_ternary("blk.0.ffn_down.weight", l, shape, &packed)
        .unwrap();
    w.write(path, &mut |_, _, _, _, _| {}).unwrap();
}

#[test]
fn mainline_q2_0_and_q1_0_files_convert_where_the_values_allow() {
    const NAME: &str = "blk.0.ffn_down.weight";
    let shape = Shape {
        rows: 32,
        cols: 512,
    };
    // Q1_0 (±1, one scale): every format holds it.
    let signs: Vec<i8> = trits(shape.elements(), 5)
        .iter()
        .map(|&v| if v < 0 { -1 } else { 1 })
        .collect();
    let q1 = tmp("q1.gguf");
    mainline_q(&q1, Layout::Q1_0, shape, &signs, &[0.5; 128]);
    for f in Format::all() {
        let out = tmp(&format!("q1-to-{}.gguf", f.name()));
        run(&q1, &out, &opts(f)).unwrap_or_else(|e| panic!("Q1_0 -> {}: {e}", f.name()));
        let g = open(&out);
        assert_eq!(g.meta().find_tensor(NAME).unwrap().ty.ternary, Some(f));
        let (v, s) = values(&g, NAME);
        assert_eq!(v, signs, "Q1_0 -> {}", f.name());
        assert!(s.iter().all(|&s| s == 0.5), "Q1_0 -> {}", f.name());
        let ft = g.meta().find_kv("general.file_type").unwrap();
        assert_eq!(ft.value, Value::U32(file_type(f)));
    }
    // Q2_0 with a code 3 (+2): only Q2_0 holds it; the error names tensor, row, block, value.
    let mut t = trits(shape.elements(), 6);
    t[3 * 512 + 70] = 2;
    let q2 = tmp("q2.gguf");
    mainline_q(&q2, Layout::Q2_0, shape, &t, &[0.25; 256]);
    let e = run(&q2, &tmp("q2-out.gguf"), &opts(Format::Tq2_0)).unwrap_err();
    assert!(
        e.contains(NAME)
            && e.contains("row 3, block 0 of 256 elements (column 70)")
            && e.contains("the value 2"),
        "{e}"
    );
    // Its f16 block scales go to I2_S exactly once code 3 is gone; differing blocks do not.
    t[3 * 512 + 70] = 1;
    mainline_q(&q2, Layout::Q2_0, shape, &t, &[0.25; 256]);
    run(&q2, &tmp("q2-i2s.gguf"), &opts(Format::I2S)).unwrap();
    assert_eq!(values(&open(&tmp("q2-i2s.gguf")), NAME).0, t);
    let mut scales = [0.25f32; 256];
    scales[9] = 0.5;
    mainline_q(&q2, Layout::Q2_0, shape, &t, &scales);
    let e = run(&q2, &tmp("q2-i2s.gguf"), &opts(Format::I2S)).unwrap_err();
    assert!(
        e.contains(NAME) && e.contains("different scales") && e.contains("row 1, block 1 of 64"),
        "{e}"
    );
    // A ternary tensor cannot become Q1_0 (its zeros).
    let e = run(&q2, &tmp("q2-q1.gguf"), &opts(Format::Q1_0)).unwrap_err();
    assert!(e.contains(NAME) && e.contains("the value 0"), "{e}");
    // I2_S's f32 scale into Q2_0's f16: --allow-rounding as for TQ.
    let src = tmp("q-src.gguf");
    source(&src, 32, 0.1, MATS);
    let e = run(&src, &tmp("q-out.gguf"), &opts(Format::Q2_0)).unwrap_err();
    assert!(e.contains("--allow-rounding"), "{e}");
    let rounding = RetypeOptions {
        allow_rounding: true,
        ..opts(Format::Q2_0)
    };
    run(&src, &tmp("q-out.gguf"), &rounding).unwrap();
}
