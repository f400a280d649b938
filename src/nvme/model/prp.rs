//! Where the device's addresses lead (host memory through the
//! [`MockDma`](crate::dma::MockDma), the CMB, the PMR, or its
//! own BAR0) and the PRP walk that turns a command's data pointers into the pages its data
//! moves through.
//!
//! The walk follows QEMU's `nvme_map_prp`: PRP1 may have an offset into its page; PRP2 is the
//! second page (offset 0) when the data needs at most two pages, else a PRP list pointer
//! (qword aligned) whose entries (offset 0) fill the rest of its page, the last entry
//! chaining to the next list page while more than one page of data remains. Placement follows
//! `nvme_map_addr`: PRP1 decides — in controller memory (the CMB or the PMR: QEMU's
//! `nvme_addr_is_dma` is false for both), every data page must be in controller memory (either
//! of them); outside, none may be (Invalid Use of Controller Memory Buffer with DNR). A range
//! must lie wholly in the CMB or the PMR (`nvme_map_addr_pmr`: Data Transfer Error). Where the
//! list itself lives does not matter. Addresses in BAR0, and host addresses the mock refuses, are Data Transfer
//! Errors.

use std::vec::Vec;

use super::command::sc;
use super::ctrl::Ctrl;
use super::log::Prps;
use crate::dma::DmaAddr;

/// Where an address leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Place {
    /// Host memory (or whatever the mock DMA reaches).
    Host,
    /// The CMB, at this byte offset.
    Cmb(usize),
    /// The PMR, at this byte offset.
    Pmr(usize),
    /// The controller's own registers.
    Bar0,
}

/// Which way data moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dir {
    /// Controller to host memory (Read, Identify): CMBSZ.RDS governs the CMB, PMRCAP.RDS the
    /// PMR.
    ToHost,
    /// Host memory to controller (Write): CMBSZ.WDS governs the CMB, PMRCAP.WDS the PMR.
    FromHost,
}

/// One contiguous piece of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Seg {
    pub addr: u64,
    pub len: usize,
}

/// The address as a [`DmaAddr`] for the mock's device side.
fn dev(addr: u64) -> DmaAddr {
    // SAFETY: the address is only passed to `MockDma::device_read`/`device_write`, which reach
    // nothing but memory allocated from the mock (they check every byte and fail otherwise);
    // it is the device's own use of an address the driver gave it, and makes no reference.
    unsafe { DmaAddr::from_raw(addr) }
}

impl Ctrl {
    /// Where `addr` leads now.
    pub(super) fn place(&self, addr: u64) -> Place {
        if let Some((base, size)) = self.cmb_window() {
            if addr >= base && addr - base < size {
                // CAST: below the CMB size, at most 1 GiB.
                return Place::Cmb((addr - base) as usize);
            }
        }
        if let Some((base, size)) = self.pmr_window() {
            if addr >= base && addr - base < size {
                // CAST: below the PMR size, at most 1 GiB.
                return Place::Pmr((addr - base) as usize);
            }
        }
        let bar0 = self.cfg.bar0_bus_addr;
        if addr >= bar0 && addr - bar0 < self.cfg.bar0_size() as u64 {
            return Place::Bar0;
        }
        Place::Host
    }

    /// Whether `len` bytes at CMB offset `off` lie inside the CMB.
    fn in_cmb(&self, off: usize, len: usize) -> bool {
        let size = self.cfg.cmb.map_or(0, |c| c.size);
        off.checked_add(len).is_some_and(|end| end as u64 <= size)
    }

    /// Whether `len` bytes at PMR offset `off` lie inside the PMR.
    fn in_pmr(&self, off: usize, len: usize) -> bool {
        let size = self.cfg.pmr.map_or(0, |c| c.size);
        off.checked_add(len).is_some_and(|end| end as u64 <= size)
    }

    /// The PMR's BAR, for `len` bytes at `off` inside the PMR.
    fn pmr_at(&self, off: usize, len: usize) -> Result<&crate::backend::MockIo, ()> {
        match &self.pmr {
            Some(p) if self.in_pmr(off, len) => Ok(&p.bar),
            _ => Err(()),
        }
    }

    /// The device reads `buf.len()` bytes at `addr` (queue entries, PRP lists, data).
    pub(super) fn mem_read(&self, addr: u64, buf: &mut [u8]) -> Result<(), ()> {
        match self.place(addr) {
            Place::Cmb(off) if self.in_cmb(off, buf.len()) => {
                let cmb = self.cmb.as_ref().ok_or(())?;
                buf.copy_from_slice(&cmb.peek(off, buf.len()));
                Ok(())
            }
            Place::Pmr(off) => {
                buf.copy_from_slice(&self.pmr_at(off, buf.len())?.peek(off, buf.len()));
                Ok(())
            }
            Place::Host => self.dma.device_read(dev(addr), buf).map_err(|_| ()),
            Place::Cmb(_) | Place::Bar0 => Err(()),
        }
    }

