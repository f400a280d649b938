//! 64-byte direct stores (x86 `MOVDIR64B`): one non-torn 64-byte write where the CPU has it,
//! the handle's plan where it does not, and the ordering the doorbell then needs.

use iomem::backend::mock::{device_order, Event};
use iomem::backend::{has_movdir64b, MockIo};
use iomem::nvme::cmb::{self, BarTable, CmbPool, PciBar, ProbeOptions};
use iomem::nvme::cmd::nvm;
use iomem::nvme::regs::{offsets, Cc, Cmbloc, Cmbsz, ControllerRegs};
use iomem::nvme::sq::CmbSubmissionQueue;
use iomem::Doorbell;
use iomem::{
    memcpy_toio, Arch, Backend, Barrier, Caching, Error, IoMem, Mmio, Strategy, WidthPolicy,
};

fn line(seed: u8) -> [u8; 64] {
    core::array::from_fn(|i| seed.wrapping_mul(31).wrapping_add(i as u8))
}

#[test]
fn a_direct_store_is_one_64_byte_write() {
    let mock = MockIo::new(4096).with_direct64(true);
    let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
    assert!(io.has_direct64());
    io.write_direct64(192, &line(1)).unwrap();
    let w = mock.writes();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!((w[0].offset, w[0].width, w[0].direct), (192, 64, true));
    assert_eq!(w[0].bytes(), line(1));
    assert_eq!(mock.peek(192, 64), line(1));
    mock.assert_no_violations();
}

#[test]
fn without_direct_stores_the_handles_plan_is_made() {
    for policy in [
        WidthPolicy::MEMORY_LIKE,
        WidthPolicy::MEMORY_LIKE.clamped(16),
        WidthPolicy::U64,
        WidthPolicy::LINUX,
    ] {
        let (a, b) = (MockIo::new(4096), MockIo::new(4096));
        let io = IoMem::new(&a).with_policy(policy);
        assert!(!io.has_direct64());
        io.write_direct64(64, &line(2)).unwrap();
        let copy = IoMem::new(&b).with_policy(policy);
        memcpy_toio(&copy.subslice(64..128).unwrap(), &line(2)).unwrap();
        assert_eq!(a.events(), b.events(), "{policy:?}");
        assert!(a.writes().iter().all(|w| !w.direct));
        assert_eq!(a.peek(64, 64), line(2));
    }
}

#[test]
fn a_handle_limited_to_narrow_accesses_never_gets_a_direct_store() {
    for policy in [WidthPolicy::U32, WidthPolicy::U64, WidthPolicy::LINUX] {
        let mock = MockIo::new(4096).with_direct64(true).with_max_width(8);
        let io = IoMem::new(&mock).with_policy(policy);
        assert!(!io.has_direct64());
        io.write_direct64(0, &line(7)).unwrap();
        let w = mock.writes();
        assert!(
            w.iter().all(|a| !a.direct && a.width <= policy.max_width()),
            "{policy:?}: {w:?}"
        );
        assert_eq!(mock.peek(0, 64), line(7));
        mock.assert_no_violations();
    }
}

#[test]
fn bad_places_are_typed_errors_on_every_cpu() {
    for direct in [false, true] {
        let mock = MockIo::new(256).with_direct64(direct);
        let io = IoMem::new(&mock).with_policy(WidthPolicy::MEMORY_LIKE);
        assert_eq!(
            io.write_direct64(32, &line(3)),
            Err(Error::Misaligned {
                offset: 32,
                align: 64
            })
        );
        assert!(matches!(
            io.write_direct64(256, &line(3)),
            Err(Error::OutOfRange { .. })
        ));
        // A sub-handle at 64: its offset 0 is absolute 64 (aligned), its 16 is not.
        let sub = io.subslice(64..256).unwrap();
        sub.write_direct64(0, &line(4)).unwrap();
        assert!(matches!(
            sub.write_direct64(16, &line(4)),
            Err(Error::Misaligned { offset: 80, .. })
        ));
        assert!(mock
            .writes()
            .iter()
            .all(|w| w.offset >= 64 && w.offset < 128));
    }
}

/// The weak-ordering model: a direct store to an *uncached* mock may reach the device after a
/// later doorbell unless an `sfence` (WcFlush) separates them. (Simulating x86_64, the
/// architecture that has direct stores, whatever the host.)
#[test]
fn a_direct_store_is_weakly_ordered_until_flushed() {
    let late = |flush: bool| {
        (0..64).any(|seed| {
            let data = MockIo::new(4096)
                .with_direct64(true)
                .with_arch(Arch::X86_64);
            let db = MockIo::new(64).with_arch(Arch::X86_64);
            IoMem::new(&data)
                .with_policy(WidthPolicy::MEMORY_LIKE)
                .write_direct64(0, &line(5))
                .unwrap();
            if flush {
                IoMem::new(&db).barrier(Barrier::WcFlush);
            }
            IoMem::new(&db).try_write32(0, 1).unwrap();
            let order = device_order(&[&data, &db], seed);
            order.first().map(|d| d.mock) == Some(1)
        })
    };
    assert!(late(false), "some order delivers the doorbell first");
    assert!(!late(true), "sfence keeps the direct store first");
}

