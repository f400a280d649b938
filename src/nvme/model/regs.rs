//! The BAR0 register file and the CC/CSTS state machine.
//!
//! CAP, VS, CMBLOC and CMBSZ are computed from the configuration; CC, AQA, ASQ, ACQ, INTMS and
//! CMBMSC are writable; CSTS reports RDY, CFS and SHST. Enabling (CC.EN 0 → 1) checks the admin
//! queue registers and CC as QEMU's `nvme_start_ctrl` does and on failure sets CSTS.CFS (CSTS
//! reads `NVME_CSTS_FAILED`); disabling resets the controller. Reserved and unimplemented
//! registers read 0 and ignore writes.

use std::time::Instant;

use super::config::MPSMAX;
use super::ctrl::{Ctrl, Features};
use crate::nvme::cmb::CmbScheme;
use crate::nvme::regs::{offsets, Aqa, Cc, MIN_PAGE_SIZE};

/// CMBMSC.CRE, CMSE and CBA (the register's decoder has no infallible constructor: it refuses
/// reserved bits, which a controller simply stores).
const CRE: u64 = 1;
const CMSE: u64 = 1 << 1;
const CBA: u64 = !0xfff;

/// The writable registers and the controller status.
#[derive(Debug, Clone, Default)]
pub(super) struct RegFile {
    pub cc: u32,
    pub aqa: u32,
    pub asq: u64,
    pub acq: u64,
    pub intms: u32,
    pub cmbmsc: u64,
    pub cmbsts: u32,
    /// CSTS.RDY.
    rdy: bool,
    /// CSTS.CFS from a failed enable or a DMA failure (the `Fatal` fault adds to it).
    pub cfs: bool,
    /// CSTS.SHST.
    pub shst: u8,
    /// When RDY turns on (enabled, ready delay running).
    ready_at: Option<Instant>,
    /// CMBMSC.CMSE accepted with a valid CBA.
    pub cmse: bool,
    /// The PMR's registers and state.
    pub pmr: PmrRegs,
}

/// PMRCTL, PMRMSC and the PMR's status.
#[derive(Debug, Clone, Default)]
pub(super) struct PmrRegs {
    pub ctl: u32,
    pub msc: u64,
    /// PMRSTS.NRDY (QEMU starts with PMRSTS = 0).
    pub nrdy: bool,
    /// PMRSTS.CBAI.
    pub cbai: bool,
    /// PMRMSC.CMSE accepted with a valid CBA.
    pub cmse: bool,
    /// When NRDY clears (enabled, ready delay running).
    pub ready_at: Option<Instant>,
}

impl PmrRegs {
    /// Clears NRDY once the ready delay has passed.
    pub fn tick(&mut self, now: Instant) {
        if let Some(at) = self.ready_at {
            if at <= now {
                self.nrdy = false;
                self.ready_at = None;
            }
        }
    }

    /// PMRSTS as read.
    pub fn sts(&self) -> u32 {
        u32::from(self.nrdy) << 8 | u32::from(self.cbai) << 12
    }

    /// Whether the PMR serves accesses and the status read is a flush-able state.
    pub fn ready(&self) -> bool {
        self.ctl & 1 == 1 && !self.nrdy
    }
}

impl RegFile {
    /// CSTS.RDY.
    pub fn rdy(&self) -> bool {
        self.rdy
    }

    /// Turns RDY on once the ready delay has passed.
    pub fn tick(&mut self, now: Instant, never_ready: bool) {
        if let Some(at) = self.ready_at {
            if at <= now && !never_ready {
                self.rdy = true;
                self.ready_at = None;
            }
        }
    }

    /// The controller's memory page size (CC.MPS).
    pub fn page_size(&self) -> u64 {
        Cc::from_raw(self.cc).page_size()
    }
}

