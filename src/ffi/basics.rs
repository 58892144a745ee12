//! Version, status names, last error and CPU features.

use std::ffi::c_char;

use super::boundary::last_error_ptr;
use crate::kernel::cpu_features;

const fn version_number() -> u32 {
    let v = env!("CARGO_PKG_VERSION").as_bytes();
    let mut parts = [0u32; 3];
    let (mut i, mut p) = (0, 0);
    while i < v.len() && p < 3 {
        match v[i] {
            b'.' => p += 1,
            b'0'..=b'9' => parts[p] = parts[p] * 10 + (v[i] - b'0') as u32,
            _ => break,
        }
        i += 1;
    }
    (parts[0] << 16) | (parts[1] << 8) | parts[2]
}

/// The library version as `(MAJOR << 16) | (MINOR << 8) | PATCH`; equals `TERN_VERSION_NUMBER`
/// of the header the library was built with. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn tern_version() -> u32 {
    version_number()
}

/// The library version as a static string such as "0.1.0". Thread-safe; never NULL.
#[unsafe(no_mangle)]
pub extern "C" fn tern_version_string() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Static name of a status value, e.g. "TERN_STATUS_BUFFER_TOO_SMALL", or
/// "TERN_STATUS_UNKNOWN" for a value that is not a status. Thread-safe; never NULL; do not free.
#[unsafe(no_mangle)]
pub extern "C" fn tern_status_name(status: i32) -> *const c_char {
    let name = usize::try_from(status)
        .ok()
        .and_then(|i| super::enums::STATUS_NAMES.get(i))
        .map_or(c"TERN_STATUS_UNKNOWN", |&(_, name)| name);
    name.as_ptr()
}

/// The message of the last failed `tern_*` call on this thread, or NULL if the last call
/// succeeded. UTF-8, NUL-terminated, owned by the library, valid until the next `tern_*` call on
/// the same thread (this function itself does not reset it).
#[unsafe(no_mangle)]
pub extern "C" fn tern_last_error_message() -> *const c_char {
    last_error_ptr()
}

/// The CPU features this process can use, as `tern_cpu_feature` bits. Thread-safe.
#[unsafe(no_mangle)]
pub extern "C" fn tern_cpu_features() -> u64 {
    cpu_features()
}
