//! The weak-ordering model with host RAM: an NVMe command written to DMA memory before its
//! doorbell, and a completion read from DMA memory while the device writes it, on every
//! simulated architecture.
//!
//! Each correct sequence is checked under every seed proptest draws and must never be flagged;
//! each broken one must be *found* — the negative tests assert that the model produces a
//! counterexample, so a model that stopped reordering RAM would fail them. What the model
//! concludes is checked against what the instruction table says
//! ([`orders_ram_before_device`], [`orders_ram_loads`]):
//!
//! | | powerpc64 | aarch64 | riscv64 | x86_64 |
//! |---|---|---|---|---|
//! | SQE, `writel` doorbell | `sync` ✓ | `dmb oshst` ✓ | `fence w,o` ✓ | — ✓ (TSO) |
//! | SQE, relaxed doorbell | caught | caught | caught | ✓ (TSO) |
//! | SQE, `dma_wmb`, relaxed doorbell | `lwsync`: caught | `dmb oshst` ✓ | `fence ow,ow` ✓ | ✓ |
//! | phase, `dma_rmb`, payload | `lwsync` ✓ | `dmb oshld` ✓ | `fence ir,ir` ✓ | — ✓ (TSO) |
//! | phase, payload | caught | caught | caught | ✓ (TSO) |
//!
//! aarch64's `dma_wmb()` is the very instruction of its `writel` (`__io_bw()` is `dma_wmb()`,
//! `dmb oshst`, which orders Normal-memory stores before Device stores), and riscv's falls back
//! to `wmb()` (`fence ow,ow`, with `w` before `o`): on both, `dma_wmb` before a relaxed doorbell
//! happens to be enough. On powerpc it is `lwsync`, which orders cacheable storage only — the
//! reason `writel` is `sync; stw` there.

use iomem::backend::mock::{device_order, ram_loads, replay_ram};
use iomem::backend::MockIo;
use iomem::dma::{DmaRegion, MockDma, MOCK_PAGE};
use iomem::order::{instructions, orders_ram_before_device, orders_ram_loads, Arch, Barrier};
use iomem::publish::Doorbell;
use iomem::{Backend, Caching, IoMem, Strategy};
use proptest::prelude::*;

mod support;
use std::sync::Arc;
use support::find_counterexample;

/// SQ 1 tail doorbell, in an uncached BAR0.
const DB: usize = 0x1008;
/// The command's slot in the submission queue (slot 1).
const SLOT: usize = 64;
/// `MockDma::new`'s first device address: a device address minus it is the arena offset.
const DMA_BASE: u64 = 0x1_0000_0000;

fn sqe() -> [u8; 64] {
    core::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0x5a)
}

/// How the driver rings the doorbell after writing the command into RAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ring {
    /// `IoMem::try_write32` under `Conservative`: `writel`.
    Writel,
    /// `publish::Doorbell::ring` with `strategy`, nothing in device memory to publish.
    Doorbell(Strategy),
    /// `barrier` issued by hand (on the DMA memory if a DMA barrier, else on BAR0), then
    /// `writel_relaxed`.
    Relaxed(Option<Barrier>),
}

/// A submission: BAR0, the DMA memory, and where the command is.
struct Submit {
    bar0: MockIo,
    dma: MockDma,
    _sq: DmaRegion<Arc<MockIo>>,
    /// Arena offset of the command (what the device DMA-reads when the doorbell arrives).
    at: usize,
}

