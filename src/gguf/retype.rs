//! `tern convert IN.gguf OUT.gguf --type FORMAT`: a GGUF → GGUF conversion that retypes the
//! weight tensors (I2_S, TL1, TL2, TQ1_0, TQ2_0, Q2_0, Q1_0, in any direction the values allow) and copies
//! everything else unchanged.
//!
//! * Weight tensors are read with `ternary::packed` (so bitnet.cpp's I2_S payload with its f32
//!   tail, TL tensors with their `<name>_scale` companion, and tern's tiling keys are understood)
//!   and converted with `format::convert`, which keeps every weight or fails naming the row and
//!   block: the values must fit the target (Q2_0's +2 only Q2_0, Q1_0 holds no 0), and
//!   the scales must too — I2_S/TL1/TL2 hold one scale per tensor, so a TQ/Q source needs every
//!   block scale equal (blocks of zeros aside, whose scale changes no weight), TQ's 256-element
//!   blocks the Q2_0/Q1_0 blocks under them; TQ1_0/TQ2_0/Q2_0/Q1_0 hold f16 block scales, so an
//!   f32 scale that f16 cannot represent is an error unless `allow_rounding` (then it rounds to
//!   nearest even, as ggml does). Shapes a format cannot store (TQ: `cols % 256 != 0`; Q2_0 /
//!   Q1_0: `cols % 64 / 128 != 0`; I2_S: `cols % 128 != 0`; TL shapes without a bitnet.cpp
//!   tiling) are errors too. Every error names the tensor.
//! * A ternary tensor already in the target format is copied byte for byte (I2_S's reserved tail
//!   bytes included).
//! * Every other tensor keeps its name, dims, type and bytes, in the same order. A TL tensor that
//!   is converted to another format loses its `<name>_scale` companion and `tern.tiling.<name>`
//!   key (its scale moves into the new payload); a tensor converted to TL gains them, as
//!   `Writer::add_ternary` writes them.
//! * KV pairs are copied in order with their types and values; `general.file_type` is set to the
//!   target's llama_ftype (mainline's 36 / 37 / 40 / 41 for TQ1_0 / TQ2_0 / Q1_0 / Q2_0,
//!   bitnet.cpp's 38 / 39 / 40 for TL1 / TL2 / I2_S; appended if the source had none). `arch` optionally renames the
//!   architecture: `general.architecture` and every `<old arch>.` key prefix.
//! * The alignment is kept (`general.alignment` copied where present). The output is GGUF v3 with
//!   ggml's contiguous offsets, as `Writer` writes every file.
//!
//! Output dialect: TQ1_0/TQ2_0 carry the ids 34/35 shared by mainline ggml (gguf-py, llama.cpp)
//! and bitnet.cpp, Q1_0/Q2_0 mainline's 41/42 (Q2_0 is refused under BITNET_CURRENT, where 42
//! is TL2); I2_S (36), TL1 (38) and TL2 (`dialect`: 42 current fork, 39 legacy) are
//! bitnet.cpp's ids. I2_S is read and written in the x86 128-element layout of bitnet.cpp's
//! published files.
//!
//! The converted tensors are held in memory until the file is written (so every tensor is checked
//! before a byte is written): about the ternary part of the output, 0.55 GB for
//! BitNet-b1.58-2B-4T as TQ2_0. The other tensors are streamed from the input's memory map.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use half::f16;

use super::reader::{Gguf, ReadOptions};
use super::ternary::{self, scale_name, tiling_key};
use super::types::Dialect;
use super::value::Value;
use super::writer::{TensorData, Writer};
use crate::error::{Error, Result};
use crate::format::{self, Format, GgufId, Layout};

#[derive(Clone, Debug)]
pub struct RetypeOptions {
    /// The format every ternary tensor is converted to.
    pub format: Format,
    /// Round f32 scales that f16 cannot represent when the target is TQ1_0/TQ2_0 (otherwise an
    /// error), as `tern_convert_options.allow_rounding`.
    pub allow_rounding: bool,
    /// Rename the architecture (`general.architecture` and the `<arch>.` key prefix).
    pub arch: Option<String>,
    /// Output dialect: picks TL2's id (AUTO / BITNET_CURRENT 42, BITNET_LEGACY 39).
    pub dialect: Dialect,
    /// How the input's ids are read (AUTO: 39/42 are TL2 when the tensor has a `_scale`
    /// companion).
    pub input_dialect: Dialect,
}

impl RetypeOptions {
    pub fn new(format: Format) -> Self {
        Self {
            format,
            allow_rounding: false,
            arch: None,
            dialect: Dialect::Auto,
            input_dialect: Dialect::Auto,
        }
    }
}

