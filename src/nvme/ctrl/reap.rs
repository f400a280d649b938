//! A queue pair's completion side: polling, waiting for one command, and the checks of the
//! controller's health and the commands' deadlines.

use core::time::Duration;

use super::health;
use super::qpair::{Done, QueuePair, CHECK_EVERY, SCANS_PER_TIMEOUT};
use super::slot::{self, retire, Slot, TAKEN, TIMED_OUT};
use crate::backend::Backend;
use crate::iomem::IoMem;
use crate::nvme::cmd::Push;
use crate::nvme::regs::ControllerRegs;
use crate::nvme::sq::SqRing;
use crate::nvme::{Error, Result};
use crate::order::Barrier;

/// Which deadlines a check looks at.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Deadlines {
    /// Every command's, when [`SCANS_PER_TIMEOUT`] scans would be due by now (a poll's check:
    /// the cost of a scan over the slots, every [`CHECK_EVERY`] polls, stays off the poll).
    WhenDue,
    /// Every command's, now.
    All,
    /// One command's (a wait's): another command past its deadline is left for a check or
    /// poll to report.
    Of(u16),
}

impl<R: SqRing, B: Backend + Send + Sync + 'static, D: Backend> QueuePair<R, B, D> {
    /// Reaps up to `max` completions, calling `f` on each, and writes the completion queue's
    /// head doorbell once for all of them. Returns how many it reaped.
    ///
    /// Each reaped command's memory goes back to its owner. Every 256th call checks the
    /// controller, and the deadlines at most eight times per command timeout (see the
    /// [type docs](QueuePair)); once the controller was found dead, every call fails at once.
    /// [`Error::UnknownCid`] for a completion naming no command in flight (the entry is
    /// consumed).
    #[inline]
    pub fn poll(&mut self, max: usize, mut f: impl FnMut(Done)) -> Result<usize> {
        self.countdown -= 1;
        if self.countdown == 0 {
            return self.poll_slow(max, &mut f);
        }
        self.reap(max, &mut f)
    }

    /// The poll proper: up to `max` completions from the queue to `f`, then the head doorbell.
    #[inline(always)]
    fn reap<F: FnMut(Done)>(&mut self, max: usize, f: &mut F) -> Result<usize> {
        let mut n = 0;
        if max == 1 {
            // One completion wanted (a poll per command): no batch set up.
            match self.reap_one() {
                Ok(Some(d)) => {
                    self.taken -= 1;
                    f(d);
                    n += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    self.cq.ring_head();
                    return Err(e);
                }
            }
        } else if max > 0 {
            let QueuePair {
                cq,
                sq,
                slots,
                lent,
                ..
            } = self;
            let qid = sq.qid();
            // Or-ed flags, cids handed back and the last SQ head, in locals: stored once.
            let (mut flags, mut freed, mut head) = (0u8, 0u32, None);
            let reaped = cq.drain(max, |c| {
                let (d, fl) = retire(c, qid, slots, lent)?;
                flags |= fl;
                freed += 1;
                head = Some(c.sq_head);
                f(d);
                Ok(())
            });
            self.taken -= freed;
            self.reaped_flags |= flags;
            if let Some(h) = head {
                // Applied when the ring looks full (an out-of-range head, a controller bug, is
                // dropped then); the commands completed either way.
                self.sq.note_head(h);
            }
            match reaped {
                Ok(k) => n += k,
                Err(e) => {
                    self.cq.ring_head();
                    return Err(e);
                }
            }
        }
        if self.cq.ring_head() > 0 {
            // What the completions announce (data in RAM or in the CMB) is read after them.
            self.cq_barrier();
        }
        Ok(n)
    }

    /// The poll's slow path, taken when `countdown` runs out: every [`CHECK_EVERY`]th poll the check (the
    /// controller's health, the deadlines), every poll once the controller is dead (its
    /// verdict), and the completions a `wait` kept, handed out first (up to `max`); then the
    /// poll proper for the rest.
    #[cold]
    #[inline(never)]
    fn poll_slow<F: FnMut(Done)>(&mut self, max: usize, f: &mut F) -> Result<usize> {
        self.to_check = self.to_check.saturating_sub(self.armed);
        // Counted: a `slow_next_poll` from the check adds nothing.
        self.armed = 0;
        let checked = if self.to_check == 0 || self.health.get().is_err() {
            self.to_check = CHECK_EVERY;
            self.check_with(Deadlines::WhenDue)
        } else {
            Ok(())
        };
        let mut n = 0;
        if checked.is_ok() && max > 0 && !self.ready.is_empty() {
            // The wait that reaped them may have ended before the barrier their data needs.
            self.cq_barrier();
            while n < max {
                let Some(d) = self.ready.pop_front() else {
                    break;
                };
                self.release(d.cid);
                f(d);
                n += 1;
            }
        }
        self.armed = if self.health.get().is_err() || !self.ready.is_empty() {
            1
        } else {
            self.to_check
        };
        self.countdown = self.armed;
        checked?;
        Ok(n + self.reap(max - n, f)?)
    }

    /// Polls until command `cid` completes and returns it (with [`Done::ok`] applied); other
    /// completions seen meanwhile are kept for the next [`poll`](Self::poll) or `wait` (their
    /// cids stay taken until then). Checks the
    /// controller and the deadlines while it waits: ends with [`Error::Timeout`] after the
    /// command timeout, or [`Error::DeviceGone`] as soon as the device is seen gone.
    pub fn wait(&mut self, cid: u16) -> Result<Done> {
        // Reaped by an earlier wait for another command, and kept.
        if let Some(i) = self.ready.iter().position(|d| d.cid == cid) {
            if let Some(d) = self.ready.remove(i) {
                self.release(cid);
                // As in a poll that hands out a kept completion.
                self.cq_barrier();
                return d.ok();
            }
        }
        if self.slot(cid).is_none() {
            return Err(Error::UnknownCid {
                qid: self.sq.qid(),
                cid,
            });
        }
        let mut spins = 0u32;
        loop {
            let reaped = self.reap_one();
            self.cq.ring_head();
            match reaped? {
                Some(d) if d.cid == cid => {
                    self.taken -= 1;
                    self.cq_barrier();
                    return d.ok();
                }
                Some(d) => {
                    // Kept: its cid stays taken until a poll or wait hands it out (the next
                    // poll takes the slow path to).
                    if let Some(s) = self.slots.get_mut(usize::from(d.cid)) {
                        s.flags = TAKEN;
                    }
                    self.ready.push_back(d);
                    self.slow_next_poll();
                }
                None => {
                    spins += 1;
                    if spins % 16 == 0 {
                        // Its own deadline only: another command past its deadline is for a
                        // check or poll to report.
                        self.check_with(Deadlines::Of(cid))?;
                        if self.slot(cid).is_none_or(|s| s.flags & TIMED_OUT != 0) {
                            return Err(self.timeout_error(cid));
                        }
                    }
                    if spins > 64 {
                        std::thread::sleep(Duration::from_micros(20));
                    }
                }
            }
        }
    }

    /// [`submit`](Self::submit) then [`wait`](Self::wait).
    pub fn execute(&mut self, request: impl Push<B>) -> Result<Done> {
        let cid = self.submit(request)?;
        self.wait(cid)
    }

    /// Checks the controller (CSTS) and the deadlines now: [`Error::DeviceGone`],
    /// [`Error::Fatal`] or [`Error::NotReady`] for a controller that is gone or broken, then
    /// [`Error::Timeout`] for the first command past its deadline not reported yet (each is
    /// reported once: a check per command past its deadline).
    pub fn check(&mut self) -> Result<()> {
        self.check_with(Deadlines::All)
    }

    /// [`check`](Self::check), with the deadlines `scan` says.
    fn check_with(&mut self, scan: Deadlines) -> Result<()> {
        let r = self.check_now(scan);
        if r.is_err() && self.health.get().is_err() {
            // Dead: every poll from now on fails at once.
            self.slow_next_poll();
        }
        r
    }

    fn check_now(&mut self, scan: Deadlines) -> Result<()> {
        self.health.get()?;
        let regs = ControllerRegs::new(IoMem::new(&self.bar))?;
        health::check_into(&regs, &self.health)?;
        // Nanoseconds since the epoch: 2^64 ns is 584 years.
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let now = nanos(self.epoch.elapsed());
        if scan == Deadlines::WhenDue && now < self.next_scan {
            return Ok(());
        }
        let timeout = nanos(self.timeout);
        self.next_scan = now.saturating_add(timeout / SCANS_PER_TIMEOUT);
        let taken = self.in_flight();
        let only = match scan {
            Deadlines::Of(cid) => Some(cid),
            _ => None,
        };
        match slot::scan(&mut self.slots, taken, now, timeout, only) {
            Some(cid) => Err(self.timeout_error(cid)),
            None => Ok(()),
        }
    }

    fn timeout_error(&self, cid: u16) -> Error {
        Error::Timeout {
            qid: self.sq.qid(),
            cid,
            opcode: self.slot(cid).map_or(0, |s| s.opcode),
        }
    }

    fn slot(&self, cid: u16) -> Option<&Slot> {
        self.slots.get(usize::from(cid)).filter(|s| s.live())
    }

    /// One completion from the queue, its command retired. Its cid stays taken until the
    /// completion is handed out (so a kept completion is never confused with a later command
    /// under the same cid).
    #[inline(always)]
    fn reap_one(&mut self) -> Result<Option<Done>> {
        let Some(c) = self.cq.pop()? else {
            return Ok(None);
        };
        let (d, flags) = retire(c, self.sq.qid(), &mut self.slots, &mut self.lent)?;
        self.sq.note_head(c.sq_head);
        self.reaped_flags |= flags;
        Ok(Some(d))
    }

    /// Orders the completions' loads before the loads of the data they announce. Data in host
    /// RAM is ordered by the `dma_rmb` already issued after each phase tag, on every
    /// architecture ([`orders_ram_loads`](crate::order::orders_ram_loads)). Data in device memory
    /// (a CMB) needs `rmb` where `dma_rmb` does not order device loads
    /// ([`dma_rmb_orders_device_loads`]), and only after a batch with a completion that may
    /// announce it: a command that lent device memory, or any command of a pair told so
    /// ([`set_device_data`](Self::set_device_data)).
    #[inline]
    fn cq_barrier(&mut self) {
        if self.reaped_flags & self.rmb_for != 0 {
            self.reaped_flags = 0;
            // Through BAR0's backend, as `IoMem::barrier` does, without building a handle.
            self.bar.barrier(Barrier::Rmb);
        }
    }
}
