//! Barrier placement per simulated architecture, doorbells over write-combining data, `IoLock`,
//! and the weak-ordering model of the mock.
//!
//! Every test runs on any host: the mock records the instructions the simulated architecture
//! would execute, taken from the same table the real backend executes.

use iomem::backend::mock::{self, Access, Dir, Event};
use iomem::backend::MockIo;
use iomem::order::{Arch, Barrier, Strategy};
use iomem::publish::{Doorbell, IoSpinLock};
use iomem::{memcpy_fromio, memcpy_toio, Caching, IoLock, IoMem, WidthPolicy};
use proptest::prelude::*;

mod support;
use support::find_counterexample;

/// A trace in a compact, comparable form: `W4@0x10` for a 4-byte write at 0x10, `R4@0x0` for a
/// read, and the instruction names of each barrier (`[sync]`, `[]` for a compiler fence).
fn shape(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            Event::Access(a) => format!(
                "{}{}@{:#x}",
                if a.dir == Dir::Write { "W" } else { "R" },
                a.width,
                a.offset
            ),
            Event::Barrier { insns, .. } => format!("[{}]", insns.join(";")),
        })
        .collect()
}

fn writes(n: usize, width: usize, start: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("W{width}@{:#x}", start + i * width))
        .collect()
}

// ---- Conservative placement, per simulated architecture ----------------------------------

#[test]
fn powerpc_memcpy_toio_is_sync_u32_stores_sync() {
    let m = MockIo::new(256).with_arch(Arch::PowerPc64);
    let io = IoMem::new(&m).with_policy(WidthPolicy::U32);
    memcpy_toio(&io.subslice(0x40..0x80).unwrap(), &[0x11; 64]).unwrap();
    let mut want = vec!["[sync]".to_string()];
    want.extend(writes(16, 4, 0x40));
    want.push("[sync]".into());
    assert_eq!(shape(&m.events()), want);
    assert_eq!(m.peek(0x40, 64), vec![0x11; 64]);
}

#[test]
fn powerpc_memset_io_is_bracketed_by_sync() {
    let m = MockIo::new(64).with_arch(Arch::PowerPc64);
    IoMem::new(&m)
        .with_policy(WidthPolicy::U32)
        .fill(0xee)
        .unwrap();
    let s = shape(&m.events());
    assert_eq!(s.first().map(String::as_str), Some("[sync]"));
    assert_eq!(s.last().map(String::as_str), Some("[sync]"));
    assert_eq!(s.len(), 16 + 2);
}

#[test]
fn powerpc_memcpy_fromio_puts_eieio_after_every_load() {
    let m = MockIo::new(64).with_arch(Arch::PowerPc64);
    let io = IoMem::new(&m).with_policy(WidthPolicy::U32);
    let mut buf = [0u8; 16];
    memcpy_fromio(&mut buf, &io.subslice(0..16).unwrap()).unwrap();
    let mut want = vec!["[sync]".to_string()];
    for i in 0..4 {
        want.push(format!("R4@{:#x}", i * 4));
        want.push("[eieio]".into());
    }
    want.push("[sync]".into());
    assert_eq!(shape(&m.events()), want);
}

#[test]
fn powerpc_readl_is_sync_load_twi_isync() {
    let m = MockIo::new(16).with_arch(Arch::PowerPc64);
    m.poke(8, &0xdead_beefu32.to_le_bytes());
    let v = IoMem::new(&m).try_read32(8).unwrap();
    assert_eq!(v, 0xdead_beef);
    assert_eq!(
        shape(&m.events()),
        ["[sync]", "R4@0x8", "[twi 0,r,0;isync]"]
    );
}

#[test]
fn powerpc_writel_is_sync_then_store() {
    let m = MockIo::new(16).with_arch(Arch::PowerPc64);
    IoMem::new(&m).try_write32(4, 7).unwrap();
    assert_eq!(shape(&m.events()), ["[sync]", "W4@0x4"]);
}

