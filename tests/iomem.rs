//! Public behaviour of `IoMem`: every error the core returns and its message, sub-handles
//! (`subslice`, `split_at`, `cast`, `project!`), the compile-time accessors, typed reads and
//! writes of register blocks under each width policy, and the handle's auto traits.

use core::ops::Bound;

use iomem::backend::mock::{Dir, MockIo};
use iomem::copy::plan;
use iomem::{
    memcpy_fromio, memcpy_toio, memset_io, project, Arch, Barrier, Caching, Error, IoMem, Mmio,
    Strategy, WidthPolicy,
};
use zerocopy::{FromBytes, Immutable, IntoBytes};

/// `(direction, offset, width)` of every access the mock saw, then clears the trace.
fn shape(mock: &MockIo) -> Vec<(Dir, usize, usize)> {
    let s = mock
        .accesses()
        .iter()
        .map(|a| (a.dir, a.offset, a.width))
        .collect();
    mock.clear_events();
    s
}

/// Asserts `e`'s message is non-empty and mentions every string in `parts`.
fn assert_message(e: Error, parts: &[&str]) {
    let msg = e.to_string();
    assert!(!msg.is_empty(), "{e:?} has an empty message");
    for p in parts {
        assert!(msg.contains(p), "message of {e:?} is {msg:?}, lacks {p:?}");
    }
    // A `core::error::Error`, usable as `dyn std::error::Error`.
    let dynamic: &dyn std::error::Error = &e;
    assert_eq!(dynamic.to_string(), msg);
}

// ---------------------------------------------------------------------------------------------
// Errors

#[test]
fn out_of_range() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let e = Error::OutOfRange {
        offset: 62,
        len: 4,
        size: 64,
    };
    assert_eq!(io.try_read32(62), Err(e));
    assert_eq!(
        io.try_write16(63, 1),
        Err(Error::OutOfRange {
            offset: 63,
            len: 2,
            size: 64
        })
    );
    assert_eq!(
        io.subslice(0..65).unwrap_err(),
        Error::OutOfRange {
            offset: 0,
            len: 65,
            size: 64
        }
    );
    assert_eq!(
        io.cast::<u64>(64).unwrap_err(),
        Error::OutOfRange {
            offset: 64,
            len: 8,
            size: 64
        }
    );
    assert_eq!(
        io.try_read::<[u8; 8]>(57),
        Err(Error::OutOfRange {
            offset: 57,
            len: 8,
            size: 64
        })
    );
    assert_eq!(
        io.try_write(60, &0u64),
        Err(Error::OutOfRange {
            offset: 60,
            len: 8,
            size: 64
        })
    );
    // Relative to the sub-handle, not the mapping.
    let sub = io.subslice(16..48).unwrap();
    assert_eq!(
        sub.try_read32(32),
        Err(Error::OutOfRange {
            offset: 32,
            len: 4,
            size: 32
        })
    );
    assert_eq!(sub.try_read32(28).map(|_| ()), Ok(()));
    // Nothing was accessed by the refused calls (only the one good read).
    assert_eq!(shape(&mock), [(Dir::Read, 44, 4)]);
    assert_message(e, &["0x3e", "0x42", "4 bytes", "64-byte"]);
}

#[test]
fn overflow_including_offsets_near_usize_max() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let e = Error::Overflow {
        offset: usize::MAX - 1,
        len: 4,
    };
    assert_eq!(io.try_read32(usize::MAX - 1), Err(e));
    assert_eq!(
        io.try_write64(usize::MAX, 0),
        Err(Error::Overflow {
            offset: usize::MAX,
            len: 8
        })
    );
    assert_eq!(
        io.cast::<u32>(usize::MAX - 2).unwrap_err(),
        Error::Overflow {
            offset: usize::MAX - 2,
            len: 4
        }
    );
    assert_eq!(
        io.try_read::<[u8; 16]>(usize::MAX - 15),
        Err(Error::Overflow {
            offset: usize::MAX - 15,
            len: 16
        })
    );
    assert_eq!(
        io.subslice(..=usize::MAX).unwrap_err(),
        Error::Overflow {
            offset: usize::MAX,
            len: 1
        }
    );
    assert_eq!(
        io.subslice((Bound::Excluded(usize::MAX), Bound::Unbounded))
            .unwrap_err(),
        Error::Overflow {
            offset: usize::MAX,
            len: 1
        }
    );
    // A range that does not overflow but is far outside is out of range, not an overflow.
    assert!(matches!(
        io.try_read32(usize::MAX - 4),
        Err(Error::OutOfRange { .. })
    ));
    assert_eq!(
        plan(usize::MAX - 7, 9, WidthPolicy::U64),
        Err(Error::Overflow {
            offset: usize::MAX - 7,
            len: 9
        })
    );
    assert!(mock.accesses().is_empty());
    assert_message(e, &[&format!("{:#x}", usize::MAX - 1), "0x4", "overflow"]);
}

