//! Prepared data commands (`QueuePair::prepare`, `push_prepared`) against the model: the same
//! command bytes as the builder path, data moved, the builders' typed errors for bad input
//! with nothing submitted, a vanished device ending as `DeviceGone`.
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::nvme::ctrl::DataOp;
use iomem::nvme::prp::BufId;
use iomem::nvme::regs::SQ_ENTRY_SIZE;
use support::*;

/// The 64 bytes of submission queue slot `slot`, as the controller fetches them.
fn sq_entry(dma: &MockDma, qp: &Qp, slot: u32) -> [u8; 64] {
    let at = qp.sq().dma_addr().get() + u64::from(slot) * SQ_ENTRY_SIZE as u64;
    // SAFETY: a test reads the ring's bytes through the mock's device view.
    let at = unsafe { iomem::dma::DmaAddr::from_raw(at) };
    let mut b = [0u8; 64];
    dma.device_read(at, &mut b).unwrap();
    b
}

/// The builder path's command for the same push, with cid `cid`.
fn built(
    qp: &Qp,
    prp: &PrpBuilder,
    ns: &Namespace,
    op: DataOp,
    id: BufId,
    (slba, nlb, off): (u64, u32, usize),
    cid: u16,
) -> iomem::nvme::Result<Command> {
    let len = nlb as usize * ns.lba_size();
    let end = off.checked_add(len).expect("a test range");
    let d = prp.borrow(qp.registered(id)?, off..end, None)?;
    let mut c = rw(ns, op == DataOp::Write, slba, nlb, d)?;
    c.set_cid(cid);
    Ok(c)
}

