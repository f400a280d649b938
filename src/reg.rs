//! Register cells: what may be done with a register, stated in its type.
//!
//! A device's register block is a `#[repr(C)]` struct whose fields are cells:
//!
//! | cell | read | write | a read has side effects |
//! |---|---|---|---|
//! | [`ReadPure<T>`] | yes | — | no (a status, a capability) |
//! | [`ReadOnly<T>`] | yes | — | may (a FIFO pop, clear-on-read) |
//! | [`WriteOnly<T>`] | — | yes | — |
//! | [`ReadWrite<T>`] | yes | yes | may |
//! | [`ReadPureWrite<T>`] | yes | yes | no |
//!
//! A handle to a cell (`IoMem<ReadOnly<u32>>`, from [`project!`](crate::project)) has exactly the
//! methods its permissions allow: `read`/`read_relaxed` where it may be read, `write`/
//! `write_relaxed` where it may be written, `modify` where both. Cells are not plain data, so the
//! untyped accessors of [`IoMem`] (`write32::<OFF>`, `try_write32`, `as_bytes`, …) do not exist on
//! them either: writing a read-only register or reading a write-only one does not compile. When
//! a datasheet is wrong, [`IoMem::as_bytes_ignoring_permissions`] is the explicit way around.
//!
//! [`IoMem::poll`] re-reads a register until a condition holds; it takes only pure-read cells,
//! because re-reading a register whose read has side effects would consume what it reports.
//!
//! Cells hold `u8`, `u16`, `u32` or `u64` ([`RegValue`]): each access is **one** access of exactly
//! that width at the register's offset, with the barriers of the handle's
//! [`Strategy`](crate::Strategy). No value of a cell is ever created and no reference to one
//! exists: the types only describe the layout and the permissions (the model is safe-mmio's
//! `ReadOnly`/`ReadPure`/`WriteOnly`/`ReadWrite`/`ReadPureWrite`).
//!
//! ```
//! use iomem::reg::{ReadOnly, ReadPure, ReadWrite, WriteOnly};
//! use iomem::{backend::MockIo, project, IoMem};
//!
//! #[repr(C)]
//! struct Uart {
//!     data: ReadWrite<u32>,   // 0x00
//!     status: ReadPure<u32>,  // 0x04
//!     rx_pop: ReadOnly<u32>,  // 0x08: reading it pops the receive FIFO
//!     irq_clear: WriteOnly<u32>, // 0x0c
//! }
//!
//! let mock = MockIo::new(64);
//! let uart = IoMem::new(&mock).cast::<Uart>(0)?;
//! project!(uart, Uart, data).write(0x41);
//! project!(uart, Uart, irq_clear).write(1);
//! let ready = project!(uart, Uart, status).poll(|s| s & 1 == 0, || false);
//! assert_eq!(ready, Some(0));
//! assert_eq!(project!(uart, Uart, rx_pop).read(), 0);
//! assert_eq!(mock.peek(0, 4), 0x41u32.to_le_bytes());
//! # Ok::<(), iomem::Error>(())
//! ```
//!
//! A read-only register has no `write`:
//!
//! ```compile_fail
//! # use iomem::{backend::MockIo, project, reg::ReadPure, IoMem};
//! #[repr(C)]
//! struct Block { status: ReadPure<u32> }
//! let mock = MockIo::new(64);
//! let regs = IoMem::new(&mock).cast::<Block>(0).unwrap();
//! project!(regs, Block, status).write(1);
//! ```

use crate::backend::{Backend, Word};
use crate::iomem::{IoMem, Ordered};

pub(crate) mod sealed {
    /// A register value type.
    pub trait Value {}
    /// A cell type holding one register of `Value`.
    pub trait Cell {
        type Value: super::RegValue;
    }
}

/// The value types a register cell may hold: `u8`, `u16`, `u32` and `u64` (the widths a device
/// register has and a CPU accesses in one instruction). Sealed.
pub trait RegValue: sealed::Value + Word {}