#[test]
fn misaligned() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let e = Error::Misaligned {
        offset: 2,
        align: 4,
    };
    assert_eq!(io.try_read32(2), Err(e));
    assert_eq!(io.try_write32_relaxed(2, 0), Err(e));
    assert_eq!(
        io.try_read64(4),
        Err(Error::Misaligned {
            offset: 4,
            align: 8
        })
    );
    assert_eq!(
        io.try_doorbell32(6, 1),
        Err(Error::Misaligned {
            offset: 6,
            align: 4
        })
    );
    assert_eq!(
        io.cast::<u64>(4).unwrap_err(),
        Error::Misaligned {
            offset: 4,
            align: 8
        }
    );
    // Alignment is a property of the device address: the offset in the error is absolute.
    let sub = io.subslice(16..).unwrap();
    assert_eq!(
        sub.try_read32(2),
        Err(Error::Misaligned {
            offset: 18,
            align: 4
        })
    );
    assert_eq!(
        sub.cast::<u64>(4).unwrap_err(),
        Error::Misaligned {
            offset: 20,
            align: 8
        }
    );
    // A typed read through the width policy is never misaligned: it splits into aligned pieces.
    assert_eq!(io.try_read::<[u8; 4]>(2), Ok([0; 4]));
    assert!(mock.accesses().iter().all(|a| a.offset % a.width == 0));
    assert_message(e, &["0x2", "4 bytes"]);
}

#[test]
fn length_mismatch() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let e = Error::LengthMismatch {
        io_len: 64,
        buf_len: 63,
    };
    assert_eq!(memcpy_toio(&io, &[0; 63]), Err(e));
    assert_eq!(io.copy_from_slice(&[0; 63]), Err(e));
    assert_eq!(memcpy_fromio(&mut [0; 63], &io), Err(e));
    assert_eq!(
        io.copy_to_slice(&mut [0; 65]),
        Err(Error::LengthMismatch {
            io_len: 64,
            buf_len: 65
        })
    );
    assert!(
        mock.accesses().is_empty(),
        "a refused copy touched the device"
    );
    assert_message(e, &["64 bytes", "63 bytes"]);
}

#[test]
fn invalid_argument() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let (start, end) = (10, 5);
    let e = io.subslice(start..end).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    assert_message(e, &["invalid argument", "end"]);
    for bad in [0, 3, 5, 6, 7, 12, 32, usize::MAX] {
        let e = WidthPolicy::new(bad).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e:?}");
        assert_message(e, &["width policy"]);
    }
    for good in [1, 2, 4, 8] {
        assert_eq!(WidthPolicy::new(good).unwrap().max_width(), good);
    }
    assert_eq!(
        WidthPolicy::new(16).is_ok(),
        cfg!(any(target_arch = "x86_64", target_arch = "aarch64"))
    );
}

#[test]
fn bad_mapping() {
    // SAFETY: a null base is refused before the region is ever used.
    let e = unsafe { Mmio::new(core::ptr::null_mut(), 64, Caching::Uncached) }.unwrap_err();
    assert_eq!(e, Error::BadMapping { addr: 0, align: 16 });
    let mut ram = vec![0u128; 4];
    let base = ram.as_mut_ptr().cast::<u8>();
    // SAFETY: `base + 8` is refused for its alignment before the region is ever used.
    let e = unsafe { Mmio::new(base.wrapping_add(8), 32, Caching::Uncached) }.unwrap_err();
    assert_eq!(
        e,
        Error::BadMapping {
            addr: base as usize + 8,
            align: 16
        }
    );
    assert_message(e, &[&format!("{:#x}", base as usize + 8), "16 bytes"]);
    // SAFETY: a size that wraps the address space is refused before the region is ever used.
    let e = unsafe { Mmio::new(base, usize::MAX, Caching::Uncached) }.unwrap_err();
    assert!(matches!(e, Error::Overflow { .. }), "{e:?}");
}

// ---------------------------------------------------------------------------------------------
// Sub-handles

