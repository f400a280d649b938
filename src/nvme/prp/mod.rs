//! Data pointers: PRP entries and PRP lists built from memory that owns its bytes.
//!
//! A command's data pointer is two PRP entries (NVMe Base Specification, "Physical Region Page
//! Entry and List"): PRP1 is the first byte — any dword-aligned address — and the transfer
//! continues to the end of that memory page; PRP2 is the second page if the transfer ends
//! there, or the address of a **PRP list** of the remaining pages (each page aligned). A list
//! longer than one page is chained: the last entry of a full list page points to the next list
//! page. The memory page size is the controller's (CC.MPS, [`PageSize`]).
//!
//! [`PrpBuilder`] makes a [`DataPtr`] from device-contiguous segments — what
//! [`Lease::segments`] returns, or a [`P2pBuf`]'s one run — checking that they can be
//! described this way (the first may start anywhere dword aligned, every later one starts on a
//! page boundary, every one but the last ends on one) and, for a controller with a CMB, that
//! they keep the controller's [`CmbRule`]. The list, when one is needed, is written
//! little-endian into memory the caller provides ([`PrpListMem`]: [`HostPrpList`] or
//! [`CmbPrpList`]) and published: host RAM needs nothing more, since the doorbell's barrier
//! (`writel`'s) orders it; the CMB gets a write barrier.
//!
//! The lending builders ([`PrpBuilder::lend`], [`PrpBuilder::lend_p2p`]) take the memory by
//! value and return a [`Prp`]: the data pointer and the [`Lent`] memory (data and list) that
//! must stay allocated until the command completes.
//!
//! # Peer memory
//! A p2p buffer handed to [`PrpBuilder::borrow_p2p`] or [`PrpBuilder::lend_p2p`] must be the
//! controller's own memory (its CMB or PMR, as its [`CmbRule`] counts them); any other —
//! another controller's CMB, a GPU BAR — is a peer's, which the PCI fabric must route, and is
//! refused with [`Error::PeerAccessRequired`]. `PrpBuilder::borrow_peer` and
//! `PrpBuilder::lend_peer` (feature `linux`) take it with the caller's permission, a
//! `map::linux::PeerAccess`: the two devices' p2p distance checked, or an override by name.
//!
//! [`P2pBuf`]: crate::p2p::P2pBuf
//!
//! ```
//! use iomem::dma::MockDma;
//! use iomem::nvme::prp::{HostPrpList, PageSize, Prp2, PrpBuilder};
//!
//! let dma = MockDma::new(1 << 20).with_scatter(2);
//! let buf = dma.alloc(5 * 4096)?;                     // 2 + 2 + 1 pages, scattered
//! let prp = PrpBuilder::new(PageSize::new(4096)?, None)
//!     .lend(buf.lease(), 100..5 * 4096, |n| HostPrpList::alloc(&dma, n))?;
//! let data = prp.data();
//! assert_eq!(data.prp1(), buf.lease().addr(100)?);
//! assert!(matches!(data.prp2(), Prp2::List(_)));      // 5 pages: a list of 4 entries
//! let (_data, lent) = prp.into_parts();
//! // SAFETY: no device was given the addresses.
//! unsafe { lent.complete() };
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

mod list;
mod p2p;
mod pages;
mod rule;

use alloc::vec::Vec;
use core::fmt;
use core::ops::Range;

pub use list::{no_list, CmbPrpList, HostPrpList, NoList, PrpListMem};
pub use rule::{CmbRule, Placement};

use p2p::p2p_segment;
use pages::{Page, Pages};

use crate::backend::Backend;
use crate::dma::{DmaAddr, Lease};
use crate::nvme::cmd::{Command, Held, Lent, Request};
use crate::nvme::regs::Cc;
use crate::nvme::{invalid, Error, Result};

/// The controller's memory page size: 4 KiB × 2^CC.MPS, from 4 KiB to 128 MiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PageSize(usize);

impl PageSize {
    /// 4 KiB, the smallest (CC.MPS = 0).
    pub const MIN: PageSize = PageSize(4096);

