//! Access Control Services: whether a port redirects peer-to-peer requests up to the root,
//! read from the ACS extended capability in the sysfs `config` file.
//!
//! As Linux's `pci_bridge_has_acs_redir` decides it: a port with the ACS capability (ID 0x000D)
//! whose control register has P2P Request Redirect, P2P Completion Redirect or Egress Control
//! set sends peer traffic upstream. Extended config space (offset 0x100 on) is readable by
//! root only: an unprivileged read of `config` stops at 64 bytes. That is "unknown", never
//! "no ACS".

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::string::{String, ToString};

use super::error::io_err;
use super::{Error, Result};

/// The extended capability ID of Access Control Services.
pub const PCI_EXT_CAP_ID_ACS: u16 = 0x000d;
/// Offset of the ACS control register in the ACS capability.
pub const PCI_ACS_CTRL: u64 = 0x06;
/// ACS control bit: P2P Request Redirect.
pub const PCI_ACS_RR: u16 = 1 << 2;
/// ACS control bit: P2P Completion Redirect.
pub const PCI_ACS_CR: u16 = 1 << 3;
/// ACS control bit: P2P Egress Control.
pub const PCI_ACS_EC: u16 = 1 << 5;

/// Size of conventional config space; extended capabilities start here.
const CFG_SPACE_SIZE: u64 = 0x100;
/// Size of PCIe extended config space.
const CFG_SPACE_EXP_SIZE: u64 = 0x1000;

/// What a device's config space says about ACS redirection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Acs {
    /// No ACS capability (or no extended config space at all): nothing is redirected.
    Absent,
    /// The ACS control register.
    Control(u16),
    /// Extended config space could not be read; the reason, for the verdict.
    Unreadable(String),
}

impl Acs {
    /// Whether the control register redirects peer traffic upstream (RR, CR or EC).
    pub(super) fn redirects(&self) -> bool {
        matches!(self, Acs::Control(c) if c & (PCI_ACS_RR | PCI_ACS_CR | PCI_ACS_EC) != 0)
    }
}

/// Reads the ACS state of the device whose sysfs directory is `dir`. I/O failures are
/// [`Acs::Unreadable`]; a broken capability list is [`Error::BadCapability`].
pub(super) fn read_acs(dir: &Path) -> Result<Acs> {
    let path = dir.join("config");
    let unreadable =
        |op: &'static str, e: io::Error| Acs::Unreadable(io_err(op, &path, e).to_string());
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) => return Ok(unreadable("open", e)),
    };
    let len = match file.metadata() {
        Ok(m) => m.len(),
        Err(e) => return Ok(unreadable("stat", e)),
    };
    let mut buf = std::vec![0u8; usize::try_from(len.min(CFG_SPACE_EXP_SIZE)).unwrap_or(0)];
    let mut got = 0;
    while got < buf.len() {
        // CAST: `got` is below the buffer's length, at most 4096.
        match file.read_at(&mut buf[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Ok(unreadable("read", e)),
        }
    }
    parse_acs(&buf[..got], len, &path)
}