/// Writes one 64-byte SQE into a fresh queue in MockDma RAM and rings the SQ tail doorbell.
fn submit(arch: Arch, ring: Ring) -> Submit {
    let bar0 = MockIo::new(0x2000).with_arch(arch);
    let dma = MockDma::new(4 * MOCK_PAGE).with_arch(arch);
    let sq = dma.alloc_contiguous(MOCK_PAGE).unwrap();
    let lease = sq.lease();
    let at = (lease.addr(SLOT).unwrap().get() - DMA_BASE) as usize;
    // SAFETY: the model reads the arena directly; no device was given the address.
    unsafe { lease.complete() };
    let mem = sq.mem();
    mem.subslice(SLOT..SLOT + 64)
        .unwrap()
        .copy_from_slice(&sqe())
        .unwrap();
    let regs = IoMem::new(&bar0);
    match ring {
        Ring::Writel => regs.try_write32(DB, 2).unwrap(),
        Ring::Doorbell(s) => {
            Doorbell::new(regs.cast::<u32>(DB).unwrap())
                .with_strategy(s)
                .ring(2, &[]);
        }
        Ring::Relaxed(barrier) => {
            match barrier {
                Some(Barrier::DmaWmb) => mem.dma_wmb(),
                Some(Barrier::DmaRmb) => mem.dma_rmb(),
                Some(b) => regs.barrier(b),
                None => {}
            }
            regs.try_write32_relaxed(DB, 2).unwrap();
        }
    }
    Submit {
        bar0,
        dma,
        _sq: sq,
        at,
    }
}

/// Whether, in the order chosen by `seed`, RAM holds the whole command when the device sees
/// the doorbell (what it would fetch by DMA then).
fn doorbell_finds_whole_command(s: &Submit, seed: u64) -> bool {
    let ram = s.dma.ram();
    let order = device_order(&[&s.bar0, ram], seed);
    assert_eq!(order.len(), 1 + ram.writes().len());
    let mut ok = None;
    replay_ram(&order, 1, ram.size(), |image, d| {
        if d.mock == 0 && d.access.offset == DB {
            ok = Some(image[s.at..s.at + 64] == sqe());
        }
    });
    ok.expect("the doorbell write is in the trace")
}

/// Whether the RAM-then-doorbell pair is ordered on `arch` by `insns` (the table's answer), or
/// by the architecture itself (x86: an uncached store never passes an earlier RAM store).
fn table_orders_submit(arch: Arch, insns: &[&str]) -> bool {
    arch == Arch::X86_64 || insns.iter().any(|i| orders_ram_before_device(arch, i))
}

// ---- (i) submission: the command in RAM before the doorbell --------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// `writel` and `Doorbell` (Conservative, Batched) leave the whole command in RAM when the
    /// doorbell arrives, in every order the model allows, on every arch.
    #[test]
    fn correct_submit_is_never_caught(
        seed in any::<u64>(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
        ring in prop::sample::select(vec![
            Ring::Writel,
            Ring::Doorbell(Strategy::Conservative),
            Ring::Doorbell(Strategy::Batched),
        ]),
    ) {
        let s = submit(arch, ring);
        prop_assert_eq!(s.bar0.barriers(), [Barrier::IoBeforeWrite]);
        prop_assert!(doorbell_finds_whole_command(&s, seed), "{:?} {:?} seed {}", arch, ring, seed);
    }
}

#[test]
fn relaxed_submit_is_caught_on_weakly_ordered_archs_and_never_on_x86() {
    for arch in Arch::ALL {
        let s = submit(arch, Ring::Relaxed(None));
        assert!(s.bar0.barriers().is_empty() && s.dma.ram().barriers().is_empty());
        let found = find_counterexample(|seed| doorbell_finds_whole_command(&s, seed));
        match arch {
            Arch::X86_64 => assert_eq!(found, None, "x86 UC doorbells are TSO-ordered"),
            _ => {
                let seed = found.unwrap_or_else(|| panic!("{arch:?}: no reordering found"));
                // The counterexample is real: replaying it shows a partial command.
                assert!(!doorbell_finds_whole_command(&s, seed), "{arch:?}");
            }
        }
    }
}

