//! NVM command set builders: Read, Write, Flush, Write Zeroes (NVM Command Set Specification).
//!
//! Block counts are 1-based here (`nlb` = 1 means one block) and 0's based on the wire. Every
//! builder checks the range against the [`Namespace`] — at least one block, at most 65536,
//! inside the namespace — and, with data, that the data pointer covers exactly `nlb` blocks and
//! no more than the controller's maximum transfer.
//!
//! ```
//! use iomem::dma::MockDma;
//! use iomem::nvme::cmd::nvm::{self, Namespace};
//! use iomem::nvme::prp::{no_list, PageSize, PrpBuilder};
//!
//! let ns = Namespace::from_parts(1, 512, 1 << 20, Some(128 * 1024))?;
//! let dma = MockDma::new(1 << 16);
//! let buf = dma.alloc(4096)?;
//! let req = PrpBuilder::new(PageSize::MIN, None)
//!     .lend(buf.lease(), 0..4096, no_list)?
//!     .into_request(|d| nvm::read(&ns, 0x1_0000, 8, d))?;
//! let c = req.command();
//! assert_eq!((c.dword(10), c.dword(11), c.dword(12)), (Some(0x1_0000), Some(0), Some(7)));
//! assert!(nvm::write_zeroes(&ns, (1 << 20) - 1, 2).is_err()); // past the end
//! # unsafe { dma.quarantine().release() };
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use super::{opcodes, Command};
pub use crate::nvme::identify::Namespace;
use crate::nvme::prp::DataPtr;
use crate::nvme::{Error, Result};

/// The most blocks one command moves (NLB is 16 bits, 0's based).
pub const MAX_BLOCKS: u32 = 65536;

/// Checks `slba`, `nlb` against `ns` and returns CDW10–12.
#[inline]
fn range(command: &'static str, ns: &Namespace, slba: u64, nlb: u32) -> Result<[u32; 3]> {
    if nlb == 0 || nlb > MAX_BLOCKS {
        return Err(Error::InvalidField {
            command,
            field: "NLB",
            value: nlb.into(),
            why: "a command moves 1 to 65536 blocks",
        });
    }
    match slba.checked_add(nlb.into()) {
        Some(end) if end <= ns.lba_count() => {}
        _ => {
            return Err(Error::LbaRange {
                slba,
                nlb,
                capacity: ns.lba_count(),
            })
        }
    }
    // CAST: the halves of SLBA; NLB - 1 fits 16 bits (checked above).
    Ok([slba as u32, (slba >> 32) as u32, nlb - 1])
}

/// Checks a data command's range (as [`range`]) and that `len` bytes of data are exactly
/// `nlb` blocks, within the controller's maximum transfer; returns CDW10–12. The rules of
/// [`read`] and [`write`], also applied once to a prepared command's template
/// ([`QueuePair::prepare`](crate::nvme::ctrl::QueuePair::prepare)).
#[inline]
pub(crate) fn check_data(
    command: &'static str,
    ns: &Namespace,
    slba: u64,
    nlb: u32,
    len: usize,
) -> Result<[u32; 3]> {
    let cdw = range(command, ns, slba, nlb)?;
    // CAST: usize fits u64; at most 65536 × 65536 bytes.
    let bytes = u64::from(nlb) * ns.lba_size() as u64;
    if len as u64 != bytes {
        return Err(Error::DataLength {
            command,
            expected: bytes,
            got: len as u64,
        });
    }
    if let Some(max) = ns.max_transfer() {
        // CAST: usize fits u64.
        if bytes > max as u64 {
            return Err(Error::TransferTooLarge {
                bytes,
                max: max as u64,
            });
        }
    }
    Ok(cdw)
}

#[inline]
fn data_command(
    command: &'static str,
    opcode: u8,
    ns: &Namespace,
    slba: u64,
    nlb: u32,
    data: DataPtr,
) -> Result<Command> {
    let [c10, c11, c12] = check_data(command, ns, slba, nlb, data.len())?;
    Ok(Command::build(
        opcode,
        ns.nsid(),
        Some(&data),
        [c10, c11, c12, 0, 0, 0],
    ))
}

/// Read `nlb` blocks from `slba` of `ns` into `data`.
#[inline]
pub fn read(ns: &Namespace, slba: u64, nlb: u32, data: DataPtr) -> Result<Command> {
    data_command("Read", opcodes::nvm::READ, ns, slba, nlb, data)
}

/// Write `nlb` blocks at `slba` of `ns` from `data`.
#[inline]
pub fn write(ns: &Namespace, slba: u64, nlb: u32, data: DataPtr) -> Result<Command> {
    data_command("Write", opcodes::nvm::WRITE, ns, slba, nlb, data)
}

/// Flush namespace `nsid`'s volatile write cache (0xFFFF_FFFF: every namespace).
pub fn flush(nsid: u32) -> Command {
    Command::build(opcodes::nvm::FLUSH, nsid, None, [0; 6])
}

/// Write Zeroes to `nlb` blocks at `slba` of `ns` (no data pointer).
pub fn write_zeroes(ns: &Namespace, slba: u64, nlb: u32) -> Result<Command> {
    let [c10, c11, c12] = range("Write Zeroes", ns, slba, nlb)?;
    Ok(Command::build(
        opcodes::nvm::WRITE_ZEROES,
        ns.nsid(),
        None,
        [c10, c11, c12, 0, 0, 0],
    ))
}
