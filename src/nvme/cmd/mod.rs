//! Typed NVMe commands: the 64-byte submission queue entry ([`Command`]), the opcodes, and the
//! builders that make commands ([`admin`], [`nvm`]) with every field checked.
//!
//! A command's data pointers tell the controller where to read or write memory, so a command
//! is built only by a builder from a [`DataPtr`] (which in turn is
//! made only from [`DmaAddr`]s of memory that owns its bytes) or from a
//! queue's `DmaAddr`. No user code assembles command dwords or PRP entries by hand; the raw
//! path, [`Command::from_dwords`], is `unsafe` and exists for tests and vendor commands.
//!
//! What a command lends the device travels with it as a [`Lent`] in a [`Request`], and comes
//! back when the command completes ([`Lent::complete`]); a request abandoned mid-flight never
//! frees memory the device may still write.
//!
//! ```
//! use iomem::nvme::cmd::{admin, nvm, opcodes};
//!
//! let flush = nvm::flush(1);
//! assert_eq!((flush.opcode(), flush.nsid()), (opcodes::nvm::FLUSH, 1));
//! let del = admin::delete_io_sq(3)?;
//! assert_eq!((del.opcode(), del.dword(10)), (opcodes::admin::DELETE_IO_SQ, Some(3)));
//! assert!(admin::delete_io_sq(0).is_err()); // the admin queue is not deleted
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

pub mod admin;
mod lent;
pub mod nvm;

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub use lent::{DeviceHold, Held, Lent, Push, Request};

use crate::dma::DmaAddr;
use crate::nvme::prp::DataPtr;

/// Opcodes of the commands this crate builds (NVMe Base Specification, "Admin Command Set" and
/// the NVM Command Set Specification).
pub mod opcodes {
    /// Admin command set.
    pub mod admin {
        /// Delete I/O Submission Queue.
        pub const DELETE_IO_SQ: u8 = 0x00;
        /// Create I/O Submission Queue.
        pub const CREATE_IO_SQ: u8 = 0x01;
        /// Delete I/O Completion Queue.
        pub const DELETE_IO_CQ: u8 = 0x04;
        /// Create I/O Completion Queue.
        pub const CREATE_IO_CQ: u8 = 0x05;
        /// Identify.
        pub const IDENTIFY: u8 = 0x06;
        /// Abort.
        pub const ABORT: u8 = 0x08;
        /// Set Features.
        pub const SET_FEATURES: u8 = 0x09;
        /// Get Features.
        pub const GET_FEATURES: u8 = 0x0a;
    }
    /// NVM command set.
    pub mod nvm {
        /// Flush.
        pub const FLUSH: u8 = 0x00;
        /// Write.
        pub const WRITE: u8 = 0x01;
        /// Read.
        pub const READ: u8 = 0x02;
        /// Write Zeroes.
        pub const WRITE_ZEROES: u8 = 0x08;
    }
}

/// A 64-byte submission queue entry (the common command format), host-endian.
///
/// Made by the builders in [`admin`] and [`nvm`] (or, unsafely, [`Command::from_dwords`]); its
/// fields are private so that a data pointer cannot be set from a number. The queue layer sets
/// the command identifier ([`set_cid`](Self::set_cid)) and writes [`to_le`](Self::to_le) into
/// its ring.
///
/// # Invariant
/// Every address in the command (PRP1, PRP2 or the PRP list it names, MPTR, a queue base) is
/// memory the device may access as the opcode implies: each came from a [`DmaAddr`] (or the
/// caller of `from_dwords` vouched for it).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Command {
    /// The dwords in pairs, host-endian: `q[k]` holds dword `2k` in its low half and `2k + 1`
    /// in its high half. Built and copied as whole 64-bit words, so a queue reading the pairs
    /// back ([`wire_qwords`](Self::wire_qwords)) loads what whole stores wrote (no load spans
    /// two narrower stores, which CPUs cannot forward from their store buffers).
    q: [u64; 8],
}