/// `general.file_type` (llama_ftype) for the output format: mainline's `LLAMA_FTYPE_MOSTLY_TQ1_0`
/// / `TQ2_0` (36 / 37), bitnet.cpp's `TL1` / `TL2` / `I2_S` (38 / 39 / 40).
pub fn file_type(format: Format) -> u32 {
    format.spec().file_type
}

/// What a retype did.
#[derive(Clone, Debug, Default)]
pub struct RetypeReport {
    pub tensors_in: usize,
    pub tensors_out: usize,
    /// Ternary tensors converted to the target format.
    pub retyped: usize,
    /// Ternary tensors already in the target format (copied).
    pub unchanged_ternary: usize,
    /// Other tensors (copied).
    pub copied: usize,
    /// TL `<name>_scale` companions dropped because their tensor left TL.
    pub dropped: Vec<String>,
    /// (tensor, largest relative change of a scale) for tensors whose scales `allow_rounding`
    /// rounded to f16.
    pub rounded: Vec<(String, f64)>,
    pub kvs: usize,
    pub bytes_out: u64,
}

/// Whether `path` is a GGUF file (starts with the magic "GGUF").
pub fn is_gguf(path: &Path) -> bool {
    let mut magic = [0u8; 4];
    path.is_file()
        && std::fs::File::open(path)
            .and_then(|mut f| f.read_exact(&mut magic))
            .is_ok()
        && &magic == super::reader::MAGIC
}

/// The largest relative change f16 makes to one of `scales` (0 when all are exact).
fn f16_rounding(scales: &[f32]) -> f64 {
    scales
        .iter()
        .map(|&s| {
            let r = f16::from_f32(s).to_f32();
            if r == s {
                0.0
            } else {
                ((r as f64 - s as f64) / s as f64).abs()
            }
        })
        .fold(0.0, f64::max)
}

/// Converts `input` to `output`. `log` receives one line per event (progress, notes).
pub fn retype(
    input: &Path,
    output: &Path,
    opts: &RetypeOptions,
    log: &mut dyn FnMut(&str),
) -> Result<RetypeReport> {
    if let (Ok(a), Ok(b)) = (input.canonicalize(), output.canonicalize())
        && a == b
    {
        return Err(Error::invalid(format!(
            "the output '{}' is the input file; write to another path",
            output.display()
        )));
    }
    let g = Gguf::open(
        input,
        ReadOptions {
            dialect: opts.input_dialect,
        },
    )?;
    let meta = g.meta();
    let target = opts.format;
    let mut report = RetypeReport {
        tensors_in: meta.tensors.len(),
        ..Default::default()
    };

    // Tensors that change format, and what they leave behind in the source.
    let converted: Vec<&str> = meta
        .tensors
        .iter()
        .filter(|t| t.ty.ternary.is_some_and(|f| f != target))
        .map(|t| t.name_str())
        .collect();
    if !meta.tensors.iter().any(|t| t.ty.ternary.is_some()) {
        return Err(Error::invalid(format!(
            "'{}' has no weight tensors tern converts (I2_S, TL1, TL2, TQ1_0, TQ2_0, Q2_0, Q1_0); a float model is converted from its safetensors",
            input.display()
        )));
    }
    let mut drop_tensors: HashSet<String> = HashSet::new();
    let mut drop_keys: HashSet<String> = HashSet::new();
    for &name in &converted {
        let t = meta.find_tensor(name).expect("listed");
        if matches!(t.ty.ternary, Some(Format::Tl1 | Format::Tl2))
            && meta.find_tensor(&scale_name(name)).is_some()
        {
            drop_tensors.insert(scale_name(name));
        }
        drop_keys.insert(tiling_key(name));
    }

    // KVs: in order, file type set, architecture optionally renamed.
    let old_arch = meta.architecture().map(str::to_owned);
    let rename = match (&opts.arch, &old_arch) {
        (Some(new), _) if new.is_empty() => {
            return Err(Error::invalid("the new architecture name is empty"));
        }
        (Some(new), Some(old)) => Some((format!("{old}."), format!("{new}."), new.clone())),
        (Some(_), None) => {
            return Err(Error::invalid(format!(
                "'{}' has no general.architecture string to rename",
                input.display()
            )));
        }
        (None, _) => None,
    };
    let ftype = Value::U32(file_type(target));
    let mut w = Writer::new(meta.alignment as u32, opts.dialect)?;
    let mut has_ftype = false;
    for kv in &meta.kvs {
        let key = kv.key_str();
        if drop_keys.contains(key) {
            continue;
        }
        let mut value = kv.value.clone();
        let mut out_key = key.to_owned();
        if key == "general.file_type" {
            value = ftype.clone();
            has_ftype = true;
        } else if let Some((old_prefix, new_prefix, new)) = &rename {
            if key == "general.architecture" {
                value = Value::string(new);
            } else if let Some(rest) = key.strip_prefix(old_prefix.as_str()) {
                out_key = format!("{new_prefix}{rest}");
            }
        }
        w.add_kv(&out_key, value)?;
    }
    if !has_ftype {
        w.add_kv("general.file_type", ftype)?;
    }

    // Tensors, in order.
    let total = meta.tensors.len();
    for (i, t) in meta.tensors.iter().enumerate() {
        let name = t.name_str();
        let step = format!("[{:>4}/{total}] {name}", i + 1);
        if drop_tensors.contains(name) {
            log(&format!(
                "{step}: dropped (the TL scale companion; the scale moves into the {} payload)",
                target.name()
            ));
            report.dropped.push(name.to_owned());
            continue;
        }
        let dims = &t.dims[..(t.n_dims as usize).max(1)];
        match t.ty.ternary {
            Some(from) if from != target => {
                let (to, shape, bytes, rounding) =
                    retype_tensor(&g, name, target, opts.allow_rounding, opts.dialect)?;
                w.add_ternary(name, to, shape, &bytes)
                    .map_err(|e| Error::new(e.kind, format!("tensor '{name}': {}", e.message)))?;
                log(&format!(
                    "{step} {}×{} {} -> {}{}",
                    shape.rows,
                    shape.cols,
                    from.name(),
                    target.name(),
                    if rounding > 0.0 {
                        format!(" (scales rounded to f16, largest relative change {rounding:.2e})")
                    } else {
                        String::new()
                    }
                ));
                if rounding > 0.0 {
                    report.rounded.push((name.to_owned(), rounding));
                }
                report.retyped += 1;
            }
            _ => {
                w.add_tensor(name, t.ty, dims, TensorData::Borrowed(g.tensor_data(t)))?;
                if t.ty.ternary.is_some() {
                    report.unchanged_ternary += 1;
                } else {
                    report.copied += 1;
                }
            }
        }
    }
    if let Some(arch) = opts.arch.as_deref().or(old_arch.as_deref())
        && matches!(target.spec().gguf_id, GgufId::Mainline(_))
        && arch.starts_with("bitnet")
        && arch != "bitnet"
    {
        log(&format!(
            "note: stock llama.cpp knows the architecture 'bitnet', not '{arch}'; rename it with --arch bitnet for a file llama.cpp loads"
        ));
    }
    report.tensors_out = w.tensor_count();
    report.kvs = w.kv_count();
    let mut progress = crate::gguf::writer::percent_log(log);
    report.bytes_out = w.write(output, &mut progress)?;
    Ok(report)
}

