//! PCI configuration space through the sysfs `config` file: the COMMAND register and the BAR
//! registers.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::vec::Vec;

use super::error::io_err;
use super::resource::{Bar, BarKind};
use super::{PciDevice, Result};

/// Offset of the COMMAND register in PCI configuration space.
pub const PCI_COMMAND: u64 = 0x04;
/// COMMAND bit: the device decodes accesses to its I/O BARs.
pub const PCI_COMMAND_IO: u16 = 1 << 0;
/// COMMAND bit: the device decodes accesses to its memory BARs.
pub const PCI_COMMAND_MEMORY: u16 = 1 << 1;
/// COMMAND bit: the device may master the bus (DMA).
pub const PCI_COMMAND_MASTER: u16 = 1 << 2;

/// Offset of BAR0 in configuration space; BAR n is at `0x10 + 4 n`.
pub(super) const PCI_BAR0: u64 = 0x10;

impl PciDevice {
    /// Unprivileged users can read the first 64 bytes only; the rest reads short.
    pub fn read_config(&self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let path = self.dir.join("config");
        let file = File::open(&path).map_err(|e| io_err("open", &path, e))?;
        let mut buf = std::vec![0u8; len];
        file.read_exact_at(&mut buf, offset)
            .map_err(|e| io_err("read", &path, e))?;
        Ok(buf)
    }

    /// Writes `bytes` to configuration space at `offset` (root only).
    pub fn write_config(&self, offset: u64, bytes: &[u8]) -> Result<()> {
        let path = self.dir.join("config");
        let file = OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(|e| io_err("open", &path, e))?;
        file.write_all_at(bytes, offset)
            .map_err(|e| io_err("write", &path, e))
    }

    /// The PCI COMMAND register.
    pub fn command(&self) -> Result<u16> {
        let b = self.read_config(PCI_COMMAND, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    /// Writes the PCI COMMAND register.
    pub fn set_command(&self, value: u16) -> Result<()> {
        self.write_config(PCI_COMMAND, &value.to_le_bytes())
    }

    /// Sets or clears memory-space decoding and bus mastering in COMMAND, leaving the other bits
    /// alone; returns the new value. With memory space off every BAR access reads as nothing
    /// (QEMU: 0, hardware: all-ones); without bus mastering the device cannot DMA.
    pub fn enable(&self, memory: bool, bus_master: bool) -> Result<u16> {
        let cmd = command_with(self.command()?, memory, bus_master);
        self.set_command(cmd)?;
        Ok(cmd)
    }
}

/// `cmd` (a COMMAND value) with memory-space decoding and bus mastering set or cleared as
/// asked, the other bits unchanged.
pub(crate) fn command_with(mut cmd: u16, memory: bool, bus_master: bool) -> u16 {
    for (bit, on) in [
        (PCI_COMMAND_MEMORY, memory),
        (PCI_COMMAND_MASTER, bus_master),
    ] {
        if on {
            cmd |= bit;
        } else {
            cmd &= !bit;
        }
    }
    cmd
}

/// The address a BAR register pair holds, from the 24 bytes of config space at `PCI_BAR0`.
pub(super) fn bar_register(cfg: &[u8], bar: &Bar) -> Option<u64> {
    let word = |i: usize| -> Option<u32> {
        let b = cfg.get(i * 4..i * 4 + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    let lo = word(bar.index())?;
    let addr = match bar.kind() {
        BarKind::Io => u64::from(lo & !0x3),
        BarKind::Memory if bar.is_64bit() => {
            (u64::from(word(bar.index() + 1)?) << 32) | u64::from(lo & !0xf)
        }
        BarKind::Memory => u64::from(lo & !0xf),
    };
    (addr != 0).then_some(addr)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::super::testutil::fake_tree;
    use super::*;
    use crate::map::linux::Error;

    #[test]
    fn bus_address_falls_back_to_the_cpu_address_without_config_space() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        // A host bridge that translates: config space says the device decodes another address.
        let mut cfg = fs::read(dev.path().join("config")).unwrap();
        cfg[0x10..0x14].copy_from_slice(&0x8000_0004u32.to_le_bytes());
        fs::write(dev.path().join("config"), &cfg).unwrap();
        assert_eq!(dev.bar(0).unwrap().bus_addr(), 0x8000_0000);
        assert_eq!(dev.bar(0).unwrap().start(), 0xfebf_0000);
        fs::remove_file(dev.path().join("config")).unwrap();
        let b0 = dev.bar(0).unwrap();
        assert_eq!((b0.bus(), b0.bus_addr()), (None, 0xfebf_0000));
        assert!(matches!(dev.command(), Err(Error::Io { op: "open", .. })));
    }

    #[test]
    fn command_register_round_trips_through_config() {
        let (_t, root) = fake_tree();
        let dev = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
        assert_eq!(dev.command().unwrap(), 0x0007);
        assert_eq!(dev.enable(false, false).unwrap(), 0x0001);
        assert_eq!(dev.command().unwrap(), 0x0001);
        assert_eq!(dev.enable(true, true).unwrap(), 0x0007);
        let cfg = dev.read_config(0, 8).unwrap();
        assert_eq!(&cfg[4..6], &[0x07, 0x00]);
    }
}
