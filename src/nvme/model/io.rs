//! The NVM command set on namespace 1: Read, Write, Flush and Write Zeroes over a RAM
//! namespace (sparse: LBAs never written read as zeros).

use std::collections::BTreeMap;
use std::vec::Vec;

use super::command::{sc, Sqe};
use super::ctrl::Ctrl;
use super::log::Prps;
use super::prp::Dir;

/// NVM command opcodes the model executes.
pub(super) mod op {
    /// Flush.
    pub const FLUSH: u8 = 0x00;
    /// Write.
    pub const WRITE: u8 = 0x01;
    /// Read.
    pub const READ: u8 = 0x02;
    /// Write Zeroes.
    pub const WRITE_ZEROES: u8 = 0x08;
}

/// The RAM namespace (NSID 1).
///
/// # Invariant
/// Every stored block is `lba_size` bytes and its LBA is below `lba_count`.
#[derive(Debug, Clone)]
pub(super) struct Namespace {
    pub lba_size: u32,
    pub lba_count: u64,
    blocks: BTreeMap<u64, Vec<u8>>,
}

impl Namespace {
    pub fn new(lba_size: u32, lba_count: u64) -> Self {
        Namespace {
            lba_size,
            lba_count,
            blocks: BTreeMap::new(),
        }
    }

    /// Whether `nlb` blocks from `slba` lie in the namespace.
    pub fn contains(&self, slba: u64, nlb: u64) -> bool {
        slba.checked_add(nlb)
            .is_some_and(|end| end <= self.lba_count)
    }

    /// The bytes of `nlb` blocks from `slba` (blocks past the end read as zeros).
    pub fn read(&self, slba: u64, nlb: u64) -> Vec<u8> {
        let bs = self.lba_size as usize;
        let mut out = Vec::new();
        for lba in slba..slba.saturating_add(nlb) {
            match self.blocks.get(&lba) {
                Some(b) => out.extend_from_slice(b),
                None => out.resize(out.len() + bs, 0),
            }
        }
        out
    }

    /// Stores `data` from `slba`, whole blocks (a short last block is zero-filled; blocks past
    /// the end are dropped).
    pub fn write(&mut self, slba: u64, data: &[u8]) {
        let bs = self.lba_size as usize;
        for (i, chunk) in data.chunks(bs).enumerate() {
            // CAST: a chunk index fits u64.
            let Some(lba) = slba.checked_add(i as u64).filter(|l| *l < self.lba_count) else {
                return;
            };
            let mut b = chunk.to_vec();
            b.resize(bs, 0);
            if b.iter().all(|x| *x == 0) {
                self.blocks.remove(&lba);
            } else {
                self.blocks.insert(lba, b);
            }
        }
    }

    /// Zeroes `nlb` blocks from `slba`.
    pub fn zero(&mut self, slba: u64, nlb: u64) {
        let end = slba.saturating_add(nlb);
        self.blocks.retain(|lba, _| *lba < slba || *lba >= end);
    }
}

impl Ctrl {
    /// Executes an I/O command: (status, result).
    pub(super) fn io(&mut self, sqe: &Sqe, prps: &mut Prps) -> (u16, u32) {
        let status = match sqe.opcode {
            op::FLUSH if sqe.nsid == 1 || sqe.nsid == u32::MAX => sc::SUCCESS,
            op::READ | op::WRITE | op::WRITE_ZEROES | op::FLUSH if sqe.nsid != 1 => {
                sc::INVALID_NS | sc::DNR
            }
            op::READ | op::WRITE if sqe.psdt != 0 => sc::INVALID_FIELD | sc::DNR,
            op::READ | op::WRITE | op::WRITE_ZEROES => match self.rw(sqe, prps) {
                Ok(()) => sc::SUCCESS,
                Err(s) => s,
            },
            _ => sc::INVALID_OPCODE | sc::DNR,
        };
        (status, 0)
    }

    /// Read, Write, Write Zeroes: MDTS, then bounds, then the data pointers (QEMU's order).
    fn rw(&mut self, sqe: &Sqe, prps: &mut Prps) -> Result<(), u16> {
        let slba = u64::from(sqe.cdw(10)) | u64::from(sqe.cdw(11)) << 32;
        let nlb = u64::from(sqe.cdw(12) & 0xffff) + 1;
        let len = nlb * u64::from(self.ns.lba_size);
        let mdts = self.cfg.mdts;
        // A limit past 64 bits is no limit.
        let bits = self.regs.page_size().trailing_zeros() + u32::from(mdts);
        let max = (bits < 64).then(|| 1u64 << bits);
        if sqe.opcode != op::WRITE_ZEROES && mdts != 0 && max.is_some_and(|m| len > m) {
            return Err(sc::INVALID_FIELD | sc::DNR);
        }
        if !self.ns.contains(slba, nlb) {
            return Err(sc::LBA_RANGE | sc::DNR);
        }
        // CAST: at most 65536 blocks of at most 64 KiB: 4 GiB, a usize on 64-bit hosts (and
        // MDTS bounds it far lower by default).
        let len = len as usize;
        match sqe.opcode {
            op::READ => {
                let segs = self.walk_prps(len, Dir::ToHost, prps)?;
                let data = self.ns.read(slba, nlb);
                self.scatter(&segs, &data)
            }
            op::WRITE => {
                let segs = self.walk_prps(len, Dir::FromHost, prps)?;
                let data = self.gather(&segs)?;
                self.ns.write(slba, &data);
                Ok(())
            }
            _ => {
                self.ns.zero(slba, nlb);
                Ok(())
            }
        }
    }
}
