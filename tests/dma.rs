//! Typed DMA memory against the mock provider: memory lent to a device is never reused under it,
//! addresses come only from the memory that owns them and know its contiguity, the CPU's
//! accesses are volatile and its barriers traced, and bad input is a typed error.

use iomem::backend::mock::{Dir, Event};
use iomem::dma::{MockDma, MOCK_PAGE};
use iomem::order::{Arch, Barrier};
use iomem::Error;

/// A read into A, A dropped, B allocated: B must not get A's memory while the read may still
/// land in it, and the device's data lands in A, not in B.
#[test]
fn a_buffer_lent_to_a_device_is_not_reused_under_it() {
    let dma = MockDma::new(16 * MOCK_PAGE);
    let a = dma.alloc(MOCK_PAGE).unwrap();
    let read_into_a = a.lease(); // the Read command in flight targets A
    let addr_a = read_into_a.addr(0).unwrap();
    drop(a);
    let b = dma.alloc(MOCK_PAGE).unwrap();
    let b_lease = b.lease();
    assert_ne!(b_lease.addr(0).unwrap(), addr_a, "B was given A's memory");

    // The device completes its read late: the data lands in A's memory, B stays as it was.
    dma.device_write(addr_a, &[0xd7; 512]).unwrap();
    let mut got = [0xffu8; 512];
    b.mem()
        .subslice(0..512)
        .unwrap()
        .copy_to_slice(&mut got)
        .unwrap();
    assert_eq!(got, [0; 512]);

    // The command is abandoned without a completion: A is quarantined, not freed.
    drop(read_into_a);
    assert_eq!(dma.quarantine().len(), 1);
    assert_eq!(dma.allocated(), 2 * MOCK_PAGE);
    let c = dma.alloc(MOCK_PAGE).unwrap();
    let c_lease = c.lease();
    assert_ne!(c_lease.addr(0).unwrap(), addr_a);
    // After the controller is reset, the quarantine is released and A's memory is free again.
    // SAFETY: the "device" of this test is the test itself, and it is done.
    unsafe { dma.quarantine().release() };
    assert_eq!(dma.allocated(), 2 * MOCK_PAGE);
    // SAFETY: no device uses B or C.
    unsafe {
        b_lease.complete();
        c_lease.complete();
    }
    drop((b, c));
    assert!(dma.quarantine().is_empty());
    assert_eq!(dma.allocated(), 0);
}

/// The counterpart: memory whose lease completed is reused by the next allocation — the
/// allocator is a real one, so the test above shows the leases at work, not a lucky allocator.
#[test]
fn completed_memory_is_reused() {
    let dma = MockDma::new(16 * MOCK_PAGE);
    let a = dma.alloc(MOCK_PAGE).unwrap();
    let l = a.lease();
    let addr_a = l.addr(0).unwrap();
    // SAFETY: the command completed (no device in this test).
    unsafe { l.complete() };
    drop(a);
    let b = dma.alloc(MOCK_PAGE).unwrap();
    let lb = b.lease();
    assert_eq!(lb.addr(0).unwrap(), addr_a);
    // SAFETY: as above.
    unsafe { lb.complete() };
    assert!(dma.quarantine().is_empty());
}

/// Scattered pages: a range that crosses a gap is not contiguous, `range` refuses it, and the
/// segments give each run's own address (never `addr + 4096` into the wrong page).
#[test]
fn addresses_know_their_contiguity() {
    let dma = MockDma::new(64 * MOCK_PAGE)
        .with_scatter(2)
        .with_base(0x8000_0000);
    let buf = dma.alloc(4 * MOCK_PAGE).unwrap();
    assert!(!buf.contiguous(0..buf.len()).unwrap());
    assert!(buf.contiguous(0..2 * MOCK_PAGE).unwrap());
    let l = buf.lease();
    assert_eq!(
        l.range(0..4 * MOCK_PAGE),
        Err(Error::NotContiguous {
            offset: 0,
            len: 4 * MOCK_PAGE
        })
    );
    let segs = l.segments(100..3 * MOCK_PAGE + 7).unwrap();
    let page = MOCK_PAGE as u64;
    assert_eq!(segs.len(), 2);
    assert_eq!(segs[0].0.get(), 0x8000_0000 + 100);
    assert_eq!(segs[0].1, 2 * MOCK_PAGE - 100);
    // The second page pair starts after a one-page gap.
    assert_eq!(segs[1].0.get(), 0x8000_0000 + 3 * page);
    assert_eq!(segs[1].1, MOCK_PAGE + 7);
    assert_eq!(l.addr(2 * MOCK_PAGE).unwrap().get(), 0x8000_0000 + 3 * page);
    // A contiguous allocation finds a run of addresses; one larger than any run is refused.
    let c = dma.alloc_contiguous(2 * MOCK_PAGE).unwrap();
    assert!(c.contiguous(0..c.len()).unwrap());
    assert!(matches!(
        dma.alloc_contiguous(3 * MOCK_PAGE),
        Err(Error::Exhausted { .. })
    ));
    // The gap is no memory: the device cannot write there.
    assert!(dma
        .device_write(unsafe_addr(0x8000_0000 + 2 * page), &[1])
        .is_err());
    // SAFETY: no device uses these.
    unsafe { l.complete() };
}

