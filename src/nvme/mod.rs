//! NVMe: register decode, Controller Memory Buffer discovery and enable, and an SQ ring in the
//! CMB.
//!
//! - [`regs`]: the BAR0 register map, each register declared once, with typed decode and
//!   compile-time-offset access, and doorbell offsets.
//! - [`cmb`]: finding the Controller Memory Buffer, enabling it on NVMe 1.4+, and a
//!   capability-checked allocator over it.
//! - [`sq`]: a submission queue over a ring in the CMB or in host DMA memory.
//! - [`cq`]: a completion queue in host DMA memory (phase tag, `dma_rmb`, batched head
//!   doorbell).
//! - [`status`]: a completion's Status Field, decoded, with the specification's names.
//!
//! Everything here returns [`Result`]: NVMe failures as [`Error`] variants, the core crate's
//! errors wrapped in [`Error::Core`].

pub mod cmb;
pub mod cq;
mod error;
pub mod regs;
pub mod sq;
pub mod status;

pub(crate) use error::invalid;
pub use error::{Error, Result};
pub use status::Status;
