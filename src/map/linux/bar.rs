//! A BAR mapped into this process with `mmap` of its sysfs `resourceN` / `resourceN_wc` file.

use std::ffi::c_void;
use std::fs::OpenOptions;
use std::io;
use std::path::{Path, PathBuf};

use rustix::mm::{MapFlags, ProtFlags};

use super::error::io_err;
use super::resource::{Bar, BarKind};
use super::{Error, PciDevice, Result};
use crate::backend::{Caching, Mmio};
use crate::IoMem;

impl PciDevice {
    /// Maps BAR `index` with `caching`: `resourceN` for [`Caching::Uncached`], `resourceN_wc` for
    /// [`Caching::WriteCombining`] (prefetchable BARs only).
    ///
    /// Fails with [`Error::DriverOwnsBar`] if a kernel driver owns the BAR (unbind it), with
    /// [`Error::PermissionDenied`] if not root.
    pub fn map_bar(&self, index: usize, caching: Caching) -> Result<BarMapping> {
        let bar = self.bar(index)?;
        if bar.kind() != BarKind::Memory {
            return Err(Error::NotMemory {
                addr: self.addr.clone(),
                bar: index,
            });
        }
        let name = match caching {
            Caching::Uncached => std::format!("resource{index}"),
            Caching::WriteCombining => std::format!("resource{index}_wc"),
            Caching::Cacheable => {
                return Err(Error::Iomem(crate::Error::InvalidArgument(
                    "a BAR is device memory: map it Uncached or WriteCombining",
                )))
            }
        };
        let path = self.dir.join(name);
        if caching == Caching::WriteCombining && !path.exists() {
            return Err(Error::NotPrefetchable {
                addr: self.addr.clone(),
                bar: index,
            });
        }
        let size = usize::try_from(bar.size()).map_err(|_| {
            Error::Iomem(crate::Error::InvalidArgument(
                "BAR larger than the address space",
            ))
        })?;
        let mut map = BarMapping::map_path(&path, size, caching).map_err(|e| match e {
            Error::Io {
                op: "mmap",
                ref source,
                ..
            } if source.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                Error::DriverOwnsBar {
                    addr: self.addr.clone(),
                    bar: index,
                    driver: self.driver().ok().flatten(),
                }
            }
            other => other,
        })?;
        map.bar = Some(bar);
        Ok(map)
    }
}

/// A file (normally a BAR's `resourceN`) mapped shared, read-write, into this process. Unmapped
/// on drop.
///
/// # Invariant
/// `ptr..ptr + map_len` is a live `MAP_SHARED` mapping owned by this value, page-aligned, with
/// `map_len >= mmio.size()`; `mmio` describes its first `mmio.size()` bytes.
#[derive(Debug)]
pub struct BarMapping {
    ptr: *mut c_void,
    map_len: usize,
    mmio: Mmio,
    bar: Option<Bar>,
    path: PathBuf,
}

// SAFETY: the mapping is process-wide memory with no thread affinity; `Mmio` is Send + Sync and
// the raw pointer is only used again to unmap on drop.
unsafe impl Send for BarMapping {}
// SAFETY: shared use goes through `Mmio`, which is Sync (volatile accesses only).
unsafe impl Sync for BarMapping {}

impl BarMapping {
    /// Maps the first `len` bytes of the file at `path` (shared, read-write) and describes the
    /// mapping as `caching`. `len` is rounded up to whole pages for `mmap`; the handle covers
    /// exactly `len` bytes.
    ///
    /// This is how [`PciDevice::map_bar`] maps `resourceN`; it also maps a regular file, which is
    /// how the mapping path is tested. A regular file must be at least `len` bytes long. The
    /// caller is responsible for `caching` describing what the kernel really set up (sysfs
    /// `resourceN` is uncached, `resourceN_wc` write-combining, a regular file is cached RAM).
    pub fn map_path(path: &Path, len: usize, caching: Caching) -> Result<BarMapping> {
        if len == 0 {
            return Err(crate::Error::InvalidArgument("mapping length is zero").into());
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::Io {
                    op: "open",
                    path: path.to_path_buf(),
                    source: e,
                },
                _ => io_err("open", path, e),
            })?;
        let meta = file.metadata().map_err(|e| io_err("stat", path, e))?;
        // sysfs reports a BAR file's size as the BAR size; a regular file must cover `len` or
        // touching the tail would raise SIGBUS.
        if meta.len() < len as u64 {
            return Err(crate::Error::OutOfRange {
                offset: 0,
                len,
                size: usize::try_from(meta.len()).unwrap_or(usize::MAX),
            }
            .into());
        }
        let page = rustix::param::page_size();
        let map_len = len
            .checked_add(page - 1)
            .map(|l| l & !(page - 1))
            .ok_or(crate::Error::Overflow { offset: 0, len })?;
        // SAFETY: a fresh mapping at an address the kernel chooses (null hint), so no existing
        // memory is affected; the file descriptor is valid for the call.
        let ptr = unsafe {
            rustix::mm::mmap(
                core::ptr::null_mut(),
                map_len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                &file,
                0,
            )
        }
        .map_err(|e| match e {
            rustix::io::Errno::ACCESS | rustix::io::Errno::PERM => Error::PermissionDenied {
                path: path.to_path_buf(),
            },
            e => Error::Io {
                op: "mmap",
                path: path.to_path_buf(),
                source: e.into(),
            },
        })?;
        // The descriptor can close now: the mapping keeps the file referenced.
        drop(file);
        // SAFETY: `ptr..ptr + map_len` was just mapped read-write and is owned by the value
        // returned below, which unmaps it only on drop, after every borrow of `mmio` has ended;
        // nothing in this crate creates a reference into it; the caller vouches for `caching`.
        let mmio = unsafe { Mmio::new(ptr.cast(), len, caching) };
        match mmio {
            Ok(mmio) => Ok(BarMapping {
                ptr,
                map_len,
                mmio,
                bar: None,
                path: path.to_path_buf(),
            }),
            Err(e) => {
                // SAFETY: the mapping was created above and is not used after this.
                let _ = unsafe { rustix::mm::munmap(ptr, map_len) };
                Err(e.into())
            }
        }
    }

    /// The backend over the mapping.
    pub fn mmio(&self) -> &Mmio {
        &self.mmio
    }

    /// A handle to the whole mapping, with the mapping's caching.
    pub fn io(&self) -> IoMem<'_, [u8], Mmio> {
        IoMem::new(&self.mmio)
    }

    /// The mapping's caching.
    pub fn caching(&self) -> Caching {
        crate::Backend::caching(&self.mmio)
    }

    /// Size in bytes of the mapped region.
    pub fn len(&self) -> usize {
        crate::Backend::size(&self.mmio)
    }

    /// Whether the mapping is empty (never true: zero-length mappings are refused).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The BAR this maps, when it came from [`PciDevice::map_bar`].
    pub fn bar(&self) -> Option<&Bar> {
        self.bar.as_ref()
    }

    /// The mapped file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