    /// `bytes`, checked: a power of two from 4 KiB to 128 MiB.
    pub fn new(bytes: usize) -> Result<Self> {
        if !bytes.is_power_of_two() || !(4096..=128 << 20).contains(&bytes) {
            return Err(invalid(
                "a memory page size is a power of two from 4 KiB to 128 MiB",
            ));
        }
        Ok(PageSize(bytes))
    }

    /// The page size `cc` selects (CC.MPS).
    pub fn from_cc(cc: Cc) -> Self {
        // CAST: CC.MPS is at most 15, so the size is at most 128 MiB.
        PageSize(cc.page_size() as usize)
    }

    /// Bytes per page.
    pub const fn bytes(self) -> usize {
        self.0
    }

    /// Bytes of PRP list a transfer of `pages` memory pages needs (0 for at most two):
    /// whole pages, one PRP list page for every `bytes / 8 - 1` entries but the last page's.
    pub const fn list_bytes(self, pages: usize) -> usize {
        list_pages(pages.saturating_sub(1), self.0 / 8) * self.0
    }

    const fn mask(self) -> u64 {
        // CAST: usize is at most 64 bits wide.
        self.0 as u64 - 1
    }
}

/// List pages for `m` list entries with `per` entries per page (the last of a full page
/// chains).
const fn list_pages(m: usize, per: usize) -> usize {
    if m <= 1 {
        0
    } else if m <= per {
        1
    } else {
        1 + (m - per).div_ceil(per - 1)
    }
}

/// Which PRP entry of a command an error is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PrpEntry {
    /// PRP1.
    Prp1,
    /// PRP2 as the second data page.
    Prp2,
    /// Entry `n` (from 0) of the PRP list PRP2 points to, chain entries not counted.
    List(usize),
}

impl fmt::Display for PrpEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrpEntry::Prp1 => f.write_str("PRP1"),
            PrpEntry::Prp2 => f.write_str("PRP2"),
            PrpEntry::List(n) => write!(f, "PRP list entry {n}"),
        }
    }
}

/// PRP entry 2 of a data pointer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prp2 {
    /// The transfer ends in PRP1's page (PRP2 is 0 on the wire).
    None,
    /// The second and last page.
    Page(DmaAddr),
    /// The PRP list of the second and later pages.
    List(DmaAddr),
}

impl Prp2 {
    /// The value of the PRP2 field on the wire (0 for [`Prp2::None`]).
    #[inline(always)]
    pub(crate) const fn wire(self) -> u64 {
        match self {
            Prp2::None => 0,
            Prp2::Page(a) | Prp2::List(a) => a.get(),
        }
    }
}

/// A command's data pointer: PRP1, PRP2 and the number of bytes they cover. Made only by
/// [`PrpBuilder`], from memory that owns the bytes; put into a command by a builder in
/// [`cmd`](crate::nvme::cmd).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DataPtr {
    prp1: DmaAddr,
    prp2: Prp2,
    len: usize,
}

impl DataPtr {
    /// PRP1: the first byte.
    pub fn prp1(&self) -> DmaAddr {
        self.prp1
    }
    /// PRP2.
    pub fn prp2(&self) -> Prp2 {
        self.prp2
    }
    /// Bytes covered.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether no bytes are covered (never).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// A buffer registered with a queue pair
/// ([`QueuePair::register`](crate::nvme::ctrl::QueuePair::register)): data pointers into it
/// are built from the pair's lease on it
/// ([`QueuePair::registered`](crate::nvme::ctrl::QueuePair::registered)), and lend nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BufId(usize);

impl BufId {
    #[cfg(feature = "std")]
    /// The id of registration slot `index`.
    pub(crate) fn new(index: usize) -> Self {
        BufId(index)
    }

    #[cfg(feature = "std")]
    /// The registration slot.
    pub(crate) fn index(self) -> usize {
        self.0
    }
}

/// A data pointer and the memory it lends the device (data, and PRP list if any).
#[derive(Debug)]
pub struct Prp<B: Backend + Send + Sync + 'static> {
    data: DataPtr,
    lent: Lent<B>,
}

