//! Ternary (BitNet b1.58) weight quantization, packing and matrix multiplication, byte-exact with
//! bitnet.cpp and ggml.
//!
//! tern stores a weight matrix whose values are −1, 0 or +1 (times a scale) in one of seven
//! [`Format`]s and multiplies it by f32 or int8 activations on the best SIMD level of the CPU
//! ([`Isa`]: AVX2, AVX-VNNI, AVX-512 (BW, VNNI, VBMI), NEON, dotprod, i8mm, or the scalar
//! oracle):
//!
//! | [`Format`] | from | bits/weight | scales |
//! |---|---|---|---|
//! | `I2S` | bitnet.cpp I2_S | 2 | one per tensor |
//! | `Tl1`, `Tl2` | bitnet.cpp LUT kernels | 2, 1.67 | one per tensor, a [`Tiling`] |
//! | `Tq1_0`, `Tq2_0` | ggml TQ1_0, TQ2_0 | 1.69, 2.06 | f16 per 256 |
//! | `Q2_0`, `Q1_0` | ggml Q2_0, Q1_0 (values −1..2 / ±1) | 2.25, 1.125 | f16 per 64 / 128 |
//!
//! # The data path
//!
//! f32 weights → [`quantize_packed`] (ternarize with a [`QuantConfig`], pack into a [`Layout`])
//! → packed bytes, which are also what GGUF files store ([`gguf`]) and what [`convert`] turns
//! into another format without loss → [`Matrix::from_packed`] (validate once, re-lay out for the
//! kernels of a [`Context`]) → [`Matrix::gemm`] (f32 activations, quantized to int8 per token
//! in the rounding of a [`Compat`] mode) or [`Matrix::gemm_i8`] (the caller's [`Activations`]),
//! any number of times.
//!
//! ```
//! use tern::format::TqKind;
//! use tern::{Context, GemmOptions, GemmOutput, Layout, Matrix, QuantConfig, Shape};
//!
//! let ctx = Context::new(0, 1)?; // best ISA level, the caller's thread only
//! let shape = Shape::new(64, 256)?; // 64 output rows, 256 inputs
//! let w: Vec<f32> = (0..shape.elements()).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let layout = Layout::Tq(TqKind::Tq2_0);
//! let (packed, stats) = tern::quantize_packed(layout, shape, &w, &QuantConfig::default())?;
//! assert_eq!(packed.len(), layout.packed_size(shape)?);
//! assert!(stats.sparsity > 0.0 && stats.sparsity < 1.0);
//! let m = Matrix::from_packed(&ctx, layout, shape, &packed)?;
//!
//! // Two tokens of activations, one row each.
//! let x: Vec<f32> = (0..2 * shape.cols).map(|i| ((i * 13 % 29) as f32 - 14.0) / 7.0).collect();
//! let mut y = vec![0.0f32; 2 * shape.rows];
//! let out = GemmOutput { y: &mut y, n_tokens: 2, stride: shape.rows };
//! m.gemm(&ctx, &x, shape.cols, out, &GemmOptions::default())?;
//!
//! // The reference: the dequantized weights times the f32 activations. The only difference is
//! // the int8 rounding of the activations, at most max|x|/254 per input.
//! let mut wd = vec![0.0f32; shape.elements()];
//! layout.dequantize(shape, &packed, &mut wd)?;
//! for t in 0..2 {
//!     let xt = &x[t * shape.cols..][..shape.cols];
//!     let step = xt.iter().fold(0.0f32, |a, v| a.max(v.abs())) / 254.0;
//!     for r in 0..shape.rows {
//!         let wr = &wd[r * shape.cols..][..shape.cols];
//!         let exact: f32 = wr.iter().zip(xt).map(|(a, b)| a * b).sum();
//!         let bound: f32 = wr.iter().map(|a| a.abs() * step).sum();
//!         assert!((y[t * shape.rows + r] - exact).abs() <= bound * 1.01 + 1e-4);
//!     }
//! }
//! # Ok::<(), tern::Error>(())
//! ```
//!
//! # Threads
//!
//! A [`Context`] (an ISA level chosen once, and a pool of worker threads) and a [`Matrix`] are
//! immutable after creation: share them across threads (`&Context`, `Arc<Matrix>`) and call
//! `gemm` from several threads at once. Each call splits its work over the context's threads.
//!
//! # Errors
//!
//! Every fallible call returns a [`Result`] whose [`Error`] has a [`ErrorKind`] and a message
//! saying what was wrong and what is allowed; nothing is written on error.
//!
//! # The C ABI
//!
//! The same library is a C shared/static library: `include/tern.h` (generated), with the
//! conventions in `shared/design/c_abi.md`. The Rust items behind it are not part of this API.

#![warn(missing_docs)]

pub mod context;
pub mod error;
pub mod format;
pub mod gguf;
pub mod matrix;
pub mod quant;

// Not API: the C ABI, the kernels, the weight buffers and the GPU backend. They stay reachable
// (hidden from the documentation) for the `tern` command line, the benches, the fuzz targets and
// the integration tests; they change without notice.
#[cfg(feature = "cuda")]
#[doc(hidden)]
pub mod cuda;
#[doc(hidden)]
pub mod ffi;
#[doc(hidden)]
pub mod kernel;
#[doc(hidden)]
pub mod pages;

pub use context::Context;
pub use error::{Error, ErrorKind, Result};
pub use format::{Format, I2sVariant, Layout, Shape, Tiling, convert};
pub use gguf::{Dialect, Gguf, ReadOptions, TensorData, Writer};
pub use kernel::Isa;
pub use matrix::{Activations, GemmOptions, GemmOutput, Matrix};
pub use quant::{Compat, Method, QuantConfig, QuantStats, quantize_packed};
