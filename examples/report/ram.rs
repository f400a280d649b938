//! RAM stand-ins for device memory and a CPU-time clock, shared by the report and the benches
//! (the benches include this file with `#[path]`).
#![allow(dead_code)] // each includer uses its own subset

use std::alloc::{alloc_zeroed, dealloc, Layout};

/// Page size: buffers are page-aligned, as a BAR mapping is.
pub const PAGE: usize = 4096;

/// A zeroed, page-aligned heap buffer that a benchmark wraps in an `Mmio` backend, standing in
/// for a mapped BAR. Only raw pointers to it exist, so volatile access through `Mmio` is sound.
pub struct Buf {
    pub ptr: *mut u8,
    layout: Layout,
}

impl Buf {
    /// `len` bytes (non-zero), page-aligned and zeroed.
    pub fn new(len: usize) -> Self {
        let layout = Layout::from_size_align(len, PAGE).expect("buffer layout");
        assert!(layout.size() > 0, "buffers are at least one byte");
        // SAFETY: `layout` has a non-zero size (checked above).
        let ptr = unsafe { alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory allocating {len} bytes");
        Buf { ptr, layout }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }
}

impl Drop for Buf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { dealloc(self.ptr, self.layout) }
    }
}

/// CPU time of the calling thread in nanoseconds (Linux `CLOCK_THREAD_CPUTIME_ID`, exact to
/// the moment of the call), so that other processes sharing the CPUs do not count; `None`
/// elsewhere.
#[cfg(target_os = "linux")]
pub fn thread_cpu_ns() -> Option<u64> {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    // CAST: a thread's CPU time is never negative; `try_from` says so rather than wrapping.
    let (sec, nsec) = (
        u64::try_from(ts.tv_sec).ok()?,
        u64::try_from(ts.tv_nsec).ok()?,
    );
    sec.checked_mul(1_000_000_000)?.checked_add(nsec)
}

/// CPU time of the calling thread: not available here.
#[cfg(not(target_os = "linux"))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}
