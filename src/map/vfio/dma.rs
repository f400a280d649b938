//! [`VfioDma`]: host memory mapped in an IOMMU domain at IOVAs, as a [`DmaProvider`]; and
//! [`PeerBar`], a device's BAR mapped in the domain for peer-to-peer DMA.

use core::ffi::c_void;
use core::ops::Range;
use std::boxed::Box;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::vec::Vec;

use rustix::mm::{MapFlags, ProtFlags};

use super::iova::IovaAllocator;
use super::{Access, Container, Error, Iommu, Result};
use crate::backend::{Caching, Mmio};
use crate::dma::region::AddrMap;
use crate::dma::{DmaProvider, DmaRegion, Quarantine};
use crate::map::linux::BarMapping;

/// The lowest IOVA handed out: the first MiB stays unmapped, so a device given a zeroed or
/// small bogus address faults in the IOMMU instead of reaching memory.
pub const IOVA_FLOOR: u64 = 1 << 20;

/// Host memory for DMA in an IOMMU domain (a VFIO container): anonymous memory, pinned by the
/// kernel when mapped (`VFIO_IOMMU_MAP_DMA`), at IOVAs from an [`IovaAllocator`] over the
/// ranges the IOMMU accepts — one per domain, shared by every provider over it.
///
/// Every region is **one run of IOVAs** whatever pages back it, so a queue of any size is
/// "physically contiguous" to the device without huge pages, and a data buffer needs a single
/// data pointer (or a PRP list of consecutive pages). Every device attached to the domain
/// reaches the memory at the same IOVA: two controllers in one container share their buffers.
///
/// A device address exists only for mapped memory: a [`DmaAddr`](crate::dma::DmaAddr) comes
/// from a lease on a region of this provider, and the region stays mapped while any lease is
/// out. That matters, because the IOMMU's protection is silent: in the CI guest a Read into an
/// unmapped IOVA was blocked (a DMAR fault in the kernel log) while QEMU's controller still
/// completed the command with status 0 — the driver is not told, the data is just not there.
///
/// # Quarantine, and why it can free memory here
/// A region whose lease was dropped uncompleted goes into the provider's [`Quarantine`], as
/// with any provider. With pagemap memory that memory can never be freed safely until the
/// device is reset: the device may write it at any time. Here it can: [`reclaim`](Self::reclaim)
/// unmaps each quarantined region from the IOMMU (`VFIO_IOMMU_UNMAP_DMA`, after which the device
/// can no longer reach those pages: a stale write faults) and only then frees the memory. What
/// stays behind is the region's IOVA range, **retired** in the allocator rather than freed — were
/// it mapped again to other memory, the stale write would land there — until
/// [`recycle_retired`](Self::recycle_retired) after the devices are reset. So an abandoned
/// command costs IOVA space, not memory.
///
/// Keep a device of the container open while regions live: type1 tears the IOMMU down when the
/// last group leaves the container, after which unmapping fails and a region's memory is
/// leaked (safely) instead of freed.
#[derive(Debug)]
pub struct VfioDma {
    shared: Arc<Shared>,
    quarantine: Arc<Quarantine>,
}

/// What the provider and its regions share.
#[derive(Debug)]
struct Shared {
    iommu: Arc<dyn Iommu>,
    /// The domain's IOVA space ([`space_of`]), shared with every provider over the domain.
    iova: Arc<Mutex<IovaAllocator>>,
    mapped: AtomicU64,
}

/// The IOVA space of each IOMMU domain a provider was made over, found by the domain's
/// address: every provider over one domain allocates from, and retires into, the same space,
/// which lives as long as the domain does. A retired range must not be mapped to other memory
/// until the devices are reset, whichever provider retired it, and whether or not that provider
/// is still alive (a second provider over a container, or one made after another was dropped,
/// would otherwise map fresh memory where a stale DMA may still land).
type Spaces = Vec<(Weak<dyn Iommu>, Arc<Mutex<IovaAllocator>>)>;
static SPACES: Mutex<Spaces> = Mutex::new(Vec::new());

