//! The p2p distance between two PCI devices, decided from the sysfs topology as Linux's
//! `pci_p2pdma_distance` decides it (`drivers/pci/p2pdma.c`, `calc_map_type_and_dist`).
//!
//! A device's canonical sysfs path, `/sys/devices/pciDDDD:BB/<bridge>/…/<device>`, is its
//! upstream chain: the `pciDDDD:BB` component is its host bridge (root bus), the PCI addresses
//! below it the bridges from the root bus down, then the device. From two chains:
//!
//! 1. The same function: [`P2pDistance::SameDevice`].
//! 2. A common upstream bridge (the deepest shared chain element): traffic turns around there
//!    unless a port on the way has ACS redirection on (P2P Request Redirect, Completion
//!    Redirect or Egress Control, as `pci_bridge_has_acs_redir`; checked, as Linux does, on
//!    the first device's path up to and including the common bridge and on the second's up
//!    to but excluding it). No redirect: [`P2pDistance::Switch`], hops = the steps up from
//!    each device to the common bridge (4 for two endpoints under two downstream ports of one
//!    switch). An ACS state that cannot be read (extended config space needs root) is
//!    [`P2pBlocker::AcsUnreadable`], never a guess.
//! 3. Otherwise (no common bridge, different host bridges, or ACS redirect) the traffic goes
//!    through the host bridge, which must be known to route it: an AMD Zen or later CPU
//!    (`cpu_supports_p2pdma`), or the host bridge device (devfn 00.0 of the root bus) in
//!    Linux's table (`pci_p2pdma_whitelist`; some entries only within one host bridge). Then
//!    [`P2pDistance::HostBridge`], else [`P2pDistance::NotSupported`].
//!
//! Where this departs from Linux: the same function is [`SameDevice`](P2pDistance::SameDevice)
//! without looking at its own ACS (a function's ACS governs traffic to *other* functions);
//! only the device at 00.0 identifies a host bridge (newer kernels also take a root port
//! listed first on the bus); a broken capability list is an error where Linux stops looking.

use std::boxed::Box;
use std::fmt;
use std::fs;
use std::path::PathBuf;
use std::string::{String, ToString};
use std::vec::Vec;

use super::acs::{read_acs, Acs};
use super::address::normalise_addr;
use super::error::io_err;
use super::{CpuInfo, Error, PciDevice, Result};

/// How peer-to-peer traffic between two PCI devices would be routed, or why it would not.
///
/// Made only by [`between`](Self::between) (and [`between_with`](Self::between_with)) from the
/// topology: its variants are read (matched), never built outside this crate, so a
/// [`PeerAccess::check`](super::PeerAccess::check) on one rests on a topology that was looked
/// at; a claim of one's own is [`PeerAccess::override_unchecked`](super::PeerAccess::override_unchecked).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P2pDistance {
    /// Both are the same PCI function.
    #[non_exhaustive]
    SameDevice,
    /// Through a common upstream bridge (a PCIe switch), no ACS redirect on the way.
    #[non_exhaustive]
    Switch {
        /// Steps from each device up to the common bridge, summed (Linux's distance).
        hops: u32,
        /// The common upstream bridge's address.
        via: String,
    },
    /// Up through the host bridge, which is known to route p2p.
    #[non_exhaustive]
    HostBridge {
        /// Linux's distance: the steps up to the common bridge when ACS redirects, else
        /// each device's steps up to its root bus, summed.
        hops: u32,
        /// What makes the host bridge acceptable (the CPU rule or a table entry).
        whitelisted_by: &'static str,
        /// The ports whose ACS redirect sends the traffic up (empty when there is no common
        /// bridge to turn around at).
        acs_redirect: Vec<String>,
    },
    /// Peer-to-peer is not known to work between the two.
    #[non_exhaustive]
    NotSupported {
        /// Why not.
        why: P2pBlocker,
    },
}

