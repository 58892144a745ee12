//! Argument checks for C pointers: NULL, alignment, `(ptr, len)` sizes, integer ranges and
//! versioned `struct_size` structs. Every check returns an error that names the parameter.

use std::mem::{align_of, size_of};
use std::ops::Range;

use crate::error::{Error, ErrorKind, Result};

fn null(name: &str) -> Error {
    Error::new(ErrorKind::NullPointer, format!("{name} is NULL"))
}

fn check_ptr<T>(ptr: *const T, name: &str) -> Result<()> {
    if ptr.is_null() {
        return Err(null(name));
    }
    if !(ptr as usize).is_multiple_of(align_of::<T>()) {
        return Err(Error::new(
            ErrorKind::Misaligned,
            format!(
                "{name} = {ptr:p} is not aligned to {} bytes",
                align_of::<T>()
            ),
        ));
    }
    Ok(())
}

/// A Rust slice may span at most `isize::MAX` bytes (C's PTRDIFF_MAX); a larger `len` cannot
/// describe a real buffer, and building the slice anyway would be undefined behaviour.
fn check_len<T>(len: usize, name: &str) -> Result<()> {
    if len
        .checked_mul(size_of::<T>())
        .is_none_or(|bytes| bytes > isize::MAX as usize)
    {
        return Err(Error::invalid(format!(
            "{name}: {len} elements of {} bytes exceed PTRDIFF_MAX ({}) bytes",
            size_of::<T>(),
            isize::MAX
        )));
    }
    Ok(())
}

/// A caller's buffer of `len` elements, read only. Every `(ptr, len)` of the C API becomes a
/// slice here or in `slice_mut`: NULL, misalignment and `len` beyond PTRDIFF_MAX bytes are errors.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` readable elements for the returned lifetime.
pub unsafe fn slice<'a, T>(ptr: *const T, len: usize, name: &str) -> Result<&'a [T]> {
    check_ptr(ptr, name)?;
    check_len::<T>(len, name)?;
    // SAFETY: checked non-NULL and aligned; the caller guarantees `len` elements.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// A caller's buffer of `len` elements, written.
///
/// # Safety
/// Non-NULL `ptr` must point to `len` writable elements, not aliased, for the returned lifetime.
pub unsafe fn slice_mut<'a, T>(ptr: *mut T, len: usize, name: &str) -> Result<&'a mut [T]> {
    check_ptr(ptr, name)?;
    check_len::<T>(len, name)?;
    // SAFETY: as for `slice`, plus exclusive access promised by the caller.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// Like `slice`, but NULL means "not given".
///
/// # Safety
/// As for `slice`.
pub unsafe fn optional_slice<'a, T>(
    ptr: *const T,
    len: usize,
    name: &str,
) -> Result<Option<&'a [T]>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        unsafe { slice(ptr, len, name) }.map(Some)
    }
}

/// Like `slice_mut`, but NULL means "not wanted".
///
/// # Safety
/// As for `slice_mut`.
pub unsafe fn optional_slice_mut<'a, T>(
    ptr: *mut T,
    len: usize,
    name: &str,
) -> Result<Option<&'a mut [T]>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        unsafe { slice_mut(ptr, len, name) }.map(Some)
    }
}

/// The bytes of a caller's buffer that a call reads or writes: `n` rows at `base + t·stride`,
/// bytes `[start, end)` of each (`start ≤ end ≤ stride`).
#[derive(Clone, Copy)]
pub struct Span {
    name: &'static str,
    written: bool,
    base: usize,
    n: usize,
    stride: usize,
    start: usize,
    end: usize,
}

impl Span {
    /// `n` rows of `stride` elements of `T`, elements `[start, end)` of each, read by the call.
    /// Sizes saturate: a length too large for the address space is refused by the slice checks,
    /// and a one-row span never uses its stride.
    pub fn rows<T>(
        name: &'static str,
        ptr: *const T,
        n: usize,
        stride: usize,
        cols: Range<usize>,
    ) -> Self {
        let size = size_of::<T>();
        Self {
            name,
            written: false,
            base: ptr as usize,
            n,
            stride: stride.saturating_mul(size),
            start: cols.start.saturating_mul(size),
            end: cols.end.saturating_mul(size),
        }
    }

    /// `len` contiguous elements of `T`, read by the call.
    pub fn flat<T>(name: &'static str, ptr: *const T, len: usize) -> Self {
        Self::rows(name, ptr, 1, len, 0..len)
    }

    /// The same bytes, written by the call.
    pub fn written(self) -> Self {
        Self {
            written: true,
            ..self
        }
    }

    fn is_empty(&self) -> bool {
        self.base == 0 || self.n == 0 || self.start >= self.end
    }

