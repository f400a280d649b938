// A handle borrows its backend (the mapping): it cannot be used after the mapping's scope ends.
use iomem::backend::MockIo;
use iomem::IoMem;

fn main() {
    let io;
    {
        let mock = MockIo::new(64);
        io = IoMem::new(&mock);
    }
    let _ = io.try_read32(0);
}
