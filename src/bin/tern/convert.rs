//! `tern convert MODEL OUTPUT.gguf --type FORMAT`: safetensors → GGUF with ternary linear layers
//! (the pipeline is `tern::gguf::convert`).

use std::io::Write;
use std::path::PathBuf;

use tern::format::Format;
use tern::gguf::Dialect;
use tern::gguf::convert::{self, ConvertOptions, FloatOut, ScaleMode};

use crate::args::Scanner;

pub const USAGE: &str = "\
usage: tern convert MODEL OUTPUT.gguf --type FORMAT [OPTIONS]

Converts a safetensors model to GGUF. MODEL is a .safetensors file or a directory of them; a
config.json next to it supplies the architecture keys. Linear layers (2-D float '.weight'
tensors whose name contains a pattern) are ternarized with BitNet's absmean rule and packed;
BitNet checkpoints with packed uint8 weights and a 'weight_scale' are unpacked as they are.
Other tensors stay float (1-D tensors as F32). HF Llama/BitNet names become llama.cpp names.

options:
  -t, --type FORMAT       i2_s, tl1, tl2, tq1_0 or tq2_0 (required)
  --pattern LIST          comma-separated name substrings selecting linear layers
                          [default: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj
                          and the GGUF names attn_q.,attn_k.,attn_v.,attn_output.,ffn_gate.,
                          ffn_up.,ffn_down.]
  --keep-names            keep the source tensor names (no HF -> GGUF mapping)
  --float-type T          keep, f32 or f16: type of the other tensors with 2+ dims [keep]
  --arch NAME             general.architecture [from config.json, else bitnet]
  --name NAME             general.name [config _name_or_path, else the file name]
  --tl2-id ID             42 (bitnet.cpp current fork, default) or 39 (legacy merge-dev)
  --weight-scale MODE     packed checkpoints: divide (scale = 1/weight_scale, HF BitLinear)
                          or multiply (bitnet.cpp's I2_S converter) [divide]
  --allow-fallback        keep selected tensors as float when FORMAT cannot store their shape
                          (default: that is an error)
  --alignment N           data alignment, a power of two [32]
  -q, --quiet             no progress output
  -h, --help              this text";

#[derive(Debug)]
pub struct Args {
    pub input: PathBuf,
    pub output: PathBuf,
    pub opts: ConvertOptions,
    pub quiet: bool,
}

fn format(s: &str) -> Result<Format, String> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "i2_s" | "i2s" => Format::I2S,
        "tl1" => Format::Tl1,
        "tl2" => Format::Tl2,
        "tq1_0" => Format::Tq1_0,
        "tq2_0" => Format::Tq2_0,
        _ => {
            return Err(format!(
                "--type: unknown format '{s}' (i2_s, tl1, tl2, tq1_0, tq2_0)"
            ));
        }
    })
}

/// Parses the arguments after `convert`; `Ok(None)` = help.
pub fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut positional = Vec::new();
    let mut fmt = None;
    let mut opts = ConvertOptions::new(Format::I2S);
    let mut quiet = false;
    let mut scan = Scanner::new(args);
    while let Some(arg) = scan.next_arg() {
        let mut value = || scan.value(&arg);
        match arg.name {
            "-h" | "--help" => return Ok(None),
            "-q" | "--quiet" => quiet = true,
            "--keep-names" => opts.map_names = false,
            "--allow-fallback" => opts.allow_fallback = true,
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
    opts.format = fmt.ok_or("'tern convert' needs --type (i2_s, tl1, tl2, tq1_0, tq2_0)")?;
    Ok(Some(Args {
        input: input.into(),
        output: output.into(),
        opts,
        quiet,
    }))
}

pub fn run(a: &Args) -> Result<(), String> {
    let quiet = a.quiet;
    let mut log = |line: &str| {
        if !quiet {
            // A closed stderr (e.g. piped into `head`) must not abort the conversion.
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    };
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