// SAFETY: forwards to the `Mmio` over the mapping, which upholds the contract; the mapping lives
// as long as `self`, so an owner of a `BarMapping` (a pool keeping it in an `Arc`) may use it
// as its backend.
unsafe impl crate::Backend for BarMapping {
    #[inline(always)]
    fn size(&self) -> usize {
        crate::Backend::size(&self.mmio)
    }
    #[inline(always)]
    fn base_align(&self) -> usize {
        crate::Backend::base_align(&self.mmio)
    }
    #[inline(always)]
    fn caching(&self) -> Caching {
        crate::Backend::caching(&self.mmio)
    }
    #[inline(always)]
    fn arch(&self) -> crate::Arch {
        crate::Backend::arch(&self.mmio)
    }
    #[inline(always)]
    unsafe fn read<W: crate::backend::Word>(&self, off: usize) -> W {
        // SAFETY: the caller upholds `read`'s contract, which is the same for the `Mmio`.
        unsafe { crate::Backend::read(&self.mmio, off) }
    }
    #[inline(always)]
    unsafe fn write<W: crate::backend::Word>(&self, off: usize, value: W) {
        // SAFETY: the caller upholds `write`'s contract, which is the same for the `Mmio`.
        unsafe { crate::Backend::write(&self.mmio, off, value) }
    }
    #[inline(always)]
    fn barrier(&self, barrier: crate::Barrier) {
        crate::Backend::barrier(&self.mmio, barrier)
    }
    #[inline(always)]
    fn barrier_after_read(&self, barrier: crate::Barrier, loaded: u64) {
        crate::Backend::barrier_after_read(&self.mmio, barrier, loaded)
    }
}

impl Drop for BarMapping {
    fn drop(&mut self) {
        // SAFETY: by the type invariant the mapping is live and owned by `self`; borrows of
        // `self.mmio` (and so every `IoMem` over it) have ended since `drop` has `&mut self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr, self.map_len) };
    }
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::map::linux::testutil::{fake_tree, TempDir};
    use crate::Backend;

    #[test]
    fn map_bar_maps_the_resource_file_with_its_caching() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        let map = dev.map_bar(0, Caching::Uncached).unwrap();
        assert_eq!(map.len(), 0x4000);
        assert_eq!(map.caching(), Caching::Uncached);
        assert_eq!(map.bar().map(|b| b.index), Some(0));
        let io = map.io();
        io.try_write32(0x14, 0x0046_0001).unwrap();
        io.try_write64(0x28, 0x1234_5678_9abc_def0).unwrap();
        assert_eq!(io.try_read32(0x14).unwrap(), 0x0046_0001);
        assert!(io.try_read32(0x4000).is_err());
        drop(map);
        // MAP_SHARED: the writes reached the file.
        let bytes = fs::read(dev.path().join("resource0")).unwrap();
        assert_eq!(&bytes[0x14..0x18], &0x0046_0001u32.to_le_bytes());
        assert_eq!(&bytes[0x28..0x30], &0x1234_5678_9abc_def0u64.to_le_bytes());
    }

    #[test]
    fn map_path_refuses_short_files_and_zero_length() {
        let t = TempDir::new("map");
        let f = t.0.join("short");
        fs::write(&f, [0u8; 100]).unwrap();
        assert!(matches!(
            BarMapping::map_path(&f, 4096, Caching::Uncached),
            Err(Error::Iomem(crate::Error::OutOfRange { .. }))
        ));
        assert!(matches!(
            BarMapping::map_path(&f, 0, Caching::Uncached),
            Err(Error::Iomem(crate::Error::InvalidArgument(_)))
        ));
        let m = BarMapping::map_path(&f, 100, Caching::WriteCombining).unwrap();
        assert_eq!((m.len(), m.caching()), (100, Caching::WriteCombining));
        assert_eq!(m.mmio().size(), 100);
        m.io().subslice(0..100).unwrap().fill(0x5a).unwrap();
        drop(m);
        assert_eq!(fs::read(&f).unwrap(), std::vec![0x5a; 100]);
    }
}
