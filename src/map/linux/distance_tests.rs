//! Tests of [`P2pDistance`] on fake sysfs topologies.

use std::fs;
use std::os::unix::fs::symlink;
use std::string::{String, ToString};
use std::vec;

use super::testutil::{fake_tree, Cfg, Topology};
use super::{
    CpuInfo, Error, P2pBlocker, P2pDistance, PciDevice, PCI_ACS_CR, PCI_ACS_EC, PCI_ACS_RR,
};

const Q35: (u16, u16) = (0x8086, 0x29c0);
const NVME: (u16, u16) = (0x1b36, 0x0010);

fn intel() -> CpuInfo {
    CpuInfo::new("GenuineIntel", 6)
}

fn zen() -> CpuInfo {
    CpuInfo::new("AuthenticAMD", 0x19)
}

fn dist(t: &Topology, a: &str, b: &str, cpu: &CpuInfo) -> super::Result<P2pDistance> {
    let a = PciDevice::open_in(t.devices(), a).unwrap();
    let b = PciDevice::open_in(t.devices(), b).unwrap();
    P2pDistance::between_with(&a, &b, cpu)
}

/// Two controllers on the root bus of a host bridge with these IDs (QEMU's q35 `pcie.0`).
fn root_bus(host: (u16, u16)) -> Topology {
    let t = Topology::new();
    t.add("pci0000:00/0000:00:00.0", host.0, host.1, Cfg::Conventional);
    t.add(
        "pci0000:00/0000:00:01.0",
        NVME.0,
        NVME.1,
        Cfg::Extended(None),
    );
    t.add(
        "pci0000:00/0000:00:02.0",
        NVME.0,
        NVME.1,
        Cfg::Extended(None),
    );
    t
}

const RP: &str = "pci0000:00/0000:00:1c.0";
const UP: &str = "pci0000:00/0000:00:1c.0/0000:01:00.0";
const DN1: &str = "pci0000:00/0000:00:1c.0/0000:01:00.0/0000:02:00.0";
const DN2: &str = "pci0000:00/0000:00:1c.0/0000:01:00.0/0000:02:01.0";

/// A root port, a switch upstream port and two downstream ports with an endpoint each (03:00.0
/// under 02:00.0, 04:00.0 under 02:01.0), the downstream ports' config as given.
fn switch(dn1: Cfg, dn2: Cfg) -> Topology {
    let t = Topology::new();
    t.add("pci0000:00/0000:00:00.0", Q35.0, Q35.1, Cfg::Conventional);
    t.add(RP, 0x1b36, 0x000c, Cfg::Extended(Some(0)));
    t.add(UP, 0x104c, 0x8232, Cfg::Extended(None));
    t.add(DN1, 0x104c, 0x8233, dn1);
    t.add(DN2, 0x104c, 0x8233, dn2);
    t.add(
        &std::format!("{DN1}/0000:03:00.0"),
        NVME.0,
        NVME.1,
        Cfg::Extended(None),
    );
    t.add(
        &std::format!("{DN2}/0000:04:00.0"),
        NVME.0,
        NVME.1,
        Cfg::Extended(None),
    );
    t
}

#[test]
fn the_same_function_is_the_same_device() {
    let t = root_bus(Q35);
    let d = dist(&t, "0000:00:01.0", "00:01.0", &intel()).unwrap();
    assert_eq!(d, P2pDistance::SameDevice);
    assert!(d.is_acceptable());
    assert_eq!(d.kind(), "same-device");
}

#[test]
fn on_one_root_bus_only_a_known_host_bridge_or_cpu_routes() {
    let t = root_bus(Q35);
    let d = dist(&t, "0000:00:01.0", "0000:00:02.0", &intel()).unwrap();
    assert_eq!(
        d,
        P2pDistance::NotSupported {
            why: P2pBlocker::HostBridgeNotWhitelisted {
                root_bus: "pci0000:00".into(),
                vendor: 0x8086,
                device: 0x29c0
            }
        }
    );
    assert!(!d.is_acceptable());
    assert!(d.to_string().contains("8086:29c0"), "{d}");

    let d = dist(&t, "0000:00:01.0", "0000:00:02.0", &zen()).unwrap();
    assert_eq!(
        d,
        P2pDistance::HostBridge {
            hops: 2,
            whitelisted_by: "AMD Zen or later CPU (family >= 0x17)",
            acs_redirect: vec![]
        }
    );
    assert!(d.is_acceptable());
    assert_eq!(d.kind(), "host-bridge");
    // An AMD CPU before Zen is not enough.
    let pre_zen = CpuInfo::new("AuthenticAMD", 0x16);
    assert!(!dist(&t, "00:01.0", "00:02.0", &pre_zen)
        .unwrap()
        .is_acceptable());

    for (host, name) in [
        ((0x8086, 0x2020), "Intel Skylake-E host bridge 8086:2020"),
        // Listed for traffic within one host bridge only: this is within one.
        (
            (0x8086, 0x3c00),
            "Intel Xeon E5/Core i7 host bridge 8086:3c00",
        ),
    ] {
        let t = root_bus(host);
        let d = dist(&t, "0000:00:01.0", "0000:00:02.0", &intel()).unwrap();
        assert_eq!(
            d,
            P2pDistance::HostBridge {
                hops: 2,
                whitelisted_by: name,
                acs_redirect: vec![]
            }
        );
    }
}

