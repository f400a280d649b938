//! `PrpBuilder::borrow_peer_iommu`: a peer's p2p buffer addressed by its IOVAs in the peer BAR
//! window, and refused outside it.

use std::string::ToString;
use std::sync::{Arc, Mutex};
use std::vec::Vec;

use super::{DataPtr, PageSize, Prp2, PrpBuilder};
use crate::backend::MockIo;
use crate::dma::MockDma;
use crate::map::linux::PeerAccess;
use crate::map::vfio::{Access, Iommu, PeerBar, VfioDma};
use crate::nvme::prp::HostPrpList;
use crate::nvme::Error;
use crate::p2p::P2pPool;

const PAGE: usize = 4096;
/// The peer's BAR: 64 KiB at this bus address.
const BUS: u64 = 0x1_0100_0000;
const BAR_LEN: usize = 64 * 1024;

/// An IOMMU that accepts every mapping.
#[derive(Debug, Default)]
struct AnyIommu(Mutex<Vec<(u64, u64)>>);

impl Iommu for AnyIommu {
    fn iova_ranges(&self) -> Vec<core::ops::Range<u64>> {
        std::vec![0..1 << 39]
    }
    fn page_size(&self) -> u64 {
        4096
    }
    unsafe fn map(&self, _: usize, len: u64, iova: u64, _: Access) -> crate::map::vfio::Result<()> {
        self.0.lock().unwrap().push((iova, len));
        Ok(())
    }
    fn unmap(&self, iova: u64, len: u64) -> crate::map::vfio::Result<()> {
        self.0.lock().unwrap().retain(|&m| m != (iova, len));
        Ok(())
    }
}

/// A peer BAR window over a file standing in for the BAR's memory.
fn window(dma: &VfioDma) -> PeerBar {
    let map = crate::map::linux::testutil::file_bar("prp-iommu", BAR_LEN);
    dma.map_peer_bar(Arc::new(map), BUS).unwrap()
}

fn pointers(d: &DataPtr) -> (u64, Option<u64>) {
    let p2 = match d.prp2() {
        Prp2::None => None,
        Prp2::Page(a) | Prp2::List(a) => Some(a.get()),
    };
    (d.prp1().get(), p2)
}

#[test]
fn peer_buffers_are_addressed_by_their_iovas_and_refused_outside_the_window() {
    let dma = VfioDma::with_iommu(Arc::new(AnyIommu::default()));
    let win = window(&dma);
    let access = PeerAccess::override_unchecked("unit test");
    let b = PrpBuilder::new(PageSize::new(4096).unwrap(), None);
    // The peer's pool: its BAR's memory at the window's bus address.
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    let pool = unsafe { P2pPool::new(Arc::new(MockIo::new(BAR_LEN)), BUS) }.unwrap();
    let buf = pool.alloc(2 * PAGE, PAGE).unwrap();
    let off = buf.bus_addr() - BUS;

    let d = b
        .borrow_peer_iommu(&buf, 0..2 * PAGE, None, &win, &access)
        .unwrap();
    assert_eq!(
        pointers(&d),
        (win.iova() + off, Some(win.iova() + off + PAGE as u64)),
        "PRP1 and PRP2 are IOVAs in the window, not bus addresses"
    );
    let d = b
        .borrow_peer_iommu(&buf, 100..PAGE, None, &win, &access)
        .unwrap();
    assert_eq!(pointers(&d), (win.iova() + off + 100, None));

    // A list in host memory is not in the window: refused (the transfer would point into RAM).
    let big = pool.alloc(4 * PAGE, PAGE).unwrap();
    let host = MockDma::new(1 << 20);
    let list = HostPrpList::new(host.alloc(PAGE).unwrap());
    let r = b.borrow_peer_iommu(&big, 0..4 * PAGE, Some(&list), &win, &access);
    assert!(
        matches!(r, Err(Error::PeerUnmapped { window: BUS, window_len, .. }) if window_len == BAR_LEN as u64),
        "{r:?}"
    );

    // A buffer of another BAR (a pool elsewhere) has no IOVA in this window.
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    let other =
        unsafe { P2pPool::new(Arc::new(MockIo::new(BAR_LEN)), BUS + BAR_LEN as u64) }.unwrap();
    let far = other.alloc(PAGE, PAGE).unwrap();
    let r = b.borrow_peer_iommu(&far, 0..PAGE, None, &win, &access);
    assert_eq!(
        r,
        Err(Error::PeerUnmapped {
            addr: far.bus_addr(),
            len: PAGE,
            window: BUS,
            window_len: BAR_LEN as u64
        })
    );
    assert!(r.unwrap_err().to_string().contains("map_peer_bar"));
}
