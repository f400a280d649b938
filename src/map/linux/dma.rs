//! Locked host memory with known physical addresses, for a device to DMA to and from.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::vec::Vec;

use rustix::mm::{MapFlags, ProtFlags};

use std::boxed::Box;

use super::error::io_err;
use super::pagemap::pagemap_frames;
use super::{Error, Result};
use crate::backend::{Caching, Mmio};
use crate::dma::region::AddrMap;
use crate::dma::{DmaProvider, DmaRegion, Quarantine};
use crate::IoMem;
use alloc::sync::Arc;

/// Page-aligned anonymous memory, locked in RAM, whose physical addresses are known: the host
/// side of a device's DMA (completion queues, data buffers) when there is no IOMMU.
///
/// This is ordinary cacheable RAM, not device memory, and DMA to it is taken to be cache-coherent
/// (as on x86 and on PCIe hosts with coherent DMA): its [`Mmio`] is [`Caching::Cacheable`], and
/// ordering it against the device takes DMA barriers (`dma_rmb`/`dma_wmb`), not MMIO ones. It is
/// still accessed only through [`io`](Self::io), with volatile accesses and never through a
/// reference, because the device writes it concurrently, behind the compiler's back.
///
/// The mapping is not inherited by a child process (`MADV_DONTFORK`): a fork would otherwise
/// make its pages copy-on-write, and the parent's next write would move it away from the
/// physical addresses the device was given.
///
/// `mlock` keeps the pages resident, but the kernel may still *migrate* locked pages (memory
/// compaction) and the physical addresses read at creation would then be stale. User space
/// cannot pin pages without VFIO; on a test machine set `vm.compact_unevictable_allowed = 0`
/// (the CI guest does), and use VFIO with an IOMMU for anything real.
///
/// # Invariant
/// `ptr..ptr + len` is a live private anonymous mapping owned by this value, locked, not
/// inherited on fork, every page present; `phys[i]` is the physical address of page `i` as read once locked.
#[derive(Debug)]
pub struct DmaBuffer {
    ptr: *mut c_void,
    len: usize,
    /// The granule the buffer is made of (a base page, or a 2 MiB huge page).
    page: usize,
    /// The base page size: `phys` has one entry per base page.
    frame: usize,
    phys: Vec<u64>,
    mmio: Mmio,
}

// SAFETY: as for `BarMapping`: process-wide memory, accessed only through the Sync `Mmio`.
unsafe impl Send for DmaBuffer {}
// SAFETY: as above.
unsafe impl Sync for DmaBuffer {}

impl DmaBuffer {
    /// Allocates `len` bytes (rounded up to whole pages), zeroed, locks them (`mlock`) and reads
    /// their physical addresses from `/proc/self/pagemap`. Needs root (without `CAP_SYS_ADMIN`
    /// the kernel reports every frame as 0, refused here as [`Error::PermissionDenied`]).
    pub fn new(len: usize) -> Result<DmaBuffer> {
        Self::pin(len, false)
    }

    /// Like [`new`](Self::new), in 2 MiB huge pages (`MAP_HUGETLB`): each huge page is
    /// physically contiguous, so a queue of up to 2 MiB needs no scatter list. Fails with
    /// [`Error::NoHugePages`] (which says how to reserve them) when none are free.
    pub fn new_huge(len: usize) -> Result<DmaBuffer> {
        Self::pin(len, true)
    }

    fn pin(len: usize, huge: bool) -> Result<DmaBuffer> {
        if len == 0 {
            return Err(crate::Error::InvalidArgument("DMA buffer length is zero").into());
        }
        let frame = rustix::param::page_size();
        let page = if huge { HUGE_PAGE } else { frame };
        let len = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or(crate::Error::Overflow { offset: 0, len })?;
        let anon = Path::new("anonymous memory");
        // SAFETY: a fresh private anonymous mapping at a kernel-chosen address.
        let ptr = unsafe {
            rustix::mm::mmap_anonymous(
                core::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                if huge {
                    MapFlags::PRIVATE | MapFlags::POPULATE | MapFlags::HUGETLB | MapFlags::HUGE_2MB
                } else {
                    MapFlags::PRIVATE | MapFlags::POPULATE
                },
            )
        }
        .map_err(|e| match e {
            rustix::io::Errno::NOMEM if huge => Error::NoHugePages { bytes: len },
            rustix::io::Errno::INVAL if huge => Error::HugePagesUnsupported { bytes: len },
            e => io_err("mmap", anon, e.into()),
        })?;
        // SAFETY: the mapping was just created read-write, is page-aligned anonymous RAM
        // (cacheable, as `Caching::Cacheable` says), lives as long as the `DmaBuffer` that owns
        // `mmio`, and its address is never handed out, so no reference into it exists.
        let mmio = match unsafe { Mmio::new(ptr.cast(), len, Caching::Cacheable) } {
            Ok(m) => m,
            Err(e) => {
                // SAFETY: the mapping was created above and is not used after this.
                let _ = unsafe { rustix::mm::munmap(ptr, len) };
                return Err(e.into());
            }
        };
        // From here on the value owns the mapping; an early return unmaps it through Drop.
        let mut buf = DmaBuffer {
            ptr,
            len,
            page,
            frame,
            phys: Vec::new(),
            mmio,
        };
        // A fork must not give the child these pages copy-on-write: the parent's next write
        // would move it to a copy at another physical address, and the device, given the
        // addresses read below, would keep using the page the child got.
        // SAFETY: our own mapping, just created; the advice changes no contents.
        unsafe { rustix::mm::madvise(ptr, len, rustix::mm::Advice::LinuxDontFork) }
            .map_err(|e| io_err("madvise(MADV_DONTFORK)", anon, e.into()))?;
        // SAFETY: `ptr..ptr + len` is our own live mapping.
        unsafe { rustix::mm::mlock(ptr, len) }.map_err(|e| match e {
            rustix::io::Errno::PERM | rustix::io::Errno::NOMEM => Error::PermissionDenied {
                path: PathBuf::from("mlock"),
            },
            e => io_err("mlock", anon, e.into()),
        })?;
        // Touch every page so each has a frame (POPULATE did, but make it independent of it).
        for off in (0..len).step_by(frame) {
            // SAFETY: in range and 1-byte aligned; the buffer is RAM.
            unsafe { crate::Backend::write::<u8>(&buf.mmio, off, 0) };
        }
        buf.phys = pagemap_frames(ptr as usize, len / frame, frame)?;
        Ok(buf)
    }

