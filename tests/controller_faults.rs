//! Faults through `nvme::ctrl` against the model: named statuses as typed errors, lost and
//! late completions, a vanished device in every wait, a fatal controller, a controller that
//! never gets ready — and the DMA accounting after each.
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::nvme::cmd::opcodes;
use support::*;

const DNR: u16 = 1 << 14;

#[test]
fn named_io_statuses_are_typed_and_displayed() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    let cases = [
        (0x002 | DNR, Code::InvalidField, "Invalid Field in Command"),
        (
            0x012 | DNR,
            Code::InvalidCmbUse,
            "Invalid Use of Controller Memory Buffer",
        ),
        (0x080 | DNR, Code::LbaOutOfRange, "LBA Out of Range"),
        (0x004, Code::DataTransferError, "Data Transfer Error"),
        (0x082, Code::NamespaceNotReady, "Namespace Not Ready"),
    ];
    for (raw, code, name) in cases {
        model.inject(Fault::Status {
            target: Target::io(opcodes::nvm::READ),
            status: raw,
            times: 1,
        });
        let dst = dma.alloc(4096).unwrap();
        let cid = qp.submit(read_req(&ctrl, &dma, &ns, 0, &dst)).unwrap();
        let e = qp.wait(cid).unwrap_err();
        match e {
            Error::CommandFailed {
                qid,
                cid: c,
                opcode,
                status,
            } => {
                assert_eq!((qid, c, opcode), (1, cid, opcodes::nvm::READ));
                assert_eq!(status.code(), code);
                assert_eq!(status.raw(), raw);
                assert_eq!(status.dnr(), raw & DNR != 0);
            }
            ref other => panic!("{name}: {other:?}"),
        }
        let s = e.to_string();
        for part in [name, "command 0x02", &format!("cid {cid}"), "queue 1"] {
            assert!(s.contains(part), "{part:?} not in {s:?}");
        }
        // The command completed (with an error): its buffer is back, nothing quarantined.
        drop(dst);
        assert_eq!(qp.in_flight(), 0);
        assert_eq!(dma.quarantine().len(), 0);
    }
}

