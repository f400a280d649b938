//! NVMe cmb (work in progress).
