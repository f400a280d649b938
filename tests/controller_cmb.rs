//! The Controller Memory Buffer through `nvme::ctrl` against the model: `enable_cmb` under
//! both schemes, an I/O SQ in the CMB, CMB data with PRP lists in the CMB and in host memory,
//! the data pointer rule (refused by `ctrl.prp()` before submission; the controller's own
//! status for a command that slips through a raw path), and the pool's accounting.
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::dma::DmaAddr;
use iomem::nvme::cmd::opcodes;
use iomem::nvme::prp::{PageSize, PrpEntry};
use support::*;

/// A pair with its SQ in the CMB and its CQ in host memory.
fn cmb_pair(ctrl: &mut Ctrl, dma: &MockDma, pool: &CmbPool<Io>, n: u16) -> CmbQp {
    let sq = pool.alloc_sq(n.into()).unwrap();
    let cq = dma.alloc_contiguous(usize::from(n) * 16).unwrap();
    ctrl.create_io_pair(QueueMem::new(sq, cq, n)).unwrap()
}

/// Writes 3 pages from a CMB buffer and reads them into another, with the PRP list in the CMB
/// (`cmb_list`) or in host memory; checks the data and the data pointers the model followed.
fn cmb_data_round_trip(scheme: CmbScheme, cmb_list: bool) {
    let dma = MockDma::new(8 << 20);
    let (model, mut ctrl, info, pool) = up_cmb(&dma, scheme);
    assert_eq!(
        (info.bus_addr(), info.size(), info.scheme),
        (CMB_BUS, 1 << 20, scheme)
    );
    assert!(info.sqs && info.lists && info.rds && info.wds && !info.cqs);
    let initial = pool.stats();
    let ns = ctrl.identify_namespace(1).unwrap();
    let mut qp = cmb_pair(&mut ctrl, &dma, &pool, 16);
    assert!(in_cmb(qp.sq().bus_addr()), "{:#x}", qp.sq().bus_addr());
    let len = 3 * 4096;
    let data = pattern(len, 0x42);
    let src = pool.alloc_data_buf(len).unwrap();
    cmb_fill(&src, &data);
    let dst = pool.alloc_data_buf(len).unwrap();
    let (src_bus, dst_bus) = (src.bus_addr(), dst.bus_addr());
    let nlb = (len / 512) as u32;
    let mark = model.log().len();
    for (write, buf) in [(true, src), (false, dst)] {
        let prp = if cmb_list {
            ctrl.prp()
                .lend_p2p(buf, len, |n| CmbPrpList::alloc(&pool, n))
        } else {
            ctrl.prp()
                .lend_p2p(buf, len, |n| HostPrpList::alloc(&dma, n))
        };
        let req: Req = prp
            .unwrap()
            .into_request(|d| rw(&ns, write, 8, nlb, d))
            .unwrap();
        qp.execute(req).unwrap();
    }
    assert_eq!(model.read_lbas(8, nlb), data);
    assert_eq!(cmb_peek(&model, dst_bus, len), data);
    let log = model.log();
    let io: Vec<_> = log[mark..].iter().filter(|p| p.qid == qp.qid()).collect();
    assert_eq!(io.len(), 2);
    for (p, base) in io.iter().zip([src_bus, dst_bus]) {
        assert_eq!(p.status, 0);
        // No data pointer of a CMB transfer points into host RAM: PRP1 and every list entry.
        assert_eq!(p.prps.prp1, base);
        assert_eq!(p.prps.list, [base + 4096, base + 8192]);
        assert_eq!(
            in_cmb(p.prps.prp2),
            cmb_list,
            "the list is where it was put"
        );
    }
    ctrl.delete_io_pair(qp).unwrap();
    // Everything the commands and the ring lent came back to the pool.
    assert_eq!(pool.stats().free, initial.free);
    assert_eq!(pool.stats().allocations, 0);
    ctrl.shutdown().unwrap();
    assert_eq!((dma.allocated(), dma.quarantine().len()), (0, 0));
}

#[test]
fn cmb_data_under_both_schemes_with_the_list_in_the_cmb_or_host_memory() {
    for scheme in [CmbScheme::Cmbmsc, CmbScheme::Legacy] {
        for cmb_list in [true, false] {
            cmb_data_round_trip(scheme, cmb_list);
        }
    }
}

#[test]
fn a_controller_without_a_cmb_enables_none() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl) = up(&dma);
    assert_eq!(
        ctrl.enable_cmb(&model.bars(), ProbeOptions::default())
            .unwrap(),
        None
    );
    assert_eq!(ctrl.prp().cmb_rule(), None);
}

/// A CMB page and a host page as the two segments of one transfer.
fn mixed_segments(cmb: &P2pBuf<Io>, host: &iomem::dma::Lease<Io>) -> [(DmaAddr, usize); 2] {
    [(cmb.dma_addr(), 4096), (host.addr(0).unwrap(), 4096)]
}

