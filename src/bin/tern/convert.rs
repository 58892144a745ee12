//! `tern convert INPUT OUTPUT.gguf --type FORMAT`: a safetensors model → GGUF with ternary linear
//! layers (`from_safetensors`, part of this command line), or a GGUF → GGUF retyping its ternary tensors
//! (`tern::gguf::retype`); the input's first bytes decide which.

use std::io::Write;
use std::path::PathBuf;

use tern::format::Format;
use tern::gguf::Dialect;
use tern::gguf::retype::{self, RetypeOptions};
use tern::quant::Method;

use crate::args::Scanner;
use crate::from_safetensors::{self as convert, ConvertOptions, FloatOut, ScaleMode};

pub const USAGE: &str = "\
usage: tern convert MODEL OUTPUT.gguf --type FORMAT [OPTIONS]     (safetensors -> GGUF)
       tern convert IN.gguf OUT.gguf --type FORMAT [OPTIONS]      (GGUF -> GGUF)

From safetensors: MODEL is a .safetensors file or a directory of them; a config.json next to it
supplies the architecture keys. Linear layers (2-D float '.weight' tensors whose name contains a
pattern) are ternarized with BitNet's absmean rule (--quant) and packed; BitNet checkpoints with packed
uint8 weights and a 'weight_scale' are unpacked as they are. Other tensors stay float (1-D
tensors as F32). HF Llama/BitNet names become llama.cpp names. No tokenizer is converted.

