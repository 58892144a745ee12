#![no_main]
//! `tern_matrix_create` on arbitrary bytes, then one GEMM when it succeeds: any status is fine,
//! a crash or a panic status is not.

use libfuzzer_sys::fuzz_target;
use tern::ffi::*;

#[path = "common.rs"]
mod common;

fuzz_target!(|input: &[u8]| {
    let Some(c) = common::case(input) else { return };
    let mut m = std::ptr::null_mut();
    let st = unsafe { tern_matrix_create(std::ptr::null(), &c.layout, c.data.as_ptr().cast(), c.data.len(), c.rows, c.cols, &mut m) };
    assert_ne!(st, tern_status::TERN_STATUS_PANIC);
    if st == tern_status::TERN_STATUS_OK {
        let x = vec![1.0f32; c.cols as usize];
        let mut y = vec![0f32; c.rows as usize];
        let st = unsafe { tern_gemm(std::ptr::null(), m, x.as_ptr(), 1, 0, y.as_mut_ptr(), 0, std::ptr::null()) };
        assert_eq!(st, tern_status::TERN_STATUS_OK);
        unsafe { tern_matrix_destroy(m) };
    }
});
