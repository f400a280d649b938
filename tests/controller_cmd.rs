//! Every command through `nvme::ctrl` against the model: Identify, Set/Get Features, queue
//! creation and deletion, Read, Write, Flush, Write Zeroes (512- and 4096-byte LBAs), MDTS,
//! and batched submission on several queue pairs on their own threads.
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::nvme::cmd::admin::{Feature, FeatureId, QueueCounts, Select};
use iomem::nvme::cmd::opcodes;
use support::*;

#[test]
fn identify_controller_namespace_and_active_list() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl) = up(&dma);
    let id = ctrl.identify();
    assert_eq!((id.vid, id.ssvid, id.cntlid), (0x1b36, 0x1af4, 1));
    assert_eq!((id.sqes, id.cqes, id.nn, id.mdts), (0x66, 0x44, 1, 5));
    assert_eq!(id.ver, 0x0001_0400);
    assert_eq!(id.serial(), "IOMEM-MODEL-0001");
    assert_eq!(id.model(), "iomem NVMe model");
    assert_eq!(id.firmware(), "1.0");
    let ns = ctrl.identify_namespace(1).unwrap();
    assert_eq!((ns.nsid(), ns.lba_size(), ns.lba_count()), (1, 512, 2048));
    assert_eq!(ns.max_transfer(), Some(128 << 10));
    assert_eq!(ctrl.active_namespaces().unwrap(), [1]);
    // Identify with CNS 1 (bring-up), 0 and 2, in that order, all on the admin queue.
    let log = model.log();
    let idents: Vec<_> = log
        .iter()
        .filter(|p| p.opcode == opcodes::admin::IDENTIFY)
        .collect();
    assert_eq!(idents.len(), 3);
    assert!(idents.iter().all(|p| p.qid == 0 && p.status == 0));
    // An invalid namespace is the controller's status, typed.
    match ctrl.identify_namespace(0xffff_fff0) {
        Err(Error::CommandFailed {
            qid: 0,
            opcode,
            status,
            ..
        }) => {
            assert_eq!(opcode, opcodes::admin::IDENTIFY);
            assert_eq!(status.code(), Code::InvalidNamespace);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn set_features_grant_is_honoured_and_get_features_reads_it() {
    let dma = MockDma::new(8 << 20);
    let (model, mut ctrl) = up_with(
        ModelConfig {
            max_io_queues: 2,
            ..ModelConfig::default()
        },
        &dma,
    );
    // Config::io_queues asks for 8; the controller has 2.
    assert_eq!(ctrl.set_queue_count(8).unwrap(), 2);
    let done = ctrl
        .admin()
        .execute(admin::get_features(
            FeatureId::NumberOfQueues,
            Select::Current,
        ))
        .unwrap();
    assert_eq!(
        QueueCounts::from_result(done.result),
        QueueCounts { sq: 2, cq: 2 }
    );
    // Another feature is stored and read back.
    ctrl.admin()
        .execute(admin::set_features(Feature::VolatileWriteCache { enabled: true }).unwrap())
        .unwrap();
    let wce = ctrl
        .admin()
        .execute(admin::get_features(
            FeatureId::VolatileWriteCache,
            Select::Current,
        ))
        .unwrap();
    assert_eq!(wce.result, 1);
    let a = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    let b = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    assert_eq!((a.qid(), b.qid()), (1, 2));
    let creates = model.log().len();
    match ctrl.create_io_pair(QueueMem::host(&dma, 16).unwrap()) {
        Err(Error::Unsupported { what }) => assert!(what.contains("granted"), "{what}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        model.log().len(),
        creates,
        "refused before any admin command"
    );
    // Number of Queues once queues exist: the controller's Command Sequence Error.
    match ctrl.set_queue_count(4) {
        Err(Error::CommandFailed { status, .. }) => {
            assert_eq!(status.code(), Code::CommandSequenceError)
        }
        other => panic!("{other:?}"),
    }
    ctrl.delete_io_pair(a).unwrap();
    ctrl.delete_io_pair(b).unwrap();
    ctrl.shutdown().unwrap();
    // The refused pair's rings were never given to the controller: nothing is quarantined.
    assert_eq!(dma.quarantine().len(), 0);
    assert_eq!(dma.allocated(), 0);
}

#[test]
fn a_smaller_explicit_grant_limits_the_pairs() {
    let dma = MockDma::new(4 << 20);
    let (_model, mut ctrl) = up(&dma);
    assert_eq!(ctrl.set_queue_count(1).unwrap(), 1);
    let qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 8).unwrap())
        .unwrap();
    assert!(matches!(
        ctrl.create_io_pair(QueueMem::host(&dma, 8).unwrap()),
        Err(Error::Unsupported { .. })
    ));
    ctrl.delete_io_pair(qp).unwrap();
    // The freed qid is the one granted.
    let qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 8).unwrap())
        .unwrap();
    assert_eq!(qp.qid(), 1);
}

