//! The host side the tests drive by hand: admin and I/O rings in `MockDma` memory (or the CMB),
//! raw submission entries, completion entries decoded from their bytes.

pub(crate) use std::sync::Arc;
pub(crate) use std::time::Duration;

pub(crate) use iomem::backend::MockIo;
pub(crate) use iomem::dma::{DmaRegion, Lease, MockDma};
pub(crate) use iomem::nvme::cmb::{self, CmbScheme};
pub(crate) use iomem::nvme::model::{CmbConfig, Fault, ModelConfig, NvmeModel, Target, Vanish};
pub(crate) use iomem::nvme::regs::{offsets, Cap, ControllerRegs};
pub(crate) use iomem::IoMem;

pub(crate) type Region = DmaRegion<Arc<MockIo>>;

/// A raw submission entry.
#[derive(Clone, Copy, Default)]
pub(crate) struct Cmd {
    pub(crate) opcode: u8,
    pub(crate) cid: u16,
    pub(crate) nsid: u32,
    pub(crate) prp1: u64,
    pub(crate) prp2: u64,
    pub(crate) cdw: [u32; 6],
}

impl Cmd {
    pub(crate) fn new(opcode: u8) -> Self {
        Cmd {
            opcode,
            ..Cmd::default()
        }
    }
    pub(crate) fn cdw(mut self, n: usize, v: u32) -> Self {
        self.cdw[n - 10] = v;
        self
    }
    pub(crate) fn nsid(mut self, n: u32) -> Self {
        self.nsid = n;
        self
    }
    pub(crate) fn prp(mut self, p1: u64, p2: u64) -> Self {
        self.prp1 = p1;
        self.prp2 = p2;
        self
    }
    pub(crate) fn bytes(&self) -> [u8; 64] {
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
pub(crate) struct Cqe {
    pub(crate) result: u32,
    pub(crate) sq_head: u16,
    pub(crate) sqid: u16,
    pub(crate) cid: u16,
    pub(crate) status: u16,
}

/// Where a queue's ring lives.
pub(crate) enum Ring {
    Host(Region),
    Cmb(Arc<MockIo>, usize),
}

impl Ring {
    pub(crate) fn write(&self, off: usize, b: &[u8]) {
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
    pub(crate) fn read(&self, off: usize, len: usize) -> Vec<u8> {
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

pub(crate) struct Queue {
    pub(crate) qid: u16,
    pub(crate) entries: u16,
    pub(crate) sq: Ring,
    pub(crate) cq: Ring,
    pub(crate) tail: u16,
    pub(crate) head: u16,
    pub(crate) phase: bool,
}

pub(crate) struct Rig {
    pub(crate) model: NvmeModel,
    pub(crate) dma: MockDma,
    pub(crate) bar0: Arc<MockIo>,
    pub(crate) admin: Queue,
    pub(crate) io: Option<Queue>,
    pub(crate) cid: u16,
    pub(crate) keep: Vec<Region>,
}

pub(crate) fn addr(r: &Region) -> u64 {
    let l: Lease<_> = r.lease();
    let a = l.addr(0).unwrap().get();
    // SAFETY: the tests' device is the model, which is done with the memory when the rig goes.
    unsafe { l.complete() };
    a
}

pub(crate) const CC_EN: u32 = 0x0046_0001; // IOCQES 4, IOSQES 6, MPS 0, EN

impl Rig {
    pub(crate) fn new(cfg: ModelConfig) -> Rig {
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

    pub(crate) fn enabled(cfg: ModelConfig) -> Rig {
        let mut rig = Rig::new(cfg);
        rig.enable();
        rig
    }

    pub(crate) fn regs(&self) -> ControllerRegs<'_, MockIo> {
        ControllerRegs::new(IoMem::new(&*self.bar0)).unwrap()
    }
    pub(crate) fn r32(&self, off: usize) -> u32 {
        self.regs().try_read32(off).unwrap()
    }
    pub(crate) fn w32(&self, off: usize, v: u32) {
        self.regs().try_write32(off, v).unwrap()
    }
    pub(crate) fn w64(&self, off: usize, v: u64) {
        self.regs().try_write64_hi_lo(off, v).unwrap()
    }
    pub(crate) fn csts(&self) -> u32 {
        self.r32(offsets::CSTS)
    }

    pub(crate) fn ring_addrs(&self) -> (u64, u64) {
        match (&self.admin.sq, &self.admin.cq) {
            (Ring::Host(s), Ring::Host(c)) => (addr(s), addr(c)),
            _ => unreachable!("admin queues are in host memory"),
        }
    }

    /// Programs AQA, ASQ and ACQ (the rig's admin rings), then CC.
    pub(crate) fn program(&self, aqa: u32, cc: u32) {
        let (asq, acq) = self.ring_addrs();
        self.w32(offsets::AQA, aqa);
        self.w64(offsets::ASQ, asq);
        self.w64(offsets::ACQ, acq);
        self.w32(offsets::CC, cc);
    }

    pub(crate) fn enable(&mut self) {
        self.program(0x000f_000f, CC_EN);
        assert_eq!(self.csts() & 3, 1, "ready, not failed");
    }

    /// `len` bytes of host memory (whole pages), kept for the rig's life.
    pub(crate) fn buf(&mut self, len: usize) -> u64 {
        let r = self.dma.alloc_contiguous(len).unwrap();
        let a = addr(&r);
        self.keep.push(r);
        a
    }
    /// The CPU's handle on `len` bytes at device address `at` of one of the rig's buffers.
    fn at(&self, at: u64, len: usize) -> iomem::dma::DmaMem<'_, [u8], Arc<MockIo>> {
        let r = self.keep.iter().find(|r| {
            let a = addr(r);
            at >= a && at + len as u64 <= a + r.len() as u64
        });
        let r = r.expect("a buffer of the rig");
        let off = (at - addr(r)) as usize;
        r.mem().subslice(off..off + len).unwrap()
    }

    pub(crate) fn put(&self, at: u64, b: &[u8]) {
        // The host writes its own memory (the CPU side; the model's DMA reads it).
        self.at(at, b.len()).copy_from_slice(b).unwrap();
    }
    pub(crate) fn get(&self, at: u64, len: usize) -> Vec<u8> {
        let mut b = vec![0u8; len];
        self.at(at, len).copy_to_slice(&mut b).unwrap();
        b
    }

    /// Writes the entry at the queue's tail and rings its doorbell.
    pub(crate) fn submit(&mut self, io: bool, mut cmd: Cmd) -> u16 {
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
    pub(crate) fn reap(&mut self, io: bool) -> Option<Cqe> {
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

    pub(crate) fn admin(&mut self, cmd: Cmd) -> Cqe {
        let cid = self.submit(false, cmd);
        let c = self.reap(false).expect("an admin completion");
        assert_eq!((c.cid, c.sqid), (cid, 0));
        c
    }

    pub(crate) fn io_cmd(&mut self, cmd: Cmd) -> Cqe {
        let cid = self.submit(true, cmd);
        let c = self.reap(true).expect("an I/O completion");
        assert_eq!(c.cid, cid);
        c
    }

    /// Creates I/O queue pair 1 of `entries` entries in host memory.
    pub(crate) fn io_pair(&mut self, entries: u16) {
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
    pub(crate) fn rw(&mut self, opcode: u8, slba: u64, nlb: u32, prp1: u64, prp2: u64) -> Cqe {
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

pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

pub(crate) const DNR: u16 = 1 << 14;

pub(crate) fn io_rig(cfg: ModelConfig) -> Rig {
    let mut rig = Rig::enabled(cfg);
    rig.io_pair(16);
    rig
}

pub(crate) const CMB_BUS: u64 = 0xfd00_0000;

/// A controller with a 1 MiB CMB under the NVMe 1.4 scheme, probed and enabled with the
/// crate's `cmb` module, and I/O queue pair 1 in host memory.
pub(crate) fn cmb_rig() -> (Rig, Arc<MockIo>) {
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
        (info.bir, info.offset(), info.size(), info.bus_addr()),
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

pub(crate) fn cmb_put(bar: &MockIo, off: usize, b: &[u8]) {
    IoMem::new(bar)
        .subslice(off..off + b.len())
        .unwrap()
        .copy_from_slice(b)
        .unwrap();
}
