//! The sysfs side of VFIO: a device's IOMMU group, whether it is bound to `vfio-pci`, and
//! binding it.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::string::{String, ToString};
use std::vec::Vec;

use super::{Error, Result};
use crate::map::linux::PciDevice;

/// The driver a device must be bound to for VFIO.
pub const VFIO_PCI: &str = "vfio-pci";

/// The device's IOMMU group: its number and its sysfs directory, from the `iommu_group` link
/// (`../../../kernel/iommu_groups/<N>`). No link: [`Error::NoIommuGroup`].
pub fn iommu_group(pci: &PciDevice) -> Result<(u32, PathBuf)> {
    let link = pci.path().join("iommu_group");
    let target = match fs::read_link(&link) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Error::NoIommuGroup {
                addr: pci.address().to_string(),
            })
        }
        Err(e) => return Err(io_err("read link", &link, e)),
    };
    let number = target
        .file_name()
        .and_then(|n| n.to_str())
        // Digits only: `parse` would take a sign.
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or(Error::Malformed {
            what: "the iommu_group link does not end in a group number",
        })?;
    Ok((number, link))
}

/// Checks that the device can be opened through VFIO: it has an IOMMU group and is bound to
/// `vfio-pci`. Returns the group.
pub fn check_vfio_pci(pci: &PciDevice) -> Result<(u32, PathBuf)> {
    let group = iommu_group(pci)?;
    match pci.driver()? {
        Some(d) if d == VFIO_PCI => Ok(group),
        driver => Err(Error::NotBoundToVfioPci {
            addr: pci.address().to_string(),
            driver,
        }),
    }
}

/// Binds the device to `vfio-pci` (as root): writes `vfio-pci` to its `driver_override`,
/// unbinds the driver it has, and asks the kernel to probe it again (`drivers_probe` beside the
/// devices directory), which binds the driver named in the override. The `vfio-pci` module must
/// be loaded. Does nothing if it is bound already.
pub fn bind_vfio_pci(pci: &PciDevice) -> Result<()> {
    if pci.driver()?.as_deref() == Some(VFIO_PCI) {
        return Ok(());
    }
    let over = pci.path().join("driver_override");
    fs::write(&over, VFIO_PCI).map_err(|e| io_err("write", &over, e))?;
    pci.unbind()?;
    // `…/bus/pci/devices/<addr>` → `…/bus/pci/drivers_probe`.
    let probe = pci
        .path()
        .parent()
        .and_then(Path::parent)
        .map(|bus| bus.join("drivers_probe"))
        .ok_or(Error::Malformed {
            what: "the device's sysfs directory has no bus directory above it",
        })?;
    fs::write(&probe, pci.address()).map_err(|e| io_err("write", &probe, e))?;
    match pci.driver()? {
        Some(d) if d == VFIO_PCI => Ok(()),
        driver => Err(Error::NotBoundToVfioPci {
            addr: pci.address().to_string(),
            driver,
        }),
    }
}

/// The devices of the group whose sysfs directory (`iommu_group` link) is `group`, each with its
/// driver (what is not readable is listed with none).
pub(super) fn group_devices(group: &Path) -> Vec<(String, Option<String>)> {
    let dir = group.join("devices");
    let mut out: Vec<(String, Option<String>)> = fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let driver = fs::read_link(e.path().join("driver"))
                .ok()
                .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()));
            (name, driver)
        })
        .collect();
    out.sort();
    out
}

