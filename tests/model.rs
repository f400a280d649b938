//! The model NVMe controller (`nvme::model`), driven by hand: registers written through
//! `IoMem`, submission entries built as raw bytes in `MockDma` memory, doorbells rung, and
//! completion entries read back as bytes.
#![cfg(feature = "model")]

use std::sync::Arc;
use std::time::Duration;

use iomem::backend::MockIo;
use iomem::dma::{DmaRegion, Lease, MockDma};
use iomem::nvme::cmb::{self, CmbScheme};
use iomem::nvme::model::{CmbConfig, Fault, ModelConfig, NvmeModel, Target, Vanish};
use iomem::nvme::regs::{offsets, Cap, ControllerRegs};
use iomem::IoMem;

// ---------------------------------------------------------------------------------------------
// A hand-driven host side
// ---------------------------------------------------------------------------------------------

type Region = DmaRegion<Arc<MockIo>>;

/// A raw submission entry.
#[derive(Clone, Copy, Default)]
struct Cmd {
    opcode: u8,
    cid: u16,
    nsid: u32,
    prp1: u64,
    prp2: u64,
    cdw: [u32; 6],
}

impl Cmd {
    fn new(opcode: u8) -> Self {
        Cmd {
            opcode,
            ..Cmd::default()
        }
    }
    fn cdw(mut self, n: usize, v: u32) -> Self {
        self.cdw[n - 10] = v;
        self
    }
    fn nsid(mut self, n: u32) -> Self {
        self.nsid = n;
        self
    }
    fn prp(mut self, p1: u64, p2: u64) -> Self {
        self.prp1 = p1;
        self.prp2 = p2;
        self
    }
    fn bytes(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0] = self.opcode;
        b[2..4].copy_from_slice(&self.cid.to_le_bytes());
        b[4..8].copy_from_slice(&self.nsid.to_le_bytes());
        b[24..32].copy_from_slice(&self.prp1.to_le_bytes());
        b[32..40].copy_from_slice(&self.prp2.to_le_bytes());
        for (i, d) in self.cdw.iter().enumerate() {
            b[40 + 4 * i..44 + 4 * i].copy_from_slice(&d.to_le_bytes());
        }
        b
    }
}

/// A completion entry, decoded from its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cqe {
    result: u32,
    sq_head: u16,
    sqid: u16,
    cid: u16,
    status: u16,
}

/// Where a queue's ring lives.
enum Ring {
    Host(Region),
    Cmb(Arc<MockIo>, usize),
}

impl Ring {
    fn write(&self, off: usize, b: &[u8]) {
        match self {
            Ring::Host(r) => r
                .mem()
                .subslice(off..off + b.len())
                .unwrap()
                .copy_from_slice(b)
                .unwrap(),
            Ring::Cmb(io, base) => IoMem::new(&**io)
                .subslice(base + off..base + off + b.len())
                .unwrap()
                .copy_from_slice(b)
                .unwrap(),
        }
    }
    fn read(&self, off: usize, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        match self {
            Ring::Host(r) => r
                .mem()
                .subslice(off..off + len)
                .unwrap()
                .copy_to_slice(&mut b)
                .unwrap(),
            Ring::Cmb(io, base) => b = io.peek(base + off, len),
        }
        b
    }
}

struct Queue {
    qid: u16,
    entries: u16,
    sq: Ring,
    cq: Ring,
    tail: u16,
    head: u16,
    phase: bool,
}

struct Rig {
    model: NvmeModel,
    dma: MockDma,
    bar0: Arc<MockIo>,
    admin: Queue,
    io: Option<Queue>,
    cid: u16,
    keep: Vec<Region>,
}

fn addr(r: &Region) -> u64 {
    let l: Lease<_> = r.lease();
    let a = l.addr(0).unwrap().get();
    // SAFETY: the tests' device is the model, which is done with the memory when the rig goes.
    unsafe { l.complete() };
    a
}

const CC_EN: u32 = 0x0046_0001; // IOCQES 4, IOSQES 6, MPS 0, EN

