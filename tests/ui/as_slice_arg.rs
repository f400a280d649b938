// A handle cannot be passed where a `&[u8]` or `&mut [u8]` of its bytes is wanted, and
// `as_bytes` gives another handle, not a slice.
use iomem::backend::MockIo;
use iomem::IoMem;

fn fill(buf: &mut [u8]) {
    buf.fill(0);
}

fn sum(buf: &[u8]) -> u32 {
    buf.iter().map(|&b| u32::from(b)).sum()
}

fn main() {
    let mock = MockIo::new(64);
    let mut io = IoMem::new(&mock);
    fill(&mut io);
    sum(&io);
    let _bytes: &[u8] = io.as_bytes();
}