#[test]
fn a_root_bus_without_a_device_at_00_0_has_no_known_host_bridge() {
    let t = root_bus(Q35);
    fs::remove_dir_all(t.t.0.join("sys/devices/pci0000:00/0000:00:00.0")).unwrap();
    let d = dist(&t, "0000:00:01.0", "0000:00:02.0", &intel()).unwrap();
    assert_eq!(
        d,
        P2pDistance::NotSupported {
            why: P2pBlocker::NoHostBridgeDevice {
                root_bus: "pci0000:00".into()
            }
        }
    );
}

#[test]
fn a_common_switch_routes_in_four_hops() {
    let t = switch(Cfg::Extended(Some(0)), Cfg::Extended(Some(0)));
    let want = P2pDistance::Switch {
        hops: 4,
        via: "0000:01:00.0".into(),
    };
    assert_eq!(
        dist(&t, "0000:03:00.0", "0000:04:00.0", &intel()).unwrap(),
        want
    );
    assert_eq!(
        dist(&t, "0000:04:00.0", "0000:03:00.0", &intel()).unwrap(),
        want
    );
    assert_eq!(want.kind(), "switch");
    // A downstream port and the endpoint below the other one: 1 + 2.
    let d = dist(&t, "0000:02:00.0", "0000:04:00.0", &intel()).unwrap();
    assert_eq!(
        d,
        P2pDistance::Switch {
            hops: 3,
            via: "0000:01:00.0".into()
        }
    );
    // Source Validation and Upstream Forwarding do not redirect.
    let t = switch(Cfg::Extended(Some(0x0011)), Cfg::Conventional);
    assert_eq!(
        dist(&t, "0000:03:00.0", "0000:04:00.0", &intel()).unwrap(),
        want
    );
}

#[test]
fn acs_redirect_on_a_downstream_port_sends_the_traffic_to_the_root() {
    for bit in [PCI_ACS_RR, PCI_ACS_CR, PCI_ACS_EC] {
        let t = switch(Cfg::Extended(Some(bit | 1)), Cfg::Extended(Some(0)));
        let d = dist(&t, "0000:03:00.0", "0000:04:00.0", &intel()).unwrap();
        let P2pDistance::NotSupported {
            why:
                P2pBlocker::AcsRedirect {
                    bridges,
                    host_bridge,
                },
        } = &d
        else {
            panic!("{d:?}");
        };
        assert_eq!(bridges, &["0000:02:00.0"]);
        assert!(matches!(
            **host_bridge,
            P2pBlocker::HostBridgeNotWhitelisted {
                vendor: 0x8086,
                device: 0x29c0,
                ..
            }
        ));
        assert!(
            d.to_string().contains("pci=disable_acs_redir=0000:02:00.0"),
            "{d}"
        );
        // The CPU routes it: through the host bridge, the hops still those to the switch.
        let d = dist(&t, "0000:04:00.0", "0000:03:00.0", &zen()).unwrap();
        assert_eq!(
            d,
            P2pDistance::HostBridge {
                hops: 4,
                whitelisted_by: "AMD Zen or later CPU (family >= 0x17)",
                acs_redirect: vec![String::from("0000:02:00.0")]
            }
        );
    }
    // A redirect decides even where another port's ACS cannot be read.
    let t = switch(Cfg::Extended(Some(PCI_ACS_RR)), Cfg::Missing);
    let d = dist(&t, "0000:03:00.0", "0000:04:00.0", &zen()).unwrap();
    assert_eq!(d.kind(), "host-bridge");
}

#[test]
fn unreadable_acs_is_unknown_not_absent() {
    let t = switch(Cfg::Extended(Some(0)), Cfg::Missing);
    let d = dist(&t, "0000:03:00.0", "0000:04:00.0", &zen()).unwrap();
    let P2pDistance::NotSupported {
        why: P2pBlocker::AcsUnreadable { device, reason },
    } = &d
    else {
        panic!("{d:?}");
    };
    assert_eq!(device, "0000:02:01.0");
    assert!(reason.contains("config"), "{reason}");
    assert!(!d.is_acceptable());
    // Without a common bridge ACS does not matter, so it is not read.
    let t = root_bus(Q35);
    fs::remove_file(t.t.0.join("sys/devices/pci0000:00/0000:00:01.0/config")).unwrap();
    let d = dist(&t, "0000:00:01.0", "0000:00:02.0", &zen()).unwrap();
    assert_eq!(d.kind(), "host-bridge");
}

