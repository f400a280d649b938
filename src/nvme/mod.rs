//! NVMe: register decode, Controller Memory Buffer discovery and enable, and an SQ ring in the
//! CMB.

pub mod cmb;
pub mod regs;
pub mod sq;
