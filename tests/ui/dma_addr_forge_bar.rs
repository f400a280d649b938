// Nor through a BAR or a pool: the bus addresses a CMB/PMR pool or a P2P pool hands devices come
// from the platform (`BarTable::from_sysfs`, `BarTable::from_vfio`) or from an `unsafe` call
// whose caller vouches for them.
use iomem::backend::MockIo;
use iomem::nvme::cmb::PciBar;
use iomem::p2p::{P2pConfig, P2pPool};

fn main() {
    let _bar = PciBar::new(0x1000, 4096);
    let _pool = P2pPool::new(MockIo::new(4096), 0x1000);
    let _pool = P2pPool::with_config(MockIo::new(4096), P2pConfig::new(0x1000));
}
