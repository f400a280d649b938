//! Registered (fixed) buffers of a queue pair: one lease for the registration, data pointers
//! into it that lend nothing, the lease handed back by `unregister`, quarantine otherwise.

use std::time::Duration;

use iomem::backend::MockIo;
use iomem::dma::MockDma;
use iomem::nvme::cmd::nvm::{self, Namespace};
use iomem::nvme::cmd::{Lent, Request};
use iomem::nvme::cq::CompletionQueue;
use iomem::nvme::ctrl::QueuePair;
use iomem::nvme::prp::{PageSize, PrpBuilder};
use iomem::nvme::regs::{offsets, Cap};
use iomem::nvme::sq::{HostSqRing, SubmissionQueue};
use iomem::nvme::Error;

const CAP: u64 = 0x20_0a01_0fff;

#[test]
fn registered_buffers_lend_nothing_and_come_back() {
    let bar = MockIo::new(0x2000);
    bar.poke(offsets::CAP, &CAP.to_le_bytes());
    let cap = Cap::decode(CAP).unwrap();
    let dma = MockDma::new(1 << 20);
    let ring = HostSqRing::new(dma.alloc_contiguous(16 * 64).unwrap()).unwrap();
    let sq = SubmissionQueue::new(ring, 16, &bar, cap, 1).unwrap();
    let cq = CompletionQueue::new(dma.alloc_contiguous(4096).unwrap(), 16, &bar, cap, 1).unwrap();
    let mut qp = QueuePair::new(sq, cq, &bar, Duration::from_secs(1));
    let data = dma.alloc_contiguous(4096).unwrap();
    let id = qp.register(&data);
    assert_eq!(data.holders(), 1);
    let ns = Namespace::from_parts(1, 512, 1 << 20, None).unwrap();
    let prp = PrpBuilder::new(PageSize::MIN, None);
    let d = prp
        .borrow(qp.registered(id).unwrap(), 0..4096, None)
        .unwrap();
    assert_eq!(d.prp1(), qp.registered(id).unwrap().addr(0).unwrap());
    // A bare command naming memory is refused: nothing it lends would keep that memory.
    assert!(matches!(
        qp.push(nvm::read(&ns, 0, 8, d).unwrap()),
        Err(Error::Core(iomem::Error::InvalidArgument(_)))
    ));
    // SAFETY: the registration's lease holds the buffer past this command (the pair is dropped
    // below, which quarantines it; the command never completes).
    qp.push(unsafe { Request::new(nvm::read(&ns, 0, 8, d).unwrap(), Lent::none()) })
        .unwrap();
    // Nothing lent per command: the registration's lease is the only holder.
    assert_eq!(data.holders(), 1);
    let lease = qp.unregister(id).unwrap();
    assert!(qp.registered(id).is_err() && qp.unregister(id).is_err());
    // A second registration reuses the slot; dropping the pair quarantines it (with both rings).
    let id2 = qp.register(&data);
    assert_eq!(id2, id);
    drop(qp);
    assert_eq!(dma.quarantine().len(), 3);
    // SAFETY: no device was given the addresses.
    unsafe { lease.complete() };
    // SAFETY: as above.
    unsafe { dma.quarantine().release() };
}