#[test]
fn aarch64_writel_is_dmb_oshst_then_str() {
    let m = MockIo::new(16).with_arch(Arch::Aarch64);
    IoMem::new(&m).try_write32(4, 7).unwrap();
    assert_eq!(shape(&m.events()), ["[dmb oshst]", "W4@0x4"]);
}

#[test]
fn aarch64_readl_is_ldr_then_dmb_oshld_and_copies_have_no_barrier() {
    let m = MockIo::new(128).with_arch(Arch::Aarch64);
    IoMem::new(&m).try_read32(0).unwrap();
    assert_eq!(shape(&m.events()), ["[]", "R4@0x0", "[dmb oshld]"]);
    m.clear_events();
    memcpy_toio(&IoMem::new(&m).subslice(0..64).unwrap(), &[1; 64]).unwrap();
    assert!(m.barriers().is_empty(), "{:?}", m.barriers());
}

#[test]
fn riscv_readl_is_load_then_fence_i_ir_and_writel_fence_w_o() {
    let m = MockIo::new(16).with_arch(Arch::Riscv64);
    let io = IoMem::new(&m);
    io.try_read32(0).unwrap();
    io.try_write32(0, 1).unwrap();
    assert_eq!(
        shape(&m.events()),
        ["[]", "R4@0x0", "[fence i,ir]", "[fence w,o]", "W4@0x0"]
    );
}

#[test]
fn x86_uncached_accesses_execute_no_instruction() {
    let m = MockIo::new(128).with_arch(Arch::X86_64);
    let io = IoMem::new(&m);
    io.try_write32(0, 1).unwrap();
    io.try_read32(0).unwrap();
    memcpy_toio(&io.subslice(64..128).unwrap(), &[2; 64]).unwrap();
    io.try_doorbell32(4, 1).unwrap();
    assert!(m.instructions().is_empty(), "{:?}", m.instructions());
    assert!(!m.writes().is_empty());
}

#[test]
fn relaxed_and_batched_copies_carry_no_barrier_on_any_arch() {
    for arch in Arch::ALL {
        for s in [Strategy::Relaxed, Strategy::Batched] {
            let m = MockIo::new(64).with_arch(arch);
            let io = IoMem::new(&m).with_strategy(s);
            io.copy_from_slice(&[3; 64]).unwrap();
            io.try_write32(0, 1).unwrap();
            assert!(
                m.barriers().is_empty(),
                "{arch:?} {s:?}: {:?}",
                m.barriers()
            );
        }
    }
}

#[test]
fn batched_keeps_readl_barriers_relaxed_does_not() {
    for (s, want) in [
        (Strategy::Batched, vec!["[]", "R4@0x0", "[dmb oshld]"]),
        (Strategy::Relaxed, vec!["R4@0x0"]),
    ] {
        let m = MockIo::new(16).with_arch(Arch::Aarch64);
        IoMem::new(&m).with_strategy(s).try_read32(0).unwrap();
        assert_eq!(shape(&m.events()), want, "{s:?}");
    }
}

// ---- Doorbells over write-combining data --------------------------------------------------

const DB: usize = 0x1000 - 4;

fn bar0(arch: Arch) -> MockIo {
    MockIo::new(0x1000).with_arch(arch)
}

fn cmb(arch: Arch) -> MockIo {
    MockIo::new(0x1000)
        .with_arch(arch)
        .with_caching(Caching::WriteCombining)
}

fn flush_insn(arch: Arch) -> &'static str {
    match arch {
        Arch::PowerPc64 => "sync",
        Arch::Aarch64 => "dsb st",
        Arch::Riscv64 => "fence ow,ow",
        Arch::X86_64 => "sfence",
        Arch::Other => "fence seqcst",
    }
}

#[test]
fn doorbell_flushes_wc_data_held_in_another_mapping() {
    for arch in Arch::ALL {
        let regs = bar0(arch);
        let data = cmb(arch);
        let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap())
            .with_strategy(Strategy::Batched);
        let mut sub = db.submission();
        sub.copy(&IoMem::new(&data).subslice(0..64).unwrap(), &[9; 64])
            .unwrap();
        assert!(sub.needs_wc_flush());
        sub.ring(1);
        assert_eq!(
            shape(&regs.events()),
            [format!("[{}]", flush_insn(arch)), format!("W4@{DB:#x}")],
            "{arch:?}"
        );
        assert!(data.barriers().is_empty());
    }
}

