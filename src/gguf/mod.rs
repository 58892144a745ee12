//! GGUF files: a validating memory-mapped reader (v2/v3, little-endian), a writer that follows
//! ggml's recipe, the ggml type registry with bitnet.cpp's fork types, ternary tensors as tern
//! matrices, and GGUF → GGUF retyping of the ternary tensors (`tern convert IN.gguf`). The
//! safetensors → GGUF converter lives with the `tern` command line, not in the library.
//!
//! Specs: `shared/spec/ggml_ternary_gguf.md` §3–4, `shared/spec/bitnet_cpp.md` §1–3.
//!
//! Write a ternary matrix and a KV with a [`Writer`], open the file with [`Gguf::open`], list
//! its tensors, and read the ternary tensor back as packed bytes or a [`Matrix`](crate::Matrix)
//! ([`ternary::packed`], [`ternary::matrix`]):
//!
//! ```
//! use tern::format::TqKind;
//! use tern::gguf::{self, Dialect, Gguf, ReadOptions, Value, Writer};
//! use tern::{Context, Layout, QuantConfig, Shape};
//!
//! let shape = Shape::new(32, 256)?;
//! let w: Vec<f32> = (0..shape.elements()).map(|i| (i % 5) as f32 - 2.0).collect();
//! let layout = Layout::Tq(TqKind::Tq2_0);
//! let (packed, _) = tern::quantize_packed(layout, shape, &w, &QuantConfig::default())?;
//!
//! let path = std::env::temp_dir().join(format!("tern-doc-{}.gguf", std::process::id()));
//! let mut writer = Writer::new(0, Dialect::Auto)?; // 32-byte alignment
//! writer.add_kv("general.architecture", Value::string("bitnet"))?;
//! writer.add_ternary("blk.0.ffn_up.weight", layout, shape, &packed)?;
//! writer.write(&path, &mut |_, _, _, _, _| {})?;
//!
//! let file = Gguf::open(&path, ReadOptions::default())?;
//! assert_eq!(file.meta().architecture(), Some("bitnet"));
//! let names: Vec<&str> = file.meta().tensors.iter().map(|t| t.name_str()).collect();
//! assert_eq!(names, ["blk.0.ffn_up.weight"]);
//! let (read_layout, read_shape, bytes) = gguf::ternary::packed(&file, names[0], None)?;
//! assert_eq!((read_layout, read_shape, &bytes[..]), (layout, shape, &packed[..]));
//!
//! let ctx = Context::new(0, 1)?;
//! let m = gguf::ternary::matrix(&ctx, &file, "blk.0.ffn_up.weight", None)?;
//! assert_eq!(m.shape(), shape);
//! drop(file);
//! std::fs::remove_file(&path).ok();
//! # Ok::<(), tern::Error>(())
//! ```

mod mmap;
pub mod reader;
// GGUF → GGUF retyping is the `tern convert` command's; reachable (hidden) for it and its tests.
#[doc(hidden)]
pub mod retype;
pub mod ternary;
pub mod types;
pub mod value;
pub mod writer;

#[doc(hidden)]
pub use mmap::Mmap;
pub use reader::{Gguf, Kv, Metadata, ReadOptions, TensorInfo};
pub use types::{Dialect, GgmlType};
pub use value::{Array, GStr, StrList, Value, ValueType};
pub use writer::{TensorData, Writer};
