//! The NVMe queue layer (`nvme::ctrl`) against the controller model (`nvme::model`).
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use std::time::{Duration, Instant};

use iomem::dma::{MockDma, MOCK_PAGE};
use iomem::nvme::cmd::nvm;
use iomem::nvme::ctrl::{Controller, QueueMem};
use iomem::nvme::model::{Fault, ModelConfig, NvmeModel, Target, Vanish};
use iomem::nvme::sq::HostSqRing;
use iomem::nvme::status::Code;
use iomem::nvme::Error;
use support::*;

#[test]
fn bring_up_and_identify() {
    let dma = MockDma::new(4 << 20);
    let (_model, mut ctrl) = up(&dma);
    let id = ctrl.identify();
    assert_eq!(id.nn, 1);
    assert_eq!(ctrl.max_transfer().unwrap(), Some(32 * 4096)); // MDTS 5 at 4 KiB pages
    let ns = ctrl.identify_namespace(1).unwrap();
    assert_eq!((ns.nsid(), ns.lba_size(), ns.lba_count()), (1, 512, 2048));
    assert_eq!(ctrl.active_namespaces().unwrap(), [1]);
    assert!(ctrl.check().unwrap().rdy());
}

#[test]
fn write_then_read_through_prp1_prp2_and_lists() {
    // Scattered memory: a gap after every 3 pages, so 64 KiB needs a PRP list.
    let dma = MockDma::new(8 << 20).with_scatter(3);
    let (model, mut ctrl, ns, mut qp) = up_io(&dma, config(), 64);
    for (len, slba) in [
        (512, 0u64),
        (4096, 8),
        (8192, 16),
        (65536, 64),
        (32 * 4096, 256),
    ] {
        let (src, data) = buffer(&dma, len, len as u8);
        qp.execute(io_req(ctrl.prp(), &dma, &ns, true, slba, &src, 0..len))
            .unwrap();
        assert_eq!(
            model.read_lbas(slba, (len / 512) as u32),
            data,
            "{len} bytes"
        );
        let dst = dma.alloc(len).unwrap();
        qp.execute(io_req(ctrl.prp(), &dma, &ns, false, slba, &dst, 0..len))
            .unwrap();
        assert_eq!(contents(&dst, len), data, "{len} bytes back");
    }
    assert_eq!(qp.in_flight(), 0);
    ctrl.delete_io_pair(qp).unwrap();
}

#[test]
fn batched_submission_rings_once_and_reaps_with_one_head_write() {
    let dma = MockDma::new(8 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 64);
    let (buf, _) = buffer(&dma, 32 * 512, 1);
    let before = model.stats();
    let mut cids = Vec::new();
    for i in 0..32 {
        let req = io_req(
            ctrl.prp(),
            &dma,
            &ns,
            true,
            i as u64,
            &buf,
            i * 512..(i + 1) * 512,
        );
        cids.push(qp.push(req).unwrap());
    }
    assert_eq!(qp.ring().unwrap(), 32);
    let mut done = Vec::new();
    while done.len() < 32 {
        qp.poll(64, |d| done.push(d)).unwrap();
    }
    let after = model.stats();
    assert_eq!(after.sq_doorbells - before.sq_doorbells, 1);
    assert_eq!(after.cq_doorbells - before.cq_doorbells, 1);
    let mut got: Vec<u16> = done.iter().map(|d| d.cid).collect();
    got.sort_unstable();
    cids.sort_unstable();
    assert_eq!(got, cids);
    assert!(done.iter().all(|d| d.status.is_success()));
}

#[test]
fn named_statuses_surface_as_typed_errors() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let cases = [
        (0x002u16, Code::InvalidField),
        (0x004, Code::DataTransferError),
        (0x012 | 1 << 14, Code::InvalidCmbUse),
        (0x080, Code::LbaOutOfRange),
        (0x082, Code::NamespaceNotReady),
    ];
    for (raw, code) in cases {
        model.inject(Fault::Status {
            target: Target::io(0x02),
            status: raw,
            times: 1,
        });
        let dst = dma.alloc(4096).unwrap();
        match qp.execute(io_req(ctrl.prp(), &dma, &ns, false, 0, &dst, 0..4096)) {
            Err(Error::CommandFailed {
                opcode,
                status,
                qid,
                ..
            }) => {
                assert_eq!((opcode, qid), (0x02, 1));
                assert_eq!(status.code(), code, "{status}");
                assert_eq!(status.dnr(), raw & 1 << 14 != 0);
            }
            other => panic!("{code:?}: {other:?}"),
        }
    }
    // A real LBA range error from the model, not an injected one.
    let dst = dma.alloc(4096).unwrap();
    let lease = dst.lease();
    let one = ctrl.prp().borrow(&lease, 0..512, None).unwrap();
    let two = ctrl.prp().borrow(&lease, 0..1024, None).unwrap();
    // The builder refuses what the namespace cannot hold, before anything is submitted.
    assert!(matches!(
        nvm::read(&ns, 2048, 1, one),
        Err(Error::LbaRange { .. })
    ));
    assert!(matches!(
        nvm::read(&ns, 2047, 2, two),
        Err(Error::LbaRange { .. })
    ));
    assert!(nvm::read(&ns, 2046, 2, two).is_ok());
}

