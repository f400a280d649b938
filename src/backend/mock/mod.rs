//! A mock MMIO backend over RAM that records every access and barrier.
//!
//! [`MockIo`] lets a driver be tested with `cargo test`: it behaves like device memory backed by
//! RAM, and keeps a trace of every [`Event`] — each read and write with its offset, width and
//! value, and each barrier with the instructions the simulated [`Arch`] would execute. Tests
//! assert on the trace to prove what the real backend does (the same access plans run on both).
//!
//! Device behaviour is modelled with hooks: a write hook sees every write to a range and decides
//! whether it lands in RAM (doorbells, write-1-to-clear registers); a read hook can replace the
//! value a read returns and change RAM as a side effect (clear-on-read status). A mock of host
//! RAM ([`Caching::Cacheable`]) takes the device's DMA writes through [`MockIo::device_write`].
//!
//! The weak-ordering model says what a device may see of the CPU's stores ([`device_order`],
//! RAM included) and what the CPU's reads of RAM may return while the device writes it
//! ([`ram_loads`]).
//!
//! Device limits are modelled with faults: an access wider than [`MockIo::with_max_width`] or
//! not naturally aligned is recorded as a [`Violation`]. Violations are test failures:
//! [`MockIo::assert_no_violations`] panics with a description, and so does dropping a mock
//! that still holds violations nobody took with [`MockIo::take_violations`].

use std::boxed::Box;
use std::ops::Range;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Mutex, MutexGuard};
use std::vec::Vec;

#[cfg(doc)]
use super::Backend;
use super::Caching;
#[cfg(doc)]
use crate::order::instructions;

mod access;
mod loads;
mod ram_order;
mod weak;
use crate::order::{Arch, Barrier};
pub use loads::{ram_loads, Load};
pub use ram_order::replay_ram;
pub use weak::{device_order, replay, windows, Delivery};

/// Direction of a recorded access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    /// CPU load from the device.
    Read,
    /// CPU store to the device.
    Write,
}

/// One recorded device access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// Load or store.
    pub dir: Dir,
    /// Byte offset in the mock's region.
    pub offset: usize,
    /// Width in bytes.
    pub width: usize,
    /// Value read or written, little-endian, zero-extended (bytes 0..16 of a wider access).
    pub value: u128,
    /// Bytes 16..32, 32..48 and 48..64 of a 32- or 64-byte access, each little-endian; zero
    /// beyond the access's width.
    pub value_hi: [u128; 3],
    /// A 64-byte direct store ([`Backend::write_direct64`]): one non-torn write, weakly ordered
    /// whatever the mock's caching (the weak-ordering model treats it as write-combining).
    pub direct: bool,
}

impl Access {
    /// The `width` bytes the access read or wrote, little-endian.
    pub fn bytes(&self) -> Vec<u8> {
        let mut b = self.value.to_le_bytes().to_vec();
        for lane in self.value_hi {
            b.extend_from_slice(&lane.to_le_bytes());
        }
        b.truncate(self.width);
        b
    }

    /// The value as the 16-byte lanes of [`Word::to_lanes`](crate::backend::Word::to_lanes).
    fn lanes(&self) -> [u128; 4] {
        let [a, b, c] = self.value_hi;
        [self.value, a, b, c]
    }

    /// The bytes `[offset, offset + width)` this access covers.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.width
    }
}

/// One entry of the trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Event {
    /// A device access.
    Access(Access),
    /// A barrier, and the instructions the simulated architecture executes for it.
    Barrier {
        /// The barrier kind.
        barrier: Barrier,
        /// The instruction mnemonics of [`instructions`] for the mock's architecture.
        insns: &'static [&'static str],
    },
}

/// An access the simulated device would not accept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The offending access.
    pub access: Access,
    /// What was wrong with it.
    pub why: &'static str,
}

/// What a write hook does with the store it saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteEffect {
    /// The written bytes land in RAM.
    Store,
    /// The write is consumed by the hook (it may have changed RAM itself).
    Discard,
}

/// The mock's RAM, as hooks see it.
pub struct Ram<'a>(&'a mut [u8]);

