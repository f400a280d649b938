//! A PCI device under `/sys/bus/pci/devices`: its identity, bound driver and BARs.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use super::address::normalise_addr;
use super::config::{bar_register, PCI_BAR0};
use super::error::io_err;
use super::number::parse_hex_attr;
use super::resource::{parse_resource, Bar};
use super::{Error, Result};

/// Where the kernel lists PCI devices.
pub const SYSFS_PCI_DEVICES: &str = "/sys/bus/pci/devices";

/// What a scan of the sysfs PCI directory found ([`PciDevice::find_by_class`]).
///
/// One unreadable or malformed device does not hide the others: every directory entry that
/// could not be examined (not a PCI address, gone, its `class` unreadable or not a 24-bit
/// number) is in `skipped` with the reason, and the scan goes on.
#[derive(Debug)]
#[non_exhaustive]
pub struct Scan {
    /// The matching devices, by address.
    pub devices: Vec<PciDevice>,
    /// Each entry that was skipped, by name: the name as found in the directory and why.
    pub skipped: Vec<(String, Error)>,
}

/// A PCI device under sysfs.
#[derive(Debug, Clone)]
pub struct PciDevice {
    pub(super) addr: String,
    pub(super) root: PathBuf,
    pub(super) dir: PathBuf,
}

impl PciDevice {
    /// Opens the device at `addr` (`0000:00:03.0`, or `00:03.0` for domain 0) under
    /// [`SYSFS_PCI_DEVICES`].
    pub fn open(addr: &str) -> Result<Self> {
        Self::open_in(SYSFS_PCI_DEVICES, addr)
    }

