//! Data pointers into p2p buffers: the controller's own memory, or a peer's.
//!
//! A [`P2pBuf`] is bus-addressed memory on some PCI device. If that device is the controller
//! itself — the range lies in its own CMB or PMR, as the builder's [`CmbRule`](super::CmbRule)
//! says — the transfer never leaves the controller, and [`PrpBuilder::borrow_p2p`] /
//! [`PrpBuilder::lend_p2p`] take it. Anything else (another controller's CMB, a GPU BAR) is a
//! *peer's* memory: the controller's DMA to it crosses the PCI fabric, which must route it.
//! Those builders refuse such a buffer ([`Error::PeerAccessRequired`]); the peer builders
//! [`PrpBuilder::borrow_peer`] / [`PrpBuilder::lend_peer`] (feature `linux`) take it with a
//! [`PeerAccess`](crate::map::linux::PeerAccess): an acceptable
//! [`P2pDistance`](crate::map::linux::P2pDistance) verdict, or a named override.

use core::ops::Range;

use super::{DataPtr, Placement, PrpBuilder, PrpListMem};
use super::{Prp, Result};
use crate::backend::Backend;
use crate::dma::DmaAddr;
use crate::nvme::cmd::Held;
use crate::nvme::Error;
use crate::p2p::P2pBuf;

#[cfg(feature = "linux")]
use crate::map::linux::PeerAccess;
#[cfg(feature = "vfio")]
use crate::map::vfio::PeerBar;

impl PrpBuilder {
    /// A data pointer over `range` of a p2p buffer in the controller's own CMB or PMR, which
    /// the caller keeps alive until the command completes. A buffer elsewhere (a peer's
    /// memory) is refused with [`Error::PeerAccessRequired`]: see `borrow_peer` (feature
    /// `linux`).
    pub fn borrow_p2p<P: Backend>(
        &self,
        buf: &P2pBuf<P>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
    ) -> Result<DataPtr> {
        self.borrow_buf(buf, range, list, false)
    }

    /// Lends the first `len` bytes of a p2p buffer in the controller's own CMB or PMR to a
    /// command; dropped uncompleted, the buffer is quarantined in its pool rather than freed
    /// ([`P2pLease`](crate::p2p::P2pLease)). A buffer elsewhere is refused with
    /// [`Error::PeerAccessRequired`] (and dropped: never handed out, it goes back to its pool):
    /// see `lend_peer` (feature `linux`).
    pub fn lend_p2p<B, P, L>(
        &self,
        buf: P2pBuf<P>,
        len: usize,
        list: impl FnOnce(usize) -> Result<L>,
    ) -> Result<Prp<B>>
    where
        B: Backend + Send + Sync + 'static,
        P: Backend + Send + Sync + 'static,
        L: PrpListMem,
        Held<B>: From<L>,
    {
        self.lend_buf(buf, len, list, false)
    }

    /// A data pointer over `range` of a p2p buffer in a peer's memory (or the controller's
    /// own), which the caller keeps alive until the command completes. `access` is the
    /// caller's permission to hand the buffer's bus address to this controller: the
    /// [`P2pDistance`](crate::map::linux::P2pDistance) between the two devices checked, or a
    /// named override. Every page is then outside the controller's memory, so the CMB rule
    /// puts the PRP list (if any) anywhere and keeps host-side data pointers together.
    #[cfg(feature = "linux")]
    pub fn borrow_peer<P: Backend>(
        &self,
        buf: &P2pBuf<P>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
        access: &PeerAccess,
    ) -> Result<DataPtr> {
        let _ = access;
        self.borrow_buf(buf, range, list, true)
    }

    /// Lends the first `len` bytes of a p2p buffer in a peer's memory (or the controller's
    /// own) to a command, with the caller's permission `access` (see
    /// [`borrow_peer`](Self::borrow_peer)); as [`lend_p2p`](Self::lend_p2p) otherwise.
    #[cfg(feature = "linux")]
    pub fn lend_peer<B, P, L>(
        &self,
        buf: P2pBuf<P>,
        len: usize,
        list: impl FnOnce(usize) -> Result<L>,
        access: &PeerAccess,
    ) -> Result<Prp<B>>
    where
        B: Backend + Send + Sync + 'static,
        P: Backend + Send + Sync + 'static,
        L: PrpListMem,
        Held<B>: From<L>,
    {
        let _ = access;
        self.lend_buf(buf, len, list, true)
    }

