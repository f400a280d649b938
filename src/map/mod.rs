//! Where real mappings come from.

#[cfg(all(feature = "linux", target_os = "linux"))]
pub mod linux;
