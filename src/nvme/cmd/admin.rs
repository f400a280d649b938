//! Admin command builders (NVMe Base Specification, "Admin Command Set").
//!
//! ```
//! use iomem::dma::MockDma;
//! use iomem::nvme::cmd::admin::{self, Priority};
//!
//! let dma = MockDma::new(1 << 16);
//! let ring = dma.alloc_contiguous(4096)?;
//! let cq = admin::create_io_cq(1, 64, ring.lease().addr(0)?, None)?;
//! assert_eq!((cq.dword(10), cq.dword(11)), (Some(63 << 16 | 1), Some(1))); // QSIZE, QID; PC
//! let sq = admin::create_io_sq(1, 64, ring.lease().addr(0)?, 1, Priority::Medium)?;
//! assert_eq!(sq.dword(11), Some(1 << 16 | 2 << 1 | 1));                   // CQID, QPRIO, PC
//! assert!(admin::create_io_cq(0, 64, ring.lease().addr(0)?, None).is_err());
//! # unsafe { dma.quarantine().release() };
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use super::{opcodes, Command};
use crate::dma::DmaAddr;
use crate::nvme::prp::DataPtr;
use crate::nvme::{Error, Result};

pub use crate::nvme::identify::IDENTIFY_BYTES;

fn field(command: &'static str, field: &'static str, value: u64, why: &'static str) -> Error {
    Error::InvalidField {
        command,
        field,
        value,
        why,
    }
}

/// What Identify returns (CDW10.CNS).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cns {
    /// 00h: the Identify Namespace data structure of NSID.
    Namespace,
    /// 01h: the Identify Controller data structure (NSID 0).
    Controller,
    /// 02h: up to 1024 active namespace IDs greater than NSID.
    ActiveNamespaces,
}

impl Cns {
    /// The CNS value.
    pub const fn value(self) -> u8 {
        match self {
            Cns::Namespace => 0,
            Cns::Controller => 1,
            Cns::ActiveNamespaces => 2,
        }
    }
}

/// Identify: `data` (exactly 4096 bytes) receives the structure `cns` names. NSID: a
/// namespace (1 to 0xFFFF_FFFE, or 0xFFFF_FFFF for the common capabilities) for
/// [`Cns::Namespace`], 0 for [`Cns::Controller`], the ID to list from (below 0xFFFF_FFFE) for
/// [`Cns::ActiveNamespaces`].
pub fn identify(cns: Cns, nsid: u32, data: DataPtr) -> Result<Command> {
    const C: &str = "Identify";
    if data.len() != IDENTIFY_BYTES {
        return Err(Error::DataLength {
            command: C,
            // CAST: constants and lengths fit u64.
            expected: IDENTIFY_BYTES as u64,
            got: data.len() as u64,
        });
    }
    let ok = match cns {
        Cns::Namespace => nsid != 0,
        Cns::Controller => nsid == 0,
        Cns::ActiveNamespaces => nsid < 0xffff_fffe,
    };
    if !ok {
        return Err(field(
            C,
            "NSID",
            nsid.into(),
            "Identify Namespace needs a namespace (not 0), Identify Controller NSID 0, the \
             active namespace list a start below 0xFFFFFFFE",
        ));
    }
    let cdw10 = u32::from(cns.value());
    Ok(Command::build(
        opcodes::admin::IDENTIFY,
        nsid,
        Some(&data),
        [cdw10, 0, 0, 0, 0, 0],
    ))
}

/// Checks a queue identifier and size, and a ring base, for the Create I/O queue commands.
fn queue(command: &'static str, qid: u16, entries: u16, ring: DmaAddr) -> Result<u32> {
    if qid == 0 {
        return Err(field(command, "QID", 0, "queue 0 is the admin queue"));
    }
    if entries < 2 {
        return Err(field(
            command,
            "QSIZE",
            entries.into(),
            "a queue has at least 2 entries",
        ));
    }
    if !ring.is_aligned(4096) {
        return Err(field(
            command,
            "PRP1",
            ring.get(),
            "a physically contiguous queue starts on a memory page boundary",
        ));
    }
    Ok(u32::from(entries - 1) << 16 | u32::from(qid))
}

/// A Create I/O Completion or Submission Queue command ([`create_io_cq`], [`create_io_sq`]).
///
/// Its PRP1 is the queue's ring, which the controller uses until the queue is deleted, long
/// after this command completes. So it is not a [`Command`]: a request lends memory until its
/// command's completion ([`Prp::into_request`](crate::nvme::prp::Prp::into_request) would hand
/// the ring back when the create completes, to be freed while the controller still writes it),
/// and a queue pushes a bare command only if it names no memory.
/// [`Controller::create_io_pair`](crate::nvme::ctrl::Controller::create_io_pair) pushes these
/// over rings the pair it makes holds; a driver running its own queues takes the command with
/// the unsafe [`into_command`](Self::into_command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueCreate(Command);

