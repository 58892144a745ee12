//! The error-path contract of every exported C function that returns `tern_status`
//! (include/tern.h): for each function, one module named after it whose tests feed it NULL for
//! each pointer, short buffers, bad shapes, overflowing sizes, bad enum values, bad
//! `struct_size`s and overlapping buffers, and check for every failing call that
//!   - the status is the expected one,
//!   - `tern_last_error_message()` is non-empty and names the offending argument,
//!   - every output buffer (pre-filled with a sentinel byte) is untouched, and handle
//!     out-params are NULL.
//!
//! `header_and_list_agree_and_every_function_has_error_cases` keeps this file honest: it parses
//! the header and fails when a fallible function is missing from `FALLIBLE`, or a listed one
//! has no module here with at least one `fails!` case. It prints the coverage count.
//!
//! The cases state the contract of include/tern.h and shared/design/c_abi.md §2.4/§2.8; a case
//! that fails is a defect in the library and is not adjusted to today's behaviour.

mod common;

use std::ffi::{CStr, CString, c_char, c_void};
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::ptr::{null, null_mut};
use std::sync::OnceLock;

use common::{Rng, i2s, layout};
use tern::ffi::*;

use tern_status::*;

/// Every exported function that returns `tern_status`, in header order.
const FALLIBLE: &[&str] = &[
    "tern_context_create",
    "tern_cuda_matrix_upload",
    "tern_cuda_gemm",
    "tern_cuda_gemm_ex",
    "tern_gguf_open",
    "tern_gguf_open_with_options",
    "tern_gguf_info",
    "tern_gguf_tensor_count",
    "tern_gguf_tensor_info",
    "tern_gguf_find_tensor",
    "tern_gguf_kv_count",
    "tern_gguf_kv_info",
    "tern_gguf_find_kv",
    "tern_gguf_get_string",
    "tern_gguf_get_int",
    "tern_gguf_get_float",
    "tern_gguf_get_array_string",
    "tern_gguf_get_array_int",
    "tern_matrix_from_gguf",
    "tern_matrix_from_gguf_layout",
    "tern_gguf_tensor_size",
    "tern_gguf_writer_create",
    "tern_gguf_writer_add_string",
    "tern_gguf_writer_add_int",
    "tern_gguf_writer_add_float",
    "tern_gguf_writer_add_array",
    "tern_gguf_writer_add_string_array",
    "tern_gguf_writer_add_tensor",
    "tern_gguf_writer_add_ternary",
    "tern_gguf_writer_write",
    "tern_matrix_create",
    "tern_matrix_from_f32",
    "tern_matrix_info",
    "tern_gemm",
    "tern_gemm_i8",
    "tern_packed_size",
    "tern_quantize",
    "tern_pack",
    "tern_unpack",
    "tern_dequantize",
    "tern_quantize_activations",
    "tern_convert",
    "tern_ternarize",
];

const SOURCE: &str = include_str!("ffi_contract.rs");

/// The names of the functions `header` declares as returning `tern_status`.
fn fallible_in_header(header: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (at, _) in header.match_indices("tern_status ") {
        let rest = header[at + "tern_status ".len()..].trim_start();
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with("tern_") && rest[name.len()..].trim_start().starts_with('(') {
            out.push(name);
        }
    }
    out
}

/// The body of `mod <name> { ... }` in this file, if there is one.
fn module_body(name: &str) -> Option<&'static str> {
    let start = SOURCE.find(&format!("\nmod {name} {{\n"))?;
    let body = &SOURCE[start + 1..];
    let end = body[1..].find("\nmod ").map_or(body.len(), |e| e + 1);
    Some(&body[..end])
}

#[test]
fn header_and_list_agree_and_every_function_has_error_cases() {
    let header =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/tern.h")).unwrap();
    let declared = fallible_in_header(&header);
    assert!(declared.len() >= 40, "header parse found only {declared:?}");
    for name in &declared {
        assert!(
            FALLIBLE.contains(&name.as_str()),
            "{name} returns tern_status but is not in FALLIBLE: add it and a `mod {name}` with its error cases"
        );
    }
    for name in FALLIBLE {
        assert!(
            declared.iter().any(|d| d == name),
            "{name} is in FALLIBLE but the header does not declare it as returning tern_status"
        );
    }
    let mut covered = 0;
    let mut table = String::new();
    for name in FALLIBLE {
        let cases = module_body(name).map_or(0, |body| {
            // A case counts when it calls the module's own function.
            body.split("fails!(")
                .skip(1)
                .filter(|case| case.contains(&format!("{name}(")))
                .count()
        });
        table.push_str(&format!("  {name:36} {cases:4} fails! sites\n"));
        if cases > 0 {
            covered += 1;
        }
    }
    println!(
        "{table}fallible functions with tested error paths: {covered} / {}",
        declared.len()
    );
    assert_eq!(
        covered,
        FALLIBLE.len(),
        "every fallible function needs a `mod <name>` with at least one fails!(...) case calling it:\n{table}"
    );
}

#[test]
fn the_header_parser_finds_multi_line_and_one_line_declarations() {
    let h = "/** returns `tern_status` (0 = TERN_STATUS_OK) */\nenum tern_status\n {\n\
             typedef enum tern_status tern_status;\nTERN_NODISCARD tern_status tern_a(int x);\n\
             TERN_NODISCARD\ntern_status tern_b(const int *p,\n int q);\n\
             const char *tern_status_name(int32_t status);\n";
    assert_eq!(fallible_in_header(h), ["tern_a", "tern_b"]);
}

// ---------------------------------------------------------------------------------------------
// Harness

/// The byte every output buffer is filled with before a call that must fail.
const SENTINEL: u8 = 0x5A;

/// Types whose every byte pattern is a valid value, so they can be filled with the sentinel.
///
/// # Safety
/// Implementors must be plain data (no references, no invariants).
unsafe trait Plain: Copy {}
macro_rules! plain {
    ($($t:ty),*) => { $(unsafe impl Plain for $t {})* };
}
plain!(u8, i8, i32, u32, i64, u64, usize, f32, f64, *const c_char);

/// An output a failing call must not touch.
trait Out {
    /// The bytes the sentinel covers.
    fn bytes(&mut self) -> &mut [u8];
    fn fill(&mut self) {
        self.bytes().fill(SENTINEL);
    }
    fn untouched(&mut self) -> bool {
        self.bytes().iter().all(|&b| b == SENTINEL)
    }
}

fn bytes_of<T: ?Sized>(v: &mut T) -> &mut [u8] {
    // SAFETY: every type viewed here is plain data (`Plain`, `MaybeUninit` of an output struct,
    // or an options struct of integers and pointers), so any bytes may be read and written.
    unsafe { std::slice::from_raw_parts_mut(v as *mut T as *mut u8, size_of_val(v)) }
}

impl<T: Plain> Out for T {
    fn bytes(&mut self) -> &mut [u8] {
        bytes_of(self)
    }
}
impl<T: Plain> Out for Vec<T> {
    fn bytes(&mut self) -> &mut [u8] {
        bytes_of(&mut self[..])
    }
}
impl<T: Plain, const N: usize> Out for [T; N] {
    fn bytes(&mut self) -> &mut [u8] {
        bytes_of(&mut self[..])
    }
}

/// A buffer that is both read and written by a call (overlapping arguments) and must hold
/// valid input, so it cannot be filled with the sentinel: `fill` snapshots it instead, and
/// `untouched` compares with the snapshot.
struct Keep {
    ptr: *const u8,
    len: usize,
    before: Vec<u8>,
}

impl Keep {
    fn new<T: Plain>(v: &[T]) -> Self {
        Keep {
            ptr: v.as_ptr().cast(),
            len: size_of_val(v),
            before: Vec::new(),
        }
    }