macro_rules! reg_value {
    ($($t:ty),*) => {$(
        impl sealed::Value for $t {}
        impl RegValue for $t {}
        // One access of the value's width at the cell's offset needs the value aligned to its
        // width: true of these types on every 64-bit target.
        static_assertions::const_assert_eq!(core::mem::align_of::<$t>(), core::mem::size_of::<$t>());
    )*};
}
reg_value!(u8, u16, u32, u64);

/// The register cells whose reads have no side effects ([`ReadPure`], [`ReadPureWrite`]):
/// what [`IoMem::poll`] takes.
pub trait PureRead: sealed::Cell {}

macro_rules! cells {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        #[repr(transparent)]
        pub struct $name<T: RegValue>(
            // Never constructed or read: the type describes a register's layout and permissions.
            #[allow(dead_code)] T,
        );
        impl<T: RegValue> sealed::Cell for $name<T> {
            type Value = T;
        }
        static_assertions::assert_eq_size!($name<u64>, u64);
        static_assertions::const_assert_eq!(core::mem::align_of::<$name<u32>>(), 4);
    )*};
}

cells! {
    /// A read-only register whose reads may have side effects (a FIFO, clear-on-read status).
    ReadOnly;
    /// A read-only register whose reads have no side effects.
    ReadPure;
    /// A write-only register.
    WriteOnly;
    /// A read-write register whose reads may have side effects.
    ReadWrite;
    /// A read-write register whose reads have no side effects.
    ReadPureWrite;
}

impl<T: RegValue> PureRead for ReadPure<T> {}
impl<T: RegValue> PureRead for ReadPureWrite<T> {}

/// One read of the register a handle to cell `C` covers.
#[inline(always)]
pub(crate) fn load<C: sealed::Cell, B: Backend>(
    io: &IoMem<'_, C, B>,
    ordered: Ordered,
) -> C::Value {
    const {
        assert!(core::mem::size_of::<C>() == <C::Value as Word>::WIDTH);
        assert!(core::mem::align_of::<C>() == <C::Value as Word>::WIDTH);
    };
    // SAFETY: by the type invariant the handle covers one `C` — `WIDTH` bytes in bounds, at an
    // offset aligned to `align_of::<C>()` (= WIDTH, checked above) with `align_of::<C>() <=
    // base_align`. So the access is aligned, in bounds and within the base alignment.
    unsafe { io.read_one::<C::Value>(io.offset(), ordered) }
}

/// One write of the register a handle to cell `C` covers.
#[inline(always)]
pub(crate) fn store<C: sealed::Cell, B: Backend>(
    io: &IoMem<'_, C, B>,
    value: C::Value,
    ordered: Ordered,
) {
    const {
        assert!(core::mem::size_of::<C>() == <C::Value as Word>::WIDTH);
        assert!(core::mem::align_of::<C>() == <C::Value as Word>::WIDTH);
    };
    // SAFETY: as in `load`.
    unsafe { io.write_one::<C::Value>(io.offset(), value, ordered) }
}

macro_rules! readable {
    ($($cell:ident),*) => {$(
        impl<T: RegValue, B: Backend> IoMem<'_, $cell<T>, B> {
            /// Reads the register: one access of `T`'s width, with the strategy's read barriers
            /// (`readl`).
            #[inline(always)]
            pub fn read(&self) -> T {
                load(self, Ordered::Yes)
            }

            /// Like [`read`](Self::read) without barriers (`readl_relaxed`): the caller orders.
            #[inline(always)]
            pub fn read_relaxed(&self) -> T {
                load(self, Ordered::Relaxed)
            }
        }
    )*};
}

