//! Bad input to the queue layer from a caller or a misbehaving device: a queue pair given to
//! the wrong controller, ring offsets that overflow, a completion queue popped far past its
//! size without a head doorbell, DMA addresses past the top of the address space. Each gets a
//! typed error or a bounded answer, never a panic or memory given back under a device.
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::nvme::sq::SqRing;
use support::*;

/// Deleting a pair through a controller that did not create it would take down that
/// controller's own queue of the same qid and give the pair's rings back while its own
/// controller still writes them; it is refused, and the pair's memory is quarantined.
#[test]
fn a_queue_pair_is_deleted_only_by_its_own_controller() {
    let dma = MockDma::new(8 << 20);
    let (_model_a, mut ctrl_a, ns_a, mut qp_a) = up_io(&dma, long_config(), 16);
    let (_model_b, mut ctrl_b, _ns_b, qp_b) = up_io(&dma, long_config(), 16);
    let (_model_c, _ctrl_c, _ns_c, qp_c) = up_io(&dma, long_config(), 16);
    assert_eq!(qp_a.qid(), qp_b.qid());
    let quarantined = dma.quarantine().len();
    assert!(matches!(
        ctrl_a.delete_io_pair(qp_c),
        Err(Error::Core(iomem::Error::InvalidArgument(_)))
    ));
    assert!(
        dma.quarantine().len() > quarantined,
        "the refused pair's rings are kept"
    );
    // A's own pair with that qid still works, and B deletes its own.
    qp_a.execute(nvm::flush(ns_a.nsid())).unwrap();
    ctrl_b.delete_io_pair(qp_b).unwrap();
    ctrl_a.delete_io_pair(qp_a).unwrap();
}

/// A slot offset whose end overflows is an error for every ring and both ways of writing.
#[test]
fn ring_offsets_that_overflow_are_errors() {
    let dma = MockDma::new(1 << 16);
    let ring = HostSqRing::new(dma.alloc_contiguous(4096).unwrap()).unwrap();
    let far = usize::MAX - 8;
    let flush = nvm::flush(1);
    assert!(ring.write_command(far, &flush, Default::default()).is_err());
    assert!(matches!(
        ring.write_entry(far, &[0u8; 64], Default::default()),
        Err(iomem::Error::Overflow { .. })
    ));

    let (_model, _ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Legacy);
    let sq = pool.alloc_sq(32).unwrap();
    assert!(matches!(
        sq.write_command(far, &flush, Default::default()),
        Err(iomem::Error::Overflow { .. })
    ));
    assert!(matches!(
        sq.write_entry(far, &[0u8; 64], Default::default()),
        Err(iomem::Error::Overflow { .. })
    ));
}

/// A controller that keeps posting into a two-entry queue whose head is never rung (70 000
/// entries, past `u16::MAX`): every pop answers, and the head doorbell then hands back a
/// bounded count.
#[test]
fn popping_past_u16_max_without_a_head_doorbell_is_bounded() {
    use iomem::nvme::cq::CompletionQueue;
    use iomem::nvme::regs::{offsets, Cap};
    let bar = MockIo::new(0x2000);
    bar.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    let cap = Cap::decode(0x20_0a01_0fff).unwrap();
    let dma = MockDma::new(1 << 16);
    let ring = dma.alloc_contiguous(4096).unwrap();
    let mut cq = CompletionQueue::new(ring, 2, &bar, cap, 1).unwrap();
    for i in 0u32..70_000 {
        let mut e = [0u8; 16];
        // The phase tag (DW3 bit 16): 1 on the first pass over the ring, then alternating.
        e[14] = u8::from((i / 2) % 2 == 0);
        let slot = u16::try_from(i % 2).unwrap();
        dma.device_write(cq.entry_addr(slot).unwrap(), &e).unwrap();
        assert!(cq.pop().unwrap().is_some(), "entry {i}");
    }
    assert_eq!(cq.ring_head(), u16::MAX);
    assert_eq!(cq.ring_head(), 0, "nothing since");
}

/// A mock DMA space based near the top of the address space: an allocation whose pages would
/// pass it is an error, and takes no page.
#[test]
fn dma_addresses_past_the_top_of_the_address_space_are_errors() {
    let dma = MockDma::new(2 * 4096).with_base(!0xfff_u64);
    assert!(matches!(
        dma.alloc(8192),
        Err(iomem::Error::Overflow { .. })
    ));
    let one = dma.alloc(4096).unwrap();
    assert_eq!(one.lease().addr(0).unwrap().get(), !0xfff_u64);
}
