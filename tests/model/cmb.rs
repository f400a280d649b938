//! The Controller Memory Buffer: discovery, the data-pointer placement rule, queues in the
//! CMB, CMSE.

use crate::rig::*;

#[test]
fn data_all_in_the_cmb_is_accepted() {
    let (mut rig, bar) = cmb_rig();
    let data = pattern(8192, 7);
    cmb_put(&bar, 0x1000, &data);
    assert_eq!(
        rig.rw(0x01, 0, 16, CMB_BUS + 0x1000, CMB_BUS + 0x2000)
            .status,
        0
    );
    assert_eq!(rig.model.read_lbas(0, 16), data);
    assert_eq!(
        rig.rw(0x02, 0, 16, CMB_BUS + 0x4000, CMB_BUS + 0x5000)
            .status,
        0
    );
    assert_eq!(bar.peek(0x4000, 8192), data);
    // No data pointer of either command pointed into host memory.
    for p in rig.model.log().iter().filter(|p| p.qid == 1) {
        assert!(p
            .prps
            .addresses()
            .iter()
            .all(|a| (CMB_BUS..CMB_BUS + (1 << 20)).contains(a)));
    }
}

#[test]
fn mixing_cmb_and_host_data_pointers_is_refused() {
    let (mut rig, bar) = cmb_rig();
    let host = rig.buf(4096);
    let c = rig.rw(0x01, 0, 16, CMB_BUS + 0x1000, host);
    assert_eq!(c.status, 0x4012, "PRP1 in the CMB, PRP2 in host memory");
    let c = rig.rw(0x01, 0, 16, host, CMB_BUS + 0x1000);
    assert_eq!(c.status, 0x4012, "PRP1 in host memory, PRP2 in the CMB");
    // A list whose entries mix.
    let list = rig.buf(4096);
    rig.put(
        list,
        &[(CMB_BUS + 0x3000).to_le_bytes(), host.to_le_bytes()].concat(),
    );
    let c = rig.rw(0x02, 0, 24, CMB_BUS + 0x1000, list);
    assert_eq!(c.status, 0x4012);
    // The last 512 bytes of the CMB, the rest at PRP2 = 0 (not CMB).
    let c = rig.rw(0x02, 0, 8, CMB_BUS + (1 << 20) - 512, 0);
    assert_eq!(c.status, 0x4012);
    let _ = bar;
}

#[test]
fn where_the_prp_list_lives_does_not_matter() {
    let (mut rig, bar) = cmb_rig();
    // Host data, list in the CMB.
    let pages: Vec<u64> = (0..3).map(|_| rig.buf(4096)).collect();
    let data = pattern(3 * 4096, 8);
    for (i, p) in pages.iter().enumerate() {
        rig.put(*p, &data[i * 4096..(i + 1) * 4096]);
    }
    cmb_put(
        &bar,
        0x8000,
        &[pages[1].to_le_bytes(), pages[2].to_le_bytes()].concat(),
    );
    assert_eq!(rig.rw(0x01, 0, 24, pages[0], CMB_BUS + 0x8000).status, 0);
    assert_eq!(rig.model.read_lbas(0, 24), data);
    // CMB data, list in host memory.
    let list = rig.buf(4096);
    rig.put(
        list,
        &[
            (CMB_BUS + 0x2000).to_le_bytes(),
            (CMB_BUS + 0x3000).to_le_bytes(),
        ]
        .concat(),
    );
    assert_eq!(rig.rw(0x02, 0, 24, CMB_BUS + 0x1000, list).status, 0);
    assert_eq!(bar.peek(0x1000, 3 * 4096), data);
}

#[test]
fn a_submission_queue_in_the_cmb() {
    let (mut rig, bar) = cmb_rig();
    let cq = rig.buf(4096);
    let c = rig.admin(Cmd::new(0x05).prp(cq, 0).cdw(10, 15 << 16 | 2).cdw(11, 1));
    assert_eq!(c.status, 0);
    let c = rig.admin(
        Cmd::new(0x01)
            .prp(CMB_BUS + 0x10000, 0)
            .cdw(10, 15 << 16 | 2)
            .cdw(11, 2 << 16 | 1),
    );
    assert_eq!(c.status, 0, "SQ in the CMB (CMBSZ.SQS)");
    let c = rig.admin(
        Cmd::new(0x05)
            .prp(CMB_BUS + 0x20000, 0)
            .cdw(10, 15 << 16 | 3)
            .cdw(11, 1),
    );
    assert_eq!(c.status, 0x4012, "CQ in the CMB without CMBSZ.CQS");
    let cq_region = rig.keep.pop().unwrap();
    rig.io = Some(Queue {
        qid: 2,
        entries: 16,
        sq: Ring::Cmb(bar.clone(), 0x10000),
        cq: Ring::Host(cq_region),
        tail: 0,
        head: 0,
        phase: true,
    });
    rig.model.write_lbas(7, &pattern(512, 10));
    cmb_put(&bar, 0x30000, &[0; 512]);
    let c = rig.rw(0x02, 7, 1, CMB_BUS + 0x30000, 0);
    assert_eq!((c.status, c.sqid), (0, 2));
    assert_eq!(bar.peek(0x30000, 512), pattern(512, 10));
}

#[test]
fn cmb_addresses_count_only_while_cmse_is_set() {
    let (mut rig, _bar) = cmb_rig();
    // CRE without CMSE: the CMB's addresses are ordinary (unmapped) host addresses.
    rig.w32(offsets::CMBMSC, 1);
    assert_eq!(rig.rw(0x02, 0, 1, CMB_BUS, 0).status, 0x04);
    // CRE cleared: CMBLOC/CMBSZ read 0 again.
    rig.w32(offsets::CMBMSC, 0);
    assert_eq!((rig.r32(offsets::CMBLOC), rig.r32(offsets::CMBSZ)), (0, 0));
    // CBA at another address: the CMB answers there.
    rig.w64(offsets::CMBMSC, 0x2_0000_0000 | 3);
    assert_eq!(rig.rw(0x02, 0, 1, 0x2_0000_0000, 0).status, 0);
}

#[test]
fn a_legacy_cmb_is_on_at_once() {
    let mut rig = Rig::new(ModelConfig {
        vs: 0x0001_0300,
        cmb: Some(CmbConfig {
            cqs: true,
            ..CmbConfig::new(64 << 10, CmbScheme::Legacy)
        }),
        ..ModelConfig::default()
    });
    assert!(!rig.regs().cap().unwrap().cmbs());
    assert_eq!(
        rig.r32(offsets::CMBSZ),
        0x1f | 16 << 12,
        "64 KiB in 4 KiB units, CQS"
    );
    let info = cmb::probe(&rig.regs(), &rig.model.bars(), Default::default())
        .unwrap()
        .unwrap();
    assert_eq!(
        (info.size(), info.bus_addr(), info.cqs),
        (64 << 10, CMB_BUS, true)
    );
    rig.enable();
    rig.io_pair(16);
    let bar = rig.model.cmb_bar().unwrap();
    cmb_put(&bar, 0, &pattern(512, 11));
    assert_eq!(rig.rw(0x01, 1, 1, CMB_BUS, 0).status, 0);
    assert_eq!(rig.model.read_lbas(1, 1), pattern(512, 11));
}