#[test]
fn admin_statuses_are_typed_and_a_failed_create_gives_the_rings_back() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl) = up(&dma);
    let baseline = dma.allocated();
    // Create I/O CQ refused with Invalid Queue Identifier (SCT 1h, SC 01h).
    model.inject(Fault::Status {
        target: Target::admin(opcodes::admin::CREATE_IO_CQ),
        status: 0x101 | DNR,
        times: 1,
    });
    let e = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap_err();
    match e {
        Error::CommandFailed {
            qid: 0,
            opcode,
            status,
            ..
        } => {
            assert_eq!(opcode, opcodes::admin::CREATE_IO_CQ);
            assert_eq!(status.code(), Code::InvalidQueueId);
        }
        ref other => panic!("{other:?}"),
    }
    let s = e.to_string();
    assert!(s.contains("Invalid Queue Identifier"), "{s}");
    assert!(s.contains("command 0x05") && s.contains("queue 0"), "{s}");
    // The controller created no queue: both rings are free again (failed before the fix:
    // quarantined).
    assert_eq!(dma.quarantine().len(), 0);
    assert_eq!(dma.allocated(), baseline);
    // Create I/O SQ refused: the CQ is deleted again and both rings are free.
    model.inject(Fault::Status {
        target: Target::admin(opcodes::admin::CREATE_IO_SQ),
        status: 0x102 | DNR,
        times: 1,
    });
    let mark = model.log().len();
    match ctrl.create_io_pair(QueueMem::host(&dma, 16).unwrap()) {
        Err(Error::CommandFailed { status, .. }) => {
            assert_eq!(status.code(), Code::InvalidQueueSize)
        }
        other => panic!("{other:?}"),
    }
    let ops: Vec<(u8, u16)> = model.log()[mark..]
        .iter()
        .map(|p| (p.opcode, p.status))
        .collect();
    assert_eq!(
        ops,
        [
            (opcodes::admin::CREATE_IO_CQ, 0),
            (opcodes::admin::CREATE_IO_SQ, 0x102 | DNR),
            (opcodes::admin::DELETE_IO_CQ, 0)
        ]
    );
    assert_eq!((dma.quarantine().len(), dma.allocated()), (0, baseline));
    // Neither failure used up the qid.
    let qp = ctrl
        .create_io_pair(QueueMem::host(&dma, 16).unwrap())
        .unwrap();
    assert_eq!(qp.qid(), 1);
    // A real one from the controller: deleting a queue that does not exist.
    match ctrl.admin().execute(admin::delete_io_sq(7).unwrap()) {
        Err(e @ Error::CommandFailed { .. }) => {
            assert!(e.to_string().contains("Invalid Queue Identifier"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    ctrl.delete_io_pair(qp).unwrap();
    ctrl.shutdown().unwrap();
    assert_eq!((dma.allocated(), dma.quarantine().len()), (0, 0));
}

/// Submits a 4 KiB Read on `qp` and waits for it.
fn read_wait(
    ctrl: &Ctrl,
    dma: &MockDma,
    ns: &Namespace,
    qp: &mut Qp,
) -> (u16, iomem::nvme::Result<Done>, Duration) {
    let dst = dma.alloc(4096).unwrap();
    // Timed from before the submission: the controller may fetch the command (and start a
    // delay's clock) before `submit` returns.
    let ((cid, r), took) = timed(|| {
        let cid = qp.submit(read_req(ctrl, dma, ns, 0, &dst)).unwrap();
        (cid, qp.wait(cid))
    });
    (cid, r, took)
}

#[test]
fn lost_and_overlong_completions_time_out_short_delays_do_not() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_millis(100));
    let faults = [
        Fault::LoseCompletion {
            target: Target::io(opcodes::nvm::READ),
            times: 1,
        },
        Fault::Delay {
            target: Target::io(opcodes::nvm::READ),
            delay: Duration::from_secs(30),
            times: 1,
        },
    ];
    for f in faults {
        model.inject(f);
        let (cid, r, took) = read_wait(&ctrl, &dma, &ns, &mut qp);
        match r {
            Err(e @ Error::Timeout { .. }) => {
                assert!(matches!(e, Error::Timeout { qid: 1, cid: c, opcode: 0x02 } if c == cid));
                let s = e.to_string();
                assert!(
                    s.contains(&format!("cid {cid}")) && s.contains("0x02"),
                    "{s}"
                );
            }
            other => panic!("{f:?}: {other:?}"),
        }
        assert!(took >= Duration::from_millis(100), "{f:?}: {took:?}");
        assert!(took < Duration::from_millis(1000), "{f:?}: {took:?}");
    }
    // Both commands are still in flight (their buffers held); the dropped regions are not freed.
    assert_eq!(qp.in_flight(), 2);
    // A delay shorter than the timeout: the command completes normally.
    model.inject(Fault::Delay {
        target: Target::io(opcodes::nvm::READ),
        delay: Duration::from_millis(30),
        times: 1,
    });
    let (cid, r, took) = read_wait(&ctrl, &dma, &ns, &mut qp);
    let d = r.unwrap();
    assert_eq!((d.cid, d.status.code()), (cid, Code::Success));
    assert!(took >= Duration::from_millis(30), "{took:?}");
    assert_eq!(model.stats().lost, 1);
}

#[test]
fn a_late_completion_after_the_timeout_retires_the_buffer() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_millis(100));
    let delay = Duration::from_millis(250);
    model.inject(Fault::Delay {
        target: Target::io(opcodes::nvm::READ),
        delay,
        times: 1,
    });
    model.write_lbas(0, &pattern(4096, 6));
    let dst = dma.alloc(4096).unwrap();
    let t = Instant::now();
    let cid = qp.submit(read_req(&ctrl, &dma, &ns, 0, &dst)).unwrap();
    assert!(matches!(qp.wait(cid), Err(Error::Timeout { cid: c, .. }) if c == cid));
    assert!(
        t.elapsed() < delay,
        "timed out after the completion was due"
    );
    let held = dma.allocated();
    // The buffer is lent to a command that has not completed: dropping the region frees
    // nothing, and it is not quarantined either (the queue pair still holds it).
    let seen = contents(&dst, 4096);
    drop(dst);
    assert_eq!(dma.allocated(), held);
    assert_eq!((dma.quarantine().len(), qp.in_flight()), (0, 1));
    assert!(seen.iter().all(|&b| b == 0) || seen == pattern(4096, 6));
    std::thread::sleep(delay.saturating_sub(t.elapsed()) + Duration::from_millis(20));
    model.advance();
    let done = poll_until(&mut qp, 1, Duration::from_secs(2)).unwrap();
    assert_eq!((done[0].cid, done[0].status.code()), (cid, Code::Success));
    // The late completion retired it: one page less.
    assert_eq!(qp.in_flight(), 0);
    assert_eq!(dma.allocated(), held - 4096);
    assert_eq!(dma.quarantine().len(), 0);
}

