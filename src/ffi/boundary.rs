//! The one place where Rust meets C: every exported body runs inside `status_call` or
//! `value_call`, which clear the thread's last error, catch panics, and turn errors into a status
//! plus a message.

use std::cell::RefCell;
use std::ffi::{CString, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::types::tern_status;
use crate::error::{ErrorKind, Result};

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    let text = CString::new(message.replace('\0', "\u{FFFD}")).expect("NULs were replaced");
    LAST_ERROR.with(|e| *e.borrow_mut() = Some(text));
}

fn clear_last_error() {
    LAST_ERROR.with(|e| *e.borrow_mut() = None);
}

/// The thread's last error text, or NULL. Valid until the next `tern_*` call on this thread.
pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ref().map_or(std::ptr::null(), |s| s.as_ptr()))
}

fn status_of(kind: ErrorKind) -> tern_status {
    match kind {
        ErrorKind::NullPointer => tern_status::TERN_STATUS_NULL_POINTER,
        ErrorKind::InvalidArgument => tern_status::TERN_STATUS_INVALID_ARGUMENT,
        ErrorKind::Misaligned => tern_status::TERN_STATUS_MISALIGNED,
        ErrorKind::BufferTooSmall => tern_status::TERN_STATUS_BUFFER_TOO_SMALL,
        ErrorKind::Unsupported => tern_status::TERN_STATUS_UNSUPPORTED,
        ErrorKind::OutOfMemory => tern_status::TERN_STATUS_OUT_OF_MEMORY,
        ErrorKind::Internal => tern_status::TERN_STATUS_INTERNAL,
    }
}

fn panic_text(payload: &(dyn std::any::Any + Send)) -> String {
    let text = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic payload".into());
    format!("internal error (panic caught at the C boundary, please report it): {text}")
}

/// Runs a status-returning body: OK, or the error's status with its message as last error.
pub fn status_call(body: impl FnOnce() -> Result<()>) -> tern_status {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => tern_status::TERN_STATUS_OK,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            status_of(e.kind)
        }
        Err(payload) => {
            set_last_error(&panic_text(payload.as_ref()));
            tern_status::TERN_STATUS_PANIC
        }
    }
}

/// Runs a body that returns a plain value: on error or panic the message becomes the last
/// error and `fallback` (NULL, 0) is returned.
pub fn value_call<T>(fallback: T, body: impl FnOnce() -> Result<T>) -> T {
    clear_last_error();
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            set_last_error(&e.message);
            fallback
        }
        Err(payload) => {
            set_last_error(&panic_text(payload.as_ref()));
            fallback
        }
    }
}

/// Frees a handle that `Box::into_raw` made (the body of every `_destroy` function): NULL is a
/// no-op, and a panic in a destructor is caught rather than unwinding into C.
///
/// # Safety
/// Non-NULL `handle` must come from `Box::into_raw` and not be freed yet.
pub unsafe fn free_handle<T>(handle: *mut T) {
    if !handle.is_null() {
        // SAFETY: the caller hands back ownership of a boxed handle.
        let _ = catch_unwind(AssertUnwindSafe(|| drop(unsafe { Box::from_raw(handle) })));
    }
}
