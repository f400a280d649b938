//! How a pool covers its backend: [`P2pConfig`] and the granularity bounds.

use core::ops::Range;

use crate::copy::WidthPolicy;
use crate::order::Strategy;

/// The default granularity: 4 KiB, the NVMe memory page size.
pub const DEFAULT_GRANULARITY: usize = 4096;
/// The smallest granularity a pool accepts.
pub const MIN_GRANULARITY: usize = 64;

/// How a [`P2pPool`](super::P2pPool) covers its backend.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    pub(super) bus_addr: u64,
    pub(super) range: Option<Range<usize>>,
    pub(super) granularity: usize,
    pub(super) policy: WidthPolicy,
    pub(super) strategy: Strategy,
    pub(super) arenas: usize,
}

impl P2pConfig {
    /// A pool over the whole backend, whose first byte has bus address `bus_addr`, with 4 KiB
    /// granularity, the [`WidthPolicy::MEMORY_LIKE`] width policy and the
    /// [`Strategy::Conservative`] strategy for buffer handles.
    pub fn new(bus_addr: u64) -> Self {
        P2pConfig {
            bus_addr,
            range: None,
            granularity: DEFAULT_GRANULARITY,
            policy: WidthPolicy::MEMORY_LIKE,
            strategy: Strategy::Conservative,
            arenas: 0,
        }
    }
    /// Manage only `range` of the backend; `bus_addr` is then the bus address of `range.start`.
    pub fn range(mut self, range: Range<usize>) -> Self {
        self.range = Some(range);
        self
    }
    /// Allocation granularity: a power of two, at least [`MIN_GRANULARITY`].
    pub fn granularity(mut self, granularity: usize) -> Self {
        self.granularity = granularity;
        self
    }
    /// Width policy of the handles [`P2pBuf::io`](super::P2pBuf::io) returns.
    pub fn policy(mut self, policy: WidthPolicy) -> Self {
        self.policy = policy;
        self
    }
    /// Number of arenas: parts of the region with an allocator and a lock each, so that
    /// threads with different home arenas allocate without contending (see the
    /// [module docs](super)). 0, the default, means one per CPU the process may run on
    /// (one without `std`), as long as each has at least 4096 granules; at most 64, and at
    /// most one per granule. With any number, an allocation fails only if no run of free
    /// granules can hold it.
    pub fn arenas(mut self, arenas: usize) -> Self {
        self.arenas = arenas;
        self
    }
    /// Ordering strategy of the handles [`P2pBuf::io`](super::P2pBuf::io) returns.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }
}