/// Injects `v` from another thread once `ready` holds of the model (the driver is inside the
/// wait under test, however slowly it got there) and 20 ms more have passed, returning when it
/// did.
fn vanish_when(
    model: &NvmeModel,
    v: Vanish,
    ready: impl Fn(&NvmeModel) -> bool + Send + 'static,
) -> std::thread::JoinHandle<Instant> {
    let m = model.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !ready(&m) {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the wait was never reached"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(20));
        m.inject(Fault::Vanish(v));
        Instant::now()
    })
}

fn assert_gone<T: core::fmt::Debug>(what: &str, r: iomem::nvme::Result<T>, v: Vanish) {
    match r {
        Err(Error::DeviceGone { value, .. }) => match v {
            Vanish::Zeros => assert_eq!(value, 0, "{what}"),
            Vanish::AllOnes => assert!(value == 0xffff_ffff || value == u64::MAX, "{what}"),
        },
        other => panic!("{what} ({v:?}): {other:?}"),
    }
}

/// Polls until a poll fails (a poll checks the controller every 256th call), at most 256 times.
fn poll_error(qp: &mut Qp) -> iomem::nvme::Result<usize> {
    let mut n = 0;
    for _ in 0..256 {
        n += qp.poll(8, |_| {})?;
    }
    Ok(n)
}

const PROMPT: Duration = Duration::from_millis(300);

fn bring_up_waits_end_when_the_device_goes(v: Vanish) {
    // The CSTS.RDY wait (a controller that would never get ready): the admin queues were
    // given to the controller and are quarantined; the scratch page was not lent yet.
    // The Identify Controller wait (its completion lost, then the device goes): the admin
    // rings and the scratch page Identify was writing into.
    let lost_identify = Fault::LoseCompletion {
        target: Target::admin(opcodes::admin::IDENTIFY),
        times: 1,
    };
    // In the RDY wait once CC.EN is set; in the Identify wait once its completion was lost.
    let enabled = |m: &NvmeModel| {
        let bar0 = m.bar0();
        let regs = iomem::nvme::regs::ControllerRegs::new(iomem::IoMem::new(&*bar0)).unwrap();
        regs.try_read32(iomem::nvme::regs::offsets::CC).unwrap() & 1 == 1
    };
    let lost = |m: &NvmeModel| m.stats().lost >= 1;
    type Ready = fn(&NvmeModel) -> bool;
    let waits: [(_, _, _, Ready); 2] = [
        ("CSTS.RDY wait", Fault::NeverReady, 2, enabled),
        ("Identify at bring-up", lost_identify, 3, lost),
    ];
    for (what, fault, quarantined, ready) in waits {
        let dma = MockDma::new(4 << 20);
        let model = NvmeModel::new(ModelConfig::default(), dma.clone()).unwrap();
        model.inject(fault);
        let h = vanish_when(&model, v, ready);
        let r = Controller::new(
            model.bar0(),
            QueueMem::host(&dma, 8).unwrap(),
            dma.alloc(4096).unwrap(),
            long_config(),
        );
        let gone_at = h.join().unwrap();
        assert!(
            gone_at.elapsed() < PROMPT,
            "{what}: {:?}",
            gone_at.elapsed()
        );
        assert_gone(what, r.map(|_| ()), v);
        assert_eq!(
            (dma.quarantine().len(), dma.allocated()),
            (quarantined, quarantined * 4096),
            "{what}"
        );
    }
}