/// A raw address for the device side of the mock (the test plays the device).
fn unsafe_addr(a: u64) -> iomem::dma::DmaAddr {
    // SAFETY: only given to the mock's device side, which checks it.
    unsafe { iomem::dma::DmaAddr::from_raw(a) }
}

#[test]
fn bad_input_is_a_typed_error() {
    let dma = MockDma::new(4 * MOCK_PAGE);
    assert!(matches!(dma.alloc(0), Err(Error::InvalidArgument(_))));
    assert!(matches!(
        dma.alloc(5 * MOCK_PAGE),
        Err(Error::Exhausted { size, free, .. }) if size == 5 * MOCK_PAGE && free == 4 * MOCK_PAGE
    ));
    let buf = dma.alloc(MOCK_PAGE).unwrap();
    let l = buf.lease();
    assert!(matches!(
        l.addr(MOCK_PAGE),
        Err(Error::OutOfRange { offset, .. }) if offset == MOCK_PAGE
    ));
    assert!(matches!(l.addr(usize::MAX), Err(Error::OutOfRange { .. })));
    #[allow(clippy::reversed_empty_ranges)]
    let backwards = 8..4;
    assert!(matches!(
        l.segments(backwards),
        Err(Error::InvalidArgument(_))
    ));
    assert!(buf.contiguous(0..MOCK_PAGE + 1).is_err());
    assert!(buf.mem().cast::<u64>(MOCK_PAGE - 4).is_err());
    assert!(buf.mem().try_read::<u32>(MOCK_PAGE - 2).is_err());
    // The device side reaches only allocated memory, and checks a whole range first.
    let end = l.addr(MOCK_PAGE - 1).unwrap();
    assert!(dma.device_write(end, &[1, 2]).is_err());
    assert_eq!(
        buf.mem().try_read::<u8>(MOCK_PAGE - 1),
        Ok(0),
        "a refused write wrote"
    );
    assert!(dma.device_write(unsafe_addr(0x10), &[1]).is_err());
    assert!(dma.device_write(unsafe_addr(u64::MAX), &[1, 2]).is_err());
    // SAFETY: no device uses it.
    unsafe { l.complete() };
}

