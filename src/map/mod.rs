//! Where real mappings come from.

#[cfg(all(feature = "linux", target_os = "linux"))]
pub mod linux;

#[cfg(all(feature = "vfio", target_os = "linux"))]
pub mod vfio;
