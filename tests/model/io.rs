//! NVM I/O: Read/Write round trips through PRP1, PRP2, lists and chained lists; range, MDTS
//! and namespace errors; a full CQ; bogus doorbells.

use crate::rig::*;

#[test]
fn write_and_read_with_prp1_only() {
    let mut rig = io_rig(ModelConfig::default());
    let buf = rig.buf(4096);
    let data = pattern(1024, 1);
    rig.put(buf, &data);
    assert_eq!(rig.rw(0x01, 3, 2, buf, 0).status, 0);
    assert_eq!(rig.model.read_lbas(3, 2), data);
    let back = rig.buf(4096);
    let c = rig.rw(0x02, 3, 2, back + 1024, 0); // PRP1 with an offset
    assert_eq!((c.status, c.sqid), (0, 1));
    assert_eq!(rig.get(back + 1024, 1024), data);
    // Flush and a backdoor write read through a command.
    assert_eq!(rig.io_cmd(Cmd::new(0x00).nsid(1)).status, 0);
    rig.model.write_lbas(100, &pattern(512, 9));
    assert_eq!(rig.rw(0x02, 100, 1, back, 0).status, 0);
    assert_eq!(rig.get(back, 512), pattern(512, 9));
    let s = rig.model.stats();
    assert_eq!((s.io_fetched, s.io_completed), (4, 4));
}

#[test]
fn prp2_is_the_second_page() {
    let mut rig = io_rig(ModelConfig::default());
    let a = rig.buf(4096);
    let b = rig.buf(4096);
    let data = pattern(4096, 2);
    // 4 KiB from offset 3 KiB of page a: 1 KiB there, 3 KiB in page b.
    rig.put(a + 3072, &data[..1024]);
    rig.put(b, &data[1024..]);
    assert_eq!(rig.rw(0x01, 0, 8, a + 3072, b).status, 0);
    assert_eq!(rig.model.read_lbas(0, 8), data);
    // PRP2 with an offset: PRP Offset Invalid.
    assert_eq!(rig.rw(0x02, 0, 8, a + 3072, b + 8).status, DNR | 0x13);
}

#[test]
fn a_prp_list() {
    let mut rig = io_rig(ModelConfig::default());
    let pages: Vec<u64> = (0..4).map(|_| rig.buf(4096)).collect();
    let list = rig.buf(4096);
    let entries: Vec<u8> = pages[1..].iter().flat_map(|p| p.to_le_bytes()).collect();
    rig.put(list, &entries);
    let data = pattern(4 * 4096, 3);
    for (i, p) in pages.iter().enumerate() {
        rig.put(*p, &data[i * 4096..(i + 1) * 4096]);
    }
    assert_eq!(rig.rw(0x01, 10, 32, pages[0], list).status, 0);
    assert_eq!(rig.model.read_lbas(10, 32), data);
    let w = rig.model.log().last().cloned().unwrap();
    assert_eq!(w.prps.list, pages[1..].to_vec());
    // Read it back into other pages through a list.
    let out: Vec<u64> = (0..4).map(|_| rig.buf(4096)).collect();
    let entries: Vec<u8> = out[1..].iter().flat_map(|p| p.to_le_bytes()).collect();
    rig.put(list, &entries);
    assert_eq!(rig.rw(0x02, 10, 32, out[0], list).status, 0);
    let back: Vec<u8> = out.iter().flat_map(|p| rig.get(*p, 4096)).collect();
    assert_eq!(back, data);
    // A list entry with an offset.
    rig.put(list + 8, &(out[2] + 512).to_le_bytes());
    assert_eq!(rig.rw(0x02, 10, 32, out[0], list).status, DNR | 0x13);
}

#[test]
fn a_chained_prp_list() {
    let mut rig = io_rig(ModelConfig::default());
    let pages: Vec<u64> = (0..4).map(|_| rig.buf(4096)).collect();
    let first = rig.buf(4096);
    let second = rig.buf(4096);
    // The list starts 16 bytes before the end of its page: one data entry, then the chain.
    let at = first + 4096 - 16;
    rig.put(at, &[pages[1].to_le_bytes(), second.to_le_bytes()].concat());
    rig.put(
        second,
        &[pages[2].to_le_bytes(), pages[3].to_le_bytes()].concat(),
    );
    let data = pattern(4 * 4096, 4);
    for (i, p) in pages.iter().enumerate() {
        rig.put(*p, &data[i * 4096..(i + 1) * 4096]);
    }
    assert_eq!(rig.rw(0x01, 0, 32, pages[0], at).status, 0);
    assert_eq!(rig.model.read_lbas(0, 32), data);
    let seen = rig.model.log().last().cloned().unwrap().prps;
    assert_eq!(seen.list, vec![pages[1], second, pages[2], pages[3]]);
}

#[test]
fn reads_and_writes_with_4096_byte_lbas() {
    let mut rig = io_rig(ModelConfig {
        lba_size: 4096,
        lba_count: 64,
        ..ModelConfig::default()
    });
    let a = rig.buf(4096);
    let b = rig.buf(4096);
    let data = pattern(8192, 5);
    rig.put(a, &data[..4096]);
    rig.put(b, &data[4096..]);
    assert_eq!(rig.rw(0x01, 62, 2, a, b).status, 0);
    assert_eq!(rig.model.read_lbas(62, 2), data);
    assert_eq!(rig.rw(0x02, 63, 2, a, b).status, DNR | 0x80);
}