fn cmb_queue(bar0: &MockIo, direct: bool) -> CmbSubmissionQueue<MockIo, &MockIo> {
    bar0.poke(offsets::CAP, &0x20_0a01_0fffu64.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(bar0)).unwrap();
    let bars = BarTable::new()
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        .with(2, unsafe { PciBar::new(0xfd00_0000, 1 << 20) }.unwrap())
        .unwrap();
    let info = cmb::decode(
        Cmbloc::from_raw(2),
        Cmbsz::from_raw(1 << 20 | 1 << 8 | 1),
        &bars,
        cmb::CmbScheme::Legacy,
        ProbeOptions::default(),
    )
    .unwrap();
    // An uncached CMB mapping: only the direct stores make the flush necessary.
    let cmb_bar = MockIo::new(1 << 20)
        .with_caching(Caching::Uncached)
        .with_direct64(direct);
    let pool = CmbPool::new(cmb_bar, info, Cc::default()).unwrap();
    CmbSubmissionQueue::new(pool.alloc_sq(8).unwrap(), 8, bar0, regs.cap().unwrap(), 1)
        .unwrap()
        .with_strategy(Strategy::Batched)
}

#[test]
fn the_cmb_queue_pushes_each_command_as_one_direct_store_and_flushes_before_the_doorbell() {
    for direct in [false, true] {
        let bar0 = MockIo::new(0x2000);
        let mut sq = cmb_queue(&bar0, direct);
        bar0.clear_events();
        sq.push(&nvm::flush(1)).unwrap();
        sq.push(&nvm::flush(2)).unwrap();
        sq.ring().unwrap();
        let barriers: Vec<Barrier> = bar0
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Barrier { barrier, .. } => Some(*barrier),
                Event::Access(_) => None,
            })
            .collect();
        if direct {
            assert_eq!(barriers, [Barrier::WcFlush], "direct stores need the flush");
        } else {
            assert!(!barriers.contains(&Barrier::WcFlush), "{barriers:?}");
        }
        assert_eq!(
            bar0.writes().last().map(|w| (w.offset, w.value)),
            Some((0x1008, 2))
        );
    }
}

#[test]
fn the_cmb_rings_writes_are_one_64_byte_access_per_command() {
    let bar0 = MockIo::new(0x2000);
    let mut sq = cmb_queue(&bar0, true);
    sq.ring_io().backend().clear_events();
    for nsid in 1..=3 {
        sq.push(&nvm::flush(nsid)).unwrap();
    }
    let w = sq.ring_io().backend().writes();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(w
        .iter()
        .all(|a| a.width == 64 && a.direct && a.offset % 64 == 0));
    // Each entry holds its command: the NSID (CDW1) at bytes 4..8.
    for (k, a) in w.iter().enumerate() {
        assert_eq!(a.bytes()[4..8], (k as u32 + 1).to_le_bytes());
    }
}

/// The real backend asks the CPU: `has_movdir64b` agrees with the kernel's view of the CPU
/// (`/proc/cpuinfo` flags), and a direct write over RAM lands whole either way.
#[test]
fn the_real_backend_uses_movdir64b_exactly_where_the_cpu_has_it() {
    #[cfg(all(target_os = "linux", target_arch = "x86_64"))]
    if let Ok(info) = std::fs::read_to_string("/proc/cpuinfo") {
        let flags = info
            .lines()
            .find(|l| l.starts_with("flags"))
            .unwrap_or_default();
        let kernel = flags.split_whitespace().any(|f| f == "movdir64b");
        assert_eq!(has_movdir64b(), kernel, "CPUID and /proc/cpuinfo disagree");
    }
    #[repr(C, align(64))]
    struct Lines([u8; 256]);
    let mut ram = Box::new(Lines([0; 256]));
    let base = ram.0.as_mut_ptr();
    {
        // SAFETY: `base` is 256 bytes of RAM owned by `ram` (64-aligned), not otherwise used
        // while `mmio` lives (it dies at the end of this block); RAM needs no flush.
        let mmio = unsafe { Mmio::new(base, 256, Caching::Uncached) }.unwrap();
        assert_eq!(mmio.has_direct64(), has_movdir64b());
        let io = IoMem::new(&mmio).with_policy(WidthPolicy::MEMORY_LIKE);
        assert_eq!(io.has_direct64(), has_movdir64b());
        io.write_direct64(128, &line(6)).unwrap();
    }
    assert_eq!(ram.0[128..192], line(6));
    assert!(ram.0[..128].iter().chain(&ram.0[192..]).all(|&b| b == 0));
}

/// A doorbell naming a handle that makes direct stores flushes them, on an uncached mapping too;
/// without direct stores the same handle needs no flush.
#[test]
fn a_doorbell_flushes_direct_stores_it_publishes() {
    for direct in [false, true] {
        let data = MockIo::new(4096)
            .with_direct64(direct)
            .with_arch(Arch::X86_64);
        let bar0 = MockIo::new(64).with_arch(Arch::X86_64);
        let io = IoMem::new(&data).with_policy(WidthPolicy::MEMORY_LIKE);
        let db = Doorbell::new(IoMem::new(&bar0).cast::<u32>(0).unwrap())
            .with_strategy(Strategy::Batched);

        let mut sub = db.submission();
        sub.write_direct64(&io, 0, &line(8)).unwrap();
        assert_eq!(sub.needs_wc_flush(), direct);
        sub.ring(1);
        io.write_direct64(64, &line(9)).unwrap();
        db.ring(2, &[&io]);

        let flushes = bar0
            .barriers()
            .iter()
            .filter(|b| **b == Barrier::WcFlush)
            .count();
        assert_eq!(flushes, if direct { 2 } else { 0 }, "direct: {direct}");
        assert_eq!(
            data.writes().iter().filter(|w| w.direct).count(),
            if direct { 2 } else { 0 }
        );
        assert_eq!(data.peek(0, 64), line(8));
        assert_eq!(data.peek(64, 64), line(9));
    }
}