    fn now(&self) -> &[u8] {
        // SAFETY: `ptr` covers `len` bytes of a buffer that outlives the check.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Out for Keep {
    fn bytes(&mut self) -> &mut [u8] {
        unreachable!("Keep overrides fill and untouched")
    }
    fn fill(&mut self) {
        self.before = self.now().to_vec();
    }
    fn untouched(&mut self) -> bool {
        self.now() == self.before
    }
}

/// An output struct that starts with `struct_size`: the caller's `struct_size` is kept, the
/// rest gets the sentinel. Held as bytes (`MaybeUninit`), since a sentinel `bool` field is not
/// a valid Rust `bool`.
struct Versioned<T>(MaybeUninit<T>);

impl<T> Versioned<T> {
    fn ptr(&mut self) -> *mut T {
        self.0.as_mut_ptr()
    }
}

macro_rules! versioned_out {
    ($($t:ty),*) => {$(
        impl Out for Versioned<$t> {
            fn bytes(&mut self) -> &mut [u8] {
                &mut bytes_of(&mut self.0)[size_of::<u32>()..]
            }
        }
    )*};
}
versioned_out!(
    tern_quant_stats,
    tern_matrix_properties,
    tern_gguf_properties,
    tern_gguf_tensor,
    tern_gguf_kv
);

/// An output struct with `struct_size` set to `size` and the sentinel everywhere else.
fn out_struct<T>(size: u32) -> Versioned<T> {
    let mut v: Versioned<T> = Versioned(MaybeUninit::zeroed());
    bytes_of(&mut v.0).fill(SENTINEL);
    bytes_of(&mut v.0)[..4].copy_from_slice(&size.to_ne_bytes());
    v
}

fn full<T>() -> u32 {
    size_of::<T>() as u32
}

/// The thread's last error message ("" when there is none).
fn message() -> String {
    let p = tern_last_error_message();
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// Whether `msg` contains `needle` as a whole word (not inside a longer identifier), so that
/// "x" matches "x is NULL" but not "max".
fn mentions(msg: &str, needle: &str) -> bool {
    let ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    msg.match_indices(needle).any(|(at, _)| {
        let before = msg[..at].chars().next_back();
        let after = msg[at + needle.len()..].chars().next();
        let edge_ok = |c: Option<char>, n: Option<char>| {
            // A needle that itself starts/ends with a non-identifier char needs no boundary.
            !n.is_some_and(ident) || !c.is_some_and(ident)
        };
        edge_ok(before, needle.chars().next()) && edge_ok(after, needle.chars().next_back())
    })
}

/// The cases of one test; `contract` reports every failed case at the end, not just the first.
#[derive(Default)]
struct Cases {
    run: usize,
    failures: Vec<String>,
}

impl Cases {
    /// Records one failing call: `problems` empty means it behaved.
    fn record(&mut self, line: u32, call: &str, problems: Vec<String>, msg: &str) {
        self.run += 1;
        if !problems.is_empty() {
            self.failures.push(format!(
                "  line {line}: {call}\n    {}\n    message: {msg:?}",
                problems.join("; ")
            ));
        }
    }

    fn check(&mut self, line: u32, what: &str, ok: bool) {
        self.record(
            line,
            what,
            if ok { vec![] } else { vec!["is false".into()] },
            "",
        );
    }
}

fn contract(body: impl FnOnce(&mut Cases)) {
    let mut c = Cases::default();
    body(&mut c);
    assert!(c.run > 0, "a contract test must run cases");
    println!("{} cases run", c.run);
    assert!(
        c.failures.is_empty(),
        "{} of {} cases failed:\n{}",
        c.failures.len(),
        c.run,
        c.failures.join("\n")
    );
}

/// What is wrong with a failing call's status and message.
fn failure_problems(
    got: tern_status,
    want: tern_status,
    msg: &str,
    needles: &[&str],
) -> Vec<String> {
    let mut p = Vec::new();
    if got != want {
        p.push(format!("status {got:?}, expected {want:?}"));
    }
    if got == TERN_STATUS_OK {
        return p;
    }
    if msg.is_empty() {
        p.push("no last-error message".into());
    }
    for n in needles {
        if !mentions(msg, n) {
            p.push(format!("message does not mention {n:?}"));
        }
    }
    p
}

/// `fails!(c, call => STATUS, [needles], out: [outputs], handle: [handle out-params])`: fills
/// each output with the sentinel and sets each handle to a non-NULL garbage value, makes the
/// (unsafe) call, then records whether the status, the message, the outputs and the handles are
/// as the contract says.
macro_rules! fails {
    ($c:expr, $call:expr => $want:expr, $needles:expr
     $(, out: [$($o:expr),* $(,)?])? $(, handle: [$($h:expr),* $(,)?])? $(,)?) => {{
        $($( Out::fill(&mut $o); )*)?
        $($( $h = std::ptr::dangling_mut(); )*)?
        let got = unsafe { $call };
        let msg = message();
        #[allow(unused_mut)]
        let mut problems = failure_problems(got, $want, &msg, &$needles);
        $($(
            if !Out::untouched(&mut $o) {
                problems.push(format!("output `{}` was written", stringify!($o)));
            }
        )*)?
        $($(
            if !$h.is_null() {
                problems.push(format!("handle `{}` was not set to NULL", stringify!($h)));
            }
        )*)?
        $c.record(line!(), stringify!($call), problems, &msg);
    }};
}

/// A call that must succeed (setup inside a contract test).
#[track_caller]
fn ok(st: tern_status) {
    assert_eq!(st, TERN_STATUS_OK, "setup call failed: {}", message());
}

/// An aligned value followed by 64 bytes: a versioned struct whose `struct_size` claims more
/// than the library knows reads into `tail`.
#[repr(C)]
struct Padded<T> {
    v: T,
    tail: [u8; 64],
}

/// `v` with `struct_size` set to `size`; for a size beyond `T`, the bytes after `T` hold a
/// non-zero byte, i.e. a field of a newer header set to a value this library cannot honour.
fn padded<T>(mut v: T, size: u32) -> Box<Padded<T>> {
    bytes_of(&mut v)[..4].copy_from_slice(&size.to_ne_bytes());
    let mut tail = [0u8; 64];
    tail[3] = 1;
    Box::new(Padded { v, tail })
}

/// The `struct_size` values an options struct must refuse, with the status: zero, too small,
/// a newer header's size whose unknown fields are set (non-zero bytes after `T`), and a garbage
/// size beyond `TERN_STRUCT_SIZE_MAX`, refused before anything past `T` is read.
fn bad_struct_sizes<T>() -> [(u32, tern_status); 5] {
    let full = size_of::<T>() as u32;
    [
        (0, TERN_STATUS_INVALID_ARGUMENT),
        (4, TERN_STATUS_INVALID_ARGUMENT),
        (full - 1, TERN_STATUS_INVALID_ARGUMENT),
        (full + 8, TERN_STATUS_UNSUPPORTED),
        (0xDEAD_BEEF, TERN_STATUS_INVALID_ARGUMENT),
    ]
}

/// A pointer one byte past an 8-aligned address: misaligned for every type wider than a byte.
/// The library must check alignment before it dereferences, so nothing is read or written
/// through it; it points into read-only memory, so a store through it crashes loudly.
fn misaligned<T>() -> *mut T {
    static STORE: [u64; 64] = [0; 64];
    unsafe { (STORE.as_ptr() as *mut u8).add(1) as *mut T }
}

/// Calls `call` with a handle out-param that is writable but misaligned: the call must refuse
/// it (`want`, a message naming `needle`) and store nothing there, not even NULL (a misaligned
/// pointer store is undefined behaviour). A handle it creates anyway is freed with `free`.
fn misaligned_handle<T>(
    c: &mut Cases,
    line: u32,
    what: &str,
    (want, needle): (tern_status, &str),
    call: impl FnOnce(*mut *mut T) -> tern_status,
    free: unsafe extern "C" fn(*mut T),
) {
    let mut buf = [SENTINEL; 2 * size_of::<usize>()];
    let out = unsafe { buf.as_mut_ptr().add(1) } as *mut *mut T;
    let got = call(out);
    let msg = message();
    let mut problems = failure_problems(got, want, &msg, &[needle]);
    if !buf.iter().all(|&b| b == SENTINEL) {
        problems.push("the misaligned out-param was written".into());
    }
    if got == TERN_STATUS_OK {
        unsafe { free(out.read_unaligned()) };
    }
    c.record(line, what, problems, &msg);
}

/// The expectation for a misaligned `out` of a CPU function.
const MISALIGNED_OUT: (tern_status, &str) = (TERN_STATUS_MISALIGNED, "out");

// ---------------------------------------------------------------------------------------------
// Shared inputs: an 8 x 256 I2_S matrix.

const ROWS: i64 = 8;
const COLS: i64 = 256;
const N: usize = (ROWS * COLS) as usize;
/// Packed I2_S bytes of ROWS x COLS: codes plus the 32-byte scale block.
const PACKED: usize = N / 4 + 32;

fn weights() -> Vec<f32> {
    let mut rng = Rng::new(11);
    (0..N).map(|_| rng.uniform() * 0.05).collect()
}

fn ternary() -> Vec<i8> {
    let mut rng = Rng::new(5);
    (0..N).map(|_| rng.below(3) as i8 - 1).collect()
}

/// `ternary()` packed as I2_S with scale 0.5.
fn packed() -> Vec<u8> {
    let mut out = vec![0u8; PACKED];
    ok(unsafe {
        tern_pack(
            &i2s(0),
            ternary().as_ptr(),
            [0.5f32].as_ptr(),
            1,
            ROWS,
            COLS,
            out.as_mut_ptr().cast(),
            out.len(),
        )
    });
    out
}

/// `packed()` with a code 3 (invalid in I2_S) in byte 3.
fn corrupt_packed() -> Vec<u8> {
    let mut p = packed();
    p[3] |= 0b11;
    p
}

fn matrix() -> *mut tern_matrix {
    let p = packed();
    let mut m = null_mut();
    ok(unsafe {
        tern_matrix_create(
            null(),
            &i2s(0),
            p.as_ptr().cast(),
            p.len(),
            ROWS,
            COLS,
            &mut m,
        )
    });
    m
}

/// A shape every (rows, cols) function must refuse for I2_S x86, and a word of its message.
const BAD_SHAPES: &[(i64, i64, &str)] = &[
    (0, COLS, "rows"),
    (-1, COLS, "rows"),
    (i64::MIN, COLS, "rows"),
    (ROWS, 0, "cols"),
    (ROWS, -128, "cols"),
    (ROWS, 200, "cols"),          // not a multiple of the 128-element block
    (ROWS, 64, "cols"),           // a multiple of the ARM block only
    (1, (1 << 22) + 128, "cols"), // above the largest supported row length
    (i64::MAX, 128, "rows"),      // rows·cols overflows u64
    (1 << 42, 1 << 20, "rows"),   // rows·cols fits u64 but not the address space
];

/// A layout every layout-taking function must refuse, the status, and a word of the message.
struct BadLayout {
    layout: Box<Padded<tern_layout>>,
    status: tern_status,
    needle: &'static str,
}

impl BadLayout {
    fn ptr(&self) -> *const tern_layout {
        &self.layout.v
    }
}

fn bad_layouts() -> Vec<BadLayout> {
    let l = |format: i32, variant: u32| layout(format, variant);
    let tiled = |format: i32, r: u32, k: u32, s: u32| tern_layout {
        tile_rows: r,
        tile_k: k,
        simd_rows: s,
        ..layout(format, 0)
    };
    let full = full::<tern_layout>();
    let mut v: Vec<(tern_layout, u32, tern_status, &str)> = bad_struct_sizes::<tern_layout>()
        .into_iter()
        .map(|(size, st)| (i2s(0), size, st, "struct_size"))
        .collect();
    v.extend([
        (l(0, 0), full, TERN_STATUS_INVALID_ARGUMENT, "format"),
        (l(-1, 0), full, TERN_STATUS_INVALID_ARGUMENT, "format"),
        (l(8, 0), full, TERN_STATUS_INVALID_ARGUMENT, "format"),
        (l(i32::MAX, 0), full, TERN_STATUS_INVALID_ARGUMENT, "format"),
        (i2s(2), full, TERN_STATUS_INVALID_ARGUMENT, "variant"),
        (i2s(u32::MAX), full, TERN_STATUS_INVALID_ARGUMENT, "variant"),
        (l(5, 1), full, TERN_STATUS_INVALID_ARGUMENT, "variant"),
        (l(6, 1), full, TERN_STATUS_INVALID_ARGUMENT, "variant"),
        (l(7, 2), full, TERN_STATUS_INVALID_ARGUMENT, "variant"),
        (
            tiled(6, 32, 64, 8),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "tile_rows",
        ),
        (
            tiled(7, 0, 0, 4),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "simd_rows",
        ),
        (
            tiled(1, 32, 0, 0),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "tile_rows",
        ),
        (
            tiled(1, 0, 64, 0),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "tile_k",
        ),
        (
            tiled(4, 0, 0, 32),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "simd_rows",
        ),
        (
            tiled(2, 32, 0, 0),
            full,
            TERN_STATUS_INVALID_ARGUMENT,
            "tile_k",
        ),
    ]);
    v.into_iter()
        .map(|(layout, size, status, needle)| BadLayout {
            layout: padded(layout, size),
            status,
            needle,
        })
        .collect()
}

/// Quantization options every I2_S quantizer must refuse (all INVALID_ARGUMENT but the garbage
/// struct_size), and a word of the message.
fn bad_quant_options() -> Vec<(Box<Padded<tern_quant_options>>, tern_status, &'static str)> {
    let o = |method: i32, group_size: u32, eps: f32| tern_quant_options {
        struct_size: full::<tern_quant_options>(),
        method,
        group_size,
        eps,
    };
    let full = full::<tern_quant_options>();
    let mut v: Vec<_> = bad_struct_sizes::<tern_quant_options>()
        .into_iter()
        .map(|(size, st)| (padded(o(0, 0, 1e-5), size), st, "struct_size"))
        .collect();
    let inv = TERN_STATUS_INVALID_ARGUMENT;
    for (opts, needle) in [
        (o(9, 0, 1e-5), "method"),
        (o(-1, 0, 1e-5), "method"),
        (o(i32::MIN, 0, 1e-5), "method"),
        (o(2, 0, 1e-5), "TERN_QUANT_ABSMEAN_ROW"),
        (o(3, 256, 1e-5), "TERN_QUANT_ABSMEAN_GROUP"),
        (o(4, 0, 1e-5), "TERN_QUANT_GGML_REF"),
        (o(0, 64, 1e-5), "group_size"),
        (o(0, 0, 0.0), "eps"),
        (o(0, 0, -1e-5), "eps"),
        (o(0, 0, f32::NAN), "eps"),
        (o(0, 0, f32::INFINITY), "eps"),
    ] {
        v.push((padded(opts, full), inv, needle));
    }
    v
}

fn stats_out(size: u32) -> Versioned<tern_quant_stats> {
    out_struct(size)
}

/// `gemm_options` as a padded box with a given struct_size.
fn gemm_opts(compat: i32, begin: i64, end: i64, bias: *const f32) -> tern_gemm_options {
    tern_gemm_options {
        struct_size: full::<tern_gemm_options>(),
        compat,
        row_begin: begin,
        row_end: end,
        bias,
    }
}

fn cs(s: &str) -> CString {
    CString::new(s).unwrap()
}

/// A scratch directory under Cargo's per-target temp dir, emptied once per run.
fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ffi-contract");
        // A missing folder is fine; anything else fails in create_dir_all below.
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    })
    .join(name)
}

fn cpath(p: &Path) -> CString {
    cs(p.to_str().unwrap())
}

/// A non-UTF-8 C string.
const NOT_UTF8: &CStr = c"\xff\xfe";

// ---------------------------------------------------------------------------------------------
// Contexts

mod tern_context_create {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let mut ctx: *mut tern_context;
            fails!(c, tern_context_create(null(), null_mut()) => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_context_create(misaligned(), &mut ctx)
                => TERN_STATUS_MISALIGNED, ["opts"], handle: [ctx]);
            let base = tern_context_options {
                struct_size: full::<tern_context_options>(),
                max_isa: 0,
                n_threads: 1,
                spin_us: 100,
            };
            for (size, st) in bad_struct_sizes::<tern_context_options>() {
                let o = padded(base, size);
                fails!(c, tern_context_create(&o.v, &mut ctx)
                    => st, ["struct_size"], handle: [ctx]);
            }
            let foreign = if cfg!(target_arch = "x86_64") {
                tern_isa::TERN_ISA_NEON
            } else {
                tern_isa::TERN_ISA_AVX2
            } as i32;
            for (isa, st) in [
                (-1, inv),
                (10, inv),
                (99, inv),
                (i32::MAX, inv),
                (i32::MIN, inv),
                (foreign, TERN_STATUS_UNSUPPORTED),
            ] {
                let o = tern_context_options {
                    max_isa: isa,
                    ..base
                };
                fails!(c, tern_context_create(&o, &mut ctx) => st, ["max_isa"], handle: [ctx]);
            }
            for n in [-1, 1025, i32::MAX, i32::MIN] {
                let o = tern_context_options {
                    n_threads: n,
                    ..base
                };
                fails!(c, tern_context_create(&o, &mut ctx) => inv, ["n_threads"], handle: [ctx]);
            }
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            misaligned_handle(
                c,
                line!(),
                "tern_context_create(NULL, misaligned)",
                MISALIGNED_OUT,
                |out| unsafe { tern_context_create(null(), out) },
                tern_context_destroy,
            );
        });
    }

    /// `TERN_STRUCT_SIZE_MAX` (the header's bound) is accepted with a zero tail; one byte more
    /// is refused as garbage before the tail is read.
    #[test]
    fn struct_size_bound() {
        let header =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/include/tern.h"))
                .unwrap();
        let max: usize = header
            .lines()
            .find_map(|l| l.strip_prefix("#define TERN_STRUCT_SIZE_MAX "))
            .expect("tern.h defines TERN_STRUCT_SIZE_MAX")
            .trim()
            .parse()
            .unwrap();
        // u64 words: aligned for the struct, zero beyond it.
        let mut buf = vec![0u64; max.div_ceil(8) + 1];
        let opts = buf.as_mut_ptr().cast::<tern_context_options>();
        let base = tern_context_options {
            struct_size: max as u32,
            max_isa: 0,
            n_threads: 1,
            spin_us: 100,
        };
        unsafe { opts.write(base) };
        let mut ctx = null_mut();
        ok(unsafe { tern_context_create(opts, &mut ctx) });
        unsafe { tern_context_destroy(ctx) };
        unsafe {
            opts.write(tern_context_options {
                struct_size: max as u32 + 1,
                ..base
            })
        };
        contract(|c| {
            let mut ctx: *mut tern_context;
            fails!(c, tern_context_create(opts, &mut ctx)
                => TERN_STATUS_INVALID_ARGUMENT, ["struct_size"], handle: [ctx]);
        });
    }

    /// An options struct with a garbage `struct_size` (say, a struct the caller forgot to
    /// initialize) followed by zero bytes up to an unmapped page: the library must refuse the
    /// size instead of scanning `struct_size` bytes for a non-zero one.
    #[test]
    fn garbage_struct_size_before_unmapped_memory() {
        // Two mapped pages, the second made inaccessible.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        let base = unsafe { libc::mmap(null_mut(), 2 * page, prot, flags, -1, 0) };
        assert_ne!(base, libc::MAP_FAILED);
        let guard = unsafe { base.cast::<u8>().add(page) };
        assert_eq!(
            unsafe { libc::mprotect(guard.cast(), page, libc::PROT_NONE) },
            0
        );
        // The struct ends exactly where the inaccessible page starts.
        let opts =
            unsafe { guard.sub(size_of::<tern_context_options>()) }.cast::<tern_context_options>();
        unsafe {
            opts.write(tern_context_options {
                struct_size: u32::MAX,
                max_isa: 0,
                n_threads: 1,
                spin_us: 100,
            })
        };
        contract(|c| {
            let mut ctx: *mut tern_context;
            fails!(c, tern_context_create(opts, &mut ctx)
                => TERN_STATUS_INVALID_ARGUMENT, ["struct_size"], handle: [ctx]);
        });
        unsafe { libc::munmap(base, 2 * page) };
    }
}

// ---------------------------------------------------------------------------------------------
// Packed weights

mod tern_packed_size {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let mut out = 0usize;
            let null_ptr = TERN_STATUS_NULL_POINTER;
            fails!(c, tern_packed_size(null(), ROWS, COLS, &mut out)
                => null_ptr, ["layout"], out: [out]);
            fails!(c, tern_packed_size(&l, ROWS, COLS, null_mut()) => null_ptr, ["out"]);
            fails!(c, tern_packed_size(misaligned(), ROWS, COLS, &mut out)
                => TERN_STATUS_MISALIGNED, ["layout"], out: [out]);
            fails!(c, tern_packed_size(&l, ROWS, COLS, misaligned())
                => TERN_STATUS_MISALIGNED, ["out"]);
            for b in bad_layouts() {
                fails!(c, tern_packed_size(b.ptr(), ROWS, COLS, &mut out)
                    => b.status, [b.needle], out: [out]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_packed_size(&l, r, k, &mut out)
                    => TERN_STATUS_INVALID_ARGUMENT, [needle], out: [out]);
            }
            // TQ2_0 needs cols % 256 == 0; TL2 with a tiling that does not divide the shape.
            let tq2 = layout(tern_format::TERN_FORMAT_TQ2_0 as i32, 0);
            fails!(c, tern_packed_size(&tq2, ROWS, 128, &mut out)
                => TERN_STATUS_INVALID_ARGUMENT, ["cols"], out: [out]);
            // Q2_0 / Q1_0 need whole blocks of 64 / 128 per row.
            let q2 = layout(tern_format::TERN_FORMAT_Q2_0 as i32, 0);
            fails!(c, tern_packed_size(&q2, ROWS, 96, &mut out)
                => TERN_STATUS_INVALID_ARGUMENT, ["cols", "64"], out: [out]);
            let q1 = layout(tern_format::TERN_FORMAT_Q1_0 as i32, 0);
            fails!(c, tern_packed_size(&q1, ROWS, 64, &mut out)
                => TERN_STATUS_INVALID_ARGUMENT, ["cols", "128"], out: [out]);
        });
    }
}

