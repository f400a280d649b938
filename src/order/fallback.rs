//! Portable fallback for architectures without a table of their own: every barrier is a
//! sequentially consistent fence. Correct for cache-coherent RAM; whether it orders MMIO depends
//! on the architecture, so port a real table before trusting it with a device.

use super::Barrier;
use core::sync::atomic::{fence, Ordering};

/// Executes `barrier`: a `SeqCst` fence whatever the kind.
#[inline(always)]
pub(super) fn execute(_barrier: Barrier) {
    fence(Ordering::SeqCst)
}

/// Executes `barrier` after a read (the value is not used).
#[inline(always)]
pub(super) fn execute_after_read(barrier: Barrier, _loaded: u64) {
    execute(barrier)
}
