//! Portable fallback for architectures without a table of their own: every barrier is a
//! sequentially consistent fence. Correct for cache-coherent RAM; whether it orders MMIO depends
//! on the architecture, so port a real table before trusting it with a device.

use super::Barrier;
use core::sync::atomic::{fence, Ordering};

#[inline(always)]
pub(super) fn execute(_barrier: Barrier) {
    fence(Ordering::SeqCst)
}