#[test]
fn delete_then_create_reuses_the_qid() {
    let dma = MockDma::new(8 << 20);
    let (model, mut ctrl) = up(&dma);
    let ns = ctrl.identify_namespace(1).unwrap();
    let mut pairs: Vec<Qp> = (0..3)
        .map(|_| {
            ctrl.create_io_pair(QueueMem::host(&dma, 16).unwrap())
                .unwrap()
        })
        .collect();
    assert_eq!(pairs.iter().map(Qp::qid).collect::<Vec<_>>(), [1, 2, 3]);
    let second = pairs.remove(1);
    let before = model.log().len();
    ctrl.delete_io_pair(second).unwrap();
    let ops: Vec<(u8, u16)> = model.log()[before..]
        .iter()
        .map(|p| (p.opcode, p.status))
        .collect();
    assert_eq!(
        ops,
        [
            (opcodes::admin::DELETE_IO_SQ, 0),
            (opcodes::admin::DELETE_IO_CQ, 0)
        ]
    );
    let mut again = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    assert_eq!(again.qid(), 2);
    // The new queue 2 works, from slot 0 of fresh rings.
    let (src, data) = buffer(&dma, 4096, 9);
    let done = again
        .execute(write_req(&ctrl, &dma, &ns, 40, &src))
        .unwrap();
    assert_eq!((done.qid, done.opcode), (2, opcodes::nvm::WRITE));
    assert_eq!(model.read_lbas(40, 8), data);
    let next = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    assert_eq!(next.qid(), 4);
}

/// Write, Flush, Write Zeroes and Read on a namespace of `lba_size`-byte blocks.
fn nvm_commands(lba_size: u32) {
    let dma = MockDma::new(16 << 20).with_scatter(5);
    let (model, mut ctrl) = up_with(
        ModelConfig {
            lba_size,
            lba_count: 4096,
            ..ModelConfig::default()
        },
        &dma,
    );
    let ns = ctrl.identify_namespace(1).unwrap();
    assert_eq!((ns.lba_size(), ns.lba_count()), (lba_size as usize, 4096));
    let mut qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 32).unwrap())
        .unwrap();
    let bs = lba_size as usize;
    let len = 16 * bs;
    let (src, data) = buffer(&dma, len, 0x5a);
    let w = qp.execute(write_req(&ctrl, &dma, &ns, 100, &src)).unwrap();
    assert_eq!(w.opcode, opcodes::nvm::WRITE);
    assert_eq!(model.read_lbas(100, 16), data);
    let f = qp.execute(nvm::flush(1)).unwrap();
    assert_eq!(
        (f.opcode, f.status.code()),
        (opcodes::nvm::FLUSH, Code::Success)
    );
    // Zero blocks 104..108: they read back as zeros, the others keep their data.
    let z = qp.execute(nvm::write_zeroes(&ns, 104, 4).unwrap()).unwrap();
    assert_eq!(z.opcode, opcodes::nvm::WRITE_ZEROES);
    let mut want = data.clone();
    want[4 * bs..8 * bs].fill(0);
    assert_eq!(model.read_lbas(100, 16), want);
    assert!(model.read_lbas(104, 4).iter().all(|&b| b == 0));
    let dst = dma.alloc(len).unwrap();
    qp.execute(read_req(&ctrl, &dma, &ns, 100, &dst)).unwrap();
    assert_eq!(contents(&dst, len), want);
    // The last block of the namespace, and one past it refused by the builder.
    let (last, one) = buffer(&dma, bs, 3);
    qp.execute(io_req(ctrl.prp(), &dma, &ns, true, 4095, &last, 0..bs))
        .unwrap();
    assert_eq!(model.read_lbas(4095, 1), one);
    assert!(matches!(
        nvm::write_zeroes(&ns, 4095, 2),
        Err(Error::LbaRange {
            slba: 4095,
            nlb: 2,
            capacity: 4096
        })
    ));
    ctrl.delete_io_pair(qp).unwrap();
    drop((src, dst, last));
    ctrl.shutdown().unwrap();
    assert_eq!((dma.allocated(), dma.quarantine().len()), (0, 0));
}

