//! tern: ternary (BitNet b1.58) weight quantization, packing and GEMM, byte-exact with bitnet.cpp
//! and ggml, shipped as a C-ABI library (`include/tern.h`).
//!
//! Module map: `format` (storage formats), `quant` (weight/activation quantizers), `kernel`
//! (scalar oracle + SIMD behind one dispatch table), `context` (kernel choice + threads),
//! `matrix` (pack once, run many), `ffi` (the C boundary only, including `ffi::ggml`, the raw
//! ggml-signature tier).

pub mod context;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod error;
pub mod ffi;
pub mod format;
pub mod gguf;
pub mod kernel;
pub mod matrix;
pub mod pages;
pub mod quant;
