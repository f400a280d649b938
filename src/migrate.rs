//! Migrating from `volatile-register`: keep the register block, stop making references to it.
//!
//! Many existing drivers describe a device's registers with the [`volatile_register`] cells
//! [`RW<T>`], [`RO<T>`] and [`WO<T>`] laid out in a `#[repr(C)]` struct, then cast the device's
//! address to a pointer to that struct and call `read`/`write` on the fields:
//!
//! ```text
//! let uart = 0x0900_0000 as *const Uart;
//! unsafe { (*uart).dr.write(b'A' as u32) }   // creates a `&RW<u32>` into device memory
//! ```
//!
//! # Why that is not sound for real device memory
//!
//! `(*uart).dr` used as `self` of `RW::write` is a Rust reference, `&RW<u32>`, pointing at a
//! device register. The cells make each access volatile, but the reference around them still
//! carries every promise a Rust reference makes, and those promises are false for device memory:
//!
//! - **A reference is dereferenceable.** The language lets the compiler assume that a live
//!   `&T` points at `size_of::<T>()` readable bytes for as long as it lives, so it may read
//!   through it where the source code does not: hoist a load out of a branch or a loop, or
//!   read ahead speculatively. On RAM that is invisible; on a device, a read is an operation —
//!   it pops a receive FIFO, clears an interrupt status, acknowledges an event. Current rustc
//!   happens not to pass that assumption on to LLVM for types containing an `UnsafeCell` (which
//!   `RW` does, through `vcell::VolatileCell`), but that is a choice of today's compiler, not a
//!   rule of the language: nothing guarantees that a reference to a volatile cell is exempt.
//! - **`&mut` claims exclusivity.** A `&mut Block` (which drivers form to express "I own this
//!   peripheral") tells the compiler that nothing else reads or writes those bytes while it
//!   lives — `UnsafeCell` does not weaken that for `&mut`. The device itself does, all the
//!   time: a status register changes because the hardware changed it.
//! - **No barriers.** `RW::write` is a bare volatile store. Volatile orders accesses only against
//!   other volatile accesses, not against ordinary stores to RAM: a DMA descriptor written just
//!   before a doorbell may not be visible to the device when the doorbell write arrives. Linux's
//!   `writel` puts the barrier in (`dmb oshst` on arm64, `fence w,o` on riscv, `sync` on
//!   powerpc); `volatile-register` does not, and neither does anything else on the path.
//! - **Widths are the compiler's choice for bigger `T`.** A volatile access is one instruction
//!   only for primitive types the target can load in one go. `RW<[u32; 4]>`, `RW<SomeStruct>`, or
//!   `RW<u64>` on a 32-bit target are copied with whatever accesses the compiler picks — bytes,
//!   words, a vector load — in whatever order. A device that needs 32-bit accesses sees
//!   something else.
//!
//! # The migration
//!
//! Keep the block definition exactly as it is — field names, types and layout stay — and reach
//! it through an [`IoMem`] handle instead of a reference:
//!
//! 1. create the mapping once (a [`Mmio`](crate::Mmio) over the device's address, with its
//!    `unsafe` constructor and its safety argument — the only `unsafe` left);
//! 2. `IoMem::new(&mmio).cast::<Block>(0)?` gives an `IoMem<Block>`, bounds and alignment checked;
//! 3. [`project!`](crate::project)`(regs, Block, field)` gives an `IoMem<RW<u32>>` (or `RO`, `WO`)
//!    for one register, with its offset and bounds checked at compile time;
//! 4. call [`get`](IoMem::get), [`set`](IoMem::set) or [`modify`](IoMem::modify) on it
//!    (`get_relaxed`/`set_relaxed` for the barrier-free `_relaxed` forms). An array of cells,
//!    `[RW<u32>; 8]`, projects to an `IoMem<[RW<u32>; 8]>`; [`at(i)`](IoMem::at) is the handle to
//!    one of its registers, checked at run time.
//!
//! | `volatile-register`                 | `IoMem`                                        |
//! |-------------------------------------|------------------------------------------------|
//! | `unsafe { (*regs).dr.read() }`      | `project!(regs, Block, dr).get()`              |
//! | `unsafe { (*regs).dr.write(v) }`    | `project!(regs, Block, dr).set(v)`             |
//! | `unsafe { (*regs).cr.modify(f) }`   | `project!(regs, Block, cr).modify(f)`          |
//! | `unsafe { (*regs).iser[i].write(v) }` | `project!(regs, Block, iser).at(i)?.set(v)`  |
//!
//! The `RW`/`RO`/`WO` field types now only describe the layout and what may be done with each
//! register; no value of them is ever created and no reference to one ever exists. The cell's
//! value type may be `u8`, `u16`, `u32` or `u64` ([`RegValue`]); each `get`/`set` is **one**
//! access of exactly that width, at the register's offset, with the barriers of the handle's
//! [`Strategy`](crate::Strategy) (`Conservative` by default: what Linux's `readl`/`writel` emit on
//! the architecture). An `RO` register has no `set` and a `WO` register has no `get`, and the
//! cells are not plain data, so the untyped accessors (`write32::<OFF>`, `try_write32`,
//! `as_bytes`) do not exist on them: writing a read-only register does not compile.
//! [`IoMem::as_bytes_ignoring_permissions`] is the explicit way around a wrong datasheet. New
//! code can use the crate's own cells ([`reg`](crate::reg)), which also tell pure reads from
//! reads with side effects.
//!
//! The methods are named `get`/`set` rather than `read`/`write`: every `IoMem<T>` already has
//! [`read`](IoMem::read)/[`write`](IoMem::write) for [`zerocopy`] types, and methods of the same
//! name for `IoMem<RW<T>>` would overlap them (the compiler must assume `volatile-register` may
//! one day implement zerocopy's traits for its cells).
//!
//! # Example
//!
//! A PL011 UART's first registers, as a `volatile-register` driver declares them, driven through
//! the mock backend (with a real mapping, only the backend changes):
//!
//! ```
//! use iomem::backend::MockIo;
//! use iomem::migrate::{RO, RW, WO};
//! use iomem::{project, IoMem};
//!
//! /// The register block, unchanged from the `volatile-register` driver.
//! #[repr(C)]
//! struct Uart {
//!     dr: RW<u32>,     // 0x00 data
//!     rsr: RW<u32>,    // 0x04 receive status / error clear
//!     _rsvd: [u32; 4], // 0x08..0x18
//!     fr: RO<u32>,     // 0x18 flags
//!     _rsvd2: u32,     // 0x1c
//!     ilpr: RW<u32>,   // 0x20
//!     ibrd: RW<u32>,   // 0x24 integer baud divisor
//!     fbrd: RW<u32>,   // 0x28 fractional baud divisor
//!     lcr_h: RW<u32>,  // 0x2c line control
//!     cr: RW<u32>,     // 0x30 control
//!     ifls: RW<u32>,   // 0x34
//!     imsc: RW<u32>,   // 0x38
//!     ris: RO<u32>,    // 0x3c raw interrupt status
//!     mis: RO<u32>,    // 0x40 masked interrupt status
//!     icr: WO<u32>,    // 0x44 interrupt clear
//! }
//! const FR_TXFF: u32 = 1 << 5;
//! const CR_UARTEN: u32 = 1 << 0;
//! const CR_TXE: u32 = 1 << 8;
//!
//! let mock = MockIo::new(0x1000).with_max_width(4); // the UART takes 32-bit accesses only
//! let uart = IoMem::new(&mock).cast::<Uart>(0)?;
//!
//! // Bring-up: baud divisors, then enable. `modify` is a read followed by a write.
//! project!(uart, Uart, ibrd).set(26);
//! project!(uart, Uart, fbrd).set(3);
//! project!(uart, Uart, cr).modify(|cr| cr | CR_UARTEN | CR_TXE);
//!
//! // Transmit a byte once the FIFO has room.
//! while project!(uart, Uart, fr).get() & FR_TXFF != 0 {}
//! project!(uart, Uart, dr).set(u32::from(b'A'));
//! project!(uart, Uart, icr).set(0x7ff); // clear every interrupt
//!
//! assert_eq!(mock.peek(0x24, 4), 26u32.to_le_bytes());
//! assert_eq!(mock.peek(0x30, 4), (CR_UARTEN | CR_TXE).to_le_bytes());
//! assert_eq!(mock.peek(0x00, 4), u32::from(b'A').to_le_bytes());
//! // Every access was a single aligned 32-bit access: no violations recorded.
//! assert!(mock.accesses().iter().all(|a| a.width == 4));
//! mock.assert_no_violations();
//! # Ok::<(), iomem::Error>(())
//! ```
//!
//! Writing a read-only register does not compile:
//!
//! ```compile_fail
//! # use iomem::{backend::MockIo, migrate::RO, project, IoMem};
//! #[repr(C)]
//! struct Block { status: RO<u32> }
//! let mock = MockIo::new(64);
//! let regs = IoMem::new(&mock).cast::<Block>(0).unwrap();
//! project!(regs, Block, status).set(1);
//! ```

