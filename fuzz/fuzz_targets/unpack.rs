#![no_main]
//! `tern_unpack` on arbitrary bytes: any status is fine, a crash or a panic status is not.

use libfuzzer_sys::fuzz_target;
use tern::ffi::*;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let Some(c) = common::case(input) else { return };
    let n = (c.rows * c.cols) as usize;
    let mut ternary = vec![0i8; n];
    let mut scales = vec![0f32; n / 256 + 1];
    let st = unsafe {
        tern_unpack(&c.layout, c.data.as_ptr().cast(), c.data.len(), c.rows, c.cols, ternary.as_mut_ptr(), scales.as_mut_ptr(), scales.len())
    };
    assert_ne!(st, tern_status::TERN_STATUS_PANIC);
    if st == tern_status::TERN_STATUS_OK {
        assert!(ternary.iter().all(|v| (-1..=1).contains(v)));
    }
});