    fn access(&self) -> &'static str {
        if self.written { "written" } else { "read" }
    }

    /// Its first and one-past-last byte address (u128: no overflow).
    fn bounds(&self) -> (u128, u128) {
        let first = self.base as u128 + self.start as u128;
        let row = (self.n as u128 - 1) * self.stride as u128;
        (first, self.base as u128 + row + self.end as u128)
    }

    /// Whether a byte of `self` is also a byte of `other`: for each row of `self`, the first
    /// row of `other` that ends after that row's start is the only one that may start before
    /// its end (rows of one span do not overlap each other).
    fn overlaps(&self, other: &Span) -> bool {
        if self.is_empty() || other.is_empty() {
            return false;
        }
        let ((lo, hi), (olo, ohi)) = (self.bounds(), other.bounds());
        if hi <= olo || ohi <= lo {
            return false;
        }
        let (ob, os) = (other.base as u128, other.stride as u128);
        let (ostart, oend) = (other.start as u128, other.end as u128);
        (0..self.n as u128).any(|u| {
            let a = self.base as u128 + u * self.stride as u128 + self.start as u128;
            let b = a + (self.end - self.start) as u128;
            let t = if ob + oend > a {
                0
            } else {
                (a - (ob + oend)) / os.max(1) + 1
            };
            t < other.n as u128 && ob + t * os + ostart < b
        })
    }
}

/// Refuses a call in which a written span shares a byte with any other span (an input it
/// reads, or another output): Rust may not hold a mutable slice aliasing another slice, and
/// multi-threaded kernels write outputs while other threads still read the inputs, so an
/// in-place call would compute from half-written values. Checked on the raw pointers before
/// any slice exists. NULL pointers and empty spans are left to the other checks.
pub fn check_no_overlap(spans: &[Span]) -> Result<()> {
    for (i, a) in spans.iter().enumerate() {
        for b in &spans[i + 1..] {
            if (a.written || b.written) && a.overlaps(b) {
                let (w, o) = if a.written { (a, b) } else { (b, a) };
                let ((lo, hi), (olo, ohi)) = (w.bounds(), o.bounds());
                return Err(Error::invalid(format!(
                    "{} (written bytes {lo:#x}..{hi:#x}) overlaps {} ({} bytes {olo:#x}..{ohi:#x}); \
                     no output may share memory with an input or another output (in-place calls are not supported)",
                    w.name,
                    o.name,
                    o.access()
                )));
            }
        }
    }
    Ok(())
}

/// Checks a caller's buffer of `len` elements as `slice` does (NULL, alignment, size) without
/// making a slice, and returns its span, read by the call: `check_no_overlap` runs on these
/// before any slice of an aliasing pair could exist.
pub fn span<T>(name: &'static str, ptr: *const T, len: usize) -> Result<Span> {
    check_ptr(ptr, name)?;
    check_len::<T>(len, name)?;
    Ok(Span::flat(name, ptr, len))
}

/// Like `span`, but NULL means "not given" (an empty span).
pub fn optional_span<T>(name: &'static str, ptr: *const T, len: usize) -> Result<Span> {
    if ptr.is_null() {
        Ok(Span::flat(name, ptr, 0))
    } else {
        span(name, ptr, len)
    }
}

/// A handle out-param (`T **out`): NULL and misalignment are errors, checked before anything
/// is stored through it; otherwise `*out` is set to NULL, so that a later failure leaves NULL.
///
/// # Safety
/// Non-NULL, aligned `out` must be writable.
pub unsafe fn handle_out<T>(out: *mut *mut T, name: &str) -> Result<()> {
    check_ptr(out as *const *mut T, name)?;
    // SAFETY: checked non-NULL and aligned; writable by the caller's contract.
    unsafe { *out = std::ptr::null_mut() };
    Ok(())
}

/// A caller's object passed by reference.
///
/// # Safety
/// Non-NULL `ptr` must point to a live `T`.
pub unsafe fn reference<'a, T>(ptr: *const T, name: &str) -> Result<&'a T> {
    check_ptr(ptr, name)?;
    // SAFETY: checked non-NULL and aligned; liveness is the caller's contract.
    Ok(unsafe { &*ptr })
}

/// Checks a dimension or count that must be positive and returns it as `usize`.
pub fn positive(v: i64, name: &str) -> Result<usize> {
    if v <= 0 {
        return Err(Error::invalid(format!("{name} must be > 0 (got {v})")));
    }
    usize::try_from(v).map_err(|_| Error::invalid(format!("{name} = {v} does not fit in size_t")))
}

/// A row stride in elements: 0 means `row_len`; otherwise it must be at least `row_len`.
pub fn stride(v: i64, row_len: usize, name: &str) -> Result<usize> {
    match v {
        0 => Ok(row_len),
        v if v < 0 => Err(Error::invalid(format!("{name} must be >= 0 (got {v})"))),
        v => {
            let s = usize::try_from(v)
                .map_err(|_| Error::invalid(format!("{name} = {v} does not fit in size_t")))?;
            if s < row_len {
                return Err(Error::invalid(format!(
                    "{name} = {s} is smaller than the row length {row_len}"
                )));
            }
            Ok(s)
        }
    }
}

