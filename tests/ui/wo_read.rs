// Through the `volatile-register` interop, a write-only register has no way to be read.
use iomem::backend::MockIo;
use iomem::migrate::{RW, WO};
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    ctrl: RW<u32>,
    doorbell: WO<u32>,
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    let ctrl = project!(regs, Regs, ctrl);
    let doorbell = project!(regs, Regs, doorbell);
    let _ = ctrl.get();
    let _ = doorbell.get();
    let _ = doorbell.read32::<0>();
    let _ = doorbell.try_read32(0);
}