use crate::backend::Backend;
use crate::iomem::{IoMem, Ordered};
pub use crate::reg::RegValue;
use crate::reg::{load, sealed::Cell, store};

pub use volatile_register::{RO, RW, WO};

// The cells are `repr(transparent)` over their value: same size and alignment, so the offsets of
// a block of cells are the offsets of the same block of plain integers.
static_assertions::assert_eq_size!(RW<u8>, u8);
static_assertions::assert_eq_size!(RO<u16>, u16);
static_assertions::assert_eq_size!(WO<u32>, u32);
static_assertions::assert_eq_size!(RW<u64>, u64);
static_assertions::const_assert_eq!(core::mem::align_of::<RW<u32>>(), 4);
static_assertions::const_assert_eq!(
    core::mem::align_of::<RW<u64>>(),
    core::mem::align_of::<u64>()
);

impl<T: RegValue> Cell for RW<T> {
    type Value = T;
}
impl<T: RegValue> Cell for RO<T> {
    type Value = T;
}
impl<T: RegValue> Cell for WO<T> {
    type Value = T;
}

impl<T: RegValue, B: Backend> IoMem<'_, RW<T>, B> {
    /// Reads the register: one access of `T`'s width, with the strategy's read barriers
    /// (`RW::read`).
    #[inline(always)]
    pub fn get(&self) -> T {
        load(self, Ordered::Yes)
    }

    /// Writes the register: one access of `T`'s width, with the strategy's write barrier
    /// (`RW::write`).
    #[inline(always)]
    pub fn set(&self, value: T) {
        store(self, value, Ordered::Yes)
    }

    /// Like [`get`](Self::get) without barriers (Linux `readl_relaxed`): the caller orders.
    #[inline(always)]
    pub fn get_relaxed(&self) -> T {
        load(self, Ordered::Relaxed)
    }

    /// Like [`set`](Self::set) without barriers (Linux `writel_relaxed`): the caller orders.
    #[inline(always)]
    pub fn set_relaxed(&self, value: T) {
        store(self, value, Ordered::Relaxed)
    }

    /// Reads the register, applies `f`, and writes the result (`RW::modify`): two accesses.
    /// Not atomic: neither the device nor another CPU is held off between the read and the
    /// write, exactly as with `volatile-register`.
    #[inline(always)]
    pub fn modify(&self, f: impl FnOnce(T) -> T) {
        self.set(f(self.get()))
    }
}

