//! The mock backend as a driver's test sees it: register hooks (write-1-to-clear, clear-on-read,
//! doorbells), width faults reported as violations, direct RAM access, and the trace.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use iomem::backend::mock::{Dir, Event, MockIo, WriteEffect};
use iomem::order::instructions;
use iomem::{Arch, Barrier, IoMem, WidthPolicy};

#[test]
fn write_1_to_clear() {
    let mock = MockIo::new(64);
    mock.write_1_to_clear(8, 4);
    mock.poke(8, &0x0000_ff0fu32.to_le_bytes());
    let io = IoMem::new(&mock);
    io.try_write32(8, 0x0000_0f03).unwrap();
    // Ones cleared their bits; zeros left theirs.
    assert_eq!(io.try_read32(8), Ok(0x0000_f00c));
    io.try_write32(8, 0).unwrap();
    assert_eq!(io.try_read32(8), Ok(0x0000_f00c));
    // Writing 1 to a bit that is already clear leaves it clear (it does not toggle).
    io.try_write32(8, 0x0000_0030).unwrap();
    assert_eq!(io.try_read32(8), Ok(0x0000_f00c));
    // The trace shows what the driver wrote, not what the register became.
    let w = mock.writes();
    assert_eq!((w[0].offset, w[0].width, w[0].value), (8, 4, 0x0f03));
    // Registers next to it are ordinary.
    io.try_write32(12, 0xffff_ffff).unwrap();
    assert_eq!(io.try_read32(12), Ok(0xffff_ffff));
}

#[test]
fn clear_on_read() {
    let mock = MockIo::new(64);
    mock.clear_on_read(4, 4);
    mock.poke(4, &0x8000_0001u32.to_le_bytes());
    let io = IoMem::new(&mock);
    assert_eq!(io.try_read32(4), Ok(0x8000_0001));
    assert_eq!(
        mock.peek(4, 4),
        [0; 4],
        "the read did not clear the register"
    );
    assert_eq!(io.try_read32(4), Ok(0));
    // The trace records the value each read returned.
    let values: Vec<u128> = mock.reads().iter().map(|a| a.value).collect();
    assert_eq!(values, [0x8000_0001, 0]);
    // `peek` is not a device read: it neither clears nor shows up in the trace.
    mock.poke(4, &7u32.to_le_bytes());
    assert_eq!(mock.peek(4, 4), 7u32.to_le_bytes());
    assert_eq!(mock.peek(4, 4), 7u32.to_le_bytes());
    assert_eq!(mock.reads().len(), 2);
}

/// Accesses that cover part of a write-1-to-clear register, or more than it: each byte of the
/// register is cleared by the ones written to that byte, and the bytes around it are stored.
#[test]
fn write_1_to_clear_by_part_or_more_of_the_register() {
    let mock = MockIo::new(64);
    mock.write_1_to_clear(4, 4);
    mock.poke(4, &0x4433_ff01u32.to_le_bytes());
    let io = IoMem::new(&mock);
    // Bit 8 is bit 0 of byte 5.
    io.try_write8(5, 0x01).unwrap();
    assert_eq!(mock.peek(4, 4), 0x4433_fe01u32.to_le_bytes());
    io.try_write16(6, 0x0400).unwrap();
    assert_eq!(mock.peek(4, 4), 0x4033_fe01u32.to_le_bytes());
    // An 8-byte write over it and the word before: that word is stored, the register cleared
    // where the write has ones.
    io.try_write64(0, 0x0000_0001_dead_beef).unwrap();
    assert_eq!(mock.peek(0, 4), 0xdead_beefu32.to_le_bytes());
    assert_eq!(mock.peek(4, 4), 0x4033_fe00u32.to_le_bytes());
}