    /// A data pointer over `range` of a p2p buffer in a peer's BAR, for a controller behind an
    /// IOMMU: the peer's BAR is mapped into the controller's domain as `window`
    /// ([`VfioDma::map_peer_bar`](crate::map::vfio::VfioDma::map_peer_bar)), and every pointer
    /// — data and PRP list — is the IOVA of the buffer's bytes in it, not their bus address
    /// (under an IOMMU a bus address is not what the controller's DMA is translated from).
    /// The caller keeps the buffer, the list and the window alive until the command completes;
    /// a window dropped early is unmapped from the IOMMU and its IOVAs retired, so the
    /// controller's DMA then faults rather than landing elsewhere.
    ///
    /// `list`, if the transfer needs one, must lie in the same window (a [`CmbPrpList`] of the
    /// peer's pool): the transfer then has no pointer into host RAM at all.
    /// [`Error::PeerUnmapped`] if the buffer or the list is not inside the window.
    ///
    /// [`CmbPrpList`]: super::CmbPrpList
    #[cfg(feature = "vfio")]
    pub fn borrow_peer_iommu<P: Backend>(
        &self,
        buf: &P2pBuf<P>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
        window: &PeerBar,
        access: &PeerAccess,
    ) -> Result<DataPtr> {
        let _ = access;
        let (bus, len) = self.p2p_run(buf, range, true)?;
        let iova = window_iova(window, bus, len)?;
        let pages = self.plan(&[(iova, len)], len)?;
        match list {
            None => self.finish(pages.as_slice(), len, None),
            Some(inner) => {
                window_iova(window, inner.run(0..inner.len())?, inner.len())?;
                let list = WindowList { inner, window };
                self.finish(pages.as_slice(), len, Some(&list))
            }
        }
    }

    /// The run of `range` of a p2p buffer, which must be the controller's own memory (CMB or
    /// PMR, as its rule counts them) unless `peer` access was given:
    /// [`Error::PeerAccessRequired`] if not.
    fn p2p_run<P: Backend>(
        &self,
        buf: &P2pBuf<P>,
        range: Range<usize>,
        peer: bool,
    ) -> Result<(DmaAddr, usize)> {
        let (addr, len) = p2p_segment(buf.dma_addr(), buf.len(), range)?;
        let own = match &self.cmb {
            Some(rule) => rule.placement(addr.get(), len)? != Placement::Host,
            None => false,
        };
        if !own && !peer {
            let addr = addr.get();
            return Err(Error::PeerAccessRequired { addr, len });
        }
        Ok((addr, len))
    }

    fn borrow_buf<P: Backend>(
        &self,
        buf: &P2pBuf<P>,
        range: Range<usize>,
        list: Option<&dyn PrpListMem>,
        peer: bool,
    ) -> Result<DataPtr> {
        let seg = self.p2p_run(buf, range, peer)?;
        self.finish(self.plan(&[seg], seg.1)?.as_slice(), seg.1, list)
    }

    fn lend_buf<B, P, L>(
        &self,
        buf: P2pBuf<P>,
        len: usize,
        list: impl FnOnce(usize) -> Result<L>,
        peer: bool,
    ) -> Result<Prp<B>>
    where
        B: Backend + Send + Sync + 'static,
        P: Backend + Send + Sync + 'static,
        L: PrpListMem,
        Held<B>: From<L>,
    {
        let seg = self.p2p_run(&buf, 0..len, peer)?;
        let held = Held::Other(alloc::boxed::Box::new(buf.lend()));
        self.lend_segments(&[seg], len, held, list)
    }
}

/// The run of a p2p buffer (`base`, `size` bytes) for `range` of it, checked.
pub(super) fn p2p_segment(
    base: DmaAddr,
    size: usize,
    range: Range<usize>,
) -> Result<(DmaAddr, usize)> {
    if range.start > range.end || range.end > size {
        return Err(crate::Error::OutOfRange {
            offset: range.start,
            len: range.end.saturating_sub(range.start),
            size,
        }
        .into());
    }
    // CAST: `range.start` is within the buffer.
    let raw = base.get() + range.start as u64;
    // SAFETY: byte `range.start` of the buffer, one run of bus addresses it owns.
    let a = unsafe { DmaAddr::from_raw(raw) };
    Ok((a, range.len()))
}

/// The IOVA of `len` bytes at bus address `bus` in a peer's BAR window, or
/// [`Error::PeerUnmapped`].
#[cfg(feature = "vfio")]
fn window_iova(window: &PeerBar, bus: DmaAddr, len: usize) -> Result<DmaAddr> {
    // CAST: usize is at most 64 bits wide.
    match window.iova_of(bus.get(), len as u64) {
        // SAFETY: the IOVA of bytes the caller's buffer owns, mapped in the controller's IOMMU
        // domain for as long as the window lives (the caller keeps both until completion).
        Some(iova) => Ok(unsafe { DmaAddr::from_raw(iova) }),
        None => Err(Error::PeerUnmapped {
            addr: bus.get(),
            len,
            window: window.bus_addr(),
            window_len: window.len(),
        }),
    }
}

/// A PRP list in a peer's BAR, seen through the IOMMU window the controller reaches it by:
/// written through the list itself, addressed by its IOVAs.
#[cfg(feature = "vfio")]
struct WindowList<'a> {
    inner: &'a dyn PrpListMem,
    window: &'a PeerBar,
}

#[cfg(feature = "vfio")]
impl super::list::Sealed for WindowList<'_> {}

#[cfg(feature = "vfio")]
impl PrpListMem for WindowList<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn run(&self, range: Range<usize>) -> Result<DmaAddr> {
        let n = range.len();
        window_iova(self.window, self.inner.run(range)?, n)
    }
    fn write(&self, offset: usize, bytes: &[u8]) -> Result<()> {
        self.inner.write(offset, bytes)
    }
    fn publish(&self) {
        self.inner.publish()
    }
}