#[test]
fn different_host_bridges_need_both_listed_or_the_cpu() {
    let two = |host: (u16, u16)| {
        let t = Topology::new();
        for bus in ["00", "80"] {
            t.add(
                &std::format!("pci0000:{bus}/0000:{bus}:00.0"),
                host.0,
                host.1,
                Cfg::Conventional,
            );
            t.add(
                &std::format!("pci0000:{bus}/0000:{bus}:03.0"),
                NVME.0,
                NVME.1,
                Cfg::Extended(None),
            );
        }
        t
    };
    let blocked = P2pDistance::NotSupported {
        why: P2pBlocker::DifferentHostBridges {
            a: "pci0000:00".into(),
            b: "pci0000:80".into(),
        },
    };
    // Not listed, and listed for one host bridge only.
    for host in [Q35, (0x8086, 0x3c00), (0x8086, 0x2f01)] {
        let t = two(host);
        assert_eq!(
            dist(&t, "0000:00:03.0", "0000:80:03.0", &intel()).unwrap(),
            blocked
        );
    }
    let t = two((0x8086, 0x2020));
    let d = dist(&t, "0000:00:03.0", "0000:80:03.0", &intel()).unwrap();
    assert_eq!(
        d,
        P2pDistance::HostBridge {
            hops: 2,
            whitelisted_by: "Intel Skylake-E host bridge 8086:2020",
            acs_redirect: vec![]
        }
    );
    let t = two(Q35);
    assert_eq!(
        dist(&t, "0000:00:03.0", "0000:80:03.0", &zen())
            .unwrap()
            .kind(),
        "host-bridge"
    );
}

#[test]
fn a_malformed_topology_is_a_typed_error() {
    // A device directory that is not in a pciDDDD:BB chain (the flat fake tree).
    let (_t, root) = fake_tree();
    let a = PciDevice::open_in(&root, "0000:00:03.0").unwrap();
    let b = PciDevice::open_in(&root, "0000:00:04.0").unwrap();
    assert!(matches!(
        P2pDistance::between_with(&a, &b, &intel()),
        Err(Error::BadTopology { .. })
    ));

    let t = root_bus(Q35);
    let bad = |path: &str, addr: &str| {
        let dir = t.t.0.join("sys/devices").join(path);
        fs::create_dir_all(&dir).unwrap();
        symlink(&dir, t.devices().join(addr)).unwrap();
        let dev = PciDevice::open_in(t.devices(), addr).unwrap();
        let ok = PciDevice::open_in(t.devices(), "0000:00:01.0").unwrap();
        P2pDistance::between_with(&ok, &dev, &intel()).unwrap_err()
    };
    for (path, addr, why_has) in [
        // A component between the host bridge and the device that is neither.
        (
            "pci0000:00/bogus/0000:05:00.0",
            "0000:05:00.0",
            "pciDDDD:BB",
        ),
        // A host bridge name that is not pciDDDD:BB.
        ("pci0000:0/0000:00:07.0", "0000:00:07.0", "pciDDDD:BB"),
        // The root-bus device on another bus than the host bridge's.
        ("pci0000:00/0000:06:00.0", "0000:06:00.0", "bus number"),
        // The link pointing at another device's directory.
        (
            "pci0000:00/0000:00:09.0",
            "0000:00:08.0",
            "device's address",
        ),
        // The last component is not an address at all.
        (
            "pci0000:00/0000:00:0a.0/device",
            "0000:00:0b.0",
            "not a PCI address",
        ),
    ] {
        let e = bad(path, addr);
        assert!(
            matches!(&e, Error::BadTopology { why, .. } if why.contains(why_has)),
            "{path}: {e}"
        );
    }

    // A host bridge whose IDs are garbled.
    let t = root_bus(Q35);
    fs::write(
        t.t.0.join("sys/devices/pci0000:00/0000:00:00.0/vendor"),
        "8086\n",
    )
    .unwrap();
    assert!(matches!(
        dist(&t, "0000:00:01.0", "0000:00:02.0", &intel()),
        Err(Error::Parse { .. })
    ));
    // A capability list that loops, on a port of the path.
    let t = switch(Cfg::Extended(Some(0)), Cfg::Extended(None));
    let mut cfg = fs::read(t.t.0.join("sys/devices").join(DN2).join("config")).unwrap();
    cfg[0x100..0x104].copy_from_slice(&(0x0001u32 | (0x100 << 20)).to_le_bytes());
    fs::write(t.t.0.join("sys/devices").join(DN2).join("config"), &cfg).unwrap();
    assert!(matches!(
        dist(&t, "0000:03:00.0", "0000:04:00.0", &intel()),
        Err(Error::BadCapability { .. })
    ));
}
