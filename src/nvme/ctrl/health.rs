//! Whether a controller is still there, and the one place that decides it.
//!
//! A device that has gone away (surprise removal, link down, PCI memory decoding off) reads
//! all-ones on real hardware and all-zeros under QEMU. Neither is a valid CSTS for an enabled
//! controller (RDY is set), nor a valid CAP or VS ever; CSTS.CFS is the controller's own
//! report of a fatal error. [`check`] reads CSTS (and CAP, VS when CSTS looks wrong) and
//! returns the typed error; [`Health`] remembers a verdict so every queue pair of the
//! controller fails fast afterwards without touching the device again.

use core::sync::atomic::{AtomicU8, Ordering};

use crate::backend::Backend;
use crate::nvme::regs::{ControllerRegs, Csts};
use crate::nvme::{Error, Result};

/// A verdict shared by a controller and its queue pairs.
#[derive(Debug, Default)]
pub(crate) struct Health(AtomicU8);

const ALIVE: u8 = 0;
const GONE_ZEROS: u8 = 1;
const GONE_ONES: u8 = 2;
const FATAL: u8 = 3;

impl Health {
    /// The error a dead controller gives, if a check found it dead.
    #[inline]
    pub(crate) fn get(&self) -> Result<()> {
        match self.0.load(Ordering::Relaxed) {
            ALIVE => Ok(()),
            v => Err(verdict_error(v)),
        }
    }

    /// Records the verdict an error carries (a vanished device or a fatal controller).
    pub(crate) fn record(&self, e: &Error) {
        let v = match *e {
            Error::DeviceGone { value: 0, .. } => GONE_ZEROS,
            Error::DeviceGone { .. } => GONE_ONES,
            Error::Fatal { .. } => FATAL,
            _ => return,
        };
        self.0.store(v, Ordering::Relaxed);
    }
}

fn verdict_error(v: u8) -> Error {
    match v {
        GONE_ZEROS => Error::DeviceGone {
            reg: "CSTS",
            value: 0,
        },
        GONE_ONES => Error::DeviceGone {
            reg: "CSTS",
            value: 0xffff_ffff,
        },
        _ => Error::Fatal { csts: 0 },
    }
}

/// Reads CSTS of an enabled controller: `Ok` while it is ready and not fatal;
/// [`Error::DeviceGone`] for all-ones, or for a not-ready CSTS when CAP or VS read 0 or
/// all-ones; [`Error::Fatal`] for CSTS.CFS; [`Error::NotReady`] for a controller that is
/// there but no longer ready (reset behind the driver's back).
pub(crate) fn check<B: Backend>(regs: &ControllerRegs<'_, B>) -> Result<Csts> {
    let csts = regs.csts()?; // all-ones: DeviceGone
    if csts.cfs() {
        return Err(Error::Fatal { csts: csts.raw() });
    }
    if !csts.rdy() {
        regs.cap()?; // 0 or all-ones: DeviceGone
        regs.vs()?;
        return Err(Error::NotReady { csts: csts.raw() });
    }
    Ok(csts)
}

/// [`check`], remembering a vanished or fatal verdict in `health`.
pub(crate) fn check_into<B: Backend>(
    regs: &ControllerRegs<'_, B>,
    health: &Health,
) -> Result<Csts> {
    check(regs).inspect_err(|e| health.record(e))
}