/// Reads of part of a clear-on-read register return the bytes they cover and clear only those;
/// a read wider than it, 16 bytes and more, returns its neighbours untouched.
#[test]
fn clear_on_read_by_part_or_more_of_the_register() {
    let mock = MockIo::new(64);
    mock.clear_on_read(20, 4);
    mock.poke(20, &0x4433_2211u32.to_le_bytes());
    let io = IoMem::new(&mock);
    assert_eq!(io.try_read8(22), Ok(0x33));
    assert_eq!(mock.peek(20, 4), 0x4400_2211u32.to_le_bytes());
    assert_eq!(io.try_read16(20), Ok(0x2211));
    assert_eq!(mock.peek(20, 4), 0x4400_0000u32.to_le_bytes());
    // 32 bytes from 0, the register in the second 16-byte lane, through one 32-byte access.
    mock.poke(20, &0x8877_6655u32.to_le_bytes());
    mock.poke(24, &[0xaa; 4]);
    let mut got = [0u8; 32];
    let wide = IoMem::new(&mock)
        .subslice(0..32)
        .unwrap()
        .with_policy(WidthPolicy::MEMORY_LIKE);
    iomem::memcpy_fromio(&mut got, &wide).unwrap();
    assert_eq!(
        got[20..24],
        0x8877_6655u32.to_le_bytes(),
        "the register's value"
    );
    assert_eq!(got[24..28], [0xaa; 4], "its neighbour");
    assert_eq!(mock.peek(20, 4), [0; 4], "the read cleared the register");
    assert_eq!(mock.peek(24, 4), [0xaa; 4], "and nothing else");
}

#[test]
fn doorbell_hook_counts_writes_and_discards_them() {
    let mock = MockIo::new(0x1000);
    let rung = Arc::new(AtomicUsize::new(0));
    let values = Arc::new(Mutex::new(Vec::new()));
    let (r, v) = (rung.clone(), values.clone());
    mock.on_write(0x100..0x104, move |_ram, a| {
        r.fetch_add(1, Ordering::SeqCst);
        v.lock().unwrap().push(a.value);
        WriteEffect::Discard
    });
    let io = IoMem::new(&mock);
    for tail in 1..=3u32 {
        io.try_doorbell32(0x100, tail).unwrap();
    }
    io.try_write32(0x104, 9).unwrap(); // next register: not the doorbell
    io.try_write32(0xfc, 9).unwrap(); // previous register: not the doorbell
    assert_eq!(rung.load(Ordering::SeqCst), 3);
    assert_eq!(*values.lock().unwrap(), [1, 2, 3]);
    // Discarded: the doorbell's RAM never changed; the neighbours' did.
    assert_eq!(mock.peek(0x100, 4), [0; 4]);
    assert_eq!(mock.peek(0x104, 4), 9u32.to_le_bytes());
    assert_eq!(mock.peek(0xfc, 4), 9u32.to_le_bytes());
    // A wide write that overlaps the doorbell rings it too (and is discarded whole).
    io.try_write64(0x100, u64::MAX).unwrap();
    assert_eq!(rung.load(Ordering::SeqCst), 4);
    // (0x104..0x108 keeps the 9 written before: the discarded write changed nothing.)
    assert_eq!(mock.peek(0x100, 8), [0, 0, 0, 0, 9, 0, 0, 0]);
    // Every write is in the trace, doorbell or not.
    assert_eq!(mock.writes().len(), 6);
}

#[test]
fn a_storing_hook_lets_the_write_land_and_may_change_ram() {
    let mock = MockIo::new(64);
    // Writing the "go" register sets a "done" bit in the status register next to it.
    mock.on_write(0..4, |ram, a| {
        if a.value & 1 != 0 {
            let status = ram.get(4, 4);
            ram.set(4, 4, status | 0x80);
        }
        WriteEffect::Store
    });
    let io = IoMem::new(&mock);
    io.try_write32(0, 1).unwrap();
    assert_eq!(io.try_read32(0), Ok(1));
    assert_eq!(io.try_read32(4), Ok(0x80));
}

#[test]
fn a_read_hook_replaces_the_value() {
    let mock = MockIo::new(64);
    let reads = Arc::new(AtomicUsize::new(0));
    let r = reads.clone();
    // A free-running counter: each read returns the next value.
    mock.on_read(16..24, move |_ram, a| {
        assert_eq!(a.dir, Dir::Read);
        Some(r.fetch_add(1, Ordering::SeqCst) as u128 + 100)
    });
    let io = IoMem::new(&mock);
    assert_eq!(io.try_read64(16), Ok(100));
    assert_eq!(io.try_read32(20), Ok(101));
    assert_eq!(io.try_read32(24), Ok(0), "outside the hook's range");
    assert_eq!(reads.load(Ordering::SeqCst), 2);
}