impl Ctrl {
    /// The dword register at `off` (4-aligned, below the doorbells).
    pub(super) fn reg_read(&self, off: usize) -> u32 {
        let cap = self.cfg.cap();
        let cmb = self.cfg.cmb;
        let cmbmsc_scheme = matches!(cmb, Some(c) if c.scheme == CmbScheme::Cmbmsc);
        let cmb_regs = match cmb {
            Some(c) if c.scheme == CmbScheme::Legacy => Some(c),
            Some(c) if self.regs.cmbmsc & CRE != 0 => Some(c),
            _ => None,
        };
        // CAST (all arms): the low or high dword of a 64-bit register, by intent.
        match off {
            offsets::CAP => cap as u32,
            o if o == offsets::CAP + 4 => (cap >> 32) as u32,
            offsets::VS => self.cfg.vs,
            offsets::INTMS | offsets::INTMC => self.regs.intms,
            offsets::CC => self.regs.cc,
            offsets::CSTS => self.csts(),
            offsets::AQA => self.regs.aqa,
            offsets::ASQ => self.regs.asq as u32,
            o if o == offsets::ASQ + 4 => (self.regs.asq >> 32) as u32,
            offsets::ACQ => self.regs.acq as u32,
            o if o == offsets::ACQ + 4 => (self.regs.acq >> 32) as u32,
            offsets::CMBLOC => cmb_regs.map_or(0, |c| c.cmbloc()),
            offsets::CMBSZ => cmb_regs.map_or(0, |c| c.cmbsz()),
            offsets::CMBMSC if cmbmsc_scheme => self.regs.cmbmsc as u32,
            o if o == offsets::CMBMSC + 4 && cmbmsc_scheme => (self.regs.cmbmsc >> 32) as u32,
            offsets::CMBSTS if cmbmsc_scheme => self.regs.cmbsts,
            o if self.cfg.pmr.is_some() && (offsets::PMRCAP..offsets::PMRMSC + 8).contains(&o) => {
                self.pmr_reg_read(o)
            }
            _ => 0,
        }
    }

    /// CSTS as read.
    fn csts(&self) -> u32 {
        let cfs = self.regs.cfs || self.faults.fatal;
        u32::from(self.regs.rdy) | u32::from(cfs) << 1 | u32::from(self.regs.shst) << 2
    }

    /// A dword write to the register at `off` (4-aligned, below the doorbells).
    pub(super) fn reg_write(&mut self, off: usize, v: u32) {
        let lo = |r: u64| r & !0xffff_ffff | u64::from(v);
        let hi = |r: u64| r & 0xffff_ffff | u64::from(v) << 32;
        match off {
            offsets::INTMS => self.regs.intms |= v,
            offsets::INTMC => self.regs.intms &= !v,
            offsets::CC => self.write_cc(v),
            offsets::AQA => self.regs.aqa = v & 0x0fff_0fff,
            offsets::ASQ => self.regs.asq = lo(self.regs.asq) & !0xfff,
            o if o == offsets::ASQ + 4 => self.regs.asq = hi(self.regs.asq),
            offsets::ACQ => self.regs.acq = lo(self.regs.acq) & !0xfff,
            o if o == offsets::ACQ + 4 => self.regs.acq = hi(self.regs.acq),
            offsets::CMBMSC => self.write_cmbmsc_lo(v),
            o if o == offsets::CMBMSC + 4 && self.cfg.cap() & 1 << 57 != 0 => {
                self.regs.cmbmsc = hi(self.regs.cmbmsc);
            }
            o if (offsets::PMRCTL..offsets::PMRMSC + 8).contains(&o) => self.pmr_reg_write(o, v),
            _ => {} // read-only, reserved or not modelled (NSSR, BPRSEL)
        }
    }

    /// A PMR register (the controller has a PMR).
    fn pmr_reg_read(&self, off: usize) -> u32 {
        let p = &self.regs.pmr;
        // CAST (PMRMSC): the low or high dword, by intent.
        match off {
            offsets::PMRCAP => self.cfg.pmr.map_or(0, |c| c.pmrcap()),
            offsets::PMRCTL => p.ctl,
            offsets::PMRSTS => p.sts(),
            offsets::PMRMSC => p.msc as u32,
            o if o == offsets::PMRMSC + 4 => (p.msc >> 32) as u32,
            _ => 0, // PMREBS, PMRSWTP: none reported (QEMU)
        }
    }

    /// PMRCTL and PMRMSC, as QEMU's `nvme_write_bar`: EN = 1 clears PMRSTS and starts the
    /// ready delay, EN = 0 sets NRDY and turns CMSE off; PMRMSCL with CMSE and a CBA whose range
    /// does not wrap turns the PMR's address space on (else PMRSTS.CBAI).
    fn pmr_reg_write(&mut self, off: usize, v: u32) {
        let Some(cfg) = self.cfg.pmr else {
            return;
        };
        let p = &mut self.regs.pmr;
        match off {
            offsets::PMRCTL => {
                let was = p.ctl & 1 == 1;
                p.ctl = v & 1;
                if p.ctl == 1 && !was {
                    p.cbai = false;
                    p.nrdy = true;
                    // A delay past the clock's range never ends.
                    p.ready_at = Instant::now().checked_add(cfg.ready_delay);
                    p.tick(Instant::now());
                } else if p.ctl == 0 {
                    p.nrdy = true;
                    p.cmse = false;
                    p.ready_at = None;
                }
                let on = p.ctl == 1;
                self.pmr_on(on);
            }
            offsets::PMRMSC => {
                p.msc = p.msc & !0xffff_ffff | u64::from(v);
                p.cmse = false;
                if p.msc & CMSE != 0 {
                    if (p.msc & CBA).checked_add(cfg.size).is_some() {
                        p.cmse = true;
                    } else {
                        p.cbai = true;
                    }
                }
            }
            o if o == offsets::PMRMSC + 4 => p.msc = p.msc & 0xffff_ffff | u64::from(v) << 32,
            _ => {} // PMRCAP, PMRSTS, PMREBS, PMRSWTP: read-only
        }
    }

