//! The CPU rule of Linux's p2p distance: any AMD CPU of family 0x17 (Zen) or later routes
//! peer-to-peer traffic through its host bridges (`cpu_supports_p2pdma`).

use std::fs;
use std::path::Path;
use std::string::{String, ToString};

use super::error::io_err;
use super::{Error, Malformed, Result};

/// Where the kernel describes the CPUs.
pub const PROC_CPUINFO: &str = "/proc/cpuinfo";

/// The first CPU's vendor and family, as `/proc/cpuinfo` gives them (`vendor_id`,
/// `cpu family`); both absent on architectures that print neither.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuInfo {
    vendor: Option<String>,
    family: Option<u32>,
}

impl CpuInfo {
    /// A CPU with this vendor string (`AuthenticAMD`, `GenuineIntel`) and family: what tests
    /// inject instead of this machine's CPU.
    pub fn new(vendor: &str, family: u32) -> Self {
        CpuInfo {
            vendor: Some(vendor.to_string()),
            family: Some(family),
        }
    }

    /// Reads [`PROC_CPUINFO`].
    pub fn read() -> Result<Self> {
        Self::read_from(PROC_CPUINFO)
    }

    /// Reads a file laid out like `/proc/cpuinfo`.
    pub fn read_from(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = fs::read_to_string(path).map_err(|e| io_err("read", path, e))?;
        Self::parse(&text, path)
    }

    /// Parses the first CPU's block (up to the first empty line) of `/proc/cpuinfo` text;
    /// `path` names it in errors. A `cpu family` that is not a decimal number is an
    /// [`Error::Parse`].
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let mut info = CpuInfo {
            vendor: None,
            family: None,
        };
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                break;
            }
            let Some((key, value)) = line.split_once(':') else {
                continue;
            };
            let value = value.trim();
            match key.trim() {
                "vendor_id" if info.vendor.is_none() => info.vendor = Some(value.to_string()),
                "cpu family" if info.family.is_none() => {
                    let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                    let family = value.parse().ok().filter(|_| digits);
                    info.family = Some(family.ok_or_else(|| Error::Parse {
                        path: path.to_path_buf(),
                        line: i + 1,
                        what: Malformed::NotDecimal(value.to_string()),
                    })?);
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// The vendor string, if the file has one.
    pub fn vendor(&self) -> Option<&str> {
        self.vendor.as_deref()
    }

    /// The family number, if the file has one.
    pub fn family(&self) -> Option<u32> {
        self.family
    }

    /// Linux's `cpu_supports_p2pdma`: an AMD CPU of family 0x17 (Zen) or later.
    pub fn supports_p2pdma(&self) -> bool {
        self.vendor.as_deref() == Some("AuthenticAMD") && self.family.is_some_and(|f| f >= 0x17)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN3: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n\
                        model\t\t: 1\nflags\t\t: fpu vme\n\nprocessor\t: 1\nvendor_id\t: Other\n";

    #[test]
    fn the_first_cpu_decides() {
        let p = Path::new("/proc/cpuinfo");
        let zen = CpuInfo::parse(ZEN3, p).unwrap();
        assert_eq!(
            (zen.vendor(), zen.family()),
            (Some("AuthenticAMD"), Some(25))
        );
        assert!(zen.supports_p2pdma());
        assert!(CpuInfo::new("AuthenticAMD", 0x17).supports_p2pdma());
        assert!(!CpuInfo::new("AuthenticAMD", 0x16).supports_p2pdma());
        assert!(!CpuInfo::new("GenuineIntel", 6).supports_p2pdma());
        assert!(!CpuInfo::new("HygonGenuine", 0x18).supports_p2pdma());
        // An arm64 cpuinfo has neither field: not an error, and no p2p from the CPU rule.
        let arm = CpuInfo::parse(
            "processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n",
            p,
        )
        .unwrap();
        assert_eq!((arm.vendor(), arm.family()), (None, None));
        assert!(!arm.supports_p2pdma());
    }

    #[test]
    fn a_family_that_is_not_a_number_is_an_error() {
        let p = Path::new("/proc/cpuinfo");
        for bad in ["0x19", "+25", "", "twenty-five", "99999999999"] {
            let text = std::format!("vendor_id\t: AuthenticAMD\ncpu family\t: {bad}\n");
            assert!(
                matches!(
                    CpuInfo::parse(&text, p),
                    Err(Error::Parse { line: 2, what: Malformed::NotDecimal(ref t), .. }) if t == bad
                ),
                "{bad:?} accepted"
            );
        }
        assert!(matches!(
            CpuInfo::read_from("/nonexistent/cpuinfo"),
            Err(Error::Io { .. })
        ));
    }
}
