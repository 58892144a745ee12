//! `tern convert`: a safetensors model → a GGUF whose linear layers are ternary (I2_S, TL1, TL2,
//! TQ1_0, TQ2_0 or Q2_0) or binary (Q1_0), and whose other tensors are kept as floats.
//!
//! * Input: one `.safetensors` file, or a directory whose `*.safetensors` files (sorted by name)
//!   together hold the model. A `config.json` in the same directory supplies the architecture keys.
//! * Linear layers: 2-D float tensors whose source name ends in `.weight` and contains one of the
//!   patterns (default: the HF projection names `q_proj`, `k_proj`, `v_proj`, `o_proj`,
//!   `gate_proj`, `up_proj`, `down_proj` and their GGUF names `attn_q.`, `attn_k.`, `attn_v.`,
//!   `attn_output.`, `ffn_gate.`, `ffn_up.`, `ffn_down.`) are quantized with `method`: BitNet's
//!   absmean per tensor (bitnet.cpp's and llama.cpp's converters; Q1_0: sign × mean|W|) or
//!   ggml's reference quantizer of TQ1_0, TQ2_0, Q2_0, Q1_0 (`GgmlRef`), and packed.
//! * Offline-quantized BitNet checkpoints (spec `bitnet_cpp.md` §2.1): a `U8` tensor `X.weight`
//!   with a sibling `X.weight_scale` holds 4 codes per byte; field `i` (bits `2i..2i+1`) of packed
//!   row `r` is output row `r + i·rows/4`, code − 1 is the ternary value. The tensor scale is
//!   `1 / weight_scale` (`ScaleMode::Divide`, HF BitLinear semantics and bitnet.cpp's float path)
//!   or `weight_scale` itself (`Multiply`, bitnet.cpp's I2_S path); the two conventions disagree
//!   and could not be checked against the real checkpoint (spec §8.2), so it is an option.
//! * Other tensors: 1-D tensors become F32 (as llama.cpp's converters write norms); others keep
//!   their F32/F16/BF16 type unless a float type is forced. Non-float tensors are skipped with a
//!   warning.
//! * Names: HF Llama/BitNet names are mapped to llama.cpp's GGUF names (`blk.N.attn_q.weight`,
//!   `token_embd.weight`, ...); unknown names are kept. Q/K rows are not permuted (upstream's
//!   BitNet converter does not permute either).
//! * Metadata: `general.architecture` first, `general.name`, `general.file_type`,
//!   `general.quantization_version`, and `<arch>.*` hyper-parameters from `config.json`. No
//!   tokenizer is converted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use half::{bf16, f16};

use tern::error::{Error, Result};
use tern::format::{Format, Layout, Shape};
use tern::gguf::retype::file_type;
use tern::gguf::types::{self, Dialect, GgmlType};
use tern::gguf::{TensorData, Value, Writer, ternary};
use tern::quant::weight::DEFAULT_EPS;
use tern::quant::{Method, QuantConfig, quantize_packed};

use crate::json::{self, Json};
use crate::safetensors::{Dtype, SafeTensors, Tensor};

/// How a packed checkpoint's `weight_scale` becomes the tensor scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScaleMode {
    /// scale = 1 / weight_scale (HF BitLinear divides its output by weight_scale).
    Divide,
    /// scale = weight_scale (bitnet.cpp's I2_S converter path).
    Multiply,
}

/// Float output type for non-ternary tensors with 2 or more dims.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatOut {
    Keep,
    F32,
    F16,
}

#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub format: Format,
    pub patterns: Vec<String>,
    pub map_names: bool,
    pub float_out: FloatOut,
    pub arch: Option<String>,
    pub name: Option<String>,
    pub dialect: Dialect,
    pub scale_mode: ScaleMode,
    /// Keep a selected tensor as float (with a warning) when the format cannot store its shape.
    pub allow_fallback: bool,
    pub alignment: u32,
    /// How float linear layers are quantized (`Absmean` or `GgmlRef`).
    pub method: Method,
}

