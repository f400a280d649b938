// Dropping (unmapping) a real mapping while a handle to it is still in use does not compile.
use iomem::{Caching, IoMem, Mmio};

fn main() {
    let mut ram = vec![0u128; 4];
    // SAFETY: `ram` is owned RAM, 16-aligned, and not referenced while `mmio` lives.
    let mmio = unsafe { Mmio::new(ram.as_mut_ptr().cast(), 64, Caching::Uncached) }.unwrap();
    let io = IoMem::new(&mmio);
    drop(mmio);
    let _ = io.try_read32(0);
}
