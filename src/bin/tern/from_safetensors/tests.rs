//! Unit tests of the safetensors converter.

use std::path::Path;

use tern::context::Context;
use tern::gguf::{Gguf, ReadOptions};

use super::*;

/// Deterministic floats in [-1, 1].
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

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A safetensors file holding `(name, dtype, shape, raw bytes)` tensors.
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

#[test]
fn convert_float_and_packed_checkpoints() {
    let tmp = std::env::temp_dir().join(format!("tern-from-safetensors-{}", std::process::id()));
    let dir = tmp.join("model");
    std::fs::create_dir_all(&dir).unwrap();
    let q = weights(64, 256, 1);
    // A packed BitNet projection: 64 output rows as 16 packed rows, codes 0/1/2 in 4 fields.
    let packed_rows = 16;
    let mut pk = vec![0u8; packed_rows * 256];
    for (i, b) in pk.iter_mut().enumerate() {
        let c = |j: usize| ((i * 7 + j * 3) % 3) as u8;
        *b = c(0) | (c(1) << 2) | (c(2) << 4) | (c(3) << 6);
    }
    let bf16_scale = half::bf16::from_f32(4.0).to_le_bytes().to_vec();
    let norm: Vec<u8> = (0..256)
        .flat_map(|i| half::bf16::from_f32(i as f32).to_le_bytes())
        .collect();
    safetensors(
        &dir.join("model.safetensors"),
        &[
            (
                "model.layers.0.self_attn.q_proj.weight",
                "F32",
                vec![64, 256],
                f32_bytes(&q),
            ),
            (
                "model.layers.0.mlp.up_proj.weight",
                "U8",
                vec![16, 256],
                pk.clone(),
            ),
            (
                "model.layers.0.mlp.up_proj.weight_scale",
                "BF16",
                vec![1],
                bf16_scale,
            ),
            (
                "model.layers.0.input_layernorm.weight",
                "BF16",
                vec![256],
                norm,
            ),
            (
                "model.embed_tokens.weight",
                "F16",
                vec![10, 256],
                vec![0x3c; 10 * 256 * 2],
            ),
            ("model.extra_ids", "I64", vec![2], vec![0; 16]),
        ],
    );
    std::fs::write(
        dir.join("config.json"),
        r#"{"architectures":["BitNetForCausalLM"],"model_type":"bitnet","hidden_size":256,
            "num_attention_heads":4,"num_hidden_layers":1,"rms_norm_eps":1e-6}"#,
    )
    .unwrap();
    let ctx = Context::global().unwrap();
    for (fmt, mode) in [
        (1, ScaleMode::Divide),
        (5, ScaleMode::Multiply),
        (3, ScaleMode::Divide),
    ] {
        let layout = Layout::new(fmt, 0, 0, 0, 0).unwrap();
        let mut opts = ConvertOptions::new(layout.format());
        opts.scale_mode = mode;
        let out = tmp.join(format!("conv-{fmt}.gguf"));
        let mut lines = Vec::new();
        let r = convert(&dir, &out, &opts, &mut |l| lines.push(l.to_string())).unwrap();
        assert_eq!((r.ternary, r.kept, r.skipped.len()), (2, 2, 1), "{lines:?}");
        assert!(lines.iter().any(|l| l.contains("writing: 100%")));
        let g = Gguf::open(&out, ReadOptions::default()).unwrap();
        let m = g.meta();
        let arch = if fmt == 5 { "bitnet" } else { "bitnet-b1.58" };
        assert_eq!(m.architecture(), Some(arch));
        assert_eq!(m.kvs[0].key_str(), "general.architecture");
        assert_eq!(
            m.find_kv(&format!("{arch}.rope.dimension_count"))
                .unwrap()
                .value,
            Value::U32(64)
        );
        assert_eq!(
            m.find_tensor("blk.0.attn_norm.weight").unwrap().ty,
            types::F32
        );
        assert_eq!(m.find_tensor("token_embd.weight").unwrap().ty, types::F16);
        // The checkpoint's weight_scale is consumed; only TL formats have a `_scale` companion.
        match m.find_tensor("blk.0.ffn_up.weight_scale") {
            Some(s) => assert!(fmt == 3 && s.ty == types::F32 && s.elements() == 1),
            None => assert_ne!(fmt, 3),
        }
        // The packed projection unpacks to codes − 1 with row r + i·16 from field i.
        let (l, shape, bytes) = ternary::packed(&g, "blk.0.ffn_up.weight", None).unwrap();
        assert_eq!((shape.rows, shape.cols), (64, 256));
        let mut t = vec![0i8; 64 * 256];
        l.unpack(shape, &bytes, &mut t).unwrap();
        let want = unpack_bitnet_u8(&pk, packed_rows, 256).unwrap();
        assert_eq!(t, want);
        assert_eq!(
            t[(3 + 2 * 16) * 256 + 5],
            ((pk[3 * 256 + 5] >> 4) & 3) as i8 - 1
        );
        let scale = l.validate(shape, &bytes).unwrap()[0];
        assert_eq!(scale, if mode == ScaleMode::Divide { 0.25 } else { 4.0 });
        // The float projection multiplies like the absmean-ternarized weights.
        ternary::matrix(ctx, &g, "blk.0.attn_q.weight", None).unwrap();
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn unstorable_shapes_and_corrupt_inputs() {
    let tmp = std::env::temp_dir().join(format!(
        "tern-from-safetensors-small-{}",
        std::process::id()
    ));
    // A shape the format cannot store: an error, or float with --allow-fallback.
    let mut opts = ConvertOptions::new(Format::Tq2_0);
    opts.patterns = vec!["input_layernorm".into(), "q_proj".into()];
    let small = tmp.join("small");
    std::fs::create_dir_all(&small).unwrap();
    safetensors(
        &small.join("m.safetensors"),
        &[(
            "model.layers.0.self_attn.q_proj.weight",
            "F32",
            vec![4, 100],
            f32_bytes(&weights(4, 100, 2)),
        )],
    );
    let out = tmp.join("fallback.gguf");
    let e = convert(&small, &out, &opts, &mut |_| {}).unwrap_err();
    assert!(e.message.contains("allow-fallback"), "{}", e.message);
    assert!(!out.exists());
    opts.allow_fallback = true;
    let r = convert(&small, &out, &opts, &mut |_| {}).unwrap();
    assert_eq!(r.fallback.len(), 1);
    // A corrupt input is an error, not a crash.
    std::fs::write(
        small.join("m.safetensors"),
        b"\xff\xff\xff\xff\xff\xff\xff\x7f{}",
    )
    .unwrap();
    assert!(convert(&small, &out, &opts, &mut |_| {}).is_err());
    std::fs::remove_dir_all(&tmp).unwrap();
}
