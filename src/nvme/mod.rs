//! NVMe: register decode, Controller Memory Buffer discovery and enable, and an SQ ring in the
//! CMB.
//!
//! - [`regs`]: the BAR0 register map, each register declared once, with typed decode and
//!   compile-time-offset access, and doorbell offsets.
//! - [`cmb`]: finding the Controller Memory Buffer, enabling it on NVMe 1.4+, and a
//!   capability-checked allocator over it.
//! - [`pmr`]: the Persistent Memory Region: discovery, enable (PMRCTL, PMRMSC), the PMRSTS
//!   flush, and an allocator gated by RDS/WDS.
//! - [`sq`]: a submission queue over a ring in the CMB or in host DMA memory.
//! - [`cq`]: a completion queue in host DMA memory (phase tag, `dma_rmb`, batched head
//!   doorbell).
//! - [`status`]: a completion's Status Field, decoded, with the specification's names.
//! - [`ctrl`] (feature `std`): an owned controller (bring-up, admin commands, shutdown) and
//!   its I/O queue pairs, with deadlines and vanished-device checks on every wait.
//! - `model` (feature `model`): a model NVMe controller that drivers and tests run against.
//! - [`cmd`]: typed commands ([`cmd::admin`], [`cmd::nvm`]) and what they lend the device.
//! - [`prp`]: data pointers (PRP entries and lists) and the CMB data pointer rule.
//! - [`identify`]: the Identify data structures, decoded.
//!
//! Everything here returns [`Result`]: NVMe failures as [`Error`] variants, the core crate's
//! errors wrapped in [`Error::Core`].

mod bar;
pub mod cmb;
pub mod cmd;
pub mod cq;
#[cfg(feature = "std")]
pub mod ctrl;
mod error;
pub mod identify;
#[cfg(feature = "model")]
pub mod model;
pub mod pmr;
pub mod prp;
pub mod regs;
pub mod sq;
pub mod status;

pub(crate) use error::invalid;
pub use error::{Error, Result};
pub use status::Status;

/// The bytes a queue ring of `entries` entries of `entry_size` bytes needs, checked: `entries`
/// from 2 to CAP.MQES + 1 (`what` names the queue kind in the error), and the ring at least
/// that long.
pub(crate) fn ring_bytes(
    what: &'static str,
    entries: u32,
    entry_size: usize,
    ring_len: usize,
    cap: regs::Cap,
) -> Result<usize> {
    if entries < 2 || entries > cap.max_queue_entries() {
        return Err(invalid(what));
    }
    // CAST: `entries` ≤ CAP.MQES + 1 ≤ 65536 (checked above), so the product is at most 4 MiB.
    let need = entries as usize * entry_size;
    if ring_len < need {
        return Err(crate::Error::OutOfRange {
            offset: 0,
            len: need,
            size: ring_len,
        }
        .into());
    }
    Ok(need)
}