#[test]
fn doorbell_without_wc_data_uses_the_writel_barrier() {
    let regs = bar0(Arch::X86_64);
    let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap());
    db.ring(1, &[]);
    assert_eq!(shape(&regs.events()), ["[]", "W4@0xffc"]);

    // The same ring naming an uncached region and then a WC one.
    let regs = bar0(Arch::X86_64);
    let uc = bar0(Arch::X86_64);
    let wc = cmb(Arch::X86_64);
    let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap());
    db.ring(1, &[&IoMem::new(&uc)]);
    db.ring(2, &[&IoMem::new(&uc), &IoMem::new(&wc)]);
    assert_eq!(regs.instructions(), ["sfence"]);
}

#[test]
fn relaxed_doorbell_has_no_barrier_even_over_wc_data() {
    let regs = bar0(Arch::PowerPc64);
    let db =
        Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap()).with_strategy(Strategy::Relaxed);
    db.ring(1, &[&Caching::WriteCombining]);
    assert!(regs.barriers().is_empty());
}

/// Submits `n` 64-byte commands under `s` on `arch` and returns the instructions executed.
fn submit_batch(arch: Arch, s: Strategy, n: usize) -> Vec<&'static str> {
    let regs = bar0(arch);
    let data = cmb(arch);
    let sq = IoMem::new(&data).with_policy(WidthPolicy::U32);
    let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap()).with_strategy(s);
    let per_ring = if s == Strategy::Batched { 32 } else { 1 };
    let mut i = 0;
    while i < n {
        let mut sub = db.submission();
        for _ in 0..per_ring.min(n - i) {
            let slot = sq.subslice((i % 64) * 64..(i % 64) * 64 + 64).unwrap();
            sub.copy(&slot, &[i as u8; 64]).unwrap();
            i += 1;
        }
        sub.ring(i as u32);
    }
    let mut all = regs.instructions();
    all.extend(data.instructions());
    all
}

#[test]
fn batched_issues_one_full_barrier_per_32_commands_on_powerpc() {
    let count = |s| {
        submit_batch(Arch::PowerPc64, s, 32)
            .iter()
            .filter(|i| **i == "sync")
            .count()
    };
    assert_eq!(count(Strategy::Batched), 1);
    // Linux: a sync before and after each _memcpy_toio, and the doorbell's.
    assert_eq!(count(Strategy::Conservative), 2 * 32 + 32);
    assert_eq!(count(Strategy::Relaxed), 0);
    // 1000 commands: 32 rings.
    assert_eq!(
        submit_batch(Arch::PowerPc64, Strategy::Batched, 1000).len(),
        1000usize.div_ceil(32)
    );
}

// ---- IoLock --------------------------------------------------------------------------------

fn unlock_insns(arch: Arch) -> &'static [&'static str] {
    match arch {
        Arch::PowerPc64 => &["sync"],
        Arch::Riscv64 => &["fence o,w"],
        _ => &[],
    }
}

#[test]
fn io_lock_issues_mmio_unlock_iff_a_write_happened() {
    for arch in Arch::ALL {
        let m = MockIo::new(64).with_arch(arch);
        let regs = IoMem::new(&m).with_strategy(Strategy::Relaxed);
        let lock = IoLock::new(0u32);

        // Only RAM state and an MMIO read: no release barrier.
        {
            let mut g = lock.lock();
            *g += 1;
            let _ = g.io(regs).handle().try_read32(0).unwrap();
            assert!(!g.write_pending());
        }
        assert!(
            !m.barriers().contains(&Barrier::MmioUnlock),
            "{arch:?}: {:?}",
            m.barriers()
        );

        // An MMIO write: exactly one MmioUnlock, after the write, with the arch's instructions.
        m.clear_events();
        {
            let g = lock.lock();
            g.io(regs).writes(|r| r.try_write32(8, 0xab)).unwrap();
            assert!(g.write_pending());
        }
        let ev = m.events();
        assert_eq!(ev.len(), 2, "{arch:?}: {ev:?}");
        assert!(matches!(
            ev[0],
            Event::Access(Access {
                dir: Dir::Write,
                offset: 8,
                ..
            })
        ));
        match ev[1] {
            Event::Barrier { barrier, insns } => {
                assert_eq!(barrier, Barrier::MmioUnlock);
                assert_eq!(insns, unlock_insns(arch), "{arch:?}");
            }
            ref e => panic!("{arch:?}: expected the unlock barrier, got {e:?}"),
        }
    }
}

