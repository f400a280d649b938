//! NVMe sq (work in progress).
