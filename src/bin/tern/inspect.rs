//! `tern inspect FILE.gguf`: header, KV pairs and tensors of a GGUF file, with the sparsity of
//! ternary tensors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tern::format::Format;
use tern::gguf::{Dialect, Gguf, ReadOptions, ternary};

use crate::args::Scanner;

pub const USAGE: &str = "\
usage: tern inspect FILE.gguf [OPTIONS]

Validates a GGUF file and lists its header, key-value pairs (arrays abbreviated) and tensors
(type, ggml dims, offset, bytes); for the weight types tern reads (TQ1_0, TQ2_0, I2_S, TL1, TL2,
Q2_0, Q1_0) also the first scale and the fraction of -1 / 0 / +1 weights (sparsity = fraction of
zeros; Q2_0 also +2, its code 3), and a total per type.

options:
  --dialect D      how type ids 36-42 are read: auto (default; TL2 = 39/42 only with a
                   '<name>_scale' tensor), mainline, bitnet-legacy (TL2 = 39), bitnet-current
                   (TL2 = 42)
  --no-sparsity    skip unpacking ternary tensors (faster on big files)
  -h, --help       this text";

#[derive(Debug)]
pub struct Args {
    pub path: PathBuf,
    pub dialect: Dialect,
    pub sparsity: bool,
}

pub fn parse(args: &[String]) -> Result<Option<Args>, String> {
    let mut path = None;
    let mut dialect = Dialect::Auto;
    let mut sparsity = true;
    let mut scan = Scanner::new(args);
    while let Some(arg) = scan.next_arg() {
        match arg.name {
            "-h" | "--help" => return Ok(None),
            "--no-sparsity" => sparsity = false,
            "--dialect" => {
                let v = scan.value(&arg)?;
                dialect = match v.as_str() {
                    "auto" => Dialect::Auto,
                    "mainline" => Dialect::Mainline,
                    "bitnet-legacy" => Dialect::BitnetLegacy,
                    "bitnet-current" => Dialect::BitnetCurrent,
                    _ => {
                        return Err(format!(
                            "--dialect: '{v}' is not auto, mainline, bitnet-legacy or bitnet-current"
                        ));
                    }
                };
            }
            s if s.starts_with('-') && s.len() > 1 => {
                return Err(format!(
                    "unknown option '{s}' for 'tern inspect' (run 'tern inspect --help')"
                ));
            }
            _ if path.is_none() => path = Some(PathBuf::from(arg.raw)),
            _ => {
                return Err(format!(
                    "'tern inspect' takes one file (extra argument '{}')",
                    arg.raw
                ));
            }
        }
    }
    let path = path.ok_or("'tern inspect' needs a FILE.gguf")?;
    Ok(Some(Args {
        path,
        dialect,
        sparsity,
    }))
}

pub fn run(a: &Args) -> Result<(), String> {
    let g = Gguf::open(&a.path, ReadOptions { dialect: a.dialect }).map_err(|e| e.message)?;
    let m = g.meta();
    println!(
        "{}: GGUF v{}, {} bytes, alignment {}, data section at byte {}, ggml-contiguous offsets: {}, dialect: {}",
        a.path.display(),
        m.version,
        m.file_size,
        m.alignment,
        m.data_offset,
        if m.ggml_contiguous { "yes" } else { "no" },
        a.dialect.name()
    );
    println!();
    println!("{} key-value pairs:", m.kvs.len());
    let width = m.kvs.iter().map(|kv| kv.key_str().len()).max().unwrap_or(0);
    for kv in &m.kvs {
        let ty = match &kv.value {
            tern::gguf::Value::Array(_) => "ARRAY".to_string(),
            v => v.ty().name().to_string(),
        };
        println!(
            "  {:<width$}  {:<7}  {}",
            kv.key_str(),
            ty,
            kv.value.display()
        );
    }
    println!();
    println!("{} tensors:", m.tensors.len());
    let nw = m
        .tensors
        .iter()
        .map(|t| t.name_str().len())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "  {:>5}  {:<nw$}  {:<10}  {:<24}  {:>12}  {:>12}  ternary",
        "#", "name", "type (id)", "dims (ggml order)", "offset", "bytes"
    );
    let mut per_type: BTreeMap<&str, (usize, u64)> = BTreeMap::new();
    let mut zeros = 0u64;
    let mut weights = 0u64;
    for (i, t) in m.tensors.iter().enumerate() {
        let dims: Vec<String> = t.dims[..t.n_dims.max(1) as usize]
            .iter()
            .map(u64::to_string)
            .collect();
        let extra = match (t.ty.ternary, a.sparsity) {
            (Some(_), true) => match ternary::census(&g, t.name_str()) {
                Ok((n, scale)) => {
                    let count = n.iter().sum::<u64>();
                    let total = count.max(1) as f64;
                    zeros += n[1];
                    weights += count;
                    // +2 exists only in Q2_0 (code 3), which ggml's quantizer never writes.
                    let plus_two = match t.ty.ternary {
                        Some(Format::Q2_0) => format!(", +2 {:.4}", n[3] as f64 / total),
                        _ => String::new(),
                    };
                    format!(
                        "scale {scale:.6e}, sparsity {:.4} (-1 {:.4}, +1 {:.4}{plus_two})",
                        n[1] as f64 / total,
                        n[0] as f64 / total,
                        n[2] as f64 / total
                    )
                }
                Err(e) => format!("cannot decode: {}", e.message),
            },
            (Some(f), false) => f.name().to_string(),
            (None, _) => String::new(),
        };
        println!(
            "  {:>5}  {:<nw$}  {:<10}  {:<24}  {:>12}  {:>12}  {extra}",
            i,
            t.name_str(),
            format!("{} ({})", t.ty.name, t.type_id),
            format!("[{}]", dims.join(", ")),
            m.data_offset + t.offset,
            t.size
        );
        let e = per_type.entry(t.ty.name).or_default();
        e.0 += 1;
        e.1 += t.size;
    }
    println!();
    println!("by type:");
    for (name, (n, bytes)) in &per_type {
        println!("  {name:<8} {n:>6} tensors  {bytes:>14} bytes");
    }
    if weights > 0 {
        println!(
            "ternary weights: {weights}, overall sparsity {:.4}",
            zeros as f64 / weights as f64
        );
    }
    Ok(())
}