/// The IOVA space of the domain `iommu` is, made on first use.
fn space_of(iommu: &Arc<dyn Iommu>) -> Arc<Mutex<IovaAllocator>> {
    // Each update completes before it can panic, so a poisoned lock is consistent.
    let mut spaces = SPACES.lock().unwrap_or_else(|p| p.into_inner());
    // A domain that is gone has no mappings left (nor devices reaching it): its space goes, so
    // an allocation at the same address later is a new domain.
    spaces.retain(|(d, _)| d.strong_count() > 0);
    let id = Arc::as_ptr(iommu).cast::<()>();
    if let Some((_, space)) = spaces.iter().find(|(d, _)| d.as_ptr().cast::<()>() == id) {
        return space.clone();
    }
    let page = iommu.page_size().max(rustix::param::page_size() as u64);
    let space = Arc::new(Mutex::new(IovaAllocator::new(
        iommu.iova_ranges(),
        page,
        IOVA_FLOOR,
    )));
    spaces.push((Arc::downgrade(iommu), space.clone()));
    space
}

impl Shared {
    fn iova(&self) -> MutexGuard<'_, IovaAllocator> {
        // Each allocator update completes before it can panic, so a poisoned lock is consistent.
        self.iova.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates IOVAs for `len` bytes and maps `vaddr` there.
    ///
    /// # Safety
    /// As for [`Iommu::map`], for `vaddr..vaddr + len`.
    unsafe fn map(&self, vaddr: usize, len: u64, access: Access) -> Result<Range<u64>> {
        // 2 MiB-aligned IOVAs for large regions let the IOMMU use its large pages.
        let align = if len >= 2 << 20 { 2 << 20 } else { 1 };
        let range = self
            .iova()
            .alloc(len, align)
            .ok_or(Error::IovaExhausted { len })?;
        // SAFETY: the caller's contract; `range` is free IOVA space of `len` bytes.
        match unsafe { self.iommu.map(vaddr, len, range.start, access) } {
            Ok(()) => {
                self.mapped.fetch_add(len, Ordering::Relaxed);
                Ok(range)
            }
            Err(e) => {
                self.iova().free(range);
                Err(e)
            }
        }
    }

    /// Unmaps `range`; frees it (`retire`: keeps it from reuse) if that worked. Whether it did.
    fn unmap(&self, range: Range<u64>, retire: bool) -> bool {
        let len = range.end - range.start;
        let ok = self.iommu.unmap(range.start, len).is_ok();
        if ok {
            self.mapped.fetch_sub(len, Ordering::Relaxed);
        }
        let mut a = self.iova();
        if ok && !retire {
            a.free(range);
        } else {
            a.retire(range);
        }
        ok
    }
}

impl VfioDma {
    /// A provider over `container`'s IOMMU domain. The container needs a group attached first
    /// (the IOMMU type is set with it): [`Error::NoGroupAttached`] otherwise.
    pub fn new(container: &Arc<Container>) -> Result<VfioDma> {
        if container.info().is_none() {
            return Err(Error::NoGroupAttached);
        }
        Ok(VfioDma::with_iommu(container.clone()))
    }

    /// A provider over any IOMMU domain (an iommufd backend, a test double). Providers over
    /// one domain (the same `Arc`) share its IOVA space: none maps memory where another
    /// retired a range.
    pub fn with_iommu(iommu: Arc<dyn Iommu>) -> VfioDma {
        VfioDma {
            shared: Arc::new(Shared {
                iova: space_of(&iommu),
                iommu,
                mapped: AtomicU64::new(0),
            }),
            quarantine: Arc::default(),
        }
    }

    /// Bytes mapped in the IOMMU now (regions and peer BARs).
    pub fn mapped(&self) -> u64 {
        self.shared.mapped.load(Ordering::Relaxed)
    }

    /// Bytes of the domain's IOVA space retired (by any provider over it): unmapped, but kept
    /// from reuse until the devices are reset.
    pub fn retired(&self) -> u64 {
        self.shared.iova().retired()
    }

    /// Bytes of the domain's IOVA space free.
    pub fn available(&self) -> u64 {
        self.shared.iova().available()
    }

