//! Test fixtures: a temporary directory and a fake sysfs tree.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);
impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(std::format!(
            "iomem-linux-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub(super) const FAKE_RESOURCE: &str = "\
0x00000000febf0000 0x00000000febf3fff 0x0000000000140204
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000100000000 0x0000000100ffffff 0x000000000014220c
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x000000000000c000 0x000000000000c03f 0x0000000000040101
0x0000000000000000 0x0000000000000000 0x0000000000000000
0x0000000000000000 0x0000000000000000 0x0000000000000000
";

/// A fake `/sys/bus/pci/devices` with a QEMU storage controller at 0000:00:03.0 (a 64-bit
/// register BAR 0, a 64-bit prefetchable BAR 2, an I/O BAR 4) bound to `stor`, and a device at
/// 0000:00:04.0 with no driver.
pub(super) fn fake_tree() -> (TempDir, PathBuf) {
    let t = TempDir::new("sysfs");
    let root = t.0.join("devices");
    let drv = t.0.join("drivers").join("stor");
    fs::create_dir_all(&drv).unwrap();
    fs::write(drv.join("unbind"), b"").unwrap();
    let dev = root.join("0000:00:03.0");
    fs::create_dir_all(&dev).unwrap();
    fs::write(dev.join("class"), "0x010802\n").unwrap();
    fs::write(dev.join("vendor"), "0x1b36\n").unwrap();
    fs::write(dev.join("device"), "0x0010\n").unwrap();
    fs::write(dev.join("resource"), FAKE_RESOURCE).unwrap();
    let mut cfg = std::vec![0u8; 256];
    cfg[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
    cfg[4..6].copy_from_slice(&0x0007u16.to_le_bytes());
    cfg[0x10..0x14].copy_from_slice(&0xfebf_0004u32.to_le_bytes());
    cfg[0x14..0x18].copy_from_slice(&0u32.to_le_bytes());
    cfg[0x18..0x1c].copy_from_slice(&0x0000_000cu32.to_le_bytes());
    cfg[0x1c..0x20].copy_from_slice(&1u32.to_le_bytes());
    cfg[0x20..0x24].copy_from_slice(&0xc001u32.to_le_bytes());
    fs::write(dev.join("config"), &cfg).unwrap();
    fs::write(dev.join("resource0"), std::vec![0u8; 0x4000]).unwrap();
    // As long as BAR 2 (16 MiB), sparse.
    fs::File::create(dev.join("resource2_wc"))
        .unwrap()
        .set_len(16 << 20)
        .unwrap();
    symlink(&drv, dev.join("driver")).unwrap();
    let other = root.join("0000:00:04.0");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("class"), "0x020000\n").unwrap();
    fs::write(other.join("resource"), "").unwrap();
    (t, root)
}

/// 4096 bytes of config space whose extended capability list holds an AER capability (ID 1) at
/// 0x100 and then, if `acs` is given, an ACS capability at 0x148 with that control register.
pub(super) fn ext_config(acs: Option<u16>) -> std::vec::Vec<u8> {
    let mut cfg = std::vec![0u8; 4096];
    let next: u32 = if acs.is_some() { 0x148 } else { 0 };
    cfg[0x100..0x104].copy_from_slice(&(0x0001 | (1 << 16) | (next << 20)).to_le_bytes());
    if let Some(ctrl) = acs {
        cfg[0x148..0x14c].copy_from_slice(&(0x000d_u32 | (1 << 16)).to_le_bytes());
        // Capability register: SV, TB, RR, CR, UF supported.
        cfg[0x14c..0x14e].copy_from_slice(&0x001f_u16.to_le_bytes());
        cfg[0x14e..0x150].copy_from_slice(&ctrl.to_le_bytes());
    }
    cfg
}

/// A fake sysfs with the kernel's layout: devices as directory chains under `sys/devices`
/// (`pciDDDD:BB/<bridge>/…/<device>`) and `bus/pci/devices/<address>` links to them.
pub(super) struct Topology {
    pub(super) t: TempDir,
}

/// A device's config space in a [`Topology`].
pub(super) enum Cfg {
    /// 256 bytes: no extended config space.
    Conventional,
    /// 4096 bytes with an ACS capability with this control register, or none.
    Extended(Option<u16>),
    /// No `config` file (it cannot be read).
    Missing,
}

impl Topology {
    pub(super) fn new() -> Self {
        let t = TempDir::new("topo");
        fs::create_dir_all(t.0.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(t.0.join("sys/devices")).unwrap();
        Topology { t }
    }

    /// The `bus/pci/devices` directory (the root to open devices in).
    pub(super) fn devices(&self) -> PathBuf {
        self.t.0.join("bus/pci/devices")
    }

    /// Adds the device at `path` below `sys/devices` (its last component its address) with
    /// these IDs and config space, and its `bus/pci/devices` link.
    pub(super) fn add(&self, path: &str, vendor: u16, device: u16, cfg: Cfg) -> PathBuf {
        let dir = self.t.0.join("sys/devices").join(path);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("vendor"), std::format!("{vendor:#06x}\n")).unwrap();
        fs::write(dir.join("device"), std::format!("{device:#06x}\n")).unwrap();
        fs::write(dir.join("class"), "0x010802\n").unwrap();
        match cfg {
            Cfg::Conventional => fs::write(dir.join("config"), [0u8; 256]).unwrap(),
            Cfg::Extended(acs) => fs::write(dir.join("config"), ext_config(acs)).unwrap(),
            Cfg::Missing => {}
        }
        let name = std::borrow::ToOwned::to_owned(dir.file_name().unwrap());
        symlink(&dir, self.devices().join(name)).unwrap();
        dir
    }
}

/// A [`BarMapping`](super::BarMapping) of `len` bytes over a temporary file, standing in for a
/// BAR's memory in tests (mapped write-back, as a file is).
pub(crate) fn file_bar(tag: &str, len: usize) -> super::BarMapping {
    use std::os::fd::AsFd;
    let dir = TempDir::new(tag);
    let path = dir.0.join("bar");
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    file.set_len(len as u64).unwrap();
    // SAFETY: a regular file is mapped write-back (`Cacheable`) and stays `len` bytes long
    // while the mapping lives (the mapping keeps its pages after the file is unlinked).
    let map = unsafe {
        super::BarMapping::map_fd(file.as_fd(), 0, &path, len, crate::Caching::Cacheable)
    };
    map.unwrap()
}
