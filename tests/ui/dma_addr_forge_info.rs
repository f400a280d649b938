// A `CmbInfo` (and a `PmrInfo`) is made only by decoding a controller's registers against its
// BARs: built field by field, its bus address would be anyone's.
use iomem::nvme::cmb::CmbInfo;

fn forge(info: CmbInfo) -> CmbInfo {
    CmbInfo {
        bus_addr: 0x1000,
        ..info
    }
}

fn main() {
    let _ = forge;
}