/// The pair word of dwords `lo`, `hi`.
#[inline(always)]
const fn pair(lo: u32, hi: u32) -> u64 {
    lo as u64 | (hi as u64) << 32
}

/// The little-endian wire form of a [`Command`]: what the controller fetches from its
/// submission queue. Plain bytes; it cannot be turned back into a `Command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct WireCommand([u32; 16]);

static_assertions::assert_eq_size!(WireCommand, [u8; crate::nvme::regs::SQ_ENTRY_SIZE]);

impl core::fmt::Debug for Command {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Command")
            .field("opcode", &format_args!("{:#04x}", self.opcode()))
            .field("cid", &self.cid())
            .field("nsid", &self.nsid())
            .field("prp1", &format_args!("{:#x}", self.prp1()))
            .field("prp2", &format_args!("{:#x}", self.prp2()))
            .field("cdw10..16", &format_args!("{:08x?}", &self.dwords()[10..]))
            .finish()
    }
}

impl Command {
    /// A command from its sixteen dwords, host-endian (CDW0 first: opcode in bits 7:0, FUSE and
    /// PSDT in 15:8, CID in 31:16; NSID; CDW2–3; MPTR in 4–5; PRP1 in 6–7; PRP2 in 8–9;
    /// CDW10–15). For tests and vendor-specific commands; everything else has a builder.
    ///
    /// # Safety
    /// Every address in the dwords — PRP1, PRP2 (or the PRP list it names and every entry of
    /// it), MPTR, a queue base — is memory the device may access as the opcode implies (read,
    /// write, or both), and stays allocated and unaliased by Rust references for as long as the
    /// command is in flight (from its doorbell to its completion, or a controller reset).
    pub const unsafe fn from_dwords(dw: [u32; 16]) -> Command {
        let mut q = [0u64; 8];
        let mut k = 0;
        while k < 8 {
            q[k] = pair(dw[2 * k], dw[2 * k + 1]);
            k += 1;
        }
        Command { q }
    }

    /// A command of `opcode` for namespace `nsid` with the given data pointer and command
    /// dwords 10 to 15 — the builders' common path.
    #[inline]
    pub(crate) fn build(opcode: u8, nsid: u32, data: Option<&DataPtr>, cdw: [u32; 6]) -> Self {
        let (prp1, prp2) = match data {
            Some(d) => (d.prp1().get(), d.prp2().wire()),
            None => (0, 0),
        };
        Command {
            q: [
                pair(u32::from(opcode), nsid),
                0,
                0,
                prp1,
                prp2,
                pair(cdw[0], cdw[1]),
                pair(cdw[2], cdw[3]),
                pair(cdw[4], cdw[5]),
            ],
        }
    }

    /// A command whose PRP1 is a queue (or other contiguous) base address and that has no PRP2.
    pub(crate) fn with_base(opcode: u8, base: DmaAddr, cdw: [u32; 6]) -> Self {
        let mut c = Command::build(opcode, 0, None, cdw);
        c.q[3] = base.get();
        c
    }

    /// A data command with no flags: `opcode` for namespace `nsid` with command identifier
    /// `cid`, PRP1 and PRP2, starting LBA `slba` (CDW10–11) and CDW12 `cdw12` (the 0's based
    /// block count); every other dword 0. What a prepared command patches per push; the caller
    /// vouches for the addresses as for any command's (the invariant).
    #[cfg(feature = "std")]
    #[inline(always)]
    pub(crate) fn data(
        opcode: u8,
        nsid: u32,
        cid: u16,
        [prp1, prp2]: [u64; 2],
        slba: u64,
        cdw12: u32,
    ) -> Self {
        Command {
            q: [
                pair(u32::from(opcode) | u32::from(cid) << 16, nsid),
                0,
                0,
                prp1,
                prp2,
                slba,
                pair(cdw12, 0),
                0,
            ],
        }
    }

    /// CDW0 bits 7:0: the opcode.
    pub const fn opcode(&self) -> u8 {
        // CAST: the low byte of CDW0 is the opcode.
        self.q[0] as u8
    }