impl<B: Backend + Send + Sync + 'static> Prp<B> {
    /// The data pointer.
    pub fn data(&self) -> DataPtr {
        self.data
    }
    /// The data pointer and what it lends.
    pub fn into_parts(self) -> (DataPtr, Lent<B>) {
        (self.data, self.lent)
    }
    /// A request from the command `build` makes with the data pointer, e.g.
    /// `prp.into_request(|d| nvm::read(&ns, 0, 8, d))`. If `build` fails, or makes a command
    /// that names other memory than this data pointer (PRP1 and PRP2 as built, no metadata
    /// pointer: [`Error::Core`] with [`InvalidArgument`](crate::Error::InvalidArgument)), the
    /// lent memory is dropped, and so kept from reuse (quarantined).
    #[inline]
    pub fn into_request(
        self,
        build: impl FnOnce(DataPtr) -> Result<Command>,
    ) -> Result<Request<B>> {
        let cmd = build(self.data)?;
        let (prp1, prp2) = (self.data.prp1.get(), self.data.prp2.wire());
        if cmd.prp1() != prp1 || cmd.prp2() != prp2 || cmd.mptr() != 0 {
            return Err(invalid(
                "the command does not name the memory of the data pointer it was built from",
            ));
        }
        Ok(Request::lending(cmd, self.lent))
    }
}

/// Builds data pointers for one controller: its page size and its CMB rule (`None` without a
/// CMB). See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PrpBuilder {
    page: PageSize,
    cmb: Option<CmbRule>,
}

impl PrpBuilder {
    /// A builder for pages of `page` bytes and the controller's CMB rule.
    pub fn new(page: PageSize, cmb: Option<CmbRule>) -> Self {
        PrpBuilder { page, cmb }
    }

    /// The page size.
    pub fn page_size(&self) -> PageSize {
        self.page
    }

    /// The CMB rule.
    pub fn cmb_rule(&self) -> Option<CmbRule> {
        self.cmb
    }