    /// Frees the memory of every quarantined region (see the type's docs): each is unmapped
    /// from the IOMMU first, its IOVAs retired. Returns how many regions (leases) were held.
    /// A region that another, live lease still holds stays mapped until that lease ends.
    pub fn reclaim(&self) -> usize {
        let n = self.quarantine.len();
        // Every region in this quarantine is one of this provider's (the quarantine is private
        // to it), and such a region's memory is freed only by its `Mapping`'s drop, which
        // unmaps it from the IOMMU first and retires its IOVA (the hook marked it), or leaks it
        // if unmapping fails.
        // SAFETY: so no device can access memory this frees: it "lost its IOMMU mapping", the
        // condition `release` asks for.
        unsafe { self.quarantine.release() };
        n
    }

    /// Gives the domain's retired IOVA ranges (every provider's over it) back to its allocator.
    ///
    /// # Safety
    /// Every device attached to the domain was reset, or had bus mastering turned off, since
    /// the ranges were retired: no stale DMA to them can still arrive.
    pub unsafe fn recycle_retired(&self) {
        // SAFETY: the caller's contract is the allocator's.
        unsafe { self.shared.iova().recycle_retired() }
    }

    /// Maps a device's BAR (its VFIO mmap, from [`VfioDevice::map_bar`](super::VfioDevice::map_bar))
    /// into the domain at fresh IOVAs: another device of the container then reaches that BAR by
    /// DMA at [`PeerBar::iova`] (an NVMe controller reading into a peer's CMB). Under an IOMMU
    /// that is the only way a peer's BAR is reachable: its bus address is not an IOVA.
    ///
    /// `bus_addr` is the BAR's bus address ([`VfioDevice::bar_bus_addr`](super::VfioDevice::bar_bus_addr)):
    /// the address the BAR's own device and its p2p pool know it by, which
    /// [`PeerBar::iova_of`] translates into the domain.
    pub fn map_peer_bar(&self, bar: Arc<BarMapping>, bus_addr: u64) -> Result<PeerBar> {
        let len = bar.len() as u64;
        if len % self.shared.iova().page() != 0 {
            return Err(Error::Iomem(crate::Error::InvalidArgument(
                "a peer BAR mapped in the IOMMU must be a whole number of IOMMU pages",
            )));
        }
        // SAFETY: the BAR mapping is kept alive by the `PeerBar` until it unmaps the range; it
        // is device memory, reached by this crate only with volatile accesses (never a
        // reference), so a peer's writes race with nothing.
        let iova = unsafe {
            self.shared
                .map(bar.as_ptr() as usize, len, Access::ReadAndWrite)?
        };
        Ok(PeerBar {
            bar,
            bus: bus_addr,
            iova,
            shared: self.shared.clone(),
        })
    }
}

/// Anonymous memory mapped at `iova`: the owner of a [`VfioDma`] region.
///
/// # Invariant
/// `ptr..ptr + len` is a private anonymous mapping owned by this value, mapped in the IOMMU at
/// `iova` (of `len` bytes) until dropped.
struct Mapping {
    ptr: *mut c_void,
    len: usize,
    iova: Range<u64>,
    shared: Arc<Shared>,
    /// Set when a lease of the region was quarantined: its IOVA is retired, not freed.
    retire: Arc<AtomicBool>,
}

// SAFETY: the memory is process-wide, with no thread affinity; the pointer is used only in
// `drop`, to unmap.
unsafe impl Send for Mapping {}
// SAFETY: `&Mapping` gives no access to the memory.
unsafe impl Sync for Mapping {}

impl Drop for Mapping {
    fn drop(&mut self) {
        let retire = self.retire.load(Ordering::Acquire);
        if self.shared.unmap(self.iova.clone(), retire) {
            // SAFETY: by the invariant the mapping is ours, and no device reaches it any more
            // (just unmapped from the IOMMU); the region using it is gone (this is its owner).
            let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
        }
        // Unmapping failed: the device may still reach the pages, so they are leaked (and the
        // IOVA retired) rather than freed.
    }
}

/// The provider's last act: its quarantine is reclaimed (each region unmapped from the IOMMU,
/// then freed, or leaked if unmapping fails), so quarantined memory does not outlive it.
impl Drop for VfioDma {
    fn drop(&mut self) {
        self.reclaim();
    }
}

impl DmaProvider for VfioDma {
    type Backend = Mmio;
    type Error = Error;

