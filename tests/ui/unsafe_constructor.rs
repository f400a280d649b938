// Wrapping a raw pointer as device memory is the one unsafe step: it needs an `unsafe` block
// (and a safety argument), everything after it is safe.
use iomem::{Caching, IoMem, Mmio};

fn main() {
    let addr = 0x1000_0000usize as *mut u8;
    let mmio = Mmio::new(addr, 4096, Caching::Uncached).unwrap();
    let _ = IoMem::new(&mmio).try_read32(0);
}
