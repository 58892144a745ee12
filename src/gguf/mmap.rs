//! A read-only memory map of a whole file (libc `mmap`, `PROT_READ`, `MAP_PRIVATE`).
//!
//! The map stays valid while the value lives. As with every mmap reader (ggml's included), a file
//! truncated by another process while mapped makes later reads fault; tern never writes files it
//! has mapped.

use std::fs::OpenOptions;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// A read-only memory map of a whole file.
pub struct Mmap {
    ptr: *const u8,
    len: usize,
}

// SAFETY: the mapping is read-only and private; sharing `&[u8]` views across threads is fine.
unsafe impl Send for Mmap {}
unsafe impl Sync for Mmap {}

impl Mmap {
    /// Maps `path` read-only. An empty file gives an empty map (no mmap call).
    pub fn open(path: &Path) -> Result<Self> {
        // O_NONBLOCK: opening a FIFO for reading would otherwise block until a writer appears
        // (forever, for a stray path); with it the open returns at once and the regular-file
        // check below, on the opened descriptor (no race with a rename), rejects it. The flag
        // changes nothing for regular files, and mmap ignores it.
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| Error::invalid(format!("cannot open '{}': {e}", path.display())))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::invalid(format!("cannot stat '{}': {e}", path.display())))?;
        if !meta.is_file() {
            return Err(Error::invalid(format!(
                "'{}' is not a regular file",
                path.display()
            )));
        }
        let len = usize::try_from(meta.len())
            .ok()
            .filter(|&l| l <= isize::MAX as usize)
            .ok_or_else(|| {
                Error::invalid(format!(
                    "'{}' is too large to map ({} bytes)",
                    path.display(),
                    meta.len()
                ))
            })?;
        if len == 0 {
            return Ok(Self {
                ptr: std::ptr::NonNull::<u8>::dangling().as_ptr(),
                len: 0,
            });
        }
        // SAFETY: a fresh read-only private mapping of an open file descriptor; the result is
        // checked against MAP_FAILED. The descriptor may be closed after mmap returns.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(Error::new(
                ErrorKind::OutOfMemory,
                format!("cannot map '{}' ({len} bytes): {e}", path.display()),
            ));
        }
        Ok(Self {
            ptr: ptr as *const u8,
            len,
        })
    }

    /// The mapped bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` maps `len` readable bytes (or is dangling with len 0) for our lifetime.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        if self.len != 0 {
            // SAFETY: unmaps exactly the region mapped in `open`.
            unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
        }
    }
}