pub const DEFAULT_PATTERNS: &[&str] = &[
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
    "attn_q.",
    "attn_k.",
    "attn_v.",
    "attn_output.",
    "ffn_gate.",
    "ffn_up.",
    "ffn_down.",
];

impl ConvertOptions {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            patterns: DEFAULT_PATTERNS.iter().map(|s| s.to_string()).collect(),
            map_names: true,
            float_out: FloatOut::Keep,
            arch: None,
            name: None,
            dialect: Dialect::Auto,
            scale_mode: ScaleMode::Divide,
            allow_fallback: false,
            alignment: 32,
            method: Method::Absmean,
        }
    }
}

/// What a conversion did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub tensors_in: usize,
    pub tensors_out: usize,
    pub ternary: usize,
    pub kept: usize,
    pub skipped: Vec<String>,
    pub fallback: Vec<String>,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// (gguf name, sparsity) per ternary tensor.
    pub sparsity: Vec<(String, f64)>,
}

/// llama.cpp's GGUF name for an HF Llama/BitNet tensor name (`None`: keep the name).
pub fn gguf_name(hf: &str) -> Option<String> {
    match hf {
        "model.embed_tokens.weight" => return Some("token_embd.weight".into()),
        "model.norm.weight" => return Some("output_norm.weight".into()),
        "lm_head.weight" => return Some("output.weight".into()),
        _ => {}
    }
    let rest = hf.strip_prefix("model.layers.")?;
    let (n, rest) = rest.split_once('.')?;
    n.parse::<u32>().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    let mapped = match module {
        "self_attn.q_proj" => "attn_q",
        "self_attn.k_proj" => "attn_k",
        "self_attn.v_proj" => "attn_v",
        "self_attn.o_proj" => "attn_output",
        "mlp.gate_proj" => "ffn_gate",
        "mlp.up_proj" => "ffn_up",
        "mlp.down_proj" => "ffn_down",
        "input_layernorm" => "attn_norm",
        "post_attention_layernorm" => "ffn_norm",
        "self_attn.inner_attn_ln" | "self_attn.attn_sub_norm" => "attn_sub_norm",
        "mlp.ffn_layernorm" | "mlp.ffn_sub_norm" => "ffn_sub_norm",
        _ => return None,
    };
    Some(format!("blk.{n}.{mapped}.{suffix}"))
}