impl QueueCreate {
    /// The opcode ([`CREATE_IO_CQ`](opcodes::admin::CREATE_IO_CQ) or
    /// [`CREATE_IO_SQ`](opcodes::admin::CREATE_IO_SQ)).
    pub const fn opcode(&self) -> u8 {
        self.0.opcode()
    }

    /// Dword `n` (0 to 15), host-endian, as [`Command::dword`].
    pub fn dword(&self, n: usize) -> Option<u32> {
        self.0.dword(n)
    }

    /// The sixteen dwords, host-endian, as [`Command::dwords`].
    pub const fn dwords(&self) -> [u32; 16] {
        self.0.dwords()
    }

    /// The ring's address (PRP1).
    pub const fn ring(&self) -> u64 {
        self.0.prp1()
    }

    /// The command, to push.
    ///
    /// # Safety
    /// The ring (PRP1) is memory the controller may read (a submission queue) or write (a
    /// completion queue), and stays allocated, not reused and not referenced by Rust from when
    /// the command is pushed until the queue is deleted (its Delete I/O Queue completes) or the
    /// controller is reset — or until the create completes with an error status.
    pub const unsafe fn into_command(self) -> Command {
        self.0
    }
}

/// Create I/O Completion Queue `qid` (≥ 1) of `entries` (≥ 2) entries at `ring`, physically
/// contiguous (PC = 1), page aligned. `vector`: interrupts enabled (IEN) on that MSI-X vector,
/// or `None` for a polled queue.
pub fn create_io_cq(
    qid: u16,
    entries: u16,
    ring: DmaAddr,
    vector: Option<u16>,
) -> Result<QueueCreate> {
    let cdw10 = queue("Create I/O Completion Queue", qid, entries, ring)?;
    let cdw11 = match vector {
        Some(v) => u32::from(v) << 16 | 0b11,
        None => 0b01,
    };
    Ok(QueueCreate(Command::with_base(
        opcodes::admin::CREATE_IO_CQ,
        ring,
        [cdw10, cdw11, 0, 0, 0, 0],
    )))
}

/// The arbitration priority of a submission queue (weighted round robin; ignored otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Priority {
    /// 00b: Urgent.
    Urgent,
    /// 01b: High.
    High,
    /// 10b: Medium (the usual choice).
    #[default]
    Medium,
    /// 11b: Low.
    Low,
}

impl Priority {
    /// The QPRIO value.
    pub const fn value(self) -> u8 {
        match self {
            Priority::Urgent => 0,
            Priority::High => 1,
            Priority::Medium => 2,
            Priority::Low => 3,
        }
    }
}

/// Create I/O Submission Queue `qid` (≥ 1) of `entries` (≥ 2) entries at `ring`, physically
/// contiguous (PC = 1), completing to queue `cqid` (≥ 1).
pub fn create_io_sq(
    qid: u16,
    entries: u16,
    ring: DmaAddr,
    cqid: u16,
    priority: Priority,
) -> Result<QueueCreate> {
    const C: &str = "Create I/O Submission Queue";
    let cdw10 = queue(C, qid, entries, ring)?;
    if cqid == 0 {
        return Err(field(
            C,
            "CQID",
            0,
            "an I/O queue completes to an I/O completion queue",
        ));
    }
    let cdw11 = u32::from(cqid) << 16 | u32::from(priority.value()) << 1 | 1;
    Ok(QueueCreate(Command::with_base(
        opcodes::admin::CREATE_IO_SQ,
        ring,
        [cdw10, cdw11, 0, 0, 0, 0],
    )))
}

fn delete(command: &'static str, opcode: u8, qid: u16) -> Result<Command> {
    if qid == 0 {
        return Err(field(command, "QID", 0, "the admin queue is not deleted"));
    }
    Ok(Command::build(opcode, 0, None, [qid.into(), 0, 0, 0, 0, 0]))
}

/// Delete I/O Submission Queue `qid` (≥ 1).
pub fn delete_io_sq(qid: u16) -> Result<Command> {
    delete(
        "Delete I/O Submission Queue",
        opcodes::admin::DELETE_IO_SQ,
        qid,
    )
}

/// Delete I/O Completion Queue `qid` (≥ 1; its submission queues must be deleted first).
pub fn delete_io_cq(qid: u16) -> Result<Command> {
    delete(
        "Delete I/O Completion Queue",
        opcodes::admin::DELETE_IO_CQ,
        qid,
    )
}