/// Why peer-to-peer between two devices is not known to work.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum P2pBlocker {
    /// The devices sit under different host bridges, and the CPU and the host bridges are not
    /// known to route between them.
    DifferentHostBridges {
        /// The first device's root bus (`pci0000:00`).
        a: String,
        /// The second device's root bus.
        b: String,
    },
    /// No common upstream bridge, and the host bridge is not in the table (nor is the CPU).
    HostBridgeNotWhitelisted {
        /// The root bus (`pci0000:00`).
        root_bus: String,
        /// The host bridge device's vendor ID.
        vendor: u16,
        /// The host bridge device's device ID.
        device: u16,
    },
    /// The root bus has no device at 00.0 to identify its host bridge by.
    NoHostBridgeDevice {
        /// The root bus.
        root_bus: String,
    },
    /// A common upstream bridge exists, but ACS redirect on these ports sends the traffic up to
    /// the host bridge, which does not route it (`host_bridge` says why).
    AcsRedirect {
        /// The ports with RR, CR or EC set, by address.
        bridges: Vec<String>,
        /// Why the host bridge does not route it.
        host_bridge: Box<P2pBlocker>,
    },
    /// The ACS capability of a device on the path could not be read, so whether the traffic
    /// turns at the common bridge is unknown.
    AcsUnreadable {
        /// The device.
        device: String,
        /// Why not (extended config space needs root).
        reason: String,
    },
}

impl P2pDistance {
    /// The distance between `a` and `b`, with [`CpuInfo::read`] for the CPU rule.
    pub fn between(a: &PciDevice, b: &PciDevice) -> Result<Self> {
        Self::between_with(a, b, &CpuInfo::read()?)
    }

    /// The distance between `a` and `b`, with `cpu` for the CPU rule.
    pub fn between_with(a: &PciDevice, b: &PciDevice, cpu: &CpuInfo) -> Result<Self> {
        if a.address() == b.address() {
            return Ok(P2pDistance::SameDevice);
        }
        let (pa, pb) = (Upstream::of(a)?, Upstream::of(b)?);
        let same_host = pa.root_dir == pb.root_dir;
        let common = if same_host {
            pa.chain
                .iter()
                .zip(&pb.chain)
                .take_while(|(x, y)| x.0 == y.0)
                .count()
        } else {
            0
        };
        if common == 0 {
            let hops = steps(pa.chain.len() + pb.chain.len());
            return through_host_bridge(&pa, &pb, hops, Vec::new(), cpu);
        }
        let hops = steps(pa.chain.len() + pb.chain.len() - 2 * common);
        let path = pa.chain[common - 1..].iter().chain(&pb.chain[common..]);
        let (mut redirect, mut unreadable) = (Vec::new(), None);
        for (addr, dir) in path {
            match read_acs(dir)? {
                Acs::Unreadable(reason) => {
                    unreadable.get_or_insert((addr.clone(), reason));
                }
                acs if acs.redirects() => redirect.push(addr.clone()),
                _ => {}
            }
        }
        if !redirect.is_empty() {
            return through_host_bridge(&pa, &pb, hops, redirect, cpu);
        }
        if let Some((device, reason)) = unreadable {
            let why = P2pBlocker::AcsUnreadable { device, reason };
            return Ok(P2pDistance::NotSupported { why });
        }
        let via = pa.chain[common - 1].0.clone();
        Ok(P2pDistance::Switch { hops, via })
    }

    /// Whether the verdict lets one device DMA to the other (everything but
    /// [`NotSupported`](Self::NotSupported)).
    pub fn is_acceptable(&self) -> bool {
        !matches!(self, P2pDistance::NotSupported { .. })
    }

    /// The verdict's kind, one word: `same-device`, `switch`, `host-bridge`, `not-supported`.
    pub fn kind(&self) -> &'static str {
        match self {
            P2pDistance::SameDevice => "same-device",
            P2pDistance::Switch { .. } => "switch",
            P2pDistance::HostBridge { .. } => "host-bridge",
            P2pDistance::NotSupported { .. } => "not-supported",
        }
    }
}