#[test]
fn lost_completion_times_out_with_cid_and_opcode() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_millis(100));
    model.inject(Fault::LoseCompletion {
        target: Target::io(0x02),
        times: 1,
    });
    let dst = dma.alloc(4096).unwrap();
    let cid = qp
        .submit(io_req(ctrl.prp(), &dma, &ns, false, 0, &dst, 0..4096))
        .unwrap();
    let t = Instant::now();
    match qp.wait(cid) {
        Err(Error::Timeout {
            qid,
            cid: c,
            opcode,
        }) => assert_eq!((qid, c, opcode), (1, cid, 0x02)),
        other => panic!("{other:?}"),
    }
    let waited = t.elapsed();
    assert!(waited >= Duration::from_millis(100), "{waited:?}");
    assert!(waited < Duration::from_secs(2), "{waited:?}");
    // The buffer was lent to a command that never completed: it is not freed when dropped.
    drop(dst);
    assert!(dma.allocated() > 0);
    assert!(!dma.quarantine().is_empty() || qp.in_flight() == 1);
}

fn vanish_ends_promptly(v: Vanish) {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_secs(5));
    let dst = dma.alloc(4096).unwrap();
    model.inject(Fault::Vanish(v));
    let t = Instant::now();
    // The doorbell goes nowhere; the wait sees the device gone long before the deadline.
    let cid = qp
        .submit(io_req(ctrl.prp(), &dma, &ns, false, 0, &dst, 0..4096))
        .unwrap();
    assert!(
        matches!(qp.wait(cid), Err(Error::DeviceGone { .. })),
        "{v:?}"
    );
    assert!(
        t.elapsed() < Duration::from_millis(500),
        "{:?}",
        t.elapsed()
    );
    // Submit and poll fail fast from now on.
    let dst2 = dma.alloc(4096).unwrap();
    assert!(matches!(
        qp.submit(io_req(ctrl.prp(), &dma, &ns, false, 0, &dst2, 0..4096)),
        Err(Error::DeviceGone { .. })
    ));
    let polled = poll_until_error(&mut qp);
    assert!(
        matches!(polled, Err(Error::DeviceGone { .. })),
        "{polled:?}"
    );
    assert!(matches!(ctrl.check(), Err(Error::DeviceGone { .. })));
    // Admin waits too.
    let t = Instant::now();
    assert!(matches!(
        ctrl.identify_namespace(1),
        Err(Error::DeviceGone { .. })
    ));
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[test]
fn vanished_device_reading_zeros_ends_every_wait() {
    vanish_ends_promptly(Vanish::Zeros);
}

#[test]
fn vanished_device_reading_ones_ends_every_wait() {
    vanish_ends_promptly(Vanish::AllOnes);
}

#[test]
fn bring_up_failures_are_typed_and_prompt() {
    let dma = MockDma::new(4 << 20);
    for (fault, want) in [
        (Fault::NeverReady, "wait"),
        (Fault::Vanish(Vanish::Zeros), "gone"),
        (Fault::Vanish(Vanish::AllOnes), "gone"),
        (Fault::Fatal, "fatal"),
    ] {
        let model = NvmeModel::new(ModelConfig::default(), dma.clone()).unwrap();
        model.inject(fault);
        let t = Instant::now();
        let r = Controller::new(
            model.bar0(),
            QueueMem::host(&dma, 8).unwrap(),
            dma.alloc(4096).unwrap(),
            config(),
        );
        let ok = match (&r, want) {
            (Err(Error::WaitTimeout { .. }), "wait") => true,
            (Err(Error::DeviceGone { .. }), "gone") => t.elapsed() < Duration::from_millis(100),
            (Err(Error::Fatal { .. }), "fatal") => true,
            _ => false,
        };
        assert!(ok, "{want}: {:?} after {:?}", r.err(), t.elapsed());
    }
}

#[test]
fn completion_for_an_unknown_cid_is_an_error() {
    let dma = MockDma::new(4 << 20);
    let (_model, mut ctrl) = up(&dma);
    let mut qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    // Something posts a completion (phase 1, SQ 1, cid 9) that no command asked for.
    let mut e = [0u8; 16];
    e[8..12].copy_from_slice(&(1u32 << 16).to_le_bytes());
    e[12..16].copy_from_slice(&(9u32 | 1 << 16).to_le_bytes());
    dma.device_write(qp.cq().entry_addr(0).unwrap(), &e)
        .unwrap();
    assert!(matches!(
        qp.poll(4, |_| {}),
        Err(Error::UnknownCid { qid: 1, cid: 9 })
    ));
}

