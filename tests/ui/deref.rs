// An `IoMem` is a handle, not a pointer: it cannot be dereferenced into the device memory it
// names, so no `&T` or place of type `T` in device memory can be formed from it.
use iomem::backend::MockIo;
use iomem::IoMem;

fn main() {
    let mock = MockIo::new(64);
    let bytes = IoMem::new(&mock);
    let reg = bytes.cast::<u32>(0).unwrap();
    let _value: u32 = *reg;
    let _slice: &[u8] = &*bytes;
}