mod tern_quantize {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let w = weights();
            let mut dst = vec![0u8; PACKED];
            let mut stats = stats_out(full::<tern_quant_stats>());
            let d = dst.as_mut_ptr() as *mut c_void;
            let sp = stats.ptr();
            let wp = w.as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            fails!(c, tern_quantize(null(), null(), wp, ROWS, COLS, null(), d, PACKED, sp)
                => nul, ["layout"], out: [dst, stats]);
            fails!(c, tern_quantize(null(), &l, null(), ROWS, COLS, null(), d, PACKED, sp)
                => nul, ["src"], out: [dst, stats]);
            fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, null(), null_mut(), PACKED, sp)
                => nul, ["dst"], out: [stats]);
            fails!(c, tern_quantize(misaligned(), &l, wp, ROWS, COLS, null(), d, PACKED, sp)
                => mis, ["ctx"], out: [dst, stats]);
            fails!(c, tern_quantize(null(), &l, misaligned(), ROWS, COLS, null(), d, PACKED, sp)
                => mis, ["src"], out: [dst, stats]);
            fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, misaligned(), d, PACKED, sp)
                => mis, ["opts"], out: [dst, stats]);
            fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, null(), d, PACKED, misaligned())
                => mis, ["stats"], out: [dst]);
            for len in [0, 1, PACKED - 1] {
                fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, null(), d, len, sp)
                    => TERN_STATUS_BUFFER_TOO_SMALL, ["dst_len", "544"], out: [dst, stats]);
            }
            for b in bad_layouts() {
                fails!(c, tern_quantize(null(), b.ptr(), wp, ROWS, COLS, null(), d, PACKED, sp)
                    => b.status, [b.needle], out: [dst, stats]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_quantize(null(), &l, wp, r, k, null(), d, PACKED, sp)
                    => TERN_STATUS_INVALID_ARGUMENT, [needle], out: [dst, stats]);
            }
            for (o, st, needle) in bad_quant_options() {
                fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, &o.v, d, PACKED, sp)
                    => st, [needle], out: [dst, stats]);
            }
            for size in [0, 4, full::<tern_quant_stats>() - 1] {
                let mut small = stats_out(size);
                fails!(c, tern_quantize(null(), &l, wp, ROWS, COLS, null(), d, PACKED, small.ptr())
                    => TERN_STATUS_INVALID_ARGUMENT, ["stats", "struct_size"], out: [dst, small]);
            }
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut wb = w.clone();
                wb[100] = bad;
                fails!(c, tern_quantize(null(), &l, wb.as_ptr(), ROWS, COLS, null(), d, PACKED, sp)
                    => TERN_STATUS_INVALID_ARGUMENT, ["src[100]"], out: [dst, stats]);
            }
            // The same buffers and pointers work when every argument is right.
            ok(unsafe { tern_quantize(null(), &l, wp, ROWS, COLS, null(), d, PACKED, sp) });
        });
    }

    /// `dst` overlapping `src`: refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let l = i2s(0);
            // One buffer holding src (N floats); dst starts inside it.
            let mut buf = vec![0f32; N + PACKED];
            let src = buf.as_ptr();
            let dst = unsafe { buf.as_mut_ptr().add(N / 2) } as *mut c_void;
            fails!(c, tern_quantize(null(), &l, src, ROWS, COLS, null(), dst, PACKED, null_mut())
                => TERN_STATUS_INVALID_ARGUMENT, ["src", "dst"], out: [buf]);
        });
    }
}

mod tern_pack {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let t = ternary();
            let tp = t.as_ptr();
            let s = [0.5f32];
            let sp = s.as_ptr();
            let mut dst = vec![0u8; PACKED];
            let d = dst.as_mut_ptr() as *mut c_void;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_pack(null(), tp, sp, 1, ROWS, COLS, d, PACKED)
                => nul, ["layout"], out: [dst]);
            fails!(c, tern_pack(&l, null(), sp, 1, ROWS, COLS, d, PACKED)
                => nul, ["ternary"], out: [dst]);
            fails!(c, tern_pack(&l, tp, null(), 1, ROWS, COLS, d, PACKED)
                => nul, ["scales"], out: [dst]);
            fails!(c, tern_pack(&l, tp, sp, 1, ROWS, COLS, null_mut(), PACKED) => nul, ["dst"]);
            fails!(c, tern_pack(&l, tp, misaligned(), 1, ROWS, COLS, d, PACKED)
                => TERN_STATUS_MISALIGNED, ["scales"], out: [dst]);
            fails!(c, tern_pack(misaligned(), tp, sp, 1, ROWS, COLS, d, PACKED)
                => TERN_STATUS_MISALIGNED, ["layout"], out: [dst]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_pack(&l, tp, sp, 1, ROWS, COLS, d, len)
                    => TERN_STATUS_BUFFER_TOO_SMALL, ["dst_len", "544"], out: [dst]);
            }
            let two = [0.5f32; 2];
            fails!(c, tern_pack(&l, tp, sp, 0, ROWS, COLS, d, PACKED)
                => inv, ["n_scales"], out: [dst]);
            fails!(c, tern_pack(&l, tp, two.as_ptr(), 2, ROWS, COLS, d, PACKED)
                => inv, ["n_scales"], out: [dst]);
            for bad in [-0.5f32, f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let b = [bad];
                fails!(c, tern_pack(&l, tp, b.as_ptr(), 1, ROWS, COLS, d, PACKED)
                    => inv, ["scales[0]"], out: [dst]);
            }
            for bad in [2i8, -2, i8::MAX, i8::MIN] {
                let mut tb = t.clone();
                tb[N - 1] = bad;
                fails!(c, tern_pack(&l, tb.as_ptr(), sp, 1, ROWS, COLS, d, PACKED)
                    => inv, [&*format!("ternary[{}]", N - 1)], out: [dst]);
            }
            for b in bad_layouts() {
                fails!(c, tern_pack(b.ptr(), tp, sp, 1, ROWS, COLS, d, PACKED)
                    => b.status, [b.needle], out: [dst]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_pack(&l, tp, sp, 1, r, k, d, PACKED) => inv, [needle], out: [dst]);
            }
        });
    }

    /// `dst` overlapping `ternary` or `scales`: refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let l = i2s(0);
            let s = [0.5f32];
            // Zero bytes are valid ternary values, so this buffer keeps its contents.
            let mut buf = vec![0u8; N + PACKED];
            let t = buf.as_ptr() as *const i8;
            let d = unsafe { buf.as_mut_ptr().add(N / 2) } as *mut c_void;
            let mut keep = Keep::new(&buf);
            fails!(c, tern_pack(&l, t, s.as_ptr(), 1, ROWS, COLS, d, PACKED)
                => TERN_STATUS_INVALID_ARGUMENT, ["ternary", "dst"], out: [keep]);
            let mut fbuf = vec![0.5f32; PACKED];
            let t = ternary();
            let sp = fbuf.as_ptr();
            let d = fbuf.as_mut_ptr() as *mut c_void;
            fails!(c, tern_pack(&l, t.as_ptr(), sp, 1, ROWS, COLS, d, PACKED)
                => TERN_STATUS_INVALID_ARGUMENT, ["scales", "dst"], out: [fbuf]);
        });
    }
}

mod tern_unpack {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let p = packed();
            let pp = p.as_ptr() as *const c_void;
            let mut t = vec![0i8; N];
            let mut s = [0f32; 2];
            let tp = t.as_mut_ptr();
            let sp = s.as_mut_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let small = TERN_STATUS_BUFFER_TOO_SMALL;
            fails!(c, tern_unpack(null(), pp, PACKED, ROWS, COLS, tp, sp, 1)
                => nul, ["layout"], out: [t, s]);
            fails!(c, tern_unpack(&l, null(), PACKED, ROWS, COLS, tp, sp, 1)
                => nul, ["src"], out: [t, s]);
            fails!(c, tern_unpack(&l, pp, PACKED, ROWS, COLS, null_mut(), sp, 1)
                => nul, ["ternary"], out: [s]);
            fails!(c, tern_unpack(&l, pp, PACKED, ROWS, COLS, tp, null_mut(), 1)
                => nul, ["scales"], out: [t]);
            fails!(c, tern_unpack(&l, pp, PACKED, ROWS, COLS, tp, misaligned(), 1)
                => TERN_STATUS_MISALIGNED, ["scales"], out: [t]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_unpack(&l, pp, len, ROWS, COLS, tp, sp, 1)
                    => small, ["src_len", "544"], out: [t, s]);
            }
            fails!(c, tern_unpack(&l, pp, PACKED, ROWS, COLS, tp, sp, 0)
                => small, ["n_scales"], out: [t, s]);
            let bad = corrupt_packed();
            fails!(c, tern_unpack(&l, bad.as_ptr().cast(), PACKED, ROWS, COLS, tp, sp, 1)
                => inv, ["byte 3", "code 3"], out: [t, s]);
            let mut nan_scale = packed();
            nan_scale[N / 4..N / 4 + 4].copy_from_slice(&f32::NAN.to_le_bytes());
            fails!(c, tern_unpack(&l, nan_scale.as_ptr().cast(), PACKED, ROWS, COLS, tp, sp, 1)
                => inv, ["scale"], out: [t, s]);
            for b in bad_layouts() {
                fails!(c, tern_unpack(b.ptr(), pp, PACKED, ROWS, COLS, tp, sp, 1)
                    => b.status, [b.needle], out: [t, s]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_unpack(&l, pp, PACKED, r, k, tp, sp, 1)
                    => inv, [needle], out: [t, s]);
            }
        });
    }

    /// `ternary` or `scales` overlapping `src`: refused, nothing written. (A buffer full of
    /// the sentinel byte is valid I2_S data: codes 1 and 2, a finite scale.)
    #[test]
    fn aliasing() {
        contract(|c| {
            let l = i2s(0);
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let mut buf = vec![0u8; PACKED + N];
            let src = buf.as_ptr() as *const c_void;
            let t = unsafe { buf.as_mut_ptr().add(8) } as *mut i8;
            let mut s = [0f32; 1];
            fails!(c, tern_unpack(&l, src, PACKED, ROWS, COLS, t, s.as_mut_ptr(), 1)
                => inv, ["src", "ternary"], out: [buf, s]);
            let mut fbuf = vec![0f32; PACKED / 4];
            let src = fbuf.as_ptr() as *const c_void;
            let sp = unsafe { fbuf.as_mut_ptr().add(N / 16) };
            let mut t = vec![0i8; N];
            fails!(c, tern_unpack(&l, src, PACKED, ROWS, COLS, t.as_mut_ptr(), sp, 1)
                => inv, ["src", "scales"], out: [fbuf, t]);
        });
    }
}

mod tern_dequantize {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let p = packed();
            let pp = p.as_ptr() as *const c_void;
            let mut out = vec![0f32; N];
            let o = out.as_mut_ptr();
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_dequantize(null(), pp, PACKED, ROWS, COLS, o)
                => TERN_STATUS_NULL_POINTER, ["layout"], out: [out]);
            fails!(c, tern_dequantize(&l, null(), PACKED, ROWS, COLS, o)
                => TERN_STATUS_NULL_POINTER, ["src"], out: [out]);
            fails!(c, tern_dequantize(&l, pp, PACKED, ROWS, COLS, null_mut())
                => TERN_STATUS_NULL_POINTER, ["dst"]);
            fails!(c, tern_dequantize(&l, pp, PACKED, ROWS, COLS, misaligned())
                => TERN_STATUS_MISALIGNED, ["dst"]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_dequantize(&l, pp, len, ROWS, COLS, o)
                    => TERN_STATUS_BUFFER_TOO_SMALL, ["src_len", "544"], out: [out]);
            }
            let bad = corrupt_packed();
            fails!(c, tern_dequantize(&l, bad.as_ptr().cast(), PACKED, ROWS, COLS, o)
                => inv, ["byte 3", "code 3"], out: [out]);
            for b in bad_layouts() {
                fails!(c, tern_dequantize(b.ptr(), pp, PACKED, ROWS, COLS, o)
                    => b.status, [b.needle], out: [out]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_dequantize(&l, pp, PACKED, r, k, o) => inv, [needle], out: [out]);
            }
        });
    }

    /// `dst` overlapping `src` (sentinel bytes are valid I2_S data): refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let l = i2s(0);
            let mut buf = vec![0f32; N + PACKED];
            let src = buf.as_ptr() as *const c_void;
            let dst = unsafe { buf.as_mut_ptr().add(4) };
            fails!(c, tern_dequantize(&l, src, PACKED, ROWS, COLS, dst)
                => TERN_STATUS_INVALID_ARGUMENT, ["src", "dst"], out: [buf]);
        });
    }
}

mod tern_quantize_activations {
    use super::*;

    const T: i64 = 2;

    #[test]
    fn errors() {
        contract(|c| {
            let x = vec![0.5f32; 2 * N];
            let xp = x.as_ptr();
            let mut q = vec![0i8; 2 * COLS as usize];
            let mut s = [0f32; 2];
            let mut sums = [0i32; 2];
            let (qp, sp, up) = (q.as_mut_ptr(), s.as_mut_ptr(), sums.as_mut_ptr());
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_quantize_activations(null(), null(), T, COLS, 0, 0, qp, sp, up)
                => nul, ["x"], out: [q, s, sums]);
            fails!(c, tern_quantize_activations(null(), xp, T, COLS, 0, 0, null_mut(), sp, up)
                => nul, ["q"], out: [s, sums]);
            fails!(c, tern_quantize_activations(null(), xp, T, COLS, 0, 0, qp, null_mut(), up)
                => nul, ["scales"], out: [q, sums]);
            fails!(c, tern_quantize_activations(misaligned(), xp, T, COLS, 0, 0, qp, sp, up)
                => mis, ["ctx"], out: [q, s, sums]);
            fails!(c, tern_quantize_activations(null(), misaligned(), T, COLS, 0, 0, qp, sp, up)
                => mis, ["x"], out: [q, s, sums]);
            fails!(c, tern_quantize_activations(null(), xp, T, COLS, 0, 0, qp, misaligned(), up)
                => mis, ["scales"], out: [q, sums]);
            fails!(c, tern_quantize_activations(null(), xp, T, COLS, 0, 0, qp, sp, misaligned())
                => mis, ["sums"], out: [q, s]);
            for n in [0, -1, i64::MIN] {
                fails!(c, tern_quantize_activations(null(), xp, n, COLS, 0, 0, qp, sp, up)
                    => inv, ["n_tokens"], out: [q, s, sums]);
            }
            for k in [0, -1, i64::MIN] {
                fails!(c, tern_quantize_activations(null(), xp, T, k, 0, 0, qp, sp, up)
                    => inv, ["cols"], out: [q, s, sums]);
            }
            for stride in [-1, COLS - 1, i64::MIN] {
                fails!(c, tern_quantize_activations(null(), xp, T, COLS, stride, 0, qp, sp, up)
                    => inv, ["x_stride"], out: [q, s, sums]);
            }
            // Strides and token counts whose products overflow the address space.
            fails!(c, tern_quantize_activations(null(), xp, T, COLS, i64::MAX, 0, qp, sp, up)
                => inv, ["x"], out: [q, s, sums]);
            fails!(c, tern_quantize_activations(null(), xp, i64::MAX, COLS, 0, 0, qp, sp, up)
                => inv, ["n_tokens"], out: [q, s, sums]);
            for compat in [-1, 4, 99, i32::MAX, i32::MIN] {
                fails!(c, tern_quantize_activations(null(), xp, T, COLS, 0, compat, qp, sp, up)
                    => inv, ["compat"], out: [q, s, sums]);
            }
            fails!(c, tern_quantize_activations(
                null(), xp, T, COLS, 0, tern_compat::TERN_COMPAT_GGML as i32, qp, sp, up)
                => TERN_STATUS_UNSUPPORTED, ["TERN_COMPAT_GGML"], out: [q, s, sums]);
        });
    }

    /// Outputs overlapping `x` or each other: refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let k = COLS as usize;
            // q inside x.
            let mut buf = vec![0f32; 2 * k + 64];
            let mut s = [0f32; 2];
            let mut sums = [0i32; 2];
            let (x, q) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(k) } as *mut i8);
            fails!(c, tern_quantize_activations(
                null(), x, T, COLS, 0, 0, q, s.as_mut_ptr(), sums.as_mut_ptr())
                => inv, ["x", "q"], out: [buf, s, sums]);
            // scales inside x.
            let mut q = vec![0i8; 2 * k];
            let (x, sp) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(3) });
            fails!(c, tern_quantize_activations(
                null(), x, T, COLS, 0, 0, q.as_mut_ptr(), sp, sums.as_mut_ptr())
                => inv, ["x", "scales"], out: [buf, q, sums]);
            // sums inside x.
            let (x, up) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(5) } as *mut i32);
            fails!(c, tern_quantize_activations(
                null(), x, T, COLS, 0, 0, q.as_mut_ptr(), s.as_mut_ptr(), up)
                => inv, ["x", "sums"], out: [buf, q, s]);
            // scales inside q.
            let x = vec![0.5f32; 2 * k];
            let mut qbuf = vec![0u32; k];
            let (qp, sp) = (
                qbuf.as_mut_ptr() as *mut i8,
                unsafe { qbuf.as_mut_ptr().add(4) } as *mut f32,
            );
            fails!(c, tern_quantize_activations(
                null(), x.as_ptr(), T, COLS, 0, 0, qp, sp, sums.as_mut_ptr())
                => inv, ["q", "scales"], out: [qbuf, sums]);
        });
    }
}