/// A chain length as hops (chains are short; a preposterous one saturates, no panic).
fn steps(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A device's place in the tree: its root bus and the chain from the root bus down to it.
struct Upstream {
    /// `pciDDDD:BB`.
    root_bus: String,
    /// The root bus's directory.
    root_dir: PathBuf,
    /// (address, directory) from the device on the root bus down to the device itself.
    chain: Vec<(String, PathBuf)>,
}

impl Upstream {
    fn of(dev: &PciDevice) -> Result<Self> {
        let real = fs::canonicalize(dev.path()).map_err(|e| io_err("resolve", dev.path(), e))?;
        let bad = |why| Error::BadTopology {
            path: real.clone(),
            why,
        };
        let mut chain = Vec::new();
        let mut cur = real.as_path();
        let root_bus = loop {
            let name = cur
                .file_name()
                .ok_or_else(|| bad("no pciDDDD:BB host bridge component above the device"))?
                .to_str()
                .ok_or_else(|| bad("a component is not UTF-8"))?;
            if normalise_addr(name).is_ok_and(|n| n == name) {
                chain.push((name.to_string(), cur.to_path_buf()));
            } else if chain.is_empty() {
                return Err(bad("the last component is not a PCI address"));
            } else {
                break name.to_string();
            }
            cur = cur
                .parent()
                .ok_or_else(|| bad("no pciDDDD:BB host bridge component above the device"))?;
        };
        chain.reverse();
        let bus = root_bus
            .strip_prefix("pci")
            .filter(|b| {
                let host = std::format!("{b}:00.0");
                normalise_addr(&host).is_ok_and(|n| n == host)
            })
            .ok_or_else(|| bad("the component above the bridges is not pciDDDD:BB"))?;
        if !chain[0].0.starts_with(&std::format!("{bus}:")) {
            return Err(bad("the device on the root bus is not on its bus number"));
        }
        if chain[chain.len() - 1].0 != dev.address() {
            return Err(bad("the path does not end in the device's address"));
        }
        Ok(Upstream {
            root_bus,
            root_dir: cur.to_path_buf(),
            chain,
        })
    }

    /// The table entry (or refusal) for this root bus's host bridge.
    fn whitelist(
        &self,
        same_host_bridge: bool,
    ) -> Result<core::result::Result<&'static str, P2pBlocker>> {
        let bus = self.root_bus.strip_prefix("pci").unwrap_or(&self.root_bus);
        let addr = std::format!("{bus}:00.0");
        let dir = self.root_dir.join(&addr);
        if !dir.is_dir() {
            return Ok(Err(P2pBlocker::NoHostBridgeDevice {
                root_bus: self.root_bus.clone(),
            }));
        }
        let host = PciDevice {
            addr,
            root: self.root_dir.clone(),
            dir,
        };
        let (vendor, device) = (host.vendor_id()?, host.device_id()?);
        let refused = || P2pBlocker::HostBridgeNotWhitelisted {
            root_bus: self.root_bus.clone(),
            vendor,
            device,
        };
        Ok(
            match WHITELIST.iter().find(|e| (e.0, e.1) == (vendor, device)) {
                Some(&(_, _, same_only, name)) if same_host_bridge || !same_only => Ok(name),
                _ => Err(refused()),
            },
        )
    }
}

/// The traffic goes up through the host bridge(s): acceptable if the CPU or the table says so.
fn through_host_bridge(
    a: &Upstream,
    b: &Upstream,
    hops: u32,
    acs_redirect: Vec<String>,
    cpu: &CpuInfo,
) -> Result<P2pDistance> {
    let verdict = if cpu.supports_p2pdma() {
        Ok(AMD_ZEN)
    } else if a.root_dir == b.root_dir {
        a.whitelist(true)?
    } else {
        match (a.whitelist(false)?, b.whitelist(false)?) {
            (Ok(name), Ok(_)) => Ok(name),
            _ => Err(P2pBlocker::DifferentHostBridges {
                a: a.root_bus.clone(),
                b: b.root_bus.clone(),
            }),
        }
    };
    Ok(match verdict {
        Ok(whitelisted_by) => P2pDistance::HostBridge {
            hops,
            whitelisted_by,
            acs_redirect,
        },
        Err(host) if !acs_redirect.is_empty() => P2pDistance::NotSupported {
            why: P2pBlocker::AcsRedirect {
                bridges: acs_redirect,
                host_bridge: Box::new(host),
            },
        },
        Err(why) => P2pDistance::NotSupported { why },
    })
}

