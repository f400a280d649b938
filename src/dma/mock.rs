//! [`MockDma`]: a DMA provider for `cargo test`, over a [`MockIo`] modelling host RAM.

use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use std::sync::Mutex;

use super::region::{AddrMap, Quarantine};
use super::{DmaAddr, DmaProvider, DmaRegion};
use crate::backend::{Backend, Caching, MockIo};
use crate::error::{Error, Result};
use crate::order::Arch;
use alloc::sync::Arc;

/// The granule of the mock's allocations and of its address map.
pub const MOCK_PAGE: usize = 4096;

/// A DMA provider for tests: coherent "host RAM" in a [`MockIo`] (so every CPU access and barrier
/// on it is traced, in one program order with the device mocks), fake device addresses, and a
/// device side ([`device_write`](Self::device_write), [`device_read`](Self::device_read)) that
/// reaches only allocated memory, as an IOMMU would.
///
/// Addresses: page `i` of the arena is at `base + i * 4096`, plus one page of gap after every
/// `run` pages when scattering is on ([`with_scatter`](Self::with_scatter)), so a region larger
/// than `run` pages is not device-contiguous — the shape of pinned 4 KiB pages.
/// [`alloc_contiguous`](Self::alloc_contiguous) finds memory that is.
///
/// Freed memory is reused (first fit, lowest address), as a real allocator would: that is what
/// makes a buffer freed under an in-flight command dangerous, and what the
/// [leases](super::Lease) prevent.
///
/// Clones share the arena, the allocator and the quarantine (a device model holds one to reach
/// the memory, as the driver holds another to allocate it); configure a provider with the
/// builders before cloning it.
#[derive(Debug, Clone)]
pub struct MockDma {
    arena: Arc<MockIo>,
    state: Arc<Mutex<Vec<bool>>>,
    base: u64,
    run: usize,
    quarantine: Arc<Quarantine>,
    /// One count per clone of this provider (regions hold the quarantine, not this).
    handles: Arc<()>,
}

/// Frees a mock allocation's pages when the region (and every lease on it) is gone.
struct Pages {
    state: Arc<Mutex<Vec<bool>>>,
    first: usize,
    count: usize,
}

impl Drop for Pages {
    fn drop(&mut self) {
        let mut used = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for u in &mut used[self.first..self.first + self.count] {
            *u = false;
        }
    }
}

impl MockDma {
    /// `bytes` of mock host RAM (rounded up to whole pages), at device addresses from
    /// `0x1_0000_0000`, contiguous, simulating the host architecture.
    pub fn new(bytes: usize) -> Self {
        let pages = bytes.div_ceil(MOCK_PAGE).max(1);
        MockDma {
            arena: Arc::new(MockIo::new(pages * MOCK_PAGE).with_caching(Caching::Cacheable)),
            state: Arc::new(Mutex::new(vec![false; pages])),
            base: 0x1_0000_0000,
            run: usize::MAX,
            quarantine: Arc::new(Quarantine::default()),
            handles: Arc::new(()),
        }
    }

    /// The same, simulating `arch` (its barrier instructions are what the trace records).
    ///
    /// Like every builder here it configures an unshared provider in place; called on a handle
    /// that shares its memory (a clone, or a provider with regions out), it makes a new
    /// provider of the same size and configuration that shares nothing with the others, since
    /// their memory and addresses cannot change under them.
    pub fn with_arch(self, arch: Arch) -> Self {
        let mut dma = self.unshared();
        let size = dma.arena.size();
        dma.arena = Arc::new(
            MockIo::new(size)
                .with_caching(Caching::Cacheable)
                .with_arch(arch),
        );
        dma
    }

    /// Device addresses from `base` (page-aligned). On a shared handle, a new provider (see
    /// [`with_arch`](Self::with_arch)).
    pub fn with_base(self, base: u64) -> Self {
        let mut dma = self.unshared();
        dma.base = base & !(MOCK_PAGE as u64 - 1);
        dma
    }

    /// Scatters the device addresses: a gap after every `run` pages (≥ 1; a run as long as the
    /// memory is no scattering). On a shared handle, a new provider (see
    /// [`with_arch`](Self::with_arch)).
    pub fn with_scatter(self, run: usize) -> Self {
        let mut dma = self.unshared();
        let pages = dma.used().len();
        dma.run = if run >= pages { usize::MAX } else { run.max(1) };
        dma
    }

