// A command's data pointer cannot be set from a number: the fields are private and the only
// setter takes the command identifier. (`Command::from_dwords` can, and it is `unsafe`: see
// `nvme_cmd_from_dwords.rs`.)
use iomem::nvme::cmd::nvm;

fn main() {
    let mut cmd = nvm::flush(1);
    cmd.prp1 = 0xdead_0000u64;
    cmd.set_prp1(0xdead_0000u64);
}
