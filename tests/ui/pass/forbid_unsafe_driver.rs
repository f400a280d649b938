// A driver crate that forbids `unsafe` can still project register fields and use the crate's
// cells: `project!` expands to safe code only.
#![forbid(unsafe_code)]

use iomem::backend::MockIo;
use iomem::reg::{ReadPure, ReadWrite};
use iomem::{project, IoMem};

#[repr(C)]
struct Regs {
    ctrl: ReadWrite<u32>,
    status: ReadPure<u32>,
    data: [ReadWrite<u64>; 2],
}

fn main() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    project!(regs, Regs, ctrl).write(1);
    project!(regs, Regs, data).at(1).unwrap().write(7);
    assert_eq!(project!(regs, Regs, status).read(), 0);
    assert_eq!(mock.peek(16, 8), 7u64.to_le_bytes());
}
