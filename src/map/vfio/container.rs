//! [`Container`]: a VFIO type1 container (`/dev/vfio/vfio`), the IOMMU domain its groups share.

use core::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, Weak};
use std::vec::Vec;

use rustix::fd::{AsRawFd, OwnedFd};
use rustix::fs::{Mode, OFlags};
use vfio_bindings::bindings::vfio::{
    vfio_info_cap_header, vfio_iommu_type1_dma_map, vfio_iommu_type1_dma_unmap,
    vfio_iommu_type1_info, vfio_iommu_type1_info_cap_iova_range, vfio_iova_range,
    VFIO_TYPE1v2_IOMMU, VFIO_API_VERSION, VFIO_DMA_MAP_FLAG_READ, VFIO_DMA_MAP_FLAG_WRITE,
    VFIO_IOMMU_INFO_CAPS, VFIO_IOMMU_INFO_PGSIZES, VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE,
};

use super::error::open_err;
use super::group::Group;
use super::ioctl::{self, argsz};
use super::{Access, Error, Iommu, Result};

/// The container device every VFIO user opens.
pub const VFIO_CONTAINER: &str = "/dev/vfio/vfio";

/// What the type1 IOMMU reported once set (`VFIO_IOMMU_GET_INFO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Type1Info {
    /// The page sizes it maps (a bitmap: bit n set for 2^n bytes).
    pub page_sizes: u64,
    /// The IOVA ranges it accepts, half-open (the whole 64-bit space if it reported none).
    pub iova_ranges: Vec<Range<u64>>,
}

/// A VFIO container with the type1 v2 IOMMU (`VFIO_TYPE1v2_IOMMU`): one IOMMU domain (one IOVA
/// space) shared by every group attached to it. Attach several groups — two controllers — and
/// they share the mappings: memory mapped once is reachable by both at the same IOVA.
///
/// The IOMMU type is set when the first group is attached (the kernel needs a group first);
/// until then there is no domain and [`info`](Self::info) is `None`.
#[derive(Debug)]
pub struct Container {
    fd: OwnedFd,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    info: Option<Type1Info>,
    groups: Vec<(u32, Weak<Group>)>,
}

impl Container {
    /// Opens [`VFIO_CONTAINER`] and checks that it speaks this crate's API version and offers
    /// `VFIO_TYPE1v2_IOMMU`.
    pub fn open() -> Result<Arc<Container>> {
        let path = Path::new(VFIO_CONTAINER);
        let fd = rustix::fs::open(path, OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| open_err(path, None, e))?;
        // SAFETY: GET_API_VERSION takes no argument (0) and returns the version.
        let v = unsafe { ioctl::call(&fd, ioctl::GET_API_VERSION, core::ptr::null_mut()) };
        let v = v.map_err(|errno| Error::Ioctl {
            op: "VFIO_GET_API_VERSION",
            errno,
        })?;
        if i64::from(v) != i64::from(VFIO_API_VERSION) {
            return Err(Error::ApiVersion { got: v });
        }
        // CAST: the IOMMU type (3) as the integer argument, which the kernel takes as a long.
        let ty = VFIO_TYPE1v2_IOMMU as usize as *mut _;
        // SAFETY: CHECK_EXTENSION takes an IOMMU type as its integer argument.
        let has = unsafe { ioctl::call(&fd, ioctl::CHECK_EXTENSION, ty) };
        match has {
            Ok(n) if n > 0 => {}
            Ok(_) => return Err(Error::NoType1v2),
            Err(errno) => {
                return Err(Error::Ioctl {
                    op: "VFIO_CHECK_EXTENSION",
                    errno,
                })
            }
        }
        Ok(Arc::new(Container {
            fd,
            state: Mutex::new(State::default()),
        }))
    }

    /// What the IOMMU reported, once a group is attached.
    pub fn info(&self) -> Option<Type1Info> {
        self.lock().info.clone()
    }