/// Versioned structs whose first field is `uint32_t struct_size`.
///
/// # Safety
/// Implementors must be `repr(C)` with a leading `u32` struct size and valid for any bytes.
pub unsafe trait Versioned: Copy {
    /// The size of the first published version; smaller `struct_size` values are rejected.
    const V1_SIZE: usize;
    /// The sizes of the published versions before the current one (V1_SIZE first): a
    /// `struct_size` below the current size must be one of them (a size between two versions
    /// is no header's `sizeof`).
    const OLDER_SIZES: &'static [usize] = &[];
}

/// The largest `struct_size` accepted (`TERN_STRUCT_SIZE_MAX` in tern.h). A newer header's
/// struct may be larger than ours, and its unknown tail is read to check that it is zero; a
/// size beyond this bound is no header's `sizeof` but garbage (an uninitialized struct), and is
/// refused before any byte past our struct is read, since those bytes may not be mapped.
pub const STRUCT_SIZE_MAX: usize = 4096;

fn check_struct_size<T: Versioned>(struct_size: u32, name: &str) -> Result<usize> {
    let (size, v1) = (struct_size as usize, T::V1_SIZE);
    if size > STRUCT_SIZE_MAX {
        return Err(Error::invalid(format!(
            "{name}->struct_size = {size} > {STRUCT_SIZE_MAX} (TERN_STRUCT_SIZE_MAX) is no struct's size; initialize it with its TERN_*_INIT macro"
        )));
    }
    if size < v1 {
        return Err(Error::invalid(format!(
            "{name}->struct_size = {size} < {v1}, the size of the first version; initialize it with its TERN_*_INIT macro"
        )));
    }
    let ours = size_of::<T>();
    if size < ours && !T::OLDER_SIZES.contains(&size) {
        return Err(Error::invalid(format!(
            "{name}->struct_size = {size} is not the size of any version ({:?} or >= {ours}); initialize it with its TERN_*_INIT macro",
            T::OLDER_SIZES
        )));
    }
    Ok(size)
}

/// Reads an options struct: NULL gives `default`; fields beyond the caller's `struct_size` keep
/// their defaults; bytes beyond ours (a newer header) must be zero, since we cannot honour them.
/// A `struct_size` above `STRUCT_SIZE_MAX` is refused without reading past our struct.
///
/// # Safety
/// Non-NULL `ptr` must point to at least `ptr->struct_size` readable bytes.
pub unsafe fn read_options<T: Versioned>(ptr: *const T, default: T, name: &str) -> Result<T> {
    if ptr.is_null() {
        return Ok(default);
    }
    check_ptr(ptr, name)?;
    // SAFETY: aligned and non-NULL; struct_size is the first u32.
    let size = check_struct_size::<T>(unsafe { *(ptr as *const u32) }, name)?;
    let ours = size_of::<T>();
    if size > ours {
        // SAFETY: the caller promised `size` readable bytes.
        let extra =
            unsafe { std::slice::from_raw_parts((ptr as *const u8).add(ours), size - ours) };
        if extra.iter().any(|&b| b != 0) {
            return Err(Error::unsupported(format!(
                "{name} has fields this tern version does not know (struct_size {size} > {ours}) set to non-zero values"
            )));
        }
    }
    let mut out = default;
    // SAFETY: copies min(size, ours) bytes between valid, non-overlapping objects.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr as *const u8,
            &mut out as *mut T as *mut u8,
            size.min(ours),
        );
    }
    Ok(out)
}

/// Checks an output struct's `struct_size` before anything is computed.
///
/// # Safety
/// Non-NULL `ptr` must point to a writable struct of at least `ptr->struct_size` bytes.
pub unsafe fn check_output<T: Versioned>(ptr: *mut T, name: &str) -> Result<()> {
    check_ptr(ptr, name)?;
    // SAFETY: aligned and non-NULL.
    check_struct_size::<T>(unsafe { *(ptr as *const u32) }, name).map(|_| ())
}

/// Writes `value` into a caller's output struct that passed `check_output`: at most
/// `struct_size` bytes, and `struct_size` itself is left as the caller set it.
///
/// # Safety
/// As for `check_output`.
pub unsafe fn write_output<T: Versioned>(ptr: *mut T, value: &T) {
    // SAFETY: checked by `check_output`; we copy the bytes after the leading u32.
    unsafe {
        let size = (*(ptr as *const u32) as usize).min(size_of::<T>());
        let skip = size_of::<u32>();
        std::ptr::copy_nonoverlapping(
            (value as *const T as *const u8).add(skip),
            (ptr as *mut u8).add(skip),
            size - skip,
        );
    }
}
