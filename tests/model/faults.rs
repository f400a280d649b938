//! Injected faults: status, delay, lost completion, fatal, vanished device, never ready.

use crate::rig::*;

#[test]
fn a_status_fault_replaces_execution() {
    let mut rig = Rig::enabled(ModelConfig::default());
    let buf = rig.buf(4096);
    rig.model.inject(Fault::Status {
        target: Target::admin(0x06),
        status: 0x0006,
        times: 1,
    });
    let c = rig.admin(Cmd::new(0x06).prp(buf, 0).cdw(10, 1));
    assert_eq!(c.status, 0x0006);
    assert_eq!(rig.get(buf, 4096), vec![0; 4096], "not executed");
    let c = rig.admin(Cmd::new(0x06).prp(buf, 0).cdw(10, 1));
    assert_eq!(c.status, 0, "only once");
    assert_eq!(rig.get(buf, 4096)[512], 0x66);
    // An I/O fault does not touch admin commands; FOREVER keeps going.
    rig.io_pair(16);
    rig.model.inject(Fault::Status {
        target: Target::io(0x01),
        status: DNR | 0x0280,
        times: Fault::FOREVER,
    });
    for _ in 0..3 {
        assert_eq!(rig.rw(0x01, 0, 1, buf, 0).status, DNR | 0x0280);
    }
    assert_eq!(rig.rw(0x02, 0, 1, buf, 0).status, 0);
    rig.model.clear_faults();
    assert_eq!(rig.rw(0x01, 0, 1, buf, 0).status, 0);
}

#[test]
fn a_delayed_completion_is_posted_later() {
    let mut rig = io_rig(ModelConfig::default());
    let buf = rig.buf(4096);
    rig.model.inject(Fault::Delay {
        target: Target::any(),
        delay: Duration::from_millis(30),
        times: 1,
    });
    rig.model.write_lbas(0, &pattern(512, 12));
    rig.submit(true, Cmd::new(0x02).nsid(1).prp(buf, 0));
    assert!(rig.reap(true).is_none());
    assert_eq!(rig.model.stats().delayed, 1);
    assert_eq!(rig.get(buf, 512), pattern(512, 12), "executed at once");
    std::thread::sleep(Duration::from_millis(40));
    rig.model.advance();
    let c = rig.reap(true).expect("posted after the delay");
    assert_eq!(c.status, 0);
    assert_eq!(rig.model.stats().delayed, 0);
}

#[test]
fn a_lost_completion_is_never_posted() {
    let mut rig = io_rig(ModelConfig::default());
    let buf = rig.buf(4096);
    rig.put(buf, &pattern(512, 13));
    rig.model.inject(Fault::LoseCompletion {
        target: Target::io(0x01),
        times: 1,
    });
    rig.submit(true, Cmd::new(0x01).nsid(1).prp(buf, 0));
    rig.model.advance();
    assert!(rig.reap(true).is_none());
    assert_eq!(rig.model.stats().lost, 1);
    assert_eq!(rig.model.read_lbas(0, 1), pattern(512, 13), "executed");
    let last = rig.model.log().last().cloned().unwrap();
    assert_eq!((last.qid, last.opcode, last.status), (1, 0x01, 0));
    // The next command completes (its entry takes the lost one's slot).
    assert_eq!(rig.rw(0x02, 0, 1, buf, 0).status, 0);
}

#[test]
fn fatal_sets_cfs_and_stops_processing() {
    let mut rig = io_rig(ModelConfig::default());
    rig.model.inject(Fault::Fatal);
    assert_eq!(rig.csts() & 2, 2);
    let fetched = rig.model.stats().io_fetched;
    rig.submit(true, Cmd::new(0x00).nsid(1));
    assert_eq!(rig.model.stats().io_fetched, fetched);
    assert!(rig.reap(true).is_none());
}

#[test]
fn a_vanished_device_reads_zeros_or_all_ones() {
    let (mut rig, bar) = cmb_rig();
    rig.model.inject(Fault::Vanish(Vanish::Zeros));
    assert_eq!(rig.csts(), 0);
    let wide: u64 = IoMem::new(&*rig.bar0).try_read(offsets::CAP).unwrap();
    assert_eq!(wide, 0);
    assert!(matches!(
        rig.regs().cap(),
        Err(iomem::nvme::Error::DeviceGone { .. })
    ));
    let mut b = [0xaau8; 8];
    IoMem::new(&*bar)
        .subslice(0..8)
        .unwrap()
        .copy_to_slice(&mut b)
        .unwrap();
    assert_eq!(b, [0; 8]);
    // Writes are dropped: a disable does not happen, a doorbell is not seen.
    rig.w32(offsets::CC, 0);
    let before = rig.model.stats();
    rig.submit(true, Cmd::new(0x00).nsid(1));
    assert_eq!(rig.model.stats(), before);

    rig.model.inject(Fault::Vanish(Vanish::AllOnes));
    assert_eq!(rig.csts(), 0xffff_ffff);
    let wide: u64 = IoMem::new(&*rig.bar0).try_read(offsets::CAP).unwrap();
    assert_eq!(wide, u64::MAX);
    let half: u16 = IoMem::new(&*rig.bar0).try_read(offsets::VS).unwrap();
    assert_eq!(half, 0xffff);
    IoMem::new(&*bar)
        .subslice(0..8)
        .unwrap()
        .copy_to_slice(&mut b)
        .unwrap();
    assert_eq!(b, [0xff; 8]);

    rig.model.clear_faults();
    assert_eq!(rig.csts(), 1, "back, still enabled");
}

#[test]
fn never_ready() {
    let rig = Rig::new(ModelConfig::default());
    rig.model.inject(Fault::NeverReady);
    rig.program(0x000f_000f, CC_EN);
    rig.model.advance();
    assert_eq!(rig.csts(), 0);
    rig.w32(0x1000, 1);
    assert_eq!(rig.model.stats().admin_fetched, 0);
}