    fn alloc(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        if len == 0 {
            return Err(crate::Error::InvalidArgument("DMA region length is zero").into());
        }
        let page = self.shared.iova().page() as usize;
        let len = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or(crate::Error::Overflow { offset: 0, len })?;
        // SAFETY: a fresh private anonymous mapping at a kernel-chosen address.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }
        .map_err(|e| crate::map::linux::Error::Io {
            op: "mmap",
            path: Path::new("anonymous memory").to_path_buf(),
            source: e.into(),
        })?;
        // A fork must not give the child these pages copy-on-write: the IOMMU keeps the
        // parent's, and the parent's next write would move to a copy the device never sees.
        // SAFETY: our own mapping, just created; the advice changes no contents.
        if let Err(e) = unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxDontFork) }
        {
            // SAFETY: never mapped in the IOMMU; not used after this.
            let _ = unsafe { rustix::mm::munmap(ptr, len) };
            return Err(crate::map::linux::Error::Io {
                op: "madvise(MADV_DONTFORK)",
                path: Path::new("anonymous memory").to_path_buf(),
                source: e.into(),
            }
            .into());
        }
        // CAST: `len` fits in 64 bits.
        // SAFETY: the memory is ours until the `Mapping` below unmaps it from the IOMMU, which it
        // does before freeing it; it is reached only through the region's `Mmio` (volatile, no
        // reference).
        let mapped = unsafe {
            self.shared
                .map(ptr as usize, len as u64, Access::ReadAndWrite)
        };
        let iova = match mapped {
            Ok(iova) => iova,
            Err(e) => {
                // SAFETY: never mapped in the IOMMU; not used after this.
                let _ = unsafe { rustix::mm::munmap(ptr, len) };
                return Err(e);
            }
        };
        let retire = Arc::new(AtomicBool::new(false));
        let owner = Mapping {
            ptr,
            len,
            iova: iova.clone(),
            shared: self.shared.clone(),
            retire: retire.clone(),
        };
        // SAFETY: `ptr..ptr + len` is live read-write anonymous RAM (cacheable), kept by `owner`
        // which the region drops after the `Mmio`.
        let mmio = unsafe { Mmio::new(ptr.cast(), len, Caching::Cacheable) }?;
        let hook = Box::new(move || retire.store(true, Ordering::Release));
        // SAFETY: the memory is used by nothing else until `owner` is dropped, and byte `o` is
        // what a device of the domain reaches at `iova.start + o`, which the map says.
        let region = unsafe {
            DmaRegion::from_parts_hooked(
                mmio,
                0,
                len,
                AddrMap::Contiguous(iova.start),
                self.quarantine.clone(),
                Box::new(owner),
                Some(hook),
            )
        };
        Ok(region?)
    }

    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        // Every region is one run of IOVAs.
        self.alloc(len)
    }

    fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }
}

/// A device BAR mapped into an IOMMU domain ([`VfioDma::map_peer_bar`]). Dropping it unmaps the
/// BAR and retires its IOVAs (a stale peer DMA must not land in whatever is mapped there next).
#[derive(Debug)]
pub struct PeerBar {
    bar: Arc<BarMapping>,
    /// The BAR's bus address (its first byte).
    bus: u64,
    iova: Range<u64>,
    shared: Arc<Shared>,
}

impl PeerBar {
    /// The IOVA of the BAR's first byte: byte `o` of the BAR is at `iova() + o` for every
    /// device of the domain. Give it to a device only while this value lives.
    pub fn iova(&self) -> u64 {
        self.iova.start
    }

    /// The BAR's bus address, as given to [`VfioDma::map_peer_bar`].
    pub fn bus_addr(&self) -> u64 {
        self.bus
    }

    /// The IOVA at which the devices of the domain reach the `len` bytes at bus address `bus`
    /// of this BAR (a p2p buffer of the BAR's own device), or `None` unless all of them lie in
    /// the BAR.
    pub fn iova_of(&self, bus: u64, len: u64) -> Option<u64> {
        let off = bus.checked_sub(self.bus)?;
        (off.checked_add(len)? <= self.len()).then(|| self.iova.start + off)
    }

    /// The BAR mapping (the CPU's side of the same memory).
    pub fn bar(&self) -> &Arc<BarMapping> {
        &self.bar
    }

    /// Bytes mapped.
    pub fn len(&self) -> u64 {
        self.iova.end - self.iova.start
    }

