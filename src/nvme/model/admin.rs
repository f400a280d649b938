//! The admin command set: Identify (namespace, controller, active namespace list), Set and
//! Get Features (Number of Queues; others stored), and creating and deleting I/O queues, with
//! QEMU's checks, in QEMU's order, and its status codes.

use super::command::{sc, Sqe};
use super::ctrl::Ctrl;
use super::log::Prps;
use super::prp::{Dir, Place};
use super::queues::{Cq, Sq};

/// Admin opcodes the model executes.
pub(super) mod op {
    /// Delete I/O Submission Queue.
    pub const DELETE_SQ: u8 = 0x00;
    /// Create I/O Submission Queue.
    pub const CREATE_SQ: u8 = 0x01;
    /// Delete I/O Completion Queue.
    pub const DELETE_CQ: u8 = 0x04;
    /// Create I/O Completion Queue.
    pub const CREATE_CQ: u8 = 0x05;
    /// Identify.
    pub const IDENTIFY: u8 = 0x06;
    /// Set Features.
    pub const SET_FEATURES: u8 = 0x09;
    /// Get Features.
    pub const GET_FEATURES: u8 = 0x0A;
}

/// Feature identifier of Number of Queues.
const FID_NQ: u8 = 0x07;

/// The identifying strings, space padded as the specification wants.
const SERIAL: &[u8] = b"IOMEM-MODEL-0001";
const MODEL: &[u8] = b"iomem NVMe model";
const FIRMWARE: &[u8] = b"1.0";

fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

fn put_str(buf: &mut [u8], at: usize, len: usize, s: &[u8]) {
    buf[at..at + len].fill(b' ');
    put(buf, at, &s[..s.len().min(len)]);
}

impl Ctrl {
    /// Executes an admin command: (status, result).
    pub(super) fn admin(&mut self, sqe: &Sqe, prps: &mut Prps) -> (u16, u32) {
        let r = match sqe.opcode {
            _ if sqe.psdt != 0 => Err(sc::INVALID_FIELD | sc::DNR),
            op::IDENTIFY => self.identify(sqe, prps).map(|()| 0),
            op::SET_FEATURES => self.set_features(sqe),
            op::GET_FEATURES => Ok(self.get_features(sqe)),
            op::CREATE_CQ => self.create_cq(sqe).map(|()| 0),
            op::CREATE_SQ => self.create_sq(sqe).map(|()| 0),
            op::DELETE_SQ => self.delete_sq(sqe).map(|()| 0),
            op::DELETE_CQ => self.delete_cq(sqe).map(|()| 0),
            _ => Err(sc::INVALID_OPCODE | sc::DNR),
        };
        match r {
            Ok(result) => (sc::SUCCESS, result),
            Err(status) => (status, 0),
        }
    }

    fn identify(&mut self, sqe: &Sqe, prps: &mut Prps) -> Result<(), u16> {
        let mut data = std::vec![0u8; 4096];
        // CAST: CNS is bits 7:0 of CDW10.
        match sqe.cdw(10) as u8 {
            0 => match sqe.nsid {
                1 => self.identify_ns(&mut data),
                2..=256 => {} // a namespace that is not attached reads as zeros (QEMU)
                _ => return Err(sc::INVALID_NS | sc::DNR),
            },
            1 => self.identify_ctrl(&mut data),
            2 => {
                if sqe.nsid >= 0xffff_fffe {
                    return Err(sc::INVALID_NS | sc::DNR);
                }
                if sqe.nsid < 1 {
                    put(&mut data, 0, &1u32.to_le_bytes());
                }
            }
            _ => return Err(sc::INVALID_FIELD | sc::DNR),
        }
        let segs = self.walk_prps(data.len(), Dir::ToHost, prps)?;
        self.scatter(&segs, &data)
    }

    fn identify_ns(&self, d: &mut [u8]) {
        let n = self.ns.lba_count.to_le_bytes();
        put(d, 0, &n); // NSZE
        put(d, 8, &n); // NCAP
        put(d, 16, &n); // NUSE
        d[25] = 0; // NLBAF: one format, 0's based
        d[26] = 0; // FLBAS: format 0
                   // CAST: log2 of a power of two up to 65536.
        let lbads = self.ns.lba_size.trailing_zeros() as u8;
        d[128 + 2] = lbads; // LBAF0: MS 0, LBADS, RP 0
    }

    fn identify_ctrl(&self, d: &mut [u8]) {
        put(d, 0, &0x1b36u16.to_le_bytes()); // VID (QEMU's, Red Hat)
        put(d, 2, &0x1af4u16.to_le_bytes()); // SSVID
        put_str(d, 4, 20, SERIAL);
        put_str(d, 24, 40, MODEL);
        put_str(d, 64, 8, FIRMWARE);
        d[77] = self.cfg.mdts;
        put(d, 78, &1u16.to_le_bytes()); // CNTLID
        put(d, 80, &self.cfg.vs.to_le_bytes());
        put(d, 256, &0u16.to_le_bytes()); // OACS: no optional admin commands
        d[512] = 0x66; // SQES: 64 bytes required and maximum
        d[513] = 0x44; // CQES: 16 bytes
        put(d, 516, &1u32.to_le_bytes()); // NN
        put(d, 520, &(1u16 << 3).to_le_bytes()); // ONCS: Write Zeroes
    }

    /// I/O queues granted (SQs, CQs), 1's based.
    pub(super) fn granted(&self) -> (u16, u16) {
        let max = self.cfg.max_io_queues;
        self.features.granted.unwrap_or((max, max))
    }

