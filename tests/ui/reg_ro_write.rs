// A read-only register cell has no write of any kind: not its own, not the untyped accessors,
// not through its bytes.
use iomem::backend::MockIo;
use iomem::reg::{ReadOnly, ReadPure};
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    status: ReadPure<u32>,
    fifo: ReadOnly<u32>,
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    let status = project!(regs, Regs, status);
    status.write(1);
    status.write32::<0>(1);
    status.write32_relaxed::<0>(1);
    let _ = status.try_write32(0, 1);
    let _ = status.as_bytes().copy_from_slice(&[0; 4]);
    project!(regs, Regs, fifo).write_relaxed(1);
    let _ = regs.try_write32(0, 1);
}
