//! NVMe register decode, CMB discovery/enable and the CMB submission queue, against the mock.

use iomem::backend::MockIo;
use iomem::nvme::regs::*;
use iomem::nvme::Error;
use iomem::IoMem;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;

// ----------------------------------------------------------------------------------------------
// Register decode
// ----------------------------------------------------------------------------------------------

#[test]
fn cap_of_a_real_1_2_controller() {
    let cap = Cap::decode(0x20_0a01_0fff).unwrap();
    assert_eq!(cap.mqes(), 0xfff);
    assert_eq!(cap.max_queue_entries(), 4096);
    assert!(cap.cqr());
    assert_eq!(cap.ams(), 0);
    assert_eq!(cap.to(), 0x0a);
    assert_eq!(cap.timeout_ms(), 5000);
    assert_eq!(cap.dstrd(), 0);
    assert_eq!(cap.doorbell_stride(), 4);
    assert_eq!(cap.css(), 1);
    assert!(!cap.nssrs());
    assert_eq!(cap.mpsmin(), 0);
    assert_eq!(cap.mpsmin_bytes(), 4096);
    assert_eq!(cap.mpsmax_bytes(), 4096);
    assert!(!cap.cmbs());
    assert!(!cap.pmrs());
}

#[test]
fn cap_fields_at_their_bits() {
    // MQES=0x3f, CQR, AMS=1, TO=0x20, DSTRD=2, NSSRS, CSS=0xc1, BPS, MPSMIN=1, MPSMAX=4, PMRS, CMBS
    let raw: u64 = 0x3f
        | 1 << 16
        | 1 << 17
        | 0x20 << 24
        | 2 << 32
        | 1 << 36
        | 0xc1 << 37
        | 1 << 45
        | 1 << 48
        | 4 << 52
        | 1 << 56
        | 1 << 57;
    let cap = Cap::decode(raw).unwrap();
    assert_eq!(cap.mqes(), 0x3f);
    assert!(cap.cqr());
    assert_eq!(cap.ams(), 1);
    assert_eq!(cap.timeout_ms(), 0x20 * 500);
    assert_eq!(cap.dstrd(), 2);
    assert_eq!(cap.doorbell_stride(), 16);
    assert!(cap.nssrs());
    assert_eq!(cap.css(), 0xc1);
    assert!(cap.bps());
    assert_eq!(cap.mpsmin_bytes(), 8192);
    assert_eq!(cap.mpsmax_bytes(), 65536);
    assert!(cap.pmrs());
    assert!(cap.cmbs());
}

#[test]
fn doorbell_offsets_follow_dstrd() {
    for dstrd in 0..=15u64 {
        let cap = Cap::decode(0x20_0a01_0fff | dstrd << 32).unwrap();
        let stride = 4usize << dstrd;
        for y in [0u16, 1, 2, 7, 1023, u16::MAX] {
            let y2 = 2 * y as usize;
            assert_eq!(cap.sq_tail_doorbell(y).unwrap(), 0x1000 + y2 * stride);
            assert_eq!(cap.cq_head_doorbell(y).unwrap(), 0x1000 + (y2 + 1) * stride);
        }
    }
    // QEMU (DSTRD = 0): SQ y tail at 0x1000 + 8y, CQ y head at 0x1000 + 8y + 4.
    let cap = Cap::decode(0x20_0a01_0fff).unwrap();
    assert_eq!(cap.sq_tail_doorbell(3).unwrap(), 0x1018);
    assert_eq!(cap.cq_head_doorbell(3).unwrap(), 0x101c);
}

#[test]
fn malformed_cap() {
    assert!(matches!(
        Cap::decode(u64::MAX),
        Err(Error::DeviceGone { reg: "CAP", .. })
    ));
    assert!(matches!(
        Cap::decode(0),
        Err(Error::DeviceGone { reg: "CAP", .. })
    ));
    // MQES = 0
    assert!(matches!(
        Cap::decode(0x20_0a01_0000),
        Err(Error::BadRegister { reg: "CAP", .. })
    ));
    // no command set
    assert!(matches!(
        Cap::decode(0x0a01_0fff),
        Err(Error::BadRegister { reg: "CAP", .. })
    ));
    // MPSMIN 2 > MPSMAX 1
    let raw = 0x20_0a01_0fffu64 | 2 << 48 | 1 << 52;
    assert!(matches!(
        Cap::decode(raw),
        Err(Error::BadRegister { reg: "CAP", .. })
    ));
}

#[test]
fn vs_decode_and_order() {
    let vs = Vs::decode(0x10200).unwrap();
    assert_eq!((vs.major(), vs.minor(), vs.tertiary()), (1, 2, 0));
    assert!(!vs.has_cmbmsc());
    let qemu = Vs::decode(0x0001_0400).unwrap();
    assert!(qemu.has_cmbmsc());
    assert!(Vs::decode(0x0002_0000).unwrap() > qemu);
    assert!(Vs::decode(0x0001_0301).unwrap() < Vs::V1_4);
    assert!(matches!(
        Vs::decode(u32::MAX),
        Err(Error::DeviceGone { .. })
    ));
    assert!(matches!(Vs::decode(0), Err(Error::DeviceGone { .. })));
    assert!(matches!(
        Vs::decode(0x0000_0400),
        Err(Error::BadRegister { reg: "VS", .. })
    ));
}