#[test]
fn io_lock_barrier_precedes_the_next_holders_writes() {
    let m = MockIo::new(64).with_arch(Arch::PowerPc64);
    let regs = IoMem::new(&m).with_strategy(Strategy::Relaxed);
    let lock = IoLock::new(0u32);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                for _ in 0..50 {
                    let mut g = lock.lock();
                    *g += 1;
                    let tail = *g;
                    g.io(regs).writes(|r| r.try_write32(0, tail)).unwrap();
                }
            });
        }
    });
    // Every write is followed by its unlock barrier before any other write: the device sees
    // tails in increasing order.
    let ev = m.events();
    assert_eq!(ev.len(), 200);
    for pair in ev.chunks(2) {
        assert!(matches!(pair[0], Event::Access(_)));
        assert!(matches!(
            pair[1],
            Event::Barrier {
                barrier: Barrier::MmioUnlock,
                ..
            }
        ));
    }
    let tails: Vec<u128> = m.writes().iter().map(|a| a.value).collect();
    assert_eq!(tails, (1..=100).collect::<Vec<u128>>());
}

#[test]
fn io_spin_lock_orders_like_io_lock() {
    for arch in Arch::ALL {
        let m = MockIo::new(64).with_arch(arch);
        let regs = IoMem::new(&m).with_strategy(Strategy::Relaxed);
        let lock = IoSpinLock::new(0u32);
        {
            let mut g = lock.lock();
            *g += 1;
        }
        assert!(m.barriers().is_empty(), "{arch:?}");
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..50 {
                        let mut g = lock.lock();
                        *g += 1;
                        let tail = *g;
                        g.io(regs).writes(|r| r.try_write32(0, tail)).unwrap();
                    }
                });
            }
        });
        let ev = m.events();
        assert_eq!(ev.len(), 200, "{arch:?}");
        for pair in ev.chunks(2) {
            assert!(matches!(pair[0], Event::Access(_)));
            match pair[1] {
                Event::Barrier { barrier, insns } => {
                    assert_eq!(barrier, Barrier::MmioUnlock);
                    assert_eq!(insns, unlock_insns(arch));
                }
                ref e => panic!("{arch:?}: expected the unlock barrier, got {e:?}"),
            }
        }
        let tails: Vec<u128> = m.writes().iter().map(|a| a.value).collect();
        assert_eq!(tails, (2..=101).collect::<Vec<u128>>(), "{arch:?}");
        assert!(lock.try_lock().is_some());
        assert_eq!(lock.into_inner(), 101);
    }
}

#[test]
fn io_lock_drains_write_combining_writes_at_unlock() {
    for arch in Arch::ALL {
        let regs = bar0(arch);
        let data = cmb(arch);
        let lock = IoLock::new(());
        {
            let g = lock.lock();
            g.io(IoMem::new(&regs).with_strategy(Strategy::Relaxed))
                .writes(|r| r.try_write32(0, 1))
                .unwrap();
            g.io(IoMem::new(&data).with_strategy(Strategy::Relaxed))
                .writes(|d| d.copy_from_slice(&[1; 0x1000]))
                .unwrap();
        }
        // A write-combining mapping was written: the unlock drains (recorded on the backend
        // written last), instead of the plain MmioUnlock.
        assert!(regs.barriers().is_empty(), "{arch:?}");
        assert_eq!(data.barriers(), [Barrier::WcFlush], "{arch:?}");
        assert_eq!(data.instructions(), [flush_insn(arch)], "{arch:?}");
    }
}