mod tern_convert {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let from = i2s(0);
            let to = layout(tern_format::TERN_FORMAT_TQ2_0 as i32, 0);
            // TQ2_0 of 8 x 256: 8 blocks of 66 bytes.
            const TQ: usize = 8 * 66;
            let p = packed();
            let pp = p.as_ptr() as *const c_void;
            let mut dst = vec![0u8; TQ];
            let d = dst.as_mut_ptr() as *mut c_void;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let small = TERN_STATUS_BUFFER_TOO_SMALL;
            fails!(c, tern_convert(null(), pp, PACKED, &to, d, TQ, ROWS, COLS, null())
                => nul, ["from"], out: [dst]);
            fails!(c, tern_convert(&from, null(), PACKED, &to, d, TQ, ROWS, COLS, null())
                => nul, ["src"], out: [dst]);
            fails!(c, tern_convert(&from, pp, PACKED, null(), d, TQ, ROWS, COLS, null())
                => nul, ["to"], out: [dst]);
            fails!(c, tern_convert(&from, pp, PACKED, &to, null_mut(), TQ, ROWS, COLS, null())
                => nul, ["dst"]);
            fails!(c, tern_convert(misaligned(), pp, PACKED, &to, d, TQ, ROWS, COLS, null())
                => TERN_STATUS_MISALIGNED, ["from"], out: [dst]);
            fails!(c, tern_convert(&from, pp, PACKED, &to, d, TQ, ROWS, COLS, misaligned())
                => TERN_STATUS_MISALIGNED, ["opts"], out: [dst]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_convert(&from, pp, len, &to, d, TQ, ROWS, COLS, null())
                    => small, ["src_len", "544"], out: [dst]);
            }
            for len in [0, TQ - 1] {
                fails!(c, tern_convert(&from, pp, PACKED, &to, d, len, ROWS, COLS, null())
                    => small, ["dst_len", "528"], out: [dst]);
            }
            // Two layouts: the message must say which one is wrong.
            for b in bad_layouts() {
                fails!(c, tern_convert(b.ptr(), pp, PACKED, &to, d, TQ, ROWS, COLS, null())
                    => b.status, [b.needle, "from"], out: [dst]);
                fails!(c, tern_convert(&from, pp, PACKED, b.ptr(), d, TQ, ROWS, COLS, null())
                    => b.status, [b.needle, "to"], out: [dst]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_convert(&from, pp, PACKED, &to, d, TQ, r, k, null())
                    => inv, [needle], out: [dst]);
            }
            // Values the target cannot hold: the ternary source's zeros into Q1_0 (±1), named by
            // row and block; nothing written.
            let q1 = layout(tern_format::TERN_FORMAT_Q1_0 as i32, 0);
            let mut q1_dst = vec![0xEEu8; 8 * 2 * 18];
            fails!(c, tern_convert(&from, pp, PACKED, &q1, q1_dst.as_mut_ptr().cast(),
                q1_dst.len(), ROWS, COLS, null())
                => inv, ["Q1_0", "row ", "block ", "the value 0"], out: [q1_dst]);
            // A shape the source can hold but the target cannot (TQ2_0 needs cols % 256 == 0).
            let p128 = vec![0x55u8; 8 * 128 / 4 + 32];
            fails!(c, tern_convert(
                &from, p128.as_ptr().cast(), p128.len(), &to, d, TQ, ROWS, 128, null())
                => inv, ["cols"], out: [dst]);
            let base = tern_convert_options {
                struct_size: full::<tern_convert_options>(),
                allow_rounding: 0,
            };
            for (size, st) in bad_struct_sizes::<tern_convert_options>() {
                let o = padded(base, size);
                fails!(c, tern_convert(&from, pp, PACKED, &to, d, TQ, ROWS, COLS, &o.v)
                    => st, ["struct_size"], out: [dst]);
            }
            for r in [2, u32::MAX] {
                let o = tern_convert_options {
                    allow_rounding: r,
                    ..base
                };
                fails!(c, tern_convert(&from, pp, PACKED, &to, d, TQ, ROWS, COLS, &o)
                    => inv, ["allow_rounding"], out: [dst]);
            }
            let bad = corrupt_packed();
            fails!(c, tern_convert(
                &from, bad.as_ptr().cast(), PACKED, &to, d, TQ, ROWS, COLS, null())
                => inv, ["byte 3", "code 3"], out: [dst]);
            // 0.1 has no exact f16: refused without allow_rounding, and the message says so.
            let mut p01 = packed();
            p01[N / 4..N / 4 + 4].copy_from_slice(&0.1f32.to_le_bytes());
            fails!(c, tern_convert(
                &from, p01.as_ptr().cast(), PACKED, &to, d, TQ, ROWS, COLS, null())
                => inv, ["allow_rounding"], out: [dst]);
            // TQ2_0 blocks with different scales cannot become one I2_S scale.
            let mut tq = vec![0u8; TQ];
            ok(unsafe {
                tern_convert(
                    &from,
                    pp,
                    PACKED,
                    &to,
                    tq.as_mut_ptr().cast(),
                    TQ,
                    ROWS,
                    COLS,
                    null(),
                )
            });
            tq[64..66].copy_from_slice(&half::f16::from_f32(0.25).to_le_bytes());
            let mut back = vec![0u8; PACKED];
            fails!(c, tern_convert(
                &to, tq.as_ptr().cast(), TQ, &from, back.as_mut_ptr().cast(), PACKED, ROWS, COLS, null())
                => inv, ["scales"], out: [back]);
        });
    }

    /// `dst` overlapping `src` (sentinel bytes are valid I2_S data): refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let from = i2s(0);
            let to = i2s(tern_i2s_variant::TERN_I2S_ARM64 as u32);
            let mut buf = vec![0u8; 2 * PACKED];
            let src = buf.as_ptr() as *const c_void;
            let dst = unsafe { buf.as_mut_ptr().add(16) } as *mut c_void;
            fails!(c, tern_convert(&from, src, PACKED, &to, dst, PACKED, ROWS, COLS, null())
                => TERN_STATUS_INVALID_ARGUMENT, ["src", "dst"], out: [buf]);
        });
    }
}

mod tern_ternarize {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let w = weights();
            let wp = w.as_ptr();
            let mut t = vec![0i8; N];
            let mut s = vec![0f32; N];
            let mut count = 0usize;
            let (tp, sp, np) = (t.as_mut_ptr(), s.as_mut_ptr(), &mut count as *mut usize);
            let n = N;
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_ternarize(null(), null(), ROWS, COLS, tp, sp, n, np)
                => nul, ["src"], out: [t, s, count]);
            fails!(c, tern_ternarize(null(), wp, ROWS, COLS, null_mut(), sp, n, np)
                => nul, ["ternary"], out: [s, count]);
            fails!(c, tern_ternarize(null(), wp, ROWS, COLS, tp, null_mut(), n, np)
                => nul, ["scales"], out: [t, count]);
            fails!(c, tern_ternarize(misaligned(), wp, ROWS, COLS, tp, sp, n, np)
                => mis, ["opts"], out: [t, s, count]);
            fails!(c, tern_ternarize(null(), misaligned(), ROWS, COLS, tp, sp, n, np)
                => mis, ["src"], out: [t, s, count]);
            fails!(c, tern_ternarize(null(), wp, ROWS, COLS, tp, misaligned(), n, np)
                => mis, ["scales"], out: [t, count]);
            fails!(c, tern_ternarize(null(), wp, ROWS, COLS, tp, sp, n, misaligned())
                => mis, ["n_scales_out"], out: [t, s]);
            fails!(c, tern_ternarize(null(), wp, ROWS, COLS, tp, sp, 0, np)
                => TERN_STATUS_BUFFER_TOO_SMALL, ["n_scales"], out: [t, s, count]);
            let row = quant(2, 0);
            fails!(c, tern_ternarize(&row, wp, ROWS, COLS, tp, sp, ROWS as usize - 1, np)
                => TERN_STATUS_BUFFER_TOO_SMALL, ["n_scales", "8"], out: [t, s, count]);
            // Shapes: ternarize has no block constraint, so only non-positive and overflowing ones.
            for &(r, k, needle) in BAD_SHAPES
                .iter()
                .filter(|b| b.0 <= 0 || b.1 <= 0 || b.0 > ROWS)
            {
                fails!(c, tern_ternarize(null(), wp, r, k, tp, sp, n, np)
                    => inv, [needle], out: [t, s, count]);
            }
            fails!(c, tern_ternarize(null(), wp, 1, (1 << 22) + 1, tp, sp, n, np)
                => inv, ["cols"], out: [t, s, count]);
            for (size, st) in bad_struct_sizes::<tern_quant_options>() {
                let o = padded(quant(0, 0), size);
                fails!(c, tern_ternarize(&o.v, wp, ROWS, COLS, tp, sp, n, np)
                    => st, ["struct_size"], out: [t, s, count]);
            }
            for (o, needle) in [
                (quant(9, 0), "method"),
                (quant(-1, 0), "method"),
                (quant(0, 64), "group_size"),
                (quant(3, 0), "group_size"),
                (quant(3, 96), "group_size"), // does not divide cols = 256
                (
                    tern_quant_options {
                        eps: 0.0,
                        ..quant(0, 0)
                    },
                    "eps",
                ),
                (
                    tern_quant_options {
                        eps: f32::NAN,
                        ..quant(0, 0)
                    },
                    "eps",
                ),
            ] {
                fails!(c, tern_ternarize(&o, wp, ROWS, COLS, tp, sp, n, np)
                    => inv, [needle], out: [t, s, count]);
            }
            // GGML_REF works on 256-element blocks.
            fails!(c, tern_ternarize(&quant(4, 0), wp, 16, 128, tp, sp, n, np)
                => inv, ["cols"], out: [t, s, count]);
            for method in [0, 1, 2, 4] {
                let mut wb = w.clone();
                wb[77] = f32::NAN;
                fails!(c, tern_ternarize(&quant(method, 0), wb.as_ptr(), ROWS, COLS, tp, sp, n, np)
                    => inv, ["src[77]"], out: [t, s, count]);
            }
        });
    }

    fn quant(method: i32, group_size: u32) -> tern_quant_options {
        tern_quant_options {
            struct_size: full::<tern_quant_options>(),
            method,
            group_size,
            eps: 1e-5,
        }
    }

    /// `ternary` or `scales` overlapping `src`: refused, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let mut buf = vec![0f32; 2 * N];
            let mut s = [0f32; 1];
            let (src, t) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(N / 2) }
                as *mut i8);
            fails!(c, tern_ternarize(null(), src, ROWS, COLS, t, s.as_mut_ptr(), 1, null_mut())
                => inv, ["src", "ternary"], out: [buf, s]);
            let mut t = vec![0i8; N];
            let (src, sp) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(7) });
            fails!(c, tern_ternarize(null(), src, ROWS, COLS, t.as_mut_ptr(), sp, 1, null_mut())
                => inv, ["src", "scales"], out: [buf, t]);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// Matrices and GEMM

mod tern_matrix_create {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let p = packed();
            let pp = p.as_ptr() as *const c_void;
            let mut m: *mut tern_matrix;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_matrix_create(null(), &l, pp, PACKED, ROWS, COLS, null_mut())
                => nul, ["out"]);
            fails!(c, tern_matrix_create(null(), null(), pp, PACKED, ROWS, COLS, &mut m)
                => nul, ["layout"], handle: [m]);
            fails!(c, tern_matrix_create(null(), &l, null(), PACKED, ROWS, COLS, &mut m)
                => nul, ["packed"], handle: [m]);
            fails!(c, tern_matrix_create(misaligned(), &l, pp, PACKED, ROWS, COLS, &mut m)
                => TERN_STATUS_MISALIGNED, ["ctx"], handle: [m]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_matrix_create(null(), &l, pp, len, ROWS, COLS, &mut m)
                    => TERN_STATUS_BUFFER_TOO_SMALL, ["packed_len", "544"], handle: [m]);
            }
            let bad = corrupt_packed();
            fails!(c, tern_matrix_create(
                null(), &l, bad.as_ptr().cast(), PACKED, ROWS, COLS, &mut m)
                => inv, ["byte 3", "code 3"], handle: [m]);
            for b in bad_layouts() {
                fails!(c, tern_matrix_create(null(), b.ptr(), pp, PACKED, ROWS, COLS, &mut m)
                    => b.status, [b.needle], handle: [m]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_matrix_create(null(), &l, pp, PACKED, r, k, &mut m)
                    => inv, [needle], handle: [m]);
            }
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let p = packed();
            misaligned_handle(
                c,
                line!(),
                "tern_matrix_create(.., misaligned)",
                MISALIGNED_OUT,
                |out| unsafe {
                    tern_matrix_create(null(), &i2s(0), p.as_ptr().cast(), PACKED, ROWS, COLS, out)
                },
                tern_matrix_destroy,
            );
        });
    }
}

