//! The Identify data structures, decoded: [`IdentifyController`], [`IdentifyNamespace`],
//! [`ActiveNamespaces`], and the [`Namespace`] an I/O command is checked against.
//!
//! Decoding takes the 4096 bytes the controller wrote and never panics, whatever they are
//! (short input is an error too); values the specification does not allow are
//! [`Error::BadData`].
//!
//! ```
//! use iomem::nvme::identify::{IdentifyController, IdentifyNamespace, Namespace};
//!
//! let mut c = [0u8; 4096];
//! c[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
//! c[4..12].copy_from_slice(b"deadbeef");
//! c[4 + 8..24].fill(b' ');
//! c[77] = 7;                                            // MDTS: 2^7 pages
//! c[512] = 0x66;
//! c[513] = 0x44;
//! let ctrl = IdentifyController::decode(&c)?;
//! assert_eq!((ctrl.vid, ctrl.serial()), (0x1b36, "deadbeef"));
//! assert_eq!(ctrl.max_transfer(4096)?, Some(512 * 1024));
//!
//! let mut n = [0u8; 4096];
//! n[0..8].copy_from_slice(&1000u64.to_le_bytes());     // NSZE
//! n[8..16].copy_from_slice(&1000u64.to_le_bytes());    // NCAP
//! n[128 + 2] = 9;                                       // LBAF0: 512-byte blocks
//! let ns = Namespace::new(1, &IdentifyNamespace::decode(&n)?, &ctrl, 4096)?;
//! assert_eq!((ns.lba_size(), ns.lba_count(), ns.max_transfer()), (512, 1000, Some(512 * 1024)));
//! # Ok::<(), iomem::nvme::Error>(())
//! ```

use alloc::vec::Vec;

use crate::nvme::{Error, Result};

/// Bytes of an Identify data structure.
pub const IDENTIFY_BYTES: usize = 4096;

fn bad(structure: &'static str, field: &'static str, value: u64, why: &'static str) -> Error {
    Error::BadData {
        structure,
        field,
        value,
        why,
    }
}

/// The 4096 bytes of a structure, or an error naming it.
fn page<'a>(structure: &'static str, data: &'a [u8]) -> Result<&'a [u8; IDENTIFY_BYTES]> {
    // CAST: a slice length fits u64.
    let len = data.len() as u64;
    data.get(..IDENTIFY_BYTES)
        .and_then(|d| d.try_into().ok())
        .ok_or(bad(
            structure,
            "length",
            len,
            "an Identify structure is 4096 bytes",
        ))
}

fn le16(d: &[u8; IDENTIFY_BYTES], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}
fn le32(d: &[u8; IDENTIFY_BYTES], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}
fn le64(d: &[u8; IDENTIFY_BYTES], at: usize) -> u64 {
    u64::from(le32(d, at)) | u64::from(le32(d, at + 4)) << 32
}

/// An ASCII field of fixed width: trailing spaces and NULs trimmed; bytes that are not UTF-8
/// end the string.
fn text<const N: usize>(d: &[u8; IDENTIFY_BYTES], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&d[at..at + N]);
    out
}

fn as_text(b: &[u8]) -> &str {
    let s = match core::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    };
    s.trim_end_matches([' ', '\0'])
}

/// The Identify Controller data structure (CNS 01h): the fields a driver uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyController {
    /// PCI Vendor ID (VID).
    pub vid: u16,
    /// PCI Subsystem Vendor ID (SSVID).
    pub ssvid: u16,
    sn: [u8; 20],
    mn: [u8; 40],
    fr: [u8; 8],
    /// Maximum Data Transfer Size: 2^MDTS minimum memory pages, 0 for no limit.
    pub mdts: u8,
    /// Controller ID (CNTLID).
    pub cntlid: u16,
    /// Version (VER), as the VS register encodes it (0 before NVMe 1.2).
    pub ver: u32,
    /// Optional Admin Command Support (OACS).
    pub oacs: u16,
    /// Submission Queue Entry Size: required (bits 3:0) and maximum (7:4), log2 of bytes.
    pub sqes: u8,
    /// Completion Queue Entry Size: required (bits 3:0) and maximum (7:4), log2 of bytes.
    pub cqes: u8,
    /// Maximum Outstanding Commands (MAXCMD; 0 if not reported).
    pub maxcmd: u16,
    /// Number of Namespaces (NN): the largest namespace ID.
    pub nn: u32,
    /// Optional NVM Command Support (ONCS).
    pub oncs: u16,
    /// Volatile Write Cache (VWC): bit 0 set if present.
    pub vwc: u8,
    /// SGL Support (SGLS).
    pub sgls: u32,
}