impl Rig {
    fn new(cfg: ModelConfig) -> Rig {
        let dma = MockDma::new(4 << 20);
        let model = NvmeModel::new(cfg, dma.clone()).unwrap();
        let bar0 = model.bar0();
        let admin = Queue {
            qid: 0,
            entries: 16,
            sq: Ring::Host(dma.alloc(4096).unwrap()),
            cq: Ring::Host(dma.alloc(4096).unwrap()),
            tail: 0,
            head: 0,
            phase: true,
        };
        Rig {
            model,
            dma,
            bar0,
            admin,
            io: None,
            cid: 0,
            keep: Vec::new(),
        }
    }

    fn enabled(cfg: ModelConfig) -> Rig {
        let mut rig = Rig::new(cfg);
        rig.enable();
        rig
    }

    fn regs(&self) -> ControllerRegs<'_, MockIo> {
        ControllerRegs::new(IoMem::new(&*self.bar0)).unwrap()
    }
    fn r32(&self, off: usize) -> u32 {
        self.regs().try_read32(off).unwrap()
    }
    fn w32(&self, off: usize, v: u32) {
        self.regs().try_write32(off, v).unwrap()
    }
    fn w64(&self, off: usize, v: u64) {
        self.regs().try_write64_hi_lo(off, v).unwrap()
    }
    fn csts(&self) -> u32 {
        self.r32(offsets::CSTS)
    }

    fn ring_addrs(&self) -> (u64, u64) {
        match (&self.admin.sq, &self.admin.cq) {
            (Ring::Host(s), Ring::Host(c)) => (addr(s), addr(c)),
            _ => unreachable!("admin queues are in host memory"),
        }
    }

    fn enable(&mut self) {
        let (asq, acq) = self.ring_addrs();
        self.w32(offsets::AQA, 0x000f_000f);
        self.w64(offsets::ASQ, asq);
        self.w64(offsets::ACQ, acq);
        self.w32(offsets::CC, CC_EN);
        assert_eq!(self.csts() & 3, 1, "ready, not failed");
    }

    /// `len` bytes of host memory (whole pages), kept for the rig's life.
    fn buf(&mut self, len: usize) -> u64 {
        let r = self.dma.alloc_contiguous(len).unwrap();
        let a = addr(&r);
        self.keep.push(r);
        a
    }
    fn put(&self, at: u64, b: &[u8]) {
        // The host writes its own memory (the CPU side; the model's DMA reads it).
        let r = self.keep.iter().find(|r| {
            let a = addr(r);
            at >= a && at + b.len() as u64 <= a + r.len() as u64
        });
        let r = r.expect("a buffer of the rig");
        let off = (at - addr(r)) as usize;
        r.mem()
            .subslice(off..off + b.len())
            .unwrap()
            .copy_from_slice(b)
            .unwrap();
    }
    fn get(&self, at: u64, len: usize) -> Vec<u8> {
        let r = self.keep.iter().find(|r| {
            let a = addr(r);
            at >= a && at + len as u64 <= a + r.len() as u64
        });
        let r = r.expect("a buffer of the rig");
        let off = (at - addr(r)) as usize;
        let mut b = vec![0u8; len];
        r.mem()
            .subslice(off..off + len)
            .unwrap()
            .copy_to_slice(&mut b)
            .unwrap();
        b
    }

    /// Writes the entry at the queue's tail and rings its doorbell.
    fn submit(&mut self, io: bool, mut cmd: Cmd) -> u16 {
        self.cid += 1;
        cmd.cid = self.cid;
        let bar0 = self.bar0.clone();
        let q = if io {
            self.io.as_mut().unwrap()
        } else {
            &mut self.admin
        };
        q.sq.write(usize::from(q.tail) * 64, &cmd.bytes());
        q.tail = (q.tail + 1) % q.entries;
        let db = 0x1000 + 8 * usize::from(q.qid);
        IoMem::new(&*bar0)
            .try_write32(db, u32::from(q.tail))
            .unwrap();
        cmd.cid
    }

    /// The next completion of the queue, if posted (head doorbell rung after it).
    fn reap(&mut self, io: bool) -> Option<Cqe> {
        let bar0 = self.bar0.clone();
        let q = if io {
            self.io.as_mut().unwrap()
        } else {
            &mut self.admin
        };
        let b = q.cq.read(usize::from(q.head) * 16, 16);
        let dw = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let dw3 = dw(12);
        if (dw3 >> 16 & 1 == 1) != q.phase {
            return None;
        }
        q.head = (q.head + 1) % q.entries;
        if q.head == 0 {
            q.phase = !q.phase;
        }
        let db = 0x1000 + 8 * usize::from(q.qid) + 4;
        IoMem::new(&*bar0)
            .try_write32(db, u32::from(q.head))
            .unwrap();
        Some(Cqe {
            result: dw(0),
            sq_head: (dw(8) & 0xffff) as u16,
            sqid: (dw(8) >> 16) as u16,
            cid: (dw3 & 0xffff) as u16,
            status: (dw3 >> 17) as u16,
        })
    }

    fn admin(&mut self, cmd: Cmd) -> Cqe {
        let cid = self.submit(false, cmd);
        let c = self.reap(false).expect("an admin completion");
        assert_eq!((c.cid, c.sqid), (cid, 0));
        c
    }

    fn io_cmd(&mut self, cmd: Cmd) -> Cqe {
        let cid = self.submit(true, cmd);
        let c = self.reap(true).expect("an I/O completion");
        assert_eq!(c.cid, cid);
        c
    }

    /// Creates I/O queue pair 1 of `entries` entries in host memory.
    fn io_pair(&mut self, entries: u16) {
        let sq = self
            .dma
            .alloc_contiguous(usize::from(entries) * 64)
            .unwrap();
        let cq = self
            .dma
            .alloc_contiguous(usize::from(entries) * 16)
            .unwrap();
        let qsize = u32::from(entries - 1) << 16;
        let c = self.admin(
            Cmd::new(0x05)
                .prp(addr(&cq), 0)
                .cdw(10, qsize | 1)
                .cdw(11, 1),
        );
        assert_eq!(c.status, 0, "create CQ 1");
        let c = self.admin(
            Cmd::new(0x01)
                .prp(addr(&sq), 0)
                .cdw(10, qsize | 1)
                .cdw(11, 1 << 16 | 1),
        );
        assert_eq!(c.status, 0, "create SQ 1");
        self.io = Some(Queue {
            qid: 1,
            entries,
            sq: Ring::Host(sq),
            cq: Ring::Host(cq),
            tail: 0,
            head: 0,
            phase: true,
        });
    }

    /// A Read (0x02) or Write (0x01) of `nlb` blocks from `slba` on namespace 1.
    fn rw(&mut self, opcode: u8, slba: u64, nlb: u32, prp1: u64, prp2: u64) -> Cqe {
        self.io_cmd(
            Cmd::new(opcode)
                .nsid(1)
                .prp(prp1, prp2)
                .cdw(10, slba as u32)
                .cdw(11, (slba >> 32) as u32)
                .cdw(12, nlb - 1),
        )
    }
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