    /// A handle over the buffer.
    pub fn io(&self) -> IoMem<'_, [u8], Mmio> {
        IoMem::new(&self.mmio)
    }

    /// Size in bytes (a whole number of pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer is empty (never true).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The page size the buffer is made of.
    pub fn page_size(&self) -> usize {
        self.page
    }

    /// The physical (bus, without an IOMMU) address of byte `offset`. Base pages are not
    /// physically contiguous (huge pages are, inside each): a DMA range must not cross a page
    /// boundary unless each page's address is given separately (PRP lists, scatter-gather).
    ///
    /// Giving this address to a device lets it write this memory; the buffer must outlive every
    /// DMA the device may still do.
    pub fn phys_addr(&self, offset: usize) -> crate::Result<u64> {
        if offset >= self.len {
            return Err(crate::Error::OutOfRange {
                offset,
                len: 1,
                size: self.len,
            });
        }
        // CAST: below a base page.
        Ok(self.phys[offset / self.frame] + (offset % self.frame) as u64)
    }
}

/// The huge page size [`DmaBuffer::new_huge`] maps.
pub const HUGE_PAGE: usize = 2 << 20;

impl DmaBuffer {
    /// The buffer as a [`DmaRegion`]: its memory reached through [`DmaMem`](crate::dma::DmaMem),
    /// its addresses through leases, freed (unmapped) when the region and every lease are gone,
    /// and quarantined in `quarantine` if a lease is dropped uncompleted.
    pub fn into_region(self, quarantine: Arc<Quarantine>) -> Result<DmaRegion<Mmio>> {
        let map = AddrMap::Chunks {
            shift: self.frame.trailing_zeros(),
            addrs: self.phys.clone(),
        };
        let len = self.len;
        // SAFETY: the second `Mmio` covers the buffer's own mapping, which `self` — moved into
        // the region as its owner, dropped after the `Mmio` — keeps alive; it is cacheable RAM,
        // and byte `o` is at `phys[o / frame] + o % frame`, which `map` says.
        let mmio = unsafe { Mmio::new(self.ptr.cast(), len, Caching::Cacheable) }?;
        // SAFETY: as above: the memory is the buffer's, used by nothing else once it is the
        // region's owner, and `map` is its address map.
        Ok(unsafe { DmaRegion::from_parts(mmio, 0, len, map, quarantine, Box::new(self)) }?)
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping is live and owned by `self`; no borrow of
        // `self.mmio` outlives `&mut self`. munmap also unlocks.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

/// A DMA provider over locked host memory whose addresses come from `/proc/self/pagemap`
/// (physical addresses: the bus addresses of a machine without an IOMMU), in base pages or in
/// 2 MiB huge pages. Needs root.
///
/// Base pages are scattered, so a region of more than one page is rarely device-contiguous;
/// huge pages are contiguous inside each 2 MiB page, so a queue of up to 2 MiB is. Reserve huge
/// pages first: `echo N > /proc/sys/vm/nr_hugepages` as root, or `hugepages=N` on the kernel
/// command line (the CI guest does that); without them [`Error::NoHugePages`] says so.
#[derive(Debug, Default)]
pub struct PagemapDma {
    huge: bool,
    quarantine: Arc<Quarantine>,
}

impl PagemapDma {
    /// Base pages.
    pub fn new() -> Self {
        PagemapDma::default()
    }

    /// 2 MiB huge pages.
    pub fn huge_pages() -> Self {
        PagemapDma {
            huge: true,
            ..PagemapDma::default()
        }
    }
}

impl DmaProvider for PagemapDma {
    type Backend = Mmio;
    type Error = Error;

    fn alloc(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        DmaBuffer::pin(len, self.huge)?.into_region(self.quarantine.clone())
    }

    fn alloc_contiguous(&self, len: usize) -> Result<DmaRegion<Mmio>> {
        let region = self.alloc(len)?;
        if region.contiguous(0..region.len())? {
            Ok(region)
        } else {
            Err(crate::Error::NotContiguous {
                offset: 0,
                len: region.len(),
            }
            .into())
        }
    }

    fn quarantine(&self) -> &Quarantine {
        &self.quarantine
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `VmFlags` line of the mapping starting at `addr`, from `/proc/self/smaps`.
    fn vm_flags(addr: usize) -> std::string::String {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let head = std::format!("{addr:x}-");
        let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
        assert!(lines.next().is_some(), "no mapping at {addr:#x}");
        let flags = lines.find_map(|l| l.strip_prefix("VmFlags:")).unwrap();
        flags.trim().into()
    }

    #[test]
    fn dma_buffer_is_page_granular_and_has_frames_when_privileged() {
        match DmaBuffer::new(5000) {
            Ok(buf) => {
                let page = buf.page_size();
                assert_eq!(buf.len(), 2 * page);
                for p in 0..2 {
                    let pa = buf.phys_addr(p * page).unwrap();
                    assert_ne!(pa, 0);
                    assert_eq!(pa % page as u64, 0);
                    assert_eq!(buf.phys_addr(p * page + 12).unwrap(), pa + 12);
                }
                assert!(buf.phys_addr(2 * page).is_err());
                // Under qemu-user (the cross-architecture runs) the advice never reaches the
                // kernel and smaps is qemu's own rendering, so only a native run can check it.
                if std::env::var_os("IOMEM_UNDER_QEMU_USER").is_none() {
                    assert!(
                        vm_flags(buf.ptr as usize).split(' ').any(|f| f == "dc"),
                        "the buffer would be inherited by a child, copy-on-write"
                    );
                }
                let io = buf.io();
                io.try_write64(8, 0xfeed).unwrap();
                assert_eq!(io.try_read64(8).unwrap(), 0xfeed);
                assert_eq!(io.try_read64(0).unwrap(), 0);
            }
            // Unprivileged: pagemap hides frame numbers, mlock may be limited.
            Err(Error::PermissionDenied { .. }) => {
                assert!(!rustix::process::geteuid().is_root())
            }
            Err(e) => panic!("{e}"),
        }
        assert!(matches!(
            DmaBuffer::new(0),
            Err(Error::Iomem(crate::Error::InvalidArgument(_)))
        ));
    }

    #[test]
    fn pagemap_regions_have_their_frames_and_leases() {
        let dma = PagemapDma::new();
        match dma.alloc(3 * 4096) {
            Ok(r) => {
                let l = r.lease();
                let segs = l.segments(0..r.len()).unwrap();
                assert_eq!(segs.iter().map(|s| s.1).sum::<usize>(), r.len());
                assert!(segs.iter().all(|s| s.0.get() != 0));
                r.mem().try_write(8, &0xfeed_u64).unwrap();
                assert_eq!(r.mem().try_read::<u64>(8), Ok(0xfeed));
                match dma.alloc_contiguous(64 * 4096) {
                    Ok(c) => assert!(c.contiguous(0..c.len()).unwrap()),
                    Err(Error::Iomem(crate::Error::NotContiguous { len, .. })) => {
                        assert_eq!(len, 64 * 4096)
                    }
                    Err(e) => panic!("{e}"),
                }
                // SAFETY: no device was given the addresses.
                unsafe { l.complete() };
            }
            Err(Error::PermissionDenied { .. }) => {
                assert!(!rustix::process::geteuid().is_root())
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Without reserved huge pages the error says how to reserve them; with them, a 64 KiB
    /// queue is one run of addresses. `IOMEM_EXPECT_HUGEPAGES=1` (set where pages are reserved)
    /// makes their absence a failure.
    #[test]
    fn huge_pages_are_contiguous_or_the_error_says_how_to_reserve_them() {
        let expect = std::env::var_os("IOMEM_EXPECT_HUGEPAGES").is_some();
        match PagemapDma::huge_pages().alloc(64 * 1024) {
            Ok(r) => {
                assert_eq!(r.len(), HUGE_PAGE);
                assert!(r.contiguous(0..r.len()).unwrap());
            }
            Err(e @ Error::HugePagesUnsupported { .. }) => {
                assert!(!expect, "{e}");
                assert!(std::format!("{e}").contains("PagemapDma::new"), "{e}");
            }
            Err(e @ Error::NoHugePages { .. }) => {
                assert!(!expect, "{e}");
                let msg = std::format!("{e}");
                assert!(msg.contains("/proc/sys/vm/nr_hugepages"), "{msg}");
                assert!(msg.contains("hugepages=1"), "{msg}");
            }
            Err(Error::PermissionDenied { .. }) => {
                assert!(!rustix::process::geteuid().is_root())
            }
            Err(e) => panic!("{e}"),
        }
    }
}
