// A p2p distance comes from the topology (`P2pDistance::between`), not from a literal: a
// distance of one's own would make `PeerAccess::check` grant a permission no topology backs.
// (A claim of one's own is `PeerAccess::override_unchecked`, which says so.)
use iomem::map::linux::{P2pDistance, PeerAccess};

fn main() {
    let _ = PeerAccess::check(P2pDistance::Switch { hops: 2, via: "0000:01:00.0".into() });
    let _ = PeerAccess::check(P2pDistance::SameDevice);
}
