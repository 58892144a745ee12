//! Q2_0 and Q1_0 among the other formats through the C API and the GGUF tools: pack/unpack and
//! conversion between all seven formats (lossy directions are errors naming the row, the block
//! and the value or scales, with `dst` untouched), `tern_quantize` against ggml's reference
//! quantizers (the oracle in `tern::quant::ggml_q`), GGUF write → read with ids 42/41, and the
//! CLI's `convert --type q2_0|q1_0` and `inspect`.

mod common;

use std::path::{Path, PathBuf};
use std::ptr::null;

use common::*;
use tern::ffi::*;
use tern::format::{Format, Layout, Shape};
use tern::gguf::{Dialect, Gguf, ReadOptions, Writer, ternary};
use tern::quant::ggml_q;

const OK: tern_status = tern_status::TERN_STATUS_OK;
const INVALID: tern_status = tern_status::TERN_STATUS_INVALID_ARGUMENT;
const Q2: i32 = tern_format::TERN_FORMAT_Q2_0 as i32;
const Q1: i32 = tern_format::TERN_FORMAT_Q1_0 as i32;

/// Every format's default layout, by name.
fn all_layouts() -> Vec<(&'static str, tern_layout)> {
    Format::all()
        .map(|f| (f.name(), layout(f as i32, 0)))
        .collect()
}

fn packed_size(l: &tern_layout, rows: usize, cols: usize) -> Option<usize> {
    let mut size = 0;
    (unsafe { tern_packed_size(l, rows as i64, cols as i64, &mut size) } == OK).then_some(size)
}

fn scale_count(l: &tern_layout, rows: usize, cols: usize) -> usize {
    let f = Format::from_i32(l.format).unwrap();
    let shape = Shape { rows, cols };
    Layout::new(l.format, 0, 0, 0, 0)
        .map(|l| l.scale_count(shape))
        .unwrap_or_else(|e| panic!("{}: {}", f.name(), e.message))
}

