//! Doorbells that cannot forget to publish write-combining data.
//!
//! A device is told about new work by a doorbell: one MMIO write (an NVMe submission queue tail,
//! a NIC's producer index). Everything the device will read because of it — commands in RAM, in
//! uncached device memory, or in a write-combining (WC) mapping such as an NVMe Controller Memory
//! Buffer — must be visible to the device before the doorbell is.
//!
//! The trap: the doorbell usually lives in an uncached BAR (BAR0 registers) while the data lives
//! in a WC mapping of another BAR. Looking at the doorbell's own mapping, nothing needs flushing —
//! yet on x86 the data may still sit in a write-combining buffer when the uncached doorbell
//! store reaches the device. A [`Doorbell`] therefore never rings without being told which
//! regions hold the data it publishes:
//!
//! - [`Doorbell::submission`] starts a [`Submission`]: every copy goes through it
//!   ([`Submission::copy`], [`Submission::write_direct64`]), so it knows whether any
//!   destination is write-combining or took a 64-byte direct store (weakly ordered on every
//!   mapping), and [`Submission::ring`] issues [`Barrier::WcFlush`](crate::Barrier::WcFlush)
//!   if so;
//! - [`Doorbell::ring`] takes the published regions as a required argument (`&[]` states that
//!   all data is in RAM or uncached memory).
//!
//! The barrier itself is [`Strategy::doorbell_barrier`]: one barrier per ring, whatever the
//! number of commands, under `Conservative` and `Batched`; none under `Relaxed`.

use crate::backend::{Backend, Caching, Mmio};
use crate::error::Result;
use crate::order::Strategy;
use crate::IoMem;

/// Something a doorbell publishes: a region of device memory (any [`IoMem`] handle), or a bare
/// [`Caching`] for data written some other way.
pub trait Published {
    /// How the region is mapped.
    fn caching(&self) -> Caching;

    /// Whether stores to the region may still be in flight, unordered, when a later uncached
    /// store leaves the CPU: write-combining stores, and 64-byte direct stores
    /// ([`IoMem::write_direct64`]) on any mapping. A doorbell flushes them
    /// ([`Barrier::WcFlush`](crate::Barrier::WcFlush)).
    fn weakly_ordered(&self) -> bool {
        self.caching() == Caching::WriteCombining
    }
}

impl<T: ?Sized, B: Backend> Published for IoMem<'_, T, B> {
    fn caching(&self) -> Caching {
        IoMem::caching(self)
    }
    /// Write-combining, or a handle through which [`IoMem::write_direct64`] makes direct stores
    /// (memory-like, on a CPU with `MOVDIR64B`).
    fn weakly_ordered(&self) -> bool {
        IoMem::caching(self) == Caching::WriteCombining
            || (self.policy().is_memory_like() && self.backend().has_direct64())
    }
}

impl Published for Caching {
    fn caching(&self) -> Caching {
        *self
    }
}

/// A 32-bit doorbell register and the strategy it rings with.
///
/// ```
/// use iomem::{backend::MockIo, order::{Arch, Strategy}, publish::Doorbell, Caching, IoMem};
///
/// let bar0 = MockIo::new(0x1000).with_arch(Arch::X86_64);           // registers, uncached
/// let cmb = MockIo::new(0x1000).with_arch(Arch::X86_64)
///     .with_caching(Caching::WriteCombining);                        // command buffer
/// let db = Doorbell::new(IoMem::new(&bar0).cast::<u32>(0x1000 - 4)?);
/// let slot = IoMem::new(&cmb).subslice(0..64)?;
///
/// let mut sub = db.submission();
/// sub.copy(&slot, &[0x5a; 64])?;
/// sub.ring(1);
/// assert_eq!(bar0.instructions(), ["sfence"]); // the WC data was flushed before the doorbell
/// # Ok::<(), iomem::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Doorbell<'a, B: Backend = Mmio> {
    reg: IoMem<'a, u32, B>,
    strategy: Strategy,
}

impl<'a, B: Backend> Doorbell<'a, B> {
    /// A doorbell at `reg`, ringing with `reg`'s strategy.
    pub fn new(reg: IoMem<'a, u32, B>) -> Self {
        Doorbell {
            strategy: reg.strategy(),
            reg,
        }
    }

