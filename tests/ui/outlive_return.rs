// A function cannot hand out a handle to a mapping it owns and drops.
use iomem::backend::MockIo;
use iomem::IoMem;

fn map() -> IoMem<'static, [u8], MockIo> {
    let mock = MockIo::new(64);
    IoMem::new(&mock)
}

fn main() {
    let _ = map();
}
