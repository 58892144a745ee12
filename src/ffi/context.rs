//! `tern_context`: create, destroy, kernel names.

use std::ffi::c_char;

use super::args::{handle_out, read_options, reference};
use super::boundary::{status_call, value_call};
use super::types::{tern_context_options, tern_status};
use crate::context::{Context, DEFAULT_SPIN_US};
use crate::error::Result;
use crate::format::Layout;

/// Kernel dispatch table and threads, chosen once. Immutable after creation: one context may be
/// used from any number of threads at once. Create with `tern_context_create`, free with
/// `tern_context_destroy`.
pub struct tern_context {
    pub(crate) inner: Context,
}

const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<tern_context>();
};

pub(crate) const DEFAULT_CONTEXT_OPTIONS: tern_context_options = tern_context_options {
    struct_size: size_of::<tern_context_options>() as u32,
    max_isa: 0,
    n_threads: 0,
    spin_us: DEFAULT_SPIN_US,
};

/// The caller's context, or the process-wide default one for NULL.
///
/// # Safety
/// Non-NULL `ctx` must come from `tern_context_create` and not be destroyed.
pub(crate) unsafe fn context_or_global<'a>(ctx: *const tern_context) -> Result<&'a Context> {
    if ctx.is_null() {
        Context::global()
    } else {
        Ok(&unsafe { reference(ctx, "ctx") }?.inner)
    }
}

/// Creates a context. `opts` may be NULL (best ISA, all cores, `TERN_DEFAULT_SPIN_US`). On
/// success `*out` receives a context that the caller frees with `tern_context_destroy`; on
/// failure `*out` is set to NULL. Threads that cannot start are `TERN_STATUS_INTERNAL` with the
/// system's reason. Thread-safe.
///
/// The default context (`ctx` = NULL anywhere) is made by the first call that needs it, with the
/// defaults above; if it cannot be made, that call fails with the reason and the next call that
/// needs it tries again.
///
/// # Safety
/// `out` must be a valid pointer; non-NULL `opts` must point to at least `opts->struct_size` bytes.
#[must_use]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_context_create(
    opts: *const tern_context_options,
    out: *mut *mut tern_context,
) -> tern_status {
    status_call(|| {
        unsafe { handle_out(out, "out") }?;
        let opts = unsafe { read_options(opts, DEFAULT_CONTEXT_OPTIONS, "opts") }?;
        let inner = Context::with_spin(opts.max_isa, opts.n_threads, opts.spin_us)?;
        // SAFETY: as above.
        unsafe { *out = Box::into_raw(Box::new(tern_context { inner })) };
        Ok(())
    })
}

/// Frees a context. NULL is a no-op. Destroying a context twice, or while another thread uses
/// it, is undefined behaviour.
///
/// # Safety
/// Non-NULL `ctx` must come from `tern_context_create` and not be destroyed yet.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_context_destroy(ctx: *mut tern_context) {
    unsafe { super::boundary::free_handle(ctx) }
}

/// Static name of the kernel `ctx` (NULL = default context) runs for `format`, e.g.
/// "i2_s/scalar". Returns NULL and sets the last error for an unknown or unimplemented format.
/// Thread-safe; do not free.
///
/// # Safety
/// Non-NULL `ctx` must be a live context.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn tern_context_kernel_name(
    ctx: *const tern_context,
    format: i32,
) -> *const c_char {
    value_call(std::ptr::null(), || {
        let ctx = unsafe { context_or_global(ctx) }?;
        // Every format is re-laid-out into the kernels' layout at matrix creation.
        let format = Layout::new(format, 0, 0, 0, 0)?.format();
        Ok(crate::matrix::kernel_name(ctx.kernels, format).as_ptr())
    })
}
