//! Shared helpers for the integration tests: golden-file reading and small C-API wrappers.
#![allow(dead_code)]

use std::ffi::CStr;
use std::path::PathBuf;

use tern::ffi::*;

pub fn data_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(rel)
}

pub fn read_bytes(rel: &str) -> Vec<u8> {
    let p = data_path(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", p.display()))
}

pub fn read_f32(rel: &str) -> Vec<f32> {
    read_bytes(rel)
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

pub fn read_i8(rel: &str) -> Vec<i8> {
    read_bytes(rel).into_iter().map(|b| b as i8).collect()
}

/// `<case>.act_*_scale_sum.bin`: f32[T] scales then i32[T] sums.
pub fn read_scale_sum(rel: &str, tokens: usize) -> (Vec<f32>, Vec<i32>) {
    let b = read_bytes(rel);
    assert_eq!(b.len(), 8 * tokens, "{rel}");
    let scales = b[..4 * tokens]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    let sums = b[4 * tokens..]
        .chunks_exact(4)
        .map(|c| i32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (scales, sums)
}

pub fn last_error() -> String {
    let p = tern_last_error_message();
    assert!(!p.is_null(), "expected a last error message");
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

pub fn layout(format: i32, variant: u32) -> tern_layout {
    tern_layout {
        struct_size: size_of::<tern_layout>() as u32,
        format,
        variant,
        tile_rows: 0,
        tile_k: 0,
        simd_rows: 0,
    }
}

pub fn i2s(variant: u32) -> tern_layout {
    layout(tern_format::TERN_FORMAT_I2_S as i32, variant)
}

pub fn gemm_options(compat: i32) -> tern_gemm_options {
    tern_gemm_options {
        struct_size: size_of::<tern_gemm_options>() as u32,
        compat,
        row_begin: 0,
        row_end: 0,
        bias: std::ptr::null(),
    }
}

pub fn quant_options(method: i32) -> tern_quant_options {
    tern_quant_options {
        struct_size: size_of::<tern_quant_options>() as u32,
        method,
        group_size: 0,
        eps: 1e-5,
    }
}

/// Creates a context, panicking with the library's message on failure.
pub fn context(max_isa: i32, n_threads: i32) -> *mut tern_context {
    let opts = tern_context_options {
        struct_size: size_of::<tern_context_options>() as u32,
        max_isa,
        n_threads,
        spin_us: tern::context::DEFAULT_SPIN_US,
    };
    let mut ctx = std::ptr::null_mut();
    let st = unsafe { tern_context_create(&opts, &mut ctx) };
    assert_eq!(st, tern_status::TERN_STATUS_OK, "{}", last_error());
    ctx
}

/// Every ISA level this CPU runs, as `tern_isa` values.
pub fn available_isas() -> Vec<i32> {
    tern::kernel::Isa::available().map(|i| i as i32).collect()
}

/// A small deterministic PRNG (xorshift64*), so tests need no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}
