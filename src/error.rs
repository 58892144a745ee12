//! The library's internal error: a kind (mapped 1:1 onto a C status) and a message that says what
//! was wrong and what is allowed. The FFI boundary turns it into `tern_status` + last error.

use std::fmt;

/// What went wrong, independent of the message. Each kind maps to one `tern_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    NullPointer,
    InvalidArgument,
    Misaligned,
    BufferTooSmall,
    Unsupported,
    OutOfMemory,
    Internal,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }
    pub fn unsupported(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unsupported, message)
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
