//! What each barrier instruction orders: the part of the barrier table the mock's weak-ordering
//! model reads.

#[cfg(doc)]
use super::instructions;
use super::Arch;

/// Whether instruction `insn` of `arch` (as spelled in [`instructions`]) orders earlier stores to
/// device memory — MMIO and write-combining mappings — before later ones. This is what the mock's
/// weak-ordering model uses to decide which barriers close a reordering window.
///
/// - powerpc64: `sync`, and `eieio` (caching-inhibited stores among themselves); not `lwsync`,
///   not `twi`/`isync`.
/// - aarch64: `dsb sy`/`dsb st`/`dmb osh`/`dmb oshst` (and the `sy`/`st`/`ish*` forms); not the
///   load-only `ld` forms.
/// - riscv64: a `fence` whose predecessor and successor sets both contain `o`.
/// - x86_64: `sfence` and `mfence` (not `lfence`).
pub fn orders_device_stores(arch: Arch, insn: &str) -> bool {
    match arch {
        Arch::PowerPc64 => matches!(insn, "sync" | "eieio" | "hwsync"),
        Arch::Aarch64 => {
            let mut it = insn.split_whitespace();
            match (it.next(), it.next()) {
                (Some("dsb" | "dmb"), Some(opt)) => {
                    matches!(opt, "sy" | "st" | "osh" | "oshst" | "ish" | "ishst")
                }
                _ => false,
            }
        }
        Arch::Riscv64 => match insn.strip_prefix("fence ") {
            Some(sets) => match sets.split_once(',') {
                Some((pred, succ)) => pred.contains('o') && succ.contains('o'),
                None => false,
            },
            None => insn == "fence",
        },
        Arch::X86_64 => matches!(insn, "sfence" | "mfence"),
        Arch::Other => insn == "fence seqcst",
    }
}

/// What an access is, for the questions the weak-ordering model asks of a barrier instruction
/// ([`orders_accesses`]). "RAM" is cacheable, coherent host memory (DMA memory, a
/// [`Caching::Cacheable`](crate::Caching::Cacheable) mock); "device" is MMIO, uncached or
/// write-combining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessKind {
    /// A load from host RAM (riscv `r`).
    RamLoad,
    /// A store to host RAM (riscv `w`).
    RamStore,
    /// A load from device memory (riscv `i`).
    DeviceLoad,
    /// A store to device memory (riscv `o`).
    DeviceStore,
}

impl AccessKind {
    fn is_load(self) -> bool {
        matches!(self, AccessKind::RamLoad | AccessKind::DeviceLoad)
    }
    fn is_ram(self) -> bool {
        matches!(self, AccessKind::RamLoad | AccessKind::RamStore)
    }
    /// The letter of a RISC-V fence set that names this kind.
    fn riscv_letter(self) -> char {
        match self {
            AccessKind::RamLoad => 'r',
            AccessKind::RamStore => 'w',
            AccessKind::DeviceLoad => 'i',
            AccessKind::DeviceStore => 'o',
        }
    }
}

