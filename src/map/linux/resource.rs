//! The sysfs `resource` file: each BAR's CPU address range and the kernel's flags for it.

use std::path::Path;
use std::vec::Vec;

use super::number::parse_hex;
use super::{Error, Result};

// `IORESOURCE_*` flags of the kernel's `struct resource` (include/linux/ioport.h), as printed in
// the third column of the sysfs `resource` file.
const IORESOURCE_IO: u64 = 0x0000_0100;
const IORESOURCE_MEM: u64 = 0x0000_0200;
const IORESOURCE_PREFETCH: u64 = 0x0000_2000;
const IORESOURCE_MEM_64: u64 = 0x0010_0000;
const IORESOURCE_UNSET: u64 = 0x2000_0000;
const IORESOURCE_DISABLED: u64 = 0x1000_0000;

/// What a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BarKind {
    /// Memory space: mappable.
    Memory,
    /// I/O-port space (x86 `in`/`out`): not mappable.
    Io,
}

/// One BAR as the kernel describes it in the device's sysfs `resource` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    /// BAR index (0–5).
    pub index: usize,
    /// First CPU physical address of the BAR.
    pub start: u64,
    /// Last CPU physical address of the BAR (inclusive).
    pub end: u64,
    /// The kernel's `IORESOURCE_*` flags.
    pub flags: u64,
    /// The address the device decodes, read from the BAR register(s) in config space; equal to
    /// `start` unless the host bridge translates addresses. `None` if config space could not be
    /// read.
    pub bus: Option<u64>,
}

impl Bar {
    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.end.wrapping_sub(self.start).wrapping_add(1)
    }

    /// Memory or I/O.
    pub fn kind(&self) -> BarKind {
        if self.flags & IORESOURCE_IO != 0 {
            BarKind::Io
        } else {
            BarKind::Memory
        }
    }

    /// Whether the BAR is a 64-bit memory BAR (it then also occupies the next BAR register).
    pub fn is_64bit(&self) -> bool {
        self.flags & IORESOURCE_MEM_64 != 0
    }

    /// Whether the BAR is prefetchable (the kernel then offers a write-combining mapping).
    pub fn is_prefetchable(&self) -> bool {
        self.flags & IORESOURCE_PREFETCH != 0
    }

    /// The bus address a device must use to reach this BAR by peer-to-peer DMA: the BAR
    /// register's value when known, otherwise the CPU physical address (the same on x86 and on
    /// any platform whose host bridge does not translate).
    pub fn bus_addr(&self) -> u64 {
        self.bus.unwrap_or(self.start)
    }
}

/// Parses the contents of a sysfs `resource` file (one `start end flags` line per resource; the
/// first six are the BARs). Absent and unassigned BARs are left out. `path` is for messages.
pub fn parse_resource(text: &str, path: &Path) -> Result<Vec<Bar>> {
    let mut bars = Vec::new();
    for (index, line) in text.lines().take(6).enumerate() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let vals: Option<Vec<u64>> = cols.iter().map(|c| parse_hex(c)).collect();
        let (start, end, flags) = match vals.as_deref() {
            Some(&[s, e, f]) => (s, e, f),
            _ => {
                return Err(Error::Parse {
                    path: path.to_path_buf(),
                    why: std::format!("line {} is {line:?}, not `start end flags`", index + 1),
                })
            }
        };
        if flags & (IORESOURCE_IO | IORESOURCE_MEM) == 0
            || flags & (IORESOURCE_UNSET | IORESOURCE_DISABLED) != 0
            || end < start
            || (start == 0 && end == 0)
        {
            continue;
        }
        bars.push(Bar {
            index,
            start,
            end,
            flags,
            bus: None,
        });
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_resource_is_a_parse_error() {
        let p = Path::new("resource");
        assert!(matches!(
            parse_resource("0x0 0x1\n", p),
            Err(Error::Parse { .. })
        ));
        assert!(matches!(
            parse_resource("zz 0x1 0x200\n", p),
            Err(Error::Parse { .. })
        ));
        assert!(parse_resource("", p).unwrap().is_empty());
    }
}
