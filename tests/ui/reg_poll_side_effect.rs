// Polling re-reads a register: a register whose read has side effects (a FIFO pop,
// clear-on-read status) cannot be polled.
use iomem::backend::MockIo;
use iomem::reg::{ReadOnly, ReadWrite};
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    fifo: ReadOnly<u32>,
    ctrl: ReadWrite<u32>,
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    let _ = project!(regs, Regs, fifo).poll(|v| v != 0, || true);
    let _ = project!(regs, Regs, ctrl).poll(|v| v != 0, || true);
}