/// Whether instruction `insn` of `arch` (as spelled in [`instructions`]) orders every earlier
/// access of kind `earlier` before every later access of kind `later`, as the device (or, for
/// loads, the memory system the CPU reads) observes them. Only the instruction is asked about:
/// what an architecture orders *without* a barrier (x86's TSO, uncached stores to one device) is
/// the mock's model's knowledge, not this function's.
///
/// - powerpc64 (`arch/powerpc/include/asm/barrier.h`: "sync is the only instruction sufficient"
///   to order all types of memory operations with one another; `eieio` orders "separately" (a)
///   cacheable stores and (b) loads and stores to non-cacheable memory): `sync`/`hwsync` order
///   everything; `lwsync` orders RAM load→load, load→store and store→store (not store→load, and
///   nothing caching-inhibited); `eieio` orders device accesses among themselves and RAM
///   stores among themselves, never one class against the other. `twi 0,r,0` and `isync` are
///   not counted: together they order the load whose value `r` is before what follows, which
///   no per-instruction answer can state (the crate issues them only after an MMIO read).
/// - aarch64 (Arm ARM, DMB/DSB): `dmb`/`dsb` order accesses of every memory type (Normal and
///   Device) in their shareability domain — `sy`, `osh`, `ish` everything; the `st` forms
///   (`st`, `oshst`, `ishst`) store→store; the `ld` forms (`ld`, `oshld`, `ishld`) load→load and
///   load→store. `nsh` forms (not in the domain of a device) do not count. The `ish` forms are
///   accepted as [`orders_device_stores`] accepts them; the table never emits them.
/// - riscv64: `fence P,S` orders the accesses named by `P` before those named by `S` (`r`/`w`
///   RAM, `i`/`o` device); a bare `fence` is `fence iorw,iorw`.
/// - x86_64: `mfence` everything; `sfence` store→store of every memory type; `lfence`
///   load→load and load→store.
/// - [`Arch::Other`]: `fence seqcst` (its only instruction) orders everything.
pub fn orders_accesses(arch: Arch, insn: &str, earlier: AccessKind, later: AccessKind) -> bool {
    match arch {
        Arch::PowerPc64 => match insn {
            "sync" | "hwsync" => true,
            // Not store→load: the one pair lwsync leaves out.
            "lwsync" => {
                earlier.is_ram() && later.is_ram() && (earlier.is_load() || !later.is_load())
            }
            "eieio" => {
                (!earlier.is_ram() && !later.is_ram())
                    || (earlier == AccessKind::RamStore && later == AccessKind::RamStore)
            }
            _ => false,
        },
        Arch::Aarch64 => {
            let mut it = insn.split_whitespace();
            let opt = match (it.next(), it.next(), it.next()) {
                (Some("dmb" | "dsb"), Some(opt), None) => opt,
                _ => return false,
            };
            let kind = match opt {
                "sy" => "",
                _ => match opt.strip_prefix("osh").or_else(|| opt.strip_prefix("ish")) {
                    Some(kind) => kind,
                    None => opt,
                },
            };
            match kind {
                "" => true,
                "st" => !earlier.is_load() && !later.is_load(),
                "ld" => earlier.is_load(),
                _ => false,
            }
        }
        Arch::Riscv64 => match insn.strip_prefix("fence ") {
            Some(sets) => match sets.split_once(',') {
                Some((pred, succ)) => {
                    pred.contains(earlier.riscv_letter()) && succ.contains(later.riscv_letter())
                }
                None => false,
            },
            None => insn == "fence",
        },
        Arch::X86_64 => match insn {
            "mfence" => true,
            "sfence" => !earlier.is_load() && !later.is_load(),
            "lfence" => earlier.is_load(),
            _ => false,
        },
        Arch::Other => insn == "fence seqcst",
    }
}

/// Whether instruction `insn` of `arch` orders earlier stores to host RAM before later stores
/// to device memory: a command (an NVMe SQE) or data written to DMA memory is visible to the
/// device before the doorbell that tells it to fetch them. This is the barrier inside `writel`
/// (`__io_bw()`), and the weak-ordering model uses it to decide which RAM stores may still be
/// missing from RAM when the device sees a doorbell ([`crate::backend::mock::device_order`]).
///
/// From [`orders_accesses`]`(arch, insn, RamStore, DeviceStore)`:
/// - powerpc64: `sync` only. `lwsync` (`dma_wmb()`) orders cacheable storage only and `eieio`
///   one class at a time, so neither keeps a caching-inhibited doorbell behind a RAM store
///   (`arch/powerpc/include/asm/barrier.h`; `writel` is `sync; stw`, `DEF_MMIO_OUT_D` in
///   `asm/io.h`); `twi`/`isync` order nothing here.
/// - aarch64: `dmb`/`dsb` of a store or full kind — `oshst` (`__io_bw()` is `dma_wmb()`, `dmb
///   oshst`, `arch/arm64/include/asm/io.h`: "writes are ordered relative to any prior Normal
///   memory access"), `st`, `sy`, `osh`, `ish`, `ishst`; not the load-only `ld` forms.
/// - riscv64: a `fence` whose predecessor set has `w` and successor set has `o` — `fence w,o`
///   (`__io_bw()`, `arch/riscv/include/asm/mmio.h`), `fence ow,ow` (`wmb()`, and `dma_wmb()`
///   through `asm-generic`), `fence iorw,iorw`.
/// - x86_64: `sfence` and `mfence`. Only a write-combining store needs one: a store to uncached
///   memory is never seen before an earlier store to write-back memory (TSO; UC is strongly
///   ordered, Intel SDM vol. 3A "Memory Ordering" and "Methods of Caching Available"), which is
///   why `writel` on x86 is a plain `mov`. The model knows that without a barrier.
pub fn orders_ram_before_device(arch: Arch, insn: &str) -> bool {
    orders_accesses(arch, insn, AccessKind::RamStore, AccessKind::DeviceStore)
}

