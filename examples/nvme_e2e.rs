//! End-to-end test of the crate against a real NVMe controller, from user space on Linux.
//!
//! Run as root inside a guest (see `.ci/qemu/run.sh`).
use std::process::ExitCode;

use iomem::map::linux::PciDevice;
use iomem::Caching;

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let devs = PciDevice::find_by_class(0x010802)?;
    let dev = devs
        .first()
        .ok_or("no NVMe controller (class 0x010802) found")?;
    println!("device {} driver {:?}", dev.address(), dev.driver()?);
    dev.unbind()?;
    for b in dev.bars()? {
        println!(
            "BAR{} start {:#x} size {:#x} bus {:#x} 64bit {} prefetch {}",
            b.index,
            b.start,
            b.size(),
            b.bus_addr(),
            b.is_64bit(),
            b.is_prefetchable()
        );
    }
    println!("COMMAND {:#06x}", dev.command()?);
    dev.enable(true, true)?;
    let bar0 = dev.map_bar(0, Caching::Uncached)?;
    let io = bar0.io();
    println!("CAP {:#018x}", io.try_read64(0)?);
    println!("VS {:#010x}", io.try_read32(8)?);
    println!("CMBLOC {:#010x}", io.try_read32(0x38)?);
    println!("CMBSZ {:#010x}", io.try_read32(0x3c)?);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nvme_e2e: error: {e}");
            ExitCode::FAILURE
        }
    }
}