fn every_wait_ends_when_the_device_goes(v: Vanish) {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl, ns, mut qp) = up_io(&dma, long_config(), 16);
    assert!(qp.timeout() >= Duration::from_secs(2));
    let baseline = dma.allocated();
    model.inject(Fault::Vanish(v));
    // I/O wait: the doorbell goes nowhere, the wait sees the device gone.
    let (_, r, took) = read_wait(&ctrl, &dma, &ns, &mut qp);
    assert_gone("I/O wait", r, v);
    assert!(took < PROMPT, "{took:?}");
    // Submit fails fast from now on, and so does poll.
    let dst = dma.alloc(4096).unwrap();
    let (r, took) = timed(|| qp.submit(read_req(&ctrl, &dma, &ns, 8, &dst)));
    assert_gone("submit", r, v);
    assert!(took < PROMPT);
    let (r, took) = timed(|| poll_error(&mut qp));
    assert_gone("poll", r, v);
    assert!(took < PROMPT, "{took:?}");
    // Admin commands, on a controller whose own check has not run yet.
    let (r, took) = timed(|| ctrl.identify_namespace(1));
    assert_gone("admin Identify", r, v);
    assert!(took < PROMPT, "{took:?}");
    assert_gone("check", ctrl.check(), v);
    // Shutdown.
    drop(qp);
    let (r, took) = timed(|| ctrl.shutdown());
    assert_gone("shutdown", r, v);
    assert!(took < PROMPT, "{took:?}");
    drop(dst);
    // Quarantined, exactly: the I/O pair's two rings, the Read buffer in flight, the refused
    // submit's buffer (lent before the refusal), the admin rings, and the scratch page the
    // failed Identify was lent.
    assert_eq!(dma.quarantine().len(), 2 + 1 + 1 + 2 + 1);
    assert!(dma.allocated() >= baseline);
    assert_eq!(dma.allocated(), 7 * 4096);
    drop(model);
    // SAFETY: the model (the only device) is gone.
    unsafe { dma.quarantine().release() };
    assert_eq!(dma.allocated(), 0);
}

#[test]
fn vanished_zeros_end_bring_up_waits() {
    bring_up_waits_end_when_the_device_goes(Vanish::Zeros);
}

#[test]
fn vanished_ones_end_bring_up_waits() {
    bring_up_waits_end_when_the_device_goes(Vanish::AllOnes);
}

#[test]
fn vanished_zeros_end_every_wait() {
    every_wait_ends_when_the_device_goes(Vanish::Zeros);
}

#[test]
fn vanished_ones_end_every_wait() {
    every_wait_ends_when_the_device_goes(Vanish::AllOnes);
}

#[test]
fn a_fatal_controller_ends_io_promptly() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, ns, mut qp) = up_io(&dma, long_config(), 16);
    // A command in flight (its completion held back), then CSTS.CFS.
    model.inject(Fault::Delay {
        target: Target::io(opcodes::nvm::READ),
        delay: Duration::from_secs(30),
        times: 1,
    });
    let dst = dma.alloc(4096).unwrap();
    let cid = qp.submit(read_req(&ctrl, &dma, &ns, 0, &dst)).unwrap();
    model.inject(Fault::Fatal);
    let (r, took) = timed(|| qp.wait(cid));
    assert!(
        matches!(r, Err(Error::Fatal { csts }) if csts & 2 != 0),
        "{r:?}"
    );
    assert!(took < PROMPT, "{took:?}");
    assert!(matches!(poll_error(&mut qp), Err(Error::Fatal { .. })));
    let dst2 = dma.alloc(4096).unwrap();
    assert!(matches!(
        qp.submit(read_req(&ctrl, &dma, &ns, 0, &dst2)),
        Err(Error::Fatal { .. })
    ));
    assert!(matches!(ctrl.check(), Err(Error::Fatal { .. })));
    assert!(r.unwrap_err().to_string().contains("CFS"));
}

#[test]
fn a_controller_that_never_gets_ready_times_out_after_the_ready_timeout() {
    // Config::ready_timeout, and CAP.TO when it is None (TO = 1: 500 ms).
    for (ready_timeout, to, ms) in [(Some(Duration::from_millis(300)), 2, 300), (None, 1, 500)] {
        let dma = MockDma::new(4 << 20);
        let model = NvmeModel::new(
            ModelConfig {
                timeout: to,
                ..ModelConfig::default()
            },
            dma.clone(),
        )
        .unwrap();
        model.inject(Fault::NeverReady);
        let (r, took) = timed(|| {
            Controller::new(
                model.bar0(),
                QueueMem::host(&dma, 8).unwrap(),
                dma.alloc(4096).unwrap(),
                Config {
                    ready_timeout,
                    ..long_config()
                },
            )
        });
        match r {
            Err(Error::WaitTimeout { what, ms: m }) => {
                assert_eq!(m, ms);
                assert_eq!(what, "CSTS.RDY = 1 after CC.EN = 1");
            }
            other => panic!("{other:?}"),
        }
        let want = Duration::from_millis(ms);
        assert!(
            took >= want && took < want + Duration::from_millis(250),
            "{took:?}"
        );
        // The admin rings the controller was given stay quarantined; the scratch page is free.
        assert_eq!((dma.quarantine().len(), dma.allocated()), (2, 2 * 4096));
    }
}