#[test]
fn range_mdts_namespace_and_write_zeroes() {
    let mut rig = io_rig(ModelConfig::default());
    let buf = rig.buf(4096);
    assert_eq!(
        rig.rw(0x02, 2047, 2, buf, 0).status,
        DNR | 0x80,
        "past the end"
    );
    assert_eq!(
        rig.rw(0x02, u64::MAX, 1, buf, 0).status,
        DNR | 0x80,
        "wraps"
    );
    // MDTS 5 with 4 KiB pages: 128 KiB = 256 blocks at most (checked before the PRPs).
    assert_eq!(rig.rw(0x02, 0, 257, buf, 0).status, DNR | 0x02);
    let c = rig.io_cmd(Cmd::new(0x02).nsid(2).prp(buf, 0));
    assert_eq!(c.status, DNR | 0x0b);
    assert_eq!(rig.io_cmd(Cmd::new(0x7e).nsid(1)).status, DNR | 0x01);
    rig.model.write_lbas(5, &pattern(1024, 6));
    let c = rig.io_cmd(Cmd::new(0x08).nsid(1).cdw(10, 5).cdw(12, 0));
    assert_eq!(c.status, 0);
    assert_eq!(
        rig.model.read_lbas(5, 2),
        [vec![0; 512], pattern(1024, 6)[512..].to_vec()].concat()
    );
}

#[test]
fn unreachable_data_pointers_are_data_transfer_errors() {
    let mut rig = io_rig(ModelConfig::default());
    let buf = rig.buf(4096);
    // Memory the mock DMA never allocated.
    assert_eq!(rig.rw(0x02, 0, 1, 0x7000_0000, 0).status, 0x04);
    // BAR0.
    let bar0 = ModelConfig::default().bar0_bus_addr;
    assert_eq!(rig.rw(0x01, 0, 1, bar0, 0).status, 0x04);
    assert_eq!(
        rig.rw(0x01, 0, 16, buf, bar0 + 0x1000).status,
        0x04,
        "a list in BAR0"
    );
    // Nothing was written to the namespace.
    assert_eq!(rig.model.read_lbas(0, 1), vec![0; 512]);
}

#[test]
fn a_full_completion_queue_holds_completions_back() {
    let mut rig = Rig::enabled(ModelConfig::default());
    rig.io_pair(2); // room for one unconsumed entry
    let buf = rig.buf(4096);
    let read = Cmd::new(0x02).nsid(1).prp(buf, 0);
    rig.submit(true, read);
    rig.submit(true, read);
    assert_eq!(rig.model.stats().held, 1);
    let c1 = rig.reap(true).unwrap(); // head doorbell: the held one is posted
    let c2 = rig.reap(true).unwrap(); // after the wrap: phase 0
    assert_eq!((c1.status, c2.status), (0, 0));
    assert_eq!(c2.cid, c1.cid + 1);
    assert_eq!((c1.sq_head, c2.sq_head), (1, 0));
    assert!(rig.reap(true).is_none());
    assert_eq!(rig.model.stats().held, 0);
}

#[test]
fn bogus_doorbells_and_registers_are_ignored() {
    let rig = io_rig(ModelConfig::default());
    rig.w32(0x1008, 16); // tail = size of SQ 1
    rig.w32(0x1000 + 8 * 5, 1); // SQ 5 does not exist
    rig.w32(0x1000 + 8 * 5 + 4, 1); // nor CQ 5
    rig.w32(0x100c, 99); // head beyond CQ 1
    let why: Vec<&str> = rig
        .model
        .stats()
        .ignored_doorbells
        .iter()
        .map(|d| d.why)
        .collect();
    assert_eq!(
        why,
        [
            "tail beyond the submission queue",
            "no such submission queue",
            "no such completion queue",
            "head beyond the completion queue"
        ]
    );
    // Noise over every register and doorbell: no panic, and the controller still answers.
    let io = IoMem::new(&*rig.bar0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x as usize % 0x1100) & !3;
        if off == offsets::CC {
            continue; // keep it enabled
        }
        let _ = io.try_write32(off, (x >> 32) as u32);
        let _ = io.try_read32(off);
    }
    assert_eq!(rig.r32(offsets::CC), CC_EN);
}

#[test]
fn extreme_limits_do_not_panic() {
    // MDTS 255 is no limit in 64 bits; a delay past the clock's range never ends.
    let mut rig = io_rig(ModelConfig {
        mdts: 255,
        ..ModelConfig::default()
    });
    assert_eq!(
        rig.rw(0x02, 0, 300, 0x7000_0000, 0).status,
        0x04,
        "past MDTS 5, not 255"
    );
    rig.model.inject(Fault::Delay {
        target: Target::any(),
        delay: Duration::MAX,
        times: 1,
    });
    rig.submit(true, Cmd::new(0x00).nsid(1));
    assert!(rig.reap(true).is_none());
    assert_eq!(rig.model.stats().lost, 1);
    // Queues at the top of the address space: fetches fail, the controller reports CFS.
    let c = rig.admin(
        Cmd::new(0x05)
            .prp(!0xfffu64, 0)
            .cdw(10, 15 << 16 | 2)
            .cdw(11, 1),
    );
    assert_eq!(c.status, 0);
    let c = rig.admin(
        Cmd::new(0x01)
            .prp(!0xfffu64, 0)
            .cdw(10, 15 << 16 | 2)
            .cdw(11, 2 << 16 | 1),
    );
    assert_eq!(c.status, 0);
    rig.w32(0x1010, 15);
    assert_eq!(rig.csts() & 2, 2);
}
