//! The NVMe layer's error type.
//!
//! Everything in [`nvme`](crate::nvme) returns [`Result`]: the NVMe-specific failures — a
//! register value the specification does not allow, a controller that has gone away, a feature
//! the controller lacks, a full submission queue — and, wrapped in [`Error::Core`], the core
//! crate's errors (a range outside a mapping, a bad argument, an exhausted pool), which
//! convert with `?`.

use core::fmt;

use super::prp::PrpEntry;

/// Result alias of the NVMe layer.
pub type Result<T, E = Error> = core::result::Result<T, E>;

/// What can go wrong when driving an NVMe controller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core layer: an offset or range outside a mapping, a misaligned access,
    /// an argument outside what a function accepts, an exhausted pool.
    Core(crate::Error),
    /// A register read back a value that the specification does not allow, or that contradicts
    /// another register. The controller is misbehaving, or not what it claims to be.
    BadRegister {
        /// Register name as the specification spells it (`"CMBSZ"`).
        reg: &'static str,
        /// The raw value read.
        value: u64,
        /// Why it was refused.
        why: &'static str,
    },
    /// A register read all-ones (or all-zeros, where that register cannot be zero): the device
    /// has gone away (surprise removal, link down, PCI memory decoding off).
    DeviceGone {
        /// Register whose read gave it away.
        reg: &'static str,
        /// The value read.
        value: u64,
    },
    /// The controller does not support what was asked for.
    Unsupported {
        /// What was asked for, in the words of the specification.
        what: &'static str,
    },
    /// A submission queue has no free slot: `entries - 1` commands are outstanding (one slot
    /// always stays empty so a full queue differs from an empty one).
    QueueFull {
        /// Queue identifier.
        qid: u16,
        /// Slots in the queue.
        entries: u32,
    },
    /// The controller reported a fatal error (CSTS.CFS = 1): it processes nothing until it is
    /// reset.
    Fatal {
        /// CSTS as read.
        csts: u32,
    },
    /// An enabled controller reads not ready (CSTS.RDY = 0) although it is still there: it was
    /// reset behind the driver's back.
    NotReady {
        /// CSTS as read.
        csts: u32,
    },
    /// A controller state change (ready, not ready, shut down) did not happen in time.
    WaitTimeout {
        /// What was waited for, in the specification's words.
        what: &'static str,
        /// How long, in milliseconds.
        ms: u64,
    },
    /// A command got no completion before its deadline. The memory it was lent stays held
    /// (see [`dma::region`](crate::dma::region)) until the controller is reset.
    Timeout {
        /// Submission queue.
        qid: u16,
        /// Command identifier.
        cid: u16,
        /// Opcode.
        opcode: u8,
    },
    /// Memory a call would lend the device is still lent to a command that has not completed
    /// (one that timed out, or memory lent elsewhere): lending it again would let the late
    /// write of one command land in another's data.
    Busy {
        /// The memory, in a few words (`"the Identify scratch page"`).
        what: &'static str,
    },
    /// A command completed with an error status.
    CommandFailed {
        /// Submission queue.
        qid: u16,
        /// Command identifier.
        cid: u16,
        /// Opcode.
        opcode: u8,
        /// The completion's status.
        status: crate::nvme::Status,
    },
    /// A completion named a command identifier that has no command outstanding: the
    /// controller (or something writing the completion queue) is misbehaving.
    UnknownCid {
        /// Submission queue the completion names.
        qid: u16,
        /// Command identifier it names.
        cid: u16,
    },
    /// A data segment cannot be described by PRP entries: PRP1 must be dword aligned, every
    /// later segment must start on a memory page boundary and every segment but the last must
    /// end on one.
    PrpSegment {
        /// Index of the first offending segment.
        index: usize,
        /// Its device address.
        addr: u64,
        /// Its length in bytes.
        len: usize,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A data pointer breaks the controller's rule for its Controller Memory Buffer (see
    /// [`CmbRule`](crate::nvme::prp::CmbRule)); the controller would fail the command with
    /// Invalid Use of Controller Memory Buffer.
    CmbPlacement {
        /// The data pointer that broke it.
        entry: PrpEntry,
        /// Its device address.
        addr: u64,
        /// The rule it broke.
        why: &'static str,
    },
    /// A p2p buffer is not in the controller's own memory (its CMB or PMR, as the builder's
    /// [`CmbRule`](crate::nvme::prp::CmbRule) counts them): it is a peer's (another
    /// controller's CMB, a GPU BAR), and handing its bus address to the controller needs a
    /// permission: [`PrpBuilder::borrow_p2p`](crate::nvme::prp::PrpBuilder::borrow_p2p) and
    /// `lend_p2p` refuse it, `PrpBuilder::borrow_peer` and `lend_peer` (feature `linux`) take
    /// it with a `map::linux::PeerAccess`.
    PeerAccessRequired {
        /// The buffer range's bus address.
        addr: u64,
        /// Its length in bytes.
        len: usize,
    },
    /// A p2p buffer or PRP list handed to a controller behind an IOMMU lies outside the peer
    /// BAR window it is reached through (`PrpBuilder::borrow_peer_iommu`, feature `vfio`):
    /// the controller has no IOVA for it.
    PeerUnmapped {
        /// The range's bus address.
        addr: u64,
        /// Its length in bytes.
        len: usize,
        /// The bus address of the window's first byte.
        window: u64,
        /// The window's length in bytes.
        window_len: u64,
    },
    /// A command field outside what the specification (or this crate) allows.
    InvalidField {
        /// The command, as the specification names it.
        command: &'static str,
        /// The field.
        field: &'static str,
        /// The value given.
        value: u64,
        /// What is allowed.
        why: &'static str,
    },
    /// Blocks `slba .. slba + nlb` are not all inside the namespace.
    LbaRange {
        /// First block.
        slba: u64,
        /// Number of blocks.
        nlb: u32,
        /// Blocks in the namespace.
        capacity: u64,
    },
    /// A command's data pointer covers a different number of bytes than the command moves.
    DataLength {
        /// The command.
        command: &'static str,
        /// Bytes the command moves.
        expected: u64,
        /// Bytes the data pointer covers.
        got: u64,
    },
    /// A transfer larger than the controller's maximum (Identify Controller MDTS).
    TransferTooLarge {
        /// Bytes asked for.
        bytes: u64,
        /// The maximum.
        max: u64,
    },
    /// A data structure the controller returned (Identify data) holds a value the
    /// specification does not allow.
    BadData {
        /// The structure (`"Identify Namespace"`).
        structure: &'static str,
        /// The field, as the specification names it.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Why it was refused.
        why: &'static str,
    },
}