    /// `self` if nothing else shares its state (no other handle, no region out); otherwise a
    /// new provider of the same size, architecture, base and scattering, with nothing allocated.
    fn unshared(self) -> Self {
        if Arc::strong_count(&self.handles) == 1 && Arc::strong_count(&self.state) == 1 {
            return self;
        }
        let pages = self.used().len();
        MockDma {
            arena: Arc::new(
                MockIo::new(self.arena.size())
                    .with_caching(Caching::Cacheable)
                    .with_arch(self.arena.arch()),
            ),
            state: Arc::new(Mutex::new(vec![false; pages])),
            base: self.base,
            run: self.run,
            quarantine: Arc::new(Quarantine::default()),
            handles: Arc::new(()),
        }
    }

    /// The mock holding the RAM: its trace has every CPU access and barrier made on DMA memory.
    pub fn ram(&self) -> &MockIo {
        &self.arena
    }

    /// Regions whose leases were dropped without completing.
    pub fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }

    /// Bytes allocated (quarantined memory included).
    pub fn allocated(&self) -> usize {
        self.used().iter().filter(|&&u| u).count() * MOCK_PAGE
    }

    fn used(&self) -> std::sync::MutexGuard<'_, Vec<bool>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn page_addr(&self, i: usize) -> Option<u64> {
        let gaps = if self.run == usize::MAX {
            0
        } else {
            i / self.run
        };
        // CAST: page indices and gaps are below twice the arena's page count. `None` past the
        // top of the address space (a base given near it).
        self.base.checked_add(((i + gaps) * MOCK_PAGE) as u64)
    }

    /// `len` bytes (rounded up to pages), zeroed, wherever they fit.
    pub fn alloc(&self, len: usize) -> Result<DmaRegion<Arc<MockIo>>> {
        self.alloc_where(len, false)
    }

    /// `len` bytes (rounded up to pages), zeroed, at one run of device addresses.
    pub fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Arc<MockIo>>> {
        self.alloc_where(len, true)
    }

    fn alloc_where(&self, len: usize, contiguous: bool) -> Result<DmaRegion<Arc<MockIo>>> {
        if len == 0 {
            return Err(Error::InvalidArgument("DMA allocation of zero bytes"));
        }
        let count = len.div_ceil(MOCK_PAGE);
        let mut used = self.used();
        let total = used.len();
        let fits = |first: usize| {
            first + count <= total
                && used[first..first + count].iter().all(|u| !u)
                && (!contiguous
                    || self.run == usize::MAX
                    || first / self.run == (first + count - 1) / self.run)
        };
        let Some(first) = (0..total).find(|&f| fits(f)) else {
            let free = used.iter().filter(|u| !**u).count() * MOCK_PAGE;
            // The longest run of free pages this request could have used: for a contiguous
            // one, runs end at the gaps in the addresses.
            let (mut largest, mut run) = (0, 0);
            for (i, u) in used.iter().enumerate() {
                let gap = contiguous && self.run != usize::MAX && i % self.run == 0;
                run = if *u {
                    0
                } else if gap {
                    1
                } else {
                    run + 1
                };
                largest = largest.max(run);
            }
            return Err(Error::Exhausted {
                size: len,
                align: MOCK_PAGE,
                free,
                largest: largest * MOCK_PAGE,
            });
        };
        let Some(addrs) = (first..first + count)
            .map(|i| self.page_addr(i))
            .collect::<Option<Vec<u64>>>()
        else {
            return Err(Error::Overflow {
                // A base past `usize` (a 32-bit host) reads as `usize::MAX`.
                offset: usize::try_from(self.base).unwrap_or(usize::MAX),
                len,
            });
        };
        for u in &mut used[first..first + count] {
            *u = true;
        }
        drop(used);
        let bytes = count * MOCK_PAGE;
        self.arena.poke(first * MOCK_PAGE, &vec![0; bytes]);
        let map = if addrs.windows(2).all(|w| w[1] == w[0] + MOCK_PAGE as u64) {
            AddrMap::Contiguous(addrs[0])
        } else {
            AddrMap::Chunks {
                shift: MOCK_PAGE.trailing_zeros(),
                addrs,
            }
        };
        let owner = Box::new(Pages {
            state: self.state.clone(),
            first,
            count,
        });
        // SAFETY: pages `first..first + count` of the arena are marked used until `owner` drops,
        // so nothing else is given them; the arena is the mock's RAM, and `page_addr` is the
        // address map `device_write`/`device_read` invert.
        unsafe {
            DmaRegion::from_parts(
                self.arena.clone(),
                first * MOCK_PAGE,
                bytes,
                map,
                self.quarantine.clone(),
                owner,
            )
        }
    }

    /// The arena offset of device address `addr`, if it is allocated memory.
    fn translate(&self, addr: u64) -> Result<usize> {
        let bad = Error::InvalidArgument("device address outside the mock's allocated DMA memory");
        let rel = addr.checked_sub(self.base).ok_or(bad)?;
        let page = MOCK_PAGE as u64;
        let (index, within) = if self.run == usize::MAX {
            (rel / page, rel % page)
        } else {
            // CAST: `run` pages plus a gap page, in bytes, fit in u64.
            let block = (self.run as u64 + 1) * page;
            let (b, r) = (rel / block, rel % block);
            if r >= self.run as u64 * page {
                return Err(bad); // the gap
            }
            (b * self.run as u64 + r / page, r % page)
        };
        let index = usize::try_from(index).map_err(|_| bad)?;
        if !self.used().get(index).copied().unwrap_or(false) {
            return Err(bad);
        }
        // CAST: `within` is below a page.
        Ok(index * MOCK_PAGE + within as usize)
    }

    /// The device writes `bytes` at `addr` (a completion, read data). Fails, writing nothing,
    /// if any byte is not allocated memory — as an IOMMU blocks a stray DMA.
    ///
    /// The write is recorded in the RAM mock's program order
    /// ([`MockIo::device_write`](crate::backend::MockIo::device_write)), so the weak-ordering
    /// model ([`ram_loads`](crate::backend::mock::ram_loads)) knows what a CPU read racing it
    /// could have seen.
    pub fn device_write(&self, addr: DmaAddr, bytes: &[u8]) -> Result<()> {
        let offs = self.span(addr, bytes.len())?;
        // One device write per run of consecutive arena offsets (pages may be scattered).
        let mut k = 0;
        while k < offs.len() {
            let run = 1 + offs[k + 1..]
                .iter()
                .zip(&offs[k..])
                .take_while(|(b, a)| **b == **a + 1)
                .count();
            self.arena.device_write(offs[k], &bytes[k..k + run]);
            k += run;
        }
        Ok(())
    }

    /// The device reads `buf.len()` bytes at `addr` (a command, data to write).
    pub fn device_read(&self, addr: DmaAddr, buf: &mut [u8]) -> Result<()> {
        let offs = self.span(addr, buf.len())?;
        for (o, b) in offs.into_iter().zip(buf) {
            *b = self.arena.peek(o, 1)[0];
        }
        Ok(())
    }

    /// The arena offsets of `len` bytes from `addr`, all checked before any is used.
    fn span(&self, addr: DmaAddr, len: usize) -> Result<Vec<usize>> {
        (0..len)
            .map(|k| {
                // CAST: `k` is below a slice length.
                let a = addr
                    .get()
                    .checked_add(k as u64)
                    .ok_or(Error::Overflow { offset: 0, len })?;
                self.translate(a)
            })
            .collect()
    }
}

impl DmaProvider for MockDma {
    type Backend = Arc<MockIo>;
    type Error = Error;

    fn alloc(&self, len: usize) -> Result<DmaRegion<Arc<MockIo>>> {
        MockDma::alloc(self, len)
    }

    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Arc<MockIo>>> {
        MockDma::alloc_contiguous(self, len)
    }

    fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }
}

impl Drop for MockDma {
    fn drop(&mut self) {
        if Arc::strong_count(&self.handles) > 1 {
            return; // another clone (a device model, the driver) still reaches the memory
        }
        // SAFETY: the mock's device side (`device_write`, `device_read`) is reached only through
        // a `MockDma`, and this is the last clone, going away: nothing can access the
        // quarantined memory any more.
        unsafe { self.quarantine.release() }
    }
}