impl<T: RegValue, B: Backend> IoMem<'_, RO<T>, B> {
    /// Reads the read-only register: one access of `T`'s width, with the strategy's read
    /// barriers (`RO::read`).
    #[inline(always)]
    pub fn get(&self) -> T {
        load(self, Ordered::Yes)
    }

    /// Like [`get`](Self::get) without barriers (Linux `readl_relaxed`): the caller orders.
    #[inline(always)]
    pub fn get_relaxed(&self) -> T {
        load(self, Ordered::Relaxed)
    }
}

impl<T: RegValue, B: Backend> IoMem<'_, WO<T>, B> {
    /// Writes the write-only register: one access of `T`'s width, with the strategy's write
    /// barrier (`WO::write`).
    #[inline(always)]
    pub fn set(&self, value: T) {
        store(self, value, Ordered::Yes)
    }

    /// Like [`set`](Self::set) without barriers (Linux `writel_relaxed`): the caller orders.
    #[inline(always)]
    pub fn set_relaxed(&self, value: T) {
        store(self, value, Ordered::Relaxed)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::backend::mock::{Dir, MockIo};
    use crate::order::{Arch, Barrier};
    use crate::project;

    #[repr(C)]
    struct Block {
        a: RW<u8>,
        _p: u8,
        b: RW<u16>,
        c: RO<u32>,
        d: WO<u64>,
    }

    #[test]
    fn each_access_has_the_cell_width_and_offset() {
        let mock = MockIo::new(64);
        let regs = IoMem::new(&mock).cast::<Block>(16).unwrap();
        mock.poke(16 + 4, &0xdead_beef_u32.to_le_bytes());
        project!(regs, Block, a).set(0x12);
        project!(regs, Block, b).modify(|v| v | 0x0400);
        assert_eq!(project!(regs, Block, c).get(), 0xdead_beef);
        project!(regs, Block, d).set(0x0102_0304_0506_0708);
        let got: std::vec::Vec<_> = mock
            .accesses()
            .iter()
            .map(|a| (a.dir, a.offset, a.width))
            .collect();
        assert_eq!(
            got,
            [
                (Dir::Write, 16, 1),
                (Dir::Read, 18, 2),
                (Dir::Write, 18, 2),
                (Dir::Read, 20, 4),
                (Dir::Write, 24, 8),
            ]
        );
        assert_eq!(mock.peek(16, 1), [0x12]);
        assert_eq!(mock.peek(18, 2), 0x0400u16.to_le_bytes());
        assert_eq!(mock.peek(24, 8), 0x0102_0304_0506_0708u64.to_le_bytes());
    }

    #[test]
    fn arrays_of_cells_and_relaxed_forms() {
        #[repr(C)]
        struct Nvic {
            iser: [RW<u32>; 8],
            _rsvd: [u32; 24],
            icer: [WO<u32>; 8],
        }
        let mock = MockIo::new(0x100).with_arch(Arch::Aarch64);
        let nvic = IoMem::new(&mock).cast::<Nvic>(0).unwrap();
        let iser = project!(nvic, Nvic, iser);
        iser.at(3).unwrap().set(1 << 5);
        project!(nvic, Nvic, icer).at(7).unwrap().set_relaxed(1);
        assert_eq!(iser.at(3).unwrap().get_relaxed(), 1 << 5);
        assert_eq!(
            iser.at(8).map(|_| ()),
            Err(crate::Error::OutOfRange {
                offset: 32,
                len: 4,
                size: 32
            })
        );
        let got: std::vec::Vec<_> = mock
            .accesses()
            .iter()
            .map(|a| (a.dir, a.offset, a.width))
            .collect();
        assert_eq!(
            got,
            [
                (Dir::Write, 12, 4),
                (Dir::Write, 0x80 + 28, 4),
                (Dir::Read, 12, 4)
            ]
        );
        // Only the non-relaxed `set` carried a barrier.
        assert_eq!(mock.barriers(), [Barrier::IoBeforeWrite]);
    }

    #[test]
    fn strategy_barriers_surround_each_access() {
        let mock = MockIo::new(64).with_arch(Arch::Aarch64);
        let regs = IoMem::new(&mock).cast::<Block>(0).unwrap();
        project!(regs, Block, c).get();
        project!(regs, Block, d).set(1);
        assert_eq!(
            mock.barriers(),
            [
                Barrier::IoBeforeRead,
                Barrier::IoAfterRead,
                Barrier::IoBeforeWrite
            ]
        );
    }
}
