// A constant-offset register access past the end of a 64-byte block is a compile-time error
// (evaluated when the accessor is instantiated), not a run-time check.
use iomem::backend::MockIo;
use iomem::IoMem;

#[derive(zerocopy::FromBytes)]
#[repr(C, align(8))]
struct Block([u32; 16]);

fn main() {
    let mock = MockIo::new(4096);
    let block = IoMem::new(&mock).cast::<Block>(0).unwrap();
    let _ok = block.read32::<60>();
    let _past_end = block.read32::<64>();
}