#[test]
fn subslice_bounds_and_nesting() {
    let mock = MockIo::new(256);
    let io = IoMem::new(&mock);
    let cases: [(IoMem<'_, [u8], MockIo>, usize, usize); 6] = [
        (io.subslice(..).unwrap(), 0, 256),
        (io.subslice(16..).unwrap(), 16, 240),
        (io.subslice(..32).unwrap(), 0, 32),
        (io.subslice(8..=15).unwrap(), 8, 8),
        (io.subslice(100..100).unwrap(), 100, 0),
        (io.subslice(256..).unwrap(), 256, 0),
    ];
    for (h, off, len) in cases {
        assert_eq!((h.offset(), h.len(), h.is_empty()), (off, len, len == 0));
    }
    // Nested sub-handles add up, and accesses land at the absolute offset.
    let a = io.subslice(64..192).unwrap();
    let b = a.subslice(16..48).unwrap();
    assert_eq!((b.offset(), b.len()), (80, 32));
    assert!(b.subslice(..33).is_err());
    b.try_write32(4, 0xa1b2_c3d4).unwrap();
    assert_eq!(mock.peek(84, 4), 0xa1b2_c3d4u32.to_le_bytes());
    assert_eq!(io.try_read32(84), Ok(0xa1b2_c3d4));
    // Sub-handles inherit policy and strategy.
    let narrow = io
        .with_policy(WidthPolicy::U16)
        .with_strategy(Strategy::Relaxed);
    let s = narrow.subslice(4..12).unwrap();
    assert_eq!(
        (s.policy(), s.strategy()),
        (WidthPolicy::U16, Strategy::Relaxed)
    );
    assert_eq!(s.caching(), Caching::Uncached);
    assert!(core::ptr::eq(s.backend(), &mock));
}

#[test]
fn split_at() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock).subslice(8..40).unwrap();
    let (l, r) = io.split_at(12).unwrap();
    assert_eq!((l.offset(), l.len(), r.offset(), r.len()), (8, 12, 20, 20));
    let (l, r) = io.split_at(0).unwrap();
    assert_eq!((l.len(), r.len()), (0, 32));
    let (l, r) = io.split_at(32).unwrap();
    assert_eq!((l.len(), r.len(), r.offset()), (32, 0, 40));
    assert_eq!(
        io.split_at(33).unwrap_err(),
        Error::OutOfRange {
            offset: 0,
            len: 33,
            size: 32
        }
    );
    // The halves are disjoint: filling one leaves the other alone.
    let (l, r) = io.split_at(16).unwrap();
    l.fill(0xaa).unwrap();
    r.fill(0x55).unwrap();
    assert_eq!(mock.peek(8, 16), [0xaa; 16]);
    assert_eq!(mock.peek(24, 16), [0x55; 16]);
    assert_eq!(mock.peek(0, 8), [0; 8]);
    assert_eq!(mock.peek(40, 24), [0; 24]);
}

#[test]
fn empty_ranges_touch_nothing() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    let empty = io.subslice(7..7).unwrap();
    memcpy_toio(&empty, &[]).unwrap();
    memcpy_fromio(&mut [], &empty).unwrap();
    memset_io(&empty, 0xff).unwrap();
    assert!(mock.accesses().is_empty());
}

#[derive(FromBytes, IntoBytes, Immutable, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Inner {
    x: u16,
    y: u16,
}

#[derive(FromBytes, IntoBytes, Immutable, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Outer {
    a: u32,
    inner: Inner,
    c: u64,
}

