//! The C API: argument checks, handle management and status/last-error reporting only. Every
//! computation is delegated to the library modules.
//!
//! Conventions (`shared/design/c_abi.md`): fallible functions return `tern_status` and set the
//! calling thread's last error; outputs are written only on success; `ctx` may be NULL for the
//! process-wide default context; enums are passed as plain integers and validated. The raw tier
//! (`ggml`) keeps ggml's `void` / `size_t` signatures: it checks its arguments just as strictly,
//! but reports only through the last error (see that module).
#![allow(non_camel_case_types)]

// The exported functions and C types are reached through the re-exports below; `boundary`
// (the panic/status wrappers) and `ggml` (the raw tier, named by its tests) stay reachable.
pub(crate) mod args;
pub(crate) mod basics;
pub mod boundary;
pub(crate) mod context;
pub(crate) mod cuda;
mod enums;
pub mod ggml;
pub(crate) mod ggml_q;
pub(crate) mod gguf;
pub(crate) mod matrix;
pub(crate) mod types;
pub(crate) mod weights;

pub use basics::*;
pub use context::*;
pub use cuda::*;
pub use ggml::*;
pub use ggml_q::*;
pub use gguf::*;
pub use matrix::*;
pub use types::*;
pub use weights::*;