#[test]
fn a_mixed_command_is_refused_before_submission() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let ns = ctrl.identify_namespace(1).unwrap();
    let _qp = cmb_pair(&mut ctrl, &dma, &pool, 16);
    let cmb = pool.alloc_data_buf(4096).unwrap();
    let host = dma.alloc(4096).unwrap();
    let lease = host.lease();
    let before = model.log().len();
    for segs in [
        mixed_segments(&cmb, &lease),
        [
            mixed_segments(&cmb, &lease)[1],
            mixed_segments(&cmb, &lease)[0],
        ],
    ] {
        // SAFETY: both segments are a page of memory this test owns and keeps alive; the
        // builder refuses them, so no device is given the addresses.
        let r = unsafe { ctrl.prp().from_segments(&segs, 8192, None) };
        match r {
            Err(e @ Error::CmbPlacement { entry, addr, .. }) => {
                assert_eq!(entry, PrpEntry::Prp2);
                assert_eq!(addr, segs[1].0.get());
                assert!(e.to_string().contains("PRP2"), "{e}");
            }
            other => panic!("{other:?}"),
        }
    }
    // A whole-CMB buffer and a host lease, each on its own, are fine.
    assert!(ctrl.prp().borrow_p2p(&cmb, 0..4096, None).is_ok());
    assert!(ctrl.prp().borrow(&lease, 0..4096, None).is_ok());
    let _ = ns;
    assert_eq!(model.log().len(), before, "nothing reached the controller");
    // SAFETY: the addresses were never given to a device.
    unsafe { lease.complete() };
}

/// Runs `cmd` (a Read with a mixed data pointer made by a raw path) and checks the
/// controller's Invalid Use of Controller Memory Buffer status.
///
/// # Safety
/// The memory `cmd` names outlives the command (it completes, with an error, before this
/// returns) and is lent to no other command.
unsafe fn controller_refuses(qp: &mut CmbQp, model: &NvmeModel, cmd: Command) {
    // SAFETY: the caller's contract.
    let cid = qp
        .submit(unsafe { Request::new(cmd, Lent::none()) })
        .unwrap();
    match qp.wait(cid) {
        Err(e @ Error::CommandFailed { .. }) => {
            let Error::CommandFailed {
                qid,
                cid: c,
                opcode,
                status,
            } = e
            else {
                unreachable!()
            };
            assert_eq!((qid, c, opcode), (qp.qid(), cid, opcodes::nvm::READ));
            assert_eq!(status.code(), Code::InvalidCmbUse);
            assert!(status.dnr());
            assert_eq!(status.raw(), 0x4012);
            let s = e.to_string();
            assert!(s.contains("Invalid Use of Controller Memory Buffer"), "{s}");
        }
        other => panic!("{other:?}"),
    }
    let last = model.log().last().cloned().unwrap();
    assert_eq!((last.cid, last.status), (cid, 0x4012));
}

#[test]
fn a_mixed_command_by_a_raw_path_gets_the_controllers_status() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let ns = ctrl.identify_namespace(1).unwrap();
    let mut qp = cmb_pair(&mut ctrl, &dma, &pool, 16);
    let cmb = pool.alloc_data_buf(4096).unwrap();
    let host = dma.alloc(4096).unwrap();
    let lease = host.lease();
    model.write_lbas(0, &pattern(8192, 1));

    // A builder that knows no CMB lets the mix through.
    let blind = PrpBuilder::new(PageSize::new(4096).unwrap(), None);
    // SAFETY: both pages are owned by this test and outlive the command (it completes before
    // they are dropped); the device may write them (a Read).
    let d = unsafe { blind.from_segments(&mixed_segments(&cmb, &lease), 8192, None) }.unwrap();
    let read = nvm::read(&ns, 0, 16, d).unwrap();
    // SAFETY: as just said; the command is lent to no other.
    unsafe { controller_refuses(&mut qp, &model, read) };

    // The raw dwords: PRP1 in host memory, PRP2 in the CMB.
    let mut dw = [0u32; 16];
    dw[0] = u32::from(opcodes::nvm::READ);
    dw[1] = 1;
    let (p1, p2) = (lease.addr(0).unwrap().get(), cmb.bus_addr());
    dw[6..10].copy_from_slice(&[p1 as u32, (p1 >> 32) as u32, p2 as u32, (p2 >> 32) as u32]);
    // 16 blocks
    dw[12] = 15;
    // SAFETY: PRP1 is a host page and PRP2 a CMB page this test owns and keeps until the
    // command completes; the device may write both (a Read).
    let raw = unsafe { Command::from_dwords(dw) };
    // SAFETY: as just said; the command is lent to no other.
    unsafe { controller_refuses(&mut qp, &model, raw) };
    // The refused reads moved no data.
    assert!(contents(&host, 4096).iter().all(|&b| b == 0));
    ctrl.delete_io_pair(qp).unwrap();
    // SAFETY: both commands completed; the pair is deleted.
    unsafe { lease.complete() };
}