    fn nq_result(&self) -> u32 {
        let (nsq, ncq) = self.granted();
        u32::from(nsq - 1) | u32::from(ncq - 1) << 16
    }

    fn set_features(&mut self, sqe: &Sqe) -> Result<u32, u16> {
        // CAST: FID is bits 7:0 of CDW10.
        let fid = sqe.cdw(10) as u8;
        let v = sqe.cdw(11);
        if fid != FID_NQ {
            self.features.values.insert(fid, v);
            return Ok(0);
        }
        if self.queues.any_io() {
            return Err(sc::SEQUENCE | sc::DNR);
        }
        // CAST: NSQR is bits 15:0, NCQR bits 31:16, both 0's based.
        let (nsqr, ncqr) = (v as u16, (v >> 16) as u16);
        if nsqr == 0xffff || ncqr == 0xffff {
            return Err(sc::INVALID_FIELD | sc::DNR);
        }
        let max = self.cfg.max_io_queues;
        self.features.granted = Some(((nsqr + 1).min(max), (ncqr + 1).min(max)));
        Ok(self.nq_result())
    }

    fn get_features(&self, sqe: &Sqe) -> u32 {
        // CAST: FID is bits 7:0 of CDW10.
        match sqe.cdw(10) as u8 {
            FID_NQ => self.nq_result(),
            fid => self.features.values.get(&fid).copied().unwrap_or(0),
        }
    }

    /// The checks both creates share, in QEMU's order after the queue identifiers: entry
    /// sizes (CC.IOSQES = 6, CC.IOCQES = 4), size against MQES, base page aligned, PC.
    /// Returns (qid, entries, base).
    fn queue_args(&self, sqe: &Sqe) -> Result<(u16, u32, u64), u16> {
        let cc = crate::nvme::regs::Cc::from_raw(self.regs.cc);
        if cc.iosqes() != 6 || cc.iocqes() != 4 {
            return Err(sc::QUEUE_SIZE | sc::DNR);
        }
        // CAST: QID is bits 15:0 of CDW10, QSIZE bits 31:16 (0's based).
        let (qid, qsize) = (sqe.cdw(10) as u16, (sqe.cdw(10) >> 16) as u16);
        Ok((qid, u32::from(qsize) + 1, sqe.prp1))
    }

    fn check_ring(&self, sqe: &Sqe, qsize: u32, base: u64, cmb_ok: bool) -> Result<(), u16> {
        if qsize < 2 || qsize > u32::from(self.cfg.mqes) + 1 {
            return Err(sc::QUEUE_SIZE | sc::DNR);
        }
        if base % self.regs.page_size() != 0 {
            return Err(sc::PRP_OFFSET | sc::DNR);
        }
        if sqe.cdw(11) & 1 == 0 {
            return Err(sc::INVALID_FIELD | sc::DNR); // PC = 0: the model keeps queues contiguous
        }
        match self.place(base) {
            Place::Cmb(_) if !cmb_ok => Err(sc::INVALID_CMB_USE | sc::DNR),
            Place::Bar0 => Err(sc::INVALID_FIELD | sc::DNR),
            _ => Ok(()),
        }
    }

    fn create_cq(&mut self, sqe: &Sqe) -> Result<(), u16> {
        let (qid, size, base) = self.queue_args(sqe)?;
        if qid == 0 || qid > self.granted().1 || self.queues.cqs.contains_key(&qid) {
            return Err(sc::INVALID_QID | sc::DNR);
        }
        self.check_ring(sqe, size, base, self.cfg.cmb.is_some_and(|c| c.cqs))?;
        self.queues.cqs.insert(qid, Cq::new(base, size));
        Ok(())
    }

    fn create_sq(&mut self, sqe: &Sqe) -> Result<(), u16> {
        let (qid, size, base) = self.queue_args(sqe)?;
        // CAST: CQID is bits 31:16 of CDW11.
        let cqid = (sqe.cdw(11) >> 16) as u16;
        if cqid == 0 || !self.queues.cqs.contains_key(&cqid) {
            return Err(sc::INVALID_CQ | sc::DNR);
        }
        if qid == 0 || qid > self.granted().0 || self.queues.sqs.contains_key(&qid) {
            return Err(sc::INVALID_QID | sc::DNR);
        }
        self.check_ring(sqe, size, base, self.cfg.cmb.is_some_and(|c| c.sqs))?;
        self.queues.sqs.insert(
            qid,
            Sq {
                base,
                size,
                head: 0,
                tail: 0,
                cqid,
            },
        );
        Ok(())
    }

    fn delete_sq(&mut self, sqe: &Sqe) -> Result<(), u16> {
        // CAST: QID is bits 15:0 of CDW10.
        let qid = sqe.cdw(10) as u16;
        if qid == 0 || self.queues.sqs.remove(&qid).is_none() {
            return Err(sc::INVALID_QID | sc::DNR);
        }
        Ok(())
    }

    fn delete_cq(&mut self, sqe: &Sqe) -> Result<(), u16> {
        // CAST: QID is bits 15:0 of CDW10.
        let qid = sqe.cdw(10) as u16;
        if qid == 0 || !self.queues.cqs.contains_key(&qid) {
            return Err(sc::INVALID_CQ | sc::DNR);
        }
        if self.queues.sqs.values().any(|s| s.cqid == qid) {
            return Err(sc::QUEUE_DELETION);
        }
        self.queues.cqs.remove(&qid);
        self.delayed.retain(|d| d.cqid != qid);
        Ok(())
    }
}