#[test]
fn io_lock_tracks_doorbells_and_manual_marks() {
    let m = MockIo::new(0x1000).with_arch(Arch::Riscv64);
    let db = Doorbell::new(IoMem::new(&m).cast::<u32>(DB).unwrap());
    let lock = IoLock::new(());
    {
        let g = lock.lock();
        g.ring(&db, 5, &[]);
    }
    assert_eq!(m.instructions(), ["fence w,o", "fence o,w"]);
    m.clear_events();
    {
        let g = lock.lock();
        g.mark_written(&m);
    }
    assert_eq!(m.barriers(), [Barrier::MmioUnlock]);
}

// ---- Weak-ordering model -------------------------------------------------------------------

const CMD: std::ops::Range<usize> = 0x40..0x80;
const CMD_DB: usize = 0x100;

/// Submits one 64-byte command into a write-combining mock and rings a doorbell in the same
/// mapping: through a `Doorbell` with `strategy`, or with `barrier` issued by hand between the
/// copy and a relaxed doorbell write.
fn one_command(arch: Arch, strategy: Strategy, by_hand: Option<Barrier>) -> MockIo {
    let m = MockIo::new(0x200)
        .with_arch(arch)
        .with_caching(Caching::WriteCombining);
    let io = IoMem::new(&m).with_policy(WidthPolicy::U32);
    let cmd: Vec<u8> = (0..64).map(|i| i as u8 ^ 0xa5).collect();
    match by_hand {
        None => {
            let db = Doorbell::new(io.cast::<u32>(CMD_DB).unwrap()).with_strategy(strategy);
            let mut sub = db.submission();
            sub.copy(&io.subslice(CMD).unwrap(), &cmd).unwrap();
            sub.ring(1);
        }
        Some(b) => {
            let io = io.with_strategy(Strategy::Relaxed);
            io.subslice(CMD).unwrap().copy_from_slice(&cmd).unwrap();
            iomem::Backend::barrier(&m, b);
            io.try_write32_relaxed(CMD_DB, 1).unwrap();
        }
    }
    m
}

