// `IoMem<[u8]>` is not a slice: `<[u8]>::copy_from_slice` (a plain memcpy) cannot take it, and
// slice methods that would read or write device memory through references do not exist on it.
use iomem::backend::MockIo;
use iomem::IoMem;

fn main() {
    let mock = MockIo::new(64);
    let mut io = IoMem::new(&mock);
    let src = [0u8; 64];
    <[u8]>::copy_from_slice(&mut io, &src);
    let _ = io.iter();
    let _ = io.chunks_mut(8);
    let _ = io.to_vec();
}