mod tern_matrix_from_f32 {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let l = i2s(0);
            let w = weights();
            let wp = w.as_ptr();
            let mut m: *mut tern_matrix;
            let mut stats = stats_out(full::<tern_quant_stats>());
            let sp = stats.ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_matrix_from_f32(null(), &l, wp, ROWS, COLS, null(), sp, null_mut())
                => nul, ["out"], out: [stats]);
            fails!(c, tern_matrix_from_f32(null(), null(), wp, ROWS, COLS, null(), sp, &mut m)
                => nul, ["layout"], out: [stats], handle: [m]);
            fails!(c, tern_matrix_from_f32(null(), &l, null(), ROWS, COLS, null(), sp, &mut m)
                => nul, ["w"], out: [stats], handle: [m]);
            fails!(c, tern_matrix_from_f32(misaligned(), &l, wp, ROWS, COLS, null(), sp, &mut m)
                => mis, ["ctx"], out: [stats], handle: [m]);
            fails!(c, tern_matrix_from_f32(
                null(), &l, misaligned(), ROWS, COLS, null(), sp, &mut m)
                => mis, ["w"], out: [stats], handle: [m]);
            fails!(c, tern_matrix_from_f32(null(), &l, wp, ROWS, COLS, misaligned(), sp, &mut m)
                => mis, ["opts"], out: [stats], handle: [m]);
            fails!(c, tern_matrix_from_f32(
                null(), &l, wp, ROWS, COLS, null(), misaligned(), &mut m)
                => mis, ["stats"], handle: [m]);
            for b in bad_layouts() {
                fails!(c, tern_matrix_from_f32(null(), b.ptr(), wp, ROWS, COLS, null(), sp, &mut m)
                    => b.status, [b.needle], out: [stats], handle: [m]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_matrix_from_f32(null(), &l, wp, r, k, null(), sp, &mut m)
                    => inv, [needle], out: [stats], handle: [m]);
            }
            for (o, st, needle) in bad_quant_options() {
                fails!(c, tern_matrix_from_f32(null(), &l, wp, ROWS, COLS, &o.v, sp, &mut m)
                    => st, [needle], out: [stats], handle: [m]);
            }
            for size in [0, 4, full::<tern_quant_stats>() - 1] {
                let mut small = stats_out(size);
                fails!(c, tern_matrix_from_f32(
                    null(), &l, wp, ROWS, COLS, null(), small.ptr(), &mut m)
                    => inv, ["stats", "struct_size"], out: [small], handle: [m]);
            }
            let mut wb = w.clone();
            wb[9] = f32::INFINITY;
            fails!(c, tern_matrix_from_f32(null(), &l, wb.as_ptr(), ROWS, COLS, null(), sp, &mut m)
                => inv, ["w[9]"], out: [stats], handle: [m]);
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let w = weights();
            misaligned_handle(
                c,
                line!(),
                "tern_matrix_from_f32(.., misaligned)",
                MISALIGNED_OUT,
                |out| unsafe {
                    tern_matrix_from_f32(
                        null(),
                        &i2s(0),
                        w.as_ptr(),
                        ROWS,
                        COLS,
                        null(),
                        null_mut(),
                        out,
                    )
                },
                tern_matrix_destroy,
            );
        });
    }
}

mod tern_matrix_info {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let m = matrix();
            let mut info = out_struct::<tern_matrix_properties>(full::<tern_matrix_properties>());
            let ip = info.ptr();
            fails!(c, tern_matrix_info(null(), ip)
                => TERN_STATUS_NULL_POINTER, ["matrix"], out: [info]);
            fails!(c, tern_matrix_info(m, null_mut()) => TERN_STATUS_NULL_POINTER, ["info"]);
            fails!(c, tern_matrix_info(misaligned(), ip)
                => TERN_STATUS_MISALIGNED, ["matrix"], out: [info]);
            fails!(c, tern_matrix_info(m, misaligned()) => TERN_STATUS_MISALIGNED, ["info"]);
            for size in [0, 4, full::<tern_matrix_properties>() - 1] {
                let mut small = out_struct::<tern_matrix_properties>(size);
                fails!(c, tern_matrix_info(m, small.ptr())
                    => TERN_STATUS_INVALID_ARGUMENT, ["info", "struct_size"], out: [small]);
            }
            unsafe { tern_matrix_destroy(m) };
        });
    }
}

mod tern_gemm {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let m = matrix();
            let (rows, cols) = (ROWS as usize, COLS as usize);
            let x = vec![0.25f32; 2 * cols];
            let xp = x.as_ptr();
            let mut y = vec![0f32; 2 * rows];
            let yp = y.as_mut_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gemm(null(), null(), xp, 2, 0, yp, 0, null())
                => nul, ["matrix"], out: [y]);
            fails!(c, tern_gemm(null(), m, null(), 2, 0, yp, 0, null()) => nul, ["x"], out: [y]);
            fails!(c, tern_gemm(null(), m, xp, 2, 0, null_mut(), 0, null()) => nul, ["y"]);
            fails!(c, tern_gemm(misaligned(), m, xp, 2, 0, yp, 0, null())
                => mis, ["ctx"], out: [y]);
            fails!(c, tern_gemm(null(), misaligned(), xp, 2, 0, yp, 0, null())
                => mis, ["matrix"], out: [y]);
            fails!(c, tern_gemm(null(), m, misaligned(), 2, 0, yp, 0, null())
                => mis, ["x"], out: [y]);
            fails!(c, tern_gemm(null(), m, xp, 2, 0, misaligned(), 0, null()) => mis, ["y"]);
            fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, misaligned())
                => mis, ["opts"], out: [y]);
            let mis_bias = gemm_opts(0, 0, 0, misaligned());
            fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, &mis_bias) => mis, ["bias"], out: [y]);
            for n in [0, -1, i64::MIN] {
                fails!(c, tern_gemm(null(), m, xp, n, 0, yp, 0, null())
                    => inv, ["n_tokens"], out: [y]);
            }
            fails!(c, tern_gemm(null(), m, xp, i64::MAX, 0, yp, 0, null()) => inv, ["x"], out: [y]);
            for s in [-1, COLS - 1, i64::MIN] {
                fails!(c, tern_gemm(null(), m, xp, 2, s, yp, 0, null())
                    => inv, ["x_stride"], out: [y]);
            }
            fails!(c, tern_gemm(null(), m, xp, 2, i64::MAX, yp, 0, null()) => inv, ["x"], out: [y]);
            for s in [-1, ROWS - 1, i64::MIN] {
                fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, s, null())
                    => inv, ["y_stride"], out: [y]);
            }
            fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, i64::MAX, null()) => inv, ["y"], out: [y]);
            for (size, st) in bad_struct_sizes::<tern_gemm_options>() {
                let o = padded(gemm_opts(0, 0, 0, null()), size);
                fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, &o.v)
                    => st, ["struct_size"], out: [y]);
            }
            for compat in [-1, 4, 99, i32::MIN] {
                let o = gemm_opts(compat, 0, 0, null());
                fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, &o) => inv, ["compat"], out: [y]);
            }
            let ggml = gemm_opts(tern_compat::TERN_COMPAT_GGML as i32, 0, 0, null());
            fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, &ggml)
                => TERN_STATUS_UNSUPPORTED, ["TERN_COMPAT_GGML"], out: [y]);
            for (b, e) in [
                (-1, 0),
                (ROWS, 0),
                (3, 3),
                (5, 2),
                (0, ROWS + 1),
                (0, -1),
                (i64::MIN, 1),
                (0, i64::MAX),
            ] {
                let o = gemm_opts(0, b, e, null());
                fails!(c, tern_gemm(null(), m, xp, 2, 0, yp, 0, &o)
                    => inv, ["row_begin", "row_end"], out: [y]);
            }
            unsafe { tern_matrix_destroy(m) };
        });
    }

    /// `y` overlapping `x` or `opts->bias`: refused with INVALID_ARGUMENT, nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let m = matrix();
            let (rows, cols) = (ROWS as usize, COLS as usize);
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let mut buf = vec![0f32; 2 * cols + 2 * rows];
            // y == x, y inside x, y straddling the end of x.
            for at in [0, 100, 2 * cols - 1] {
                let (x, y) = (buf.as_ptr(), unsafe { buf.as_mut_ptr().add(at) });
                fails!(c, tern_gemm(null(), m, x, 2, 0, y, 0, null())
                    => inv, ["x", "y"], out: [buf]);
            }
            // y inside bias.
            let x = vec![0.25f32; 2 * cols];
            let mut bias = vec![0f32; 4 * rows];
            let o = gemm_opts(0, 0, 0, bias.as_ptr());
            let y = unsafe { bias.as_mut_ptr().add(2) };
            fails!(c, tern_gemm(null(), m, x.as_ptr(), 2, 0, y, 0, &o)
                => inv, ["y", "bias"], out: [bias]);
            unsafe { tern_matrix_destroy(m) };
        });
    }
}

mod tern_gemm_i8 {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let m = matrix();
            let (rows, cols) = (ROWS as usize, COLS as usize);
            let q = vec![1i8; 2 * cols];
            let s = [1.0f32; 2];
            let sums = [COLS as i32; 2];
            let (qp, sp, up) = (q.as_ptr(), s.as_ptr(), sums.as_ptr());
            let mut y = vec![0f32; 2 * rows];
            let yp = y.as_mut_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gemm_i8(null(), null(), qp, sp, up, 2, 0, yp, 0, null())
                => nul, ["matrix"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, null(), sp, up, 2, 0, yp, 0, null())
                => nul, ["q"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, null(), up, 2, 0, yp, 0, null())
                => nul, ["scales"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, sp, null(), 2, 0, yp, 0, null())
                => nul, ["sums"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, null_mut(), 0, null())
                => nul, ["y"]);
            fails!(c, tern_gemm_i8(misaligned(), m, qp, sp, up, 2, 0, yp, 0, null())
                => mis, ["ctx"], out: [y]);
            fails!(c, tern_gemm_i8(null(), misaligned(), qp, sp, up, 2, 0, yp, 0, null())
                => mis, ["matrix"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, misaligned(), up, 2, 0, yp, 0, null())
                => mis, ["scales"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, sp, misaligned(), 2, 0, yp, 0, null())
                => mis, ["sums"], out: [y]);
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, misaligned(), 0, null())
                => mis, ["y"]);
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, misaligned())
                => mis, ["opts"], out: [y]);
            for n in [0, -1, i64::MIN] {
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, n, 0, yp, 0, null())
                    => inv, ["n_tokens"], out: [y]);
            }
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, i64::MAX, 0, yp, 0, null())
                => inv, ["q"], out: [y]);
            for st in [-1, COLS - 1, i64::MIN] {
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, st, yp, 0, null())
                    => inv, ["q_stride"], out: [y]);
            }
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, i64::MAX, yp, 0, null())
                => inv, ["q"], out: [y]);
            for st in [-1, ROWS - 1] {
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, st, null())
                    => inv, ["y_stride"], out: [y]);
            }
            for (size, st) in bad_struct_sizes::<tern_gemm_options>() {
                let o = padded(gemm_opts(0, 0, 0, null()), size);
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, &o.v)
                    => st, ["struct_size"], out: [y]);
            }
            for compat in [-1, 4, i32::MAX] {
                let o = gemm_opts(compat, 0, 0, null());
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, &o)
                    => inv, ["compat"], out: [y]);
            }
            let ggml = gemm_opts(tern_compat::TERN_COMPAT_GGML as i32, 0, 0, null());
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, &ggml)
                => TERN_STATUS_UNSUPPORTED, ["TERN_COMPAT_GGML"], out: [y]);
            for (b, e) in [(-1, 0), (3, 3), (0, ROWS + 1)] {
                let o = gemm_opts(0, b, e, null());
                fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, &o)
                    => inv, ["row_begin", "row_end"], out: [y]);
            }
            let mis_bias = gemm_opts(0, 0, 0, misaligned());
            fails!(c, tern_gemm_i8(null(), m, qp, sp, up, 2, 0, yp, 0, &mis_bias)
                => mis, ["bias"], out: [y]);
            // Σq of a token of `cols` int8 values lies in [-128·cols, 127·cols]; a sum outside
            // it is corrupt input, and `dot - sum` would overflow int32.
            for bad in [[i32::MIN, 0], [0, i32::MAX]] {
                let t = if bad[0] == 0 { 1 } else { 0 };
                fails!(c, tern_gemm_i8(null(), m, qp, sp, bad.as_ptr(), 2, 0, yp, 0, null())
                    => inv, [&*format!("sums[{t}]")], out: [y]);
            }
            unsafe { tern_matrix_destroy(m) };
        });
    }

    /// `y` overlapping `q`, `scales`, `sums` or `opts->bias`: refused with INVALID_ARGUMENT,
    /// nothing written.
    #[test]
    fn aliasing() {
        contract(|c| {
            let m = matrix();
            let (rows, cols) = (ROWS as usize, COLS as usize);
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let q = vec![1i8; 2 * cols];
            let s = [1.0f32; 2];
            let sums = [0i32; 2];
            // y inside q (a float buffer viewed as int8 codes).
            let mut qbuf = vec![0f32; 2 * cols];
            let (qp, y) = (qbuf.as_ptr() as *const i8, unsafe {
                qbuf.as_mut_ptr().add(8)
            });
            fails!(c, tern_gemm_i8(null(), m, qp, s.as_ptr(), sums.as_ptr(), 2, 0, y, 0, null())
                => inv, ["q", "y"], out: [qbuf]);
            // y over scales, over sums.
            let mut sbuf = vec![0f32; 2 * rows];
            let (sp, y) = (sbuf.as_ptr(), sbuf.as_mut_ptr());
            fails!(c, tern_gemm_i8(null(), m, q.as_ptr(), sp, sums.as_ptr(), 2, 0, y, 0, null())
                => inv, ["scales", "y"], out: [sbuf]);
            let mut ubuf = vec![0f32; 2 * rows];
            let (up, y) = (
                unsafe { ubuf.as_ptr().add(2 * rows - 2) } as *const i32,
                ubuf.as_mut_ptr(),
            );
            fails!(c, tern_gemm_i8(null(), m, q.as_ptr(), s.as_ptr(), up, 2, 0, y, 0, null())
                => inv, ["sums", "y"], out: [ubuf]);
            // y inside bias.
            let mut bias = vec![0f32; 4 * rows];
            let o = gemm_opts(0, 0, 0, bias.as_ptr());
            let y = unsafe { bias.as_mut_ptr().add(1) };
            fails!(c, tern_gemm_i8(
                null(), m, q.as_ptr(), s.as_ptr(), sums.as_ptr(), 2, 0, y, 0, &o)
                => inv, ["y", "bias"], out: [bias]);
            unsafe { tern_matrix_destroy(m) };
        });
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF reader

/// A small GGUF file written once per run: a string, an integer, a float, an int array, a
/// string array, an F32 tensor and an I2_S matrix.
fn sample_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let p = scratch("sample.gguf");
        unsafe {
            let mut w = null_mut();
            ok(tern_gguf_writer_create(null(), &mut w));
            ok(tern_gguf_writer_add_string(
                w,
                c"general.architecture".as_ptr(),
                c"bitnet".as_ptr(),
            ));
            ok(tern_gguf_writer_add_int(
                w,
                c"n".as_ptr(),
                tern_gguf_type::TERN_GGUF_TYPE_UINT32 as u32,
                7,
            ));
            ok(tern_gguf_writer_add_float(
                w,
                c"eps".as_ptr(),
                tern_gguf_type::TERN_GGUF_TYPE_FLOAT32 as u32,
                0.5,
            ));
            let ints = [1i32, 2, 3];
            ok(tern_gguf_writer_add_array(
                w,
                c"ints".as_ptr(),
                tern_gguf_type::TERN_GGUF_TYPE_INT32 as u32,
                ints.as_ptr().cast(),
                3,
            ));
            let strs = [c"a".as_ptr(), c"bc".as_ptr()];
            ok(tern_gguf_writer_add_string_array(
                w,
                c"strs".as_ptr(),
                strs.as_ptr(),
                2,
            ));
            let f = [0f32; 8];
            ok(tern_gguf_writer_add_tensor(
                w,
                c"f32.weight".as_ptr(),
                0,
                [4i64, 2].as_ptr(),
                2,
                f.as_ptr().cast(),
                32,
            ));
            let pk = packed();
            ok(tern_gguf_writer_add_ternary(
                w,
                c"i2s".as_ptr(),
                &i2s(0),
                pk.as_ptr().cast(),
                pk.len(),
                ROWS,
                COLS,
            ));
            ok(tern_gguf_writer_write(w, cpath(&p).as_ptr()));
            tern_gguf_writer_destroy(w);
        }
        p
    })
}

