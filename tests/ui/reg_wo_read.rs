// A write-only register cell has no read of any kind.
use iomem::backend::MockIo;
use iomem::reg::WriteOnly;
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    doorbell: WriteOnly<u32>,
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    let db = project!(regs, Regs, doorbell);
    let _ = db.read();
    let _ = db.read32::<0>();
    let _ = db.try_read32(0);
    let _ = db.try_read::<u32>(0);
}