macro_rules! writable {
    ($($cell:ident),*) => {$(
        impl<T: RegValue, B: Backend> IoMem<'_, $cell<T>, B> {
            /// Writes the register: one access of `T`'s width, with the strategy's write barrier
            /// (`writel`).
            #[inline(always)]
            pub fn write(&self, value: T) {
                store(self, value, Ordered::Yes)
            }

            /// Like [`write`](Self::write) without barriers (`writel_relaxed`): the caller orders.
            #[inline(always)]
            pub fn write_relaxed(&self, value: T) {
                store(self, value, Ordered::Relaxed)
            }
        }
    )*};
}

macro_rules! modifiable {
    ($($cell:ident),*) => {$(
        impl<T: RegValue, B: Backend> IoMem<'_, $cell<T>, B> {
            /// Reads the register, applies `f`, and writes the result: two accesses. Not atomic:
            /// neither the device nor another CPU is held off between the read and the write.
            #[inline(always)]
            pub fn modify(&self, f: impl FnOnce(T) -> T) {
                self.write(f(self.read()))
            }
        }
    )*};
}

readable!(ReadOnly, ReadPure, ReadWrite, ReadPureWrite);
writable!(WriteOnly, ReadWrite, ReadPureWrite);
modifiable!(ReadWrite, ReadPureWrite);

impl<C: PureRead, B: Backend> IoMem<'_, C, B> {
    /// Reads the register (with `readl`'s barriers) until `done(value)` holds, and returns that
    /// value; `None` once `give_up()` says so (a deadline, a retry count), checked after every
    /// read that was not done.
    ///
    /// Only for pure-read cells: a register whose read has a side effect must not be re-read in
    /// a loop.
    pub fn poll(
        &self,
        mut done: impl FnMut(C::Value) -> bool,
        mut give_up: impl FnMut() -> bool,
    ) -> Option<C::Value> {
        loop {
            let v = load(self, Ordered::Yes);
            if done(v) {
                return Some(v);
            }
            if give_up() {
                return None;
            }
            core::hint::spin_loop();
        }
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
        a: ReadWrite<u8>,
        _p: u8,
        b: ReadPureWrite<u16>,
        c: ReadPure<u32>,
        d: WriteOnly<u64>,
        e: ReadOnly<u32>,
    }

    #[test]
    fn each_access_has_the_cell_width_and_offset() {
        let mock = MockIo::new(64).with_arch(Arch::Aarch64);
        let regs = IoMem::new(&mock).cast::<Block>(16).unwrap();
        mock.poke(16 + 4, &0xdead_beef_u32.to_le_bytes());
        project!(regs, Block, a).write(0x12);
        project!(regs, Block, b).modify(|v| v | 0x0400);
        assert_eq!(project!(regs, Block, c).read(), 0xdead_beef);
        project!(regs, Block, d).write_relaxed(0x0102_0304_0506_0708);
        assert_eq!(project!(regs, Block, e).read_relaxed(), 0);
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
                (Dir::Read, 32, 4),
            ]
        );
        assert_eq!(mock.peek(18, 2), 0x0400u16.to_le_bytes());
        use Barrier::*;
        // Only the relaxed forms went without barriers.
        assert_eq!(
            mock.barriers(),
            [
                IoBeforeWrite,
                IoBeforeRead,
                IoAfterRead,
                IoBeforeWrite,
                IoBeforeRead,
                IoAfterRead
            ]
        );
    }

    #[test]
    fn poll_stops_when_done_or_given_up() {
        let mock = MockIo::new(64);
        let regs = IoMem::new(&mock).cast::<Block>(0).unwrap();
        let c = project!(regs, Block, c);
        mock.poke(4, &7u32.to_le_bytes());
        assert_eq!(c.poll(|v| v == 7, || true), Some(7));
        let mut tries = 0;
        assert_eq!(
            c.poll(
                |v| v == 8,
                || {
                    tries += 1;
                    tries == 3
                }
            ),
            None
        );
        assert_eq!(
            mock.reads().len(),
            4,
            "one read, then three before giving up"
        );
    }
}
