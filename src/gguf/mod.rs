//! GGUF files: a validating memory-mapped reader (v2/v3, little-endian), a writer that follows
//! ggml's recipe, the ggml type registry with bitnet.cpp's fork types, ternary tensors as tern
//! matrices, and GGUF → GGUF retyping of the ternary tensors (`tern convert IN.gguf`). The
//! safetensors → GGUF converter lives with the `tern` command line, not in the library.
//!
//! Specs: `shared/spec/ggml_ternary_gguf.md` §3–4, `shared/spec/bitnet_cpp.md` §1–3.

mod mmap;
pub mod reader;
pub mod retype;
pub mod ternary;
pub mod types;
pub mod value;
pub mod writer;

pub use mmap::Mmap;
pub use reader::{Gguf, Kv, Metadata, ReadOptions, TensorInfo};
pub use types::{Dialect, GgmlType};
pub use value::{Array, GStr, StrList, Value, ValueType};
pub use writer::{TensorData, Writer};
