//! A BAR mapped into this process with `mmap` of its sysfs `resourceN` / `resourceN_wc` file.

use std::ffi::c_void;
use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fd::{AsFd, BorrowedFd};
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
    /// Safe because the file decides the caching and this picks the file: the kernel maps a BAR's
    /// `resourceN` attribute uncached and its `resourceN_wc` write-combining (or, when another
    /// mapping of the BAR already has a stronger type, uncached: the write-combining flushes the
    /// crate then adds are merely unneeded). And a sysfs attribute is as long as its BAR for as
    /// long as it is mapped. That holds for sysfs only: a file elsewhere (a tree given to
    /// [`open_in`](PciDevice::open_in)) may be truncated under its mapping, and the next access
    /// would fault, so it is refused with [`Error::NotSysfs`]; a test's tree of ordinary files is
    /// mapped with [`map_bar_unchecked`](Self::map_bar_unchecked).
    ///
    /// Fails with [`Error::DriverOwnsBar`] if a kernel driver owns the BAR (unbind it), with
    /// [`Error::PermissionDenied`] if not root.
    pub fn map_bar(&self, index: usize, caching: Caching) -> Result<BarMapping> {
        // SAFETY: only a sysfs attribute is mapped (`sysfs_only`), which the contract of
        // `map_bar_unchecked` does not restrict.
        unsafe { self.map_bar_in(index, caching, true) }
    }

    /// [`map_bar`](Self::map_bar), also for a BAR file that is not on sysfs (the tree of a test,
    /// given to [`open_in`](PciDevice::open_in)): such a file is page cache, and the mapping
    /// says so, its [`caching`](BarMapping::caching) being [`Caching::Cacheable`].
    ///
    /// # Safety
    /// If the file is not on sysfs, it stays at least as long as the BAR while the mapping lives
    /// (a shared mapping past the end of its file faults on access).
    pub unsafe fn map_bar_unchecked(&self, index: usize, caching: Caching) -> Result<BarMapping> {
        // SAFETY: the caller's contract.
        unsafe { self.map_bar_in(index, caching, false) }
    }

    /// [`map_bar`](Self::map_bar); a file not on sysfs is refused if `sysfs_only`, else mapped
    /// as page cache.
    ///
    /// # Safety
    /// As for [`map_bar_unchecked`](Self::map_bar_unchecked) unless `sysfs_only`.
    unsafe fn map_bar_in(
        &self,
        index: usize,
        caching: Caching,
        sysfs_only: bool,
    ) -> Result<BarMapping> {
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
        let file = open_rw(&path)?;
        // A sysfs attribute maps as its name says; any other file is page cache.
        let caching = if on_sysfs(&file, &path)? {
            caching
        } else if sysfs_only {
            return Err(Error::NotSysfs { path });
        } else {
            Caching::Cacheable
        };
        // `caching` is how `file` maps: on sysfs, `path` is BAR `index`'s `resourceN` (uncached)
        // or `resourceN_wc` (write-combining), picked by `caching` above; any other file is page
        // cache, described as `Cacheable`.
        // SAFETY: as just said for `caching`; a sysfs attribute is as long as its BAR (`size`),
        // and another file, mapped only if not `sysfs_only`, is by the caller's contract.
        let mapped = unsafe { BarMapping::map_file(file, &path, size, caching) };
        let mut map = mapped.map_err(|e| match e {
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

/// `SYSFS_MAGIC` of `include/uapi/linux/magic.h`: `f_type` of a file on sysfs.
const SYSFS_MAGIC: u64 = 0x6265_6572;

/// Whether `file` (opened from `path`) is on sysfs.
fn on_sysfs(file: &File, path: &Path) -> Result<bool> {
    let st = rustix::fs::fstatfs(file).map_err(|e| io_err("statfs", path, e.into()))?;
    Ok(u64::try_from(st.f_type).ok() == Some(SYSFS_MAGIC))
}

/// Opens `path` read-write for mapping.
fn open_rw(path: &Path) -> Result<File> {
    OpenOptions::new()
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
        })
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
    /// exactly `len` bytes. The file must be at least `len` bytes long.
    ///
    /// [`PciDevice::map_bar`] is the safe way to map a BAR. This maps any file, for which the
    /// crate cannot tell how the kernel maps it: a sysfs `resourceN` is uncached and
    /// `resourceN_wc` write-combining, a UIO or `/dev/mem` mapping is whatever its driver or the
    /// platform sets up, a regular file is page cache. The caching decides which flushes and
    /// barriers the crate adds, so a wrong one is not caught here; hence the caller vouches.
    ///
    /// # Safety
    /// For as long as the returned mapping lives:
    /// - `caching` describes how the kernel maps `path` (see above; a regular file is
    ///   [`Caching::Cacheable`]);
    /// - the file stays at least `len` bytes long (a shared mapping past the end of its file
    ///   faults), which holds for sysfs attributes and must be ensured for other files.
    pub unsafe fn map_path(path: &Path, len: usize, caching: Caching) -> Result<BarMapping> {
        let file = open_rw(path)?;
        // SAFETY: the caller's contract is `map_file`'s.
        unsafe { BarMapping::map_file(file, path, len, caching) }
    }

    /// Maps the first `len` bytes of `file` (opened read-write from `path`, which is for
    /// messages and [`path`](Self::path)).
    ///
    /// # Safety
    /// As for [`map_path`](Self::map_path).
    unsafe fn map_file(
        file: File,
        path: &Path,
        len: usize,
        caching: Caching,
    ) -> Result<BarMapping> {
        // A zero length is refused by `map_fd`.
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
        // SAFETY: the caller's contract, and `file` covers `len` bytes (checked above).
        let map = unsafe { BarMapping::map_fd(file.as_fd(), 0, path, len, caching) };
        // The descriptor can close now: the mapping keeps the file referenced.
        drop(file);
        map
    }

    /// Maps `len` bytes of `fd` from `offset` (page-aligned) shared and read-write: a sysfs
    /// BAR file, or a region of a VFIO device file. `path` names it in messages.
    ///
    /// # Safety
    /// `caching` describes how the kernel maps that range of `fd`, and the range stays backed
    /// (the file or region at least `offset + len` bytes) while the mapping lives.
    pub(crate) unsafe fn map_fd(
        fd: BorrowedFd<'_>,
        offset: u64,
        path: &Path,
        len: usize,
        caching: Caching,
    ) -> Result<BarMapping> {
        if len == 0 {
            return Err(crate::Error::InvalidArgument("mapping length is zero").into());
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
                fd,
                offset,
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
        // `ptr..ptr + map_len` was just mapped read-write and is owned by the value returned
        // below, which unmaps it only on drop, after every borrow of `mmio` has ended.
        // SAFETY: as just said; no reference into it is made here; the caller vouches for
        // `caching` and for the file keeping its length.
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

    /// The start of the mapping in this process (for an IOMMU mapping of it).
    #[cfg(feature = "vfio")]
    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.cast()
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

// The `Mmio` over the mapping upholds the contract; the mapping lives as long as `self`, so an
// owner of a `BarMapping` (a pool keeping it in an `Arc`) may use it as its backend.
crate::backend::forward_backend! {
    impl[] BarMapping => mmio;
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
        // SAFETY: nothing truncates the tree's files while this test has them mapped.
        let map = unsafe { dev.map_bar_unchecked(0, Caching::Uncached) }.unwrap();
        assert_eq!(map.len(), 0x4000);
        assert_eq!(map.path(), dev.path().join("resource0"));
        // Not sysfs: the fake tree's files are page cache, and the mapping says so.
        assert_eq!(map.caching(), Caching::Cacheable);
        assert_eq!(map.bar().map(|b| b.index()), Some(0));
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

        // SAFETY: as for `map` above.
        let wc = unsafe { dev.map_bar_unchecked(2, Caching::WriteCombining) }.unwrap();
        assert_eq!(wc.path(), dev.path().join("resource2_wc"));
        assert_eq!((wc.len(), wc.caching()), (16 << 20, Caching::Cacheable));
        assert!(matches!(
            dev.map_bar(0, Caching::Cacheable),
            Err(Error::Iomem(crate::Error::InvalidArgument(_)))
        ));
    }

    /// A file off sysfs may be truncated under a mapping of it, and the next access would raise
    /// SIGBUS: the safe `map_bar` maps only sysfs attributes.
    #[test]
    fn map_bar_refuses_a_file_that_is_not_on_sysfs() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        for (bar, caching) in [(0, Caching::Uncached), (2, Caching::WriteCombining)] {
            match dev.map_bar(bar, caching) {
                Err(Error::NotSysfs { path }) => assert!(path.starts_with(dev.path())),
                other => panic!("BAR {bar} of a fake tree: {other:?}"),
            }
        }
    }

    #[test]
    fn sysfs_is_told_from_other_file_systems() {
        let t = TempDir::new("statfs");
        let f = t.0.join("file");
        fs::write(&f, b"x").unwrap();
        assert!(!on_sysfs(&File::open(&f).unwrap(), &f).unwrap());
        let sys = Path::new("/sys");
        if let Ok(dir) = File::open(sys) {
            assert!(on_sysfs(&dir, sys).unwrap());
        }
    }

    #[test]
    fn map_path_refuses_short_files_and_zero_length() {
        let t = TempDir::new("map");
        let f = t.0.join("short");
        fs::write(&f, [0u8; 100]).unwrap();
        let map = |len| {
            // SAFETY: a regular file is page cache, described as `Cacheable`; nothing else
            // changes its length while it is mapped.
            unsafe { BarMapping::map_path(&f, len, Caching::Cacheable) }
        };
        assert!(matches!(
            map(4096),
            Err(Error::Iomem(crate::Error::OutOfRange { .. }))
        ));
        assert!(matches!(
            map(0),
            Err(Error::Iomem(crate::Error::InvalidArgument(_)))
        ));
        let m = map(100).unwrap();
        assert_eq!((m.len(), m.caching()), (100, Caching::Cacheable));
        assert_eq!(m.mmio().size(), 100);
        m.io().subslice(0..100).unwrap().fill(0x5a).unwrap();
        drop(m);
        assert_eq!(fs::read(&f).unwrap(), std::vec![0x5a; 100]);
    }

    /// A mapping is its `Mmio` as a backend, direct stores included: on a CPU with MOVDIR64B a
    /// 64-byte command through an `Arc<BarMapping>` is one direct store (it was eight `u64`s
    /// when the mapping forwarded by hand and left these two methods at their defaults).
    #[test]
    fn a_mapping_forwards_direct_stores_to_its_mmio() {
        let t = TempDir::new("direct");
        let f = t.0.join("bar");
        fs::write(&f, [0u8; 4096]).unwrap();
        // SAFETY: as above.
        let m = unsafe { BarMapping::map_path(&f, 4096, Caching::Cacheable) }.unwrap();
        let direct = crate::Backend::has_direct64(m.mmio());
        assert_eq!(crate::Backend::has_direct64(&m), direct);
        let src: [u8; 64] = core::array::from_fn(|i| i as u8);
        if direct {
            // SAFETY: offset 0 is 64-aligned and in bounds, the mapping is page aligned, and
            // the CPU has MOVDIR64B.
            unsafe { crate::Backend::write_direct64(&m, 0, &src) };
            let mut back = [0u8; 64];
            m.io()
                .subslice(0..64)
                .unwrap()
                .copy_to_slice(&mut back)
                .unwrap();
            assert_eq!(back, src);
        }
    }
}
