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
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
pub fn thread_cpu_ns() -> Option<u64> {
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }
    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }
    const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: `ts` is a valid, writable `struct timespec` (two 64-bit fields on 64-bit Linux);
    // the call writes only to it.
    let rc = unsafe { clock_gettime(CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| ts.sec as u64 * 1_000_000_000 + ts.nsec as u64)
}

/// CPU time of the calling thread: not available here.
#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
pub fn thread_cpu_ns() -> Option<u64> {
    None
}