    /// The device writes `bytes` at `addr` (completions, read data).
    pub(super) fn mem_write(&self, addr: u64, bytes: &[u8]) -> Result<(), ()> {
        match self.place(addr) {
            Place::Cmb(off) if self.in_cmb(off, bytes.len()) => {
                let cmb = self.cmb.as_ref().ok_or(())?;
                cmb.poke(off, bytes);
                Ok(())
            }
            Place::Pmr(off) => {
                self.pmr_at(off, bytes.len())?.poke(off, bytes);
                Ok(())
            }
            Place::Host => self.dma.device_write(dev(addr), bytes).map_err(|_| ()),
            Place::Cmb(_) | Place::Bar0 => Err(()),
        }
    }

    /// The PRP list entry at `addr`, recorded in `prps`.
    fn list_entry(&self, addr: u64, prps: &mut Prps) -> Result<u64, u16> {
        if let Place::Cmb(_) = self.place(addr) {
            if !self.cfg.cmb.is_some_and(|c| c.lists) {
                return Err(sc::INVALID_CMB_USE | sc::DNR);
            }
        }
        let mut b = [0u8; 8];
        self.mem_read(addr, &mut b).map_err(|_| sc::DATA_TRANSFER)?;
        let e = u64::from_le_bytes(b);
        prps.list.push(e);
        Ok(e)
    }

    /// Checks one data page against PRP1's placement (`cmb`: in controller memory, the CMB or
    /// the PMR) and adds it.
    fn map(
        &self,
        segs: &mut Vec<Seg>,
        cmb: bool,
        dir: Dir,
        addr: u64,
        len: usize,
    ) -> Result<(), u16> {
        let pick = |rds: bool, wds: bool| match dir {
            Dir::ToHost => rds,
            Dir::FromHost => wds,
        };
        // Controller memory (CMB or PMR): whether this direction may use it, and whether the
        // range fits; host memory: always both. PRP1's side decides the rest.
        let place = self.place(addr);
        let (allowed, inside) = match place {
            Place::Bar0 => return Err(sc::DATA_TRANSFER),
            Place::Cmb(off) => {
                let c = self.cfg.cmb.ok_or(sc::DATA_TRANSFER)?;
                (pick(c.rds, c.wds), self.in_cmb(off, len))
            }
            Place::Pmr(off) => {
                let p = self.cfg.pmr.ok_or(sc::DATA_TRANSFER)?;
                (pick(p.rds, p.wds), self.in_pmr(off, len))
            }
            Place::Host => (true, true),
        };
        if !allowed || (place == Place::Host) == cmb {
            return Err(sc::INVALID_CMB_USE | sc::DNR);
        }
        if !inside {
            return Err(sc::DATA_TRANSFER);
        }
        segs.push(Seg { addr, len });
        Ok(())
    }

    /// The pages `len` bytes of data move through, from PRP1 and PRP2 with CC's page size.
    pub(super) fn walk_prps(&self, len: usize, dir: Dir, prps: &mut Prps) -> Result<Vec<Seg>, u16> {
        let page = self.regs.page_size();
        let (prp1, prp2) = (prps.prp1, prps.prp2);
        let mut segs = Vec::new();
        if len == 0 {
            return Ok(segs);
        }
        let cmb = matches!(self.place(prp1), Place::Cmb(_) | Place::Pmr(_));
        // CAST: a page is at most 64 KiB.
        let page_len = page as usize;
        let first = len.min(page_len - (prp1 % page) as usize);
        self.map(&mut segs, cmb, dir, prp1, first)?;
        let mut rem = len - first;
        if rem == 0 {
            return Ok(segs);
        }
        if rem <= page_len {
            if prp2 % page != 0 {
                return Err(sc::PRP_OFFSET | sc::DNR);
            }
            self.map(&mut segs, cmb, dir, prp2, rem)?;
            return Ok(segs);
        }
        if prp2 % 8 != 0 {
            return Err(sc::PRP_OFFSET | sc::DNR);
        }
        let mut list = prp2;
        // Entries left in the current list page.
        let mut left = (page - prp2 % page) / 8;
        while rem > 0 {
            let mut e = self.list_entry(list, prps)?;
            if left == 1 && rem > page_len {
                if e % page != 0 {
                    return Err(sc::PRP_OFFSET | sc::DNR);
                }
                list = e;
                left = page / 8;
                e = self.list_entry(list, prps)?;
            }
            if e % page != 0 {
                return Err(sc::PRP_OFFSET | sc::DNR);
            }
            let n = rem.min(page_len);
            self.map(&mut segs, cmb, dir, e, n)?;
            rem -= n;
            list = list.wrapping_add(8);
            left -= 1;
        }
        Ok(segs)
    }

    /// Moves `data` out to the pages (controller to host).
    pub(super) fn scatter(&self, segs: &[Seg], data: &[u8]) -> Result<(), u16> {
        let mut at = 0;
        for s in segs {
            self.mem_write(s.addr, &data[at..at + s.len])
                .map_err(|_| sc::DATA_TRANSFER)?;
            at += s.len;
        }
        Ok(())
    }

    /// Reads the pages' bytes (host to controller).
    pub(super) fn gather(&self, segs: &[Seg]) -> Result<Vec<u8>, u16> {
        let mut data = Vec::new();
        for s in segs {
            let mut b = std::vec![0u8; s.len];
            self.mem_read(s.addr, &mut b)
                .map_err(|_| sc::DATA_TRANSFER)?;
            data.extend_from_slice(&b);
        }
        Ok(data)
    }
}
