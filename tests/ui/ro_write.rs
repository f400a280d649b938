// Through the `volatile-register` interop, a read-only register has no way to be written: not
// its cell's `set`, not the untyped accessors, not its bytes.
use iomem::backend::MockIo;
use iomem::migrate::{RO, RW};
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    ctrl: RW<u32>,
    status: RO<u32>,
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    let ctrl = project!(regs, Regs, ctrl);
    let status = project!(regs, Regs, status);
    ctrl.set(1);
    status.set(1);
    status.modify(|v| v | 1);
    status.write32::<0>(1);
    let _ = status.try_write32(0, 1);
    let _ = status.as_bytes().copy_from_slice(&[0; 4]);
}
