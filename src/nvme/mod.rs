//! NVMe: register decode, Controller Memory Buffer discovery and enable, and an SQ ring in the
//! CMB.
//!
//! - [`regs`]: the BAR0 register map, typed decode of CAP, VS, CC, CSTS, AQA, ASQ, ACQ, CMBLOC,
//!   CMBSZ, CMBMSC and CMBSTS, and doorbell offsets.
//! - [`cmb`]: finding the Controller Memory Buffer, enabling it on NVMe 1.4+, and a
//!   capability-checked allocator over it.
//! - [`sq`]: a submission queue ring that lives in the CMB.

pub mod cmb;
pub mod regs;
pub mod sq;
