//! The device's view of the wire format: a submission queue entry decoded from its 64 raw
//! little-endian bytes, a completion queue entry encoded into 16, and the status values the
//! model completes with (the Status Field of Dword 3 bits 31:17, as the specification lays it
//! out: SC 7:0, SCT 10:8, CRD 12:11, More 13, DNR 14).

/// A submission queue entry, decoded by the device from the bytes it fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sqe {
    /// CDW0 bits 7:0.
    pub opcode: u8,
    /// CDW0 bits 15:14: PRP (0) or SGL data pointers.
    pub psdt: u8,
    /// CDW0 bits 31:16.
    pub cid: u16,
    /// Namespace identifier.
    pub nsid: u32,
    /// Data pointer: PRP entry 1.
    pub prp1: u64,
    /// Data pointer: PRP entry 2 or a PRP list pointer.
    pub prp2: u64,
    /// Command dwords 10 to 15.
    pub cdw: [u32; 6],
}

fn le32(b: &[u8; 64], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn le64(b: &[u8; 64], at: usize) -> u64 {
    u64::from(le32(b, at)) | u64::from(le32(b, at + 4)) << 32
}

impl Sqe {
    /// Decodes the 64 bytes of an entry.
    pub fn parse(b: &[u8; 64]) -> Self {
        let mut cdw = [0u32; 6];
        for (i, d) in cdw.iter_mut().enumerate() {
            *d = le32(b, 40 + 4 * i);
        }
        Sqe {
            opcode: b[0],
            psdt: b[1] >> 6,
            cid: u16::from_le_bytes([b[2], b[3]]),
            nsid: le32(b, 4),
            prp1: le64(b, 24),
            prp2: le64(b, 32),
            cdw,
        }
    }

    /// Command dword `n` (10 to 15).
    pub fn cdw(&self, n: usize) -> u32 {
        self.cdw[n - 10]
    }
}

/// A completion queue entry before it is posted (the phase tag is the queue's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Cqe {
    /// Dword 0: command specific result.
    pub result: u32,
    /// SQ head pointer after the command was fetched.
    pub sq_head: u16,
    /// The submission queue the command came from.
    pub sqid: u16,
    /// Command identifier.
    pub cid: u16,
    /// Status Field (15 bits).
    pub status: u16,
}

impl Cqe {
    /// The 16 bytes of the entry with phase tag `phase`.
    pub fn bytes(&self, phase: bool) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&self.result.to_le_bytes());
        b[8..10].copy_from_slice(&self.sq_head.to_le_bytes());
        b[10..12].copy_from_slice(&self.sqid.to_le_bytes());
        let dw3 = u32::from(self.cid) | u32::from(phase) << 16 | u32::from(self.status) << 17;
        b[12..16].copy_from_slice(&dw3.to_le_bytes());
        b
    }
}

/// The status values the model completes with (SCT << 8 | SC, and [`DNR`]).
pub(super) mod sc {
    /// Do Not Retry.
    pub const DNR: u16 = 1 << 14;
    /// Generic 00h: Successful Completion.
    pub const SUCCESS: u16 = 0x0000;
    /// Generic 01h: Invalid Command Opcode.
    pub const INVALID_OPCODE: u16 = 0x0001;
    /// Generic 02h: Invalid Field in Command.
    pub const INVALID_FIELD: u16 = 0x0002;
    /// Generic 04h: Data Transfer Error.
    pub const DATA_TRANSFER: u16 = 0x0004;
    /// Generic 0Bh: Invalid Namespace or Format.
    pub const INVALID_NS: u16 = 0x000B;
    /// Generic 0Ch: Command Sequence Error.
    pub const SEQUENCE: u16 = 0x000C;
    /// Generic 12h: Invalid Use of Controller Memory Buffer.
    pub const INVALID_CMB_USE: u16 = 0x0012;
    /// Generic 13h: PRP Offset Invalid.
    pub const PRP_OFFSET: u16 = 0x0013;
    /// Generic 80h: LBA Out of Range.
    pub const LBA_RANGE: u16 = 0x0080;
    /// Command specific 00h: Completion Queue Invalid.
    pub const INVALID_CQ: u16 = 0x0100;
    /// Command specific 01h: Invalid Queue Identifier.
    pub const INVALID_QID: u16 = 0x0101;
    /// Command specific 02h: Invalid Queue Size (Maximum Queue Size Exceeded).
    pub const QUEUE_SIZE: u16 = 0x0102;
    /// Command specific 0Ch: Invalid Queue Deletion.
    pub const QUEUE_DELETION: u16 = 0x010C;
}