/// Whether, in the device order chosen by `seed`, the device holds the whole command when the
/// doorbell arrives.
fn device_sees_command_first(m: &MockIo, seed: u64) -> bool {
    let order: Vec<Access> = mock::device_order(&[m], seed)
        .into_iter()
        .map(|d| d.access)
        .collect();
    let want = m.peek(CMD.start, CMD.len());
    let mut ok = None;
    mock::replay(0x200, &order, |image, a| {
        if a.offset == CMD_DB {
            ok = Some(image[CMD] == want[..]);
        }
    });
    ok.expect("the doorbell write is in the trace")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A correct submit — command bytes, the doorbell barrier, the doorbell — leaves the device
    /// holding the whole command when the doorbell arrives, in every order the model allows.
    #[test]
    fn correct_submit_is_seen_whole_before_the_doorbell(
        seed in any::<u64>(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
        strategy in prop::sample::select(vec![Strategy::Conservative, Strategy::Batched]),
    ) {
        let m = one_command(arch, strategy, None);
        prop_assert!(device_sees_command_first(&m, seed));
    }

    /// A batch of 32 commands in a WC buffer and one doorbell in an uncached BAR: every command
    /// reaches the device before the doorbell, in every order the model allows, with one
    /// barrier for the batch.
    #[test]
    fn batched_commands_all_precede_their_doorbell(
        seed in any::<u64>(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
    ) {
        let regs = bar0(arch);
        let data = cmb(arch);
        let sq = IoMem::new(&data).with_policy(WidthPolicy::U64);
        let db = Doorbell::new(IoMem::new(&regs).cast::<u32>(DB).unwrap())
            .with_strategy(Strategy::Batched);
        let mut sub = db.submission();
        for i in 0..32 {
            sub.copy(&sq.subslice(i * 64..i * 64 + 64).unwrap(), &[i as u8 + 1; 64]).unwrap();
        }
        sub.ring(32);
        prop_assert_eq!(regs.barriers().len(), 1);
        let order = mock::device_order(&[&regs, &data], seed);
        let db_at = order.iter().position(|d| d.mock == 0).unwrap();
        prop_assert_eq!(db_at, order.len() - 1, "doorbell overtook command data");
        prop_assert_eq!(order.len(), 1 + 32 * 64 / 8);
    }

    /// Writes to an uncached mapping keep program order on every simulated arch, barrier or not.
    #[test]
    fn uncached_writes_keep_program_order(
        seed in any::<u64>(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
    ) {
        let m = MockIo::new(0x200).with_arch(arch).with_weak_ordering(seed);
        let io = IoMem::new(&m).with_strategy(Strategy::Relaxed);
        io.subslice(CMD).unwrap().copy_from_slice(&[7; 64]).unwrap();
        io.try_write32(CMD_DB, 1).unwrap();
        prop_assert_eq!(m.device_order(), m.writes());
    }
}

#[test]
fn submit_without_barrier_is_caught_on_every_arch() {
    for arch in Arch::ALL {
        let m = one_command(arch, Strategy::Relaxed, None);
        assert!(m.barriers().is_empty());
        let seed = find_counterexample(|seed| device_sees_command_first(&m, seed));
        let seed = seed.unwrap_or_else(|| panic!("{arch:?}: no reordering found"));
        // The counterexample is real: replaying it shows a partial command.
        assert!(!device_sees_command_first(&m, seed));
    }
}

#[test]
fn lwsync_between_command_and_doorbell_is_caught_on_powerpc() {
    // dma_wmb() is lwsync: it orders cacheable stores only, not caching-inhibited ones.
    let m = one_command(Arch::PowerPc64, Strategy::Relaxed, Some(Barrier::DmaWmb));
    assert_eq!(m.instructions(), ["lwsync"]);
    assert!(find_counterexample(|seed| device_sees_command_first(&m, seed)).is_some());
    // sync (or eieio, which orders caching-inhibited stores among themselves) is enough.
    for b in [Barrier::Wmb, Barrier::IoOrder] {
        let m = one_command(Arch::PowerPc64, Strategy::Relaxed, Some(b));
        assert_eq!(
            find_counterexample(|seed| device_sees_command_first(&m, seed)),
            None
        );
    }
}

#[test]
fn riscv_fence_w_o_does_not_order_device_stores_among_themselves() {
    // writel's `fence w,o` orders RAM stores before device stores, not WC device data before a
    // device doorbell; the doorbell over WC data needs `fence ow,ow`, which Doorbell issues.
    let m = one_command(
        Arch::Riscv64,
        Strategy::Relaxed,
        Some(Barrier::IoBeforeWrite),
    );
    assert!(find_counterexample(|seed| device_sees_command_first(&m, seed)).is_some());
    let m = one_command(Arch::Riscv64, Strategy::Batched, None);
    assert_eq!(m.instructions(), ["fence ow,ow"]);
    assert_eq!(
        find_counterexample(|seed| device_sees_command_first(&m, seed)),
        None
    );
}

#[test]
fn weak_mode_on_the_mock_matches_the_free_function() {
    let m = one_command(Arch::X86_64, Strategy::Relaxed, None);
    assert_eq!(m.device_order(), m.writes(), "no weak seed: program order");
    let weak = MockIo::new(0x200)
        .with_arch(Arch::X86_64)
        .with_caching(Caching::WriteCombining)
        .with_weak_ordering(42);
    IoMem::new(&weak).copy_from_slice(&[1; 0x200]).unwrap();
    let free: Vec<Access> = mock::device_order(&[&weak], 42)
        .into_iter()
        .map(|d| d.access)
        .collect();
    assert_eq!(weak.device_order(), free);
    // Same writes, different order (64 writes in one window: a permutation that is not the
    // identity, for this seed).
    let mut sorted = free.clone();
    sorted.sort_by_key(|a| a.offset);
    assert_eq!(sorted, weak.writes());
    assert_ne!(free, weak.writes());
}