#[test]
fn cast_and_project() {
    let mock = MockIo::new(128);
    let io = IoMem::new(&mock);
    let outer = io.cast::<Outer>(32).unwrap();
    assert_eq!((outer.offset(), outer.len()), (32, 16));
    let bytes = outer.as_bytes();
    assert_eq!((bytes.offset(), bytes.len()), (32, 16));

    let inner = project!(outer, Outer, inner);
    assert_eq!((inner.offset(), inner.len()), (36, 4));
    let y = project!(inner, Inner, y);
    assert_eq!((y.offset(), y.len()), (38, 2));
    let c = project!(outer, Outer, c);
    assert_eq!((c.offset(), c.len()), (40, 8));

    y.write(&0xbeef);
    c.write(&0x0123_4567_89ab_cdef);
    assert_eq!(mock.peek(38, 2), 0xbeefu16.to_le_bytes());
    assert_eq!(
        outer.read(),
        Outer {
            a: 0,
            inner: Inner { x: 0, y: 0xbeef },
            c: 0x0123_4567_89ab_cdef
        }
    );
    // A projected register is one access of its width.
    mock.clear_events();
    let _ = y.read();
    assert_eq!(shape(&mock), [(Dir::Read, 38, 2)]);

    // A sized cast never exceeds its type, however large the region.
    assert!(matches!(
        outer.as_bytes().try_read32(16),
        Err(Error::OutOfRange { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Accessors and widths

#[derive(FromBytes, IntoBytes, Immutable, Debug, PartialEq, Clone, Copy)]
#[repr(C)]
struct Regs {
    ctrl: u32,
    status: u32,
    addr: u64,
    len: u16,
    flags: u16,
    doorbell: u32,
}

#[test]
fn compile_time_accessors_match_run_time_ones() {
    let mock = MockIo::new(64);
    let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
    regs.write32::<4>(0x1111_2222);
    regs.write64::<8>(0x3333_4444_5555_6666);
    regs.write16::<16>(0x7777);
    regs.write8::<18>(0x88);
    regs.write32_relaxed::<20>(0x9999_aaaa);
    assert_eq!(
        shape(&mock),
        [
            (Dir::Write, 4, 4),
            (Dir::Write, 8, 8),
            (Dir::Write, 16, 2),
            (Dir::Write, 18, 1),
            (Dir::Write, 20, 4)
        ]
    );
    let bytes = regs.as_bytes();
    assert_eq!(regs.read32::<4>(), bytes.try_read32(4).unwrap());
    assert_eq!(regs.read64::<8>(), 0x3333_4444_5555_6666);
    assert_eq!(regs.read16::<16>(), 0x7777);
    assert_eq!(regs.read8::<18>(), 0x88);
    assert_eq!(regs.read32_relaxed::<20>(), 0x9999_aaaa);
    assert_eq!(
        regs.read(),
        Regs {
            ctrl: 0,
            status: 0x1111_2222,
            addr: 0x3333_4444_5555_6666,
            len: 0x7777,
            flags: 0x88,
            doorbell: 0x9999_aaaa,
        }
    );
}

#[test]
fn conservative_accessors_carry_barriers_and_relaxed_ones_do_not() {
    for arch in Arch::ALL {
        let mock = MockIo::new(64).with_arch(arch);
        let regs = IoMem::new(&mock).cast::<Regs>(0).unwrap();
        let expect_w = Strategy::Conservative.placement(arch, iomem::order::Op::Write);
        let expect_r = Strategy::Conservative.placement(arch, iomem::order::Op::Read);
        regs.write32::<0>(1);
        let _ = regs.read32::<0>();
        let want: Vec<Barrier> = [expect_w.before, expect_r.before, expect_r.after]
            .into_iter()
            .flatten()
            .collect();
        assert_eq!(mock.barriers(), want, "{arch:?}");
        assert!(
            !want.is_empty(),
            "conservative single accesses carry barriers"
        );
        mock.clear_events();
        regs.write32_relaxed::<0>(1);
        let _ = regs.read32_relaxed::<0>();
        regs.as_bytes().try_write32_relaxed(4, 1).unwrap();
        assert!(
            mock.barriers().is_empty(),
            "{arch:?}: relaxed accessors made barriers"
        );
        assert_eq!(mock.accesses().len(), 3);
    }
}

/// A 24-byte block whose typed accesses follow the width policy.
#[test]
fn typed_struct_access_follows_the_width_policy() {
    let value = Regs {
        ctrl: 1,
        status: 2,
        addr: 3,
        len: 4,
        flags: 5,
        doorbell: 6,
    };
    let mock = MockIo::new(128);
    let io = IoMem::new(&mock);
    let cases = [
        (WidthPolicy::U64, vec![(0, 8), (8, 8), (16, 8)]),
        (WidthPolicy::U32, (0..6).map(|i| (i * 4, 4)).collect()),
        (WidthPolicy::U16, (0..12).map(|i| (i * 2, 2)).collect()),
    ];
    for (policy, widths) in cases {
        let regs = io.with_policy(policy).cast::<Regs>(64).unwrap();
        mock.clear_events();
        regs.write(&value);
        let want_w: Vec<_> = widths
            .iter()
            .map(|&(o, w)| (Dir::Write, 64 + o, w))
            .collect();
        assert_eq!(shape(&mock), want_w, "{policy:?}");
        assert_eq!(regs.read(), value);
        let want_r: Vec<_> = widths
            .iter()
            .map(|&(o, w)| (Dir::Read, 64 + o, w))
            .collect();
        assert_eq!(shape(&mock), want_r, "{policy:?}");
        assert_eq!(mock.peek(64, 24), value.as_bytes());
    }
    // At an offset aligned to 4 only, a U64 policy narrows head and tail to stay aligned.
    let words = io
        .with_policy(WidthPolicy::U64)
        .cast::<[u32; 6]>(4)
        .unwrap();
    words.write(&[1, 2, 3, 4, 5, 6]);
    assert_eq!(
        shape(&mock),
        [
            (Dir::Write, 4, 4),
            (Dir::Write, 8, 8),
            (Dir::Write, 16, 8),
            (Dir::Write, 24, 4)
        ]
    );
    assert_eq!(words.read(), [1, 2, 3, 4, 5, 6]);
}

#[test]
fn single_accessors_ignore_the_width_policy() {
    // The policy governs copies and typed accesses; a named accessor makes the access it names.
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::U8);
    io.try_write64(8, u64::MAX).unwrap();
    assert_eq!(shape(&mock), [(Dir::Write, 8, 8)]);
    io.try_write(8, &u64::MAX).unwrap();
    assert_eq!(shape(&mock).len(), 8);
}

#[test]
fn policy_is_clamped_to_the_backend_alignment() {
    // A 16-aligned real mapping can carry every policy.
    let mut ram = vec![0u128; 4];
    let mut back = [0; 64];
    {
        // SAFETY: owned, 16-aligned RAM, not accessed otherwise while `mmio` (this block) lives.
        let mmio = unsafe { Mmio::new(ram.as_mut_ptr().cast(), 64, Caching::Uncached) }.unwrap();
        let io = IoMem::new(&mmio).with_policy(WidthPolicy::MEMORY_LIKE);
        assert_eq!(io.policy(), WidthPolicy::MEMORY_LIKE);
        assert_eq!(IoMem::new(&mmio).policy(), WidthPolicy::LINUX);
        io.copy_from_slice(&[7; 64]).unwrap();
        io.copy_to_slice(&mut back).unwrap();
    }
    assert_eq!(back, [7; 64]);
    assert!(ram.iter().all(|&w| w == u128::from_ne_bytes([7; 16])));
}

// ---------------------------------------------------------------------------------------------
// Auto traits and the absence of reference-producing traits

struct NotSync(core::cell::Cell<u8>);

// SAFETY: a zero-sized region: no offset satisfies `read`/`write`'s contract, so they are never
// called; the barrier does nothing.
unsafe impl iomem::Backend for NotSync {
    fn size(&self) -> usize {
        0
    }
    fn base_align(&self) -> usize {
        16
    }
    fn caching(&self) -> Caching {
        Caching::Uncached
    }
    fn arch(&self) -> Arch {
        Arch::HOST
    }
    unsafe fn read<W: iomem::backend::Word>(&self, _off: usize) -> W {
        unreachable!("no offset is in bounds of an empty region")
    }
    unsafe fn write<W: iomem::backend::Word>(&self, _off: usize, _value: W) {
        unreachable!("no offset is in bounds of an empty region")
    }
    fn barrier(&self, _barrier: Barrier) {
        self.0.set(self.0.get().wrapping_add(1));
    }
    fn barrier_after_read(&self, barrier: Barrier, _loaded: u64) {
        self.barrier(barrier)
    }
}

static_assertions::assert_impl_all!(IoMem<'static, [u8], MockIo>: Send, Sync, Copy, core::fmt::Debug);
static_assertions::assert_impl_all!(IoMem<'static, Regs, Mmio>: Send, Sync, Copy);
static_assertions::assert_impl_all!(IoMem<'static, u32>: Send, Sync);
static_assertions::assert_not_impl_any!(IoMem<'static, [u8], NotSync>: Send, Sync);
static_assertions::assert_not_impl_any!(
    IoMem<'static, [u8], MockIo>:
    core::ops::Deref,
    core::ops::DerefMut,
    core::ops::Index<usize>,
    core::ops::IndexMut<usize>,
    core::ops::Index<core::ops::Range<usize>>,
    AsRef<[u8]>,
    AsMut<[u8]>,
    core::borrow::Borrow<[u8]>,
    core::borrow::BorrowMut<[u8]>,
);
static_assertions::assert_not_impl_any!(
    IoMem<'static, u32, MockIo>: core::ops::Deref, AsRef<u32>, core::borrow::Borrow<u32>,
);

#[test]
fn a_non_sync_backend_still_works_on_its_thread() {
    let b = NotSync(core::cell::Cell::new(0));
    let io = IoMem::new(&b);
    assert!(io.is_empty());
    assert!(io.try_read8(0).is_err());
    assert_eq!(b.0.get(), 0, "a refused access made a barrier");
}

#[test]
fn handles_are_shared_across_threads() {
    let mock = MockIo::new(64);
    let io = IoMem::new(&mock);
    std::thread::scope(|s| {
        for i in 0..4 {
            s.spawn(move || io.try_write32(i * 4, i as u32 + 1).unwrap());
        }
    });
    for i in 0..4 {
        assert_eq!(io.try_read32(i * 4), Ok(i as u32 + 1));
    }
}

/// A mapping whose base is only 4-byte aligned (a custom backend over a 32-bit register window).
/// Its `read`/`write` check their safety contract and panic where a real one would be undefined.
struct FourAligned(MockIo);

// SAFETY: forwards to the mock over its own RAM; `read`/`write` assert their contract
// (including `W::WIDTH <= base_align()`) before forwarding.
unsafe impl iomem::Backend for FourAligned {
    fn size(&self) -> usize {
        self.0.size()
    }
    fn base_align(&self) -> usize {
        4
    }
    fn caching(&self) -> Caching {
        self.0.caching()
    }
    fn arch(&self) -> Arch {
        self.0.arch()
    }
    unsafe fn read<W: iomem::backend::Word>(&self, off: usize) -> W {
        assert!(
            W::WIDTH <= 4,
            "{}-byte read on a 4-aligned mapping",
            W::WIDTH
        );
        // SAFETY: the caller upholds the contract, which the mock shares.
        unsafe { self.0.read(off) }
    }
    unsafe fn write<W: iomem::backend::Word>(&self, off: usize, value: W) {
        assert!(
            W::WIDTH <= 4,
            "{}-byte write on a 4-aligned mapping",
            W::WIDTH
        );
        // SAFETY: as for `read`.
        unsafe { self.0.write(off, value) }
    }
    fn barrier(&self, barrier: Barrier) {
        self.0.barrier(barrier)
    }
    fn barrier_after_read(&self, barrier: Barrier, loaded: u64) {
        self.0.barrier_after_read(barrier, loaded)
    }
}

#[test]
fn accesses_wider_than_the_mapping_alignment_are_refused() {
    let b = FourAligned(MockIo::new(64));
    let io = IoMem::new(&b);
    // Copies are narrowed to what the mapping carries.
    assert_eq!(io.policy(), WidthPolicy::LINUX);
    assert_eq!(io.policy().max_width(), 4);
    io.copy_from_slice(&[3; 64]).unwrap();
    assert_eq!(io.try_read32(8), Ok(0x0303_0303));
    // An 8-byte access at offset 8 is not known to be 8-aligned in the address space.
    assert_eq!(
        io.try_read64(8),
        Err(Error::Misaligned {
            offset: 8,
            align: 8
        })
    );
    assert_eq!(
        io.try_write64(0, 1),
        Err(Error::Misaligned {
            offset: 0,
            align: 8
        })
    );
    assert_eq!(
        io.try_read64_relaxed(16),
        Err(Error::Misaligned {
            offset: 16,
            align: 8
        })
    );
    assert!(io.cast::<u64>(8).is_err());
    assert!(b.0.accesses().iter().all(|a| a.width <= 4));
}

#[test]
fn array_elements() {
    let mock = MockIo::new(128);
    let ring = IoMem::new(&mock).cast::<[u64; 8]>(64).unwrap();
    for i in 0..8 {
        let e = ring.at(i).unwrap();
        assert_eq!((e.offset(), e.len()), (64 + 8 * i, 8));
        e.write(&(i as u64 * 3));
    }
    assert_eq!(ring.read(), [0, 3, 6, 9, 12, 15, 18, 21]);
    assert_eq!(
        ring.at(8).unwrap_err(),
        Error::OutOfRange {
            offset: 64,
            len: 8,
            size: 64
        }
    );
    assert_eq!(
        ring.at(usize::MAX).unwrap_err(),
        Error::OutOfRange {
            offset: usize::MAX,
            len: 8,
            size: 64
        }
    );
    // An element of a projected array is a register like any other.
    let regs = IoMem::new(&mock).cast::<[Inner; 4]>(0).unwrap();
    let y2 = project!(regs.at(2).unwrap(), Inner, y);
    assert_eq!(y2.offset(), 10);
    y2.write(&0x4242);
    assert_eq!(mock.peek(10, 2), 0x4242u16.to_le_bytes());
}