fn pack(l: &tern_layout, v: &[i8], scales: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = vec![0u8; packed_size(l, rows, cols).unwrap()];
    let st = unsafe {
        tern_pack(
            l,
            v.as_ptr(),
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

fn unpack(l: &tern_layout, p: &[u8], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    let n = scale_count(l, rows, cols);
    let (mut v, mut s) = (vec![9i8; rows * cols], vec![f32::NAN; n]);
    let st = unsafe {
        tern_unpack(
            l,
            p.as_ptr().cast(),
            p.len(),
            rows as i64,
            cols as i64,
            v.as_mut_ptr(),
            s.as_mut_ptr(),
            n,
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    (v, s)
}

fn dequantize(l: &tern_layout, p: &[u8], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; rows * cols];
    let st = unsafe {
        tern_dequantize(
            l,
            p.as_ptr().cast(),
            p.len(),
            rows as i64,
            cols as i64,
            out.as_mut_ptr(),
        )
    };
    assert_eq!(st, OK, "{}", last_error());
    out
}

/// `tern_convert`; on failure the status and the message, with `dst` checked untouched.
fn convert(
    from: &tern_layout,
    src: &[u8],
    to: &tern_layout,
    rows: usize,
    cols: usize,
) -> Result<Vec<u8>, (tern_status, String)> {
    let size = packed_size(to, rows, cols).unwrap();
    let mut dst = vec![0xA5u8; size];
    let st = unsafe {
        tern_convert(
            from,
            src.as_ptr().cast(),
            src.len(),
            to,
            dst.as_mut_ptr().cast(),
            size,
            rows as i64,
            cols as i64,
            null(),
        )
    };
    if st == OK {
        return Ok(dst);
    }
    assert!(dst.iter().all(|&b| b == 0xA5), "dst written on failure");
    Err((st, last_error()))
}

fn values(rng: &mut Rng, n: usize, allowed: &[i8]) -> Vec<i8> {
    (0..n)
        .map(|_| allowed[rng.below(allowed.len() as u64) as usize])
        .collect()
}

/// Every pair of formats, from `source` (packed in `from` with `scale` everywhere): the
/// conversions `expect_ok(to)` allows keep every dequantized weight and value; the others fail
/// naming a row and a block.
fn convert_all(
    from_name: &str,
    from: &tern_layout,
    v: &[i8],
    scale: f32,
    (rows, cols): (usize, usize),
    expect_ok: impl Fn(Format) -> bool,
    offending: &str,
) {
    let src = pack(
        from,
        v,
        &vec![scale; scale_count(from, rows, cols)],
        rows,
        cols,
    );
    let want = dequantize(from, &src, rows, cols);
    for (to_name, to) in all_layouts() {
        if packed_size(&to, rows, cols).is_none() {
            continue;
        }
        let what = format!("{from_name} -> {to_name} ({rows}×{cols})");
        match convert(from, &src, &to, rows, cols) {
            Ok(dst) => {
                assert!(expect_ok(Format::from_i32(to.format).unwrap()), "{what}");
                assert_eq!(unpack(&to, &dst, rows, cols).0, v, "{what}: values");
                assert_eq!(dequantize(&to, &dst, rows, cols), want, "{what}: weights");
            }
            Err((st, e)) => {
                assert!(
                    !expect_ok(Format::from_i32(to.format).unwrap()),
                    "{what}: {e}"
                );
                assert_eq!(st, INVALID, "{what}");
                assert!(
                    e.contains("row ") && e.contains("block ") && e.contains(offending),
                    "{what}: {e}"
                );
            }
        }
    }
}

#[test]
fn conversions_between_all_seven_formats_keep_every_weight_or_name_the_block() {
    let mut rng = Rng::new(20);
    for shape in [(64, 512), (3, 768), (2, 256)] {
        let n = shape.0 * shape.1;
        let scale = 0.125; // exact in f16
        // Ternary values: every format but Q1_0 (which cannot hold a 0).
        let t = values(&mut rng, n, &[-1, 0, 1]);
        for (name, l) in all_layouts() {
            if packed_size(&l, shape.0, shape.1).is_some() && l.format != Q1 {
                let ok = |f: Format| f != Format::Q1_0;
                convert_all(name, &l, &t, scale, shape, ok, "the value 0");
            }
        }
        // Binary values: Q1_0 converts to every format.
        let b = values(&mut rng, n, &[-1, 1]);
        convert_all("Q1_0", &layout(Q1, 0), &b, scale, shape, |_| true, "");
        // Q2_0's code 3 (+2): only Q2_0 holds it (Q1_0 refuses the first 0 before it).
        let mut q = values(&mut rng, n, &[-1, 0, 1]);
        q[n / 2 + 5] = 2;
        let only_q2 = |f: Format| f == Format::Q2_0;
        convert_all(
            "Q2_0",
            &layout(Q2, 0),
            &q,
            scale,
            shape,
            only_q2,
            "the value ",
        );
    }
}

#[test]
fn lossy_conversions_name_row_block_and_value() {
    let (rows, cols) = (4, 512);
    let mut v = vec![1i8; rows * cols];
    // Row 2, column 300: block 2 of Q1_0's 128, block 4 of Q2_0's 64.
    v[2 * cols + 300] = 0;
    let i2s_src = pack(&i2s(0), &v, &[0.5], rows, cols);
    let (_, e) = convert(&i2s(0), &i2s_src, &layout(Q1, 0), rows, cols).unwrap_err();
    assert!(
        e.contains("I2_S -> Q1_0")
            && e.contains("row 2, block 2 of 128 elements (column 300)")
            && e.contains("the value 0"),
        "{e}"
    );
    v[2 * cols + 300] = 2;
    let q2_src = pack(&layout(Q2, 0), &v, &vec![0.5; rows * cols / 64], rows, cols);
    let (_, e) = convert(&layout(Q2, 0), &q2_src, &i2s(0), rows, cols).unwrap_err();
    assert!(
        e.contains("row 2, block 4 of 64 elements (column 300)") && e.contains("the value 2"),
        "{e}"
    );
    // Q2_0 blocks under one TQ2_0 block with different scales.
    v[2 * cols + 300] = 1;
    let mut scales = vec![0.5f32; rows * cols / 64];
    scales[8 + 5] = 0.25; // row 1, block 5
    let q2_src = pack(&layout(Q2, 0), &v, &scales, rows, cols);
    let tq2 = layout(tern_format::TERN_FORMAT_TQ2_0 as i32, 0);
    let (_, e) = convert(&layout(Q2, 0), &q2_src, &tq2, rows, cols).unwrap_err();
    assert!(
        e.contains("different scales (0.5 and 0.25)")
            && e.contains("row 1, block 4 of 64 elements")
            && e.contains("row 1, block 5 of 64 elements"),
        "{e}"
    );
    // ... unless the odd block holds only zeros, whose scale multiplies nothing.
    v[cols + 5 * 64..cols + 6 * 64].fill(0);
    let q2_src = pack(&layout(Q2, 0), &v, &scales, rows, cols);
    for to in [tq2, i2s(0)] {
        let dst = convert(&layout(Q2, 0), &q2_src, &to, rows, cols).unwrap();
        assert_eq!(
            dequantize(&to, &dst, rows, cols),
            dequantize(&layout(Q2, 0), &q2_src, rows, cols)
        );
    }
    // f32 scales f16 cannot hold: an error naming the place unless rounding is allowed.
    let v = vec![1i8; rows * cols];
    let src = pack(&i2s(0), &v, &[0.1], rows, cols);
    let (_, e) = convert(&i2s(0), &src, &layout(Q1, 0), rows, cols).unwrap_err();
    assert!(
        e.contains("allow_rounding") && e.contains("row 0, block 0"),
        "{e}"
    );
}

/// A Q1_0 / Q2_0 block with a negative `d` (ggml accepts any finite `d`): the sign moves into the
/// values, the weights stay.
#[test]
fn negative_ggml_scales_fold_into_the_signs() {
    let (rows, cols) = (2, 256);
    let mut rng = Rng::new(5);
    for (f, allowed, block) in [(Q1, &[-1i8, 1][..], 128), (Q2, &[-1, 0, 1][..], 64)] {
        let l = layout(f, 0);
        let v = values(&mut rng, rows * cols, allowed);
        let mut src = pack(&l, &v, &vec![0.5; rows * cols / block], rows, cols);
        // Block 1's d = -0.5 (f16 0xB800), written into the bytes (tern_pack takes scales >= 0).
        src[18..20].copy_from_slice(&0xB800u16.to_le_bytes());
        let (back, s) = unpack(&l, &src, rows, cols);
        assert_eq!((back, s[1]), (v.clone(), -0.5));
        let want = dequantize(&l, &src, rows, cols);
        for (name, to) in all_layouts() {
            if (to.format == Q1 && f == Q2) || packed_size(&to, rows, cols).is_none() {
                continue;
            }
            let dst =
                convert(&l, &src, &to, rows, cols).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            let got = dequantize(&to, &dst, rows, cols);
            // 0·(−d) is −0.0 in the source and +0.0 once folded: equal as numbers.
            assert_eq!(got, want, "{name}");
            if to.format == f {
                assert_eq!(dst, src, "{name}: same format, same bytes");
            }
        }
    }
}

fn quantize(
    l: &tern_layout,
    w: &[f32],
    rows: usize,
    cols: usize,
    o: &tern_quant_options,
) -> Result<Vec<u8>, String> {
    let mut out = vec![0u8; packed_size(l, rows, cols).unwrap()];
    let mut stats = tern_quant_stats {
        struct_size: size_of::<tern_quant_stats>() as u32,
        sparsity: -1.0,
        bits_per_weight: 0.0,
        compression_vs_f32: 0.0,
        compression_vs_f16: 0.0,
        scale_min: 0.0,
        scale_max: 0.0,
        rmse: -1.0,
    };
    let st = unsafe {
        tern_quantize(
            null(),
            l,
            w.as_ptr(),
            rows as i64,
            cols as i64,
            o,
            out.as_mut_ptr().cast(),
            out.len(),
            &mut stats,
        )
    };
    if st != OK {
        return Err(last_error());
    }
    assert!(stats.rmse >= 0.0 && stats.sparsity >= 0.0 && stats.bits_per_weight > 1.0);
    Ok(out)
}

/// Weights with ties at ±0.5·max, all-zero blocks, a subnormal block and negative zeros.
fn awkward(rng: &mut Rng, rows: usize, cols: usize) -> Vec<f32> {
    let mut w: Vec<f32> = (0..rows * cols).map(|_| rng.uniform()).collect();
    w[..64].fill(0.0);
    w[64..128].iter_mut().for_each(|v| *v *= 1e-40);
    w[128] = 1.0;
    w[129] = 0.5;
    w[130] = -0.5;
    w[131] = -0.0;
    w
}

const GGML_REF: i32 = tern_quant_method::TERN_QUANT_GGML_REF as i32;
const ABSMEAN: i32 = tern_quant_method::TERN_QUANT_ABSMEAN as i32;
const ABSMEAN_GROUP: i32 = tern_quant_method::TERN_QUANT_ABSMEAN_GROUP as i32;
const ROW: i32 = tern_quant_method::TERN_QUANT_ABSMEAN_ROW as i32;
const PRESCALED: i32 = tern_quant_method::TERN_QUANT_PRESCALED as i32;

#[test]
fn quantize_ggml_ref_is_ggml_s_reference_byte_for_byte() {
    let mut rng = Rng::new(42);
    for (rows, cols) in [(3, 384), (5, 128), (1, 1024)] {
        let w = awkward(&mut rng, rows, cols);
        let o = quant_options(GGML_REF);
        let mut want = vec![0u8; rows * cols / 64 * 18];
        ggml_q::quantize_row_q2_0_ref(&w, &mut want).unwrap();
        assert_eq!(quantize(&layout(Q2, 0), &w, rows, cols, &o).unwrap(), want);
        let mut want = vec![0u8; rows * cols / 128 * 18];
        ggml_q::quantize_row_q1_0_ref(&w, &mut want).unwrap();
        assert_eq!(quantize(&layout(Q1, 0), &w, rows, cols, &o).unwrap(), want);
    }
    // A block mean beyond f16's range: an error naming the block, not an infinite d.
    let mut w = vec![0.5f32; 2 * 256];
    w[256 + 130..256 + 140].fill(3.0e38);
    let e = quantize(&layout(Q1, 0), &w, 2, 256, &quant_options(GGML_REF)).unwrap_err();
    assert!(e.contains("block 1 of row 1") && e.contains("f16"), "{e}");
    w[0] = f32::NAN;
    let e = quantize(&layout(Q2, 0), &w, 2, 256, &quant_options(GGML_REF)).unwrap_err();
    assert!(e.contains("src[0]") && e.contains("finite"), "{e}");
}

#[test]
fn absmean_into_q2_0_and_binary_absmean_into_q1_0() {
    let mut rng = Rng::new(7);
    let (rows, cols) = (4, 256);
    let w = awkward(&mut rng, rows, cols);
    let shape = Shape { rows, cols };
    // Group 64 is tern's per-block absmean ternarization.
    let o = tern_quant_options {
        group_size: 64,
        ..quant_options(ABSMEAN_GROUP)
    };
    let want = ggml_q::quantize_q2_0_absmean(&w, shape, 1e-5).unwrap();
    assert_eq!(quantize(&layout(Q2, 0), &w, rows, cols, &o).unwrap(), want);
    // Per tensor: one absmean scale, stored in every block.
    let got = quantize(&layout(Q2, 0), &w, rows, cols, &quant_options(ABSMEAN)).unwrap();
    let (v, s) = unpack(&layout(Q2, 0), &got, rows, cols);
    assert!(v.iter().all(|&v| (-1..=1).contains(&v)));
    assert!(s.iter().all(|&d| d == s[0] && d > 0.0), "{s:?}");
    // Q1_0: sign bits (+1 for w >= 0), scale mean|w| of the group.
    let o = tern_quant_options {
        group_size: 128,
        ..quant_options(ABSMEAN_GROUP)
    };
    let got = quantize(&layout(Q1, 0), &w, rows, cols, &o).unwrap();
    let (v, s) = unpack(&layout(Q1, 0), &got, rows, cols);
    for (i, (&v, &x)) in v.iter().zip(&w).enumerate() {
        assert_eq!(v, if x >= 0.0 { 1 } else { -1 }, "element {i} = {x}");
    }
    for (b, (&d, x)) in s.iter().zip(w.chunks(128)).enumerate() {
        let mean = (x.iter().map(|v| v.abs() as f64).sum::<f64>() / 128.0) as f32;
        assert_eq!(d, half::f16::from_f32(mean).to_f32(), "block {b}");
    }
    // Per row and PRESCALED (max|w| per tensor): the same signs, their own scales.
    let row = quantize(&layout(Q1, 0), &w, rows, cols, &quant_options(ROW)).unwrap();
    let (rv, rs) = unpack(&layout(Q1, 0), &row, rows, cols);
    assert_eq!(rv, v);
    for (r, x) in w.chunks(cols).enumerate() {
        let mean = (x.iter().map(|v| v.abs() as f64).sum::<f64>() / cols as f64) as f32;
        let want = half::f16::from_f32(mean).to_f32();
        assert!(rs[r * 2..r * 2 + 2].iter().all(|&d| d == want), "row {r}");
    }
    let pre = quantize(&layout(Q1, 0), &w, rows, cols, &quant_options(PRESCALED)).unwrap();
    let (pv, ps) = unpack(&layout(Q1, 0), &pre, rows, cols);
    let max = w.iter().fold(0f32, |m, v| m.max(v.abs()));
    assert_eq!(pv, v);
    assert!(ps.iter().all(|&d| d == half::f16::from_f32(max).to_f32()));
    // A group that is not a multiple of Q1_0's block is refused by name.
    let o = tern_quant_options {
        group_size: 64,
        ..quant_options(ABSMEAN_GROUP)
    };
    let e = quantize(&layout(Q1, 0), &w, rows, cols, &o).unwrap_err();
    assert!(e.contains("multiple of 128"), "{e}");
}

/// A scratch path under Cargo's per-target test directory, emptied once per run.
fn tmp(name: &str) -> PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let d = DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("q-formats-tests");
        // A missing folder is fine; anything else fails in create_dir_all below.
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    });
    d.join(name)
}

/// A GGUF file with `name` in layout `l` (values `v`, scale 0.25), plus an F32 norm.
fn gguf_with(path: &Path, l: Layout, shape: Shape, v: &[i8]) -> Vec<u8> {
    let mut packed = vec![0u8; l.packed_size(shape).unwrap()];
    l.pack(shape, v, &vec![0.25; l.scale_count(shape)], &mut packed)
        .unwrap();
    let mut w = Writer::new(32, Dialect::Auto).unwrap();
    w.add_kv("general.architecture", tern::gguf::Value::string("bitnet"))
        .unwrap();
    w.add_ternary("blk.0.ffn_down.weight", l, shape, &packed)
        .unwrap();
    w.add_tensor(
        "output_norm.weight",
        tern::gguf::types::F32,
        &[4],
        tern::gguf::TensorData::Owned(vec![0; 16]),
    )
    .unwrap();
    w.write(path, &mut |_, _, _, _, _| {}).unwrap();
    packed
}

#[test]
fn gguf_write_read_keeps_q2_0_and_q1_0() {
    let shape = Shape { rows: 8, cols: 512 };
    let mut rng = Rng::new(9);
    for (l, id, allowed) in [
        (Layout::Q2_0, 42, &[-1i8, 0, 1, 2][..]),
        (Layout::Q1_0, 41, &[-1, 1][..]),
    ] {
        let v = values(&mut rng, shape.elements(), allowed);
        let path = tmp(&format!("{}.gguf", l.format().name()));
        let packed = gguf_with(&path, l, shape, &v);
        let g = Gguf::open(&path, ReadOptions::default()).unwrap();
        let t = g.meta().find_tensor("blk.0.ffn_down.weight").unwrap();
        assert_eq!((t.type_id, t.ty.ternary), (id, Some(l.format())));
        let (got_l, got_shape, bytes) = ternary::packed(&g, "blk.0.ffn_down.weight", None).unwrap();
        assert_eq!((got_l, got_shape), (l, shape));
        assert_eq!(&bytes[..], &packed[..]);
        let (n, scale) = ternary::census(&g, "blk.0.ffn_down.weight").unwrap();
        assert_eq!(scale, 0.25);
        for (k, value) in (-1i8..=2).enumerate() {
            assert_eq!(n[k], v.iter().filter(|&&x| x == value).count() as u64);
        }
    }
}

#[test]
fn cli_convert_and_inspect_q_formats() {
    let exe = env!("CARGO_BIN_EXE_tern");
    let cmd = |args: &[&str]| std::process::Command::new(exe).args(args).output().unwrap();
    let shape = Shape { rows: 4, cols: 512 };
    let mut rng = Rng::new(11);
    let v = values(&mut rng, shape.elements(), &[-1, 0, 1]);
    let src = tmp("cli-i2s.gguf");
    gguf_with(&src, Layout::I2s(tern::format::I2sVariant::X86), shape, &v);
    let (q2, q1, back) = (tmp("cli-q2.gguf"), tmp("cli-q1.gguf"), tmp("cli-back.gguf"));
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    let r = cmd(&["convert", &p(&src), &p(&q2), "--type", "q2_0", "-q"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(String::from_utf8_lossy(&r.stdout).contains("1 ternary converted to Q2_0"));
    // Q2_0 → I2_S is lossless here (no code 3).
    let r = cmd(&["convert", &p(&q2), &p(&back), "--type", "i2_s", "-q"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let g = Gguf::open(&back, ReadOptions::default()).unwrap();
    let (l, s, b) = ternary::packed(&g, "blk.0.ffn_down.weight", None).unwrap();
    let mut got = vec![0i8; s.elements()];
    l.unpack(s, &b, &mut got).unwrap();
    assert_eq!(got, v);
    // Ternary → Q1_0 loses the zeros: an error naming the tensor, row and block.
    let r = cmd(&["convert", &p(&q2), &p(&q1), "--type", "q1_0"]);
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(
        !r.status.success()
            && err.contains("blk.0.ffn_down.weight")
            && err.contains("row 0, block ")
            && err.contains("the value 0"),
        "{err}"
    );
    let r = cmd(&["inspect", &p(&q2)]);
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert!(
        out.contains("Q2_0 (42)")
            && out.contains("+2 0.0000")
            && out.contains(&format!("{}", 512 / 64 * 18 * 4)),
        "{out}"
    );
}