/// A wait ends with a timeout for its own command only: another command past its deadline (a
/// lost completion, or a long-lived command such as an Asynchronous Event Request) is left for
/// a check or poll to report, and every command past its deadline is reported, once each.
#[test]
fn a_wait_times_out_on_its_own_deadline_and_each_expired_command_is_reported() {
    let dma = MockDma::new(4 << 20);
    let (model, _ctrl, _ns, mut qp) = up_io(&dma, config(), 16);
    qp.set_timeout(Duration::from_millis(100));
    model.inject(Fault::LoseCompletion {
        target: Target::io(opcodes::nvm::FLUSH),
        times: 2,
    });
    let b = qp.submit(nvm::flush(1)).unwrap();
    let c = qp.submit(nvm::flush(1)).unwrap();
    // Stamps B and C; both are past their deadline once the sleep ends.
    qp.check().unwrap();
    std::thread::sleep(Duration::from_millis(150));
    model.inject(Fault::Delay {
        target: Target::any(),
        delay: Duration::from_millis(30),
        times: 1,
    });
    let a = qp.submit(nvm::flush(1)).unwrap();
    let d = qp.wait(a).unwrap();
    assert_eq!((d.cid, d.status.code()), (a, Code::Success));
    // B and C, each reported once, in cid order; then nothing.
    for want in [b, c] {
        let r = qp.check();
        assert!(
            matches!(r, Err(Error::Timeout { cid, opcode: 0x00, .. }) if cid == want),
            "{r:?}, want cid {want}"
        );
    }
    qp.check().unwrap();
    assert_eq!(qp.in_flight(), 2);
}

/// An Identify that got no completion keeps its scratch page lent (the controller may still
/// write it): the next Identify is refused rather than handed the same page, whose late write
/// would land in the later one's data; it runs over a new page the driver hands over.
#[test]
fn a_timed_out_identify_keeps_its_scratch_page_from_the_next() {
    let dma = MockDma::new(4 << 20);
    let (model, mut ctrl) = up(&dma);
    ctrl.admin().set_timeout(Duration::from_millis(100));
    model.inject(Fault::LoseCompletion {
        target: Target::admin(opcodes::admin::IDENTIFY),
        times: 1,
    });
    let r = ctrl.identify_namespace(1);
    assert!(
        matches!(
            r,
            Err(Error::Timeout {
                qid: 0,
                opcode: 0x06,
                ..
            })
        ),
        "{r:?}"
    );
    let log = model.log();
    let (lost, after) = (log.last().unwrap().prps.prp1, log.len());
    let r = ctrl.identify_namespace(1);
    assert!(matches!(r, Err(Error::Busy { .. })), "{r:?}");
    let lent_again = || {
        model.log()[after..]
            .iter()
            .filter(|p| p.opcode == opcodes::admin::IDENTIFY && p.prps.prp1 == lost)
            .count()
    };
    assert_eq!(lent_again(), 0, "the page was lent to a second Identify");
    // A new page: the old one stays held by the command in flight, not freed.
    let held = dma.allocated();
    let old = ctrl.replace_scratch(dma.alloc(4096).unwrap()).unwrap();
    drop(old);
    assert_eq!(dma.allocated(), held + 4096);
    let ns = ctrl.identify_namespace(1).unwrap();
    assert_eq!(ns.nsid(), 1);
    assert_eq!((model.log().len(), lent_again()), (after + 1, 0));
    // A page lent elsewhere is refused and handed back.
    let shared = dma.alloc(4096).unwrap();
    let lease = shared.lease();
    let Err((Error::Busy { .. }, shared)) = ctrl.replace_scratch(shared) else {
        panic!("a page lent elsewhere was taken");
    };
    // SAFETY: no device was given the lease's addresses.
    unsafe { lease.complete() };
    drop(ctrl.replace_scratch(shared).unwrap());
    assert_eq!(ctrl.identify_namespace(1).unwrap().nsid(), 1);
}
