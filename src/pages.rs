//! Zeroed buffers for weight tiles, on transparent huge pages where Linux gives them: a GEMV
//! streaming the weights from DRAM then walks one page table entry per 2 MiB instead of per
//! 4 KiB (with 4 KiB pages the page walks and the hardware prefetcher, which stops at every
//! page boundary, take a large share of a GEMV that is bound by memory bandwidth; see
//! docs/performance.md).
//!
//! Huge pages need fresh memory: heap memory touched before (freed temporaries) keeps its 4 KiB
//! pages whatever the advice. So a buffer of at least 1 MiB is its own 2 MiB-aligned anonymous
//! mapping advised `MADV_HUGEPAGE` before anything touches it, and smaller ones are carved out
//! of shared 2 MiB chunks mapped the same way (a model's many 0.4 MB matrices would otherwise
//! each round up to 2 MiB): bump-allocated, never reused, so still zero; a chunk is unmapped
//! when its last buffer is dropped after it filled up. Elsewhere, or when a mapping is refused,
//! buffers come from the heap.

use std::ptr::NonNull;

use crate::error::{Error, Result};
#[cfg(target_os = "linux")]
use std::sync::{Arc, Mutex};

/// A zeroed byte buffer (see the module doc).
pub struct PageBuf {
    ptr: NonNull<u8>,
    len: usize,
    _alloc: Alloc,
}

/// Where a `PageBuf`'s memory came from; dropping it gives the memory back.
#[expect(dead_code, reason = "held for its Drop only")]
enum Alloc {
    Heap(Heap),
    #[cfg(target_os = "linux")]
    Chunk(Arc<Mapping>),
}

#[cfg(target_os = "linux")]
const HUGE: usize = 2 << 20;
/// Alignment of buffers inside a shared chunk (one page: tiles never share one with another
/// matrix's).
#[cfg(target_os = "linux")]
const IN_CHUNK_ALIGN: usize = 4096;

impl PageBuf {
    /// `len` zeroed bytes, or `OutOfMemory` (naming `what`) when neither a mapping nor the heap
    /// can provide them.
    pub fn zeroed(len: usize, what: &str) -> Result<Self> {
        #[cfg(target_os = "linux")]
        if let Some(buf) = Self::on_huge_pages(len) {
            return Ok(buf);
        }
        let heap = Heap::zeroed(len).ok_or_else(|| Error::out_of_memory(what, len))?;
        Ok(Self {
            ptr: heap.ptr,
            len,
            _alloc: Alloc::Heap(heap),
        })
    }

    /// A dedicated mapping (≥ 1 MiB) or a piece of the current shared chunk; `None` when the
    /// kernel refuses a mapping.
    #[cfg(target_os = "linux")]
    fn on_huge_pages(len: usize) -> Option<Self> {
        if len >= HUGE / 2 {
            let map = Arc::new(Mapping::new(len)?);
            return Some(Self {
                ptr: map.base,
                len,
                _alloc: Alloc::Chunk(map),
            });
        }
        /// The chunk being filled and the bytes of it given out.
        static CURRENT: Mutex<Option<(Arc<Mapping>, usize)>> = Mutex::new(None);
        let mut current = CURRENT.lock().unwrap_or_else(|e| e.into_inner());
        let size = len.max(1).next_multiple_of(IN_CHUNK_ALIGN);
        let fits = current
            .as_ref()
            .is_some_and(|(_, used)| used + size <= HUGE);
        if !fits {
            *current = Some((Arc::new(Mapping::new(HUGE)?), 0));
        }
        let (map, used) = current.as_mut()?;
        // SAFETY: used + size ≤ HUGE, the mapping's size.
        let ptr = unsafe { map.base.add(*used) };
        *used += size;
        Some(Self {
            ptr,
            len,
            _alloc: Alloc::Chunk(Arc::clone(map)),
        })
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: `len` bytes of the allocation, initialized (zero) at creation, owned by this
        // buffer alone (chunk pieces do not overlap).
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as `deref`, uniquely borrowed.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

// SAFETY: a PageBuf owns its bytes like a Vec<u8> (the shared chunk is only unmapped when the
// last owner drops; pieces never overlap).
unsafe impl Send for PageBuf {}
unsafe impl Sync for PageBuf {}

/// A zeroed heap allocation (64-byte aligned).
struct Heap {
    ptr: NonNull<u8>,
    layout: std::alloc::Layout,
}

impl Heap {
    /// `None` when the allocator refuses (or `len` overflows a layout).
    fn zeroed(len: usize) -> Option<Self> {
        let layout = std::alloc::Layout::from_size_align(len.max(1), 64).ok()?;
        // SAFETY: a non-zero size.
        let raw = unsafe { std::alloc::alloc_zeroed(layout) };
        Some(Self {
            ptr: NonNull::new(raw)?,
            layout,
        })
    }
}

impl Drop for Heap {
    fn drop(&mut self) {
        // SAFETY: allocated in `zeroed` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

/// A 2 MiB-aligned anonymous mapping of a multiple of 2 MiB, advised as huge pages.
#[cfg(target_os = "linux")]
struct Mapping {
    base: NonNull<u8>,
    size: usize,
}

#[cfg(target_os = "linux")]
impl Mapping {
    /// At least `len` bytes; `None` when the kernel refuses the mapping.
    fn new(len: usize) -> Option<Self> {
        let size = len.checked_next_multiple_of(HUGE)?;
        let span = size.checked_add(HUGE)?;
        // SAFETY: a new private anonymous mapping; no existing memory is affected.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return None;
        }
        let base = raw as usize;
        let start = base.next_multiple_of(HUGE);
        let (head, tail) = (start - base, span - (start - base) - size);
        // SAFETY: the unmapped head and tail lie in the mapping made above, outside [start,
        // start + size); madvise only hints (failure keeps 4 KiB pages).
        unsafe {
            if head > 0 {
                libc::munmap(raw, head);
            }
            if tail > 0 {
                libc::munmap((start + size) as *mut libc::c_void, tail);
            }
            libc::madvise(start as *mut libc::c_void, size, libc::MADV_HUGEPAGE);
        }
        Some(Self {
            base: NonNull::new(start as *mut u8)?,
            size,
        })
    }
}

#[cfg(target_os = "linux")]
impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `new`; its last user is gone.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.size) };
    }
}

// SAFETY: the mapping is plain memory; `PageBuf` governs access to its bytes.
#[cfg(target_os = "linux")]
unsafe impl Send for Mapping {}
#[cfg(target_os = "linux")]
unsafe impl Sync for Mapping {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_zeroed_disjoint_and_writable() {
        // Small ones share chunks, across a chunk boundary; a large one has its own mapping.
        let mut bufs: Vec<PageBuf> = [5000, 1, 400_000, 700_000, 900_000, 3 << 20, 0]
            .into_iter()
            .map(|len| PageBuf::zeroed(len, "test").unwrap())
            .collect();
        for (i, b) in bufs.iter_mut().enumerate() {
            assert!(b.iter().all(|&v| v == 0), "buffer {i} not zeroed");
            assert_eq!(b.as_ptr() as usize % 64, 0);
            b.fill(i as u8 + 1);
        }
        for (i, b) in bufs.iter().enumerate() {
            assert!(
                b.iter().all(|&v| v == i as u8 + 1),
                "buffer {i} overwritten"
            );
        }
        drop(bufs);
        let b = PageBuf::zeroed(4096, "test").unwrap();
        assert!(b.iter().all(|&v| v == 0));
    }
}