From GGUF (the input starts with the magic 'GGUF'): every weight tensor tern reads (I2_S, TL1,
TL2, TQ1_0, TQ2_0, Q2_0, Q1_0) is converted to FORMAT with the same values and scales; every
other tensor and every key (tokenizer and hyper-parameters included) is copied unchanged, in the
same order, with the same alignment; general.file_type is set for FORMAT (TQ1_0 36, TQ2_0 37,
Q1_0 40, Q2_0 41 as in llama.cpp; TL1 38, TL2 39, I2_S 40 as in bitnet.cpp). A conversion that
would change a weight, or a shape FORMAT cannot store, is an error naming the tensor (and the
row and block where the value or scale does not fit):
  * TQ1_0/TQ2_0 store an f16 scale per 256-element block and need cols % 256 == 0; Q2_0/Q1_0
    per 64/128-element block (cols % 64 / 128 == 0). An f32 scale (I2_S, TL1, TL2 hold one per
    tensor) that f16 cannot represent exactly is an error unless --allow-rounding rounds it to
    the nearest f16 (ggml's rounding).
  * Values: the ternary formats hold -1, 0, +1; Q2_0 also +2 (its code 3, which only converts
    to Q2_0); Q1_0 only -1, +1 (a tensor with a 0 weight cannot become Q1_0). A negative Q2_0/
    Q1_0 scale is folded into the signs of its block's values.
  * I2_S/TL1/TL2 store one scale per tensor: a TQ/Q source needs its block scales equal, and
    TQ's 256-element blocks need the four Q2_0 (two Q1_0) blocks under them equal (blocks of
    zeros aside, whose scale changes no weight).
    I2_S needs cols % 128 == 0 (the x86 128-element layout of bitnet.cpp's published files);
    TL1/TL2 need a shape bitnet.cpp can tile.
TQ/Q files use the ids of mainline ggml (gguf-py, llama.cpp loads them); I2_S/TL files use
bitnet.cpp's. Example, Microsoft's BitNet-b1.58-2B-4T I2_S file for stock llama.cpp (which knows
the architecture 'bitnet', not 'bitnet-b1.58'):
  tern convert ggml-model-i2_s.gguf model-tq2_0.gguf --type tq2_0 --arch bitnet

options:
  -t, --type FORMAT       i2_s, tl1, tl2, tq1_0, tq2_0, q2_0 or q1_0 (required)
  --arch NAME             general.architecture [safetensors: from config.json, else bitnet;
                          GGUF: kept]; from GGUF it also renames the '<old arch>.' keys
  --tl2-id ID             42 (bitnet.cpp current fork, default) or 39 (legacy merge-dev)
  -q, --quiet             no progress output
  -h, --help              this text
options for a GGUF input:
  --allow-rounding        round scales to the nearest f16 for TQ1_0/TQ2_0/Q2_0/Q1_0 (default:
                          error)
options for a safetensors input:
  --pattern LIST          comma-separated name substrings selecting linear layers
                          [default: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
                          and the GGUF names attn_q.,attn_k.,attn_v.,attn_output.,ffn_gate.,
                          ffn_up.,ffn_down.]
  --quant METHOD          absmean (BitNet's absmean per tensor; into Q1_0: sign x mean|W|)
                          or ggml-ref (ggml's reference quantizer of TQ1_0, TQ2_0, Q2_0 or
                          Q1_0, per block) [absmean]
  --keep-names            keep the source tensor names (no HF -> GGUF mapping)
  --float-type T          keep, f32 or f16: type of the other tensors with 2+ dims [keep]
  --name NAME             general.name [config _name_or_path, else the file name]
  --weight-scale MODE     packed checkpoints: divide (scale = 1/weight_scale, HF BitLinear)
                          or multiply (bitnet.cpp's I2_S converter) [divide]
  --allow-fallback        keep selected tensors as float when FORMAT cannot store their shape
                          (default: that is an error)
  --alignment N           data alignment, a power of two [32]";

/// Options that only a safetensors input takes, and those only a GGUF input takes.
const SAFETENSORS_ONLY: &[&str] = &[
    "--pattern",
    "--keep-names",
    "--float-type",
    "--name",
    "--weight-scale",
    "--allow-fallback",
    "--alignment",
    "--quant",
];
const GGUF_ONLY: &[&str] = &["--allow-rounding"];

#[derive(Debug)]
pub struct Args {
    pub input: PathBuf,
    pub output: PathBuf,
    pub opts: ConvertOptions,
    pub allow_rounding: bool,
    pub quiet: bool,
    /// The options given (names), checked against the input kind at run time.
    pub given: Vec<String>,
}

fn format(s: &str) -> Result<Format, String> {
    Format::from_name(s)
        .ok_or_else(|| format!("--type: unknown format '{s}' ({})", Format::names()))
}

/// Parses the arguments after `convert`; `Ok(None)` = help.
pub fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut positional = Vec::new();
    let mut fmt = None;
    let mut opts = ConvertOptions::new(Format::I2S);
    let mut quiet = false;
    let mut allow_rounding = false;
    let mut given = Vec::new();
    let mut scan = Scanner::new(args);
    while let Some(arg) = scan.next_arg() {
        if arg.name.starts_with('-') {
            given.push(arg.name.to_string());
        }
        let mut value = || scan.value(&arg);
        match arg.name {
            "-h" | "--help" => return Ok(None),
            "-q" | "--quiet" => quiet = true,
            "--keep-names" => opts.map_names = false,
            "--allow-fallback" => opts.allow_fallback = true,
            "--allow-rounding" => allow_rounding = true,
            "-t" | "--type" => fmt = Some(format(&value()?)?),
            "--pattern" => {
                let v = value()?;
                opts.patterns = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                if opts.patterns.is_empty() {
                    return Err("--pattern needs at least one substring".into());
                }
            }
            "--float-type" => {
                opts.float_out = match value()?.as_str() {
                    "keep" => FloatOut::Keep,
                    "f32" => FloatOut::F32,
                    "f16" => FloatOut::F16,
                    v => return Err(format!("--float-type: '{v}' is not keep, f32 or f16")),
                }
            }
            "--arch" => opts.arch = Some(value()?),
            "--quant" => {
                opts.method = match value()?.as_str() {
                    "absmean" => Method::Absmean,
                    "ggml-ref" => Method::GgmlRef,
                    v => return Err(format!("--quant: '{v}' is not absmean or ggml-ref")),
                }
            }
            "--name" => opts.name = Some(value()?),
            "--tl2-id" => {
                opts.dialect = match value()?.as_str() {
                    "42" => Dialect::BitnetCurrent,
                    "39" => Dialect::BitnetLegacy,
                    v => return Err(format!("--tl2-id: '{v}' is not 42 or 39")),
                }
            }
            "--weight-scale" => {
                opts.scale_mode = match value()?.as_str() {
                    "divide" => ScaleMode::Divide,
                    "multiply" => ScaleMode::Multiply,
                    v => return Err(format!("--weight-scale: '{v}' is not divide or multiply")),
                }
            }
            "--alignment" => {
                let v = value()?;
                opts.alignment = v
                    .parse::<u32>()
                    .ok()
                    .filter(|a| a.is_power_of_two())
                    .ok_or_else(|| format!("--alignment: '{v}' is not a power of two"))?;
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!(
                    "unknown option '{s}' for 'tern convert' (run 'tern convert --help')"
                ));
            }
            _ => positional.push(arg.raw.to_string()),
        }
    }
    let [input, output] = &positional[..] else {
        return Err(format!(
            "'tern convert' needs MODEL and OUTPUT.gguf (got {} arguments)",
            positional.len()
        ));
    };
    opts.format =
        fmt.ok_or("'tern convert' needs --type (i2_s, tl1, tl2, tq1_0, tq2_0, q2_0, q1_0)")?;
    Ok(Some(Args {
        input: input.into(),
        output: output.into(),
        opts,
        allow_rounding,
        quiet,
        given,
    }))
}

/// The first option in `given` that is in `list`.
fn first_of<'a>(given: &'a [String], list: &[&str]) -> Option<&'a str> {
    given
        .iter()
        .find(|g| list.contains(&g.as_str()))
        .map(String::as_str)
}