/// [`crate::Error::InvalidArgument`] as an NVMe error.
pub(crate) const fn invalid(why: &'static str) -> Error {
    Error::Core(crate::Error::InvalidArgument(why))
}

impl From<crate::Error> for Error {
    fn from(e: crate::Error) -> Self {
        Error::Core(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Error::Core(e) => fmt::Display::fmt(&e, f),
            Error::BadRegister { reg, value, why } => write!(
                f,
                "NVMe register {reg} reads {value:#x}, which is invalid: {why}; \
                 reset the controller, and check that the mapping is its BAR0"
            ),
            Error::DeviceGone { reg, value } => write!(
                f,
                "NVMe controller not responding: {reg} read {value:#x} (device removed, link \
                 down, or PCI memory decoding off); stop using it and probe the device again"
            ),
            Error::Unsupported { what } => write!(
                f,
                "the NVMe controller does not support {what}; check its capabilities before \
                 asking for it"
            ),
            Error::QueueFull { qid, entries } => write!(
                f,
                "NVMe submission queue {qid} is full ({} of {entries} slots in use); reap \
                 completions and pass their SQ head to update_head before pushing more",
                entries.saturating_sub(1)
            ),
            Error::Fatal { csts } => write!(
                f,
                "NVMe controller fatal status (CSTS {csts:#x}, CFS = 1); reset the controller"
            ),
            Error::NotReady { csts } => write!(
                f,
                "NVMe controller is no longer ready (CSTS {csts:#x}): it was reset or disabled \
                 behind the driver; bring it up again"
            ),
            Error::WaitTimeout { what, ms } => write!(
                f,
                "NVMe controller did not reach {what} within {ms} ms; check CSTS and reset it"
            ),
            Error::Timeout { qid, cid, opcode } => write!(
                f,
                "NVMe command {opcode:#04x} (cid {cid}) on queue {qid} got no completion before \
                 its deadline; its memory stays held until the controller is reset"
            ),
            Error::Busy { what } => write!(
                f,
                "{what} is still lent to a command that has not completed: poll its queue for \
                 the late completion, hand over other memory, or reset the controller"
            ),
            Error::CommandFailed {
                qid,
                cid,
                opcode,
                status,
            } => write!(
                f,
                "NVMe command {opcode:#04x} (cid {cid}) on queue {qid} failed: {status}"
            ),
            Error::UnknownCid { qid, cid } => write!(
                f,
                "NVMe completion on queue {qid} names cid {cid}, which has no command \
                 outstanding"
            ),
            Error::PrpSegment {
                index,
                addr,
                len,
                why,
            } => write!(
                f,
                "data segment {index} ({len} bytes at {addr:#x}) cannot be a PRP data pointer: \
                 {why}; allocate page-aligned memory or split the transfer"
            ),
            Error::CmbPlacement { entry, addr, why } => write!(
                f,
                "{entry} ({addr:#x}) breaks the controller's CMB data pointer rule: {why}; put \
                 all of a command's data in the CMB or all of it in host memory"
            ),
            Error::PeerAccessRequired { addr, len } => write!(
                f,
                "the p2p buffer at {addr:#x} ({len} bytes) is not in this controller's CMB or \
                 PMR but a peer device's memory: check the p2p distance between the two \
                 devices (map::linux::PeerAccess::check) or name an override \
                 (PeerAccess::override_unchecked), and build the data pointer with \
                 PrpBuilder::borrow_peer or lend_peer"
            ),
            Error::PeerUnmapped {
                addr,
                len,
                window,
                window_len,
            } => write!(
                f,
                "{len} bytes at bus address {addr:#x} are outside the peer BAR window \
                 {window:#x}..{:#x} mapped in this controller's IOMMU domain: the controller has no \
                 IOVA for them (map the BAR that holds them with VfioDma::map_peer_bar)",
                window + window_len
            ),
            Error::InvalidField {
                command,
                field,
                value,
                why,
            } => write!(f, "{command}: {field} = {value} is invalid: {why}"),
            Error::LbaRange {
                slba,
                nlb,
                capacity,
            } => write!(
                f,
                "blocks {slba} + {nlb} are past the end of the namespace ({capacity} blocks)"
            ),
            Error::DataLength {
                command,
                expected,
                got,
            } => write!(
                f,
                "{command} moves {expected} bytes but its data pointer covers {got}"
            ),
            Error::TransferTooLarge { bytes, max } => write!(
                f,
                "a transfer of {bytes} bytes exceeds the controller's maximum of {max} (MDTS); \
                 split it"
            ),
            Error::BadData {
                structure,
                field,
                value,
                why,
            } => write!(
                f,
                "{structure} data: {field} = {value:#x} is invalid: {why}"
            ),
        }
    }
}

impl core::error::Error for Error {}