impl IdentifyController {
    const NAME: &'static str = "Identify Controller";

    /// Decodes the structure from (at least) 4096 bytes. Refuses entry sizes this crate cannot
    /// use: a required SQ entry size other than 64 bytes, CQ other than 16, or a maximum below
    /// the required.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let d = page(Self::NAME, data)?;
        let c = IdentifyController {
            vid: le16(d, 0),
            ssvid: le16(d, 2),
            sn: text(d, 4),
            mn: text(d, 24),
            fr: text(d, 64),
            mdts: d[77],
            cntlid: le16(d, 78),
            ver: le32(d, 80),
            oacs: le16(d, 256),
            sqes: d[512],
            cqes: d[513],
            maxcmd: le16(d, 514),
            nn: le32(d, 516),
            oncs: le16(d, 520),
            vwc: d[525],
            sgls: le32(d, 536),
        };
        for (field, v, want) in [("SQES", c.sqes, 6), ("CQES", c.cqes, 4)] {
            if v & 0xf != want || v >> 4 < v & 0xf {
                return Err(bad(
                    Self::NAME,
                    field,
                    v.into(),
                    "the required entry size must be 64 bytes (SQES) or 16 (CQES), and the \
                     maximum at least that",
                ));
            }
        }
        Ok(c)
    }

    /// Serial Number (SN), trimmed.
    pub fn serial(&self) -> &str {
        as_text(&self.sn)
    }
    /// Model Number (MN), trimmed.
    pub fn model(&self) -> &str {
        as_text(&self.mn)
    }
    /// Firmware Revision (FR), trimmed.
    pub fn firmware(&self) -> &str {
        as_text(&self.fr)
    }

    /// The largest transfer in bytes (2^MDTS × `min_page`, the CAP.MPSMIN page size), or
    /// `None` if MDTS is 0 (no limit). An MDTS whose size does not fit the address space is
    /// [`Error::BadData`].
    pub fn max_transfer(&self, min_page: u64) -> Result<Option<usize>> {
        if self.mdts == 0 {
            return Ok(None);
        }
        let bytes = 1u64
            .checked_shl(self.mdts.into())
            .and_then(|p| p.checked_mul(min_page))
            .and_then(|b| usize::try_from(b).ok())
            .ok_or(bad(
                Self::NAME,
                "MDTS",
                self.mdts.into(),
                "the maximum transfer does not fit the address space",
            ))?;
        Ok(Some(bytes))
    }
}

/// One LBA Format (LBAF) of a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LbaFormat {
    /// Metadata bytes per block (MS).
    pub ms: u16,
    /// log2 of the block size (LBADS), 9 to 16.
    pub lbads: u8,
    /// Relative Performance (RP), 0 best.
    pub rp: u8,
}

/// The Identify Namespace data structure (CNS 00h): size and block format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentifyNamespace {
    /// Namespace Size (NSZE), in blocks.
    pub nsze: u64,
    /// Namespace Capacity (NCAP), in blocks.
    pub ncap: u64,
    /// Namespace Utilization (NUSE), in blocks.
    pub nuse: u64,
    /// Formatted LBA Size (FLBAS), raw.
    pub flbas: u8,
    /// The LBA formats (NLBAF + 1 of them).
    pub formats: Vec<LbaFormat>,
}

impl IdentifyNamespace {
    const NAME: &'static str = "Identify Namespace";