const DNR: u16 = 1 << 14;

// ---------------------------------------------------------------------------------------------
// Registers and the CC/CSTS state machine
// ---------------------------------------------------------------------------------------------

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
        let (asq, acq) = rig.ring_addrs();
        rig.w32(offsets::AQA, aqa);
        rig.w64(offsets::ASQ, asq);
        rig.w64(offsets::ACQ, acq);
        rig.w32(offsets::CC, cc);
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
    let (asq, acq) = rig.ring_addrs();
    rig.w32(offsets::AQA, 0x000f_000f);
    rig.w64(offsets::ASQ, asq);
    rig.w64(offsets::ACQ, acq);
    rig.w32(offsets::CC, CC_EN);
    assert_eq!(rig.csts() & 1, 0, "not ready yet");
    std::thread::sleep(Duration::from_millis(40));
    rig.model.advance();
    assert_eq!(rig.csts() & 1, 1);
    let c = rig.admin(Cmd::new(0x0a).cdw(10, 7));
    assert_eq!(c.status, 0);
}

// ---------------------------------------------------------------------------------------------
// Admin commands
// ---------------------------------------------------------------------------------------------

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
    let (asq, acq) = rig.ring_addrs();
    rig.w32(offsets::AQA, 0x000f_000f);
    rig.w64(offsets::ASQ, asq);
    rig.w64(offsets::ACQ, acq);
    rig.w32(offsets::CC, 1);
    assert_eq!(rig.csts(), 1);
    let ring = rig.buf(4096);
    assert_eq!(rig.admin(cq(1, 15, 1, ring)).status, DNR | 0x0102);
}

