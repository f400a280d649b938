// Projecting to a field that needs more alignment than its block (a `u64` inside a packed
// struct) is a compile-time error: the block may sit at any address its own alignment allows,
// so the field's constant-offset accessors could make a misaligned device access.
use iomem::backend::MockIo;
use iomem::{project, IoMem};

#[repr(C, packed)]
struct Packed {
    tag: u8,
    _pad: [u8; 7],
    value: u64,
}

fn main() {
    let mock = MockIo::new(64);
    let block = IoMem::new(&mock).cast::<Packed>(1).unwrap();
    let _tag = project!(block, Packed, tag);
    let _value = project!(block, Packed, value);
}