#[test]
fn read_write_flush_write_zeroes_512() {
    nvm_commands(512);
}

#[test]
fn read_write_flush_write_zeroes_4096() {
    nvm_commands(4096);
}

/// A transfer of MDTS is accepted; one block more is refused by the builder, before anything
/// reaches the controller.
fn mdts(lba_size: u32) {
    let dma = MockDma::new(16 << 20);
    let (model, mut ctrl) = up_with(
        ModelConfig {
            lba_size,
            lba_count: 1024,
            ..ModelConfig::default()
        },
        &dma,
    );
    let max = ctrl.max_transfer().unwrap().unwrap();
    assert_eq!(max, 32 * 4096);
    let ns = ctrl.identify_namespace(1).unwrap();
    assert_eq!(ns.max_transfer(), Some(max));
    let mut qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    let bs = lba_size as usize;
    let (src, data) = buffer(&dma, max, 0x33);
    qp.execute(write_req(&ctrl, &dma, &ns, 0, &src)).unwrap();
    assert_eq!(model.read_lbas(0, (max / bs) as u32), data);

    let big = dma.alloc(max + bs).unwrap();
    let lease = big.lease();
    let list = HostPrpList::alloc(&dma, 4096).unwrap();
    let d = ctrl.prp().borrow(&lease, 0..max + bs, Some(&list)).unwrap();
    let before = model.log().len();
    let nlb = ((max + bs) / bs) as u32;
    match nvm::write(&ns, 0, nlb, d) {
        Err(e @ Error::TransferTooLarge { .. }) => {
            assert!(matches!(
                e,
                Error::TransferTooLarge { bytes, max: m } if bytes == (max + bs) as u64 && m == max as u64
            ));
            assert!(e.to_string().contains("MDTS"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        nvm::read(&ns, 0, nlb, d),
        Err(Error::TransferTooLarge { .. })
    ));
    assert_eq!(model.log().len(), before, "nothing was submitted");
    // SAFETY: the addresses were never given to a device (the builders refused them).
    unsafe {
        lease.complete();
        list.into_lease().complete();
    }
    drop(big);
    ctrl.delete_io_pair(qp).unwrap();
    drop(src);
    ctrl.shutdown().unwrap();
    assert_eq!((dma.allocated(), dma.quarantine().len()), (0, 0));
}

#[test]
fn mdts_limit_512() {
    mdts(512);
}

#[test]
fn mdts_limit_4096() {
    mdts(4096);
}

#[test]
fn pairs_on_threads_push_sixteen_and_ring_once() {
    const PAIRS: usize = 3;
    let dma = MockDma::new(32 << 20);
    let (model, mut ctrl) = up(&dma);
    let ns = ctrl.identify_namespace(1).unwrap();
    let prp = ctrl.prp();
    let pairs: Vec<Qp> = (0..PAIRS)
        .map(|_| {
            ctrl.create_io_pair(QueueMem::host(&dma, 32).unwrap())
                .unwrap()
        })
        .collect();
    let before = model.stats();
    let barrier = Arc::new(std::sync::Barrier::new(PAIRS));
    let handles: Vec<_> = pairs
        .into_iter()
        .enumerate()
        .map(|(t, mut qp)| {
            let dma = dma.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let bufs: Vec<_> = (0..16)
                    .map(|i| buffer(&dma, 4096, (t * 16 + i) as u8))
                    .collect();
                let mut cids = Vec::new();
                for (i, (b, _)) in bufs.iter().enumerate() {
                    let slba = ((t * 16 + i) * 8) as u64;
                    let req = io_req(prp, &dma, &ns, true, slba, b, 0..4096);
                    cids.push(qp.push(req).unwrap());
                }
                barrier.wait();
                assert_eq!(qp.ring().unwrap(), 16);
                let done = poll_until(&mut qp, 16, Duration::from_secs(5)).unwrap();
                let mut got: Vec<u16> = done.iter().map(|d| d.cid).collect();
                got.sort_unstable();
                cids.sort_unstable();
                assert_eq!(got, cids);
                assert!(done
                    .iter()
                    .all(|d| d.status.is_success() && d.qid == qp.qid()));
                (qp, bufs.into_iter().map(|(_, d)| d).collect::<Vec<_>>())
            })
        })
        .collect();
    let mut back = Vec::new();
    for h in handles {
        back.push(h.join().unwrap());
    }
    let after = model.stats();
    // One tail doorbell per pair for 16 commands, one head doorbell per pair for 16
    // completions (the model completes at the doorbell, so one poll reaps all of them).
    assert_eq!(after.sq_doorbells - before.sq_doorbells, PAIRS as u64);
    assert_eq!(after.cq_doorbells - before.cq_doorbells, PAIRS as u64);
    assert_eq!(after.io_completed - before.io_completed, 16 * PAIRS as u64);
    assert!(after.ignored_doorbells.is_empty());
    for (t, (qp, data)) in back.into_iter().enumerate() {
        for (i, d) in data.iter().enumerate() {
            assert_eq!(&model.read_lbas(((t * 16 + i) * 8) as u64, 8), d);
        }
        ctrl.delete_io_pair(qp).unwrap();
    }
    ctrl.shutdown().unwrap();
    assert_eq!((dma.allocated(), dma.quarantine().len()), (0, 0));
}