/// Converts ternary tensor `name` to `target`: the target layout, shape, packed bytes (tern's
/// layout) and the largest relative change rounding made to a scale (0 when exact).
fn retype_tensor(
    g: &Gguf,
    name: &str,
    target: Format,
    allow_rounding: bool,
    dialect: Dialect,
) -> Result<(Layout, format::Shape, Vec<u8>, f64)> {
    let named = |e: Error| Error::new(e.kind, format!("tensor '{name}': {}", e.message));
    let (from, shape, src) = ternary::packed(g, name, None)?;
    let to = Layout::new(target as i32, 0, 0, 0, 0)?;
    let what = format!(
        "{}×{} {} -> {}",
        shape.rows,
        shape.cols,
        from.format().name(),
        target.name()
    );
    let cannot = |e: Error| {
        Error::new(
            e.kind,
            format!(
                "tensor '{name}' ({what}) cannot be converted: {}",
                e.message
            ),
        )
    };
    to.check_shape(shape).map_err(cannot)?;
    ternary::file_payload_size_check(to, shape, dialect).map_err(cannot)?;
    let scales = from.validate(shape, &src).map_err(named)?;
    let mut rounding = 0.0;
    if to.spec().f16_scales {
        rounding = f16_rounding(&scales);
        if rounding > 0.0 && !allow_rounding {
            let (s, r) = scales
                .iter()
                .map(|&s| (s, f16::from_f32(s).to_f32()))
                .find(|&(s, r)| s != r)
                .expect("rounding > 0");
            return Err(Error::invalid(format!(
                "tensor '{name}' ({what}): the scale {s:e} is not exactly representable as {}'s f16 block scale \
                 (nearest f16: {r:e}, relative change {rounding:.2e}); converting would change the weights. \
                 Allow rounding to the nearest f16 with --allow-rounding",
                target.name()
            )));
        }
    }
    let mut dst = vec![0u8; to.packed_size(shape)?];
    format::convert(from, to, shape, &src, &mut dst, allow_rounding).map_err(cannot)?;
    Ok((to, shape, dst, rounding))
}
