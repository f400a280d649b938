//! NVMe register decode, CMB discovery/enable and the CMB submission queue, against the mock.

use iomem::backend::MockIo;
use iomem::nvme::regs::*;
use iomem::{Error, IoMem};

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

    assert!(QueueBase::new(0x1234_5000).is_ok());
    assert!(QueueBase::new(0x1234_5008).is_err());
    assert!(matches!(
        QueueBase::decode("ASQ", 0x10),
        Err(Error::BadRegister { reg: "ASQ", .. })
    ));
    let cc = Cc::default().with_page_size(8192).unwrap();
    assert!(QueueBase::new(0x3000).unwrap().check_page(cc).is_err());
    assert!(QueueBase::new(0x4000).unwrap().check_page(cc).is_ok());
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
    regs.set_asq(QueueBase::new(0x1_2345_6000).unwrap())
        .unwrap();
    let w = mock.writes();
    assert_eq!(w.len(), 2);
    assert_eq!((w[0].offset, w[0].width, w[0].value), (0x2c, 4, 0x1));
    assert_eq!(
        (w[1].offset, w[1].width, w[1].value),
        (0x28, 4, 0x2345_6000)
    );
    assert_eq!(regs.asq().unwrap().addr(), 0x1_2345_6000);

    regs.set_aqa(Aqa::new(16, 16).unwrap()).unwrap();
    assert_eq!(regs.aqa().unwrap().sq_entries(), 16);
    regs.set_cc(Cc::default().with_en(true)).unwrap();
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
    assert!(regs.ring_sq_tail(cap, 600, 1).is_err());
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