#[test]
fn waiting_out_of_order_finds_completions_reaped_by_an_earlier_wait() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let (a_buf, a_data) = buffer(&dma, 4096, 1);
    let (b_buf, b_data) = buffer(&dma, 4096, 2);
    let a = qp.push(write_req(&ctrl, &dma, &ns, 0, &a_buf)).unwrap();
    let b = qp.push(write_req(&ctrl, &dma, &ns, 8, &b_buf)).unwrap();
    assert_eq!(qp.ring().unwrap(), 2);
    // Waiting for B reaps A's completion first and keeps it.
    assert_eq!(qp.wait(b).unwrap().cid, b);
    let done_a = qp.wait(a);
    assert!(
        matches!(done_a, Ok(Done { cid, .. }) if cid == a),
        "{done_a:?}"
    );
    assert_eq!(model.read_lbas(0, 8), a_data);
    assert_eq!(model.read_lbas(8, 8), b_data);
}

#[test]
fn a_reused_cid_is_not_answered_by_a_kept_completion() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let (a_buf, _) = buffer(&dma, 4096, 1);
    let (b_buf, _) = buffer(&dma, 4096, 2);
    let a = qp.push(write_req(&ctrl, &dma, &ns, 0, &a_buf)).unwrap();
    let b = qp.push(write_req(&ctrl, &dma, &ns, 8, &b_buf)).unwrap();
    qp.ring().unwrap();
    // A's completion is kept for a later wait or poll; its cid stays taken until then.
    qp.wait(b).unwrap();
    // Reads that fail (an injected status): none may be answered by A's kept completion.
    model.inject(Fault::Status {
        target: Target::io(opcodes::nvm::READ),
        status: 0x4002,
        times: 2,
    });
    let d1 = dma.alloc(4096).unwrap();
    let d2 = dma.alloc(4096).unwrap();
    let c1 = qp.submit(read_req(&ctrl, &dma, &ns, 0, &d1)).unwrap();
    let c2 = qp.submit(read_req(&ctrl, &dma, &ns, 0, &d2)).unwrap();
    assert!(
        c1 != a && c2 != a,
        "cids {c1} {c2} reuse A's {a} while its completion is kept"
    );
    for c in [c1, c2] {
        let r = qp.wait(c);
        assert!(
            matches!(r, Err(Error::CommandFailed { cid, opcode: 0x02, .. }) if cid == c),
            "cid {c}: {r:?}"
        );
    }
    // A's completion, handed out at last, is A's own (a successful Write).
    let done = qp.wait(a).unwrap();
    assert_eq!((done.cid, done.opcode), (a, opcodes::nvm::WRITE));
    // Now its cid is free again.
    let d3 = dma.alloc(4096).unwrap();
    let c3 = qp.submit(read_req(&ctrl, &dma, &ns, 0, &d3)).unwrap();
    assert!(qp.wait(c3).is_ok());
    assert_eq!(qp.in_flight(), 0);
}

