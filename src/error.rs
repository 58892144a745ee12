//! The library's error: a kind (mapped 1:1 onto a C status) and a message that says what was
//! wrong and what is allowed. The C boundary turns it into `tern_status` + the last error.
//!
//! ```
//! use tern::{ErrorKind, Shape};
//!
//! let e = Shape::new(0, 256).unwrap_err();
//! assert_eq!(e.kind, ErrorKind::InvalidArgument);
//! assert_eq!(e.message, "rows and cols must be > 0 (got rows = 0, cols = 256)");
//! ```

use std::fmt;

/// What went wrong, independent of the message. Each kind maps to one `tern_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// A required pointer was NULL (C callers only).
    NullPointer,
    /// An argument is out of range or inconsistent with the others, or input bytes are corrupt.
    InvalidArgument,
    /// A pointer lacks the alignment its type needs (C callers only).
    Misaligned,
    /// A buffer is smaller than the call needs.
    BufferTooSmall,
    /// Valid, but not supported: a format without a GGUF id in a dialect, an ISA level this
    /// CPU lacks, a compat mode that does not apply to a format.
    Unsupported,
    /// An allocation failed.
    OutOfMemory,
    /// A bug, or a failure of the system (threads, files).
    Internal,
}

/// An error: what kind, and a message for people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// The kind (the C status it becomes).
    pub kind: ErrorKind,
    /// What was wrong and what is allowed.
    pub message: String,
}

/// `std::result::Result` with tern's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    /// An [`ErrorKind::InvalidArgument`] error.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    /// An [`ErrorKind::Unsupported`] error.
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
    }
    /// An allocation of `bytes` bytes for `what` failed (or its size overflows the address
    /// space); the message names both.
    pub fn out_of_memory(what: &str, bytes: usize) -> Self {
        Self::new(
            ErrorKind::OutOfMemory,
            format!("out of memory: cannot allocate {bytes} bytes for {what}"),
        )
    }
    /// `what` is the buffer's parameter name; the message names both sizes.
    pub fn too_small(what: &str, got: usize, required: usize) -> Self {
        Self::new(
            ErrorKind::BufferTooSmall,
            format!("{what} is {got} bytes < required {required} bytes"),
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

/// Reserves room for `additional` more elements in `v` without aborting the process when the
/// allocator refuses: the refusal is an `OutOfMemory` error naming `what` and the size.
pub(crate) fn try_reserve<T>(v: &mut Vec<T>, additional: usize, what: &str) -> Result<()> {
    v.try_reserve_exact(additional)
        .map_err(|_| Error::out_of_memory(what, additional.saturating_mul(size_of::<T>())))
}

/// `n` copies of `value`, allocated fallibly (see `try_reserve`).
pub(crate) fn try_vec<T: Clone>(n: usize, value: T, what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, n, what)?;
    v.resize(n, value);
    Ok(v)
}

/// A copy of `s`, allocated fallibly (see `try_reserve`).
pub(crate) fn try_to_vec<T: Clone>(s: &[T], what: &str) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, s.len(), what)?;
    v.extend_from_slice(s);
    Ok(v)
}

/// The items of an iterator of known length, allocated fallibly (see `try_reserve`).
pub(crate) fn try_collect<T>(
    items: impl ExactSizeIterator<Item = T>,
    what: &str,
) -> Result<Vec<T>> {
    let mut v = Vec::new();
    try_reserve(&mut v, items.len(), what)?;
    v.extend(items);
    Ok(v)
}

/// A Rust enum that mirrors a C enum (`ffi::enums` checks at compile time that both have the
/// same values). Reading a C integer is a lookup in `TABLE`, whose labels the error lists.
pub(crate) trait CEnum: Copy + 'static {
    /// Every value with the label messages give it, in C order.
    const TABLE: &'static [(Self, &'static str)];
    /// What a value is called in messages ("compat", "GGUF dialect").
    const WHAT: &'static str;

    /// The C value.
    fn value(self) -> i64;

    /// The value `v`, or an error listing the allowed ones.
    fn from_c(v: i64) -> Result<Self> {
        Self::from_c_as(v, || format!("{} {v}", Self::WHAT))
    }

    /// `from_c` with `subject` (e.g. "x_dtype = 7") naming the value in the message. The subject
    /// is built only on error: the GEMM's steady path parses enums and must not allocate.
    fn from_c_as(v: i64, subject: impl FnOnce() -> String) -> Result<Self> {
        Self::TABLE
            .iter()
            .find(|(x, _)| x.value() == v)
            .map(|&(x, _)| x)
            .ok_or_else(|| {
                let allowed: Vec<String> = Self::TABLE
                    .iter()
                    .map(|(x, label)| format!("{} = {label}", x.value()))
                    .collect();
                Error::invalid(format!(
                    "{} is unknown (allowed: {})",
                    subject(),
                    allowed.join(", ")
                ))
            })
    }
}

/// Implements `CEnum` for a fieldless enum from its table (crate-internal: exported only
/// because `macro_rules!` paths are; hidden).
#[doc(hidden)]
#[macro_export]
macro_rules! c_enum {
    ($ty:ty, $what:expr, [$(($v:path, $label:expr)),* $(,)?]) => {
        impl $crate::error::CEnum for $ty {
            const TABLE: &'static [(Self, &'static str)] = &[$(($v, $label)),*];
            const WHAT: &'static str = $what;
            fn value(self) -> i64 {
                self as i64
            }
        }
    };
}
