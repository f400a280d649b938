//! Registers, CAP/VS, bad configurations, and the CC/CSTS state machine.

use crate::rig::*;

#[test]
fn cap_and_vs_report_the_configuration() {
    let rig = Rig::new(ModelConfig::default());
    let cap = rig.regs().cap().unwrap();
    assert_eq!(cap.mqes(), 1023);
    assert!(cap.cqr());
    assert_eq!((cap.to(), cap.dstrd(), cap.css()), (2, 0, 1));
    assert_eq!((cap.mpsmin(), cap.mpsmax()), (0, 4));
    assert!(!cap.cmbs());
    assert_eq!(rig.r32(offsets::VS), 0x0001_0400);
    // One 8-byte read equals the two 4-byte halves.
    let wide: u64 = IoMem::new(&*rig.bar0).try_read(offsets::CAP).unwrap();
    assert_eq!(Cap::decode(wide).unwrap(), cap);
    assert_eq!(wide as u32, rig.r32(offsets::CAP));
    // A stride of 16 bytes moves the doorbells.
    let rig = Rig::new(ModelConfig {
        dstrd: 2,
        mqes: 63,
        ..ModelConfig::default()
    });
    let cap = rig.regs().cap().unwrap();
    assert_eq!((cap.dstrd(), cap.mqes()), (2, 63));
    assert_eq!(cap.sq_tail_doorbell(1).unwrap(), 0x1020);
}

#[test]
fn bad_configurations_are_errors() {
    let bad = [
        ModelConfig {
            lba_size: 1000,
            ..ModelConfig::default()
        },
        ModelConfig {
            lba_count: 0,
            ..ModelConfig::default()
        },
        ModelConfig {
            mqes: 0,
            ..ModelConfig::default()
        },
        ModelConfig {
            max_io_queues: 0,
            ..ModelConfig::default()
        },
        ModelConfig {
            vs: 0x0001_0300,
            cmb: Some(CmbConfig::new(1 << 20, CmbScheme::Cmbmsc)),
            ..ModelConfig::default()
        },
        ModelConfig {
            cmb: Some(CmbConfig::new(1000, CmbScheme::Legacy)),
            ..ModelConfig::default()
        },
    ];
    for cfg in bad {
        let e = NvmeModel::new(cfg.clone(), MockDma::new(4096)).unwrap_err();
        assert!(
            matches!(
                e,
                iomem::nvme::Error::Core(iomem::Error::InvalidArgument(_))
            ),
            "{cfg:?}: {e:?}"
        );
    }
}

#[test]
fn enable_shutdown_disable() {
    let mut rig = Rig::new(ModelConfig::default());
    assert_eq!(rig.csts(), 0);
    rig.enable();
    assert_eq!(rig.r32(offsets::CC), CC_EN);
    // Normal shutdown: SHST = complete, still ready.
    rig.w32(offsets::CC, CC_EN | 1 << 14);
    assert_eq!(rig.csts(), 1 | 2 << 2);
    // Shutdown notification cleared: SHST back to normal.
    rig.w32(offsets::CC, CC_EN);
    assert_eq!(rig.csts(), 1);
    // Disable: not ready, queues gone (a doorbell to the admin SQ is ignored).
    rig.w32(offsets::CC, 0);
    assert_eq!(rig.csts(), 0);
    rig.w32(0x1000, 1);
    let ignored = rig.model.stats().ignored_doorbells;
    assert_eq!(ignored.len(), 1);
    assert_eq!(
        (ignored[0].offset, ignored[0].why),
        (0x1000, "controller not ready")
    );
    assert!(rig.model.log().is_empty());
    // Enable again: the admin queues start over at slot 0.
    rig.admin = Queue {
        tail: 0,
        head: 0,
        phase: true,
        ..rig.admin
    };
    rig.enable();
    let c = rig.admin(Cmd::new(0x0a).cdw(10, 7)); // Get Features NQ
    assert_eq!((c.status, c.result, c.sq_head), (0, 7 | 7 << 16, 1));
}

#[test]
fn invalid_enable_sets_cfs_until_reset() {
    let cases: [(u32, u32, &str); 4] = [
        (0x0000_000f, CC_EN, "ACQS = 0"),
        (0x000f_0000, CC_EN, "ASQS = 0"),
        (0x000f_000f, CC_EN | 5 << 7, "MPS above MPSMAX"),
        (0x000f_000f, CC_EN | 1 << 4, "CSS not NVM"),
    ];
    for (aqa, cc, what) in cases {
        let rig = Rig::new(ModelConfig::default());
        rig.program(aqa, cc);
        assert_eq!(rig.csts(), 2, "{what}: CFS, not ready");
        rig.w32(offsets::CC, 0);
        assert_eq!(rig.csts(), 0, "{what}: reset clears CFS");
    }
    // ASQ aligned to 4 KiB but not to an 8 KiB page.
    let mut rig = Rig::new(ModelConfig::default());
    rig.w32(offsets::AQA, 0x000f_000f);
    let page = rig.buf(3 * 4096);
    let asq = if page % 8192 == 0 { page + 4096 } else { page };
    rig.w64(offsets::ASQ, asq);
    rig.w64(offsets::ACQ, asq & !0x1fff);
    rig.w32(offsets::CC, CC_EN | 1 << 7);
    assert_eq!(rig.csts(), 2);
}

#[test]
fn ready_follows_after_the_delay() {
    let mut rig = Rig::new(ModelConfig {
        ready_delay: Duration::from_millis(30),
        ..ModelConfig::default()
    });
    rig.program(0x000f_000f, CC_EN);
    assert_eq!(rig.csts() & 1, 0, "not ready yet");
    std::thread::sleep(Duration::from_millis(40));
    rig.model.advance();
    assert_eq!(rig.csts() & 1, 1);
    let c = rig.admin(Cmd::new(0x0a).cdw(10, 7));
    assert_eq!(c.status, 0);
}
