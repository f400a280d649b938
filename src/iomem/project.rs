//! Field projection: from a handle to a block to a handle to one of its fields, with no
//! reference formed and no `unsafe` in the caller's crate.

use super::IoMem;
use crate::backend::Backend;

impl<'a, T, B: Backend> IoMem<'a, T, B> {
    /// Projects to the field of type `F` at the constant byte offset `OFF` (use the
    /// [`project!`](crate::project) macro rather than calling this directly).
    ///
    /// `_field` exists only so the compiler infers `F` from the real field and checks that the
    /// field exists; it is never called, so no `&T` into device memory is ever made.
    #[doc(hidden)]
    pub fn __project<F, const OFF: usize>(&self, _field: fn(&T) -> &F) -> IoMem<'a, F, B> {
        const {
            assert!(
                OFF + core::mem::size_of::<F>() <= core::mem::size_of::<T>(),
                "field outside the block"
            );
            assert!(
                OFF % core::mem::align_of::<F>() == 0,
                "field is not naturally aligned (packed struct?)"
            );
            // The block is only known to be aligned to its own alignment: a field that needs
            // more (a `u64` in a packed block) could sit at a misaligned device address.
            assert!(
                core::mem::align_of::<F>() <= core::mem::align_of::<T>(),
                "field is more aligned than its block (packed struct?)"
            );
        };
        // The const block put the field inside the `T` and aligned within it; the `T` itself
        // is in range and aligned by the type invariant.
        self.retype(self.offset + OFF, core::mem::size_of::<F>())
    }
}

/// Projects an `IoMem<Block>` handle to one of the block's fields, without ever forming a
/// reference: `project!(regs, Block, field)` is an `IoMem<FieldType>` at `offset_of!(Block,
/// field)`.
///
/// Bounds and alignment of the field are checked at compile time. The expansion contains no
/// `unsafe`, so a driver crate with `#![forbid(unsafe_code)]` can use it.
///
/// ```
/// use iomem::{project, IoMem, backend::MockIo};
/// use zerocopy::{FromBytes, IntoBytes, Immutable};
///
/// #[derive(FromBytes, IntoBytes, Immutable)]
/// #[repr(C)]
/// struct Regs { ctrl: u32, status: u32, data: u64 }
///
/// let mock = MockIo::new(64);
/// let regs = IoMem::new(&mock).cast::<Regs>(0)?;
/// let status = project!(regs, Regs, status);
/// status.write(&0xabcd);
/// assert_eq!(regs.read32::<4>(), 0xabcd);
/// # Ok::<(), iomem::Error>(())
/// ```
#[macro_export]
macro_rules! project {
    ($io:expr, $Block:ty, $field:ident) => {
        // A safe closure that is never called: it names the field (so a typo does not compile)
        // and gives the compiler its type.
        $io.__project::<_, { ::core::mem::offset_of!($Block, $field) }>(|b: &$Block| &b.$field)
    };
}
