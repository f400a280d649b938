// Indexing would hand out a place (and so a reference) inside device memory; `IoMem` does not
// implement `Index`/`IndexMut`. Byte access goes through `try_read8`/`try_write8`.
use iomem::backend::MockIo;
use iomem::IoMem;

fn main() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let _first: u8 = io[0];
    io[1] = 0xff;
}