/// A data pointer is a number, and may be copied (`Prp::data`, `*request.command()`); a second
/// command made from a copy would lend nothing, and the first command's completion would free
/// the memory while the second is in flight (the device then writes a new owner's buffer). A
/// queue refuses a command that names memory it does not lend, and `into_request` one that
/// names other memory than its data pointer; nothing reaches the controller, and the one
/// request that lends the buffer still reads into it.
#[test]
fn a_copied_data_pointer_cannot_outlive_its_lease() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, long_config(), 16);
    let (src, data) = buffer(&dma, 4096, 7);
    qp.execute(write_req(&ctrl, &dma, &ns, 0, &src)).unwrap();
    let before = model.log().len();

    let a = dma.alloc(4096).unwrap();
    let prp = ctrl
        .prp()
        .lend(a.lease(), 0..4096, iomem::nvme::prp::no_list)
        .unwrap();
    let dup = prp.data();
    let req = prp.into_request(|d| nvm::read(&ns, 0, 8, d)).unwrap();
    let copy = *req.command();
    let refused =
        |r: Result<u16, Error>| matches!(r, Err(Error::Core(iomem::Error::InvalidArgument(_))));
    assert!(
        refused(qp.push(nvm::read(&ns, 0, 8, dup).unwrap())),
        "a copied data pointer"
    );
    assert!(refused(qp.push(copy)), "a copied command");

    // Another lent buffer's request may not name `a`'s memory either.
    let b = dma.alloc(4096).unwrap();
    let other = ctrl
        .prp()
        .lend(b.lease(), 0..4096, iomem::nvme::prp::no_list)
        .unwrap();
    assert!(matches!(
        other.into_request(|_| nvm::read(&ns, 0, 8, dup)),
        Err(Error::Core(iomem::Error::InvalidArgument(_)))
    ));
    // A command that names no memory needs none lent.
    assert_eq!(qp.in_flight(), 0);
    assert_eq!(
        model.log().len(),
        before,
        "nothing refused reached the controller"
    );
    let cid = qp.submit(req).unwrap();
    qp.wait(cid).unwrap();
    assert_eq!(contents(&a, 4096), data);
    qp.execute(nvm::flush(ns.nsid())).unwrap();
}