/// The CPU's accesses to DMA memory are single volatile accesses of the field's width, with no
/// MMIO barriers; its DMA barriers are traced with the simulated arch's instructions.
#[test]
fn cpu_accesses_and_dma_barriers_are_traced() {
    let dma = MockDma::new(4 * MOCK_PAGE).with_arch(Arch::PowerPc64);
    let cq = dma.alloc(MOCK_PAGE).unwrap();
    let l = cq.lease();
    // The device posts a completion: phase tag set in dword 3.
    dma.device_write(l.addr(16 + 12).unwrap(), &0x0001_0007u32.to_le_bytes())
        .unwrap();
    dma.device_write(l.addr(16).unwrap(), &0xabcdu32.to_le_bytes())
        .unwrap();
    let entry = cq.mem().cast::<[u32; 4]>(16).unwrap();
    dma.ram().clear_events();
    let dw3: u32 = entry.try_read(12).unwrap();
    entry.dma_rmb();
    let dw0: u32 = entry.try_read(0).unwrap();
    entry.dma_wmb();
    assert_eq!((dw3 >> 16 & 1, dw3 as u16, dw0), (1, 7, 0xabcd));
    let events: Vec<String> = dma
        .ram()
        .events()
        .iter()
        .map(|e| match e {
            Event::Access(a) => format!("{:?}{}@{}", a.dir, a.width, a.offset % MOCK_PAGE),
            Event::Barrier { barrier, insns } => format!("{barrier:?}{insns:?}"),
        })
        .collect();
    assert_eq!(
        events,
        [
            "Read4@28",
            "DmaRmb[\"lwsync\"]",
            "Read4@16",
            "DmaWmb[\"lwsync\"]"
        ]
    );
    assert!(dma
        .ram()
        .barriers()
        .iter()
        .all(|b| matches!(b, Barrier::DmaRmb | Barrier::DmaWmb)));
    // A 64-byte command written by the CPU, read back by the device.
    let sq = dma.alloc(MOCK_PAGE).unwrap();
    let cmd: Vec<u8> = (0..64).collect();
    sq.mem()
        .subslice(64..128)
        .unwrap()
        .copy_from_slice(&cmd)
        .unwrap();
    let ls = sq.lease();
    let mut seen = [0u8; 64];
    dma.device_read(ls.addr(64).unwrap(), &mut seen).unwrap();
    assert_eq!(seen[..], cmd[..]);
    assert!(dma.ram().writes().iter().all(|a| a.dir == Dir::Write));
    // SAFETY: no device uses these any more.
    unsafe {
        l.complete();
        ls.complete();
    }
}

/// A submission queue whose ring is in host DMA memory: entries land in the ring (the device
/// reads them at the queue's address), the doorbell carries `writel`'s barrier (not a
/// write-combining flush), and a ring that is not one run of addresses is refused.
#[test]
fn a_host_submission_queue_publishes_through_its_doorbell() {
    use iomem::nvme::cmd::nvm::{self, Namespace};
    use iomem::nvme::regs::{offsets, ControllerRegs};
    use iomem::nvme::sq::{HostSqRing, HostSubmissionQueue};
    use iomem::IoMem;

    let bar0 = iomem::backend::MockIo::new(0x2000).with_arch(Arch::Aarch64);
    bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&bar0)).unwrap();
    let cap = regs.cap().unwrap();
    let dma = MockDma::new(64 * MOCK_PAGE)
        .with_scatter(2)
        .with_arch(Arch::Aarch64);

    let scattered = dma.alloc(4 * MOCK_PAGE).unwrap();
    assert!(matches!(
        HostSqRing::new(scattered),
        Err(iomem::nvme::Error::Core(Error::NotContiguous { .. }))
    ));

    let ring = HostSqRing::new(dma.alloc_contiguous(MOCK_PAGE).unwrap()).unwrap();
    let base = ring.lease().addr(0).unwrap();
    let mut sq: HostSubmissionQueue<_, _> =
        iomem::nvme::sq::SubmissionQueue::new(ring, 16, &bar0, cap, 1).unwrap();
    assert_eq!(sq.dma_addr(), base);
    let ns = Namespace::from_parts(1, 512, 1 << 20, None).unwrap();
    let cmd = nvm::write_zeroes(&ns, 0, 8).unwrap();
    sq.push_with_slot_cid(&cmd).unwrap();
    sq.push_with_slot_cid(&cmd).unwrap();
    bar0.clear_events();
    assert_eq!(sq.ring().unwrap(), 2);
    // One doorbell write of tail 2 at SQ 1's tail doorbell, after writel's barrier.
    assert_eq!(bar0.barriers(), [Barrier::IoBeforeWrite]);
    let w = bar0.writes();
    assert_eq!((w.len(), w[0].offset, w[0].value), (1, 0x1008, 2));
    // The device fetches the second entry from the ring's address.
    let mut seen = [0u8; 64];
    dma.device_read(base_plus(base, 64), &mut seen).unwrap();
    assert_eq!(seen[0], 0x08, "Write Zeroes");
    assert_eq!(u16::from_le_bytes([seen[2], seen[3]]), 1, "cid is the slot");
    assert_eq!(
        u32::from_le_bytes(seen[4..8].try_into().unwrap()),
        1,
        "nsid"
    );
}

