//! Locked host memory with known physical addresses, for a device to DMA to and from.

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::vec::Vec;

use rustix::mm::{MapFlags, ProtFlags};

use super::error::io_err;
use super::pagemap::pagemap_frames;
use super::{Error, Result};
use crate::backend::{Caching, Mmio};
use crate::IoMem;

/// Page-aligned anonymous memory, locked in RAM, whose physical addresses are known: the host
/// side of a device's DMA (completion queues, data buffers) when there is no IOMMU.
///
/// This is ordinary cacheable RAM, not device memory, and DMA to it is taken to be cache-coherent
/// (as on x86 and on PCIe hosts with coherent DMA): its [`Mmio`] is [`Caching::Cacheable`], and
/// ordering it against the device takes DMA barriers (`dma_rmb`/`dma_wmb`), not MMIO ones. It is
/// still accessed only through [`io`](Self::io), with volatile accesses and never through a
/// reference, because the device writes it concurrently, behind the compiler's back.
///
/// `mlock` keeps the pages resident, but the kernel may still *migrate* locked pages (memory
/// compaction) and the physical addresses read at creation would then be stale. User space
/// cannot pin pages without VFIO; on a test machine set `vm.compact_unevictable_allowed = 0`
/// (the CI guest does), and use VFIO with an IOMMU for anything real.
///
/// # Invariant
/// `ptr..ptr + len` is a live private anonymous mapping owned by this value, locked, every page
/// present; `phys[i]` is the physical address of page `i` as read once locked.
#[derive(Debug)]
pub struct DmaBuffer {
    ptr: *mut c_void,
    len: usize,
    page: usize,
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
        if len == 0 {
            return Err(crate::Error::InvalidArgument("DMA buffer length is zero").into());
        }
        let page = rustix::param::page_size();
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
                MapFlags::PRIVATE | MapFlags::POPULATE,
            )
        }
        .map_err(|e| io_err("mmap", anon, e.into()))?;
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
            phys: Vec::new(),
            mmio,
        };
        // SAFETY: `ptr..ptr + len` is our own live mapping.
        unsafe { rustix::mm::mlock(ptr, len) }.map_err(|e| match e {
            rustix::io::Errno::PERM | rustix::io::Errno::NOMEM => Error::PermissionDenied {
                path: PathBuf::from("mlock"),
            },
            e => io_err("mlock", anon, e.into()),
        })?;
        // Touch every page so each has a frame (POPULATE did, but make it independent of it).
        for off in (0..len).step_by(page) {
            // SAFETY: in range and 1-byte aligned; the buffer is RAM.
            unsafe { crate::Backend::write::<u8>(&buf.mmio, off, 0) };
        }
        buf.phys = pagemap_frames(ptr as usize, len / page, page)?;
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

    /// The physical (bus, without an IOMMU) address of byte `offset`. Pages are not physically
    /// contiguous: a DMA range must not cross a page boundary unless each page's address is
    /// given separately (PRP lists, scatter-gather).
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
        Ok(self.phys[offset / self.page] + (offset % self.page) as u64)
    }
}

impl Drop for DmaBuffer {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping is live and owned by `self`; no borrow of
        // `self.mmio` outlives `&mut self`. munmap also unlocks.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.len) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