/// A sysfs I/O error as the sysfs backend reports it.
fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Sysfs(match source.kind() {
        io::ErrorKind::PermissionDenied => crate::map::linux::Error::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ => crate::map::linux::Error::Io {
            op,
            path: path.to_path_buf(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::linux::testutil::TempDir;
    use std::os::unix::fs::symlink;

    /// A fake sysfs: `bus/pci/devices/<addr>` linked to `devices/…`, a `kernel/iommu_groups/5`
    /// with the device in it, drivers `nvme` and `vfio-pci`.
    fn tree(group: bool, driver: Option<&str>) -> (TempDir, PciDevice) {
        let t = TempDir::new("vfio");
        let addr = "0000:00:01.0";
        let devs = t.0.join("bus/pci/devices");
        let dev = devs.join(addr);
        fs::create_dir_all(&dev).unwrap();
        for d in ["nvme", VFIO_PCI] {
            fs::create_dir_all(t.0.join("bus/pci/drivers").join(d)).unwrap();
            fs::write(t.0.join("bus/pci/drivers").join(d).join("unbind"), "").unwrap();
        }
        if group {
            let g = t.0.join("kernel/iommu_groups/5/devices");
            fs::create_dir_all(&g).unwrap();
            symlink(&dev, g.join(addr)).unwrap();
            symlink(t.0.join("kernel/iommu_groups/5"), dev.join("iommu_group")).unwrap();
        }
        if let Some(d) = driver {
            symlink(t.0.join("bus/pci/drivers").join(d), dev.join("driver")).unwrap();
        }
        let pci = PciDevice::open_in(&devs, addr).unwrap();
        (t, pci)
    }

    #[test]
    fn a_device_without_an_iommu_group_says_turn_the_iommu_on() {
        let (_t, pci) = tree(false, Some(VFIO_PCI));
        let e = check_vfio_pci(&pci).unwrap_err();
        assert!(matches!(e, Error::NoIommuGroup { .. }), "{e}");
        assert!(std::format!("{e}").contains("intel_iommu=on"));
    }

    #[test]
    fn a_group_link_that_is_not_a_plain_number_is_refused() {
        let (t, pci) = tree(true, Some(VFIO_PCI));
        let link = pci.path().join("iommu_group");
        for name in ["+5", "-5", "5 ", "0x5", "", "99999999999"] {
            let dir = t.0.join("kernel/iommu_groups/x").join(name);
            fs::create_dir_all(&dir).unwrap();
            fs::remove_file(&link).unwrap();
            symlink(&dir, &link).unwrap();
            let got = iommu_group(&pci);
            assert!(
                matches!(got, Err(Error::Malformed { .. })),
                "a group link ending in {name:?}: {got:?}"
            );
        }
    }

    #[test]
    fn a_device_bound_elsewhere_says_how_to_bind_vfio_pci() {
        let (_t, pci) = tree(true, Some("nvme"));
        match check_vfio_pci(&pci) {
            Err(Error::NotBoundToVfioPci { addr, driver }) => {
                assert_eq!(
                    (addr.as_str(), driver.as_deref()),
                    ("0000:00:01.0", Some("nvme"))
                )
            }
            other => panic!("{other:?}"),
        }
        let (_t, pci) = tree(true, None);
        assert!(matches!(
            check_vfio_pci(&pci),
            Err(Error::NotBoundToVfioPci { driver: None, .. })
        ));
    }

    #[test]
    fn a_bound_device_has_its_group_and_its_group_lists_it() {
        let (_t, pci) = tree(true, Some(VFIO_PCI));
        let (n, dir) = check_vfio_pci(&pci).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            group_devices(&dir),
            [("0000:00:01.0".to_string(), Some(VFIO_PCI.to_string()))]
        );
        // Already bound: nothing to do.
        bind_vfio_pci(&pci).unwrap();
    }

    #[test]
    fn binding_writes_the_override_and_probes() {
        let (t, pci) = tree(true, Some("nvme"));
        fs::write(t.0.join("bus/pci/drivers_probe"), "").unwrap();
        // A fake tree has no kernel to act on the writes: the driver stays, and the error says so.
        let e = bind_vfio_pci(&pci).unwrap_err();
        assert!(matches!(e, Error::NotBoundToVfioPci { .. }), "{e}");
        assert_eq!(
            fs::read_to_string(pci.path().join("driver_override")).unwrap(),
            VFIO_PCI
        );
        assert_eq!(
            fs::read_to_string(t.0.join("bus/pci/drivers_probe")).unwrap(),
            "0000:00:01.0"
        );
        assert_eq!(
            fs::read_to_string(t.0.join("bus/pci/drivers/nvme/unbind")).unwrap(),
            "0000:00:01.0"
        );
    }
}
