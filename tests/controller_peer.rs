//! Peer memory in data pointers, against the model: a p2p buffer in the controller's own CMB
//! goes through `borrow_p2p`/`lend_p2p` as before; one in a peer's memory (a second pool at
//! another bus address, standing for another controller's CMB) is refused there with
//! `Error::PeerAccessRequired` and accepted by `borrow_peer`/`lend_peer` with a `PeerAccess`.
//! The model's DMA outside its own CMB goes to `MockDma`, which has no peer BAR: these tests
//! check the builder's verdicts and the PRPs it builds, not data moved.
#![cfg(all(feature = "model", feature = "linux"))]

#[path = "support/nvme.rs"]
mod support;

use iomem::map::linux::{P2pDistance, PciDevice, PeerAccess};
use iomem::nvme::prp::{PageSize, Prp2, PrpListMem};
use iomem::p2p::P2pPool;
use support::*;

/// The peer's BAR: 1 MiB at a bus address outside the model's CMB.
const PEER_BUS: u64 = 0x1_0100_0000;
const PAGE: usize = 4096;

fn peer_pool() -> P2pPool<Io> {
    // SAFETY: a mock at a made-up bus address: no device is given its addresses.
    unsafe { P2pPool::new(Arc::new(MockIo::new(1 << 20)), PEER_BUS) }.unwrap()
}

/// The little-endian PRP entries at the start of a CMB list page.
fn cmb_list_entries(model: &NvmeModel, list: u64, n: usize) -> Vec<u64> {
    cmb_peek(model, list, 8 * n)
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn a_peer_buffer_needs_peer_access_and_own_cmb_buffers_do_not() {
    let dma = MockDma::new(8 << 20);
    let (model, ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let peers = peer_pool();
    let b = ctrl.prp();

    // The controller's own CMB: as before, list in the CMB or in host memory.
    let own = pool.alloc_data_buf(4 * PAGE).unwrap();
    let clist = CmbPrpList::alloc(&pool, PAGE).unwrap();
    let d = b.borrow_p2p(&own, 0..4 * PAGE, Some(&clist)).unwrap();
    assert_eq!(d.prp1().get(), own.bus_addr());
    let hlist = HostPrpList::alloc(&dma, PAGE).unwrap();
    assert!(b.borrow_p2p(&own, 0..4 * PAGE, Some(&hlist)).is_ok());

    // A peer's buffer: refused without a permission, by both builders.
    let peer = peers.alloc(4 * PAGE, PAGE).unwrap();
    assert!(!in_cmb(peer.bus_addr()));
    let r = b.borrow_p2p(&peer, 0..4 * PAGE, Some(&clist));
    assert_eq!(
        r,
        Err(Error::PeerAccessRequired {
            addr: peer.bus_addr(),
            len: 4 * PAGE
        })
    );
    let msg = r.unwrap_err().to_string();
    assert!(
        msg.contains("borrow_peer") && msg.contains("override_unchecked"),
        "{msg}"
    );
    let lent = b.lend_p2p::<Io, _, _>(peers.alloc(PAGE, PAGE).unwrap(), PAGE, |n| {
        HostPrpList::alloc(&dma, n)
    });
    assert!(matches!(lent, Err(Error::PeerAccessRequired { .. })));
    // A builder without a CMB rule has no memory of its own: every p2p buffer is a peer's.
    let plain = PrpBuilder::new(PageSize::MIN, None);
    assert!(matches!(
        plain.borrow_p2p(&own, 0..PAGE, None),
        Err(Error::PeerAccessRequired { .. })
    ));

    // With an override: accepted. Every data pointer is the peer's, the list in the CMB (or
    // host memory: both are fine for data outside the controller's memory).
    let access = PeerAccess::override_unchecked("the model routes nothing: builder test");
    let d = b
        .borrow_peer(&peer, 0..4 * PAGE, Some(&clist), &access)
        .unwrap();
    assert_eq!(d.prp1().get(), peer.bus_addr());
    let Prp2::List(list) = d.prp2() else {
        panic!("{:?}", d.prp2())
    };
    assert_eq!(list.get(), clist.run(0..8).unwrap().get());
    let want: Vec<u64> = (1..4)
        .map(|k| peer.bus_addr() + (k * PAGE) as u64)
        .collect();
    assert_eq!(cmb_list_entries(&model, list.get(), 3), want);
    assert!(b
        .borrow_peer(&peer, 0..4 * PAGE, Some(&hlist), &access)
        .is_ok());
    // Two pages: PRP2 is the peer's second page.
    let d = b.borrow_peer(&peer, 0..2 * PAGE, None, &access).unwrap();
    assert!(matches!(d.prp2(), Prp2::Page(a) if a.get() == peer.bus_addr() + PAGE as u64));

    // A checked verdict grants it too; the peer builders take the controller's own memory.
    let tree = std::env::temp_dir().join(format!("iomem-peer-{}", std::process::id()));
    std::fs::create_dir_all(tree.join("0000:01:00.0")).unwrap();
    let dev = PciDevice::open_in(&tree, "0000:01:00.0").unwrap();
    let same = P2pDistance::between(&dev, &dev).unwrap();
    std::fs::remove_dir_all(&tree).unwrap();
    assert!(matches!(same, P2pDistance::SameDevice { .. }));
    let checked = PeerAccess::check(same).unwrap();
    assert!(!checked.is_override());
    assert!(plain.borrow_peer(&peer, 0..PAGE, None, &checked).is_ok());
    assert!(b
        .borrow_peer(&own, 0..4 * PAGE, Some(&clist), &checked)
        .is_ok());

    // Lending a peer buffer: the data pointer is the peer's, the buffer held by the command.
    let lent = b
        .lend_peer::<Io, _, _>(
            peers.alloc(3 * PAGE, PAGE).unwrap(),
            3 * PAGE,
            |n| HostPrpList::alloc(&dma, n),
            &access,
        )
        .unwrap();
    let before = peers.stats().free;
    let (data, lent) = lent.into_parts();
    assert!(data.prp1().get() >= PEER_BUS && data.prp1().get() < PEER_BUS + (1 << 20));
    // SAFETY: nothing was submitted.
    unsafe { lent.complete() };
    assert_eq!(peers.stats().free, before + 3 * PAGE, "completed: freed");
    // SAFETY: nothing was submitted.
    unsafe { dma.quarantine().release() };
}
