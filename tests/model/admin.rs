//! Admin commands: Identify, Features, creating and deleting queues.

use crate::rig::*;

#[test]
fn identify_controller_namespace_and_list() {
    let mut rig = Rig::enabled(ModelConfig::default());
    let buf = rig.buf(4096);
    let c = rig.admin(Cmd::new(0x06).prp(buf, 0).cdw(10, 1));
    assert_eq!(c.status, 0);
    let id = rig.get(buf, 4096);
    assert_eq!(u16::from_le_bytes([id[0], id[1]]), 0x1b36);
    assert_eq!(&id[24..40], b"iomem NVMe model");
    assert_eq!(id[77], 5, "MDTS");
    assert_eq!(
        u32::from_le_bytes(id[80..84].try_into().unwrap()),
        0x0001_0400
    );
    assert_eq!((id[512], id[513]), (0x66, 0x44));
    assert_eq!(
        u32::from_le_bytes(id[516..520].try_into().unwrap()),
        1,
        "NN"
    );

    let c = rig.admin(Cmd::new(0x06).nsid(1).prp(buf, 0).cdw(10, 0));
    assert_eq!(c.status, 0);
    let ns = rig.get(buf, 4096);
    assert_eq!(u64::from_le_bytes(ns[0..8].try_into().unwrap()), 2048);
    assert_eq!(u64::from_le_bytes(ns[8..16].try_into().unwrap()), 2048);
    assert_eq!((ns[25], ns[26], ns[130]), (0, 0, 9), "NLBAF, FLBAS, LBADS");

    let c = rig.admin(Cmd::new(0x06).prp(buf, 0).cdw(10, 2));
    assert_eq!(c.status, 0);
    let list = rig.get(buf, 8);
    assert_eq!(list, [1, 0, 0, 0, 0, 0, 0, 0]);

    let c = rig.admin(Cmd::new(0x06).prp(buf, 0).cdw(10, 0x10));
    assert_eq!(c.status, DNR | 0x02, "unknown CNS: Invalid Field");
    let c = rig.admin(Cmd::new(0x06).nsid(0xffff_ffff).prp(buf, 0));
    assert_eq!(c.status, DNR | 0x0b, "Identify NS of the broadcast NSID");
    let c = rig.admin(Cmd::new(0x7f));
    assert_eq!(c.status, DNR | 0x01, "Invalid Opcode");
}

#[test]
fn identify_namespace_with_4096_byte_lbas() {
    let mut rig = Rig::enabled(ModelConfig {
        lba_size: 4096,
        lba_count: 100,
        ..ModelConfig::default()
    });
    let buf = rig.buf(4096);
    let c = rig.admin(Cmd::new(0x06).nsid(1).prp(buf, 0));
    assert_eq!(c.status, 0);
    let ns = rig.get(buf, 4096);
    assert_eq!(u64::from_le_bytes(ns[0..8].try_into().unwrap()), 100);
    assert_eq!(ns[130], 12);
}

#[test]
fn number_of_queues_is_granted_up_to_the_maximum() {
    let mut rig = Rig::enabled(ModelConfig::default());
    let c = rig.admin(Cmd::new(0x09).cdw(10, 7).cdw(11, 2 | 100 << 16));
    assert_eq!((c.status, c.result), (0, 2 | 7 << 16));
    let c = rig.admin(Cmd::new(0x0a).cdw(10, 7));
    assert_eq!((c.status, c.result), (0, 2 | 7 << 16));
    let c = rig.admin(Cmd::new(0x09).cdw(10, 7).cdw(11, 0xffff));
    assert_eq!(c.status, DNR | 0x02);
    // Other features are stored.
    let c = rig.admin(Cmd::new(0x09).cdw(10, 0x06).cdw(11, 1));
    assert_eq!(c.status, 0);
    let c = rig.admin(Cmd::new(0x0a).cdw(10, 0x06));
    assert_eq!((c.status, c.result), (0, 1));
    // Only 3 SQs were granted: SQ 4 is an Invalid Queue Identifier.
    let cq = rig.buf(4096);
    let c = rig.admin(Cmd::new(0x05).prp(cq, 0).cdw(10, 15 << 16 | 1).cdw(11, 1));
    assert_eq!(c.status, 0);
    let sq = rig.buf(4096);
    let c = rig.admin(
        Cmd::new(0x01)
            .prp(sq, 0)
            .cdw(10, 15 << 16 | 4)
            .cdw(11, 1 << 16 | 1),
    );
    assert_eq!(c.status, DNR | 0x0101);
    // Once queues exist, Number of Queues is a Command Sequence Error.
    let c = rig.admin(Cmd::new(0x09).cdw(10, 7).cdw(11, 0));
    assert_eq!(c.status, DNR | 0x0c);
}