    /// CDW0 bits 31:16: the command identifier.
    pub const fn cid(&self) -> u16 {
        // CAST: the high half of CDW0 is the CID.
        (self.q[0] >> 16) as u16
    }

    /// Sets the command identifier (the queue layer's job: unique among the outstanding
    /// commands of its submission queue).
    #[inline]
    pub fn set_cid(&mut self, cid: u16) {
        self.q[0] = (self.q[0] & !0xffff_0000) | u64::from(cid) << 16;
    }

    /// The namespace identifier (CDW1).
    pub const fn nsid(&self) -> u32 {
        // CAST: the high half of the first pair is CDW1.
        (self.q[0] >> 32) as u32
    }

    /// Command dword `n` (0 to 15), host-endian; `None` past 15.
    pub fn dword(&self, n: usize) -> Option<u32> {
        // CAST: the low or high half of pair `n / 2`.
        self.q.get(n / 2).map(|&p| (p >> (32 * (n % 2))) as u32)
    }

    /// All sixteen dwords, host-endian.
    pub const fn dwords(&self) -> [u32; 16] {
        let mut dw = [0u32; 16];
        let mut k = 0;
        while k < 8 {
            // CAST: the halves of pair `k`.
            dw[2 * k] = self.q[k] as u32;
            dw[2 * k + 1] = (self.q[k] >> 32) as u32;
            k += 1;
        }
        dw
    }

    /// PRP entry 1 (CDW6–7): the first data page, or a queue's base address.
    pub const fn prp1(&self) -> u64 {
        self.q[3]
    }

    /// PRP entry 2 (CDW8–9): the second data page, a PRP list's address, or 0.
    pub const fn prp2(&self) -> u64 {
        self.q[4]
    }

    /// The metadata pointer (CDW4–5), or 0.
    #[inline(always)]
    pub(crate) const fn mptr(&self) -> u64 {
        self.q[2]
    }

    /// Whether the command names memory: a metadata pointer (CDW4–5), PRP1 or PRP2 (a data
    /// pointer, or a queue base) that is not 0.
    #[inline(always)]
    pub const fn names_memory(&self) -> bool {
        self.q[2] | self.q[3] | self.q[4] != 0
    }

    /// The command as the controller reads it: every dword little-endian.
    #[inline]
    pub fn to_le(&self) -> WireCommand {
        WireCommand(self.dwords().map(u32::to_le))
    }

    /// The wire form as eight 64-bit words: stored in order with native-endian 64-bit stores,
    /// they lay down the same bytes as [`to_le`](Self::to_le) (dwords `2k`, `2k + 1` each
    /// little-endian). What a ring in host RAM writes, one store per word.
    #[inline]
    pub(crate) fn wire_qwords(&self) -> [u64; 8] {
        self.q.map(u64::to_le)
    }

    /// The wire form as bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.to_le().as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    #[test]
    fn accessors_read_the_dwords() {
        let mut dw = [0u32; 16];
        dw[0] = 0x1234_0002;
        dw[1] = 7;
        dw[6] = 0x9000_0000;
        dw[7] = 0x1;
        dw[8] = 0x10;
        dw[15] = 0xdead_beef;
        // SAFETY: the command is never submitted.
        let mut c = unsafe { Command::from_dwords(dw) };
        assert_eq!((c.opcode(), c.cid(), c.nsid()), (2, 0x1234, 7));
        assert_eq!((c.prp1(), c.prp2()), (0x1_9000_0000, 0x10));
        assert_eq!((c.dword(15), c.dword(16)), (Some(0xdead_beef), None));
        c.set_cid(0xbeef);
        assert_eq!((c.cid(), c.opcode()), (0xbeef, 2));
        let b = c.to_bytes();
        assert_eq!(&b[..4], &[2, 0, 0xef, 0xbe]);
        assert_eq!(&b[24..32], &0x1_9000_0000u64.to_le_bytes());
        let q: Vec<u8> = c
            .wire_qwords()
            .iter()
            .flat_map(|w| w.to_ne_bytes())
            .collect();
        assert_eq!(q, b);
    }
}