/// Abort command `cid` of submission queue `sqid`.
pub fn abort(sqid: u16, cid: u16) -> Command {
    let cdw10 = u32::from(cid) << 16 | u32::from(sqid);
    Command::build(opcodes::admin::ABORT, 0, None, [cdw10, 0, 0, 0, 0, 0])
}

/// Features without a data buffer that this crate sets and gets (Feature Identifiers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeatureId {
    /// 01h: Arbitration.
    Arbitration,
    /// 06h: Volatile Write Cache.
    VolatileWriteCache,
    /// 07h: Number of Queues.
    NumberOfQueues,
}

impl FeatureId {
    /// The FID.
    pub const fn value(self) -> u8 {
        match self {
            FeatureId::Arbitration => 0x01,
            FeatureId::VolatileWriteCache => 0x06,
            FeatureId::NumberOfQueues => 0x07,
        }
    }
}

/// A feature value for Set Features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    /// Number of Queues: how many I/O submission and completion queues to allocate (1 to 65535
    /// each; the controller may grant fewer or more, see [`QueueCounts`]).
    NumberOfQueues {
        /// Submission queues wanted.
        sq: u16,
        /// Completion queues wanted.
        cq: u16,
    },
    /// Arbitration: burst (log2 of commands taken per queue per turn, 7 = unlimited) and the
    /// weights of the low, medium and high priority classes (0's based, as on the wire).
    Arbitration {
        /// Arbitration Burst (0 to 7).
        burst: u8,
        /// Low Priority Weight.
        low: u8,
        /// Medium Priority Weight.
        medium: u8,
        /// High Priority Weight.
        high: u8,
    },
    /// Volatile Write Cache enabled (WCE) or not.
    VolatileWriteCache {
        /// WCE.
        enabled: bool,
    },
}

/// Set Features with `feature`'s value (not saved across resets: SV = 0).
pub fn set_features(feature: Feature) -> Result<Command> {
    const C: &str = "Set Features";
    let (fid, cdw11) = match feature {
        Feature::NumberOfQueues { sq, cq } => {
            for (name, n) in [("NSQR", sq), ("NCQR", cq)] {
                if n == 0 {
                    return Err(field(C, name, 0, "at least one I/O queue"));
                }
            }
            (
                FeatureId::NumberOfQueues,
                u32::from(cq - 1) << 16 | u32::from(sq - 1),
            )
        }
        Feature::Arbitration {
            burst,
            low,
            medium,
            high,
        } => {
            if burst > 7 {
                return Err(field(
                    C,
                    "AB",
                    burst.into(),
                    "the arbitration burst is 0 to 7",
                ));
            }
            let v = u32::from(high) << 24 | u32::from(medium) << 16 | u32::from(low) << 8;
            (FeatureId::Arbitration, v | u32::from(burst))
        }
        Feature::VolatileWriteCache { enabled } => {
            (FeatureId::VolatileWriteCache, u32::from(enabled))
        }
    };
    Ok(Command::build(
        opcodes::admin::SET_FEATURES,
        0,
        None,
        [fid.value().into(), cdw11, 0, 0, 0, 0],
    ))
}

/// Which value Get Features returns (CDW10.SEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Select {
    /// 000b: the current value.
    #[default]
    Current,
    /// 001b: the default.
    Default,
    /// 010b: the saved value.
    Saved,
    /// 011b: the supported capabilities (saveable, changeable, per namespace).
    Supported,
}

/// Get Features `fid`, the value `select` names; the value is the completion's Dword 0.
pub fn get_features(fid: FeatureId, select: Select) -> Command {
    let sel: u32 = match select {
        Select::Current => 0,
        Select::Default => 1,
        Select::Saved => 2,
        Select::Supported => 3,
    };
    let cdw10 = sel << 8 | u32::from(fid.value());
    Command::build(
        opcodes::admin::GET_FEATURES,
        0,
        None,
        [cdw10, 0, 0, 0, 0, 0],
    )
}

/// The queues a controller allocated: the Number of Queues completion's Dword 0 (NSQA, NCQA,
/// 0's based on the wire), as counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueueCounts {
    /// I/O submission queues allocated (1 to 65536).
    pub sq: u32,
    /// I/O completion queues allocated (1 to 65536).
    pub cq: u32,
}

impl QueueCounts {
    /// Decodes a Number of Queues completion's Dword 0.
    pub const fn from_result(dw0: u32) -> Self {
        QueueCounts {
            sq: (dw0 & 0xffff) + 1,
            cq: (dw0 >> 16) + 1,
        }
    }
}
