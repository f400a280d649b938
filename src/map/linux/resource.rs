//! The sysfs `resource` file: each BAR's CPU address range and the kernel's flags for it.

use std::path::Path;
use std::string::ToString;
use std::vec::Vec;

use super::number::parse_hex;
use super::{Error, Malformed, Result};

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
///
/// # Invariant
/// `start <= end`, and the size `end - start + 1` fits in a `u64` (the BAR does not span all
/// 2^64 addresses): [`parse_resource`] refuses anything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bar {
    index: usize,
    start: u64,
    end: u64,
    flags: u64,
    pub(super) bus: Option<u64>,
}

impl Bar {
    /// BAR index (0–5).
    pub fn index(&self) -> usize {
        self.index
    }

    /// First CPU physical address of the BAR.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Last CPU physical address of the BAR (inclusive).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// The kernel's `IORESOURCE_*` flags.
    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// The address the device decodes, read from the BAR register(s) in config space; equal to
    /// [`start`](Self::start) unless the host bridge translates addresses. `None` if config
    /// space could not be read.
    pub fn bus(&self) -> Option<u64> {
        self.bus
    }

    /// Size in bytes (at least 1).
    pub fn size(&self) -> u64 {
        // No overflow: by the invariant `start <= end` and the size fits in a u64.
        self.end - self.start + 1
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

/// Parses the contents of a sysfs `resource` file: one `start end flags` line per resource, each
/// a `0x`-prefixed hexadecimal number; the first six lines are the BARs and the rest (expansion
/// ROM, bridge windows, SR-IOV BARs) is not read. Resources that are neither memory nor I/O, or
/// that the kernel marks unset or disabled, or `0 0` placeholders, are left out. `path` is for
/// messages.
///
/// Fails with [`Error::Parse`] on a line that is not three numbers, and on a BAR whose range has
/// no size: its end below its start, or all 2^64 addresses.
pub fn parse_resource(text: &str, path: &Path) -> Result<Vec<Bar>> {
    let mut bars = Vec::new();
    for (index, line) in text.lines().take(6).enumerate() {
        let bad = |what| Error::Parse {
            path: path.to_path_buf(),
            line: index + 1,
            what,
        };
        let cols: Vec<&str> = line.split_ascii_whitespace().collect();
        let &[start, end, flags] = cols.as_slice() else {
            return Err(bad(Malformed::NotStartEndFlags(line.to_string())));
        };
        let num = |col| parse_hex(col, 64).map_err(bad);
        let (start, end, flags) = (num(start)?, num(end)?, num(flags)?);
        if flags & (IORESOURCE_IO | IORESOURCE_MEM) == 0
            || flags & (IORESOURCE_UNSET | IORESOURCE_DISABLED) != 0
            || (start == 0 && end == 0)
        {
            continue;
        }
        // The size, `end - start + 1`, must be a u64: not negative, not 2^64.
        if end < start || (start == 0 && end == u64::MAX) {
            return Err(bad(Malformed::BadRange { start, end }));
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

    const BAR0: &str = "0x00000000febf0000 0x00000000febf3fff 0x0000000000140204";

    fn what(text: &str) -> (usize, Malformed) {
        match parse_resource(text, Path::new("resource")) {
            Err(Error::Parse { line, what, .. }) => (line, what),
            other => panic!("{text:?} gave {other:?}"),
        }
    }

    #[test]
    fn malformed_resource_is_a_parse_error() {
        let p = Path::new("resource");
        assert!(matches!(
            parse_resource("0x0 0x1\n", p),
            Err(Error::Parse {
                line: 1,
                what: Malformed::NotStartEndFlags(_),
                ..
            })
        ));
        assert!(matches!(
            parse_resource("zz 0x1 0x200\n", p),
            Err(Error::Parse {
                what: Malformed::NotHex(_),
                ..
            })
        ));
        assert!(parse_resource("", p).unwrap().is_empty());
        assert_eq!(parse_resource(BAR0, p).unwrap()[0].size(), 0x4000);
    }

    #[test]
    fn a_sign_in_a_resource_line_is_refused() {
        for line in [
            "0x+0000000febf0000 0x00000000febf3fff 0x0000000000140204",
            "0x00000000febf0000 +0x0000000febf3fff 0x0000000000140204",
            "0x00000000febf0000 0x00000000febf3fff 0x+000000000140204",
            "+00000000febf0000 0x00000000febf3fff 0x0000000000140204",
        ] {
            assert!(matches!(what(line), (1, Malformed::NotHex(_))), "{line:?}");
        }
        // On the second line, after a good first one.
        let text = std::format!("{BAR0}\n0x+0 0x0 0x0\n");
        assert_eq!(what(&text), (2, Malformed::NotHex("0x+0".into())));
    }

    #[test]
    fn a_bar_range_without_a_size_is_refused() {
        // All 2^64 addresses: `end - start + 1` wraps to 0.
        assert_eq!(
            what("0x0000000000000000 0xffffffffffffffff 0x0000000000040200"),
            (
                1,
                Malformed::BadRange {
                    start: 0,
                    end: u64::MAX
                }
            )
        );
        // End below start.
        assert_eq!(
            what("0x00000000febf3fff 0x00000000febf0000 0x0000000000040200"),
            (
                1,
                Malformed::BadRange {
                    start: 0xfebf_3fff,
                    end: 0xfebf_0000
                }
            )
        );
        // The largest sizes that fit are fine, and a placeholder is still left out.
        let p = Path::new("resource");
        let top = parse_resource("0x0000000000000001 0xffffffffffffffff 0x200", p).unwrap();
        assert_eq!(top[0].size(), u64::MAX);
        let one = parse_resource("0xffffffffffffffff 0xffffffffffffffff 0x200", p).unwrap();
        assert_eq!(one[0].size(), 1);
        assert!(parse_resource("0x0 0x0 0x200\n", p).unwrap().is_empty());
        // An unused line is not checked for a range.
        assert!(parse_resource("0x5 0x1 0x0\n", p).unwrap().is_empty());
    }
}
