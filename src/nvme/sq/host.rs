//! [`HostSqRing`]: a submission queue ring in coherent host memory, written with plain 64-bit
//! stores straight to its backend.

use crate::backend::{Backend, Caching};
use crate::dma::{DmaAddr, DmaRegion, Lease};
use crate::nvme::regs::SQ_ENTRY_SIZE;
use crate::nvme::Result;
use crate::order::Strategy;

use super::{Command, SqRing};

/// A submission queue ring in coherent host memory, lent to the controller for as long as the
/// ring lives: dropping it quarantines the memory (see [`dma::region`](crate::dma::region)), so
/// a controller still fetching commands never reads reused memory.
///
/// # Invariant
/// `base` is the region's absolute offset in its backend (`DmaRegion::raw_parts`) and `len`
/// its length; `base % 8 == 0` and the backend's `base_align() >= 8` (checked by the
/// constructor). With the region's own invariant (`base + len <= backend.size()`), every `u64`
/// at `base + off` with `off % 8 == 0` and `off + 8 <= len` is a valid target of
/// `Backend::write::<u64>`, for as long as the ring holds the region.
pub struct HostSqRing<B: Backend + Send + Sync + 'static> {
    region: DmaRegion<B>,
    lease: Lease<B>,
    addr: DmaAddr,
    base: usize,
    len: usize,
}

impl<B: Backend + Send + Sync + 'static> core::fmt::Debug for HostSqRing<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("HostSqRing")
            .field("len", &self.region.len())
            .field("addr", &self.addr)
            .finish()
    }
}

impl<B: Backend + Send + Sync + 'static> HostSqRing<B> {
    /// A ring over `region`, which must be one run of device addresses: the queue is created
    /// physically contiguous (PC = 1; QEMU and controllers with CAP.CQR require it).
    /// [`NotContiguous`](crate::Error::NotContiguous) otherwise — allocate it with
    /// [`DmaProvider::alloc_contiguous`](crate::dma::DmaProvider::alloc_contiguous) (huge pages
    /// on Linux without an IOMMU).
    ///
    /// [`Misaligned`](crate::Error::Misaligned) if the region's memory is not 8-aligned (its
    /// entries are written as 64-bit stores).
    pub fn new(region: DmaRegion<B>) -> Result<Self> {
        let (backend, base) = region.raw_parts();
        if base % 8 != 0 || backend.base_align() < 8 {
            return Err(crate::Error::Misaligned {
                offset: base,
                align: 8,
            }
            .into());
        }
        let len = region.len();
        let lease = region.lease();
        let addr = lease.range(0..len)?;
        Ok(HostSqRing {
            region,
            lease,
            addr,
            base,
            len,
        })
    }

    /// The error the checked handle gives for an entry at byte `off` that is out of the ring or
    /// not 8-aligned (what [`write_command`](SqRing::write_command) rejects).
    #[cold]
    #[inline(never)]
    fn slot_error(&self, off: usize) -> crate::Error {
        match self.region.mem().cast::<[u64; SQ_ENTRY_SIZE / 8]>(off) {
            Err(e) => e,
            Ok(_) => crate::Error::InvalidArgument("submission queue entry outside the ring"),
        }
    }

    /// The ring's memory, lent to the controller.
    pub fn lease(&self) -> &Lease<B> {
        &self.lease
    }
}