/// `addr + n` for the test's device side (a DmaAddr has no arithmetic of its own).
fn base_plus(a: iomem::dma::DmaAddr, n: u64) -> iomem::dma::DmaAddr {
    unsafe_addr(a.get() + n)
}

/// A completion queue in host DMA memory: entries appear when the device posts them (phase
/// tag), the phase flips on every pass, the head goes back with one doorbell per batch, and
/// the queue refuses scattered memory and bad sizes.
#[test]
fn a_completion_queue_reads_posted_entries_and_batches_its_doorbell() {
    use iomem::nvme::cq::CompletionQueue;
    use iomem::nvme::regs::{offsets, ControllerRegs};
    use iomem::nvme::status::Code;
    use iomem::IoMem;

    let bar0 = iomem::backend::MockIo::new(0x2000).with_arch(Arch::PowerPc64);
    bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&bar0)).unwrap();
    let cap = regs.cap().unwrap();
    let dma = MockDma::new(64 * MOCK_PAGE)
        .with_scatter(2)
        .with_arch(Arch::PowerPc64);
    assert!(matches!(
        CompletionQueue::new(dma.alloc(4 * MOCK_PAGE).unwrap(), 1024, &bar0, cap, 1),
        Err(iomem::nvme::Error::Core(Error::NotContiguous { .. }))
    ));
    assert!(CompletionQueue::new(dma.alloc(MOCK_PAGE).unwrap(), 1, &bar0, cap, 1).is_err());
    assert!(CompletionQueue::new(dma.alloc(MOCK_PAGE).unwrap(), 512, &bar0, cap, 1).is_err());

    let mut cq =
        CompletionQueue::new(dma.alloc_contiguous(MOCK_PAGE).unwrap(), 4, &bar0, cap, 3).unwrap();
    let posted = |cq: &CompletionQueue<_, _>, slot: u16, cid: u16, phase: u32, status: u32| {
        let mut e = [0u8; 16];
        e[0..4].copy_from_slice(&0xfeedu32.to_le_bytes());
        e[8..12].copy_from_slice(&((u32::from(slot) + 1) | (1 << 16)).to_le_bytes());
        e[12..16].copy_from_slice(&(u32::from(cid) | (phase << 16) | (status << 17)).to_le_bytes());
        dma.device_write(cq.entry_addr(slot).unwrap(), &e).unwrap();
    };
    assert_eq!(cq.pop().unwrap(), None);
    posted(&cq, 0, 10, 1, 0);
    posted(&cq, 1, 11, 1, 0x4012); // Invalid Use of the CMB, DNR
    posted(&cq, 2, 12, 1, 0);
    let a = cq.pop().unwrap().unwrap();
    assert_eq!((a.result, a.sq_head, a.sq_id, a.cid), (0xfeed, 1, 1, 10));
    let b = cq.pop().unwrap().unwrap();
    assert_eq!(
        (b.cid, b.status.code(), b.status.dnr()),
        (11, Code::InvalidCmbUse, true)
    );
    assert_eq!(cq.pop().unwrap().unwrap().cid, 12);
    assert_eq!(cq.pop().unwrap(), None, "slot 3 not posted yet");
    bar0.clear_events();
    assert_eq!(cq.ring_head(), 3);
    assert_eq!(cq.ring_head(), 0, "nothing new: no second doorbell");
    // One doorbell write (head 3 at CQ 3's head doorbell, 0x1000 + 8*3 + 4) after writel's sync.
    let w = bar0.writes();
    assert_eq!((w.len(), w[0].offset, w[0].value), (1, 0x101c, 3));
    assert_eq!(bar0.instructions(), ["sync"]);
    // The phase tag was read before the payload, with lwsync (dma_rmb) between them.
    let ram = dma.ram();
    assert!(ram.instructions().iter().all(|i| *i == "lwsync"));
    // The last slot, then the wrap: the next pass's entries carry phase 0.
    posted(&cq, 3, 13, 1, 0);
    assert_eq!(cq.pop().unwrap().unwrap().cid, 13);
    assert_eq!(cq.head(), 0);
    assert_eq!(
        cq.pop().unwrap(),
        None,
        "slot 0 still holds the old pass's phase 1"
    );
    posted(&cq, 0, 14, 0, 0);
    assert_eq!(cq.pop().unwrap().unwrap().cid, 14);
    assert!(cq.entry_addr(4).is_err());
}
