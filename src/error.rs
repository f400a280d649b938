//! The crate's one error type.
//!
//! Every check this crate makes on caller input — offsets, lengths, alignment, register values,
//! allocator requests — reports failure as an [`Error`] value. Bad input never panics and is never
//! undefined behaviour.

use core::fmt;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong when touching device memory through this crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// `[offset, offset + len)` does not fit inside a region of `size` bytes.
    OutOfRange {
        /// Start of the requested range, relative to the handle.
        offset: usize,
        /// Length of the requested range.
        len: usize,
        /// Size of the handle the range was checked against.
        size: usize,
    },
    /// `offset + len` overflows `usize`.
    Overflow {
        /// Start of the requested range.
        offset: usize,
        /// Length of the requested range.
        len: usize,
    },
    /// An access of `align` bytes was asked for at an offset that is not a multiple of `align`.
    /// Device accesses are always naturally aligned; this crate never splits one.
    Misaligned {
        /// Absolute offset (from the start of the mapping) of the access.
        offset: usize,
        /// Alignment the access needs.
        align: usize,
    },
    /// Source and destination of a copy differ in length.
    LengthMismatch {
        /// Length of the device-side range.
        io_len: usize,
        /// Length of the memory-side buffer.
        buf_len: usize,
    },
    /// A mapping's base address is not aligned enough to carry the accesses this crate makes.
    BadMapping {
        /// The base address that was refused.
        addr: usize,
        /// The alignment it needs.
        align: usize,
    },
    /// A register read back a value that the specification does not allow, or that contradicts
    /// another register. The controller is misbehaving, absent, or not what it claims to be.
    BadRegister {
        /// Register name as the specification spells it (`"CMBSZ"`).
        reg: &'static str,
        /// The raw value read.
        value: u64,
        /// Why it was refused.
        why: &'static str,
    },
    /// Every register read returned all-ones or all-zeros where that cannot be real: the device
    /// has gone away (surprise removal, memory decoding off, link down).
    DeviceGone {
        /// Register whose read gave it away.
        reg: &'static str,
        /// The value read.
        value: u64,
    },
    /// The device does not support what was asked for.
    Unsupported {
        /// What was asked for, in the words of the specification.
        what: &'static str,
    },
    /// An allocation of `size` bytes aligned to `align` does not fit: the pool has `free` bytes
    /// left and its largest free block is `largest` bytes.
    Exhausted {
        /// Requested size in bytes.
        size: usize,
        /// Requested alignment in bytes.
        align: usize,
        /// Free bytes in the pool.
        free: usize,
        /// Largest contiguous free block.
        largest: usize,
    },
    /// An argument is outside what the function accepts (zero size, alignment not a power of
    /// two, a queue depth out of range…). The string names the argument and the rule.
    InvalidArgument(&'static str),
    /// A device did not reach the expected state in time.
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// How long we waited, in milliseconds.
        ms: u64,
    },
    /// A submission queue has no free slot: `entries - 1` commands are outstanding (one slot
    /// always stays empty so a full queue differs from an empty one). Wait for completions and
    /// update the queue's head.
    QueueFull {
        /// Queue identifier.
        qid: u16,
        /// Slots in the queue.
        entries: u32,
    },
    /// The device reported a failure status for a command.
    CommandFailed {
        /// Command identifier or opcode, as meaningful to the caller.
        command: u16,
        /// Raw status field.
        status: u16,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::OutOfRange { offset, len, size } => write!(
                f,
                "range {offset:#x}..{end:#x} ({len} bytes) is outside the {size}-byte region",
                end = offset.wrapping_add(len)
            ),
            Error::Overflow { offset, len } => {
                write!(f, "offset {offset:#x} + length {len:#x} overflows the address space")
            }
            Error::Misaligned { offset, align } => write!(
                f,
                "offset {offset:#x} is not aligned to {align} bytes; device accesses are never split"
            ),
            Error::LengthMismatch { io_len, buf_len } => write!(
                f,
                "device range is {io_len} bytes but the buffer is {buf_len} bytes"
            ),
            Error::BadMapping { addr, align } => write!(
                f,
                "mapping base {addr:#x} is not aligned to {align} bytes"
            ),
            Error::BadRegister { reg, value, why } => {
                write!(f, "register {reg} = {value:#x} is invalid: {why}")
            }
            Error::DeviceGone { reg, value } => write!(
                f,
                "device not responding: {reg} read {value:#x} (removed, or memory decoding disabled)"
            ),
            Error::Unsupported { what } => write!(f, "the device does not support {what}"),
            Error::Exhausted { size, align, free, largest } => write!(
                f,
                "cannot allocate {size} bytes aligned to {align}: {free} bytes free, largest free block {largest} bytes"
            ),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
            Error::Timeout { what, ms } => write!(f, "timed out after {ms} ms waiting for {what}"),
            Error::QueueFull { qid, entries } => write!(
                f,
                "submission queue {qid} is full ({} of {entries} slots in use)",
                entries.saturating_sub(1)
            ),
            Error::CommandFailed { command, status } => {
                write!(f, "command {command:#x} failed with status {status:#x}")
            }
        }
    }
}

impl core::error::Error for Error {}
