// A `CmbInfo` (and a `PmrInfo`) is made only by decoding a controller's registers against its
// BARs, and where it says the CMB is cannot be changed: built field by field or edited, its bus
// address would be anyone's.
use iomem::nvme::cmb::CmbInfo;

fn forge(info: CmbInfo) -> CmbInfo {
    CmbInfo {
        bir: 2,
        ..info
    }
}

fn edit(mut info: CmbInfo) -> CmbInfo {
    info.bus_addr = 0x1000;
    info
}

fn main() {
    let _ = (forge, edit);
}