fn open_sample() -> *mut tern_gguf {
    let mut g = null_mut();
    ok(unsafe { tern_gguf_open(cpath(sample_path()).as_ptr(), &mut g) });
    g
}

/// Files `tern_gguf_open*` must refuse, the status, and a word of the message.
/// Written once per process: the two open functions' tests run in parallel and would otherwise
/// rewrite (truncate, then fill) a file while the other reads it.
fn bad_files() -> &'static [(CString, tern_status, String)] {
    static FILES: OnceLock<Vec<(CString, tern_status, String)>> = OnceLock::new();
    FILES.get_or_init(write_bad_files)
}

fn write_bad_files() -> Vec<(CString, tern_status, String)> {
    let inv = TERN_STATUS_INVALID_ARGUMENT;
    let write = |name: &str, bytes: &[u8]| {
        let p = scratch(name);
        std::fs::write(&p, bytes).unwrap();
        cpath(&p)
    };
    let missing = scratch("missing.gguf");
    let dir = scratch("a-directory");
    std::fs::create_dir_all(&dir).unwrap();
    let mut v1 = b"GGUF".to_vec();
    v1.extend(1u32.to_le_bytes());
    v1.extend([0u8; 16]);
    vec![
        (cpath(&missing), inv, missing.display().to_string()),
        (cpath(&dir), inv, dir.display().to_string()),
        (write("empty.gguf", b""), inv, "truncated".into()),
        (write("magic.gguf", b"GGML\x03\0\0\0"), inv, "magic".into()),
        (
            write("v1.gguf", &v1),
            TERN_STATUS_UNSUPPORTED,
            "version".into(),
        ),
        (NOT_UTF8.to_owned(), inv, "path".into()),
    ]
}

mod tern_gguf_open {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let mut g: *mut tern_gguf;
            let p = cpath(sample_path());
            fails!(c, tern_gguf_open(p.as_ptr(), null_mut()) => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_gguf_open(null(), &mut g)
                => TERN_STATUS_NULL_POINTER, ["path"], handle: [g]);
            for (path, st, needle) in bad_files() {
                fails!(c, tern_gguf_open(path.as_ptr(), &mut g)
                    => *st, [needle.as_str()], handle: [g]);
            }
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let p = cpath(sample_path());
            misaligned_handle(
                c,
                line!(),
                "tern_gguf_open(path, misaligned)",
                MISALIGNED_OUT,
                |out| unsafe { tern_gguf_open(p.as_ptr(), out) },
                tern_gguf_close,
            );
        });
    }
}

mod tern_gguf_open_with_options {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let mut g: *mut tern_gguf;
            let p = cpath(sample_path());
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let base = tern_gguf_open_options {
                struct_size: full::<tern_gguf_open_options>(),
                dialect: 0,
            };
            fails!(c, tern_gguf_open_with_options(p.as_ptr(), &base, null_mut()) => nul, ["out"]);
            fails!(c, tern_gguf_open_with_options(null(), &base, &mut g)
                => nul, ["path"], handle: [g]);
            fails!(c, tern_gguf_open_with_options(p.as_ptr(), misaligned(), &mut g)
                => TERN_STATUS_MISALIGNED, ["opts"], handle: [g]);
            for (size, st) in bad_struct_sizes::<tern_gguf_open_options>() {
                let o = padded(base, size);
                fails!(c, tern_gguf_open_with_options(p.as_ptr(), &o.v, &mut g)
                    => st, ["struct_size"], handle: [g]);
            }
            for d in [-1, 4, i32::MAX] {
                let o = tern_gguf_open_options { dialect: d, ..base };
                fails!(c, tern_gguf_open_with_options(p.as_ptr(), &o, &mut g)
                    => inv, ["dialect"], handle: [g]);
            }
            // The mainline dialect has no I2_S (type 36).
            let o = tern_gguf_open_options {
                dialect: tern_gguf_dialect::TERN_GGUF_DIALECT_MAINLINE as i32,
                ..base
            };
            fails!(c, tern_gguf_open_with_options(p.as_ptr(), &o, &mut g)
                => inv, ["type 36"], handle: [g]);
            for (path, st, needle) in bad_files() {
                fails!(c, tern_gguf_open_with_options(path.as_ptr(), &base, &mut g)
                    => *st, [needle.as_str()], handle: [g]);
            }
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let p = cpath(sample_path());
            misaligned_handle(
                c,
                line!(),
                "tern_gguf_open_with_options(path, NULL, misaligned)",
                MISALIGNED_OUT,
                |out| unsafe { tern_gguf_open_with_options(p.as_ptr(), null(), out) },
                tern_gguf_close,
            );
        });
    }
}