    /// The numbers of the groups attached (and still open).
    pub fn groups(&self) -> Vec<u32> {
        let s = self.lock();
        s.groups
            .iter()
            .filter(|(_, g)| g.strong_count() > 0)
            .map(|(n, _)| *n)
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent (each update is one
        // assignment or push), so a poisoned lock is taken as it is.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Group `number` attached to this container: the one already open, or opened now
    /// (`/dev/vfio/<number>`), checked viable and attached.
    pub(super) fn group(self: &Arc<Self>, number: u32, sysfs: &Path) -> Result<Arc<Group>> {
        let mut s = self.lock();
        if let Some(g) = s
            .groups
            .iter()
            .find(|(n, _)| *n == number)
            .and_then(|(_, g)| g.upgrade())
        {
            return Ok(g);
        }
        let group = Arc::new(Group::open(number, sysfs, self.clone())?);
        let cfd = self.fd.as_raw_fd();
        // SAFETY: SET_CONTAINER reads an `int` (the container's descriptor) through the
        // pointer, which points at `cfd`, alive across the call.
        let r = unsafe {
            ioctl::call(
                group.fd(),
                ioctl::GROUP_SET_CONTAINER,
                (&cfd as *const i32).cast_mut().cast(),
            )
        };
        r.map_err(|errno| Error::Ioctl {
            op: "VFIO_GROUP_SET_CONTAINER",
            errno,
        })?;
        if s.info.is_none() {
            // CAST: the IOMMU type as the integer argument.
            let ty = VFIO_TYPE1v2_IOMMU as usize as *mut _;
            // SAFETY: SET_IOMMU takes an IOMMU type as its integer argument.
            unsafe { ioctl::call(&self.fd, ioctl::SET_IOMMU, ty) }.map_err(|errno| {
                Error::Ioctl {
                    op: "VFIO_SET_IOMMU",
                    errno,
                }
            })?;
            s.info = Some(self.get_info()?);
        }
        s.groups.retain(|(_, g)| g.strong_count() > 0);
        s.groups.push((number, Arc::downgrade(&group)));
        Ok(group)
    }

    /// `VFIO_IOMMU_GET_INFO` with its capability chain (the IOVA ranges).
    fn get_info(&self) -> Result<Type1Info> {
        let mut words = std::vec![0u64; argsz::<vfio_iommu_type1_info>().div_ceil(8) as usize];
        loop {
            // CAST: a few hundred bytes at most.
            let bytes = (words.len() * 8) as u32;
            let head = vfio_iommu_type1_info {
                argsz: bytes,
                ..Default::default()
            };
            // SAFETY: `words` is at least as large as the structure (sized above) and 8-byte
            // aligned, which is the structure's alignment.
            unsafe {
                words
                    .as_mut_ptr()
                    .cast::<vfio_iommu_type1_info>()
                    .write(head)
            };
            // SAFETY: GET_INFO takes a `vfio_iommu_type1_info` followed by room for its
            // capabilities, `argsz` bytes in all: `words` holds exactly that many, alive across
            // the call.
            unsafe { ioctl::call(&self.fd, ioctl::IOMMU_GET_INFO, words.as_mut_ptr().cast()) }
                .map_err(|errno| Error::Ioctl {
                    op: "VFIO_IOMMU_GET_INFO",
                    errno,
                })?;
            // SAFETY: as above, and the kernel wrote a valid structure (plain integers).
            let info = unsafe { words.as_ptr().cast::<vfio_iommu_type1_info>().read() };
            if info.argsz <= bytes {
                return parse_info(zerocopy::IntoBytes::as_bytes(&words[..]));
            }
            // The capabilities did not fit: the kernel says how much room they need.
            words.resize(info.argsz.div_ceil(8) as usize, 0);
        }
    }
}

/// Parses a `vfio_iommu_type1_info` and its capability chain from the bytes the kernel wrote.
pub(super) fn parse_info(buf: &[u8]) -> Result<Type1Info> {
    let info: vfio_iommu_type1_info = read_at(buf, 0)?;
    let page_sizes = if info.flags & VFIO_IOMMU_INFO_PGSIZES != 0 {
        info.iova_pgsizes
    } else {
        4096
    };
    let mut iova_ranges = Vec::new();
    let mut off = if info.flags & VFIO_IOMMU_INFO_CAPS != 0 {
        info.cap_offset as usize
    } else {
        0
    };
    let mut hops = 0;
    while off != 0 {
        hops += 1;
        if hops > 64 || off < core::mem::size_of::<vfio_iommu_type1_info>() {
            return Err(Error::Malformed {
                what: "the IOMMU info capability chain loops or points into its header",
            });
        }
        let cap: vfio_info_cap_header = read_at(buf, off)?;
        if u32::from(cap.id) == VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE {
            let head: vfio_iommu_type1_info_cap_iova_range = read_at(buf, off)?;
            let first = off + core::mem::size_of::<vfio_iommu_type1_info_cap_iova_range>();
            for i in 0..head.nr_iovas as usize {
                let r: vfio_iova_range =
                    read_at(buf, first + i * core::mem::size_of::<vfio_iova_range>())?;
                // The kernel's ranges are inclusive; the last one may end at u64::MAX.
                iova_ranges.push(r.start..r.end.saturating_add(1));
            }
        }
        off = cap.next as usize;
    }
    if iova_ranges.is_empty() {
        iova_ranges.push(0..u64::MAX);
    }
    Ok(Type1Info {
        page_sizes,
        iova_ranges,
    })
}

/// Reads a kernel structure `T` (plain integers, any bit pattern valid) at `off` of `buf`.
fn read_at<T>(buf: &[u8], off: usize) -> Result<T> {
    let end = off.checked_add(core::mem::size_of::<T>());
    match end {
        Some(end) if end <= buf.len() => {
            // SAFETY: `off..end` is inside `buf`; `read_unaligned` needs no alignment; `T` is a
            // `vfio_bindings` structure of integers (or a zero-sized array marker), for which
            // any bytes are a valid value.
            Ok(unsafe { buf.as_ptr().add(off).cast::<T>().read_unaligned() })
        }
        _ => Err(Error::Malformed {
            what: "a capability runs past the end of the buffer the kernel filled",
        }),
    }
}

impl Iommu for Container {
    fn iova_ranges(&self) -> Vec<Range<u64>> {
        self.info().map(|i| i.iova_ranges).unwrap_or_default()
    }

    fn page_size(&self) -> u64 {
        let sizes = self.info().map(|i| i.page_sizes).unwrap_or(4096);
        // The smallest page: the lowest bit set.
        if sizes == 0 {
            4096
        } else {
            1 << sizes.trailing_zeros()
        }
    }

    unsafe fn map(&self, vaddr: usize, len: u64, iova: u64, access: Access) -> Result<()> {
        let flags = match access {
            Access::Read => VFIO_DMA_MAP_FLAG_READ,
            Access::ReadAndWrite => VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
        };
        let mut map = vfio_iommu_type1_dma_map {
            argsz: argsz::<vfio_iommu_type1_dma_map>(),
            flags,
            // CAST: a user-space address fits in 64 bits.
            vaddr: vaddr as u64,
            iova,
            size: len,
        };
        // SAFETY: MAP_DMA reads a `vfio_iommu_type1_dma_map` of `argsz` bytes, `map`, alive
        // across the call. What the device may then do with the memory is the caller's
        // contract.
        let r = unsafe {
            ioctl::call(
                &self.fd,
                ioctl::IOMMU_MAP_DMA,
                (&mut map as *mut vfio_iommu_type1_dma_map).cast(),
            )
        };
        r.map(drop)
            .map_err(|errno| Error::MapDma { iova, len, errno })
    }

    fn unmap(&self, iova: u64, len: u64) -> Result<()> {
        let mut unmap = vfio_iommu_type1_dma_unmap {
            argsz: argsz::<vfio_iommu_type1_dma_unmap>(),
            iova,
            size: len,
            ..Default::default()
        };
        // SAFETY: UNMAP_DMA reads and writes back (the size unmapped) a
        // `vfio_iommu_type1_dma_unmap` of `argsz` bytes (flags 0: no dirty bitmap follows),
        // `unmap`, alive across the call.
        let r = unsafe {
            ioctl::call(
                &self.fd,
                ioctl::IOMMU_UNMAP_DMA,
                (&mut unmap as *mut vfio_iommu_type1_dma_unmap).cast(),
            )
        };
        r.map_err(|errno| Error::Ioctl {
            op: "VFIO_IOMMU_UNMAP_DMA",
            errno,
        })?;
        if unmap.size != len {
            return Err(Error::Malformed {
                what: "VFIO_IOMMU_UNMAP_DMA unmapped another size than asked",
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes the kernel structure `v` at `off` of `buf`.
    fn put<T>(buf: &mut [u8], off: usize, v: T) {
        assert!(off + core::mem::size_of::<T>() <= buf.len());
        // SAFETY: in bounds (checked above); unaligned write of plain integers.
        unsafe { buf.as_mut_ptr().add(off).cast::<T>().write_unaligned(v) };
    }

    /// The info an x86 type1 container reports: 4 KiB, 2 MiB and 1 GiB pages, and the IOVA
    /// space with the MSI window cut out.
    #[test]
    fn info_and_iova_ranges_are_parsed_from_the_capability_chain() {
        let mut buf = std::vec![0u8; 128];
        put(
            &mut buf,
            0,
            vfio_iommu_type1_info {
                argsz: 128,
                flags: VFIO_IOMMU_INFO_PGSIZES | VFIO_IOMMU_INFO_CAPS,
                iova_pgsizes: 0x4020_1000,
                cap_offset: 32,
                pad: 0,
            },
        );
        put(
            &mut buf,
            32,
            vfio_info_cap_header {
                id: 99,
                version: 1,
                next: 40,
            },
        );
        put(
            &mut buf,
            40,
            vfio_info_cap_header {
                // CAST: capability IDs are 16-bit.
                id: VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE as u16,
                version: 1,
                next: 0,
            },
        );
        put(&mut buf, 48, 2u32); // nr_iovas
        put(
            &mut buf,
            56,
            vfio_iova_range {
                start: 0,
                end: 0xfedf_ffff,
            },
        );
        put(
            &mut buf,
            72,
            vfio_iova_range {
                start: 0xfef0_0000,
                end: (1 << 48) - 1,
            },
        );
        let info = parse_info(&buf).unwrap();
        assert_eq!(info.page_sizes, 0x4020_1000);
        assert_eq!(info.iova_ranges, [0..0xfee0_0000, 0xfef0_0000..1 << 48]);

        // A chain that runs off the end, or loops into the header, is refused.
        let mut bad = buf.clone();
        put(&mut bad, 40 + 4, 124u32);
        assert!(matches!(parse_info(&bad), Err(Error::Malformed { .. })));
        let mut bad = buf.clone();
        put(&mut bad, 32 + 4, 8u32);
        assert!(matches!(parse_info(&bad), Err(Error::Malformed { .. })));
        assert!(matches!(
            parse_info(&buf[..8]),
            Err(Error::Malformed { .. })
        ));

        // No capabilities: the whole space, 4 KiB pages if none reported.
        let mut plain = std::vec![0u8; 32];
        put(&mut plain, 0, vfio_iommu_type1_info::default());
        let info = parse_info(&plain).unwrap();
        assert_eq!(
            (info.page_sizes, info.iova_ranges),
            (4096, std::vec![0..u64::MAX])
        );
    }
}