    /// Whether nothing is mapped (never).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Drop for PeerBar {
    fn drop(&mut self) {
        self.shared.unmap(self.iova.clone(), true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// An IOMMU that records its mappings.
    #[derive(Debug, Default)]
    struct FakeIommu {
        maps: Mutex<Vec<(u64, u64)>>,
        fail_unmap: AtomicBool,
    }

    impl Iommu for FakeIommu {
        fn iova_ranges(&self) -> Vec<Range<u64>> {
            std::vec![0..0xfee0_0000, 0xfef0_0000..1 << 39]
        }
        fn page_size(&self) -> u64 {
            4096
        }
        unsafe fn map(&self, _vaddr: usize, len: u64, iova: u64, _: Access) -> Result<()> {
            let mut m = self.maps.lock().unwrap();
            if m.iter().any(|&(a, l)| a < iova + len && iova < a + l) {
                return Err(Error::MapDma {
                    iova,
                    len,
                    errno: rustix::io::Errno::EXIST,
                });
            }
            m.push((iova, len));
            Ok(())
        }
        fn unmap(&self, iova: u64, len: u64) -> Result<()> {
            if self.fail_unmap.load(Ordering::Relaxed) {
                return Err(Error::Ioctl {
                    op: "VFIO_IOMMU_UNMAP_DMA",
                    errno: rustix::io::Errno::INVAL,
                });
            }
            let mut m = self.maps.lock().unwrap();
            let i = m
                .iter()
                .position(|&e| e == (iova, len))
                .expect("unmap of a mapping");
            m.remove(i);
            Ok(())
        }
    }

    fn provider() -> (Arc<FakeIommu>, VfioDma) {
        let iommu = Arc::new(FakeIommu::default());
        (iommu.clone(), VfioDma::with_iommu(iommu))
    }

    #[test]
    fn regions_are_one_run_of_iovas_above_the_floor() {
        let (iommu, dma) = provider();
        // A 1024-entry submission queue: 64 KiB of base pages, contiguous to the device.
        let sq = dma.alloc_contiguous(1024 * 64).unwrap();
        let cq = dma.alloc(100).unwrap();
        assert_eq!(cq.len(), 4096);
        assert!(sq.contiguous(0..sq.len()).unwrap());
        let (ls, lc) = (sq.lease(), cq.lease());
        assert_eq!(ls.addr(0).unwrap().get(), IOVA_FLOOR);
        assert_eq!(ls.range(0..sq.len()).unwrap().get(), IOVA_FLOOR);
        assert_eq!(lc.addr(8).unwrap().get(), IOVA_FLOOR + 0x1_0000 + 8);
        assert_eq!(dma.mapped(), 0x1_1000);
        sq.mem().try_write(16, &0xabcd_u64).unwrap();
        assert_eq!(sq.mem().try_read::<u64>(16), Ok(0xabcd));
        // SAFETY: no device was given the addresses.
        unsafe { (ls.complete(), lc.complete()) };
        drop((sq, cq));
        assert_eq!(dma.mapped(), 0);
        assert!(iommu.maps.lock().unwrap().is_empty());
        // Freed IOVAs are handed out again.
        let again = dma.alloc(4096).unwrap();
        assert_eq!(again.lease().addr(0).unwrap().get(), IOVA_FLOOR);
        let big = dma.alloc(4 << 20).unwrap();
        assert_eq!(
            big.lease().addr(0).unwrap().get() % (2 << 20),
            0,
            "large regions 2 MiB aligned"
        );
        assert!(matches!(dma.alloc(0), Err(Error::Iomem(_))));
    }

    #[test]
    fn quarantined_memory_is_freed_after_unmapping_and_its_iova_retired() {
        let (iommu, dma) = provider();
        let r = dma.alloc(8192).unwrap();
        let iova = r.lease().addr(0).unwrap().get();
        drop(r.lease()); // an abandoned command's buffer
        drop(r);
        assert_eq!(dma.quarantine().len(), 2);
        assert_eq!(dma.mapped(), 8192, "quarantined: still mapped");
        assert_eq!(dma.reclaim(), 2);
        assert!(dma.quarantine().is_empty());
        assert_eq!(dma.mapped(), 0, "unmapped, and the memory freed");
        assert!(iommu.maps.lock().unwrap().is_empty());
        assert_eq!(dma.retired(), 8192);
        // The retired IOVA is not reused...
        let next = dma.alloc(8192).unwrap();
        assert_ne!(next.lease().addr(0).unwrap().get(), iova);
        drop(next);
        // ...until the devices are reset.
        // SAFETY: no device in a unit test.
        unsafe { dma.recycle_retired() };
        assert_eq!(dma.retired(), 0);
        assert_eq!(
            dma.alloc(8192).unwrap().lease().addr(0).unwrap().get(),
            iova
        );
    }

    /// A region of `dma` whose lease was abandoned (a command that never completed: the device
    /// may still write it), reclaimed: its IOVA, now retired.
    fn abandon_one(dma: &VfioDma) -> u64 {
        let r = dma.alloc(4096).unwrap();
        let iova = r.lease().addr(0).unwrap().get();
        drop(r.lease());
        drop(r);
        assert!(dma.reclaim() > 0);
        iova
    }

    /// Every provider over one domain shares its IOVA space: a range one of them retired is
    /// not mapped to other memory by another (two controllers' providers in one container),
    /// nor by a provider made after the first was dropped; a provider over another domain has
    /// a space of its own.
    #[test]
    fn providers_over_one_domain_share_its_retired_iovas() {
        let addr = |r: &DmaRegion<Mmio>| {
            let l = r.lease();
            let a = l.addr(0).unwrap().get();
            // SAFETY: no device was given the address.
            unsafe { l.complete() };
            a
        };
        let iommu: Arc<FakeIommu> = Arc::default();
        let (a, b) = (
            VfioDma::with_iommu(iommu.clone()),
            VfioDma::with_iommu(iommu.clone()),
        );
        let stale = abandon_one(&a);
        assert_eq!((a.retired(), b.retired()), (4096, 4096));
        let fresh = b.alloc(4096).unwrap();
        assert_ne!(addr(&fresh), stale);
        drop((a, b, fresh));
        let c = VfioDma::with_iommu(iommu.clone());
        assert_eq!(c.retired(), 4096);
        assert_ne!(addr(&c.alloc(4096).unwrap()), stale);
        // SAFETY: no device in a unit test.
        unsafe { c.recycle_retired() };
        assert_eq!(c.retired(), 0);
        assert_eq!(addr(&c.alloc(4096).unwrap()), stale);
        let (_, other) = provider();
        assert_eq!(other.retired(), 0);
        assert_eq!(addr(&other.alloc(4096).unwrap()), IOVA_FLOOR);
    }

    #[test]
    fn a_peer_bar_translates_its_own_bus_addresses_and_nothing_else() {
        let (iommu, dma) = provider();
        let map = crate::map::linux::testutil::file_bar("peer-bar", 64 * 1024);
        let bus = 0x1_0100_0000;
        let peer = dma.map_peer_bar(Arc::new(map), bus).unwrap();
        assert_eq!((peer.bus_addr(), peer.len()), (bus, 64 * 1024));
        assert_eq!(
            iommu.maps.lock().unwrap().as_slice(),
            &[(peer.iova(), 64 * 1024)]
        );
        assert_eq!(peer.iova_of(bus, 4096), Some(peer.iova()));
        assert_eq!(
            peer.iova_of(bus + 0x3000, 0xd000),
            Some(peer.iova() + 0x3000)
        );
        assert_eq!(
            peer.iova_of(bus + 0x3000, 0xd001),
            None,
            "one byte past the BAR"
        );
        assert_eq!(peer.iova_of(bus - 1, 1), None, "below the BAR");
        assert_eq!(peer.iova_of(u64::MAX, 2), None, "no overflow");
        drop(peer);
        assert!(iommu.maps.lock().unwrap().is_empty(), "unmapped on drop");
    }

    #[test]
    fn memory_that_cannot_be_unmapped_is_leaked_not_freed() {
        let (iommu, dma) = provider();
        let r = dma.alloc(4096).unwrap();
        iommu.fail_unmap.store(true, Ordering::Relaxed);
        drop(r);
        assert_eq!(dma.mapped(), 4096);
        assert_eq!(
            dma.retired(),
            4096,
            "a range that may still be mapped is never reused"
        );
    }
}