#[test]
fn queue_creation_and_deletion_errors() {
    let mut rig = Rig::enabled(ModelConfig {
        mqes: 63,
        ..ModelConfig::default()
    });
    let ring = rig.buf(4096);
    let cq = |qid: u32, qsize: u32, flags: u32, base: u64| {
        Cmd::new(0x05)
            .prp(base, 0)
            .cdw(10, qsize << 16 | qid)
            .cdw(11, flags)
    };
    let sq = |qid: u32, qsize: u32, cqid: u32, base: u64| {
        Cmd::new(0x01)
            .prp(base, 0)
            .cdw(10, qsize << 16 | qid)
            .cdw(11, cqid << 16 | 1)
    };
    let cases = [
        (cq(0, 15, 1, ring), DNR | 0x0101, "CQ 0"),
        (
            cq(9, 15, 1, ring),
            DNR | 0x0101,
            "CQ above the granted queues",
        ),
        (cq(1, 64, 1, ring), DNR | 0x0102, "size above MQES + 1"),
        (cq(1, 0, 1, ring), DNR | 0x0102, "size 1"),
        (cq(1, 15, 0, ring), DNR | 0x0002, "PC = 0 with CQR"),
        (
            cq(1, 15, 1, ring + 512),
            DNR | 0x0013,
            "base not page aligned",
        ),
        (
            sq(1, 15, 1, ring),
            DNR | 0x0100,
            "SQ on a CQ that does not exist",
        ),
        (sq(1, 15, 0, ring), DNR | 0x0100, "SQ on the admin CQ"),
        (
            Cmd::new(0x00).cdw(10, 1),
            DNR | 0x0101,
            "delete an SQ that does not exist",
        ),
        (
            Cmd::new(0x04).cdw(10, 1),
            DNR | 0x0100,
            "delete a CQ that does not exist",
        ),
        (
            Cmd::new(0x04).cdw(10, 0),
            DNR | 0x0100,
            "delete the admin CQ",
        ),
    ];
    for (cmd, status, what) in cases {
        assert_eq!(rig.admin(cmd).status, status, "{what}");
    }
    assert_eq!(rig.admin(cq(1, 15, 1, ring)).status, 0);
    assert_eq!(
        rig.admin(cq(1, 15, 1, ring)).status,
        DNR | 0x0101,
        "CQ 1 exists"
    );
    let sq_ring = rig.buf(4096);
    assert_eq!(rig.admin(sq(1, 15, 1, sq_ring)).status, 0);
    assert_eq!(
        rig.admin(sq(1, 15, 1, sq_ring)).status,
        DNR | 0x0101,
        "SQ 1 exists"
    );
    assert_eq!(
        rig.admin(Cmd::new(0x04).cdw(10, 1)).status,
        0x010c,
        "CQ 1 in use"
    );
    assert_eq!(rig.admin(Cmd::new(0x00).cdw(10, 1)).status, 0);
    assert_eq!(rig.admin(Cmd::new(0x04).cdw(10, 1)).status, 0);

    // CC.IOSQES/IOCQES other than 6/4: Invalid Queue Size at creation.
    let mut rig = Rig::new(ModelConfig::default());
    rig.program(0x000f_000f, 1);
    assert_eq!(rig.csts(), 1);
    let ring = rig.buf(4096);
    assert_eq!(rig.admin(cq(1, 15, 1, ring)).status, DNR | 0x0102);
}
