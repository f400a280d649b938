// Register permissions are types: a read-only NVMe register (CAP, VS) has no setter on
// `ControllerRegs` and its value no public `with_*` method; a write-only one (NSSR) has no
// getter.
use iomem::backend::MockIo;
use iomem::nvme::regs::{ControllerRegs, Vs};
use iomem::IoMem;

fn main() {
    let mock = MockIo::new(0x2000);
    let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
    let cap = regs.cap().unwrap();
    regs.set_cap(cap);
    let _ = cap.with_mqes(1);
    let _ = Vs::V1_4.with_major(2);
    let _ = regs.nssr();
}
