//! The model NVMe controller (`nvme::model`), driven by hand: registers written through
//! `IoMem`, submission entries built as raw bytes in `MockDma` memory, doorbells rung, and
//! completion entries read back as bytes.
#![cfg(feature = "model")]

mod admin;
mod cmb;
mod faults;
mod io;
mod regs;
mod rig;
