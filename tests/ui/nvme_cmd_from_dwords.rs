// A command from raw dwords carries raw PRPs, so making one is `unsafe`: the caller vouches that
// every address in it is memory the device may access.
use iomem::nvme::cmd::Command;

fn main() {
    let mut dw = [0u32; 16];
    dw[0] = 0x02; // Read
    dw[6] = 0xdead_0000; // PRP1
    let _raw = Command::from_dwords(dw);
}
