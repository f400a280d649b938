// The well-formed counterparts of the compile-fail cases next to this directory: the same
// operations, done the way the crate allows. That they build and run shows the failures are about
// the misuse, not a broken setup. (Having a passing case also makes trybuild run `cargo build`
// rather than `cargo check`, so the post-monomorphisation const errors are reported.)
use iomem::backend::MockIo;
use iomem::migrate::{RO, RW, WO};
use iomem::reg::{ReadOnly, ReadPure, ReadWrite, WriteOnly};
use iomem::{memcpy_fromio, project, Caching, IoMem, Mmio};

#[repr(C)]
struct Regs {
    ctrl: RW<u32>,
    status: RO<u32>,
    doorbell: WO<u32>,
}

#[derive(zerocopy::FromBytes)]
#[repr(C, align(8))]
struct Block([u32; 16]);

fn main() {
    let mock = MockIo::new(4096);
    let io = IoMem::new(&mock);

    // deref / index: explicit single accesses instead.
    let reg = io.cast::<u32>(0).unwrap();
    reg.write(&7);
    assert_eq!(reg.read(), 7);
    io.try_write8(1, 0xff).unwrap();
    assert_eq!(io.try_read8(1), Ok(0xff));

    // copy_nonoverlapping / copy_from_slice / &mut [u8]: the plan-driven copies.
    let src = [0x5au8; 64];
    let dst = io.subslice(64..128).unwrap();
    dst.copy_from_slice(&src).unwrap();
    let mut back = [0u8; 64];
    memcpy_fromio(&mut back, &dst).unwrap();
    assert_eq!(back, src);

    // lifetimes: the mapping outlives every handle to it.
    let mut ram = vec![0u128; 4];
    // SAFETY: `ram` is owned, 16-aligned RAM that nothing references while `mmio` lives.
    let mmio = unsafe { Mmio::new(ram.as_mut_ptr().cast(), 64, Caching::Uncached) }.unwrap();
    let real = IoMem::new(&mmio);
    real.try_write32(60, 9).unwrap();
    assert_eq!(real.try_read32(60), Ok(9));
    drop(mmio);
    drop(ram);

    // volatile-register cells: read RW/RO, write RW/WO.
    let regs = io.cast::<Regs>(256).unwrap();
    project!(regs, Regs, ctrl).set(1);
    project!(regs, Regs, ctrl).modify(|v| v | 2);
    project!(regs, Regs, doorbell).set(1);
    assert_eq!(project!(regs, Regs, ctrl).get(), 3);
    assert_eq!(project!(regs, Regs, status).get(), 0);

    // constant offsets inside the block.
    let block = io.cast::<Block>(512).unwrap();
    block.write32::<60>(0xabcd);
    assert_eq!(block.read32::<60>(), 0xabcd);

    // crate register cells: each has exactly the accesses its permissions allow; a raw write
    // to a read-only register is possible only by saying so.
    let cells = io.cast::<Cells>(1024).unwrap();
    project!(cells, Cells, ctrl).write(5);
    project!(cells, Cells, irq_clear).write(1);
    assert_eq!(project!(cells, Cells, status).poll(|s| s == 0, || true), Some(0));
    assert_eq!(project!(cells, Cells, fifo).read(), 0);
    project!(cells, Cells, status)
        .as_bytes_ignoring_permissions()
        .try_write32(0, 1)
        .unwrap();
    assert_eq!(project!(cells, Cells, status).read(), 1);

    mock.assert_no_violations();
}

#[repr(C)]
struct Cells {
    ctrl: ReadWrite<u32>,
    status: ReadPure<u32>,
    fifo: ReadOnly<u32>,
    irq_clear: WriteOnly<u32>,
}
