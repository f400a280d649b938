//! PCI addresses as sysfs names devices: `dddd:bb:dd.f`.

use std::string::{String, ToString};
use std::vec::Vec;

use super::number::is_hex_digits;
use super::{Error, Result};

/// Normalises a PCI address to the form sysfs names devices by (`dddd:bb:dd.f`, lower-case hex,
/// the domain at least four digits: VMD domains have five) and checks its shape, so an address
/// can never name a path outside the sysfs directory. `bb:dd.f` means domain 0.
pub(super) fn normalise_addr(addr: &str) -> Result<String> {
    let bad = || Error::BadAddress(addr.to_string());
    let hex = |s: &str, max_len: usize| -> Option<u32> {
        if s.len() > max_len || !is_hex_digits(s) {
            return None;
        }
        u32::from_str_radix(s, 16).ok()
    };
    let parts: Vec<&str> = addr.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [bus, devfn] => (Some(0), *bus, *devfn),
        [domain, bus, devfn] => (hex(domain, 8), *bus, *devfn),
        _ => return Err(bad()),
    };
    let (dev, func) = devfn.split_once('.').ok_or_else(bad)?;
    match (domain, hex(bus, 2), hex(dev, 2), hex(func, 1)) {
        (Some(d), Some(b), Some(v), Some(f)) if v < 32 && f < 8 => {
            Ok(std::format!("{d:04x}:{b:02x}:{v:02x}.{f}"))
        }
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_normalised_and_checked() {
        assert_eq!(normalise_addr("00:03.0").unwrap(), "0000:00:03.0");
        assert_eq!(normalise_addr("0000:AB:1f.7").unwrap(), "0000:ab:1f.7");
        assert_eq!(normalise_addr("10000:e1:00.0").unwrap(), "10000:e1:00.0");
        assert_eq!(normalise_addr("1:2:3.4").unwrap(), "0001:02:03.4");
        for bad in [
            "",
            "0000:00:03",
            "../../etc",
            "0000:00:03.8",
            "0000:00:20.0",
            "0000:00:03.0/x",
            "a:b:c:d",
            "+000:00:03.0",
            "0000:+0:03.0",
            "0000:00:+3.0",
            "0000:00:03.+",
        ] {
            assert!(
                matches!(normalise_addr(bad), Err(Error::BadAddress(_))),
                "{bad:?} accepted"
            );
        }
    }
}
