//! Bulk copies under the default policy make exactly the accesses the Linux kernel's own
//! `memcpy_toio`/`memcpy_fromio`/`memset_io` make on each architecture (`copy::kernel`), with
//! the RAM side at every alignment: the kernel's loops are transcribed here one access at a
//! time and compared with what the mock records.

use iomem::backend::mock::MockIo;
use iomem::copy::Bulk;
use iomem::order::Arch;
use iomem::{memcpy_fromio, memcpy_toio, memset_io, IoMem};

/// The kernel's loops, transcribed one access at a time from the C sources named in the
/// module docs (the `while` conditions kept as they are written there).
fn model(
    arch: Arch,
    bulk: Bulk,
    mut io: usize,
    mut ram: usize,
    mut n: usize,
) -> Vec<(usize, usize)> {
    let mut v = Vec::new();
    let mut push = |io: &mut usize, ram: &mut usize, n: &mut usize, w: usize| {
        v.push((*io, w));
        *io += w;
        *ram += w;
        *n -= w;
    };
    let aligned = |x: usize, a: usize| x % a == 0;
    match arch {
        Arch::PowerPc64 => {
            let ram_ok = |r: usize| bulk == Bulk::Set || aligned(r, 4);
            while n > 0 && (!aligned(io, 4) || !ram_ok(ram)) {
                push(&mut io, &mut ram, &mut n, 1);
            }
            while n >= 4 {
                push(&mut io, &mut ram, &mut n, 4);
            }
            while n > 0 {
                push(&mut io, &mut ram, &mut n, 1);
            }
        }
        Arch::X86_64 => {
            if n == 0 {
                return v;
            }
            if io & 1 != 0 {
                push(&mut io, &mut ram, &mut n, 1);
            }
            if n > 1 && io & 2 != 0 {
                push(&mut io, &mut ram, &mut n, 2);
            }
            // rep_movs: `rep movsl` for n / 4, then `movsw` if n & 2, `movsb` if n & 1.
            let m = n;
            for _ in 0..m / 4 {
                push(&mut io, &mut ram, &mut n, 4);
            }
            if m & 2 != 0 {
                push(&mut io, &mut ram, &mut n, 2);
            }
            if m & 1 != 0 {
                push(&mut io, &mut ram, &mut n, 1);
            }
        }
        _ => {
            let long = if arch == Arch::Other {
                core::mem::size_of::<usize>()
            } else {
                8
            };
            while n > 0 && !aligned(io, long) {
                push(&mut io, &mut ram, &mut n, 1);
            }
            while n >= long {
                push(&mut io, &mut ram, &mut n, long);
            }
            while n > 0 {
                push(&mut io, &mut ram, &mut n, 1);
            }
        }
    }
    v
}

#[test]
fn default_copies_are_the_kernels_on_every_arch() {
    let src: Vec<u8> = (0..160u8).collect();
    for arch in [
        Arch::PowerPc64,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::X86_64,
        Arch::Other,
    ] {
        let mock = MockIo::new(256).with_arch(arch);
        let io = IoMem::new(&mock);
        let mut ram = [0u8; 160];
        // The RAM side's alignment is what powerpc's loops look at: take it from the address.
        let ram_base = ram.as_ptr() as usize;
        for io_off in 0..8 {
            for ram_off in 0..8 {
                for n in 0..131 {
                    let win = io.subslice(io_off..io_off + n).unwrap();
                    let ram_addr = ram_base + ram_off;
                    for bulk in [Bulk::ToIo, Bulk::FromIo, Bulk::Set] {
                        mock.clear_events();
                        match bulk {
                            Bulk::ToIo => memcpy_toio(&win, &src[ram_off..ram_off + n]).unwrap(),
                            Bulk::FromIo => {
                                memcpy_fromio(&mut ram[ram_off..ram_off + n], &win).unwrap()
                            }
                            Bulk::Set => memset_io(&win, 0x5a).unwrap(),
                        }
                        let got: Vec<_> = mock
                            .accesses()
                            .iter()
                            .map(|a| (a.offset, a.width))
                            .collect();
                        assert_eq!(
                            got,
                            model(arch, bulk, io_off, ram_addr, n),
                            "{arch:?} {bulk:?} io +{io_off} ram +{ram_off} len {n}"
                        );
                    }
                }
            }
        }
    }
}