    /// The PMR's address window `[base, base + size)` while it answers to addresses.
    pub(super) fn pmr_window(&self) -> Option<(u64, u64)> {
        let pmr = self.cfg.pmr?;
        let p = &self.regs.pmr;
        p.cmse.then_some((p.msc & CBA, pmr.size))
    }

    /// CMBMSC's low dword: CRE turns CMBLOC/CMBSZ on (off clears them), CMSE with a CBA whose
    /// range does not wrap turns the CMB's address space on (else CMBSTS.CBAI), as QEMU does.
    fn write_cmbmsc_lo(&mut self, v: u32) {
        let Some(cmb) = self.cfg.cmb.filter(|c| c.scheme == CmbScheme::Cmbmsc) else {
            return;
        };
        self.regs.cmbmsc = self.regs.cmbmsc & !0xffff_ffff | u64::from(v);
        self.regs.cmse = false;
        let m = self.regs.cmbmsc;
        if m & CRE != 0 && m & CMSE != 0 {
            if (m & CBA).checked_add(cmb.size).is_some() {
                self.regs.cmse = true;
                self.regs.cmbsts = 0;
            } else {
                self.regs.cmbsts = 1;
            }
        }
    }

    /// The CMB's address window `[base, base + size)` while it answers to addresses.
    pub(super) fn cmb_window(&self) -> Option<(u64, u64)> {
        let cmb = self.cfg.cmb?;
        match cmb.scheme {
            CmbScheme::Legacy => Some((cmb.bus_addr, cmb.size)),
            CmbScheme::Cmbmsc if self.regs.cmse => Some((self.regs.cmbmsc & CBA, cmb.size)),
            CmbScheme::Cmbmsc => None,
        }
    }

    fn write_cc(&mut self, new: u32) {
        let old = Cc::from_raw(self.regs.cc);
        let cc = Cc::from_raw(new);
        self.regs.cc = new;
        if cc.shn() as u8 != 0 && old.shn() as u8 == 0 {
            self.regs.shst = 2; // shutdown processing complete at once
        } else if cc.shn() as u8 == 0 && old.shn() as u8 != 0 {
            self.regs.shst = 0;
        }
        if cc.en() && !old.en() {
            self.enable(cc);
        } else if !cc.en() && old.en() {
            self.reset();
        }
    }

    /// CC.EN 0 → 1: QEMU's `nvme_start_ctrl` checks; on failure CSTS = CFS only.
    fn enable(&mut self, cc: Cc) {
        let page = cc.page_size();
        let aqa = Aqa::from_raw(self.regs.aqa);
        let ok = self.regs.asq % page == 0
            && self.regs.acq % page == 0
            && cc.css() == 0
            && cc.mps() <= MPSMAX
            && page >= MIN_PAGE_SIZE
            && aqa.asqs() != 0
            && aqa.acqs() != 0;
        if !ok {
            self.regs.rdy = false;
            self.regs.cfs = true;
            self.regs.shst = 0;
            return;
        }
        self.queues.create_admin(
            self.regs.asq,
            aqa.sq_entries(),
            self.regs.acq,
            aqa.cq_entries(),
        );
        // A delay past the clock's range never ends.
        self.regs.ready_at = Instant::now().checked_add(self.cfg.ready_delay);
        self.regs.tick(Instant::now(), self.faults.never_ready);
    }

    /// CC.EN 1 → 0: every queue deleted, held and delayed completions dropped, features back
    /// to their defaults, RDY and CFS cleared.
    fn reset(&mut self) {
        self.queues = Default::default();
        self.delayed.clear();
        self.features = Features::default();
        self.regs.rdy = false;
        self.regs.cfs = false;
        self.regs.ready_at = None;
    }
}