mod tern_gguf_info {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut info = out_struct::<tern_gguf_properties>(full::<tern_gguf_properties>());
            let ip = info.ptr();
            fails!(c, tern_gguf_info(null(), ip)
                => TERN_STATUS_NULL_POINTER, ["gguf"], out: [info]);
            fails!(c, tern_gguf_info(g, null_mut()) => TERN_STATUS_NULL_POINTER, ["info"]);
            fails!(c, tern_gguf_info(misaligned(), ip)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [info]);
            fails!(c, tern_gguf_info(g, misaligned()) => TERN_STATUS_MISALIGNED, ["info"]);
            for size in [0, 4, full::<tern_gguf_properties>() - 1] {
                let mut small = out_struct::<tern_gguf_properties>(size);
                fails!(c, tern_gguf_info(g, small.ptr())
                    => TERN_STATUS_INVALID_ARGUMENT, ["info", "struct_size"], out: [small]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_tensor_count {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut n = 0usize;
            fails!(c, tern_gguf_tensor_count(null(), &mut n)
                => TERN_STATUS_NULL_POINTER, ["gguf"], out: [n]);
            fails!(c, tern_gguf_tensor_count(g, null_mut()) => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_gguf_tensor_count(misaligned(), &mut n)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [n]);
            fails!(c, tern_gguf_tensor_count(g, misaligned()) => TERN_STATUS_MISALIGNED, ["out"]);
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_kv_count {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut n = 0usize;
            fails!(c, tern_gguf_kv_count(null(), &mut n)
                => TERN_STATUS_NULL_POINTER, ["gguf"], out: [n]);
            fails!(c, tern_gguf_kv_count(g, null_mut()) => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_gguf_kv_count(misaligned(), &mut n)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [n]);
            fails!(c, tern_gguf_kv_count(g, misaligned()) => TERN_STATUS_MISALIGNED, ["out"]);
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_tensor_info {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut info = out_struct::<tern_gguf_tensor>(full::<tern_gguf_tensor>());
            let ip = info.ptr();
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_tensor_info(null(), 0, ip)
                => TERN_STATUS_NULL_POINTER, ["gguf"], out: [info]);
            fails!(c, tern_gguf_tensor_info(g, 0, null_mut())
                => TERN_STATUS_NULL_POINTER, ["info"]);
            fails!(c, tern_gguf_tensor_info(misaligned(), 0, ip)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [info]);
            fails!(c, tern_gguf_tensor_info(g, 0, misaligned())
                => TERN_STATUS_MISALIGNED, ["info"]);
            for index in [2, 1000, usize::MAX] {
                fails!(c, tern_gguf_tensor_info(g, index, ip) => inv, ["index"], out: [info]);
            }
            for size in [0, 4, full::<tern_gguf_tensor>() - 1] {
                let mut small = out_struct::<tern_gguf_tensor>(size);
                fails!(c, tern_gguf_tensor_info(g, 0, small.ptr())
                    => inv, ["info", "struct_size"], out: [small]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_kv_info {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut info = out_struct::<tern_gguf_kv>(full::<tern_gguf_kv>());
            let ip = info.ptr();
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_kv_info(null(), 0, ip)
                => TERN_STATUS_NULL_POINTER, ["gguf"], out: [info]);
            fails!(c, tern_gguf_kv_info(g, 0, null_mut()) => TERN_STATUS_NULL_POINTER, ["info"]);
            fails!(c, tern_gguf_kv_info(misaligned(), 0, ip)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [info]);
            fails!(c, tern_gguf_kv_info(g, 0, misaligned()) => TERN_STATUS_MISALIGNED, ["info"]);
            for index in [1000, usize::MAX] {
                fails!(c, tern_gguf_kv_info(g, index, ip) => inv, ["index"], out: [info]);
            }
            for size in [0, 4, full::<tern_gguf_kv>() - 1] {
                let mut small = out_struct::<tern_gguf_kv>(size);
                fails!(c, tern_gguf_kv_info(g, 0, small.ptr())
                    => inv, ["info", "struct_size"], out: [small]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_find_tensor {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut i = 0i64;
            let nul = TERN_STATUS_NULL_POINTER;
            fails!(c, tern_gguf_find_tensor(null(), c"i2s".as_ptr(), &mut i)
                => nul, ["gguf"], out: [i]);
            fails!(c, tern_gguf_find_tensor(g, null(), &mut i) => nul, ["name"], out: [i]);
            fails!(c, tern_gguf_find_tensor(g, c"i2s".as_ptr(), null_mut()) => nul, ["index"]);
            fails!(c, tern_gguf_find_tensor(misaligned(), c"i2s".as_ptr(), &mut i)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [i]);
            fails!(c, tern_gguf_find_tensor(g, c"i2s".as_ptr(), misaligned())
                => TERN_STATUS_MISALIGNED, ["index"]);
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_find_kv {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut i = 0i64;
            let nul = TERN_STATUS_NULL_POINTER;
            fails!(c, tern_gguf_find_kv(null(), c"n".as_ptr(), &mut i) => nul, ["gguf"], out: [i]);
            fails!(c, tern_gguf_find_kv(g, null(), &mut i) => nul, ["key"], out: [i]);
            fails!(c, tern_gguf_find_kv(g, c"n".as_ptr(), null_mut()) => nul, ["index"]);
            fails!(c, tern_gguf_find_kv(misaligned(), c"n".as_ptr(), &mut i)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [i]);
            fails!(c, tern_gguf_find_kv(g, c"n".as_ptr(), misaligned())
                => TERN_STATUS_MISALIGNED, ["index"]);
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_get_string {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut v: *const c_char = null();
            let mut len = 0usize;
            let key = c"general.architecture".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_get_string(null(), key, &mut v, &mut len)
                => nul, ["gguf"], out: [v, len]);
            fails!(c, tern_gguf_get_string(g, null(), &mut v, &mut len)
                => nul, ["key"], out: [v, len]);
            fails!(c, tern_gguf_get_string(g, key, null_mut(), &mut len)
                => nul, ["value"], out: [len]);
            fails!(c, tern_gguf_get_string(misaligned(), key, &mut v, &mut len)
                => TERN_STATUS_MISALIGNED, ["gguf"], out: [v, len]);
            fails!(c, tern_gguf_get_string(g, key, misaligned(), &mut len)
                => TERN_STATUS_MISALIGNED, ["value"], out: [len]);
            fails!(c, tern_gguf_get_string(g, key, &mut v, misaligned())
                => TERN_STATUS_MISALIGNED, ["len"], out: [v]);
            fails!(c, tern_gguf_get_string(g, c"missing".as_ptr(), &mut v, &mut len)
                => inv, ["missing"], out: [v, len]);
            fails!(c, tern_gguf_get_string(g, NOT_UTF8.as_ptr(), &mut v, &mut len)
                => inv, ["key"], out: [v, len]);
            for k in [c"n", c"strs", c"eps"] {
                fails!(c, tern_gguf_get_string(g, k.as_ptr(), &mut v, &mut len)
                    => inv, ["key", "string"], out: [v, len]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_get_int {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut v = 0i64;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_get_int(null(), c"n".as_ptr(), &mut v) => nul, ["gguf"], out: [v]);
            fails!(c, tern_gguf_get_int(g, null(), &mut v) => nul, ["key"], out: [v]);
            fails!(c, tern_gguf_get_int(g, c"n".as_ptr(), null_mut()) => nul, ["value"]);
            fails!(c, tern_gguf_get_int(g, c"n".as_ptr(), misaligned())
                => TERN_STATUS_MISALIGNED, ["value"]);
            fails!(c, tern_gguf_get_int(g, c"missing".as_ptr(), &mut v)
                => inv, ["missing"], out: [v]);
            fails!(c, tern_gguf_get_int(g, NOT_UTF8.as_ptr(), &mut v) => inv, ["key"], out: [v]);
            for k in [c"eps", c"ints", c"general.architecture"] {
                fails!(c, tern_gguf_get_int(g, k.as_ptr(), &mut v)
                    => inv, ["key", "integer"], out: [v]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_get_float {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut v = 0f64;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_get_float(null(), c"eps".as_ptr(), &mut v)
                => nul, ["gguf"], out: [v]);
            fails!(c, tern_gguf_get_float(g, null(), &mut v) => nul, ["key"], out: [v]);
            fails!(c, tern_gguf_get_float(g, c"eps".as_ptr(), null_mut()) => nul, ["value"]);
            fails!(c, tern_gguf_get_float(g, c"eps".as_ptr(), misaligned())
                => TERN_STATUS_MISALIGNED, ["value"]);
            fails!(c, tern_gguf_get_float(g, c"missing".as_ptr(), &mut v)
                => inv, ["missing"], out: [v]);
            for k in [c"n", c"ints", c"general.architecture"] {
                fails!(c, tern_gguf_get_float(g, k.as_ptr(), &mut v)
                    => inv, ["key", "FLOAT32"], out: [v]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_get_array_string {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut v: *const c_char = null();
            let mut len = 0usize;
            let key = c"strs".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_get_array_string(null(), key, 0, &mut v, &mut len)
                => nul, ["gguf"], out: [v, len]);
            fails!(c, tern_gguf_get_array_string(g, null(), 0, &mut v, &mut len)
                => nul, ["key"], out: [v, len]);
            fails!(c, tern_gguf_get_array_string(g, key, 0, null_mut(), &mut len)
                => nul, ["value"], out: [len]);
            fails!(c, tern_gguf_get_array_string(g, key, 0, misaligned(), &mut len)
                => TERN_STATUS_MISALIGNED, ["value"], out: [len]);
            fails!(c, tern_gguf_get_array_string(g, key, 0, &mut v, misaligned())
                => TERN_STATUS_MISALIGNED, ["len"], out: [v]);
            for index in [2, usize::MAX] {
                fails!(c, tern_gguf_get_array_string(g, key, index, &mut v, &mut len)
                    => inv, ["index"], out: [v, len]);
            }
            fails!(c, tern_gguf_get_array_string(g, c"missing".as_ptr(), 0, &mut v, &mut len)
                => inv, ["missing"], out: [v, len]);
            for k in [c"ints", c"general.architecture", c"n"] {
                fails!(c, tern_gguf_get_array_string(g, k.as_ptr(), 0, &mut v, &mut len)
                    => inv, ["key"], out: [v, len]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_get_array_int {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut v = 0i64;
            let key = c"ints".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_get_array_int(null(), key, 0, &mut v) => nul, ["gguf"], out: [v]);
            fails!(c, tern_gguf_get_array_int(g, null(), 0, &mut v) => nul, ["key"], out: [v]);
            fails!(c, tern_gguf_get_array_int(g, key, 0, null_mut()) => nul, ["value"]);
            fails!(c, tern_gguf_get_array_int(g, key, 0, misaligned())
                => TERN_STATUS_MISALIGNED, ["value"]);
            // 1 << 62 elements of 4 bytes wrap to byte offset 0 if the offset is not checked.
            for index in [3, 1 << 62, usize::MAX] {
                fails!(c, tern_gguf_get_array_int(g, key, index, &mut v)
                    => inv, ["index"], out: [v]);
            }
            fails!(c, tern_gguf_get_array_int(g, c"missing".as_ptr(), 0, &mut v)
                => inv, ["missing"], out: [v]);
            for k in [c"strs", c"n", c"eps"] {
                fails!(c, tern_gguf_get_array_int(g, k.as_ptr(), 0, &mut v)
                    => inv, ["key"], out: [v]);
            }
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_matrix_from_gguf {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut m: *mut tern_matrix;
            let name = c"i2s".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let mis = TERN_STATUS_MISALIGNED;
            fails!(c, tern_matrix_from_gguf(null(), g, name, null_mut()) => nul, ["out"]);
            fails!(c, tern_matrix_from_gguf(null(), null(), name, &mut m)
                => nul, ["gguf"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(null(), g, null(), &mut m)
                => nul, ["name"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(misaligned(), g, name, &mut m)
                => mis, ["ctx"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(null(), misaligned(), name, &mut m)
                => mis, ["gguf"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(null(), g, c"nope".as_ptr(), &mut m)
                => TERN_STATUS_INVALID_ARGUMENT, ["nope"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(null(), g, NOT_UTF8.as_ptr(), &mut m)
                => TERN_STATUS_INVALID_ARGUMENT, ["name"], handle: [m]);
            fails!(c, tern_matrix_from_gguf(null(), g, c"f32.weight".as_ptr(), &mut m)
                => TERN_STATUS_UNSUPPORTED, ["f32.weight"], handle: [m]);
            unsafe { tern_gguf_close(g) };
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let g = open_sample();
            misaligned_handle(
                c,
                line!(),
                "tern_matrix_from_gguf(.., misaligned)",
                MISALIGNED_OUT,
                |out| unsafe { tern_matrix_from_gguf(null(), g, c"i2s".as_ptr(), out) },
                tern_matrix_destroy,
            );
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_matrix_from_gguf_layout {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let g = open_sample();
            let mut m: *mut tern_matrix;
            let name = c"i2s".as_ptr();
            let l = i2s(0);
            let nul = TERN_STATUS_NULL_POINTER;
            fails!(c, tern_matrix_from_gguf_layout(null(), g, name, &l, null_mut())
                => nul, ["out"]);
            fails!(c, tern_matrix_from_gguf_layout(null(), null(), name, &l, &mut m)
                => nul, ["gguf"], handle: [m]);
            fails!(c, tern_matrix_from_gguf_layout(null(), g, null(), &l, &mut m)
                => nul, ["name"], handle: [m]);
            fails!(c, tern_matrix_from_gguf_layout(null(), g, name, misaligned(), &mut m)
                => TERN_STATUS_MISALIGNED, ["layout"], handle: [m]);
            for b in bad_layouts() {
                fails!(c, tern_matrix_from_gguf_layout(null(), g, name, b.ptr(), &mut m)
                    => b.status, [b.needle], handle: [m]);
            }
            // A layout of another format than the tensor's.
            let tq = layout(tern_format::TERN_FORMAT_TQ1_0 as i32, 0);
            fails!(c, tern_matrix_from_gguf_layout(null(), g, name, &tq, &mut m)
                => TERN_STATUS_INVALID_ARGUMENT, ["layout"], handle: [m]);
            fails!(c, tern_matrix_from_gguf_layout(null(), g, c"nope".as_ptr(), &l, &mut m)
                => TERN_STATUS_INVALID_ARGUMENT, ["nope"], handle: [m]);
            unsafe { tern_gguf_close(g) };
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let g = open_sample();
            misaligned_handle(
                c,
                line!(),
                "tern_matrix_from_gguf_layout(.., misaligned)",
                MISALIGNED_OUT,
                |out| unsafe {
                    tern_matrix_from_gguf_layout(null(), g, c"i2s".as_ptr(), &i2s(0), out)
                },
                tern_matrix_destroy,
            );
            unsafe { tern_gguf_close(g) };
        });
    }
}

mod tern_gguf_tensor_size {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let mut out = 0u64;
            let dims = [256i64, 4];
            let d = dims.as_ptr();
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let (f32_, tq2) = (0u32, 35u32);
            fails!(c, tern_gguf_tensor_size(f32_, 0, null(), 2, &mut out)
                => TERN_STATUS_NULL_POINTER, ["dims"], out: [out]);
            fails!(c, tern_gguf_tensor_size(f32_, 0, d, 2, null_mut())
                => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_gguf_tensor_size(f32_, 0, misaligned(), 2, &mut out)
                => TERN_STATUS_MISALIGNED, ["dims"], out: [out]);
            fails!(c, tern_gguf_tensor_size(f32_, 0, d, 2, misaligned())
                => TERN_STATUS_MISALIGNED, ["out"]);
            for n in [0, 5, u32::MAX] {
                fails!(c, tern_gguf_tensor_size(f32_, 0, d, n, &mut out)
                    => inv, ["n_dims"], out: [out]);
            }
            for dialect in [-1, 4, i32::MIN] {
                fails!(c, tern_gguf_tensor_size(f32_, dialect, d, 2, &mut out)
                    => inv, ["dialect"], out: [out]);
            }
            let neg = [256i64, -4];
            fails!(c, tern_gguf_tensor_size(f32_, 0, neg.as_ptr(), 2, &mut out)
                => inv, ["dims[1]"], out: [out]);
            for ty in [9999u32, 37, u32::MAX] {
                fails!(c, tern_gguf_tensor_size(ty, 0, d, 2, &mut out)
                    => inv, [&*ty.to_string()], out: [out]);
            }
            let odd = [100i64, 4];
            fails!(c, tern_gguf_tensor_size(tq2, 0, odd.as_ptr(), 2, &mut out)
                => inv, ["256"], out: [out]);
            let huge = [i64::MAX, i64::MAX];
            fails!(c, tern_gguf_tensor_size(f32_, 0, huge.as_ptr(), 2, &mut out)
                => inv, ["overflows"], out: [out]);
        });
    }
}

// ---------------------------------------------------------------------------------------------
// GGUF writer. The writer is the output of the `add` functions: after the failing calls it must
// write exactly the file it wrote before them.

const U8: u32 = tern_gguf_type::TERN_GGUF_TYPE_UINT8 as u32;
const I8: u32 = tern_gguf_type::TERN_GGUF_TYPE_INT8 as u32;
const U16: u32 = tern_gguf_type::TERN_GGUF_TYPE_UINT16 as u32;
const I16: u32 = tern_gguf_type::TERN_GGUF_TYPE_INT16 as u32;
const U32: u32 = tern_gguf_type::TERN_GGUF_TYPE_UINT32 as u32;
const I32: u32 = tern_gguf_type::TERN_GGUF_TYPE_INT32 as u32;
const F32: u32 = tern_gguf_type::TERN_GGUF_TYPE_FLOAT32 as u32;
const BOOL: u32 = tern_gguf_type::TERN_GGUF_TYPE_BOOL as u32;
const STRING: u32 = tern_gguf_type::TERN_GGUF_TYPE_STRING as u32;
const ARRAY: u32 = tern_gguf_type::TERN_GGUF_TYPE_ARRAY as u32;
const U64: u32 = tern_gguf_type::TERN_GGUF_TYPE_UINT64 as u32;

/// A writer holding one string key and one F32 tensor "t".
fn new_writer() -> *mut tern_gguf_writer {
    let mut w = null_mut();
    unsafe {
        ok(tern_gguf_writer_create(null(), &mut w));
        ok(tern_gguf_writer_add_string(
            w,
            c"general.architecture".as_ptr(),
            c"bitnet".as_ptr(),
        ));
        let f = [1f32, 2.0, 3.0, 4.0];
        ok(tern_gguf_writer_add_tensor(
            w,
            c"t".as_ptr(),
            0,
            [4i64].as_ptr(),
            1,
            f.as_ptr().cast(),
            16,
        ));
    }
    w
}

/// The bytes `w` writes now.
fn written(w: *mut tern_gguf_writer) -> Vec<u8> {
    static COUNT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = scratch(&format!("written-{n}.gguf"));
    ok(unsafe { tern_gguf_writer_write(w, cpath(&p).as_ptr()) });
    std::fs::read(p).unwrap()
}

/// Runs `cases` against a fresh writer and checks that the writer's file did not change.
fn writer_contract(cases: impl FnOnce(&mut Cases, *mut tern_gguf_writer)) {
    contract(|c| {
        let w = new_writer();
        let before = written(w);
        cases(c, w);
        c.check(
            line!(),
            "the writer's file is unchanged by the failed calls",
            written(w) == before,
        );
        unsafe { tern_gguf_writer_destroy(w) };
    });
}

mod tern_gguf_writer_create {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let mut w: *mut tern_gguf_writer;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            let base = tern_gguf_writer_options {
                struct_size: full::<tern_gguf_writer_options>(),
                alignment: 0,
                dialect: 0,
            };
            fails!(c, tern_gguf_writer_create(&base, null_mut())
                => TERN_STATUS_NULL_POINTER, ["out"]);
            fails!(c, tern_gguf_writer_create(misaligned(), &mut w)
                => TERN_STATUS_MISALIGNED, ["opts"], handle: [w]);
            for (size, st) in bad_struct_sizes::<tern_gguf_writer_options>() {
                let o = padded(base, size);
                fails!(c, tern_gguf_writer_create(&o.v, &mut w)
                    => st, ["struct_size"], handle: [w]);
            }
            for a in [3, 24, 100, u32::MAX] {
                let o = tern_gguf_writer_options {
                    alignment: a,
                    ..base
                };
                fails!(c, tern_gguf_writer_create(&o, &mut w) => inv, ["alignment"], handle: [w]);
            }
            for d in [-1, 4, i32::MAX] {
                let o = tern_gguf_writer_options { dialect: d, ..base };
                fails!(c, tern_gguf_writer_create(&o, &mut w) => inv, ["dialect"], handle: [w]);
            }
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            misaligned_handle(
                c,
                line!(),
                "tern_gguf_writer_create(NULL, misaligned)",
                MISALIGNED_OUT,
                |out| unsafe { tern_gguf_writer_create(null(), out) },
                tern_gguf_writer_destroy,
            );
        });
    }
}

mod tern_gguf_writer_add_string {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_string(null_mut(), c"k".as_ptr(), c"v".as_ptr())
                => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_string(w, null(), c"v".as_ptr()) => nul, ["key"]);
            fails!(c, tern_gguf_writer_add_string(w, c"k".as_ptr(), null()) => nul, ["value"]);
            fails!(c, tern_gguf_writer_add_string(w, c"".as_ptr(), c"v".as_ptr()) => inv, ["keys"]);
            fails!(c, tern_gguf_writer_add_string(w, NOT_UTF8.as_ptr(), c"v".as_ptr())
                => inv, ["key"]);
            fails!(c, tern_gguf_writer_add_string(
                w, c"general.architecture".as_ptr(), c"v".as_ptr())
                => inv, ["general.architecture"]);
            fails!(c, tern_gguf_writer_add_string(w, c"general.alignment".as_ptr(), c"32".as_ptr())
                => inv, ["general.alignment"]);
        });
    }
}

mod tern_gguf_writer_add_int {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let k = c"k".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_int(null_mut(), k, U32, 1) => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_int(w, null(), U32, 1) => nul, ["key"]);
            fails!(c, tern_gguf_writer_add_int(w, c"".as_ptr(), U32, 1) => inv, ["keys"]);
            fails!(c, tern_gguf_writer_add_int(w, NOT_UTF8.as_ptr(), U32, 1) => inv, ["key"]);
            for ty in [13, 99, u32::MAX, F32, STRING, ARRAY] {
                fails!(c, tern_gguf_writer_add_int(w, k, ty, 1) => inv, ["value_type"]);
            }
            for (ty, v) in [
                (U8, 256),
                (U8, -1),
                (I8, 128),
                (I8, -129),
                (U16, 65536),
                (I16, -32769),
                (U32, -1),
                (U32, 1 << 32),
                (I32, 1 << 31),
                (U64, -1),
                (BOOL, 2),
                (BOOL, -1),
            ] {
                // The message quotes the value (the argument is `value`) and the type.
                fails!(c, tern_gguf_writer_add_int(w, k, ty, v)
                    => inv, [&*v.to_string(), &*format!("type {ty}")]);
            }
            fails!(c, tern_gguf_writer_add_int(w, c"general.architecture".as_ptr(), U32, 1)
                => inv, ["general.architecture"]);
            fails!(c, tern_gguf_writer_add_int(w, c"general.alignment".as_ptr(), U32, 64)
                => inv, ["general.alignment"]);
        });
    }
}

mod tern_gguf_writer_add_float {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let k = c"k".as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_float(null_mut(), k, F32, 1.0) => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_float(w, null(), F32, 1.0) => nul, ["key"]);
            fails!(c, tern_gguf_writer_add_float(w, c"".as_ptr(), F32, 1.0) => inv, ["keys"]);
            for ty in [U32, I32, STRING, 13, u32::MAX] {
                fails!(c, tern_gguf_writer_add_float(w, k, ty, 1.0) => inv, ["value_type"]);
            }
            fails!(c, tern_gguf_writer_add_float(w, c"general.architecture".as_ptr(), F32, 1.0)
                => inv, ["general.architecture"]);
        });
    }
}

mod tern_gguf_writer_add_array {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let k = c"k".as_ptr();
            let data = [1i32, 2, 3];
            let d = data.as_ptr() as *const c_void;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_array(null_mut(), k, I32, d, 3) => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_array(w, null(), I32, d, 3) => nul, ["key"]);
            fails!(c, tern_gguf_writer_add_array(w, k, I32, null(), 3) => nul, ["data"]);
            fails!(c, tern_gguf_writer_add_array(w, c"".as_ptr(), I32, d, 3) => inv, ["keys"]);
            for ty in [13, 99, u32::MAX, STRING, ARRAY] {
                fails!(c, tern_gguf_writer_add_array(w, k, ty, d, 3) => inv, ["elem_type"]);
            }
            for count in [usize::MAX, usize::MAX / 2, isize::MAX as usize / 2] {
                fails!(c, tern_gguf_writer_add_array(w, k, I32, d, count) => inv, ["count"]);
            }
            let bools = [0u8, 1, 5];
            fails!(c, tern_gguf_writer_add_array(w, k, BOOL, bools.as_ptr().cast(), 3)
                => inv, ["element 2"]);
            fails!(c, tern_gguf_writer_add_array(w, c"general.architecture".as_ptr(), I32, d, 3)
                => inv, ["general.architecture"]);
        });
    }
}

mod tern_gguf_writer_add_string_array {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let k = c"k".as_ptr();
            let strs = [c"a".as_ptr(), c"b".as_ptr()];
            let s = strs.as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_string_array(null_mut(), k, s, 2) => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_string_array(w, null(), s, 2) => nul, ["key"]);
            fails!(c, tern_gguf_writer_add_string_array(w, k, null(), 2) => nul, ["values"]);
            fails!(c, tern_gguf_writer_add_string_array(w, k, misaligned(), 2)
                => TERN_STATUS_MISALIGNED, ["values"]);
            let holes = [c"a".as_ptr(), null()];
            fails!(c, tern_gguf_writer_add_string_array(w, k, holes.as_ptr(), 2)
                => nul, ["values[1]"]);
            fails!(c, tern_gguf_writer_add_string_array(w, c"".as_ptr(), s, 2) => inv, ["keys"]);
            fails!(c, tern_gguf_writer_add_string_array(w, NOT_UTF8.as_ptr(), s, 2)
                => inv, ["key"]);
            fails!(c, tern_gguf_writer_add_string_array(w, c"general.architecture".as_ptr(), s, 2)
                => inv, ["general.architecture"]);
        });
    }
}