#[test]
fn prepared_commands_are_the_builders_commands_and_move_the_data() {
    let dma = MockDma::new(8 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let prp = ctrl.prp();
    let (buf, data) = buffer(&dma, 8 * 4096, 7);
    let id = qp.register(&buf);
    let write = qp.prepare(DataOp::Write, &ns, 8, id, &prp).unwrap();
    assert_eq!(
        (write.op(), write.blocks(), write.bytes(), write.buffer()),
        (DataOp::Write, 8, 4096, id)
    );
    // One page; two pages from a mid-page offset (PRP2 the second page); the buffer's end.
    for (slba, off) in [
        (0u64, 0usize),
        (100, 512),
        (1000, 6 * 4096 + 2048),
        (200, 7 * 4096),
    ] {
        let slot = qp.sq().tail();
        let cid = qp.push_prepared(&write, slba, off).unwrap();
        let want = built(&qp, &prp, &ns, DataOp::Write, id, (slba, 8, off), cid).unwrap();
        assert_eq!(sq_entry(&dma, &qp, slot), want.to_bytes(), "{slba} {off}");
        qp.ring().unwrap();
        let d = qp.wait(cid).unwrap();
        assert_eq!(
            (d.opcode, d.cid),
            (iomem::nvme::cmd::opcodes::nvm::WRITE, cid)
        );
        assert!(
            model.read_lbas(slba, 8) == data[off..off + 4096],
            "{slba} {off}"
        );
        let log = model.log();
        let p = log.last().unwrap();
        assert_eq!(
            (p.cid, p.opcode),
            (cid, iomem::nvme::cmd::opcodes::nvm::WRITE)
        );
    }
    // Read back into another registered buffer, batched: one ring for all four.
    let (dst, _) = buffer(&dma, 4 * 4096, 0);
    let rid = qp.register(&dst);
    let read = qp.prepare(DataOp::Read, &ns, 8, rid, &prp).unwrap();
    let mut cids = Vec::new();
    for (k, slba) in [0u64, 100, 1000, 200].into_iter().enumerate() {
        let slot = qp.sq().tail();
        let cid = qp.push_prepared(&read, slba, k * 4096).unwrap();
        let want = built(&qp, &prp, &ns, DataOp::Read, rid, (slba, 8, k * 4096), cid).unwrap();
        assert_eq!(sq_entry(&dma, &qp, slot), want.to_bytes());
        cids.push(cid);
    }
    assert_eq!(qp.ring().unwrap(), 4);
    for cid in cids {
        qp.wait(cid).unwrap();
    }
    let back = contents(&dst, 4 * 4096);
    for (k, off) in [0usize, 512, 6 * 4096 + 2048, 7 * 4096]
        .into_iter()
        .enumerate()
    {
        assert!(
            back[k * 4096..(k + 1) * 4096] == data[off..off + 4096],
            "{k}"
        );
    }
    // Nothing was lent per command: each registration holds its buffer once.
    assert_eq!((buf.holders(), dst.holders()), (1, 1));
    assert_eq!(qp.in_flight(), 0);
}

#[test]
fn bad_input_gets_the_builders_typed_errors_and_submits_nothing() {
    let dma = MockDma::new(8 << 20);
    let (_model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let prp = ctrl.prp();
    let buf = dma.alloc(4 * 4096).unwrap();
    let id = qp.register(&buf);
    // The template: the same errors as the builders.
    let small = dma.alloc(4096).unwrap();
    let sid = qp.register(&small);
    assert!(matches!(
        qp.prepare(DataOp::Read, &ns, 0, id, &prp),
        Err(Error::InvalidField { field: "NLB", .. })
    ));
    assert!(matches!(
        qp.prepare(DataOp::Read, &ns, 65537, id, &prp),
        Err(Error::InvalidField { field: "NLB", .. })
    ));
    if let Some(max) = ns.max_transfer() {
        let nlb = (max / ns.lba_size()) as u32 + 1;
        assert!(matches!(
            qp.prepare(DataOp::Write, &ns, nlb, id, &prp),
            Err(Error::TransferTooLarge { .. })
        ));
    }
    let whole = u32::try_from(ns.lba_count())
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    assert!(qp.prepare(DataOp::Read, &ns, whole, id, &prp).is_err());
    // A buffer too small for the transfer: the data pointer's error.
    let e = qp.prepare(DataOp::Read, &ns, 16, sid, &prp).unwrap_err();
    let want = prp
        .borrow(qp.registered(sid).unwrap(), 0..8192, None)
        .unwrap_err();
    assert_eq!(format!("{e:?}"), format!("{want:?}"));
    let read = qp.prepare(DataOp::Read, &ns, 8, id, &prp).unwrap();
    let end = ns.lba_count();
    let cases = [
        (end - 7, 0usize, "past the namespace's end"),
        (u64::MAX, 0, "an LBA overflowing"),
        (0, 3 * 4096 + 512, "past the buffer's end"),
        (0, 2, "PRP1 not dword-aligned"),
    ];
    for (slba, off, what) in cases {
        let e = qp.push_prepared(&read, slba, off).unwrap_err();
        let want = built(&qp, &prp, &ns, DataOp::Read, id, (slba, 8, off), 0).unwrap_err();
        assert_eq!(format!("{e:?}"), format!("{want:?}"), "{what}");
        assert_eq!((qp.in_flight(), qp.sq().tail()), (0, 0), "{what}");
    }
    // An offset whose end overflows.
    assert!(matches!(
        qp.push_prepared(&read, 0, usize::MAX - 100),
        Err(Error::Core(_))
    ));
    assert!(matches!(
        qp.push_prepared(&read, end - 7, 0),
        Err(Error::LbaRange { .. })
    ));
    // A transfer over three pages needs a PRP list: the builder's error without one.
    let big = dma.alloc(16 * 4096).unwrap();
    let bid = qp.register(&big);
    let long = qp.prepare(DataOp::Read, &ns, 16, bid, &prp).unwrap();
    let e = qp.push_prepared(&long, 0, 512).unwrap_err();
    let want = built(&qp, &prp, &ns, DataOp::Read, bid, (0, 16, 512), 0).unwrap_err();
    assert_eq!(format!("{e:?}"), format!("{want:?}"));
    // An id no longer registered: the registration's error, and the buffer never used.
    let lease = qp.unregister(id).unwrap();
    let e = qp.push_prepared(&read, 0, 0).unwrap_err();
    assert_eq!(
        format!("{e:?}"),
        format!("{:?}", qp.registered(id).unwrap_err())
    );
    assert_eq!((qp.in_flight(), qp.sq().tail()), (0, 0));
    // SAFETY: no command used the buffer.
    unsafe { lease.complete() };
}

#[test]
fn a_full_queue_and_a_scattered_buffer() {
    let dma = MockDma::new(8 << 20).with_scatter(2);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 4);
    let prp = ctrl.prp();
    // Four pages in runs of two: not one run, so pushes take the checked path.
    let (buf, data) = buffer(&dma, 4 * 4096, 3);
    let id = qp.register(&buf);
    let write = qp.prepare(DataOp::Write, &ns, 8, id, &prp).unwrap();
    let cids: Vec<u16> = (0..3)
        .map(|k| qp.push_prepared(&write, k * 8, k as usize * 4096).unwrap())
        .collect();
    assert!(matches!(
        qp.push_prepared(&write, 0, 0),
        Err(Error::QueueFull { .. })
    ));
    assert_eq!(qp.ring().unwrap(), 3);
    for (k, cid) in cids.into_iter().enumerate() {
        qp.wait(cid).unwrap();
        assert!(model.read_lbas(k as u64 * 8, 8) == data[k * 4096..(k + 1) * 4096]);
    }
    // The ring wraps, with the SQ head taken from the completions.
    for round in 0..5u64 {
        let cid = qp.push_prepared(&write, round, 0).unwrap();
        qp.ring().unwrap();
        qp.wait(cid).unwrap();
    }
    assert_eq!(qp.in_flight(), 0);
}

#[test]
fn a_vanished_device_ends_prepared_commands_as_device_gone() {
    let dma = MockDma::new(8 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_secs(5));
    let buf = dma.alloc(4096).unwrap();
    let id = qp.register(&buf);
    let read = qp.prepare(DataOp::Read, &ns, 8, id, &ctrl.prp()).unwrap();
    model.inject(Fault::Vanish(Vanish::AllOnes));
    let t = Instant::now();
    let cid = qp.push_prepared(&read, 0, 0).unwrap();
    qp.ring().unwrap();
    assert!(matches!(qp.wait(cid), Err(Error::DeviceGone { .. })));
    assert!(t.elapsed() < Duration::from_millis(500));
    // From now on nothing is published and polls fail at once.
    let n = qp.in_flight();
    let pushed = qp.push_prepared(&read, 8, 0);
    assert!(matches!(qp.ring(), Err(Error::DeviceGone { .. })));
    assert!(matches!(qp.poll(8, |_| {}), Err(Error::DeviceGone { .. })));
    assert_eq!(qp.in_flight(), n + usize::from(pushed.is_ok()));
}

#[test]
fn a_vanished_device_is_found_by_polling_alone() {
    let dma = MockDma::new(8 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let buf = dma.alloc(4096).unwrap();
    let id = qp.register(&buf);
    let read = qp.prepare(DataOp::Read, &ns, 8, id, &ctrl.prp()).unwrap();
    model.inject(Fault::Vanish(Vanish::Zeros));
    qp.push_prepared(&read, 0, 0).unwrap();
    qp.ring().unwrap();
    let t = Instant::now();
    let polled = poll_until_error(&mut qp);
    assert!(
        matches!(polled, Err(Error::DeviceGone { .. })),
        "{polled:?}"
    );
    assert!(t.elapsed() < Duration::from_millis(500));
    assert!(matches!(
        qp.push_prepared(&read, 0, 0).and_then(|_| qp.ring()),
        Err(Error::DeviceGone { .. })
    ));
}

#[test]
fn under_a_cmb_rule_pushes_take_the_builder_path() {
    let dma = MockDma::new(8 << 20);
    let (model, mut ctrl, _info, _pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let prp = ctrl.prp();
    assert!(prp.cmb_rule().is_some());
    let ns = ctrl.identify_namespace(1).unwrap();
    let mut qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    let (buf, data) = buffer(&dma, 2 * 4096, 9);
    let id = qp.register(&buf);
    let write = qp.prepare(DataOp::Write, &ns, 8, id, &prp).unwrap();
    for (slba, off) in [(0u64, 0usize), (40, 2048)] {
        let slot = qp.sq().tail();
        let cid = qp.push_prepared(&write, slba, off).unwrap();
        let want = built(&qp, &prp, &ns, DataOp::Write, id, (slba, 8, off), cid).unwrap();
        assert_eq!(sq_entry(&dma, &qp, slot), want.to_bytes());
        qp.ring().unwrap();
        qp.wait(cid).unwrap();
        assert!(model.read_lbas(slba, 8) == data[off..off + 4096]);
    }
    let e = qp.push_prepared(&write, 0, 4097).unwrap_err();
    let want = built(&qp, &prp, &ns, DataOp::Write, id, (0, 8, 4097), 0).unwrap_err();
    assert_eq!(format!("{e:?}"), format!("{want:?}"));
    assert_eq!(qp.in_flight(), 0);
}