/// A host pair with a Read into an 8 KiB CMB buffer whose completion never comes (timed
/// out); returns the pair and the buffer's bus address.
fn lost_cmb_read(
    ctrl: &mut Ctrl,
    model: &NvmeModel,
    dma: &MockDma,
    pool: &CmbPool<Io>,
    ns: &Namespace,
) -> (Qp, u64) {
    let mut qp = ctrl
        .create_io_pair(QueueMem::host(dma, 16).unwrap())
        .unwrap();
    qp.set_timeout(Duration::from_millis(50));
    model.inject(Fault::LoseCompletion {
        target: Target::io(opcodes::nvm::READ),
        times: 1,
    });
    let buf = pool.alloc_read_buf(8192).unwrap();
    let bus = buf.bus_addr();
    let req: Req = ctrl
        .prp()
        .lend_p2p(buf, 8192, iomem::nvme::prp::no_list)
        .unwrap()
        .into_request(|d| nvm::read(ns, 0, 16, d))
        .unwrap();
    let cid = qp.submit(req).unwrap();
    assert!(matches!(qp.wait(cid), Err(Error::Timeout { .. })));
    (qp, bus)
}

#[test]
fn cmb_buffers_of_a_deleted_pair_come_back_and_abandoned_ones_stay() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let ns = ctrl.identify_namespace(1).unwrap();
    let initial = pool.stats();
    // A command whose completion never comes: its CMB buffer stays lent.
    let (qp, _) = lost_cmb_read(&mut ctrl, &model, &dma, &pool, &ns);
    assert_eq!(pool.stats().free, initial.free - 8192);
    // Deleting the pair aborts the command: its buffer comes back.
    ctrl.delete_io_pair(qp).unwrap();
    assert_eq!(pool.stats().free, initial.free);

    // The same, but the pair is abandoned (dropped, its queues still on the controller): the
    // buffer stays allocated, never handed out again.
    let (qp, lost) = lost_cmb_read(&mut ctrl, &model, &dma, &pool, &ns);
    drop(qp);
    assert_eq!(pool.stats().free, initial.free - 8192);
    assert_eq!(pool.stats().allocations, 0);
    assert_eq!(pool.stats().quarantined, 8192);
    let fresh: Vec<_> = (0..8).map(|_| pool.alloc_read_buf(8192).unwrap()).collect();
    assert!(fresh.iter().all(|b| b.bus_addr() != lost));
    // Host side: the pair's two rings are quarantined (the controller still has the queues).
    drop(fresh);
    assert_eq!(dma.quarantine().len(), 2);
}

#[test]
fn an_abandoned_cmb_submission_ring_stays_allocated() {
    let dma = MockDma::new(4 << 20);
    let (_model, mut ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Cmbmsc);
    let initial = pool.stats();
    let qp = cmb_pair(&mut ctrl, &dma, &pool, 16);
    let ring = qp.sq().bus_addr();
    assert_eq!(pool.stats().free, initial.free - 4096);
    // Abandoned: the controller still has SQ 1 over the ring (and is enabled).
    drop(qp);
    assert_eq!(
        pool.stats().free,
        initial.free - 4096,
        "the ring of a live queue went back to the pool"
    );
    let next = pool.alloc_sq(16).unwrap();
    assert_ne!(next.bus_addr(), ring);
}

#[test]
fn a_cmb_sq_pair_under_load_and_the_cmb_rule_for_host_data() {
    let dma = MockDma::new(8 << 20).with_scatter(2);
    let (model, mut ctrl, _info, pool) = up_cmb(&dma, CmbScheme::Legacy);
    let ns = ctrl.identify_namespace(1).unwrap();
    let mut qp = cmb_pair(&mut ctrl, &dma, &pool, 8);
    // Host data through a CMB ring: 7 slots, wrapped around several times.
    for round in 0..4u64 {
        let bufs: Vec<_> = (0..7)
            .map(|i| buffer(&dma, 8192, (round * 7 + i) as u8))
            .collect();
        for (i, (b, _)) in bufs.iter().enumerate() {
            qp.push(write_req(&ctrl, &dma, &ns, (i as u64) * 16, b))
                .unwrap();
        }
        assert_eq!(qp.ring().unwrap(), 7);
        let done = poll_until(&mut qp, 7, Duration::from_secs(5)).unwrap();
        assert!(done.iter().all(|d| d.status.is_success()));
        for (i, (_, d)) in bufs.iter().enumerate() {
            assert_eq!(&model.read_lbas(i as u64 * 16, 16), d);
        }
    }
    // No host transfer named the CMB.
    let log = model.log();
    for p in log.iter().filter(|p| p.qid == qp.qid()) {
        assert!(p.prps.addresses().iter().all(|&a| !in_cmb(a)), "{p:?}");
    }
    ctrl.delete_io_pair(qp).unwrap();
    assert_eq!(pool.stats().allocations, 0);
}