    /// Opens the device at `addr` under another sysfs root (a directory laid out like
    /// `/sys/bus/pci/devices`; tests use a fake tree, whose BAR files
    /// [`map_bar`](Self::map_bar) refuses and
    /// [`map_bar_unchecked`](Self::map_bar_unchecked) maps as the page cache they are).
    pub fn open_in(root: impl AsRef<Path>, addr: &str) -> Result<Self> {
        let addr = normalise_addr(addr)?;
        let root = root.as_ref().to_path_buf();
        let dir = root.join(&addr);
        match fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(PciDevice { addr, root, dir }),
            Ok(_) => Err(Error::NoDevice { addr, root }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::NoDevice { addr, root }),
            Err(e) => Err(io_err("stat", &dir, e)),
        }
    }

    /// Every device under [`SYSFS_PCI_DEVICES`] whose class code (24 bits: base class,
    /// sub-class, programming interface) equals `class`, e.g. `0x020000` for an Ethernet
    /// controller. See [`Scan`]: a device whose class cannot be read is skipped and reported, it
    /// does not fail the scan.
    pub fn find_by_class(class: u32) -> Result<Scan> {
        Self::find_by_class_in(SYSFS_PCI_DEVICES, class)
    }

    /// [`find_by_class`](Self::find_by_class) under another sysfs root.
    ///
    /// Fails only if the directory itself cannot be read.
    pub fn find_by_class_in(root: impl AsRef<Path>, class: u32) -> Result<Scan> {
        let root = root.as_ref();
        let entries = fs::read_dir(root).map_err(|e| io_err("read directory", root, e))?;
        let mut scan = Scan {
            devices: Vec::new(),
            skipped: Vec::new(),
        };
        for entry in entries {
            let entry = entry.map_err(|e| io_err("read directory", root, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else {
                let lossy = name.to_string_lossy().into_owned();
                scan.skipped.push((lossy.clone(), Error::BadAddress(lossy)));
                continue;
            };
            match Self::open_in(root, name).and_then(|dev| Ok((dev.class()?, dev))) {
                Ok((c, dev)) if c == class => scan.devices.push(dev),
                Ok(_) => {}
                Err(e) => scan.skipped.push((name.to_string(), e)),
            }
        }
        scan.devices.sort_by(|a, b| a.addr.cmp(&b.addr));
        scan.skipped.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(scan)
    }

    /// The device's address, `dddd:bb:dd.f`.
    pub fn address(&self) -> &str {
        &self.addr
    }

    /// The device's sysfs directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn read_attr(&self, name: &str) -> Result<String> {
        let path = self.dir.join(name);
        fs::read_to_string(&path).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !self.dir.exists() => Error::NoDevice {
                addr: self.addr.clone(),
                root: self.root.clone(),
            },
            _ => io_err("read", &path, e),
        })
    }

    /// Reads the attribute `name`, one hexadecimal number of at most `bits` bits.
    fn read_hex_attr(&self, name: &str, bits: u32) -> Result<u64> {
        let text = self.read_attr(name)?;
        parse_hex_attr(&text, bits).map_err(|what| Error::Parse {
            path: self.dir.join(name),
            line: 1,
            what,
        })
    }

    /// The 24-bit class code: base class, sub-class, programming interface (`0x020000`: network,
    /// Ethernet).
    pub fn class(&self) -> Result<u32> {
        let class = self.read_hex_attr("class", 24)?;
        // CAST: at most 24 bits, checked by `read_hex_attr`.
        Ok(class as u32)
    }

    /// The vendor ID (`0x1b36` for QEMU's devices).
    pub fn vendor_id(&self) -> Result<u16> {
        let id = self.read_hex_attr("vendor", 16)?;
        // CAST: at most 16 bits, checked by `read_hex_attr`.
        Ok(id as u16)
    }

    /// The device ID.
    pub fn device_id(&self) -> Result<u16> {
        let id = self.read_hex_attr("device", 16)?;
        // CAST: at most 16 bits, checked by `read_hex_attr`.
        Ok(id as u16)
    }

    /// The name of the kernel driver bound to the device, if any: the last component of the
    /// `driver` link. A link that does not end in a name is [`Error::BadDriverLink`].
    pub fn driver(&self) -> Result<Option<String>> {
        let link = self.dir.join("driver");
        match fs::read_link(&link) {
            Ok(target) => match target.file_name().and_then(|n| n.to_str()) {
                Some(name) => Ok(Some(name.to_string())),
                None => Err(Error::BadDriverLink { link, target }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read link", &link, e)),
        }
    }

    /// Unbinds the bound kernel driver (writes the address to `driver/unbind`). Does nothing if
    /// no driver is bound. Unbinding also turns bus mastering off; see [`enable`](Self::enable).
    pub fn unbind(&self) -> Result<()> {
        if self.driver()?.is_none() {
            return Ok(());
        }
        let path = self.dir.join("driver").join("unbind");
        fs::write(&path, self.addr.as_bytes()).map_err(|e| io_err("write", &path, e))
    }

    /// The device's memory and I/O BARs, from the sysfs `resource` file, with their bus addresses
    /// from config space when it can be read.
    pub fn bars(&self) -> Result<Vec<Bar>> {
        let path = self.dir.join("resource");
        let text = self.read_attr("resource")?;
        let mut bars = parse_resource(&text, &path)?;
        if let Ok(cfg) = self.read_config(PCI_BAR0, 24) {
            for bar in &mut bars {
                bar.bus = bar_register(&cfg, bar);
            }
        }
        Ok(bars)
    }

    /// BAR `index`, or [`Error::NoBar`].
    pub fn bar(&self, index: usize) -> Result<Bar> {
        self.bars()?
            .into_iter()
            .find(|b| b.index() == index)
            .ok_or_else(|| Error::NoBar {
                addr: self.addr.clone(),
                bar: index,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Caching;
    use crate::map::linux::testutil::fake_tree;
    use crate::map::linux::{BarKind, Malformed};

    #[test]
    fn identity_driver_and_bars_come_from_sysfs() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "00:03.0").unwrap();
        assert_eq!(dev.address(), "0000:00:03.0");
        assert_eq!(dev.class().unwrap(), 0x010802);
        assert_eq!(dev.vendor_id().unwrap(), 0x1b36);
        assert_eq!(dev.device_id().unwrap(), 0x0010);
        assert_eq!(dev.driver().unwrap().as_deref(), Some("stor"));

        let bars = dev.bars().unwrap();
        assert_eq!(
            bars.iter().map(|b| b.index()).collect::<Vec<_>>(),
            [0, 2, 4]
        );
        let b0 = bars[0];
        assert_eq!(
            (b0.start(), b0.size(), b0.kind()),
            (0xfebf_0000, 0x4000, BarKind::Memory)
        );
        assert!(b0.is_64bit() && !b0.is_prefetchable());
        assert_eq!(b0.bus_addr(), 0xfebf_0000);
        let b2 = bars[1];
        assert_eq!(b2.size(), 16 << 20);
        assert!(b2.is_64bit() && b2.is_prefetchable());
        assert_eq!(b2.bus(), Some(0x1_0000_0000));
        assert_eq!(bars[2].kind(), BarKind::Io);
        assert_eq!(bars[2].bus_addr(), 0xc000);

        let scan = PciDevice::find_by_class_in(&root, 0x010802).unwrap();
        assert_eq!(
            scan.devices
                .iter()
                .map(|d| d.address().to_string())
                .collect::<Vec<_>>(),
            ["0000:00:03.0"]
        );
        assert!(scan.skipped.is_empty(), "{:?}", scan.skipped);
    }

    #[test]
    fn a_scan_skips_and_reports_a_device_it_cannot_read() {
        let (_t, root) = fake_tree();
        let garbled = root.join("0000:00:05.0");
        fs::create_dir_all(&garbled).unwrap();
        fs::write(garbled.join("class"), "garbage\n").unwrap();
        let wide = root.join("0000:00:06.0");
        fs::create_dir_all(&wide).unwrap();
        fs::write(wide.join("class"), "0x1010802\n").unwrap();
        // No class file at all.
        fs::create_dir_all(root.join("0000:00:07.0")).unwrap();
        // Not a device.
        fs::create_dir_all(root.join("stray")).unwrap();

        let scan = PciDevice::find_by_class_in(&root, 0x010802).unwrap();
        assert_eq!(
            scan.devices
                .iter()
                .map(|d| d.address().to_string())
                .collect::<Vec<_>>(),
            ["0000:00:03.0"]
        );
        let skipped: Vec<&str> = scan.skipped.iter().map(|(a, _)| a.as_str()).collect();
        assert_eq!(
            skipped,
            ["0000:00:05.0", "0000:00:06.0", "0000:00:07.0", "stray"]
        );
        assert!(matches!(
            &scan.skipped[0].1,
            Error::Parse { path, line: 1, what: Malformed::NotHex(t) }
                if path.ends_with("0000:00:05.0/class") && t == "garbage"
        ));
        assert!(matches!(
            &scan.skipped[1].1,
            Error::Parse {
                what: Malformed::TooWide { bits: 24, .. },
                ..
            }
        ));
        assert!(matches!(&scan.skipped[2].1, Error::Io { op: "read", .. }));
        assert!(matches!(&scan.skipped[3].1, Error::BadAddress(_)));
        // The message names the file.
        let msg = scan.skipped[0].1.to_string();
        assert!(
            msg.contains("0000:00:05.0/class") && msg.contains("garbage"),
            "{msg}"
        );
        // Only an unreadable directory fails the scan.
        assert!(matches!(
            PciDevice::find_by_class_in(root.join("absent"), 0),
            Err(Error::Io { .. })
        ));
    }

    #[test]
    fn ids_that_do_not_fit_are_refused_not_truncated() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        let set = |name: &str, text: &str| fs::write(dev.path().join(name), text).unwrap();
        set("vendor", "0x123456789\n");
        assert!(matches!(
            dev.vendor_id(),
            Err(Error::Parse { what: Malformed::TooWide { ref text, bits: 16 }, .. })
                if text == "0x123456789"
        ));
        set("device", "0x10000\n");
        assert!(matches!(
            dev.device_id(),
            Err(Error::Parse {
                what: Malformed::TooWide { bits: 16, .. },
                ..
            })
        ));
        set("class", "0x1010802\n");
        assert!(matches!(
            dev.class(),
            Err(Error::Parse {
                what: Malformed::TooWide { bits: 24, .. },
                ..
            })
        ));
        set("vendor", "0xffff\n");
        set("class", "0xffffff\n");
        assert_eq!(
            (dev.vendor_id().unwrap(), dev.class().unwrap()),
            (0xffff, 0xff_ffff)
        );
    }

    #[test]
    fn a_sign_in_an_id_is_refused() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        for text in ["0x+1b36\n", "+0x1b36\n", "+1b36\n", "1b36\n"] {
            fs::write(dev.path().join("vendor"), text).unwrap();
            assert!(
                matches!(
                    dev.vendor_id(),
                    Err(Error::Parse {
                        what: Malformed::NotHex(_),
                        ..
                    })
                ),
                "{text:?} accepted"
            );
        }
    }

    #[test]
    fn a_driver_link_without_a_name_is_an_error() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        let link = dev.path().join("driver");
        fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("/", &link).unwrap();
        assert!(matches!(
            dev.driver(),
            Err(Error::BadDriverLink { ref target, .. }) if target == Path::new("/")
        ));
    }

    #[test]
    fn missing_device_and_bars_are_typed_errors() {
        let (_t, root) = fake_tree();
        assert!(matches!(
            PciDevice::open_in(&root, "0000:00:05.0"),
            Err(Error::NoDevice { .. })
        ));
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        assert!(matches!(dev.bar(1), Err(Error::NoBar { bar: 1, .. })));
        assert!(matches!(dev.bar(9), Err(Error::NoBar { bar: 9, .. })));
        assert!(matches!(
            dev.map_bar(4, Caching::Uncached),
            Err(Error::NotMemory { bar: 4, .. })
        ));
        assert!(matches!(
            dev.map_bar(0, Caching::WriteCombining),
            Err(Error::NotPrefetchable { bar: 0, .. })
        ));
        let msg = Error::DriverOwnsBar {
            addr: "0000:00:03.0".into(),
            bar: 0,
            driver: Some("stor".into()),
        }
        .to_string();
        assert!(msg.contains("/sys/bus/pci/drivers/stor/unbind"), "{msg}");
    }

    #[test]
    fn unbind_writes_the_address_to_the_driver() {
        let (t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        dev.unbind().unwrap();
        let written = fs::read_to_string(t.0.join("drivers/stor/unbind")).unwrap();
        assert_eq!(written, "0000:00:03.0");
        // No driver: nothing to do, and nothing written.
        PciDevice::open_in(&root, "0000:00:04.0")
            .unwrap()
            .unbind()
            .unwrap();
    }
}
