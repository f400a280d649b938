//! [`Lent`]: the memory one command lends the device; [`Request`]: a command with it.

use alloc::boxed::Box;
use core::fmt;

use super::Command;
use crate::backend::Backend;
use crate::dma::Lease;

/// Something that keeps memory a device uses allocated, other than a host [`Lease`]: a
/// [`P2pLease`](crate::p2p::P2pLease) on a CMB buffer, a PRP list in the CMB.
///
/// # Safety
/// Dropping the value without [`release`](Self::release) must never free or reuse the memory
/// it holds (quarantine it): the device may still access it.
pub unsafe trait DeviceHold: Send {
    /// The device is done with the memory: give it back (free it, or return it to its pool).
    ///
    /// # Safety
    /// No device will access the memory through the addresses given out for it any more.
    unsafe fn release(self: Box<Self>);
}

// SAFETY: a lease dropped uncompleted quarantines its region (`dma::region`).
unsafe impl<B: Backend + Send + Sync + 'static> DeviceHold for Lease<B> {
    unsafe fn release(self: Box<Self>) {
        // SAFETY: the caller vouches the device is done with the memory.
        unsafe { (*self).complete() }
    }
}

// SAFETY: dropping a `P2pLease` without `complete` quarantines the buffer: its memory stays
// allocated in the pool for the pool's life, never handed out again.
unsafe impl<B: Backend + Send + Sync + 'static> DeviceHold for crate::p2p::P2pLease<B> {
    unsafe fn release(self: Box<Self>) {
        // SAFETY: the caller vouches the device is done; the buffer is then freed normally.
        drop(unsafe { (*self).complete() });
    }
}

/// One holder of lent memory.
pub enum Held<B: Backend + Send + Sync + 'static> {
    /// Host DMA memory.
    Lease(Lease<B>),
    /// Anything else that holds device-visible memory.
    Other(Box<dyn DeviceHold>),
}

impl<B: Backend + Send + Sync + 'static> Held<B> {
    /// # Safety
    /// As [`Lent::complete`].
    #[inline]
    unsafe fn release(self) {
        match self {
            // SAFETY: the caller's promise.
            Held::Lease(l) => unsafe { l.complete() },
            // SAFETY: the caller's promise.
            Held::Other(o) => unsafe { o.release() },
        }
    }
}

impl<B: Backend + Send + Sync + 'static> From<Lease<B>> for Held<B> {
    fn from(l: Lease<B>) -> Self {
        Held::Lease(l)
    }
}

impl<B: Backend + Send + Sync + 'static> fmt::Debug for Held<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Held::Lease(l) => f.debug_tuple("Lease").field(&l.len()).finish(),
            Held::Other(_) => f.write_str("Other"),
        }
    }
}

/// What one command lends the device: nothing, its data memory, its PRP list's memory, or
/// both. Comes back with the command's completion ([`complete`](Self::complete)).
///
/// Dropped without completing (a command abandoned, a timeout), it never frees memory the
/// device may still touch: host leases quarantine themselves, and other holders
/// ([`DeviceHold`]) quarantine by their contract.
///
/// ```
/// use iomem::dma::MockDma;
/// use iomem::nvme::cmd::Lent;
///
/// let dma = MockDma::new(1 << 16);
/// let buf = dma.alloc(4096)?;
/// let lent = Lent::lease(buf.lease());
/// drop(buf);
/// // SAFETY: no device was given the addresses.
/// unsafe { lent.complete() };
/// assert_eq!(dma.allocated(), 0);
/// # Ok::<(), iomem::Error>(())
/// ```
pub struct Lent<B: Backend + Send + Sync + 'static> {
    data: Option<Held<B>>,
    list: Option<Held<B>>,
}

impl<B: Backend + Send + Sync + 'static> fmt::Debug for Lent<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lent")
            .field("data", &self.data)
            .field("list", &self.list)
            .finish()
    }
}

impl<B: Backend + Send + Sync + 'static> Default for Lent<B> {
    fn default() -> Self {
        Lent::none()
    }
}

impl<B: Backend + Send + Sync + 'static> Lent<B> {
    /// Nothing lent (a command without data, or one whose memory the caller keeps).
    #[inline(always)]
    pub const fn none() -> Self {
        Lent {
            data: None,
            list: None,
        }
    }

    /// The data memory, a host lease.
    pub fn lease(data: Lease<B>) -> Self {
        Lent::held(Held::Lease(data), None)
    }

    /// Data and PRP list, both host leases.
    pub fn leases(data: Lease<B>, list: Lease<B>) -> Self {
        Lent::held(Held::Lease(data), Some(Held::Lease(list)))
    }

    /// Another holder of the data memory (a [`P2pLease`](crate::p2p::P2pLease)).
    pub fn other(data: Box<dyn DeviceHold>) -> Self {
        Lent::held(Held::Other(data), None)
    }

    /// The data holder and, if any, the list holder.
    #[inline]
    pub fn held(data: Held<B>, list: Option<Held<B>>) -> Self {
        Lent {
            data: Some(data),
            list,
        }
    }

    /// Whether nothing is lent.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.data.is_none() && self.list.is_none()
    }

    /// Whether a holder other than a host lease ([`Held::Other`]: a CMB buffer, a PRP list in
    /// the CMB) is lent: memory the CPU reads through device mappings, which a queue pair
    /// orders after the completion with `rmb` where `dma_rmb` does not.
    #[inline]
    pub fn holds_device_memory(&self) -> bool {
        matches!(self.data, Some(Held::Other(_))) || matches!(self.list, Some(Held::Other(_)))
    }

    /// The device is done: leases complete, other holders are released.
    ///
    /// # Safety
    /// No device will access the lent memory any more through the addresses given out for it
    /// (the command completed, or the controller was disabled or reset since).
    #[inline]
    pub unsafe fn complete(self) {
        let Lent { data, list } = self;
        // SAFETY: the caller's promise covers every holder of this command.
        unsafe {
            if let Some(h) = data {
                h.release();
            }
            if let Some(h) = list {
                h.release();
            }
        }
    }
}