/// The model's files and its config directory.
fn inputs(input: &Path) -> Result<(Vec<PathBuf>, PathBuf)> {
    if input.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(input)
            .map_err(|e| Error::invalid(format!("cannot read '{}': {e}", input.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(Error::invalid(format!(
                "'{}' has no .safetensors files",
                input.display()
            )));
        }
        Ok((files, input.to_path_buf()))
    } else {
        let dir = input
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok((vec![input.to_path_buf()], dir))
    }
}

fn config(dir: &Path) -> Result<Option<Json>> {
    let p = dir.join("config.json");
    match std::fs::read(&p) {
        Ok(text) => json::parse(&text)
            .map(Some)
            .map_err(|e| Error::invalid(format!("{}: {}", p.display(), e.message))),
        Err(_) => Ok(None),
    }
}

fn architecture(opts: &ConvertOptions, cfg: Option<&Json>) -> String {
    if let Some(a) = &opts.arch {
        return a.clone();
    }
    let model_type = cfg
        .and_then(|c| c.get("model_type"))
        .and_then(Json::as_str)
        .map(str::to_ascii_lowercase);
    let class = cfg
        .and_then(|c| c.get("architectures"))
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(Json::as_str);
    let bitnet_cpp = matches!(opts.format, Format::I2S | Format::Tl1 | Format::Tl2);
    match (class, model_type.as_deref()) {
        (Some("BitNetForCausalLM"), _) if bitnet_cpp => "bitnet-b1.58".into(),
        (_, Some(m)) if m.contains("bitnet") => "bitnet".into(),
        (_, Some(m)) => m.to_owned(),
        _ => "bitnet".into(),
    }
}

/// `<arch>.*` keys from an HF config, in llama.cpp's usual order.
fn arch_kvs(arch: &str, cfg: &Json) -> Vec<(String, Value)> {
    let u = |k: &str| cfg.get(k).and_then(Json::as_u64);
    let f = |k: &str| cfg.get(k).and_then(Json::as_f64);
    let mut out = Vec::new();
    let mut put_u = |key: &str, v: Option<u64>| {
        if let Some(v) = v.and_then(|v| u32::try_from(v).ok()) {
            out.push((format!("{arch}.{key}"), Value::U32(v)));
        }
    };
    put_u("vocab_size", u("vocab_size"));
    put_u("context_length", u("max_position_embeddings"));
    put_u("embedding_length", u("hidden_size"));
    put_u("block_count", u("num_hidden_layers"));
    put_u("feed_forward_length", u("intermediate_size"));
    let heads = u("num_attention_heads");
    put_u(
        "rope.dimension_count",
        u("hidden_size")
            .zip(heads)
            .filter(|&(_, h)| h > 0)
            .map(|(d, h)| d / h),
    );
    put_u("attention.head_count", heads);
    put_u(
        "attention.head_count_kv",
        u("num_key_value_heads").or(heads),
    );
    if let Some(eps) = f("rms_norm_eps") {
        out.push((
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(eps as f32),
        ));
    }
    if let Some(theta) = f("rope_theta") {
        out.push((format!("{arch}.rope.freq_base"), Value::F32(theta as f32)));
    }
    if arch == "bitnet" {
        out.push((format!("{arch}.rope.scaling.type"), Value::string("linear")));
        out.push((format!("{arch}.rope.scaling.factor"), Value::F32(1.0)));
    }
    out
}

fn float_bytes(values: &[f32], ty: GgmlType) -> Vec<u8> {
    match ty.name {
        "F16" => values
            .iter()
            .flat_map(|&v| f16::from_f32(v).to_le_bytes())
            .collect(),
        "BF16" => values
            .iter()
            .flat_map(|&v| bf16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

fn dtype_type(d: Dtype) -> GgmlType {
    match d {
        Dtype::F16 => types::F16,
        Dtype::BF16 => types::BF16,
        _ => types::F32,
    }
}

/// A scalar float tensor (any shape with one element).
fn scalar(st: &SafeTensors, t: &Tensor) -> Result<f32> {
    if t.elements() != 1 {
        return Err(Error::invalid(format!(
            "'{}' has {} elements; a weight_scale has 1",
            t.name,
            t.elements()
        )));
    }
    Ok(st.to_f32(t)?[0])
}

/// Unpacks an offline-quantized `[rows/4, K]` uint8 tensor to ternary `[rows, K]`.
pub fn unpack_bitnet_u8(packed: &[u8], packed_rows: usize, cols: usize) -> Result<Vec<i8>> {
    let mut out = vec![0i8; 4 * packed_rows * cols];
    for r in 0..packed_rows {
        for k in 0..cols {
            let b = packed[r * cols + k];
            for i in 0..4 {
                let code = (b >> (2 * i)) & 3;
                if code == 3 {
                    return Err(Error::invalid(format!(
                        "packed byte at row {r}, column {k} holds the code 3 in field {i}; BitNet codes are 0, 1, 2"
                    )));
                }
                out[(r + i * packed_rows) * cols + k] = code as i8 - 1;
            }
        }
    }
    Ok(out)
}

/// Runs the conversion. `log` receives one line per event (progress, warnings).
pub fn convert(
    input: &Path,
    output: &Path,
    opts: &ConvertOptions,
    log: &mut dyn FnMut(&str),
) -> Result<Report> {
    let (files, dir) = inputs(input)?;
    let cfg = config(&dir)?;
    let models = files
        .iter()
        .map(|p| SafeTensors::open(p))
        .collect::<Result<Vec<_>>>()?;
    let mut report = Report::default();
    let mut by_name: HashMap<&str, (usize, usize)> = HashMap::new();
    for (fi, m) in models.iter().enumerate() {
        for (ti, t) in m.tensors.iter().enumerate() {
            if by_name.insert(&t.name, (fi, ti)).is_some() {
                return Err(Error::invalid(format!(
                    "tensor '{}' appears in more than one input file",
                    t.name
                )));
            }
            report.bytes_in += t.end - t.begin;
        }
    }
    report.tensors_in = by_name.len();

    let arch = architecture(opts, cfg.as_ref());
    let mut w = Writer::new(opts.alignment, opts.dialect)?;
    w.add_kv("general.architecture", Value::string(&arch))?;
    let name = opts.name.clone().unwrap_or_else(|| {
        cfg.as_ref()
            .and_then(|c| c.get("_name_or_path"))
            .and_then(Json::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| {
                let base = if input.is_dir() {
                    input.file_name()
                } else {
                    input.file_stem()
                };
                base.map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "model".into())
            })
    });
    w.add_kv("general.name", Value::string(&name))?;
    w.add_kv("general.file_type", Value::U32(file_type(opts.format)))?;
    w.add_kv("general.quantization_version", Value::U32(2))?;
    if let Some(c) = &cfg {
        for (k, v) in arch_kvs(&arch, c) {
            w.add_kv(&k, v)?;
        }
    }
    w.add_kv(
        "tern.converter",
        Value::string(&format!("tern {}", env!("CARGO_PKG_VERSION"))),
    )?;

    let layout = Layout::new(opts.format as i32, 0, 0, 0, 0)?;
    let cfg = QuantConfig::new(opts.method as i32, 0, DEFAULT_EPS, Some(layout))?;
    let all: Vec<(usize, &Tensor)> = models
        .iter()
        .enumerate()
        .flat_map(|(fi, m)| m.tensors.iter().map(move |t| (fi, t)))
        .collect();
    let total = all.len();
    for (i, &(fi, t)) in all.iter().enumerate() {
        let st = &models[fi];
        let out_name = if opts.map_names {
            gguf_name(&t.name).unwrap_or_else(|| t.name.clone())
        } else {
            t.name.clone()
        };
        let scale_sibling = by_name
            .get(format!("{}_scale", t.name).as_str())
            .map(|&(f, j)| (&models[f], &models[f].tensors[j]));
        let step = format!("[{:>4}/{total}] {}", i + 1, t.name);
        // weight_scale companions of packed checkpoints are consumed by their weight.
        if let Some(base) = t.name.strip_suffix("_scale")
            && by_name
                .get(base)
                .is_some_and(|&(f, j)| models[f].tensors[j].dtype == Dtype::U8)
        {
            continue;
        }
        let selected = t.name.ends_with(".weight")
            && t.shape.len() == 2
            && opts
                .patterns
                .iter()
                .any(|p| t.name.contains(p.as_str()) || out_name.contains(p.as_str()));
        let packed_ckpt = t.dtype == Dtype::U8 && t.shape.len() == 2 && scale_sibling.is_some();

        if packed_ckpt || (selected && t.dtype.is_float()) {
            let (rows, cols) = if packed_ckpt {
                (4 * t.shape[0], t.shape[1])
            } else {
                (t.shape[0], t.shape[1])
            };
            let shape = Shape::new(rows as i64, cols as i64)
                .map_err(|e| Error::invalid(format!("tensor '{}': {}", t.name, e.message)))?;
            let fits = layout.check_shape(shape).and_then(|_| {
                ternary::file_payload_size_check(layout, shape, opts.dialect).map(|_| ())
            });
            if let Err(e) = fits {
                if packed_ckpt || !opts.allow_fallback {
                    return Err(Error::new(
                        e.kind,
                        format!(
                            "tensor '{}' ({rows}×{cols}) cannot be stored as {}: {} (use --allow-fallback to keep such tensors as float)",
                            t.name,
                            opts.format.name(),
                            e.message
                        ),
                    ));
                }
                log(&format!(
                    "{step}: warning: kept as float, {} cannot store {rows}×{cols}: {}",
                    opts.format.name(),
                    e.message
                ));
                report.fallback.push(t.name.clone());
            } else {
                let (packed, sparsity) = if packed_ckpt {
                    let (sst, stensor) = scale_sibling.expect("checked");
                    let ws = scalar(sst, stensor)?;
                    let scale = match opts.scale_mode {
                        ScaleMode::Divide => 1.0 / ws,
                        ScaleMode::Multiply => ws,
                    };
                    if !(scale.is_finite() && scale >= 0.0) {
                        return Err(Error::invalid(format!(
                            "'{}' = {ws} gives the tensor scale {scale}, which is not finite and >= 0",
                            stensor.name
                        )));
                    }
                    let ternary = unpack_bitnet_u8(st.data(t), t.shape[0] as usize, cols as usize)
                        .map_err(|e| Error::invalid(format!("'{}': {}", t.name, e.message)))?;
                    let zeros = ternary.iter().filter(|&&v| v == 0).count();
                    let mut buf = vec![0u8; layout.packed_size(shape)?];
                    let scales = vec![scale; layout.scale_count(shape)];
                    // A packed checkpoint is ternary: Q1_0 (±1) refuses its zeros, by tensor.
                    layout
                        .pack(shape, &ternary, &scales, &mut buf)
                        .map_err(|e| Error::new(e.kind, format!("'{}': {}", t.name, e.message)))?;
                    (buf, zeros as f64 / ternary.len() as f64)
                } else {
                    let wf = st.to_f32(t)?;
                    let (buf, stats) = quantize_packed(layout, shape, &wf, &cfg)
                        .map_err(|e| Error::new(e.kind, format!("'{}': {}", t.name, e.message)))?;
                    (buf, stats.sparsity)
                };
                w.add_ternary(&out_name, layout, shape, &packed)?;
                log(&format!(
                    "{step} {} {:?} -> {out_name} {} ({} bytes, sparsity {:.3})",
                    t.dtype.name(),
                    t.shape,
                    opts.format.name(),
                    packed.len(),
                    sparsity
                ));
                report.ternary += 1;
                report.sparsity.push((out_name, sparsity));
                continue;
            }
        }

        if !t.dtype.is_float() {
            log(&format!(
                "{step}: warning: skipped ({} tensors are not converted)",
                t.dtype.name()
            ));
            report.skipped.push(t.name.clone());
            continue;
        }
        let dims: Vec<u64> = if t.shape.is_empty() {
            vec![1]
        } else {
            t.shape.iter().rev().copied().collect()
        };
        let target = if t.shape.len() <= 1 {
            types::F32
        } else {
            match opts.float_out {
                FloatOut::Keep => dtype_type(t.dtype),
                FloatOut::F32 => types::F32,
                FloatOut::F16 => types::F16,
            }
        };
        let data = if target == dtype_type(t.dtype) {
            TensorData::Borrowed(st.data(t))
        } else {
            let (st, t) = (st, t.clone());
            TensorData::Lazy(Box::new(move || Ok(float_bytes(&st.to_f32(&t)?, target))))
        };
        w.add_tensor(&out_name, target, &dims, data)?;
        log(&format!(
            "{step} {} {:?} -> {out_name} {}",
            t.dtype.name(),
            t.shape,
            target.name
        ));
        report.kept += 1;
    }
    report.tensors_out = w.tensor_count();
    let mut progress = tern::gguf::writer::percent_log(log);
    report.bytes_out = w.write(output, &mut progress)?;
    Ok(report)
}

#[cfg(test)]
#[path = "from_safetensors/tests.rs"]
mod tests;
