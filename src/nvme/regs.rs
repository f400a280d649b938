//! NVMe regs (work in progress).