#[test]
fn dma_wmb_before_a_relaxed_doorbell_is_caught_on_powerpc_only() {
    for arch in Arch::ALL {
        let s = submit(arch, Ring::Relaxed(Some(Barrier::DmaWmb)));
        let insns = s.dma.ram().instructions();
        let found = find_counterexample(|seed| doorbell_finds_whole_command(&s, seed));
        let want_caught = arch == Arch::PowerPc64;
        assert_eq!(found.is_some(), want_caught, "{arch:?} {insns:?}");
        // What the table says is what the model concludes.
        assert_eq!(table_orders_submit(arch, &insns), !want_caught, "{arch:?}");
        match arch {
            Arch::PowerPc64 => assert_eq!(insns, ["lwsync"]),
            Arch::Aarch64 => assert_eq!(insns, ["dmb oshst"]),
            Arch::Riscv64 => assert_eq!(insns, ["fence ow,ow"]),
            _ => assert!(insns.is_empty()),
        }
    }
}

/// Every barrier kind by hand between the command and a relaxed doorbell, on every arch: the
/// model catches the submit exactly when the table's instructions leave the pair unordered.
#[test]
fn every_barrier_kind_is_judged_as_the_table_says() {
    for arch in Arch::ALL {
        for b in Barrier::ALL {
            let s = submit(arch, Ring::Relaxed(Some(b)));
            let caught =
                find_counterexample(|seed| doorbell_finds_whole_command(&s, seed)).is_some();
            let insns = instructions(arch, b);
            assert_eq!(
                caught,
                !table_orders_submit(arch, insns),
                "{arch:?} {b:?} {insns:?}"
            );
        }
    }
}

/// x86's exemption is for uncached doorbells only: a command in RAM before a store to a
/// write-combining mapping needs `sfence`, which a WC doorbell's `WcFlush` is.
#[test]
fn x86_ram_before_a_write_combining_store_needs_sfence() {
    for strategy in [Strategy::Relaxed, Strategy::Conservative] {
        let wc = MockIo::new(0x2000)
            .with_arch(Arch::X86_64)
            .with_caching(Caching::WriteCombining);
        let dma = MockDma::new(MOCK_PAGE).with_arch(Arch::X86_64);
        let sq = dma.alloc(MOCK_PAGE).unwrap();
        sq.mem()
            .subslice(0..64)
            .unwrap()
            .copy_from_slice(&sqe())
            .unwrap();
        IoMem::new(&wc)
            .with_strategy(strategy)
            .try_doorbell32(DB, 1)
            .unwrap();
        let whole = |seed| {
            let mut ok = true;
            let order = device_order(&[&wc, dma.ram()], seed);
            replay_ram(&order, 1, MOCK_PAGE, |image, d| {
                if d.mock == 0 {
                    ok = image[..64] == sqe();
                }
            });
            ok
        };
        let caught = find_counterexample(whole).is_some();
        assert_eq!(caught, strategy == Strategy::Relaxed, "{strategy:?}");
    }
}

// ---- (ii) completion: the phase tag, then the payload ---------------------------------------

/// The completion queue entry's slot (entry 1 of the queue).
const CQE: usize = 16;
const OLD_PAYLOAD: [u8; 12] = [0x11; 12];
const NEW_PAYLOAD: [u8; 12] = [0xc3; 12];

/// A completion: the device writes a CQE (payload, then DW3 with the phase tag set) over an
/// older entry of the previous phase; the CPU reads the phase tag, issues `barrier` (a DMA
/// barrier on the DMA memory, any other through BAR0), and reads the payload (8 + 4 bytes).
struct Completion {
    bar0: MockIo,
    dma: MockDma,
    _cq: DmaRegion<Arc<MockIo>>,
}