impl Ram<'_> {
    /// Reads `width` (≤ 16) bytes at `offset` as a little-endian integer.
    pub fn get(&self, offset: usize, width: usize) -> u128 {
        let mut b = [0u8; 16];
        b[..width].copy_from_slice(&self.0[offset..offset + width]);
        u128::from_le_bytes(b)
    }
    /// Writes the low `width` (≤ 16) bytes of `value` at `offset`, little-endian.
    pub fn set(&mut self, offset: usize, width: usize, value: u128) {
        self.0[offset..offset + width].copy_from_slice(&value.to_le_bytes()[..width]);
    }
    /// The RAM as bytes.
    pub fn bytes(&mut self) -> &mut [u8] {
        self.0
    }
}

type ReadHook = Box<dyn FnMut(&mut Ram<'_>, &Access) -> Option<u128> + Send>;
type WriteHook = Box<dyn FnMut(&mut Ram<'_>, &Access) -> WriteEffect + Send>;

#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u8; 64]);

struct State {
    lines: Vec<Line>,
    trace: Vec<Event>,
    /// For every trace entry, its position in one program order shared by all mocks (so the
    /// traces of several mocks — a doorbell BAR and a data BAR — can be merged).
    seqs: Vec<u64>,
    /// The device's writes into RAM, in program order (their `seq` from the same counter).
    device_writes: Vec<loads::DeviceWrite>,
    violations: Vec<Violation>,
    read_hooks: Vec<(Range<usize>, ReadHook)>,
    write_hooks: Vec<(Range<usize>, WriteHook)>,
    tracing: bool,
}

impl State {
    fn ram(&mut self, size: usize) -> &mut [u8] {
        // Lines are plain bytes; view them as one slice (the mock's RAM is never device memory).
        let bytes: &mut [u8] = zerocopy_bytes(&mut self.lines);
        &mut bytes[..size]
    }
}

fn zerocopy_bytes(lines: &mut [Line]) -> &mut [u8] {
    let len = lines.len() * 64;
    // SAFETY: `Line` is `repr(C)` over `[u8; 64]` with no padding; `len` bytes starting at the
    // first line are exactly the slice's memory, borrowed mutably for the same lifetime.
    unsafe { core::slice::from_raw_parts_mut(lines.as_mut_ptr().cast::<u8>(), len) }
}

/// Mock device memory: RAM plus a trace of every access and barrier. See the [module
/// docs](self).
pub struct MockIo {
    size: usize,
    caching: Caching,
    arch: Arch,
    max_width: usize,
    direct64: bool,
    weak_seed: Option<u64>,
    state: Mutex<State>,
}

impl core::fmt::Debug for MockIo {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MockIo")
            .field("size", &self.size)
            .field("caching", &self.caching)
            .field("arch", &self.arch)
            .field("max_width", &self.max_width)
            .finish_non_exhaustive()
    }
}

impl MockIo {
    /// A zero-filled region of `size` bytes: uncached, simulating the host architecture, with no
    /// width limit (64 bytes).
    pub fn new(size: usize) -> Self {
        MockIo {
            size,
            caching: Caching::Uncached,
            arch: Arch::HOST,
            max_width: 64,
            direct64: false,
            weak_seed: None,
            state: Mutex::new(State {
                lines: std::vec![Line([0; 64]); size.div_ceil(64)],
                trace: Vec::new(),
                seqs: Vec::new(),
                device_writes: Vec::new(),
                violations: Vec::new(),
                read_hooks: Vec::new(),
                write_hooks: Vec::new(),
                tracing: true,
            }),
        }
    }

    /// Simulates `arch`: barriers are recorded with that architecture's instructions, and the
    /// [`Strategy`](crate::Strategy) places barriers as it would on that architecture.
    pub fn with_arch(mut self, arch: Arch) -> Self {
        self.arch = arch;
        self
    }

    /// Claims the given caching (the strategy and doorbells react to it).
    pub fn with_caching(mut self, caching: Caching) -> Self {
        self.caching = caching;
        self
    }

    /// Weak-ordering mode: [`MockIo::device_order`] returns the writes in an order the device
    /// may see them (chosen by `seed`) instead of program order. See [`Delivery`] for the model.
    /// The RAM, hooks and trace are unchanged (they stay in program order).
    pub fn with_weak_ordering(mut self, seed: u64) -> Self {
        self.weak_seed = Some(seed);
        self
    }

    /// The recorded writes in the order the device sees them: program order, or with
    /// [`MockIo::with_weak_ordering`] an order the weak-ordering model allows.
    pub fn device_order(&self) -> Vec<Access> {
        match self.weak_seed {
            Some(seed) => device_order(&[self], seed)
                .into_iter()
                .map(|d| d.access)
                .collect(),
            None => self.writes(),
        }
    }

    /// Simulates a CPU with 64-byte direct stores (x86 `MOVDIR64B`) when `on`:
    /// [`Backend::has_direct64`] is true and [`Backend::write_direct64`] records one 64-byte
    /// write with [`Access::direct`] set. Off by default (then the crate falls back to its
    /// widest plan, as on a CPU without the instruction).
    pub fn with_direct64(mut self, on: bool) -> Self {
        self.direct64 = on;
        self
    }

    /// Models a device that accepts no access wider than `width` bytes: wider accesses are
    /// recorded as violations.
    pub fn with_max_width(mut self, width: usize) -> Self {
        self.max_width = width;
        self
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking hook poisons the lock; the state itself stays consistent, so go on.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `hook` for every write that overlaps `range`; its [`WriteEffect`] decides whether
    /// the bytes land in RAM. Hooks run in registration order; the first `Discard` wins.
    pub fn on_write(
        &self,
        range: Range<usize>,
        hook: impl FnMut(&mut Ram<'_>, &Access) -> WriteEffect + Send + 'static,
    ) {
        self.lock().write_hooks.push((range, Box::new(hook)));
    }

    /// Calls `hook` for every read that overlaps `range`, after the read took its bytes from RAM
    /// (the hook sees them in the [`Access`]); `Some(v)` replaces the value the read returns
    /// (its low 16 bytes). The hook may change RAM (clear-on-read): the read still returns what
    /// RAM held.
    pub fn on_read(
        &self,
        range: Range<usize>,
        hook: impl FnMut(&mut Ram<'_>, &Access) -> Option<u128> + Send + 'static,
    ) {
        self.lock().read_hooks.push((range, Box::new(hook)));
    }

    /// Makes the `width`-byte register at `offset` write-1-to-clear: writing a 1 bit clears it,
    /// writing 0 leaves it. An access that covers part of the register clears bits of the bytes
    /// it covers; the bytes of a wider access outside the register are stored as written.
    ///
    /// # Panics
    /// If `width` is not 1, 2, 4, 8 or 16 or the register is not inside the mock: a mistake in
    /// the test's model of the device, reported where it is made rather than at the first write.
    pub fn write_1_to_clear(&self, offset: usize, width: usize) {
        self.check_register(offset, width);
        let register = offset..offset + width;
        self.on_write(register.clone(), move |ram, a| {
            let ram = ram.bytes();
            for (at, b) in a.range().zip(a.bytes()) {
                ram[at] = if register.contains(&at) {
                    ram[at] & !b
                } else {
                    b
                };
            }
            WriteEffect::Discard
        });
    }

    /// Makes the `width`-byte register at `offset` clear-on-read: a read returns its value and
    /// leaves the bytes of it that the read covered zero.
    ///
    /// # Panics
    /// As for [`write_1_to_clear`](Self::write_1_to_clear).
    pub fn clear_on_read(&self, offset: usize, width: usize) {
        self.check_register(offset, width);
        let register = offset..offset + width;
        self.on_read(register.clone(), move |ram, a| {
            let ram = ram.bytes();
            for at in a.range().filter(|at| register.contains(at)) {
                ram[at] = 0;
            }
            None
        });
    }

    /// Turns recording on or off (hooks and RAM work either way).
    pub fn set_tracing(&self, on: bool) {
        self.lock().tracing = on;
    }

    /// A copy of the trace.
    pub fn events(&self) -> Vec<Event> {
        self.lock().trace.clone()
    }

    /// Takes the trace, leaving it empty.
    pub fn take_events(&self) -> Vec<Event> {
        let mut st = self.lock();
        st.seqs.clear();
        st.device_writes.clear();
        core::mem::take(&mut st.trace)
    }

    /// Empties the trace.
    pub fn clear_events(&self) {
        let mut st = self.lock();
        st.trace.clear();
        st.seqs.clear();
        st.device_writes.clear();
    }

    /// The recorded accesses, in order.
    pub fn accesses(&self) -> Vec<Access> {
        self.lock()
            .trace
            .iter()
            .filter_map(|e| match e {
                Event::Access(a) => Some(*a),
                Event::Barrier { .. } => None,
            })
            .collect()
    }

    /// The recorded writes, in order.
    pub fn writes(&self) -> Vec<Access> {
        self.accesses()
            .into_iter()
            .filter(|a| a.dir == Dir::Write)
            .collect()
    }

    /// The recorded reads, in order.
    pub fn reads(&self) -> Vec<Access> {
        self.accesses()
            .into_iter()
            .filter(|a| a.dir == Dir::Read)
            .collect()
    }

    /// The recorded barriers, in order.
    pub fn barriers(&self) -> Vec<Barrier> {
        self.lock()
            .trace
            .iter()
            .filter_map(|e| match e {
                Event::Barrier { barrier, .. } => Some(*barrier),
                Event::Access(_) => None,
            })
            .collect()
    }

    /// The instructions the simulated architecture executed for the recorded barriers, in order.
    pub fn instructions(&self) -> Vec<&'static str> {
        self.lock()
            .trace
            .iter()
            .flat_map(|e| match e {
                Event::Barrier { insns, .. } => insns.iter().copied(),
                Event::Access(_) => [].iter().copied(),
            })
            .collect()
    }

    /// Reads RAM directly, bypassing the trace, hooks and checks (what the device holds).
    ///
    /// # Panics
    /// If `offset..offset + len` is not inside the mock (a test helper: the message names the
    /// range and the mock's size).
    pub fn peek(&self, offset: usize, len: usize) -> Vec<u8> {
        let r = self.helper_range("peek", offset, len);
        let size = self.size;
        self.lock().ram(size)[r].to_vec()
    }

    /// Writes RAM directly, bypassing the trace, hooks and checks (the device changing its own
    /// registers).
    ///
    /// # Panics
    /// If `offset..offset + bytes.len()` is not inside the mock, as for [`peek`](Self::peek).
    pub fn poke(&self, offset: usize, bytes: &[u8]) {
        let r = self.helper_range("poke", offset, bytes.len());
        let size = self.size;
        self.lock().ram(size)[r].copy_from_slice(bytes);
    }

    /// The range a test helper touches, or a panic that says what was wrong with it.
    fn helper_range(&self, what: &str, offset: usize, len: usize) -> Range<usize> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => offset..end,
            _ => panic!(
                "MockIo::{what}: {offset:#x} + {len:#x} bytes is outside the {:#x}-byte mock",
                self.size
            ),
        }
    }

    fn check_register(&self, offset: usize, width: usize) {
        assert!(
            matches!(width, 1 | 2 | 4 | 8 | 16),
            "MockIo: a register is 1, 2, 4, 8 or 16 bytes wide, not {width}"
        );
        self.helper_range("register", offset, width);
    }

    /// The violations recorded so far.
    pub fn violations(&self) -> Vec<Violation> {
        self.lock().violations.clone()
    }

    /// Takes the recorded violations (a test that provokes them on purpose takes them, so the
    /// mock's drop check does not fail the test).
    pub fn take_violations(&self) -> Vec<Violation> {
        core::mem::take(&mut self.lock().violations)
    }

    /// Panics with a description of every recorded violation, if there is any.
    #[track_caller]
    pub fn assert_no_violations(&self) {
        let v = self.take_violations();
        if !v.is_empty() {
            panic!("{}", describe(&v));
        }
    }

    fn record(&self, st: &mut State, access: Access) {
        if access.width > self.max_width {
            st.violations.push(Violation {
                access,
                why: "access wider than the device accepts",
            });
        }
        if access.offset % access.width != 0 {
            st.violations.push(Violation {
                access,
                why: "access not naturally aligned",
            });
        }
        if st.tracing {
            st.trace.push(Event::Access(access));
            st.seqs.push(next_seq());
        }
    }
}

/// Source of the shared program order of trace entries across mocks.
static SEQ: AtomicU64 = AtomicU64::new(0);

fn next_seq() -> u64 {
    SEQ.fetch_add(1, AtomicOrdering::Relaxed)
}

fn describe(v: &[Violation]) -> String {
    let mut s = std::format!("{} device access violation(s):", v.len());
    for x in v {
        s.push_str(&std::format!(
            "\n  {:?} of {} bytes at {:#x} (value {:#x}): {}",
            x.access.dir,
            x.access.width,
            x.access.offset,
            x.access.value,
            x.why
        ));
    }
    s
}

impl Drop for MockIo {
    fn drop(&mut self) {
        let v = core::mem::take(&mut self.lock().violations);
        if !v.is_empty() && !std::thread::panicking() {
            panic!("MockIo dropped with unchecked violations: {}", describe(&v));
        }
    }
}