/// What the CPU rule names as the reason.
const AMD_ZEN: &str = "AMD Zen or later CPU (family >= 0x17)";

/// Linux's `pci_p2pdma_whitelist`: host bridge vendor, device, whether only traffic within
/// one host bridge is routed (`REQ_SAME_HOST_BRIDGE`), and the name given as the reason.
const WHITELIST: &[(u16, u16, bool, &str)] = &[
    (
        0x8086,
        0x3c00,
        true,
        "Intel Xeon E5/Core i7 host bridge 8086:3c00",
    ),
    (
        0x8086,
        0x3c01,
        true,
        "Intel Xeon E5/Core i7 host bridge 8086:3c01",
    ),
    (
        0x8086,
        0x2f00,
        true,
        "Intel Xeon E7 v3/E5 v3/Core i7 host bridge 8086:2f00",
    ),
    (
        0x8086,
        0x2f01,
        true,
        "Intel Xeon E7 v3/E5 v3/Core i7 host bridge 8086:2f01",
    ),
    (0x8086, 0x2030, false, "Intel Skylake-E root port 8086:2030"),
    (0x8086, 0x2031, false, "Intel Skylake-E root port 8086:2031"),
    (0x8086, 0x2032, false, "Intel Skylake-E root port 8086:2032"),
    (0x8086, 0x2033, false, "Intel Skylake-E root port 8086:2033"),
    (
        0x8086,
        0x2020,
        false,
        "Intel Skylake-E host bridge 8086:2020",
    ),
    (
        0x8086,
        0x09a2,
        false,
        "Intel 3rd Gen Xeon Scalable host bridge 8086:09a2",
    ),
];

impl fmt::Display for P2pDistance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P2pDistance::SameDevice => write!(f, "same device"),
            P2pDistance::Switch { hops, via } => {
                write!(f, "through the common upstream bridge {via}, {hops} hops")
            }
            P2pDistance::HostBridge {
                hops,
                whitelisted_by,
                acs_redirect,
            } => {
                write!(f, "through the host bridge ({whitelisted_by}), {hops} hops")?;
                if !acs_redirect.is_empty() {
                    write!(f, ", ACS redirect on {}", acs_redirect.join(", "))?;
                }
                Ok(())
            }
            P2pDistance::NotSupported { why } => write!(f, "not supported: {why}"),
        }
    }
}

impl fmt::Display for P2pBlocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            P2pBlocker::DifferentHostBridges { a, b } => write!(
                f,
                "the devices are under different host bridges ({a}, {b}) not known to route \
                 between each other"
            ),
            P2pBlocker::HostBridgeNotWhitelisted {
                root_bus,
                vendor,
                device,
            } => write!(
                f,
                "no common upstream bridge, and the host bridge of {root_bus} \
                 ({vendor:04x}:{device:04x}) is not known to route p2p"
            ),
            P2pBlocker::NoHostBridgeDevice { root_bus } => write!(
                f,
                "no common upstream bridge, and {root_bus} has no device at 00.0 to identify its \
                 host bridge"
            ),
            P2pBlocker::AcsRedirect {
                bridges,
                host_bridge,
            } => write!(
                f,
                "ACS redirect on {} sends the traffic up to the host bridge ({host_bridge}); \
                 Linux: pci=disable_acs_redir={}",
                bridges.join(", "),
                bridges.join(";")
            ),
            P2pBlocker::AcsUnreadable { device, reason } => write!(
                f,
                "the ACS capability of {device} could not be read ({reason}), so whether ACS \
                 redirects the traffic is unknown"
            ),
        }
    }
}
