//! The core's error type: what the layers up to `p2p` report.
//!
//! Every check the core makes on caller input — offsets, lengths, alignment, width policies,
//! allocator requests — reports failure as an [`Error`] value. Bad input never panics and is never
//! undefined behaviour. The layers above have their own errors with a `From` conversion from
//! this one: `nvme::Error` (register values, vanished devices) and `map::linux::Error` (sysfs,
//! mappings).

use core::fmt;

/// Result alias of the core layers.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// Everything that can go wrong when touching device memory through the core layers.
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
    /// A range of DMA memory that must be one run of device addresses (a queue created
    /// "physically contiguous", a single data pointer) is not: its pages are scattered.
    NotContiguous {
        /// Start of the range in its region.
        offset: usize,
        /// Length of the range.
        len: usize,
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
            Error::NotContiguous { offset, len } => write!(
                f,
                "DMA range {offset:#x}..{end:#x} is not one run of device addresses; allocate it contiguous (huge pages, an IOMMU mapping) or split it into segments",
                end = offset.wrapping_add(len)
            ),
            Error::LengthMismatch { io_len, buf_len } => write!(
                f,
                "device range is {io_len} bytes but the buffer is {buf_len} bytes"
            ),
            Error::BadMapping { addr, align } => write!(
                f,
                "mapping base {addr:#x} is not aligned to {align} bytes"
            ),
            Error::Exhausted { size, align, free, largest } => write!(
                f,
                "cannot allocate {size} bytes aligned to {align}: {free} bytes free, largest free block {largest} bytes"
            ),
            Error::InvalidArgument(why) => write!(f, "invalid argument: {why}"),
        }
    }
}

impl core::error::Error for Error {}