#[test]
fn cc_builds_and_decodes() {
    let cc = Cc::default()
        .with_page_size(4096)
        .unwrap()
        .with_queue_entry_sizes(64, 16)
        .unwrap()
        .with_css(0)
        .unwrap()
        .with_en(true);
    assert_eq!(cc.raw(), 0x0046_0001);
    assert!(cc.en());
    assert_eq!(cc.page_size(), 4096);
    assert_eq!((cc.iosqes(), cc.iocqes()), (6, 4));
    let cc2 = cc.with_page_size(65536).unwrap().with_shn(Shutdown::Normal);
    assert_eq!(cc2.mps(), 4);
    assert_eq!(cc2.shn(), Shutdown::Normal);
    assert_eq!(cc2.with_en(false).raw() & 1, 0);
    assert!(cc.with_page_size(3000).is_err());
    assert!(cc.with_page_size(2048).is_err());
    assert!(cc.with_css(8).is_err());
    assert!(cc.with_queue_entry_sizes(48, 16).is_err());
    let cap = Cap::decode(0x20_0a01_0fff).unwrap(); // 4 KiB pages only, NVM only
    assert!(cc.check_against(cap).is_ok());
    assert!(matches!(
        cc2.check_against(cap),
        Err(Error::Unsupported { .. })
    ));
    assert!(matches!(
        cc.with_css(7).unwrap().check_against(cap),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn csts_aqa_queue_base() {
    let c = Csts::decode(0b1001).unwrap();
    assert!(c.rdy() && !c.cfs());
    assert_eq!(c.shst(), ShutdownStatus::Complete);
    assert!(Csts::decode(0b10).unwrap().cfs());
    assert_eq!(
        Csts::decode(0b0100).unwrap().shst(),
        ShutdownStatus::Occurring
    );
    assert!(matches!(
        Csts::decode(0b1100),
        Err(Error::BadRegister { .. })
    ));
    assert!(matches!(
        Csts::decode(u32::MAX),
        Err(Error::DeviceGone { .. })
    ));

    let aqa = Aqa::new(32, 64).unwrap();
    assert_eq!(aqa.raw(), 0x003f_001f);
    assert_eq!((aqa.sq_entries(), aqa.cq_entries()), (32, 64));
    assert!(Aqa::new(1, 2).is_err());
    assert!(Aqa::new(2, 4097).is_err());

    assert!(QueueBase::new(addr(0x1234_5000)).is_ok());
    assert!(QueueBase::new(addr(0x1234_5008)).is_err());
    assert!(matches!(
        QueueBase::decode("ASQ", 0x10),
        Err(Error::BadRegister { reg: "ASQ", .. })
    ));
    let cc = Cc::default().with_page_size(8192).unwrap();
    assert!(QueueBase::new(addr(0x3000))
        .unwrap()
        .check_page(cc)
        .is_err());
    assert!(QueueBase::new(addr(0x4000)).unwrap().check_page(cc).is_ok());
}

#[test]
fn cmb_registers_of_a_real_controller() {
    // CMBLOC = 0x3, CMBSZ = 0x500003: BAR3, offset 0, 1280 × 4 KiB = 5 MiB, SQS and CQS.
    let loc = Cmbloc::from_raw(0x3);
    let sz = Cmbsz::from_raw(0x50_0003);
    assert_eq!(loc.bir(), 3);
    assert_eq!(loc.bir_checked().unwrap(), 3);
    assert_eq!(loc.offset_bytes(sz).unwrap(), 0);
    assert!(sz.sqs() && sz.cqs() && !sz.lists() && !sz.rds() && !sz.wds());
    assert_eq!(sz.szu(), 0);
    assert_eq!(sz.unit_bytes().unwrap(), 4096);
    assert_eq!(sz.size_bytes().unwrap(), 5 << 20);
}

#[test]
fn cmbsz_units_and_reserved() {
    for szu in 0..=6u32 {
        let sz = Cmbsz::from_raw(2 << 12 | szu << 8);
        assert_eq!(sz.unit_bytes().unwrap(), 4096u64 << (4 * szu));
        assert_eq!(sz.size_bytes().unwrap(), 2 * (4096u64 << (4 * szu)));
    }
    for szu in 7..=15u32 {
        let sz = Cmbsz::from_raw(1 << 12 | szu << 8);
        assert!(matches!(
            sz.size_bytes(),
            Err(Error::BadRegister { reg: "CMBSZ", .. })
        ));
        assert!(Cmbloc::from_raw(1 << 12).offset_bytes(sz).is_err());
    }
    // the largest encodable CMB: (2^20 - 1) × 64 GiB fits in 64 bits
    let max = Cmbsz::from_raw(0xffff_f61f);
    assert_eq!(max.size_bytes().unwrap(), 0xf_ffff * (1u64 << 36));
    assert!(max.sqs() && max.cqs() && max.lists() && max.rds() && max.wds());
    // CMBLOC offset in SZU units, flags
    let loc = Cmbloc::from_raw(0x0001_01fa);
    assert_eq!(loc.bir(), 2);
    assert_eq!(loc.ofst(), 0x10);
    assert_eq!(
        loc.offset_bytes(Cmbsz::from_raw(1 << 8)).unwrap(),
        0x10 << 16
    );
    assert!(
        loc.cqmms() && loc.cqpds() && loc.cdpmls() && loc.cdpcils() && loc.cdmmms() && loc.cqda()
    );
    for bir in [1u32, 6, 7] {
        assert!(matches!(
            Cmbloc::from_raw(bir).bir_checked(),
            Err(Error::BadRegister { reg: "CMBLOC", .. })
        ));
    }
}

#[test]
fn cmbmsc_and_cmbsts() {
    let m = Cmbmsc::new(true, true, 0x1_0000_0000).unwrap();
    assert_eq!(m.raw(), 0x1_0000_0003);
    assert!(m.cre() && m.cmse());
    assert_eq!(m.cba(), 0x1_0000_0000);
    assert!(Cmbmsc::new(true, false, 0x800).is_err());
    assert!(matches!(
        Cmbmsc::decode(u64::MAX),
        Err(Error::DeviceGone { reg: "CMBMSC", .. })
    ));
    assert!(matches!(
        Cmbmsc::decode(0x4),
        Err(Error::BadRegister { reg: "CMBMSC", .. })
    ));
    assert_eq!(Cmbmsc::decode(0xfd00_0001).unwrap().cba(), 0xfd00_0000);
    assert!(Cmbsts::from_raw(1).cbai());
    assert!(!Cmbsts::from_raw(0).cbai());
}

/// A device that vanishes between the two halves of a 64-bit register read (a real value in
/// the low dword, the vanished pattern in the high one) is gone, not a controller with a bad
/// register or a wrong address: CAP after QEMU's zeros and after PCIe's all-ones, ASQ (whose
/// dwords may be zero) after all-ones. A real high dword of all-ones is read twice and kept.
#[test]
fn a_device_that_vanishes_inside_a_64_bit_read_is_gone() {
    let cases = [
        (offsets::CAP, 0x20_0a01_0fffu64, 0u32, 0u64),
        (offsets::CAP, 0x20_0a01_0fff, u32::MAX, u64::MAX),
        (offsets::ASQ, 0x1_2345_6000, u32::MAX, u64::MAX),
    ];
    for (reg, value, pattern, gone) in cases {
        {
            let mock = MockIo::new(0x2000);
            mock.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
            mock.poke(offsets::VS, &0x10200u32.to_le_bytes());
            mock.poke(reg, &value.to_le_bytes());
            let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
            // From the read of the register's low dword on, the device reads as `pattern`.
            let vanished = Arc::new(AtomicBool::new(false));
            let v = Arc::clone(&vanished);
            mock.on_read(0..0x2000, move |_, a| {
                let was = v.swap(v.load(SeqCst) || a.offset == reg, SeqCst);
                was.then_some(u128::from(pattern))
            });
            let r = if reg == offsets::CAP {
                regs.cap().map(|c| c.raw())
            } else {
                regs.asq().map(|q| q.addr())
            };
            assert!(
                matches!(r, Err(Error::DeviceGone { value, .. }) if value == gone),
                "reg {reg:#x}, pattern {pattern:#x}: {r:?}"
            );
        }
    }
    let mock = MockIo::new(0x2000);
    mock.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    mock.poke(offsets::VS, &0x10200u32.to_le_bytes());
    mock.poke(offsets::ASQ, &0xffff_ffff_2345_6000u64.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    mock.clear_events();
    assert_eq!(regs.asq().unwrap().addr(), 0xffff_ffff_2345_6000);
    assert_eq!(
        mock.reads().len(),
        4,
        "a high dword of all-ones is read again"
    );
}

#[test]
fn controller_regs_split_64_bit_accesses() {
    let mock = MockIo::new(0x2000);
    mock.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    mock.poke(offsets::VS, &0x10200u32.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    mock.clear_events();
    assert_eq!(regs.cap().unwrap().raw(), 0x20_0a01_0fff);
    let reads = mock.reads();
    assert_eq!(reads.len(), 2);
    assert_eq!((reads[0].offset, reads[0].width), (0, 4));
    assert_eq!((reads[1].offset, reads[1].width), (4, 4));

    mock.clear_events();
    regs.set_asq(QueueBase::new(addr(0x1_2345_6000)).unwrap());
    let w = mock.writes();
    assert_eq!(w.len(), 2);
    assert_eq!((w[0].offset, w[0].width, w[0].value), (0x2c, 4, 0x1));
    assert_eq!(
        (w[1].offset, w[1].width, w[1].value),
        (0x28, 4, 0x2345_6000)
    );
    assert_eq!(regs.asq().unwrap().addr(), 0x1_2345_6000);

    regs.set_aqa(Aqa::new(16, 16).unwrap());
    assert_eq!(regs.aqa().unwrap().sq_entries(), 16);
    regs.set_cc(Cc::default().with_en(true));
    assert!(regs.cc().unwrap().en());
    mock.poke(offsets::CSTS, &1u32.to_le_bytes());
    assert!(regs.csts().unwrap().rdy());

    let cap = regs.cap().unwrap();
    mock.clear_events();
    regs.ring_sq_tail(cap, 1, 5).unwrap();
    regs.ring_cq_head(cap, 1, 3).unwrap();
    let w = mock.writes();
    assert_eq!((w[0].offset, w[0].value), (0x1008, 5));
    assert_eq!((w[1].offset, w[1].value), (0x100c, 3));
    // a doorbell past the mapping is an error, not an access
    mock.clear_events();
    assert!(regs.ring_sq_tail(cap, 600, 1).is_err());
    assert!(mock.accesses().is_empty());
    mock.assert_no_violations();

    // too small for the register block
    let small = MockIo::new(0x40);
    assert!(ControllerRegs::new(IoMem::new(&small)).is_err());
}

#[test]
fn controller_regs_on_a_vanished_device() {
    let mock = MockIo::new(0x2000);
    mock.poke(0, &[0xff; 0x70]);
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    assert!(matches!(regs.cap(), Err(Error::DeviceGone { .. })));
    assert!(matches!(regs.vs(), Err(Error::DeviceGone { .. })));
    assert!(matches!(regs.csts(), Err(Error::DeviceGone { .. })));
    assert!(matches!(regs.cmbsz(), Err(Error::DeviceGone { .. })));
    assert!(matches!(regs.cmbmsc(), Err(Error::DeviceGone { .. })));
    mock.poke(0, &[0; 0x70]); // QEMU after device_del: zeros
    assert!(matches!(regs.cap(), Err(Error::DeviceGone { .. })));
    assert!(matches!(regs.vs(), Err(Error::DeviceGone { .. })));
}

/// The one DeviceGone check applies to every register that can be read: all-ones is a vanished
/// device everywhere but in the interrupt masks (where it is a valid mask), zeros too in CAP
/// and VS, which cannot be zero.
#[test]
fn every_readable_register_recognises_a_vanished_device() {
    let mock = MockIo::new(0x2000);
    mock.poke(0, &[0xff; 0x70]);
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    macro_rules! gone {
        ($($get:ident => $reg:literal),* $(,)?) => {$(
            match regs.$get() {
                Err(Error::DeviceGone { reg, value }) => {
                    assert_eq!(reg, $reg);
                    assert!(value == u64::from(u32::MAX) || value == u64::MAX, "{reg}: {value:#x}");
                }
                other => panic!("{}: all-ones decoded as {other:?}", $reg),
            }
        )*};
    }
    gone!(
        cap => "CAP", vs => "VS", cc => "CC", csts => "CSTS", aqa => "AQA", asq => "ASQ",
        acq => "ACQ", cmbloc => "CMBLOC", cmbsz => "CMBSZ", bpinfo => "BPINFO",
        bprsel => "BPRSEL", bpmbl => "BPMBL", cmbmsc => "CMBMSC", cmbsts => "CMBSTS",
        cmbebs => "CMBEBS", cmbswtp => "CMBSWTP", crto => "CRTO",
    );
    assert_eq!(regs.intms().unwrap().ivms(), u32::MAX);
    assert_eq!(regs.intmc().unwrap().ivmc(), u32::MAX);

    mock.poke(0, &[0; 0x70]);
    assert!(matches!(
        regs.cap(),
        Err(Error::DeviceGone {
            reg: "CAP",
            value: 0
        })
    ));
    assert!(matches!(
        regs.vs(),
        Err(Error::DeviceGone {
            reg: "VS",
            value: 0
        })
    ));
    assert_eq!(regs.cc().unwrap(), Cc::default(), "CC may be zero");
    assert_eq!(
        regs.asq().unwrap().addr(),
        0,
        "so may the admin queue bases"
    );
    assert!(regs.cmbsz().unwrap().is_zero(), "and CMBSZ (no CMB)");
}

/// Finding: a 64-bit access at a run-time offset near `usize::MAX` used to compute `off + 4`
/// unchecked — a panic in debug builds, and in release a write of the high dword to offset 0
/// (CAP) before the error. Every range is now checked before the first access.
#[test]
fn raw_accesses_check_the_whole_range_before_the_first_access() {
    const CAP: u64 = 0x20_0a01_0fff;
    let mock = MockIo::new(0x2000);
    mock.poke(offsets::CAP, &CAP.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    mock.clear_events();
    for off in [
        usize::MAX - 3, // off + 4 wraps to 0
        usize::MAX - 7, // off + 8 wraps to 0
        usize::MAX,
        0x1ffc, // the low dword is in the mapping, the high one is not
        0x2000,
        0x1002, // misaligned
    ] {
        let w = regs.try_write64_hi_lo(off, 0xdead_beef_dead_beef);
        assert!(matches!(w, Err(Error::Core(_))), "{off:#x}: {w:?}");
        let r = regs.try_read64_lo_hi(off);
        assert!(matches!(r, Err(Error::Core(_))), "{off:#x}: {r:?}");
    }
    for off in [usize::MAX - 1, 0x2000, 0x1002] {
        assert!(regs.try_write32(off, 0xdead_beef).is_err(), "{off:#x}");
        assert!(regs.try_read32(off).is_err(), "{off:#x}");
    }
    assert!(mock.accesses().is_empty(), "{:?}", mock.accesses());
    assert_eq!(mock.peek(0, 8), CAP.to_le_bytes(), "CAP unchanged");

    // in range: high dword first on write, low first on read
    regs.try_write64_hi_lo(0x1ff8, 0x1122_3344_5566_7788)
        .unwrap();
    assert_eq!(
        regs.try_read64_lo_hi(0x1ff8).unwrap(),
        0x1122_3344_5566_7788
    );
    let a: Vec<(usize, bool)> = mock
        .accesses()
        .iter()
        .map(|a| (a.offset, a.dir == iomem::backend::mock::Dir::Write))
        .collect();
    assert_eq!(
        a,
        [
            (0x1ffc, true),
            (0x1ff8, true),
            (0x1ff8, false),
            (0x1ffc, false)
        ]
    );
    mock.assert_no_violations();
}

/// Doorbell offsets computed from a queue id and CAP.DSTRD are checked against BAR0 before the
/// write: a doorbell outside the mapping is an error and no access.
#[test]
fn doorbells_outside_bar0_touch_nothing() {
    for dstrd in [0u64, 15] {
        let cap_raw = 0x20_0a01_0fff | dstrd << 32;
        let mock = MockIo::new(0x2000);
        mock.poke(offsets::CAP, &cap_raw.to_le_bytes());
        let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
        let cap = regs.cap().unwrap();
        mock.clear_events();
        for qid in [600u16, 1023, u16::MAX] {
            assert!(
                regs.ring_sq_tail(cap, qid, 1).is_err(),
                "DSTRD {dstrd} SQ {qid}"
            );
            assert!(
                regs.ring_cq_head(cap, qid, 1).is_err(),
                "DSTRD {dstrd} CQ {qid}"
            );
        }
        if dstrd == 15 {
            // 0x1000 + 1 × 128 KiB: past an 8 KiB BAR0 already for the admin CQ
            assert!(regs.ring_cq_head(cap, 0, 1).is_err());
        }
        assert!(mock.accesses().is_empty(), "{:?}", mock.accesses());
        assert!(
            mock.barriers().is_empty(),
            "no barrier for a refused doorbell either"
        );
        assert_eq!(mock.peek(0, 8), cap_raw.to_le_bytes());
    }
}

#[test]
fn reserved_bits_and_field_setters() {
    assert_eq!(Cmbmsc::RESERVED, 0xffc);
    assert_eq!(QueueBase::RESERVED, 0xfff);
    assert_eq!(Csts::RESERVED, !0x7f);
    // a setter refuses a value wider than its field, and leaves the other fields alone
    let cc = Cc::default().with_en(true).with_iocqes(4).unwrap();
    assert!(matches!(
        cc.with_css(8),
        Err(Error::Core(iomem::Error::InvalidArgument(_)))
    ));
    assert_eq!(cc.with_css(7).unwrap().raw(), 0x0040_0071);
    assert_eq!(cc.with_shn(Shutdown::Abrupt).shn(), Shutdown::Abrupt);
    // an address field refuses unaligned addresses
    assert!(Cmbmsc::default().with_cba(0x1_0000_0800).is_err());
    assert_eq!(
        Cmbmsc::default().with_cba(0x1_0000_0000).unwrap().raw(),
        0x1_0000_0000
    );
    // the reserved SHN/SHST encoding: refused on decode, read as RESERVED from raw bits
    assert_eq!(Cc::from_raw(3 << 14).shn(), Shutdown::RESERVED);
    assert!(matches!(
        Cc::decode(3 << 14),
        Err(Error::BadRegister { reg: "CC", .. })
    ));
    assert_eq!(Nssr::RESET.raw(), u32::from_be_bytes(*b"NVMe"));
}

// ----------------------------------------------------------------------------------------------
// CMB discovery and enable
// ----------------------------------------------------------------------------------------------

mod cmb_tests {
    use super::*;
    use iomem::backend::mock::WriteEffect;
    use iomem::nvme::cmb::{self, BarTable, CmbInfo, CmbPool, CmbScheme, PciBar, ProbeOptions};
    use proptest::prelude::*;
    use std::sync::{Arc, Mutex};

    const CAP_1_2: u64 = 0x20_0a01_0fff;
    const CAP_CMBS: u64 = 1 << 57;

    fn controller(cap: u64, vs: u32, cmbloc: u32, cmbsz: u32) -> MockIo {
        let m = MockIo::new(0x2000);
        m.poke(offsets::CAP, &cap.to_le_bytes());
        m.poke(offsets::VS, &vs.to_le_bytes());
        m.poke(offsets::CMBLOC, &cmbloc.to_le_bytes());
        m.poke(offsets::CMBSZ, &cmbsz.to_le_bytes());
        m
    }

    fn bars_32bit_bar3() -> BarTable {
        BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(0, unsafe { PciBar::new(0xfebf_0000, 0x4000) }.unwrap())
            .unwrap()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(2, unsafe { PciBar::new(0xfe00_0000, 0x10_0000) }.unwrap())
            .unwrap()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(3, unsafe { PciBar::new(0xf000_0000, 8 << 20) }.unwrap())
            .unwrap()
    }

    #[test]
    fn real_1_2_controller_with_all_ones_cmbmsc() {
        let m = controller(CAP_1_2, 0x10200, 0x3, 0x50_0003);
        m.poke(offsets::CMBMSC, &[0xff; 0x20]); // reserved on 1.2: reads all-ones
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        let info = cmb::probe(&regs, &bars_32bit_bar3(), ProbeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(info.scheme, CmbScheme::Legacy);
        assert_eq!((info.bir, info.offset(), info.size()), (3, 0, 5 << 20));
        assert_eq!(info.bus_addr(), 0xf000_0000);
        assert_eq!(info.clamped_from, None);
        assert!(info.sqs && info.cqs && !info.lists && !info.rds && !info.wds);
        cmb::enable(&regs, &info).unwrap();
        // nothing at or above CMBMSC was touched, and nothing was written at all
        assert!(m.accesses().iter().all(|a| a.offset < offsets::CMBMSC));
        assert!(m.writes().is_empty());

        // BAR3 is the upper half of a 64-bit BAR2: BIR 3 names no memory BAR
        let bars = BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(2, unsafe { PciBar::new(0x1_0000_0000, 8 << 20) }.unwrap())
            .unwrap();
        assert!(matches!(
            cmb::probe(&regs, &bars, ProbeOptions::default()),
            Err(Error::BadRegister { reg: "CMBLOC", .. })
        ));
    }

    #[test]
    fn cmb_larger_than_its_bar_is_clamped_or_refused() {
        let m = controller(CAP_1_2, 0x10200, 0x3, 0x50_0003);
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        let bars = BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(3, unsafe { PciBar::new(0xf000_0000, 4 << 20) }.unwrap())
            .unwrap();
        let info = cmb::probe(&regs, &bars, ProbeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!((info.size(), info.clamped_from), (4 << 20, Some(5 << 20)));
        let strict = ProbeOptions { strict_size: true };
        assert!(matches!(
            cmb::probe(&regs, &bars, strict),
            Err(Error::BadRegister { reg: "CMBSZ", .. })
        ));
    }

    #[test]
    fn no_cmb() {
        for (cap, vs) in [
            (CAP_1_2, 0x10200),
            (CAP_1_2, 0x10300),
            (CAP_1_2, 0x10400),
            (CAP_1_2, 0x20000),
        ] {
            let m = controller(cap, vs, 0, 0);
            let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
            assert_eq!(
                cmb::probe(&regs, &bars_32bit_bar3(), ProbeOptions::default()).unwrap(),
                None
            );
            assert!(
                m.writes().is_empty(),
                "VS {vs:#x}: no CMBMSC write without CAP.CMBS"
            );
        }
    }

    /// QEMU's NVMe 1.4 controller: CMBLOC/CMBSZ read zero until CMBMSC.CRE; the CBA is latched
    /// from the whole register when the low dword is written with CMSE; CBAI if it is not the
    /// BAR's address.
    struct Qemu {
        mock: MockIo,
        latched: Arc<Mutex<Option<u64>>>,
    }

    fn qemu(bar2: u64, cmbsz_after_cre: u32) -> Qemu {
        let mock = controller(CAP_1_2 | CAP_CMBS, 0x0001_0400, 0, 0);
        let latched = Arc::new(Mutex::new(None));
        let l = latched.clone();
        mock.on_write(offsets::CMBMSC..offsets::CMBMSC + 4, move |ram, a| {
            ram.set(offsets::CMBMSC, 4, a.value);
            if a.value & 1 == 1 {
                ram.set(offsets::CMBLOC, 4, 2);
                ram.set(offsets::CMBSZ, 4, cmbsz_after_cre as u128);
                if a.value & 2 == 2 {
                    let cba = (ram.get(offsets::CMBMSC, 8) as u64) & !0xfff;
                    *l.lock().unwrap() = Some(cba);
                    ram.set(offsets::CMBSTS, 4, (cba != bar2) as u128);
                }
            } else {
                ram.set(offsets::CMBLOC, 4, 0);
                ram.set(offsets::CMBSZ, 4, 0);
            }
            WriteEffect::Discard
        });
        Qemu { mock, latched }
    }

    const QEMU_CMBSZ: u32 = 16 << 12 | 2 << 8 | 0x1d; // 16 MiB, SQS LISTS RDS WDS

    fn qemu_bars(bar2: u64) -> BarTable {
        BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(0, unsafe { PciBar::new(0xfebf_0000, 0x4000) }.unwrap())
            .unwrap()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(2, unsafe { PciBar::new(bar2, 16 << 20) }.unwrap())
            .unwrap()
    }

    #[test]
    fn qemu_1_4_cre_then_cmse_with_cba() {
        for bar2 in [0xfd00_0000u64, 0x1_0000_0000] {
            let q = qemu(bar2, QEMU_CMBSZ);
            let regs = ControllerRegs::new(IoMem::new(&q.mock)).unwrap();
            assert_eq!(regs.cmbsz().unwrap().raw(), 0, "zero before CRE");
            let info = cmb::probe(&regs, &qemu_bars(bar2), ProbeOptions::default())
                .unwrap()
                .unwrap();
            assert_eq!(info.scheme, CmbScheme::Cmbmsc);
            assert_eq!(
                (info.bir, info.offset(), info.size(), info.bus_addr()),
                (2, 0, 16 << 20, bar2)
            );
            assert!(info.sqs && !info.cqs && info.lists && info.rds && info.wds);
            q.mock.clear_events();
            cmb::enable(&regs, &info).unwrap();
            assert_eq!(
                *q.latched.lock().unwrap(),
                Some(bar2),
                "CBA latched with its high half"
            );
            let w = q.mock.writes();
            assert_eq!(
                (w[0].offset, w[0].value),
                (offsets::CMBMSC + 4, (bar2 >> 32) as u128)
            );
            assert_eq!(
                (w[1].offset, w[1].value),
                (offsets::CMBMSC, (bar2 as u32 | 3) as u128)
            );
            assert!(w.iter().all(|a| a.width == 4));
            assert_eq!(regs.cmbmsc().unwrap().cba(), bar2);
            cmb::disable(&regs, &info).unwrap();
            assert_eq!(regs.cmbsz().unwrap().raw(), 0);
            q.mock.assert_no_violations();
        }
    }

    #[test]
    fn qemu_1_4_refused_cba_is_an_error() {
        let q = qemu(0xfd00_0000, QEMU_CMBSZ);
        let regs = ControllerRegs::new(IoMem::new(&q.mock)).unwrap();
        // the caller's table disagrees with where the BAR really is
        let info = cmb::probe(&regs, &qemu_bars(0xe000_0000), ProbeOptions::default())
            .unwrap()
            .unwrap();
        assert!(matches!(
            cmb::enable(&regs, &info),
            Err(Error::BadRegister { reg: "CMBSTS", .. })
        ));
    }

    #[test]
    fn cmbs_and_cmbsz_must_agree_on_1_4() {
        // CAP.CMBS set, CMBSZ still zero after CRE
        let q = qemu(0xfd00_0000, 0);
        let regs = ControllerRegs::new(IoMem::new(&q.mock)).unwrap();
        assert!(matches!(
            cmb::probe(&regs, &qemu_bars(0xfd00_0000), ProbeOptions::default()),
            Err(Error::BadRegister {
                reg: "CMBSZ",
                value: 0,
                ..
            })
        ));
        // CAP.CMBS clear on 1.4 but CMBSZ says there is a CMB
        let m = controller(CAP_1_2, 0x10400, 2, QEMU_CMBSZ);
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        assert!(matches!(
            cmb::probe(&regs, &qemu_bars(0xfd00_0000), ProbeOptions::default()),
            Err(Error::BadRegister { reg: "CMBSZ", .. })
        ));
        assert!(m.writes().is_empty());
        // CMBMSC all-ones on a 1.4 controller with CMBS: gone
        let m = controller(CAP_1_2 | CAP_CMBS, 0x10400, 0, 0);
        m.poke(offsets::CMBMSC, &[0xff; 8]);
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        assert!(matches!(
            cmb::probe(&regs, &qemu_bars(0xfd00_0000), ProbeOptions::default()),
            Err(Error::DeviceGone { reg: "CMBMSC", .. })
        ));
    }

    #[test]
    fn malformed_cmb_registers() {
        let bars = bars_32bit_bar3()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(4, unsafe { PciBar::new(0xe000_0000, 0x2000) }.unwrap())
            .unwrap();
        let probe = |loc: u32, sz: u32| {
            let m = controller(CAP_1_2, 0x10200, loc, sz);
            let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
            cmb::probe(&regs, &bars, ProbeOptions::default())
        };
        let bad = |r: Result<Option<CmbInfo>, Error>, reg: &str| match r {
            Err(Error::BadRegister { reg: r, .. }) => assert_eq!(r, reg),
            other => panic!("expected BadRegister({reg}), got {other:?}"),
        };
        bad(probe(3, 1 << 12 | 7 << 8 | 1), "CMBSZ"); // reserved SZU
        bad(probe(3, 0x1f), "CMBSZ"); // flags but SZ = 0
        bad(probe(1, 0x50_0003), "CMBLOC"); // reserved BIR 1
        bad(probe(6, 0x50_0003), "CMBLOC"); // reserved BIR 6
        bad(probe(5, 0x50_0003), "CMBLOC"); // BAR5 absent
        bad(probe(3 | 0x800 << 12, 0x50_0003), "CMBLOC"); // offset 8 MiB = past BAR3
        bad(probe(0, 0x1_0001), "CMBLOC"); // in BAR0 over the registers
                                           // CMB at 0x1000 in BAR0, 2 pages (clamped to the 16 KiB BAR0 would be fine too)
        let ok = probe(1 << 12, 2 << 12 | 0x1f).unwrap().unwrap();
        assert_eq!(
            (ok.bir, ok.offset(), ok.size(), ok.bus_addr()),
            (0, 0x1000, 0x2000, 0xfebf_1000)
        );
        // device gone
        match probe(u32::MAX, u32::MAX) {
            Err(Error::DeviceGone { .. }) => {}
            other => panic!("expected DeviceGone, got {other:?}"),
        }
        // BAR helpers refuse nonsense
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        assert!(unsafe { PciBar::new(0, 0) }.is_err());
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        assert!(unsafe { PciBar::new(u64::MAX, 2) }.is_err());
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        assert!(BarTable::new()
            .with(6, unsafe { PciBar::new(0, 1) }.unwrap())
            .is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// Whatever the registers say, decoding either fails with a typed error or describes a
        /// CMB that lies inside its BAR.
        #[test]
        fn decode_stays_inside_the_bar(loc: u32, sz: u32, size_log2 in 12u32..40, base_pages: u32) {
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            let bar = unsafe { PciBar::new(base_pages as u64 * 4096, 1u64 << size_log2) }.unwrap();
            let mut bars = BarTable::new();
            for i in [0, 2, 3, 4, 5] {
                bars = bars.with(i, bar).unwrap();
            }
            match cmb::decode(Cmbloc::from_raw(loc), Cmbsz::from_raw(sz), &bars, CmbScheme::Legacy, ProbeOptions::default()) {
                Ok(info) => {
                    prop_assert!(info.size() > 0);
                    prop_assert!(info.offset() + info.size() <= bar.size());
                    prop_assert_eq!(info.bus_addr(), bar.bus_addr() + info.offset());
                    prop_assert_eq!(info.bir, (loc & 7) as u8);
                }
                Err(Error::BadRegister { .. }) => {}
                Err(e) => prop_assert!(false, "untyped failure {e:?}"),
            }
        }
    }

    // ------------------------------------------------------------------------------------------
    // CmbPool
    // ------------------------------------------------------------------------------------------

    fn info(sqs: bool, cqs: bool, lists: bool, rds: bool, wds: bool) -> CmbInfo {
        let sz = (sqs as u32)
            | (cqs as u32) << 1
            | (lists as u32) << 2
            | (rds as u32) << 3
            | (wds as u32) << 4
            | 1 << 8
            | 4 << 12;
        let bars = BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(2, unsafe { PciBar::new(0xfd00_0000, 1 << 20) }.unwrap())
            .unwrap();
        cmb::decode(
            Cmbloc::from_raw(2 | 4 << 12),
            Cmbsz::from_raw(sz),
            &bars,
            CmbScheme::Cmbmsc,
            ProbeOptions::default(),
        )
        .unwrap()
    }

    #[test]
    fn cmb_pool_gates_by_capability() {
        let i = info(true, false, false, false, false);
        assert_eq!((i.offset(), i.size()), (256 << 10, 256 << 10));
        let p = CmbPool::new(MockIo::new(1 << 20), i, Cc::default()).unwrap();
        let sq = p.alloc_sq(64).unwrap();
        assert_eq!(sq.len(), 64 * 64);
        assert!((256 << 10..512 << 10).contains(&sq.offset()));
        assert_eq!(sq.bus_addr(), 0xfd00_0000 + sq.offset() as u64);
        let unsupported =
            |r: Result<_, Error>| assert!(matches!(r, Err(Error::Unsupported { .. })));
        unsupported(p.alloc_cq(64).map(drop));
        unsupported(p.alloc_prp_list(16).map(drop));
        unsupported(p.alloc_read_buf(4096).map(drop));
        unsupported(p.alloc_write_buf(4096).map(drop));
        unsupported(p.alloc_data_buf(4096).map(drop));
        assert!(matches!(
            p.alloc_sq(1),
            Err(Error::Core(iomem::Error::InvalidArgument(_)))
        ));
        assert!(matches!(
            p.alloc_sq(65537),
            Err(Error::Core(iomem::Error::InvalidArgument(_)))
        ));

        let all = CmbPool::new(
            MockIo::new(1 << 20),
            info(true, true, true, true, true),
            Cc::default().with_page_size(8192).unwrap(),
        )
        .unwrap();
        for b in [
            all.alloc_cq(16).unwrap(),
            all.alloc_prp_list(3).unwrap(),
            all.alloc_read_buf(100).unwrap(),
            all.alloc_write_buf(9000).unwrap(),
            all.alloc_data_buf(1).unwrap(),
        ] {
            assert_eq!(b.bus_addr() % 8192, 0);
            assert_eq!(b.len() % 8192, 0);
        }
        let rd_only = CmbPool::new(
            MockIo::new(1 << 20),
            info(false, false, false, true, false),
            Cc::default(),
        )
        .unwrap();
        assert!(rd_only.alloc_read_buf(4096).is_ok());
        assert!(rd_only.alloc_data_buf(4096).is_err());
        // a mapping smaller than the BAR the CMB sits in
        assert!(matches!(
            CmbPool::new(
                MockIo::new(1 << 18),
                info(true, true, true, true, true),
                Cc::default()
            ),
            Err(Error::Core(iomem::Error::OutOfRange { .. }))
        ));
        // exhaustion
        let p = CmbPool::new(
            MockIo::new(1 << 20),
            info(true, false, false, false, false),
            Cc::default(),
        )
        .unwrap();
        let _a = p.alloc_sq(4096).unwrap(); // the whole 256 KiB
        assert!(matches!(
            p.alloc_sq(2),
            Err(Error::Core(iomem::Error::Exhausted { .. }))
        ));
    }
}

// ----------------------------------------------------------------------------------------------
// CMB submission queue
// ----------------------------------------------------------------------------------------------

mod sq_tests {
    use super::*;
    use iomem::backend::mock::{device_order, windows, Event};
    use iomem::nvme::cmb::{self, BarTable, CmbPool, CmbScheme, PciBar, ProbeOptions};
    use iomem::nvme::cmd::nvm;
    use iomem::nvme::sq::{opcodes, CmbSubmissionQueue, Command};
    use iomem::{Arch, Backend, Barrier, Caching, Strategy};

    const DB1: usize = 0x1008; // SQ 1 tail doorbell with DSTRD = 0

    fn setup(arch: Arch, caching: Caching) -> (MockIo, CmbPool<MockIo>) {
        let bar0 = MockIo::new(0x2000).with_arch(arch);
        bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
        let bars = BarTable::new()
            // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
            .with(2, unsafe { PciBar::new(0xfd00_0000, 1 << 20) }.unwrap())
            .unwrap();
        let info = cmb::decode(
            Cmbloc::from_raw(2),
            Cmbsz::from_raw(1 << 20 | 1 << 8 | 0x1f),
            &bars,
            CmbScheme::Legacy,
            ProbeOptions::default(),
        )
        .unwrap();
        let cmb_bar = MockIo::new(1 << 20).with_arch(arch).with_caching(caching);
        (bar0, CmbPool::new(cmb_bar, info, Cc::default()).unwrap())
    }

    /// A Write with every field set to something recognisable (flags, CID, both PRPs): no
    /// builder makes such a command, and it is never executed, only copied into the ring.
    fn command(i: u32) -> Command {
        let prp1 = 0xfd00_0000 + 4096 * u64::from(i);
        let prp2 = 0x0102_0304_0506_0708u64;
        let mut dw = [0u32; 16];
        dw[0] = u32::from(opcodes::nvm::WRITE) | 0x40 << 8 | (0x1000 + i) << 16;
        dw[1] = 1;
        dw[6] = prp1 as u32;
        dw[7] = (prp1 >> 32) as u32;
        dw[8] = prp2 as u32;
        dw[9] = (prp2 >> 32) as u32;
        dw[10] = i;
        dw[12] = 7;
        dw[15] = 0xdead_beef;
        // SAFETY: the mock controller never fetches the command or follows its pointers.
        unsafe { Command::from_dwords(dw) }
    }

    /// Bytes the controller must find in the slot: the little-endian wire format.
    fn wire(c: &Command) -> Vec<u8> {
        let mut v = vec![c.opcode(), (c.dword(0).unwrap() >> 8) as u8];
        v.extend(c.cid().to_le_bytes());
        for n in 1..4 {
            v.extend(c.dword(n).unwrap().to_le_bytes());
        }
        for q in [0, c.prp1(), c.prp2()] {
            v.extend(q.to_le_bytes());
        }
        for n in 10..16 {
            v.extend(c.dword(n).unwrap().to_le_bytes());
        }
        v
    }

    #[test]
    fn command_layout_is_the_wire_format() {
        let c = command(3);
        assert_eq!(zerocopy::IntoBytes::as_bytes(&c.to_le()), &wire(&c)[..]);
    }

    /// Pushes `n1` commands, rings, pushes `n2`, rings; returns the ring's offset in the CMB
    /// mapping and the commands in slot order.
    fn run(
        bar0: &MockIo,
        pool: &CmbPool<MockIo>,
        strategy: Strategy,
        n1: u32,
        n2: u32,
    ) -> (usize, Vec<Command>) {
        let regs = ControllerRegs::new(IoMem::new(bar0)).unwrap();
        let cap = regs.cap().unwrap();
        let mut sq = CmbSubmissionQueue::new(pool.alloc_sq(16).unwrap(), 16, bar0, cap, 1)
            .unwrap()
            .with_strategy(strategy);
        let base = sq.ring_io().offset();
        bar0.clear_events();
        pool.pool().backend().clear_events();
        let mut cmds = Vec::new();
        for i in 0..n1 {
            // SAFETY: the mock controller never fetches the command or follows its pointers.
            assert_eq!(unsafe { sq.push_unchecked(&command(i)) }.unwrap(), i as u16);
            cmds.push(command(i));
        }
        assert_eq!(sq.ring().unwrap(), n1);
        for i in n1..n1 + n2 {
            // SAFETY: as above.
            unsafe { sq.push_unchecked(&command(i)) }.unwrap();
            cmds.push(command(i));
        }
        assert_eq!(sq.ring().unwrap(), n2);
        assert_eq!(sq.ring().unwrap(), 0, "nothing new: no doorbell");
        (base, cmds)
    }

    #[test]
    fn entries_precede_the_doorbell_with_the_required_barrier() {
        for arch in Arch::ALL {
            for caching in [Caching::Uncached, Caching::WriteCombining] {
                for strategy in [Strategy::Conservative, Strategy::Batched] {
                    let what = format!("{arch:?} {caching:?} {strategy:?}");
                    let (bar0, pool) = setup(arch, caching);
                    let cmb = pool.pool().backend();
                    let (base, cmds) = run(&bar0, &pool, strategy, 3, 2);
                    // the ring holds the wire format
                    for (i, c) in cmds.iter().enumerate() {
                        assert_eq!(cmb.peek(base + 64 * i, 64), wire(c), "{what}: slot {i}");
                    }
                    // exactly two doorbell writes, tails 3 and 5, each right after the barrier
                    let wc = caching == Caching::WriteCombining;
                    let want = strategy.doorbell_barrier(arch, wc);
                    assert!(want.is_some(), "{what}: a doorbell needs a barrier");
                    if wc {
                        assert_eq!(want, Some(Barrier::WcFlush), "{what}");
                    }
                    let ev = bar0.events();
                    let dbs: Vec<usize> = ev
                        .iter()
                        .enumerate()
                        .filter(|(_, e)| matches!(e, Event::Access(a) if a.offset == DB1))
                        .map(|(i, _)| i)
                        .collect();
                    assert_eq!(dbs.len(), 2, "{what}");
                    for (k, &i) in dbs.iter().enumerate() {
                        let Event::Access(a) = ev[i] else {
                            unreachable!()
                        };
                        assert_eq!((a.width, a.value), (4, [3, 5][k]), "{what}");
                        assert!(
                            matches!(ev[i - 1], Event::Barrier { barrier, .. } if Some(barrier) == want),
                            "{what}: doorbell {k} not preceded by {want:?}: {:?}",
                            ev[i - 1]
                        );
                    }
                    // across both BARs, in program order: the last byte of every entry published
                    // by a doorbell is written before it, in an earlier window when the barrier
                    // orders device stores
                    let all = windows(&[cmb, &bar0]);
                    let orders = iomem::order::instructions(arch, want.unwrap())
                        .iter()
                        .any(|i| iomem::order::orders_device_stores(arch, i));
                    let mut seen_db = 0;
                    for (pos, d) in all.iter().enumerate() {
                        if d.mock == 1 && d.access.offset == DB1 {
                            let tail = [3usize, 5][seen_db];
                            seen_db += 1;
                            for slot in 0..tail {
                                let last = base + 64 * slot + 63;
                                let w = all[..pos]
                                    .iter()
                                    .rposition(|x| x.mock == 0 && x.access.range().contains(&last))
                                    .unwrap_or_else(|| {
                                        panic!("{what}: slot {slot} last byte after doorbell")
                                    });
                                if orders {
                                    assert!(
                                        all[w].window < d.window,
                                        "{what}: slot {slot} not fenced off"
                                    );
                                }
                            }
                        }
                    }
                    assert_eq!(seen_db, 2);
                    if wc {
                        assert!(orders, "{what}: a WC flush must order device stores");
                    }
                    // Batched: exactly one barrier per ring, and none in the ring's trace
                    if strategy == Strategy::Batched {
                        assert_eq!(bar0.barriers().len(), 2, "{what}");
                        assert!(cmb.barriers().is_empty(), "{what}");
                    }
                    bar0.assert_no_violations();
                    cmb.assert_no_violations();
                }
            }
        }
    }

    /// Replays the device-visible order of both BARs and checks, at each doorbell, that the
    /// controller would read complete entries.
    fn device_sees_complete_entries(
        cmb: &MockIo,
        bar0: &MockIo,
        base: usize,
        cmds: &[Command],
        seed: u64,
    ) -> bool {
        let mut image = vec![0u8; cmb.size()];
        for d in device_order(&[cmb, bar0], seed) {
            let a = d.access;
            if d.mock == 1 {
                if a.offset == DB1 {
                    for (slot, c) in cmds.iter().enumerate().take(a.value as usize) {
                        if image[base + 64 * slot..base + 64 * slot + 64] != wire(c)[..] {
                            return false;
                        }
                    }
                }
            } else {
                image[a.range()].copy_from_slice(&a.bytes());
            }
        }
        true
    }

    #[test]
    fn weak_ordering_model_sees_complete_entries() {
        for arch in Arch::ALL {
            for caching in [Caching::Uncached, Caching::WriteCombining] {
                for strategy in [Strategy::Conservative, Strategy::Batched] {
                    let (bar0, pool) = setup(arch, caching);
                    let (base, cmds) = run(&bar0, &pool, strategy, 4, 3);
                    for seed in 0..64 {
                        assert!(
                            device_sees_complete_entries(pool.pool().backend(), &bar0, base, &cmds, seed),
                            "{arch:?} {caching:?} {strategy:?} seed {seed}: doorbell overtook an entry"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn relaxed_doorbell_over_wc_is_caught_by_the_model() {
        // The check above can fail: without the flush, the model lets the doorbell overtake.
        let (bar0, pool) = setup(Arch::X86_64, Caching::WriteCombining);
        let (base, cmds) = run(&bar0, &pool, Strategy::Relaxed, 4, 3);
        let broken = (0..64).any(|seed| {
            !device_sees_complete_entries(pool.pool().backend(), &bar0, base, &cmds, seed)
        });
        assert!(broken);
    }

    /// A submission queue on its own cannot keep what a command names allocated until the
    /// command completes: its safe pushes take only commands that name no memory, and one
    /// that does is refused with nothing written (a data pointer is a copyable number, so a
    /// stale one would otherwise reach the device).
    #[test]
    fn safe_pushes_refuse_a_command_that_names_memory() {
        let (bar0, pool) = setup(Arch::HOST, Caching::WriteCombining);
        let regs = ControllerRegs::new(IoMem::new(&bar0)).unwrap();
        let cap = regs.cap().unwrap();
        let mut sq = CmbSubmissionQueue::new(pool.alloc_sq(4).unwrap(), 4, &bar0, cap, 1).unwrap();
        let cmb = pool.pool().backend();
        cmb.clear_events();
        let refused = |r: Result<u16, Error>| {
            assert!(
                matches!(r, Err(Error::Core(iomem::Error::InvalidArgument(_)))),
                "{r:?}"
            )
        };
        refused(sq.push(&command(1)));
        refused(sq.push_with_slot_cid(&command(2)));
        refused(sq.submit(&command(3)));
        assert_eq!((sq.tail(), cmb.writes().len()), (0, 0));
        assert_eq!(sq.ring().unwrap(), 0);
        assert_eq!(sq.submit(&nvm::flush(1)).unwrap(), 0);
        assert_eq!(
            bar0.writes().last().map(|w| (w.offset, w.value)),
            Some((DB1, 1))
        );
    }

    #[test]
    fn queue_full_head_and_wrap() {
        let (bar0, pool) = setup(Arch::HOST, Caching::WriteCombining);
        let regs = ControllerRegs::new(IoMem::new(&bar0)).unwrap();
        let cap = regs.cap().unwrap();
        let mut sq = CmbSubmissionQueue::new(pool.alloc_sq(4).unwrap(), 4, &bar0, cap, 1).unwrap();
        assert_eq!(sq.free_slots(), 3);
        for i in 0..3 {
            assert_eq!(sq.push_with_slot_cid(&nvm::flush(9)).unwrap(), i);
        }
        assert!(matches!(
            sq.push(&nvm::flush(0)),
            Err(Error::QueueFull { qid: 1, entries: 4 })
        ));
        // the head cannot pass what was published
        assert!(sq.update_head(2).is_err());
        assert_eq!(sq.ring().unwrap(), 3);
        assert!(matches!(
            sq.update_head(4),
            Err(Error::Core(iomem::Error::InvalidArgument(_)))
        ));
        sq.update_head(2).unwrap();
        assert_eq!(sq.free_slots(), 2);
        assert!(
            sq.update_head(1).is_err(),
            "the head does not move backwards"
        );
        assert_eq!(sq.push(&nvm::flush(5)).unwrap(), 3);
        assert_eq!(sq.push(&nvm::flush(6)).unwrap(), 0, "wraps to slot 0");
        assert!(matches!(
            sq.push(&nvm::flush(7)),
            Err(Error::QueueFull { .. })
        ));
        assert_eq!(sq.ring().unwrap(), 2);
        assert_eq!(
            bar0.writes().last().map(|w| (w.offset, w.value)),
            Some((DB1, 1))
        );
        // cids were the slots
        let cmb = pool.pool().backend();
        let base = sq.ring_io().offset();
        assert_eq!(cmb.peek(base + 64 + 2, 2), 1u16.to_le_bytes());
        assert_eq!(sq.bus_addr(), 0xfd00_0000 + base as u64);
        // bad construction
        let small = pool.alloc_sq(2).unwrap();
        assert!(CmbSubmissionQueue::new(small, 1, &bar0, cap, 1).is_err());
        assert!(CmbSubmissionQueue::new(pool.alloc_sq(2).unwrap(), 4097, &bar0, cap, 1).is_err());
        assert!(matches!(
            CmbSubmissionQueue::new(pool.alloc_sq(2).unwrap(), 2, &bar0, cap, 1000),
            Err(Error::Core(iomem::Error::OutOfRange { .. }))
        ));
        // a 4 KiB ring cannot hold 128 entries of 64 bytes
        let one_page = pool.pool().alloc(4096, 4096).unwrap();
        assert!(matches!(
            CmbSubmissionQueue::new(one_page, 128, &bar0, cap, 1),
            Err(Error::Core(iomem::Error::OutOfRange { .. }))
        ));
        bar0.assert_no_violations();
    }
}

/// A device address for register tests (the mock BAR0 is no device that DMAs).
fn addr(a: u64) -> iomem::dma::DmaAddr {
    // SAFETY: only written to a mock's registers; nothing DMAs to it.
    unsafe { iomem::dma::DmaAddr::from_raw(a) }
}
