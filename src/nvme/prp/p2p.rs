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

impl PrpBuilder {
    /// A data pointer over `range` of a p2p buffer in the controller's own CMB or PMR, which
    /// the caller keeps alive until the command completes. A buffer elsewhere (a peer's
    /// memory) is refused with [`Error::PeerAccessRequired`]: see
    /// [`borrow_peer`](Self::borrow_peer).
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
    /// [`Error::PeerAccessRequired`] (and dropped: never handed out, it goes back to its pool): see
    /// [`lend_peer`](Self::lend_peer).
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
