// `ptr::copy_nonoverlapping` (a plain memcpy, free to use any width and order) needs a raw
// pointer to the device memory; an `IoMem` is not one and has no method that gives one out.
use iomem::backend::MockIo;
use iomem::IoMem;

fn main() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let src = [0u8; 64];
    unsafe {
        core::ptr::copy_nonoverlapping(src.as_ptr(), io, 64);
        core::ptr::copy_nonoverlapping(src.as_ptr(), io.as_mut_ptr(), 64);
    }
}