    /// Decodes the structure. An inactive namespace (NSZE = 0) is [`Error::BadData`], as are
    /// NCAP > NSZE, NUSE > NCAP, more than 64 formats, FLBAS naming a format past NLBAF, and a
    /// chosen format whose LBADS is outside 9 to 16.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let d = page(Self::NAME, data)?;
        let (nsze, ncap, nuse) = (le64(d, 0), le64(d, 8), le64(d, 16));
        if nsze == 0 {
            return Err(bad(Self::NAME, "NSZE", 0, "the namespace is not active"));
        }
        if ncap > nsze || nuse > ncap {
            return Err(bad(
                Self::NAME,
                "NCAP",
                ncap,
                "NUSE ≤ NCAP ≤ NSZE is required",
            ));
        }
        let nlbaf = usize::from(d[25]);
        if nlbaf > 63 {
            return Err(bad(
                Self::NAME,
                "NLBAF",
                nlbaf as u64,
                "at most 64 LBA formats",
            ));
        }
        let formats = (0..=nlbaf)
            .map(|i| {
                let v = le32(d, 128 + 4 * i);
                // CAST: bit fields of the LBAF dword.
                LbaFormat {
                    ms: v as u16,
                    lbads: (v >> 16) as u8,
                    rp: (v >> 24) as u8 & 3,
                }
            })
            .collect();
        let ns = IdentifyNamespace {
            nsze,
            ncap,
            nuse,
            flbas: d[26],
            formats,
        };
        let f = ns.format()?;
        if !(9..=16).contains(&f.lbads) {
            return Err(bad(
                Self::NAME,
                "LBADS",
                f.lbads.into(),
                "a block is 512 bytes to 64 KiB",
            ));
        }
        Ok(ns)
    }

    /// The index of the format in use: FLBAS bits 3:0, with bits 6:5 as the high bits when
    /// there are more than 16 formats.
    pub fn format_index(&self) -> usize {
        let low = usize::from(self.flbas & 0xf);
        if self.formats.len() > 16 {
            low | usize::from(self.flbas >> 5 & 3) << 4
        } else {
            low
        }
    }

    /// The format in use.
    pub fn format(&self) -> Result<LbaFormat> {
        let i = self.format_index();
        self.formats.get(i).copied().ok_or(bad(
            Self::NAME,
            "FLBAS",
            self.flbas.into(),
            "names an LBA format past NLBAF",
        ))
    }
}

/// The Active Namespace ID list (CNS 02h): up to 1024 IDs, ascending, zeros after the last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveNamespaces {
    ids: Vec<u32>,
}

impl ActiveNamespaces {
    /// Decodes the list; IDs that are not ascending are [`Error::BadData`].
    pub fn decode(data: &[u8]) -> Result<Self> {
        const NAME: &str = "Active Namespace ID list";
        let d = page(NAME, data)?;
        let mut ids = Vec::new();
        for i in 0..IDENTIFY_BYTES / 4 {
            let id = le32(d, 4 * i);
            if id == 0 {
                break;
            }
            if ids.last().is_some_and(|&l| l >= id) || id >= 0xffff_fffe {
                return Err(bad(
                    NAME,
                    "NSID",
                    id.into(),
                    "IDs ascend and are below 0xFFFFFFFE",
                ));
            }
            ids.push(id);
        }
        Ok(ActiveNamespaces { ids })
    }

    /// The IDs.
    pub fn ids(&self) -> &[u32] {
        &self.ids
    }
}

/// A namespace as an I/O command needs it: ID, block size, block count, maximum transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Namespace {
    nsid: u32,
    lba_size: usize,
    lba_count: u64,
    max_transfer: Option<usize>,
}

impl Namespace {
    /// Namespace `nsid` from its Identify Namespace data and the controller's (MDTS, in pages
    /// of `min_page` bytes = CAP.MPSMIN).
    pub fn new(
        nsid: u32,
        ns: &IdentifyNamespace,
        ctrl: &IdentifyController,
        min_page: u64,
    ) -> Result<Self> {
        let f = ns.format()?;
        Namespace::from_parts(nsid, 1 << f.lbads, ns.nsze, ctrl.max_transfer(min_page)?)
    }

    /// A namespace from its numbers, checked: `nsid` 1 to 0xFFFF_FFFE, `lba_size` a power of
    /// two from 512 to 65536, at least one block.
    pub fn from_parts(
        nsid: u32,
        lba_size: usize,
        lba_count: u64,
        max_transfer: Option<usize>,
    ) -> Result<Self> {
        const C: &str = "Namespace";
        let field = |field, value, why| Error::InvalidField {
            command: C,
            field,
            value,
            why,
        };
        if nsid == 0 || nsid >= 0xffff_fffe {
            return Err(field("NSID", nsid.into(), "1 to 0xFFFFFFFD"));
        }
        if !lba_size.is_power_of_two() || !(512..=65536).contains(&lba_size) {
            // CAST: usize fits u64.
            return Err(field(
                "LBA size",
                lba_size as u64,
                "a power of two from 512 to 65536",
            ));
        }
        if lba_count == 0 {
            return Err(field("NSZE", 0, "at least one block"));
        }
        Ok(Namespace {
            nsid,
            lba_size,
            lba_count,
            max_transfer,
        })
    }

    /// Namespace ID.
    pub fn nsid(&self) -> u32 {
        self.nsid
    }
    /// Bytes per block.
    pub fn lba_size(&self) -> usize {
        self.lba_size
    }
    /// Blocks in the namespace (NSZE).
    pub fn lba_count(&self) -> u64 {
        self.lba_count
    }
    /// The largest transfer in bytes, `None` for no limit.
    pub fn max_transfer(&self) -> Option<usize> {
        self.max_transfer
    }
}