    /// The same doorbell with another strategy (for its barrier and for the copies of its
    /// submissions).
    pub fn with_strategy(self, strategy: Strategy) -> Self {
        Doorbell { strategy, ..self }
    }

    /// The strategy this doorbell rings with.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// The doorbell register.
    pub fn register(&self) -> IoMem<'a, u32, B> {
        self.reg
    }

    /// Starts a submission: copies made through it are published by its
    /// [`ring`](Submission::ring).
    pub fn submission(&self) -> Submission<'_, 'a, B> {
        Submission {
            doorbell: self,
            write_combining: false,
            commands: 0,
        }
    }

    /// Writes `value` to the doorbell after the barrier that publishes every earlier store,
    /// including those to `published` — every region of device memory written since the last
    /// ring (`&[]` if all data is in RAM or uncached memory). If any of them is
    /// [weakly ordered](Published::weakly_ordered) (write-combining, or written by direct
    /// stores), or the doorbell's own mapping is write-combining, the barrier is
    /// [`Barrier::WcFlush`](crate::Barrier::WcFlush).
    pub fn ring(&self, value: u32, published: &[&dyn Published]) {
        let wc = published.iter().any(|p| p.weakly_ordered());
        self.ring_inner(value, wc);
    }

    fn ring_inner(&self, value: u32, published_wc: bool) {
        let backend = self.reg.backend();
        let wc = published_wc || backend.caching() == Caching::WriteCombining;
        if let Some(b) = self.strategy.doorbell_barrier(backend.arch(), wc) {
            backend.barrier(b);
        }
        self.reg.write32_relaxed::<0>(value);
    }
}

/// Commands being copied for one ring of a [`Doorbell`]; see the [module docs](self).
///
/// Copies follow the doorbell's strategy: under `Conservative` each is a `memcpy_toio` with the
/// kernel's barriers, under `Batched` and `Relaxed` they carry none.
#[must_use = "a submission publishes nothing until it rings"]
#[derive(Debug)]
pub struct Submission<'d, 'a, B: Backend = Mmio> {
    doorbell: &'d Doorbell<'a, B>,
    write_combining: bool,
    commands: usize,
}

impl<B: Backend> Submission<'_, '_, B> {
    /// Copies `src` into `dst` (`memcpy_toio`, lengths must match) as part of this submission.
    pub fn copy<D: Backend>(&mut self, dst: &IoMem<'_, [u8], D>, src: &[u8]) -> Result<()> {
        dst.with_strategy(self.copy_strategy())
            .copy_from_slice(src)?;
        self.write_combining |= dst.caching() == Caching::WriteCombining;
        self.commands += 1;
        Ok(())
    }

    /// Writes the 64-byte `entry` at `offset` of `dst` as one direct store where it can
    /// ([`IoMem::write_direct64`]), as part of this submission: the ring then flushes it.
    pub fn write_direct64<D: Backend>(
        &mut self,
        dst: &IoMem<'_, [u8], D>,
        offset: usize,
        entry: &[u8; 64],
    ) -> Result<()> {
        dst.with_strategy(self.copy_strategy())
            .write_direct64(offset, entry)?;
        self.write_combining |= dst.weakly_ordered();
        self.commands += 1;
        Ok(())
    }

    /// Records that `region` was written some other way and is published by this ring.
    pub fn publishes(&mut self, region: &dyn Published) -> &mut Self {
        self.write_combining |= region.weakly_ordered();
        self
    }

    /// Number of copies made so far.
    pub fn commands(&self) -> usize {
        self.commands
    }

    /// Whether the ring will flush write-combining buffers.
    pub fn needs_wc_flush(&self) -> bool {
        self.write_combining
    }

    /// Rings the doorbell with `value`, publishing every copy of this submission.
    pub fn ring(self, value: u32) {
        self.doorbell.ring_inner(value, self.write_combining);
    }

    fn copy_strategy(&self) -> Strategy {
        match self.doorbell.strategy {
            Strategy::Conservative => Strategy::Conservative,
            Strategy::Batched | Strategy::Relaxed => Strategy::Relaxed,
        }
    }
}
