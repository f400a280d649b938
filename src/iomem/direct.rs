//! 64-byte direct stores through a handle: one non-torn write of a 64-byte command or
//! descriptor where the CPU has one (x86 `MOVDIR64B`), else the handle's own copy.

use super::access::Ordered;
use super::IoMem;
use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::order::Op;

impl<B: Backend> IoMem<'_, [u8], B> {
    /// Whether [`write_direct64`](Self::write_direct64) through this handle is one direct store:
    /// the backend has them ([`Backend::has_direct64`]: the CPU has `MOVDIR64B`, or a mock
    /// simulates it) and the handle's policy is [`WidthPolicy::MEMORY_LIKE`](crate::WidthPolicy::MEMORY_LIKE)
    /// (a handle limited to narrower accesses — a device that takes 32-bit accesses only —
    /// never gets a 64-byte write).
    #[inline(always)]
    pub fn has_direct64(&self) -> bool {
        self.policy.is_memory_like() && self.backend.has_direct64()
    }

    /// Writes `data` at byte `offset` of this handle as one non-torn 64-byte write — a direct
    /// store (x86 `MOVDIR64B`, as Linux's `iosubmit_cmds512()`) where
    /// [`has_direct64`](Self::has_direct64) — and otherwise as [`memcpy_toio`](crate::memcpy_toio)
    /// of the 64 bytes under the handle's [`WidthPolicy`](crate::WidthPolicy) (with
    /// [`WidthPolicy::MEMORY_LIKE`](crate::WidthPolicy::MEMORY_LIKE), the accesses of the
    /// build's inline width, 16 bytes on a default x86_64 build: 64 bytes is a short copy,
    /// [`SHORT_COPY`](crate::copy::SHORT_COPY); with a narrower policy, its accesses only). The
    /// strategy's copy barriers surround it as they surround a copy.
    ///
    /// A direct store is weakly ordered on every mapping: publish it to the device with a
    /// [`Barrier::WcFlush`](crate::Barrier::WcFlush) before the doorbell, as a
    /// [`Doorbell`](crate::Doorbell) naming write-combining data does (the CMB submission queue
    /// does this itself).
    ///
    /// [`Error::OutOfRange`] if the 64 bytes are not inside the handle;
    /// [`Error::Misaligned`] unless the address is 64-aligned (the instruction's rule, kept on
    /// every CPU so a driver's layout does not depend on it).
    ///
    /// ```
    /// use iomem::backend::MockIo;
    /// use iomem::{IoMem, WidthPolicy};
    ///
    /// let cmd = [0xa5u8; 64];
    /// // A CPU with MOVDIR64B: one 64-byte write, marked as a direct store.
    /// let mock = MockIo::new(4096).with_direct64(true);
    /// IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE).write_direct64(128, &cmd)?;
    /// let w = mock.writes();
    /// assert_eq!((w.len(), w[0].offset, w[0].width, w[0].direct), (1, 128, 64, true));
    ///
    /// // Without it: the handle's plan (here at most 16-byte accesses).
    /// let mock = MockIo::new(4096);
    /// let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE.clamped(16));
    /// io.write_direct64(128, &cmd)?;
    /// assert!(mock.writes().iter().all(|a| a.width == 16 && !a.direct));
    /// assert_eq!(mock.peek(128, 64), cmd);
    /// # Ok::<(), iomem::Error>(())
    /// ```
    pub fn write_direct64(&self, offset: usize, data: &[u8; 64]) -> Result<()> {
        let abs = self.check(offset, 64)?;
        if abs % 64 != 0 || self.backend.base_align() < 64 {
            return Err(Error::Misaligned {
                offset: abs,
                align: 64,
            });
        }
        if !self.has_direct64() {
            return self.subslice(offset..offset + 64)?.copy_from_slice(data);
        }
        let pl = self.placement(Op::CopyTo, Ordered::Yes);
        if let Some(b) = pl.before {
            self.backend.barrier(b);
        }
        // SAFETY: `abs` is 64-aligned, its 64 bytes are in bounds (checked), the base is
        // 64-aligned, and the backend has direct stores (asked above).
        unsafe { self.backend.write_direct64(abs, data) };
        // As a one-access copy: the per-access barrier, then the one after the copy.
        for b in [pl.each, pl.after].into_iter().flatten() {
            self.backend.barrier(b);
        }
        Ok(())
    }
}