// ---------------------------------------------------------------------------------------------
// NVM I/O and PRPs
// ---------------------------------------------------------------------------------------------

fn io_rig(cfg: ModelConfig) -> Rig {
    let mut rig = Rig::enabled(cfg);
    rig.io_pair(16);
    rig
}

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

// ---------------------------------------------------------------------------------------------
// The Controller Memory Buffer
// ---------------------------------------------------------------------------------------------

const CMB_BUS: u64 = 0xfd00_0000;

/// A controller with a 1 MiB CMB under the NVMe 1.4 scheme, probed and enabled with the
/// crate's `cmb` module, and I/O queue pair 1 in host memory.
fn cmb_rig() -> (Rig, Arc<MockIo>) {
    let mut rig = Rig::new(ModelConfig {
        cmb: Some(CmbConfig::new(1 << 20, CmbScheme::Cmbmsc)),
        ..ModelConfig::default()
    });
    assert!(rig.regs().cap().unwrap().cmbs());
    assert_eq!(
        (rig.r32(offsets::CMBLOC), rig.r32(offsets::CMBSZ)),
        (0, 0),
        "before CRE"
    );
    let info = cmb::probe(&rig.regs(), &rig.model.bars(), Default::default())
        .unwrap()
        .expect("a CMB");
    assert_eq!(
        (info.bir, info.offset, info.size, info.bus_addr),
        (2, 0, 1 << 20, CMB_BUS)
    );
    assert!(info.sqs && !info.cqs && info.lists && info.rds && info.wds);
    assert_eq!(
        rig.r32(offsets::CMBLOC),
        2 | 1 << 5 | 1 << 6,
        "BIR 2, CDPMLS, CDPCILS"
    );
    assert_eq!(
        rig.r32(offsets::CMBSZ),
        0x1d | 2 << 8 | 1 << 12,
        "1 MiB in MiB units, no CQS"
    );
    cmb::enable(&rig.regs(), &info).unwrap();
    rig.enable();
    rig.io_pair(16);
    let bar = rig.model.cmb_bar().unwrap();
    (rig, bar)
}

fn cmb_put(bar: &MockIo, off: usize, b: &[u8]) {
    IoMem::new(bar)
        .subslice(off..off + b.len())
        .unwrap()
        .copy_from_slice(b)
        .unwrap();
}

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
        (info.size, info.bus_addr, info.cqs),
        (64 << 10, CMB_BUS, true)
    );
    rig.enable();
    rig.io_pair(16);
    let bar = rig.model.cmb_bar().unwrap();
    cmb_put(&bar, 0, &pattern(512, 11));
    assert_eq!(rig.rw(0x01, 1, 1, CMB_BUS, 0).status, 0);
    assert_eq!(rig.model.read_lbas(1, 1), pattern(512, 11));
}

// ---------------------------------------------------------------------------------------------
// Faults
// ---------------------------------------------------------------------------------------------

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
    let (asq, acq) = rig.ring_addrs();
    rig.w32(offsets::AQA, 0x000f_000f);
    rig.w64(offsets::ASQ, asq);
    rig.w64(offsets::ACQ, acq);
    rig.w32(offsets::CC, CC_EN);
    rig.model.advance();
    assert_eq!(rig.csts(), 0);
    rig.w32(0x1000, 1);
    assert_eq!(rig.model.stats().admin_fetched, 0);
}