impl<B: Backend + Send + Sync + 'static> SqRing for HostSqRing<B> {
    fn len(&self) -> usize {
        self.region.len()
    }
    fn dma_addr(&self) -> DmaAddr {
        self.addr
    }
    fn caching(&self) -> Caching {
        Caching::Cacheable
    }
    fn strategy(&self) -> Strategy {
        Strategy::default()
    }
    fn write_entry(&self, off: usize, entry: &[u8], _strategy: Strategy) -> crate::Result<()> {
        // A plain copy: the doorbell's barrier publishes it. (Whole commands take
        // `write_command`'s eight 64-bit stores.)
        let end = off.checked_add(entry.len()).ok_or(crate::Error::Overflow {
            offset: off,
            len: entry.len(),
        })?;
        self.region.mem().subslice(off..end)?.copy_from_slice(entry)
    }
    #[inline]
    fn write_command(&self, off: usize, cmd: &Command, _strategy: Strategy) -> crate::Result<()> {
        // Eight aligned 64-bit stores of the wire words (no bytes staged), straight to the
        // backend: the slot is checked against the ring, the ring was checked once.
        let end = off.wrapping_add(SQ_ENTRY_SIZE);
        if off % 8 != 0 || end < off || end > self.len {
            return Err(self.slot_error(off));
        }
        let (backend, _) = self.region.raw_parts();
        // SAFETY: `off` is 8-aligned and `off + 64 <= len` (checked above), so with the
        // invariant (`base` 8-aligned, `base + len` inside the backend, base alignment ≥ 8)
        // each of the eight words at `base + off` is an aligned, in-bounds `u64`.
        unsafe { write_qwords(backend, self.base + off, &cmd.wire_qwords()) };
        Ok(())
    }
    #[inline(always)]
    unsafe fn write_command_in_ring(
        &self,
        off: usize,
        cmd: &Command,
        _strategy: Strategy,
    ) -> crate::Result<()> {
        let (backend, _) = self.region.raw_parts();
        // SAFETY: `off % 64 == 0` and `off + 64 <= len` (the caller's contract), so with the
        // invariant (`base` 8-aligned, `base + len` inside the backend, base alignment ≥ 8)
        // each of the eight words at `base + off` is an aligned, in-bounds `u64`.
        unsafe { write_qwords(backend, self.base + off, &cmd.wire_qwords()) };
        Ok(())
    }
    unsafe fn retire(self) {
        // SAFETY: the caller guarantees the controller no longer reads the ring.
        unsafe { self.lease.complete() };
    }
    fn abandon(self) {
        // The lease, dropped uncompleted, quarantines the ring.
        drop(self);
    }
}

/// Writes the eight words `q` of an entry at byte `abs` of `backend`, in order, one `u64` store
/// each, with no barriers (host RAM: the doorbell publishes them). The backend is a parameter
/// rather than reached through a field, so the compiler knows the stores do not change it and
/// reads its base once for the whole entry.
///
/// # Safety
/// `abs % 8 == 0`, `abs + 64 <= backend.size()` and `backend.base_align() >= 8`.
#[inline(always)]
unsafe fn write_qwords<B: Backend>(backend: &B, abs: usize, q: &[u64; SQ_ENTRY_SIZE / 8]) {
    for (k, &w) in q.iter().enumerate() {
        // SAFETY: word `k` of the caller's 8-aligned, in-bounds 64 bytes.
        unsafe { backend.write::<u64>(abs + 8 * k, w) };
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use alloc::boxed::Box;
    use alloc::sync::Arc;

    use super::*;
    use crate::backend::MockIo;
    use crate::dma::region::AddrMap;
    use crate::dma::Quarantine;

    /// A region of `len` bytes at byte `offset` of a fresh cacheable mock (kept in `.0`).
    pub(crate) fn region_at(offset: usize, len: usize) -> (Arc<MockIo>, DmaRegion<Arc<MockIo>>) {
        let io = Arc::new(MockIo::new(offset + len).with_caching(Caching::Cacheable));
        // SAFETY: the mock's bytes are used by nothing else, and no device reaches the made-up
        // addresses.
        let region = unsafe {
            DmaRegion::from_parts(
                io.clone(),
                offset,
                len,
                AddrMap::Contiguous(0x10_0000),
                Arc::new(Quarantine::default()),
                Box::new(()),
            )
        };
        (io, region.expect("a region inside the mock"))
    }

    #[test]
    fn a_ring_not_8_aligned_is_refused_once() {
        let (_, region) = region_at(4, 1024);
        assert!(matches!(
            HostSqRing::new(region),
            Err(crate::nvme::Error::Core(crate::Error::Misaligned {
                offset: 4,
                align: 8
            }))
        ));
    }

    #[test]
    fn entries_land_at_the_rings_offset_and_bad_slots_are_refused() {
        let (io, region) = region_at(8, 256);
        let ring = HostSqRing::new(region).expect("8-aligned");
        let cmd = crate::nvme::cmd::nvm::flush(7);
        ring.write_command(64, &cmd, Strategy::default())
            .expect("slot 1");
        assert_eq!(io.peek(8 + 64, 64), cmd.to_bytes());
        assert_eq!(io.peek(8, 64), [0; 64]);
        assert!(matches!(
            ring.write_command(256 - 32, &cmd, Strategy::default()),
            Err(crate::Error::OutOfRange {
                len: 64,
                size: 256,
                ..
            })
        ));
        assert!(matches!(
            ring.write_command(usize::MAX - 8, &cmd, Strategy::default()),
            Err(crate::Error::Overflow { .. })
        ));
        assert!(matches!(
            ring.write_command(4, &cmd, Strategy::default()),
            Err(crate::Error::Misaligned {
                offset: 12,
                align: 8
            })
        ));
        // SAFETY: no controller reads this ring (a mock nobody fetches from); retiring it gives
        // the memory back instead of quarantining it for the process's life.
        unsafe { ring.retire() };
    }
}
