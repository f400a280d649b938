//! Prints the p2p distance between the first two NVMe controllers (class 0x010802, by address)
//! and exits 0 iff its kind equals the one given on the command line (`same-device`, `switch`,
//! `host-bridge`, `not-supported`). The QEMU guest test runs it on two topologies
//! (`.ci/qemu/run.sh`: `p2p-root`, `p2p-switch`).
//!
//! Usage: `p2p_distance <expected-kind>` (as root: the ACS capability is in extended config
//! space).

use std::process::ExitCode;

use iomem::map::linux::{P2pDistance, PciDevice, PeerAccess};

fn main() -> ExitCode {
    let Some(expected) = std::env::args().nth(1) else {
        eprintln!("usage: p2p_distance <same-device|switch|host-bridge|not-supported>");
        return ExitCode::from(2);
    };
    let scan = match PciDevice::find_by_class(0x010802) {
        Ok(scan) => scan,
        Err(e) => {
            eprintln!("p2p_distance: {e}");
            return ExitCode::from(1);
        }
    };
    for (name, e) in &scan.skipped {
        eprintln!("p2p_distance: skipped {name}: {e}");
    }
    let [a, b, ..] = scan.devices.as_slice() else {
        eprintln!("p2p_distance: fewer than two NVMe controllers");
        return ExitCode::from(1);
    };
    for dev in [a, b] {
        let real = std::fs::canonicalize(dev.path());
        println!("p2p_distance: {} at {real:?}", dev.address());
    }
    let d = match P2pDistance::between(a, b) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("p2p_distance: {e}");
            return ExitCode::from(1);
        }
    };
    println!(
        "IOMEM-P2P-DISTANCE {} {}: {} ({d:?})",
        a.address(),
        b.address(),
        d.kind()
    );
    println!("p2p_distance: {d}");
    match PeerAccess::check(d.clone()) {
        Ok(access) => println!("p2p_distance: peer access granted: {:?}", access.basis()),
        Err(e) => println!("p2p_distance: peer access refused: {e}"),
    }
    if d.kind() == expected {
        ExitCode::SUCCESS
    } else {
        eprintln!("p2p_distance: expected {expected}, got {}", d.kind());
        ExitCode::from(1)
    }
}
