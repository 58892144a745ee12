#![no_main]
//! `tern_dequantize` on arbitrary bytes: any status is fine, a crash or a panic status is not.

use libfuzzer_sys::fuzz_target;
use tern::ffi::*;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let Some(c) = common::case(input) else { return };
    let mut out = vec![0f32; (c.rows * c.cols) as usize];
    let st = unsafe { tern_dequantize(&c.layout, c.data.as_ptr().cast(), c.data.len(), c.rows, c.cols, out.as_mut_ptr()) };
    assert_ne!(st, tern_status::TERN_STATUS_PANIC);
    if st == tern_status::TERN_STATUS_OK {
        assert!(out.iter().all(|v| v.is_finite()));
    }
});