fn complete(arch: Arch, barrier: Option<Barrier>) -> Completion {
    let bar0 = MockIo::new(0x2000).with_arch(arch);
    let dma = MockDma::new(4 * MOCK_PAGE).with_arch(arch);
    let cq = dma.alloc_contiguous(MOCK_PAGE).unwrap();
    let lease = cq.lease();
    let at = (lease.addr(CQE).unwrap().get() - DMA_BASE) as usize;
    let ram = dma.ram();
    ram.poke(at, &OLD_PAYLOAD); // the previous pass's entry, phase 0
    ram.poke(at + 12, &0x0000_0004u32.to_le_bytes());
    // The device posts through its side of the provider: payload first, then DW3 (command id
    // 9, phase 1, success).
    dma.device_write(lease.addr(CQE).unwrap(), &NEW_PAYLOAD)
        .unwrap();
    dma.device_write(lease.addr(CQE + 12).unwrap(), &0x0001_0009u32.to_le_bytes())
        .unwrap();
    // SAFETY: the device (this test) is done with the entry.
    unsafe { lease.complete() };

    let entry = cq.mem().cast::<[u32; 4]>(CQE).unwrap();
    let dw3: u32 = entry.try_read(12).unwrap();
    assert_eq!(dw3 >> 16 & 1, 1, "program order sees the new phase");
    match barrier {
        Some(Barrier::DmaRmb) => entry.dma_rmb(),
        Some(Barrier::Mb) => entry.mb(),
        Some(b) => IoMem::new(&bar0).barrier(b),
        None => {}
    }
    let dw01: u64 = entry.try_read(0).unwrap();
    let dw2: u32 = entry.try_read(8).unwrap();
    assert_eq!(dw01.to_le_bytes(), NEW_PAYLOAD[..8]);
    assert_eq!(dw2.to_le_bytes(), NEW_PAYLOAD[8..]);
    Completion { bar0, dma, _cq: cq }
}

/// Whether, under `seed`, the driver sees the new phase tag with a stale payload.
fn stale_payload(c: &Completion, seed: u64) -> bool {
    let loads = ram_loads(&[c.dma.ram(), &c.bar0], seed);
    assert_eq!(loads.len(), 3);
    let new_phase = loads[0].access.value >> 16 & 1 == 1;
    let mut payload = loads[1].access.bytes();
    payload.extend(loads[2].access.bytes());
    // A stale read returns exactly the older bytes, a fresh one the new bytes.
    for l in &loads[1..] {
        let want: &[u8] = if l.stale { &OLD_PAYLOAD } else { &NEW_PAYLOAD };
        assert_eq!(l.access.bytes(), want[..l.access.width]);
    }
    new_phase && payload != NEW_PAYLOAD
}

/// Whether the table orders the phase read before the payload reads on `arch`.
fn table_orders_completion(arch: Arch, insns: &[&str]) -> bool {
    arch == Arch::X86_64 || insns.iter().any(|i| orders_ram_loads(arch, i))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Phase, `dma_rmb` (or `rmb`, `mb`), payload: never the new phase with a stale payload.
    #[test]
    fn completion_with_a_read_barrier_never_sees_a_stale_payload(
        seed in any::<u64>(),
        arch in prop::sample::select(Arch::ALL.to_vec()),
        barrier in prop::sample::select(vec![Barrier::DmaRmb, Barrier::Rmb, Barrier::Mb]),
    ) {
        let c = complete(arch, Some(barrier));
        prop_assert!(!stale_payload(&c, seed), "{:?} {:?} seed {}", arch, barrier, seed);
    }
}

#[test]
fn completion_without_dma_rmb_is_caught_on_weakly_ordered_archs_and_never_on_x86() {
    for arch in Arch::ALL {
        let c = complete(arch, None);
        let found = find_counterexample(|seed| !stale_payload(&c, seed));
        match arch {
            Arch::X86_64 => assert_eq!(found, None, "x86 does not reorder loads with loads"),
            _ => {
                let seed = found.unwrap_or_else(|| panic!("{arch:?}: no stale payload found"));
                assert!(stale_payload(&c, seed), "{arch:?}");
            }
        }
    }
}

/// Every barrier kind between the phase and the payload, on every arch: a stale payload is
/// found exactly when the table's instructions leave RAM loads unordered.
#[test]
fn every_barrier_kind_between_phase_and_payload_is_judged_as_the_table_says() {
    for arch in Arch::ALL {
        for b in Barrier::ALL {
            let c = complete(arch, Some(b));
            let caught = find_counterexample(|seed| !stale_payload(&c, seed)).is_some();
            let insns = instructions(arch, b);
            assert_eq!(
                caught,
                !table_orders_completion(arch, insns),
                "{arch:?} {b:?} {insns:?}"
            );
        }
    }
}