mod tern_gguf_writer_add_tensor {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let n = c"u".as_ptr();
            let f = [0f32; 8];
            let d = f.as_ptr() as *const c_void;
            let dims = [4i64, 2];
            let dp = dims.as_ptr();
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_tensor(null_mut(), n, 0, dp, 2, d, 32)
                => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_tensor(w, null(), 0, dp, 2, d, 32) => nul, ["name"]);
            fails!(c, tern_gguf_writer_add_tensor(w, n, 0, null(), 2, d, 32) => nul, ["dims"]);
            fails!(c, tern_gguf_writer_add_tensor(w, n, 0, dp, 2, null(), 32) => nul, ["data"]);
            fails!(c, tern_gguf_writer_add_tensor(w, n, 0, misaligned(), 2, d, 32)
                => TERN_STATUS_MISALIGNED, ["dims"]);
            for nd in [0, 5, u32::MAX] {
                fails!(c, tern_gguf_writer_add_tensor(w, n, 0, dp, nd, d, 32) => inv, ["n_dims"]);
            }
            let neg = [4i64, -2];
            fails!(c, tern_gguf_writer_add_tensor(w, n, 0, neg.as_ptr(), 2, d, 32)
                => inv, ["dims[1]"]);
            let huge = [i64::MAX, 4];
            fails!(c, tern_gguf_writer_add_tensor(w, n, 0, huge.as_ptr(), 2, d, 32)
                => inv, ["dims"]);
            for len in [0, 31, 33] {
                // The message quotes data_len's value and the size it should be.
                fails!(c, tern_gguf_writer_add_tensor(w, n, 0, dp, 2, d, len)
                    => inv, [&*format!("got {len}"), "32"]);
            }
            for ty in [9999u32, 37, u32::MAX] {
                fails!(c, tern_gguf_writer_add_tensor(w, n, ty, dp, 2, d, 32)
                    => inv, [&*ty.to_string()]);
            }
            fails!(c, tern_gguf_writer_add_tensor(w, c"t".as_ptr(), 0, dp, 2, d, 32) => inv, ["t"]);
            let long = cs(&"n".repeat(64));
            fails!(c, tern_gguf_writer_add_tensor(w, long.as_ptr(), 0, dp, 2, d, 32)
                => inv, ["name"]);
            fails!(c, tern_gguf_writer_add_tensor(w, NOT_UTF8.as_ptr(), 0, dp, 2, d, 32)
                => inv, ["name"]);
        });
    }
}

mod tern_gguf_writer_add_ternary {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let n = c"m".as_ptr();
            let l = i2s(0);
            let p = packed();
            let pp = p.as_ptr() as *const c_void;
            let nul = TERN_STATUS_NULL_POINTER;
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_add_ternary(null_mut(), n, &l, pp, PACKED, ROWS, COLS)
                => nul, ["writer"]);
            fails!(c, tern_gguf_writer_add_ternary(w, null(), &l, pp, PACKED, ROWS, COLS)
                => nul, ["name"]);
            fails!(c, tern_gguf_writer_add_ternary(w, n, null(), pp, PACKED, ROWS, COLS)
                => nul, ["layout"]);
            fails!(c, tern_gguf_writer_add_ternary(w, n, &l, null(), PACKED, ROWS, COLS)
                => nul, ["packed"]);
            fails!(c, tern_gguf_writer_add_ternary(w, n, misaligned(), pp, PACKED, ROWS, COLS)
                => TERN_STATUS_MISALIGNED, ["layout"]);
            for len in [0, PACKED - 1] {
                fails!(c, tern_gguf_writer_add_ternary(w, n, &l, pp, len, ROWS, COLS)
                    => TERN_STATUS_BUFFER_TOO_SMALL, ["packed_len", "544"]);
            }
            let bad = corrupt_packed();
            fails!(c, tern_gguf_writer_add_ternary(
                w, n, &l, bad.as_ptr().cast(), PACKED, ROWS, COLS)
                => inv, ["byte 3", "code 3"]);
            for b in bad_layouts() {
                fails!(c, tern_gguf_writer_add_ternary(w, n, b.ptr(), pp, PACKED, ROWS, COLS)
                    => b.status, [b.needle]);
            }
            for &(r, k, needle) in BAD_SHAPES {
                fails!(c, tern_gguf_writer_add_ternary(w, n, &l, pp, PACKED, r, k)
                    => inv, [needle]);
            }
            fails!(c, tern_gguf_writer_add_ternary(w, c"t".as_ptr(), &l, pp, PACKED, ROWS, COLS)
                => inv, ["t"]);
            fails!(c, tern_gguf_writer_add_ternary(w, NOT_UTF8.as_ptr(), &l, pp, PACKED, ROWS, COLS)
                => inv, ["name"]);
            // A TL1 shape bitnet.cpp cannot store (rows % 32 != 0).
            let tl1 = layout(tern_format::TERN_FORMAT_TL1 as i32, 0);
            let mut size = 0usize;
            ok(unsafe { tern_packed_size(&tl1, 10, 256, &mut size) });
            let mut t = vec![0u8; size];
            ok(unsafe {
                tern_pack(
                    &tl1,
                    vec![0i8; 2560].as_ptr(),
                    [1f32].as_ptr(),
                    1,
                    10,
                    256,
                    t.as_mut_ptr().cast(),
                    size,
                )
            });
            fails!(c, tern_gguf_writer_add_ternary(w, n, &tl1, t.as_ptr().cast(), size, 10, 256)
                => TERN_STATUS_UNSUPPORTED, ["rows"]);
        });
    }

    /// A MAINLINE writer has no I2_S type.
    #[test]
    fn mainline_refuses_bitnet_types() {
        contract(|c| {
            let o = tern_gguf_writer_options {
                struct_size: full::<tern_gguf_writer_options>(),
                alignment: 0,
                dialect: tern_gguf_dialect::TERN_GGUF_DIALECT_MAINLINE as i32,
            };
            let mut w = null_mut();
            ok(unsafe { tern_gguf_writer_create(&o, &mut w) });
            let p = packed();
            fails!(c, tern_gguf_writer_add_ternary(
                w, c"m".as_ptr(), &i2s(0), p.as_ptr().cast(), PACKED, ROWS, COLS)
                => TERN_STATUS_UNSUPPORTED, ["I2_S"]);
            unsafe { tern_gguf_writer_destroy(w) };
        });
    }
}

mod tern_gguf_writer_write {
    use super::*;

    #[test]
    fn errors() {
        writer_contract(|c, w| {
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_gguf_writer_write(null_mut(), c"x.gguf".as_ptr())
                => TERN_STATUS_NULL_POINTER, ["writer"]);
            fails!(c, tern_gguf_writer_write(w, null()) => TERN_STATUS_NULL_POINTER, ["path"]);
            fails!(c, tern_gguf_writer_write(w, NOT_UTF8.as_ptr()) => inv, ["path"]);
            // A missing directory, and a path that is a directory: nothing is left behind.
            let dir = scratch("write-errors");
            std::fs::create_dir_all(&dir).unwrap();
            let missing = dir.join("no-such-dir").join("x.gguf");
            fails!(c, tern_gguf_writer_write(w, cpath(&missing).as_ptr())
                => inv, [missing.to_str().unwrap()]);
            let target = dir.join("is-a-dir");
            std::fs::create_dir_all(&target).unwrap();
            let st = unsafe { tern_gguf_writer_write(w, cpath(&target).as_ptr()) };
            let msg = message();
            let mut problems = Vec::new();
            if st == TERN_STATUS_OK || msg.is_empty() || !mentions(&msg, target.to_str().unwrap()) {
                problems.push(format!("status {st:?}; the message must name the path"));
            }
            c.record(
                line!(),
                "tern_gguf_writer_write(w, <a directory>)",
                problems,
                &msg,
            );
            let left: Vec<_> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            c.check(
                line!(),
                "no temporary file is left after failed writes",
                left == ["is-a-dir"],
            );
        });
    }
}

// ---------------------------------------------------------------------------------------------
// CUDA. Without a driver and GPU (or in a build without the `cuda` feature) every tern_cuda_*
// call answers TERN_STATUS_NO_DEVICE before it looks at its arguments, and the message says why;
// handles are still reset to NULL. With a GPU, the argument checks are reachable and run.

fn cuda() -> bool {
    tern_cuda_available()
}

/// The status and message word a CUDA call with a bad argument gives here: the argument's
/// check with a GPU, NO_DEVICE (and a message about CUDA) without.
fn cuda_expect(with_gpu: tern_status, needle: &'static str) -> (tern_status, &'static str) {
    if cuda() {
        (with_gpu, needle)
    } else {
        (TERN_STATUS_NO_DEVICE, "CUDA")
    }
}

mod tern_cuda_matrix_upload {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let m = matrix();
            let mut cm: *mut tern_cuda_matrix;
            let (st, needle) = cuda_expect(TERN_STATUS_NULL_POINTER, "out");
            fails!(c, tern_cuda_matrix_upload(null(), m, 0, null_mut()) => st, [needle]);
            let (st, needle) = cuda_expect(TERN_STATUS_NULL_POINTER, "matrix");
            fails!(c, tern_cuda_matrix_upload(null(), null(), 0, &mut cm)
                => st, [needle], handle: [cm]);
            let (st, needle) = cuda_expect(TERN_STATUS_MISALIGNED, "matrix");
            fails!(c, tern_cuda_matrix_upload(null(), misaligned(), 0, &mut cm)
                => st, [needle], handle: [cm]);
            for device in [-1, 9999, i32::MIN] {
                let (st, needle) = cuda_expect(TERN_STATUS_INVALID_ARGUMENT, "device");
                fails!(c, tern_cuda_matrix_upload(null(), m, device, &mut cm)
                    => st, [needle], handle: [cm]);
            }
            unsafe { tern_matrix_destroy(m) };
        });
    }

    #[test]
    fn misaligned_out() {
        contract(|c| {
            let m = matrix();
            let want = cuda_expect(TERN_STATUS_MISALIGNED, "out");
            misaligned_handle(
                c,
                line!(),
                "tern_cuda_matrix_upload(.., misaligned)",
                want,
                |out| unsafe { tern_cuda_matrix_upload(null(), m, 0, out) },
                tern_cuda_matrix_destroy,
            );
            unsafe { tern_matrix_destroy(m) };
        });
    }
}

/// With a GPU: a matrix on device 0 for the argument checks of the GEMM calls.
fn cuda_matrix() -> Option<*mut tern_cuda_matrix> {
    if !cuda() {
        return None;
    }
    let m = matrix();
    let mut cm = null_mut();
    ok(unsafe { tern_cuda_matrix_upload(null(), m, 0, &mut cm) });
    unsafe { tern_matrix_destroy(m) };
    Some(cm)
}

/// A non-NULL pointer value for device-pointer arguments the library must refuse before it
/// launches anything (never dereferenced on the host).
fn fake_device_ptr() -> *mut c_void {
    std::ptr::dangling_mut::<u64>().cast()
}

mod tern_cuda_gemm {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let dev = fake_device_ptr();
            let (st, needle) = cuda_expect(TERN_STATUS_NULL_POINTER, "matrix");
            fails!(c, tern_cuda_gemm(null(), dev, 0, 2, dev, 0, null_mut()) => st, [needle]);
            let Some(cm) = cuda_matrix() else {
                // Without a GPU the other arguments are never looked at: one more call shows it.
                fails!(c, tern_cuda_gemm(null(), null(), 99, -1, null_mut(), 99, null_mut())
                    => TERN_STATUS_NO_DEVICE, ["CUDA"]);
                return;
            };
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_cuda_gemm(cm, null(), 0, 2, dev, 0, null_mut())
                => TERN_STATUS_NULL_POINTER, ["d_x"]);
            fails!(c, tern_cuda_gemm(cm, dev, 0, 2, null_mut(), 0, null_mut())
                => TERN_STATUS_NULL_POINTER, ["d_y"]);
            for n in [0, -1, i64::MIN] {
                fails!(c, tern_cuda_gemm(cm, dev, 0, n, dev, 0, null_mut()) => inv, ["n_tokens"]);
            }
            for dtype in [-1, 3, i32::MAX] {
                fails!(c, tern_cuda_gemm(cm, dev, dtype, 2, dev, 0, null_mut())
                    => inv, ["x_dtype"]);
                fails!(c, tern_cuda_gemm(cm, dev, 0, 2, dev, dtype, null_mut())
                    => inv, ["y_dtype"]);
            }
            unsafe { tern_cuda_matrix_destroy(cm) };
        });
    }
}

mod tern_cuda_gemm_ex {
    use super::*;

    #[test]
    fn errors() {
        contract(|c| {
            let dev = fake_device_ptr();
            let base = tern_cuda_gemm_options {
                struct_size: full::<tern_cuda_gemm_options>(),
                compat: 0,
                x_stride: 0,
                y_stride: 0,
                bias: null(),
            };
            let (st, needle) = cuda_expect(TERN_STATUS_NULL_POINTER, "matrix");
            fails!(c, tern_cuda_gemm_ex(null(), dev, 0, 2, dev, 0, null_mut(), &base)
                => st, [needle]);
            let Some(cm) = cuda_matrix() else {
                let bad = padded(base, 0);
                fails!(c, tern_cuda_gemm_ex(
                    null(), null(), 99, -1, null_mut(), 99, null_mut(), &bad.v)
                    => TERN_STATUS_NO_DEVICE, ["CUDA"]);
                return;
            };
            let inv = TERN_STATUS_INVALID_ARGUMENT;
            fails!(c, tern_cuda_gemm_ex(cm, null(), 0, 2, dev, 0, null_mut(), &base)
                => TERN_STATUS_NULL_POINTER, ["d_x"]);
            fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, null_mut(), 0, null_mut(), &base)
                => TERN_STATUS_NULL_POINTER, ["d_y"]);
            fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, dev, 0, null_mut(), misaligned())
                => TERN_STATUS_MISALIGNED, ["opts"]);
            for (size, st) in bad_struct_sizes::<tern_cuda_gemm_options>() {
                let o = padded(base, size);
                fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, dev, 0, null_mut(), &o.v)
                    => st, ["struct_size"]);
            }
            for compat in [-1, 4, i32::MAX] {
                let o = tern_cuda_gemm_options { compat, ..base };
                fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, dev, 0, null_mut(), &o)
                    => inv, ["compat"]);
            }
            for s in [-1, COLS - 1] {
                let o = tern_cuda_gemm_options {
                    x_stride: s,
                    ..base
                };
                fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, dev, 0, null_mut(), &o)
                    => inv, ["x_stride"]);
            }
            for s in [-1, ROWS - 1] {
                let o = tern_cuda_gemm_options {
                    y_stride: s,
                    ..base
                };
                fails!(c, tern_cuda_gemm_ex(cm, dev, 0, 2, dev, 0, null_mut(), &o)
                    => inv, ["y_stride"]);
            }
            unsafe { tern_cuda_matrix_destroy(cm) };
        });
    }
}