#[test]
fn wide_accesses_are_recorded_as_violations() {
    let mock = MockIo::new(64).with_max_width(4);
    let io = IoMem::new(&mock);
    io.try_write32(0, 1).unwrap();
    assert!(mock.violations().is_empty());
    io.try_write64(8, 2).unwrap();
    let _ = io.try_read64(8);
    let v = mock.take_violations();
    assert_eq!(v.len(), 2, "{v:?}");
    assert_eq!(
        (v[0].access.dir, v[0].access.offset, v[0].access.width),
        (Dir::Write, 8, 8)
    );
    assert_eq!(
        (v[1].access.dir, v[1].access.offset, v[1].access.width),
        (Dir::Read, 8, 8)
    );
    assert!(v[0].why.contains("wider"), "{}", v[0].why);
    // Taken: nothing is left for the drop check.
    assert!(mock.violations().is_empty());
    // A copy under a policy the device accepts makes none.
    io.with_policy(WidthPolicy::U32)
        .copy_from_slice(&[1; 64])
        .unwrap();
    mock.assert_no_violations();
    // A 64-bit policy does.
    io.with_policy(WidthPolicy::U64)
        .copy_from_slice(&[1; 64])
        .unwrap();
    assert_eq!(mock.take_violations().len(), 8);
}

#[test]
#[should_panic(expected = "1 device access violation(s)")]
fn assert_no_violations_panics_with_a_description() {
    let mock = MockIo::new(64).with_max_width(2);
    IoMem::new(&mock).try_write32(4, 0xdead).unwrap();
    mock.assert_no_violations();
}

#[test]
#[should_panic(expected = "MockIo dropped with unchecked violations")]
fn dropping_a_mock_with_violations_panics() {
    let mock = MockIo::new(64).with_max_width(1);
    IoMem::new(&mock).try_write16(2, 1).unwrap();
    drop(mock);
}

#[test]
fn a_clean_mock_drops_quietly() {
    let mock = MockIo::new(64).with_max_width(8);
    IoMem::new(&mock).try_write64(0, 1).unwrap();
    drop(mock);
}

#[test]
fn peek_and_poke_bypass_the_trace_and_hooks() {
    let mock = MockIo::new(100); // not a multiple of the mock's internal line size
    let hooked = Arc::new(AtomicUsize::new(0));
    let h = hooked.clone();
    mock.on_write(0..100, move |_, _| {
        h.fetch_add(1, Ordering::SeqCst);
        WriteEffect::Store
    });
    let pattern: Vec<u8> = (0..100).collect();
    mock.poke(0, &pattern);
    assert_eq!(mock.peek(0, 100), pattern);
    assert_eq!(mock.peek(96, 4), [96, 97, 98, 99]);
    assert!(mock.events().is_empty());
    assert_eq!(hooked.load(Ordering::SeqCst), 0);
    // The device side sees what was poked, and peek sees what the device side wrote.
    let io = IoMem::new(&mock);
    assert_eq!(io.try_read32(96), Ok(u32::from_le_bytes([96, 97, 98, 99])));
    io.try_write8(99, 0xee).unwrap();
    assert_eq!(mock.peek(99, 1), [0xee]);
    assert_eq!(hooked.load(Ordering::SeqCst), 1);
    assert_eq!(io.len(), 100);
}

#[test]
fn trace_records_accesses_and_barriers_in_order() {
    let mock = MockIo::new(64).with_arch(Arch::PowerPc64);
    let io = IoMem::new(&mock);
    io.try_write32(0, 5).unwrap();
    let events = mock.events();
    let first_access = events
        .iter()
        .position(|e| matches!(e, Event::Access(_)))
        .unwrap();
    // A conservative write on powerpc is fenced before the store.
    assert!(first_access > 0, "no barrier before the write: {events:?}");
    // Recorded instructions are the architecture's table, barrier by barrier.
    let want: Vec<&str> = mock
        .barriers()
        .iter()
        .flat_map(|&b| instructions(Arch::PowerPc64, b).iter().copied())
        .collect();
    assert_eq!(mock.instructions(), want);
    assert!(!want.is_empty());

    let taken = mock.take_events();
    assert_eq!(taken, events);
    assert!(mock.events().is_empty());

    // With tracing off, RAM and hooks still work but nothing is recorded.
    mock.set_tracing(false);
    io.try_write32(4, 6).unwrap();
    assert!(mock.events().is_empty());
    assert_eq!(mock.peek(4, 4), 6u32.to_le_bytes());
    mock.set_tracing(true);
    io.try_write32(8, 7).unwrap();
    assert_eq!(mock.writes().len(), 1);
    mock.clear_events();
    assert!(mock.events().is_empty());
}