#[test]
fn queue_sizes_honour_mqes_and_contiguity() {
    let dma = MockDma::new(8 << 20).with_scatter(1);
    let (_model, mut ctrl) = up_with(
        ModelConfig {
            mqes: 15,
            ..ModelConfig::default()
        },
        &dma,
    );
    let qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 64).unwrap())
        .unwrap();
    assert_eq!(qp.sq().entries(), 16);
    // A scattered completion ring cannot be created physically contiguous (CAP.CQR): take
    // two-page regions until one straddles a gap in the addresses.
    let dma = MockDma::new(8 << 20).with_scatter(9);
    let (_model, mut ctrl) = up(&dma);
    let ring = HostSqRing::new(dma.alloc_contiguous(512 * 64).unwrap()).unwrap();
    let mut kept = Vec::new();
    let cq = loop {
        let r = dma.alloc(2 * MOCK_PAGE).unwrap();
        if !r.contiguous(0..2 * MOCK_PAGE).unwrap() {
            break r;
        }
        kept.push(r);
    };
    assert!(matches!(
        ctrl.create_io_pair(QueueMem::new(ring, cq, 512)),
        Err(Error::Core(iomem::Error::NotContiguous { .. }))
    ));
}

#[test]
fn queue_pairs_on_their_own_threads() {
    let dma = MockDma::new(16 << 20);
    let (model, mut ctrl) = up(&dma);
    let ns = ctrl.identify_namespace(1).unwrap();
    let prp = ctrl.prp();
    let pairs: Vec<Qp> = (0..2)
        .map(|_| {
            ctrl.create_io_pair(QueueMem::host(&dma, 32).unwrap())
                .unwrap()
        })
        .collect();
    let handles: Vec<_> = pairs
        .into_iter()
        .enumerate()
        .map(|(t, mut qp)| {
            let dma = dma.clone();
            std::thread::spawn(move || {
                for i in 0..16u64 {
                    let (src, data) = buffer(&dma, 4096, (t as u8) * 16 + i as u8);
                    let slba = (t as u64 * 16 + i) * 8;
                    qp.execute(io_req(prp, &dma, &ns, true, slba, &src, 0..4096))
                        .unwrap();
                    let dst = dma.alloc(4096).unwrap();
                    qp.execute(io_req(prp, &dma, &ns, false, slba, &dst, 0..4096))
                        .unwrap();
                    assert_eq!(contents(&dst, 4096), data);
                }
                qp
            })
        })
        .collect();
    for h in handles {
        let qp = h.join().unwrap();
        ctrl.delete_io_pair(qp).unwrap();
    }
    assert_eq!(model.read_lbas(0, 8).len(), 4096);
}

#[test]
fn shutdown_completes_and_memory_balances() {
    let dma = MockDma::new(4 << 20);
    {
        let (_model, mut ctrl) = up(&dma);
        let ns = ctrl.identify_namespace(1).unwrap();
        let mut qp = ctrl
            .create_io_pair(QueueMem::host(&dma, 16).unwrap())
            .unwrap();
        let (src, _) = buffer(&dma, 4096, 3);
        qp.execute(io_req(ctrl.prp(), &dma, &ns, true, 0, &src, 0..4096))
            .unwrap();
        ctrl.delete_io_pair(qp).unwrap();
        drop(src);
        ctrl.shutdown().unwrap();
    }
    // Every ring and buffer came back: nothing quarantined, nothing allocated.
    assert!(dma.quarantine().is_empty());
    assert_eq!(dma.allocated(), 0);
}

#[test]
fn a_failed_bring_up_disables_the_controller_again() {
    use iomem::nvme::cmd::opcodes;
    use iomem::nvme::regs::ControllerRegs;
    let dma = MockDma::new(4 << 20);
    let model = NvmeModel::new(ModelConfig::default(), dma.clone()).unwrap();
    // Identify Controller, the last step of bring-up, fails.
    model.inject(Fault::Status {
        target: Target::admin(opcodes::admin::IDENTIFY),
        status: 0x0002,
        times: 1,
    });
    let r = Controller::new(
        model.bar0(),
        QueueMem::host(&dma, 8).unwrap(),
        dma.alloc(4096).unwrap(),
        config(),
    );
    assert!(
        matches!(r, Err(Error::CommandFailed { opcode: 0x06, .. })),
        "{:?}",
        r.err()
    );
    let bar0 = model.bar0();
    let cc = ControllerRegs::new(iomem::IoMem::new(&*bar0))
        .unwrap()
        .cc()
        .unwrap();
    assert!(
        !cc.en(),
        "CC {:#x}: the controller was left enabled",
        cc.raw()
    );
}