pub fn run(a: &Args) -> Result<(), String> {
    let quiet = a.quiet;
    let mut log = |line: &str| {
        if !quiet {
            // A closed stderr (e.g. piped into `head`) must not abort the conversion.
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    };
    // A missing `x.gguf` is reported by the GGUF reader, not as a missing safetensors model.
    if retype::is_gguf(&a.input) || a.input.extension().is_some_and(|e| e == "gguf") {
        if let Some(opt) = first_of(&a.given, SAFETENSORS_ONLY) {
            return Err(format!(
                "{opt} applies to a safetensors input; '{}' is a GGUF file, whose tensors and keys are copied as they are",
                a.input.display()
            ));
        }
        let opts = RetypeOptions {
            allow_rounding: a.allow_rounding,
            arch: a.opts.arch.clone(),
            dialect: a.opts.dialect,
            ..RetypeOptions::new(a.opts.format)
        };
        let r = retype::retype(&a.input, &a.output, &opts, &mut log).map_err(|e| e.message)?;
        println!(
            "wrote {}: {} tensors ({} ternary converted to {}, {} already {}, {} others copied{}{}), {} keys, {} bytes",
            a.output.display(),
            r.tensors_out,
            r.retyped,
            a.opts.format.name(),
            r.unchanged_ternary,
            a.opts.format.name(),
            r.copied,
            if r.dropped.is_empty() {
                String::new()
            } else {
                format!(", {} TL scale companions folded in", r.dropped.len())
            },
            if r.rounded.is_empty() {
                String::new()
            } else {
                format!(", {} with scales rounded to f16", r.rounded.len())
            },
            r.kvs,
            r.bytes_out
        );
        return Ok(());
    }
    if let Some(opt) = first_of(&a.given, GGUF_ONLY) {
        return Err(format!(
            "{opt} applies to a GGUF input; '{}' is not a GGUF file",
            a.input.display()
        ));
    }
    let r = convert::convert(&a.input, &a.output, &a.opts, &mut log).map_err(|e| e.message)?;
    let mean_sparsity = if r.sparsity.is_empty() {
        0.0
    } else {
        r.sparsity.iter().map(|s| s.1).sum::<f64>() / r.sparsity.len() as f64
    };
    println!(
        "wrote {}: {} tensors ({} {} ternary, {} float{}{}), {} bytes from {} input bytes; mean sparsity {:.3}",
        a.output.display(),
        r.tensors_out,
        r.ternary,
        a.opts.format.name(),
        r.kept,
        if r.fallback.is_empty() {
            String::new()
        } else {
            format!(", {} kept float by --allow-fallback", r.fallback.len())
        },
        if r.skipped.is_empty() {
            String::new()
        } else {
            format!(", {} non-float skipped", r.skipped.len())
        },
        r.bytes_out,
        r.bytes_in,
        mean_sparsity
    );
    Ok(())
}
