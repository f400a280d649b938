//! Publishing writes to a device: doorbells and locks, the layer above [`IoMem`](crate::IoMem).
//!
//! - [`Doorbell`] and [`Submission`] ring a device with the barrier its data needs, including the
//!   write-combining flush when the data lives in another, write-combining mapping than the
//!   doorbell register ([`doorbell`]).
//! - [`IoLock`] is a mutex whose unlock orders the MMIO writes of its critical section
//!   (`mmiowb`), paying only when there were any ([`lock`]).
//!
//! Both use the barrier vocabulary of [`order`](crate::order) and the accesses of
//! [`IoMem`](crate::IoMem); nothing below this module knows about them.

pub mod doorbell;
pub mod lock;

pub use doorbell::{Doorbell, Published, Submission};
#[cfg(feature = "std")]
pub use lock::IoLock;
pub use lock::{IoGuard, IoSpinLock, SpinGuard, Tracked};