/// A command and the memory it lends the device. The queue layer submits `command` and keeps
/// `lent` until the completion arrives.
///
/// The queue layer releases a command's `lent` at its completion, and the memory it lent is
/// freed once nothing else holds it. So a request is safe to push only if every address its
/// command names is memory that something other than a completion of *another* command keeps:
/// memory its own `lent` holds ([`Prp::into_request`](crate::nvme::prp::Prp::into_request),
/// which checks that the command uses that data pointer), or no memory at all (a command
/// pushed as it is, which a queue refuses if it names memory: [`Push`]). A data pointer is a
/// number that may be copied ([`DataPtr`](crate::nvme::prp::DataPtr) is `Copy`); a request
/// pairing a command with memory held some other way is made with the unsafe
/// [`Request::new`].
///
/// # Invariant
/// Every address `command` names is memory `lent` holds, or memory its maker vouched for (see
/// [`new`](Self::new)).
#[derive(Debug)]
pub struct Request<B: Backend + Send + Sync + 'static> {
    command: Command,
    lent: Lent<B>,
}

impl<B: Backend + Send + Sync + 'static> Request<B> {
    /// `command` with the memory it lends.
    ///
    /// # Safety
    /// Every address `command` names (PRP1, PRP2, the PRP list and its entries, MPTR, a queue
    /// base) is memory that `lent` holds, or memory that stays allocated, and is released by no
    /// other command's completion, until this command completes or the controller is reset
    /// (memory held by the caller for that long, not lent to another command meanwhile).
    #[inline(always)]
    pub unsafe fn new(command: Command, lent: Lent<B>) -> Self {
        Request { command, lent }
    }

    /// `command` with what `lent` holds, for a command whose data pointer was built over that
    /// memory (checked by the caller).
    #[inline(always)]
    pub(crate) fn lending(command: Command, lent: Lent<B>) -> Self {
        Request { command, lent }
    }

    /// The command.
    pub fn command(&self) -> &Command {
        &self.command
    }

    /// The command, mutably.
    ///
    /// # Safety
    /// As for [`new`](Self::new), for the command as it is when the request is pushed.
    pub unsafe fn command_mut(&mut self) -> &mut Command {
        &mut self.command
    }

    /// The command and what it lends.
    #[inline(always)]
    pub fn into_parts(self) -> (Command, Lent<B>) {
        (self.command, self.lent)
    }
}

/// What a queue pair pushes ([`QueuePair::push`](crate::nvme::ctrl::QueuePair::push)): a
/// [`Request`], or a bare [`Command`] that lends the device nothing — one without data. A bare
/// command that names memory ([`Command::names_memory`]) is refused: a data pointer copied from
/// another request, or [`PrpBuilder::borrow`](crate::nvme::prp::PrpBuilder::borrow)ed, and
/// nothing would keep that memory from being freed by another command's completion while this
/// one is in flight. Sealed: a queue's check is only as good as these two implementations.
pub trait Push<B: Backend + Send + Sync + 'static>: sealed::Sealed {
    /// Whether this is a bare command that names memory (which a queue refuses).
    fn names_unheld_memory(&self) -> bool;
    /// The command and what it lends.
    fn into_parts(self) -> (Command, Lent<B>);
}

/// Keeps [`Push`] to the crate's two implementations.
mod sealed {
    pub trait Sealed {}
    impl<B: crate::backend::Backend + Send + Sync + 'static> Sealed for super::Request<B> {}
    impl Sealed for super::Command {}
}

impl<B: Backend + Send + Sync + 'static> Push<B> for Request<B> {
    #[inline(always)]
    fn names_unheld_memory(&self) -> bool {
        false
    }
    #[inline(always)]
    fn into_parts(self) -> (Command, Lent<B>) {
        Request::into_parts(self)
    }
}

impl<B: Backend + Send + Sync + 'static> Push<B> for Command {
    #[inline(always)]
    fn names_unheld_memory(&self) -> bool {
        self.names_memory()
    }
    #[inline(always)]
    fn into_parts(self) -> (Command, Lent<B>) {
        (self, Lent::none())
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;
    use crate::dma::MockDma;

    static_assertions::assert_impl_all!(Lent<alloc::sync::Arc<crate::backend::MockIo>>: Send);

    #[test]
    fn dropped_uncompleted_quarantines() {
        let dma = MockDma::new(1 << 16);
        let a = dma.alloc(4096).unwrap();
        let b = dma.alloc(4096).unwrap();
        let lent = Lent::leases(a.lease(), b.lease());
        drop((a, b));
        drop(lent);
        assert_eq!(dma.quarantine().len(), 2);
        assert_eq!(dma.allocated(), 8192);
        let c = dma.alloc(4096).unwrap();
        let lent: Lent<alloc::sync::Arc<crate::backend::MockIo>> =
            Lent::held(Held::Other(Box::new(c.lease())), None);
        drop(c);
        // SAFETY: no device was given the addresses.
        unsafe { lent.complete() };
        assert_eq!(dma.allocated(), 8192);
    }
}