/// Whether instruction `insn` of `arch` orders earlier loads from host RAM before later ones: a
/// completion's phase tag is read before its payload (`dma_rmb()` in the NVMe driver's
/// completion path), so a payload read cannot be satisfied from memory older than the phase it
/// follows. The weak-ordering model's completion reads ([`crate::backend::mock::ram_loads`])
/// use it.
///
/// From [`orders_accesses`]`(arch, insn, RamLoad, RamLoad)`:
/// - powerpc64: `lwsync` (`dma_rmb()`) and `sync` (`rmb()`); not `eieio` (caching-inhibited
///   accesses and cacheable stores only), `twi`, `isync`.
/// - aarch64: `dmb`/`dsb` of a load or full kind — `oshld` (`dma_rmb()`), `ld` (`rmb()` is `dsb
///   ld`), `ishld`, `sy`, `osh`, `ish`; not the store-only `st` forms.
/// - riscv64: a `fence` with `r` in both sets — `fence ir,ir` (`rmb()`, `dma_rmb()`), `fence
///   iorw,iorw`; not `fence i,ir` (`__io_ar()`: its predecessor set names device reads only).
/// - x86_64: `lfence` and `mfence`. None is needed: x86 does not reorder loads with other
///   loads (TSO, Intel SDM vol. 3A "Memory Ordering in P6 and More Recent Processor
///   Families"), which is why `dma_rmb()` is a compiler barrier there; the model knows that.
pub fn orders_ram_loads(arch: Arch, insn: &str) -> bool {
    orders_accesses(arch, insn, AccessKind::RamLoad, AccessKind::RamLoad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::{instructions, Barrier};
    use std::vec::Vec;

    /// `WcFlush` must order at least what `IoBeforeWrite` orders, on every architecture, or a
    /// doorbell after write-combining data would lose the RAM→MMIO ordering.
    #[test]
    fn lwsync_never_orders_device_stores() {
        assert!(!orders_device_stores(Arch::PowerPc64, "lwsync"));
        assert!(orders_device_stores(Arch::PowerPc64, "sync"));
        assert!(!orders_device_stores(Arch::Riscv64, "fence w,o"));
        assert!(orders_device_stores(Arch::Riscv64, "fence iorw,iorw"));
        assert!(!orders_device_stores(Arch::Aarch64, "dmb oshld"));
        assert!(!orders_device_stores(Arch::X86_64, "lfence"));
    }

    /// Every instruction of the table, per architecture.
    fn table(arch: Arch) -> Vec<&'static str> {
        let mut v: Vec<&'static str> = Barrier::ALL
            .iter()
            .flat_map(|&b| instructions(arch, b).iter().copied())
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The general question agrees with the one the device-store windows were built on.
    #[test]
    fn orders_accesses_agrees_with_orders_device_stores() {
        for arch in Arch::ALL.into_iter().chain([Arch::Other]) {
            for insn in table(arch)
                .into_iter()
                .chain(["isync", "dmb ishst", "fence"])
            {
                assert_eq!(
                    orders_accesses(arch, insn, AccessKind::DeviceStore, AccessKind::DeviceStore),
                    orders_device_stores(arch, insn),
                    "{arch:?} {insn}"
                );
            }
        }
    }

    #[test]
    fn ram_before_device_per_arch() {
        use Arch::*;
        for (arch, yes, no) in [
            (
                PowerPc64,
                &["sync", "hwsync"][..],
                &["lwsync", "eieio", "twi 0,r,0", "isync"][..],
            ),
            (
                Aarch64,
                &[
                    "dmb oshst",
                    "dmb osh",
                    "dsb st",
                    "dsb sy",
                    "dmb ish",
                    "dmb ishst",
                    "dmb st",
                ],
                &["dmb oshld", "dsb ld", "dmb ishld", "dmb nshst"],
            ),
            (
                Riscv64,
                &["fence w,o", "fence ow,ow", "fence iorw,iorw", "fence"],
                &[
                    "fence o,w",
                    "fence ir,ir",
                    "fence i,ir",
                    "fence io,io",
                    "fence w,w",
                ],
            ),
            (X86_64, &["sfence", "mfence"], &["lfence"]),
        ] {
            for insn in yes {
                assert!(orders_ram_before_device(arch, insn), "{arch:?} {insn}");
            }
            for insn in no {
                assert!(!orders_ram_before_device(arch, insn), "{arch:?} {insn}");
            }
        }
        // What the table's barriers mean for a doorbell after RAM data.
        let bw = |arch, b| {
            instructions(arch, b)
                .iter()
                .any(|i| orders_ram_before_device(arch, i))
        };
        for arch in [PowerPc64, Aarch64, Riscv64] {
            assert!(
                bw(arch, Barrier::IoBeforeWrite),
                "{arch:?}: writel's barrier"
            );
        }
        assert!(!bw(PowerPc64, Barrier::DmaWmb), "lwsync");
        assert!(bw(Aarch64, Barrier::DmaWmb), "dmb oshst");
        assert!(bw(Riscv64, Barrier::DmaWmb), "fence ow,ow");
    }

    #[test]
    fn ram_loads_per_arch() {
        use Arch::*;
        for (arch, yes, no) in [
            (
                PowerPc64,
                &["lwsync", "sync"][..],
                &["eieio", "twi 0,r,0", "isync"][..],
            ),
            (
                Aarch64,
                &[
                    "dmb oshld",
                    "dsb ld",
                    "dmb ishld",
                    "dsb sy",
                    "dmb osh",
                    "dmb ld",
                ],
                &["dmb oshst", "dsb st", "dmb ishst"],
            ),
            (
                Riscv64,
                &["fence ir,ir", "fence iorw,iorw", "fence r,r", "fence"],
                &["fence i,ir", "fence w,o", "fence ow,ow", "fence r,w"],
            ),
            (X86_64, &["lfence", "mfence"], &["sfence"]),
        ] {
            for insn in yes {
                assert!(orders_ram_loads(arch, insn), "{arch:?} {insn}");
            }
            for insn in no {
                assert!(!orders_ram_loads(arch, insn), "{arch:?} {insn}");
            }
        }
        // dma_rmb orders RAM loads wherever it is an instruction (x86: TSO, a compiler fence).
        for arch in [PowerPc64, Aarch64, Riscv64] {
            let insns = instructions(arch, Barrier::DmaRmb);
            assert!(insns.iter().any(|i| orders_ram_loads(arch, i)), "{arch:?}");
        }
        assert!(instructions(X86_64, Barrier::DmaRmb).is_empty());
        // lwsync never orders a RAM store before a later RAM load (that needs sync).
        assert!(!orders_accesses(
            PowerPc64,
            "lwsync",
            AccessKind::RamStore,
            AccessKind::RamLoad
        ));
        assert!(orders_accesses(
            PowerPc64,
            "lwsync",
            AccessKind::RamStore,
            AccessKind::RamStore
        ));
    }
}