/// Finds the ACS control register in `cfg`, the bytes read from a `config` file of `file_len`
/// bytes (sysfs sizes it as the device's config space: 256 without extended space, 4096 with).
pub(super) fn parse_acs(cfg: &[u8], file_len: u64, path: &Path) -> Result<Acs> {
    if file_len <= CFG_SPACE_SIZE {
        // Conventional PCI config space only: no extended capabilities (Linux: cfg_size 256).
        return Ok(Acs::Absent);
    }
    // CAST: a slice length fits in u64.
    let got = cfg.len() as u64;
    if got < file_len.min(CFG_SPACE_EXP_SIZE) {
        return Ok(Acs::Unreadable(std::format!(
            "read {got} of the {file_len} bytes of {}: extended config space needs root (CAP_SYS_ADMIN)",
            path.display()
        )));
    }
    let bad = |offset: u64, why: &'static str| Error::BadCapability {
        path: path.to_path_buf(),
        offset,
        why,
    };
    let mut pos = CFG_SPACE_SIZE;
    // Each header takes at least 8 bytes: more steps than that is a loop (Linux's `ttl`).
    for _ in 0..(CFG_SPACE_EXP_SIZE - CFG_SPACE_SIZE) / 8 {
        let header = word32(cfg, pos).ok_or_else(|| bad(pos, "header beyond config space"))?;
        if header == 0 || (header == u32::MAX && pos == CFG_SPACE_SIZE) {
            // No extended capabilities (all-ones: nothing answers there).
            return Ok(Acs::Absent);
        }
        // CAST: the low 16 bits are the ID.
        if header as u16 == PCI_EXT_CAP_ID_ACS {
            let c = word16(cfg, pos + PCI_ACS_CTRL)
                .ok_or_else(|| bad(pos, "ACS control register beyond config space"))?;
            return Ok(Acs::Control(c));
        }
        let next = u64::from((header >> 20) & 0xffc);
        if next == 0 {
            return Ok(Acs::Absent);
        }
        if next < CFG_SPACE_SIZE {
            return Err(bad(pos, "next pointer below the extended space"));
        }
        pos = next;
    }
    Err(bad(pos, "the list does not end"))
}

fn word32(cfg: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    let b = cfg.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}

fn word16(cfg: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    let b = cfg.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes([b[0], b[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::linux::testutil::ext_config;

    fn p() -> &'static Path {
        Path::new("/x/config")
    }

    #[test]
    fn the_acs_control_register_is_found_behind_other_capabilities() {
        let cfg = ext_config(Some(PCI_ACS_RR | 1));
        assert_eq!(parse_acs(&cfg, 4096, p()).unwrap(), Acs::Control(0x5));
        assert!(Acs::Control(PCI_ACS_RR).redirects());
        assert!(Acs::Control(PCI_ACS_CR).redirects());
        assert!(Acs::Control(PCI_ACS_EC).redirects());
        // Source Validation, Translation Blocking, Upstream Forwarding: no redirect.
        assert!(!Acs::Control(0x0013).redirects());
        assert!(!Acs::Absent.redirects());
        assert!(!Acs::Unreadable(String::new()).redirects());
        assert_eq!(
            parse_acs(&ext_config(None), 4096, p()).unwrap(),
            Acs::Absent
        );
        // Conventional config space: no extended capabilities at all.
        assert_eq!(parse_acs(&cfg[..256], 256, p()).unwrap(), Acs::Absent);
        // All-ones at 0x100: nothing there.
        let mut ones = cfg.clone();
        ones[0x100..0x104].copy_from_slice(&[0xff; 4]);
        assert_eq!(parse_acs(&ones, 4096, p()).unwrap(), Acs::Absent);
    }

    #[test]
    fn a_short_read_is_unknown_not_absent() {
        let cfg = ext_config(Some(0));
        // What an unprivileged read of a 4096-byte config file returns.
        let got = parse_acs(&cfg[..64], 4096, p()).unwrap();
        assert!(
            matches!(&got, Acs::Unreadable(why) if why.contains("needs root")),
            "{got:?}"
        );
    }

    #[test]
    fn a_broken_list_is_a_typed_error() {
        let mut cfg = ext_config(None);
        // A capability pointing below 0x100.
        cfg[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x40 << 20)).to_le_bytes());
        assert!(matches!(
            parse_acs(&cfg, 4096, p()),
            Err(Error::BadCapability { offset: 0x100, .. })
        ));
        // A capability pointing at itself.
        cfg[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x100 << 20)).to_le_bytes());
        assert!(matches!(
            parse_acs(&cfg, 4096, p()),
            Err(Error::BadCapability {
                why: "the list does not end",
                ..
            })
        ));
        // A header beyond a file that claims extended space but is short of a header.
        let msg = parse_acs(&cfg[..0x102], 0x102, p())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("/x/config") && msg.contains("0x100"), "{msg}");
    }
}