    /// A data pointer over `range` of the leased region, which the caller keeps lent until the
    /// command completes. `list` is the PRP list memory if the transfer needs one (more than
    /// two pages; [`PageSize::list_bytes`] says how much).
    #[inline]
    pub fn borrow<B: Backend + Send + Sync + 'static>(
        &self,
        lease: &Lease<B>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
    ) -> Result<DataPtr> {
        let len = range.len();
        // A one- or two-page run: no error built, no plan.
        if let Some(data) = lease.run(&range).and_then(|a| self.one_run(a, len)) {
            return Ok(data);
        }
        self.borrow_planned(lease, range, list)
    }

    /// [`borrow`](Self::borrow) past its one-run fast path: planned, with a list if needed.
    #[inline(never)]
    fn borrow_planned<B: Backend + Send + Sync + 'static>(
        &self,
        lease: &Lease<B>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
    ) -> Result<DataPtr> {
        let len = range.len();
        // A one-run range (every range of a contiguous region) needs no segment list.
        if let Ok(a) = lease.range(range.clone()) {
            return self.finish(self.plan(&[(a, len)], len)?.as_slice(), len, list);
        }
        let segs = lease.segments(range)?;
        self.finish(self.plan(&segs, len)?.as_slice(), len, list)
    }

    /// Lends `range` of `lease` to a command: the data pointer, and the lease (with the PRP list
    /// `list` allocates, if the transfer needs one — it is called with the bytes needed) to
    /// keep until the completion. On an error the lease is dropped, and so quarantined.
    #[inline]
    pub fn lend<B, L>(
        &self,
        lease: Lease<B>,
        range: Range<usize>,
        list: impl FnOnce(usize) -> Result<L>,
    ) -> Result<Prp<B>>
    where
        B: Backend + Send + Sync + 'static,
        L: PrpListMem,
        Held<B>: From<L>,
    {
        let len = range.len();
        // A one- or two-page run: no error built, no plan.
        if let Some(data) = lease.run(&range).and_then(|a| self.one_run(a, len)) {
            return Ok(Prp {
                data,
                lent: Lent::held(Held::Lease(lease), None),
            });
        }
        // A one-run range (every range of a contiguous region) needs no segment list.
        if let Ok(a) = lease.range(range.clone()) {
            return self.lend_segments(&[(a, len)], len, Held::Lease(lease), list);
        }
        let segs = lease.segments(range)?;
        self.lend_segments(&segs, len, Held::Lease(lease), list)
    }

    /// A data pointer over raw segments.
    ///
    /// # Safety
    /// Every byte of every segment (`len` bytes in all, from the first) is memory the device
    /// may access as the command implies, and stays allocated until the command completes.
    /// (A [`DmaAddr`] vouches for its own address, not for a length.)
    pub unsafe fn from_segments(
        &self,
        segments: &[(DmaAddr, usize)],
        len: usize,
        list: Option<&dyn PrpListMem>,
    ) -> Result<DataPtr> {
        self.finish(self.plan(segments, len)?.as_slice(), len, list)
    }

    fn lend_segments<B, L>(
        &self,
        segs: &[(DmaAddr, usize)],
        len: usize,
        data: Held<B>,
        list: impl FnOnce(usize) -> Result<L>,
    ) -> Result<Prp<B>>
    where
        B: Backend + Send + Sync + 'static,
        L: PrpListMem,
        Held<B>: From<L>,
    {
        let pages = self.plan(segs, len)?;
        let pages = pages.as_slice();
        let (ptr, made) = if pages.len() > 2 {
            let mem = list(self.page.list_bytes(pages.len()))?;
            (self.finish(pages, len, Some(&mem))?, Some(Held::from(mem)))
        } else {
            (self.finish(pages, len, None)?, None)
        };
        Ok(Prp {
            data: ptr,
            lent: Lent::held(data, made),
        })
    }

    /// The data pointer of a valid one- or two-page transfer of `len` bytes from `a`, one run
    /// of device addresses, for a controller without a CMB rule: what [`plan`](Self::plan) and
    /// [`finish`](Self::finish) make of it, computed without them. `None` for anything else
    /// (empty, misaligned, overflowing, longer, or with a CMB rule to check): the general path
    /// handles it, with its errors.
    #[inline]
    fn one_run(&self, a: DmaAddr, len: usize) -> Option<DataPtr> {
        let start = a.get();
        // CAST: usize is at most 64 bits wide.
        let end = start.checked_add(len as u64)?;
        if self.cmb.is_some() || len == 0 || start & 3 != 0 {
            return None;
        }
        let second = (start & !self.page.mask()).checked_add(self.page.mask() + 1)?;
        let prp2 = if end <= second {
            Prp2::None
        } else if end - second <= self.page.mask() + 1 {
            // SAFETY: `second` lies inside the run (`start < second < end`), which the caller's
            // lease (or p2p buffer) owns and keeps allocated.
            Prp2::Page(unsafe { DmaAddr::from_raw(second) })
        } else {
            return None;
        };
        Some(DataPtr { prp1: a, prp2, len })
    }

    /// The page entries of a transfer: `(address, bytes)` per memory page touched.
    fn entries(&self, segs: &[(DmaAddr, usize)], len: usize) -> Result<Pages> {
        if len == 0 {
            return Err(invalid("a data transfer has at least one byte"));
        }
        let mask = self.page.mask();
        let mut out = Pages::new();
        let mut left = len;
        for (index, &(a, n)) in segs.iter().enumerate() {
            if left == 0 {
                break;
            }
            let bad = |why| Error::PrpSegment {
                index,
                addr: a.get(),
                len: n,
                why,
            };
            if n == 0 {
                return Err(bad("an empty segment"));
            }
            let take = n.min(left);
            let start = a.get();
            // CAST: usize is at most 64 bits wide.
            let end = start
                .checked_add(take as u64)
                .ok_or(bad("address + length overflows"))?;
            if index == 0 && start & 3 != 0 {
                return Err(bad("PRP1 must be dword aligned (address bits 1:0 clear)"));
            }
            if index > 0 && start & mask != 0 {
                return Err(bad("only the first segment may start inside a memory page"));
            }
            if take < left && end & mask != 0 {
                return Err(bad("only the last segment may end inside a memory page"));
            }
            let mut p = start;
            while p < end {
                let stop = (p & !mask).saturating_add(mask + 1).min(end);
                // CAST: at most one page.
                out.push((p, (stop - p) as usize));
                p = stop;
            }
            left -= take;
        }
        if left > 0 {
            return Err(Error::DataLength {
                command: "PRP data pointer",
                // CAST: usize is at most 64 bits wide.
                expected: len as u64,
                got: (len - left) as u64,
            });
        }
        Ok(out)
    }

    /// The page entries, checked against the CMB rule.
    fn plan(&self, segs: &[(DmaAddr, usize)], len: usize) -> Result<Pages> {
        let planned = self.entries(segs, len)?;
        if let Some(rule) = &self.cmb {
            let pages = planned.as_slice();
            let name = |k: usize| match (k, pages.len()) {
                (0, _) => PrpEntry::Prp1,
                (1, 2) => PrpEntry::Prp2,
                (k, _) => PrpEntry::List(k - 1),
            };
            rule.check(pages.iter().enumerate().map(|(k, &(a, n))| (name(k), a, n)))?;
        }
        Ok(planned)
    }

    /// The data pointer over planned `pages`, writing the list into `list` if needed.
    fn finish(&self, pages: &[Page], len: usize, list: Option<&dyn PrpListMem>) -> Result<DataPtr> {
        let addr = |a: u64| {
            // SAFETY: every page entry lies inside a segment the caller vouched for (a lease's
            // or a p2p buffer's own segments, or `from_segments`' contract).
            unsafe { DmaAddr::from_raw(a) }
        };
        let Some(&(first, _)) = pages.first() else {
            return Err(invalid("a data transfer has at least one byte"));
        };
        let prp2 = match pages {
            [] | [_] => Prp2::None,
            [_, (a, _)] => Prp2::Page(addr(*a)),
            [_, rest @ ..] => {
                let mem = match list {
                    Some(m) => m,
                    None => return Err(list::list_needed()),
                };
                Prp2::List(self.write_list(mem, rest)?)
            }
        };
        Ok(DataPtr {
            prp1: addr(first),
            prp2,
            len,
        })
    }

    /// Writes the list of `entries` (pages 2 and on) into `mem`, chained across list pages;
    /// returns the first list page's address.
    fn write_list(&self, mem: &dyn PrpListMem, entries: &[Page]) -> Result<DmaAddr> {
        let page = self.page.bytes();
        let per = page / 8;
        let n = list_pages(entries.len(), per);
        let mut left = entries;
        let mut bufs = Vec::with_capacity(n);
        let mut addrs = Vec::with_capacity(n);
        for k in 0..n {
            let take = if k + 1 == n { left.len() } else { per - 1 };
            let used = if k + 1 == n { take * 8 } else { page };
            let off = k * page;
            if mem.len() < off + used {
                return Err(crate::Error::OutOfRange {
                    offset: off,
                    len: used,
                    size: mem.len(),
                }
                .into());
            }
            let a = mem.run(off..off + used)?;
            if !a.is_aligned(self.page.mask() + 1) {
                return Err(invalid(
                    "PRP list memory must start each list page on a memory page boundary",
                ));
            }
            let (now, rest) = left.split_at(take);
            bufs.push(
                now.iter()
                    .flat_map(|(e, _)| e.to_le_bytes())
                    .collect::<Vec<u8>>(),
            );
            addrs.push(a);
            left = rest;
        }
        for k in 0..n {
            if k + 1 < n {
                bufs[k].extend(addrs[k + 1].get().to_le_bytes());
            }
            mem.write(k * page, &bufs[k])?;
        }
        mem.publish();
        Ok(addrs[0])
    }
}

#[cfg(all(test, feature = "vfio"))]
mod p2p_iommu_tests;