#[test]
fn barriers_record_the_simulated_architecture() {
    for arch in Arch::ALL {
        let mock = MockIo::new(64).with_arch(arch);
        for b in Barrier::ALL {
            iomem::Backend::barrier(&mock, b);
        }
        let got: Vec<(Barrier, &[&str])> = mock
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::Barrier { barrier, insns } => Some((*barrier, *insns)),
                Event::Access(_) => None,
            })
            .collect();
        let want: Vec<(Barrier, &[&str])> = Barrier::ALL
            .iter()
            .map(|&b| (b, instructions(arch, b)))
            .collect();
        assert_eq!(got, want, "{arch:?}");
    }
}

#[test]
#[should_panic(expected = "MockIo::peek: 0x3c + 0x8 bytes is outside the 0x40-byte mock")]
fn peek_past_the_end_says_so() {
    let _ = MockIo::new(64).peek(60, 8);
}

#[test]
#[should_panic(expected = "MockIo::poke: 0xffffffffffffffff + 0x2 bytes is outside")]
fn poke_with_an_overflowing_range_says_so() {
    MockIo::new(64).poke(usize::MAX, &[1, 2]);
}

#[test]
#[should_panic(expected = "a register is 1, 2, 4, 8 or 16 bytes wide, not 3")]
fn a_bad_register_width_is_reported_when_the_hook_is_made() {
    MockIo::new(64).write_1_to_clear(0, 3);
}

#[test]
#[should_panic(expected = "MockIo::register: 0x40 + 0x4 bytes is outside")]
fn a_register_outside_the_mock_is_reported_when_the_hook_is_made() {
    MockIo::new(64).clear_on_read(64, 4);
}

/// A driver's own barrier between a completion's phase tag and its payload (`dma_rmb()`) goes
/// through the backend, so the mock records it in program order with the simulated arch's
/// instruction.
#[test]
fn a_drivers_standalone_barrier_is_recorded_in_order() {
    use iomem::backend::mock::Event;
    use iomem::order::{Arch, Barrier};
    let mock = MockIo::new(64).with_arch(Arch::PowerPc64);
    let cq = IoMem::new(&mock);
    let _phase = cq.try_read32_relaxed(12).unwrap();
    cq.barrier(Barrier::DmaRmb);
    let _payload = cq.try_read32_relaxed(8).unwrap();
    let shape: Vec<String> = mock
        .events()
        .iter()
        .map(|e| match e {
            Event::Access(a) => format!("{:?}@{}", a.dir, a.offset),
            Event::Barrier { barrier, insns } => format!("{barrier:?}={insns:?}"),
        })
        .collect();
    assert_eq!(shape, ["Read@12", "DmaRmb=[\"lwsync\"]", "Read@8"]);
}

/// A read hook's replacement is cut to the read's width, for the driver and in the trace alike:
/// the trace records the value the read returned.
#[test]
fn a_replaced_read_is_traced_as_the_value_returned() {
    let mock = MockIo::new(64);
    mock.on_read(0..8, |_, _| Some(0x1_2345_6789_abcd_efff));
    let io = IoMem::new(&mock);
    assert_eq!(io.try_read8(0).unwrap(), 0xff);
    assert_eq!(io.try_read16(2).unwrap(), 0xefff);
    assert_eq!(io.try_read32(4).unwrap(), 0xabcd_efff);
    let traced: Vec<u128> = mock.reads().iter().map(|a| a.value).collect();
    assert_eq!(traced, [0xff, 0xefff, 0xabcd_efff]);
}
