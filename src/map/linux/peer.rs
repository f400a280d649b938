//! The permission to hand a p2p buffer's bus address to a peer device.

use super::{Error, P2pDistance, Result};

/// Held by whoever hands a p2p buffer's bus address to a peer device: either the topology was
/// checked and routes the traffic ([`check`](Self::check)), or the caller said, by name, why
/// it routes anyway ([`override_unchecked`](Self::override_unchecked)).
///
/// # Why the override is safe to call
/// Whether a switch or a host bridge forwards a peer's request is a question of *routing*: if
/// it does not, the transfer fails (an Unsupported Request, a completer abort, data that never
/// arrives) or lands where the IOMMU or ACS sends it. None of that makes the program's memory
/// unsound: the addresses a device writes to are outside what Rust's safety covers in any case
/// (the functions that hand out bus addresses say so), and the p2p buffer's own memory stays
/// owned by its pool. So the override is a safe function with a mandatory, named reason, not
/// an `unsafe` one: it records a claim about the platform that the kernel's tables do not
/// know (QEMU's emulated root complex routes p2p between root-bus devices, yet its host
/// bridge, 8086:29c0, is in no table), and the reason stays with the permission for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerAccess {
    basis: PeerBasis,
}

/// What a [`PeerAccess`] rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerBasis {
    /// An acceptable distance.
    Checked(P2pDistance),
    /// The caller's claim that the platform routes it.
    Override {
        /// Why, in the caller's words.
        reason: &'static str,
    },
}

impl PeerAccess {
    /// Permission from a distance: granted if it [is acceptable](P2pDistance::is_acceptable),
    /// else [`Error::PeerDenied`] naming the blocker.
    pub fn check(distance: P2pDistance) -> Result<Self> {
        match distance {
            P2pDistance::NotSupported { why } => Err(Error::PeerDenied { blocker: why }),
            d => Ok(PeerAccess {
                basis: PeerBasis::Checked(d),
            }),
        }
    }

    /// Permission on the caller's word, for a platform that routes p2p although the kernel's
    /// rules do not say so; `reason` says which and why. See the type's docs for why this is
    /// not `unsafe`.
    pub fn override_unchecked(reason: &'static str) -> Self {
        PeerAccess {
            basis: PeerBasis::Override { reason },
        }
    }

    /// What the permission rests on.
    pub fn basis(&self) -> &PeerBasis {
        &self.basis
    }

    /// Whether the permission is an override rather than a checked distance.
    pub fn is_override(&self) -> bool {
        matches!(self.basis, PeerBasis::Override { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::map::linux::P2pBlocker;
    use std::string::ToString;

    #[test]
    fn only_an_acceptable_distance_or_a_named_override_grants_access() {
        let switch = P2pDistance::Switch {
            hops: 4,
            via: "0000:01:00.0".into(),
        };
        let ok = PeerAccess::check(switch.clone()).unwrap();
        assert_eq!(ok.basis(), &PeerBasis::Checked(switch));
        assert!(!ok.is_override());
        assert!(PeerAccess::check(P2pDistance::SameDevice).is_ok());

        let why = P2pBlocker::HostBridgeNotWhitelisted {
            root_bus: "pci0000:00".into(),
            vendor: 0x8086,
            device: 0x29c0,
        };
        let err = PeerAccess::check(P2pDistance::NotSupported { why: why.clone() }).unwrap_err();
        assert!(matches!(&err, Error::PeerDenied { blocker } if *blocker == why));
        let msg = err.to_string();
        assert!(
            msg.contains("8086:29c0") && msg.contains("override_unchecked"),
            "{msg}"
        );

        let over = PeerAccess::override_unchecked("QEMU's root complex routes p2p");
        assert!(over.is_override());
        assert_eq!(
            over.basis(),
            &PeerBasis::Override {
                reason: "QEMU's root complex routes p2p"
            }
        );
    }
}
