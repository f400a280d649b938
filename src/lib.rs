//! Linux `__iomem` semantics as Rust types.
//!
//! Device memory — registers, an NVMe Controller Memory Buffer, a GPU BAR — is not RAM: every
//! access the CPU makes is seen by the device, accesses must have the right width and alignment,
//! and ordering against RAM and other devices takes barriers that differ per architecture. In C,
//! the `__iomem` marker and `sparse` keep code honest. This crate does it with types:
//!
//! - [`IoMem<T>`](IoMem) is a handle to device memory holding a `T`. There is no `Deref`, no
//!   `&T` and no `&[u8]` into device memory; every access is a volatile access of a known width
//!   at a bounds-checked offset, typed through [`zerocopy`] traits.
//! - [`memcpy_toio`], [`memcpy_fromio`] and [`memset_io`] execute [access plans](copy): aligned,
//!   natural-width accesses, never split or widened, up to a [`WidthPolicy`] — by default
//!   exactly the accesses of the kernel's own functions on the architecture
//!   ([`copy::kernel`]).
//! - [`reg`] has register cells whose type states what may be done with the register
//!   (read-only, write-only, pure or side-effecting reads); [`project!`] reaches a field of a
//!   register block without `unsafe` in the caller's crate.
//! - [`order`] names barriers as values and maps them to each architecture's instructions;
//!   a [`Strategy`] decides where they go.
//! - [`backend`] has the real [`Mmio`] backend and a [`MockIo`](backend::MockIo) over RAM that
//!   records every access and barrier, so drivers test with `cargo test`.
//! - [`dma`] is the device's side of memory: [`DmaMem`](dma::DmaMem) over coherent host RAM,
//!   [`DmaAddr`](dma::DmaAddr) from leases on the memory that owns it, and memory lent to a
//!   device never freed under it.
//! - [`publish`], the layer above `IoMem`, has doorbells that publish write-combining data and
//!   locks whose unlock orders MMIO writes (`mmiowb`); [`p2p`] sub-allocates peer-to-peer memory,
//!   [`nvme`] drives NVMe controllers, and [`map`] provides the backends of real mappings.
//!
//! Modules depend only on the layers below them (`tests/layers.rs` checks it): `order`
//! (vocabulary) → `backend` → `copy` → `iomem` → `reg`, `dma` → `publish` → `map` → `p2p` →
//! `nvme`.
//!
//! # Example: a driver against the mock
//!
//! ```
//! use iomem::{backend::MockIo, project, IoMem, WidthPolicy};
//! use zerocopy::{FromBytes, Immutable, IntoBytes};
//!
//! /// A device's register block, laid out as in its datasheet.
//! #[derive(FromBytes, IntoBytes, Immutable)]
//! #[repr(C)]
//! struct Regs {
//!     ctrl: u32,
//!     status: u32,
//!     doorbell: u32,
//!     _rsvd: u32,
//! }
//!
//! let mock = MockIo::new(4096).with_max_width(4); // a device that takes 32-bit accesses only
//! let bar = IoMem::new(&mock).with_policy(WidthPolicy::U32);
//! let regs = bar.cast::<Regs>(0)?;
//! let queue = bar.subslice(0x100..0x140)?; // a 64-byte command slot
//!
//! regs.write32::<0>(1);                   // ctrl, offset checked at compile time
//! queue.copy_from_slice(&[0xa5; 64])?;    // memcpy_toio: sixteen 4-byte writes
//! project!(regs, Regs, doorbell).write(&1);
//!
//! assert_eq!(mock.peek(0x100, 64), vec![0xa5; 64]);
//! assert!(mock.accesses().iter().all(|a| a.width == 4 && a.offset % 4 == 0));
//! mock.assert_no_violations();
//! # Ok::<(), iomem::Error>(())
//! ```
#![no_std]
// PowerPC `asm!` is stable from Rust 1.95; the cross-architecture tests build with 1.85, which
// needs the feature gate (`.ci/xarch/cross-test.sh` sets this cfg for powerpc targets only).
#![cfg_attr(iomem_ppc_asm_gate, feature(asm_experimental_arch))]
#![deny(missing_docs, unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]
// The docs link the items of every feature (mock backend, DMA memory, queues, locks); a build
// without `std` lacks some of them, and its docs keep those names unlinked rather than failing.
// The default and all-features docs are built with broken links denied.
#![cfg_attr(not(feature = "std"), allow(rustdoc::broken_intra_doc_links))]

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(feature = "std")]
extern crate std;

pub mod backend;
pub mod copy;
#[cfg(feature = "alloc")]
pub mod dma;
mod error;
mod iomem;
pub mod map;
#[cfg(feature = "volatile-register")]
pub mod migrate;
#[cfg(feature = "alloc")]
pub mod nvme;
pub mod order;
#[cfg(feature = "alloc")]
pub mod p2p;
pub mod publish;
pub mod reg;
mod sync;

pub use backend::{Backend, Caching, Mmio};
pub use copy::WidthPolicy;
pub use error::{Error, Result};
pub use iomem::{memcpy_fromio, memcpy_toio, memset_io, IoMem};
pub use order::{Arch, Barrier, Strategy};
#[cfg(feature = "std")]
pub use publish::IoLock;
pub use publish::{Doorbell, IoSpinLock};

/// The README's examples are compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
