//! MMIO ordering: barrier kinds, the instructions each architecture uses for them, and the
//! strategies that decide where barriers go.
//!
//! A [`Barrier`] is a value naming *what* must be ordered. [`instructions`] is the single table
//! saying which instructions each [`Arch`] executes for it — the same table the real backend
//! executes on the host (through `order/<arch>.rs`) and the mock records for any architecture, so
//! a test on x86_64 proves where powerpc would put its `sync`s.
//!
//! - [`Strategy`] places barriers around copies and single accesses: `Conservative` is exactly
//!   what Linux emits on each architecture ([`Strategy::placement`] cites the kernel functions),
//!   `Batched` leaves copies bare and puts one barrier before the doorbell, `Relaxed` puts none.
//! - The layer above [`IoMem`](crate::IoMem), [`publish`](crate::publish), uses this vocabulary
//!   for doorbells that publish write-combining data and for locks whose unlock orders MMIO
//!   writes (`mmiowb`).
//! - The mock's weak-ordering model ([`crate::backend::mock::device_order`]) lets tests check
//!   that a device sees data before the doorbell under every reordering the simulated
//!   architecture allows; [`orders_device_stores`] is the part of it read from this table.
//!
//! Per-architecture sources and reasoning are in the docs of the arch modules
//! (`src/order/{powerpc,aarch64,riscv,x86}.rs`) and of each [`Barrier`].

cfg_if::cfg_if! {
    if #[cfg(target_arch = "powerpc64")] {
        mod powerpc;
        use powerpc as host;
    } else if #[cfg(target_arch = "aarch64")] {
        mod aarch64;
        use aarch64 as host;
    } else if #[cfg(target_arch = "riscv64")] {
        mod riscv;
        use riscv as host;
    } else if #[cfg(target_arch = "x86_64")] {
        mod x86;
        use x86 as host;
    } else {
        mod fallback;
        use fallback as host;
    }
}

/// A CPU architecture whose barrier instructions the crate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    /// 64-bit PowerPC (either endianness).
    PowerPc64,
    /// 64-bit Arm.
    Aarch64,
    /// 64-bit RISC-V.
    Riscv64,
    /// x86_64.
    X86_64,
    /// Any other architecture: every barrier is a sequentially consistent fence.
    Other,
}

impl Arch {
    /// The architecture this crate was compiled for.
    pub const HOST: Arch = if cfg!(target_arch = "powerpc64") {
        Arch::PowerPc64
    } else if cfg!(target_arch = "aarch64") {
        Arch::Aarch64
    } else if cfg!(target_arch = "riscv64") {
        Arch::Riscv64
    } else if cfg!(target_arch = "x86_64") {
        Arch::X86_64
    } else {
        Arch::Other
    };

    /// The architectures with a barrier table of their own (all but [`Arch::Other`]).
    pub const ALL: [Arch; 4] = [Arch::PowerPc64, Arch::Aarch64, Arch::Riscv64, Arch::X86_64];

    /// Short lower-case name (`"powerpc64"`, `"aarch64"`, `"riscv64"`, `"x86_64"`, `"other"`).
    pub const fn name(self) -> &'static str {
        match self {
            Arch::PowerPc64 => "powerpc64",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::X86_64 => "x86_64",
            Arch::Other => "other",
        }
    }
}

/// What a barrier orders. Each kind names the Linux primitive it corresponds to; [`instructions`]
/// says what each architecture executes for it.
///
/// "RAM" below means cacheable, coherent memory (including buffers a device reads or writes by
/// DMA); "MMIO" means uncached device memory (`ioremap`); "WC" means a write-combining mapping
/// (`ioremap_wc`, a prefetchable BAR such as an NVMe CMB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Barrier {
    /// Full barrier (`mb()`): every earlier load and store — RAM, MMIO or WC — is ordered before
    /// every later one. powerpc `sync`, aarch64 `dsb sy`, riscv `fence iorw,iorw`, x86 `mfence`.
    Mb,
    /// Read barrier (`rmb()`): earlier loads (RAM, MMIO, WC) before later loads.
    Rmb,
    /// Write barrier (`wmb()`): earlier stores (RAM, MMIO, WC) before later stores.
    Wmb,
    /// Before an MMIO write (the barrier inside `writel()`, `__io_bw()`): earlier stores to RAM
    /// (a command the device will fetch by DMA) are visible to the device before the MMIO
    /// write. Does **not** drain write-combining buffers on x86 (use [`Barrier::WcFlush`]).
    IoBeforeWrite,
    /// Before an MMIO read (`__io_br()`): earlier accesses are ordered before the read. Only
    /// powerpc needs an instruction here (`readl` starts with `sync`).
    IoBeforeRead,
    /// After an MMIO read (`__io_ar()`): the read completes before later loads from RAM (a
    /// completion status read before the DMA'd data it announces). On powerpc the sequence
    /// depends on the loaded value; the crate's read paths supply it
    /// ([`Backend::barrier_after_read`](crate::Backend::barrier_after_read)). Issued without the
    /// value (plain [`Backend::barrier`](crate::Backend::barrier)) it does not order on powerpc:
    /// use [`Barrier::Rmb`] there.
    IoAfterRead,
    /// Orders MMIO accesses among themselves only (`eieio` on powerpc, between the loads of
    /// `_memcpy_fromio`). Not enough to order MMIO against RAM.
    IoOrder,
    /// `dma_rmb()`: orders loads from coherent RAM only (a descriptor's "ready" flag before its
    /// payload). **Not** enough to order anything against MMIO: powerpc's `lwsync` does not order
    /// caching-inhibited accesses at all.
    DmaRmb,
    /// `dma_wmb()`: orders stores to coherent RAM only (a descriptor's payload before its "ready"
    /// flag, both in RAM). **Not** enough to order a RAM store before an MMIO doorbell — that is
    /// [`Barrier::IoBeforeWrite`]: powerpc `lwsync` leaves caching-inhibited stores unordered.
    DmaWmb,
    /// Drains write-combining buffers (`wmb()` used after WC stores): every earlier store,
    /// including to WC mappings, is performed before any later store. On every architecture of
    /// the table it also orders what [`Barrier::IoBeforeWrite`] orders, so a doorbell after WC
    /// data needs this one barrier only.
    WcFlush,
    /// Before releasing a lock after MMIO writes (`mmiowb()`): MMIO writes made inside the
    /// critical section reach the device before the next lock holder's (see
    /// [`IoLock`](crate::publish::IoLock)).
    MmioUnlock,
}

impl Barrier {
    /// Every barrier kind.
    pub const ALL: [Barrier; 11] = [
        Barrier::Mb,
        Barrier::Rmb,
        Barrier::Wmb,
        Barrier::IoBeforeWrite,
        Barrier::IoBeforeRead,
        Barrier::IoAfterRead,
        Barrier::IoOrder,
        Barrier::DmaRmb,
        Barrier::DmaWmb,
        Barrier::WcFlush,
        Barrier::MmioUnlock,
    ];
}

/// The instructions `arch` executes for `barrier`, as assembler mnemonics with operands (an empty
/// slice means a compiler-only fence; `r` in an operand stands for whichever register the
/// compiler picked). This table is the single source of truth: the real backend executes it
/// (through `order/<arch>.rs`, checked against it instruction by instruction), the mock records
/// it, and [`crate::backend::mock`]'s weak-ordering model reads it.
///
/// Per architecture, from the Linux sources named in each arch module:
///
/// | barrier | powerpc64 | aarch64 | riscv64 | x86_64 |
/// |---|---|---|---|---|
/// | `Mb` | `sync` | `dsb sy` | `fence iorw,iorw` | `mfence` |
/// | `Rmb` | `sync` | `dsb ld` | `fence ir,ir` | `lfence` |
/// | `Wmb` | `sync` | `dsb st` | `fence ow,ow` | `sfence` |
/// | `IoBeforeWrite` | `sync` | `dmb oshst` | `fence w,o` | — |
/// | `IoBeforeRead` | `sync` | — | — | — |
/// | `IoAfterRead` | `twi 0,r,0; isync` | `dmb oshld` | `fence i,ir` | — |
/// | `IoOrder` | `eieio` | `dmb osh` | `fence io,io` | — |
/// | `DmaRmb` | `lwsync` | `dmb oshld` | `fence ir,ir` | — |
/// | `DmaWmb` | `lwsync` | `dmb oshst` | `fence ow,ow` | — |
/// | `WcFlush` | `sync` | `dsb st` | `fence ow,ow` | `sfence` |
/// | `MmioUnlock` | `sync` | — | `fence o,w` | — |
///
/// [`Arch::Other`] executes a `SeqCst` fence for every kind (recorded as `"fence seqcst"`).
pub const fn instructions(arch: Arch, barrier: Barrier) -> &'static [&'static str] {
    use Barrier::*;
    match arch {
        // arch/powerpc/include/asm/{barrier,io,mmiowb}.h
        Arch::PowerPc64 => match barrier {
            Mb | Rmb | Wmb | IoBeforeWrite | IoBeforeRead | WcFlush | MmioUnlock => &["sync"],
            IoAfterRead => &["twi 0,r,0", "isync"],
            IoOrder => &["eieio"],
            DmaRmb | DmaWmb => &["lwsync"],
        },
        // arch/arm64/include/asm/{barrier,io}.h
        Arch::Aarch64 => match barrier {
            Mb => &["dsb sy"],
            Rmb => &["dsb ld"],
            Wmb | WcFlush => &["dsb st"],
            IoBeforeWrite | DmaWmb => &["dmb oshst"],
            IoAfterRead | DmaRmb => &["dmb oshld"],
            IoOrder => &["dmb osh"],
            IoBeforeRead | MmioUnlock => &[],
        },
        // arch/riscv/include/asm/{barrier,mmio,mmiowb}.h
        Arch::Riscv64 => match barrier {
            Mb => &["fence iorw,iorw"],
            Rmb | DmaRmb => &["fence ir,ir"],
            Wmb | WcFlush | DmaWmb => &["fence ow,ow"],
            IoBeforeWrite => &["fence w,o"],
            IoAfterRead => &["fence i,ir"],
            IoOrder => &["fence io,io"],
            MmioUnlock => &["fence o,w"],
            IoBeforeRead => &[],
        },
        // arch/x86/include/asm/{barrier,io}.h
        Arch::X86_64 => match barrier {
            Mb => &["mfence"],
            Rmb => &["lfence"],
            Wmb | WcFlush => &["sfence"],
            IoBeforeWrite | IoBeforeRead | IoAfterRead | IoOrder | DmaRmb | DmaWmb | MmioUnlock => {
                &[]
            }
        },
        Arch::Other => &["fence seqcst"],
    }
}

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

/// Executes `barrier` on the host CPU: what the real backend does for
/// [`Backend::barrier`](crate::Backend::barrier). Drivers issue barriers through their backend
/// ([`IoMem::barrier`](crate::IoMem::barrier)), so a test against the mock sees them.
#[inline(always)]
pub(crate) fn execute(barrier: Barrier) {
    host::execute(barrier)
}

/// Executes `barrier` on the host CPU right after a device load that returned `loaded`; for
/// [`Barrier::IoAfterRead`] on powerpc the barrier depends on that value (`twi 0,r,0; isync`).
#[inline(always)]
pub(crate) fn execute_after_read(barrier: Barrier, loaded: u64) {
    host::execute_after_read(barrier, loaded)
}

/// Where barriers go around copies, single accesses and doorbells.
///
/// Chosen per handle ([`IoMem::with_strategy`](crate::IoMem::with_strategy)) or per
/// [`Doorbell`](crate::publish::Doorbell); the default is [`Strategy::Conservative`].
///
/// | | copies, single writes | single reads | doorbell |
/// |---|---|---|---|
/// | `Conservative` | what Linux emits (`writel`, `memcpy_toio`, …) | `readl` | `writel` |
/// | `Batched` | nothing | `readl` | one publishing barrier |
/// | `Relaxed` | nothing | nothing (`readl_relaxed`) | nothing (`writel_relaxed`) |
///
/// With `Batched`, any number of commands are copied without barriers and the doorbell write
/// carries the one barrier that publishes all of them: for 32 commands on powerpc that is one
/// `sync` where `Conservative` issues 65 (a `sync` before and after every `_memcpy_toio`, and the
/// doorbell's). Batching is correct because the doorbell barrier orders *every* earlier store
/// before the doorbell, not only the last command's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Exactly what Linux emits on the architecture for `writel`/`readl`/`memcpy_toio`/
    /// `memcpy_fromio`/`memset_io` (see [`Strategy::placement`]).
    #[default]
    Conservative,
    /// No barriers anywhere, doorbells included (`writel_relaxed`): the caller orders, e.g. with
    /// an explicit [`Barrier::IoBeforeWrite`].
    Relaxed,
    /// Copies and command writes carry no barriers; the doorbell write carries the one barrier
    /// that publishes everything before it. Single reads keep `readl`'s barriers: a status or
    /// completion register read must still complete before the data it announces is read.
    Batched,
}

impl Strategy {
    /// Every strategy, `Relaxed` first (the reference the benchmarks compare with).
    pub const ALL: [Strategy; 3] = [Strategy::Relaxed, Strategy::Conservative, Strategy::Batched];

    /// Lower-case name (`"conservative"`, `"relaxed"`, `"batched"`).
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Conservative => "conservative",
            Strategy::Relaxed => "relaxed",
            Strategy::Batched => "batched",
        }
    }
}

/// The kind of operation a [`Placement`] is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// A single MMIO write (`writel`).
    Write,
    /// A single MMIO read (`readl`).
    Read,
    /// A bulk copy into device memory (`memcpy_toio`, `memset_io`).
    CopyTo,
    /// A bulk copy out of device memory (`memcpy_fromio`).
    CopyFrom,
    /// A doorbell write: publishes earlier writes (to RAM and to device memory) to the device.
    Doorbell,
}

/// Barriers placed around one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Placement {
    /// Before the first access.
    pub before: Option<Barrier>,
    /// After every single access (powerpc's `memcpy_fromio` puts `eieio` after each load).
    pub each: Option<Barrier>,
    /// After the last access.
    pub after: Option<Barrier>,
}

impl Placement {
    /// No barriers.
    pub const NONE: Placement = Placement {
        before: None,
        each: None,
        after: None,
    };
    const fn around(before: Option<Barrier>, after: Option<Barrier>) -> Self {
        Placement {
            before,
            each: None,
            after,
        }
    }
}

impl Strategy {
    /// Where the barriers go for `op` on `arch`.
    ///
    /// `Conservative` follows the Linux kernel:
    /// - powerpc64 — `arch/powerpc/include/asm/io.h` (`DEF_MMIO_OUT_D`, `DEF_MMIO_IN_D`) and
    ///   `arch/powerpc/kernel/io.c` (`_memcpy_toio`, `_memset_io`, `_memcpy_fromio`): `writel` is
    ///   `sync; st`, `readl` is `sync; ld; twi 0,r,0; isync`, `_memcpy_toio`/`_memset_io` are
    ///   `sync; copy; sync`, `_memcpy_fromio` is `sync; (load; eieio)*; sync`. The copies' access
    ///   widths are the default width policy's ([`WidthPolicy::LINUX`](crate::WidthPolicy::LINUX),
    ///   [`copy::kernel`](crate::copy::kernel)): bytes until both sides are 4-aligned, u32
    ///   `while (n >= 4)`, then bytes — the kernel's loop, access for access.
    /// - aarch64 — `arch/arm64/include/asm/io.h` (`__io_bw`, `__io_ar`) and `lib/iomem_copy.c`:
    ///   `writel` is `dmb oshst; str`, `readl` is `ldr; dmb oshld`, the copies have no barriers.
    /// - riscv64 — `arch/riscv/include/asm/mmio.h` (`__io_bw`, `__io_ar`) and
    ///   `lib/iomem_copy.c`: `writel` is `fence w,o; sw`, `readl` is `lw; fence i,ir`, the copies
    ///   have no barriers.
    /// - x86_64 — `arch/x86/include/asm/io.h` (`build_mmio_write`) and `arch/x86/lib/iomem.c`:
    ///   plain `mov`s and `rep movs`, no barrier instructions.
    /// - other architectures: `writel`/`readl` as above (a `SeqCst` fence each), and a full
    ///   barrier before and after each copy, as a portable stand-in.
    ///
    /// `Batched` places only the single-read barriers (as `Conservative`) and the doorbell's.
    ///
    /// A doorbell is a `writel` under `Conservative` and `Batched` ([`Barrier::IoBeforeWrite`]
    /// first) and a `writel_relaxed` under `Relaxed`. A doorbell that publishes data in a
    /// write-combining mapping needs [`Barrier::WcFlush`] instead; [`Doorbell`](crate::publish::Doorbell) adds it.
    pub const fn placement(self, arch: Arch, op: Op) -> Placement {
        use Barrier::*;
        if let Op::Doorbell = op {
            return match self {
                Strategy::Relaxed => Placement::NONE,
                Strategy::Conservative | Strategy::Batched => {
                    Placement::around(Some(IoBeforeWrite), None)
                }
            };
        }
        match self {
            Strategy::Relaxed => Placement::NONE,
            Strategy::Batched => match op {
                Op::Read => Placement::around(Some(IoBeforeRead), Some(IoAfterRead)),
                _ => Placement::NONE,
            },
            Strategy::Conservative => match (arch, op) {
                (_, Op::Write) => Placement::around(Some(IoBeforeWrite), None),
                (_, Op::Read) => Placement::around(Some(IoBeforeRead), Some(IoAfterRead)),
                (Arch::PowerPc64, Op::CopyTo) => Placement::around(Some(Mb), Some(Mb)),
                (Arch::PowerPc64, Op::CopyFrom) => Placement {
                    before: Some(Mb),
                    each: Some(IoOrder),
                    after: Some(Mb),
                },
                (Arch::Other, Op::CopyTo | Op::CopyFrom) => Placement::around(Some(Mb), Some(Mb)),
                _ => Placement::NONE,
            },
        }
    }

    /// The barrier a doorbell write needs under this strategy on `arch`, given whether any data
    /// it publishes (or the doorbell's own mapping) is write-combining.
    ///
    /// `None` under `Relaxed`. Otherwise [`Barrier::WcFlush`] when write-combining memory is
    /// involved (it orders everything [`Barrier::IoBeforeWrite`] orders, on every architecture
    /// of the table, so one barrier does both), else the doorbell's [`Placement`].
    pub const fn doorbell_barrier(self, arch: Arch, write_combining: bool) -> Option<Barrier> {
        match self {
            Strategy::Relaxed => None,
            _ if write_combining => Some(Barrier::WcFlush),
            _ => self.placement(arch, Op::Doorbell).before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `WcFlush` must order at least what `IoBeforeWrite` orders, on every architecture, or a
    /// doorbell after write-combining data would lose the RAM→MMIO ordering.
    #[test]
    fn wc_flush_covers_io_before_write() {
        for arch in Arch::ALL {
            let wc = instructions(arch, Barrier::WcFlush);
            let bw = instructions(arch, Barrier::IoBeforeWrite);
            let covered = match arch {
                // Identical instruction, or a compiler fence only.
                Arch::PowerPc64 | Arch::X86_64 => bw.is_empty() || wc == bw,
                // `dsb st` (full system, completion) is stronger than `dmb oshst`.
                Arch::Aarch64 => wc == ["dsb st"] && bw == ["dmb oshst"],
                // `fence ow,ow` ⊇ `fence w,o`: both sets of the latter are subsets.
                Arch::Riscv64 => {
                    let sets = |s: &'static str| {
                        s.strip_prefix("fence ").unwrap().split_once(',').unwrap()
                    };
                    let (wp, ws) = sets(wc[0]);
                    let (bp, bs) = sets(bw[0]);
                    bp.chars().all(|c| wp.contains(c)) && bs.chars().all(|c| ws.contains(c))
                }
                Arch::Other => true,
            };
            assert!(
                covered,
                "{arch:?}: WcFlush {wc:?} does not cover IoBeforeWrite {bw:?}"
            );
        }
    }

    #[test]
    fn lwsync_never_orders_device_stores() {
        assert!(!orders_device_stores(Arch::PowerPc64, "lwsync"));
        assert!(orders_device_stores(Arch::PowerPc64, "sync"));
        assert!(!orders_device_stores(Arch::Riscv64, "fence w,o"));
        assert!(orders_device_stores(Arch::Riscv64, "fence iorw,iorw"));
        assert!(!orders_device_stores(Arch::Aarch64, "dmb oshld"));
        assert!(!orders_device_stores(Arch::X86_64, "lfence"));
    }

    #[test]
    fn batched_is_one_barrier_per_doorbell_on_powerpc() {
        let copy = Strategy::Batched.placement(Arch::PowerPc64, Op::CopyTo);
        assert_eq!(copy, Placement::NONE);
        assert_eq!(
            Strategy::Batched.doorbell_barrier(Arch::PowerPc64, true),
            Some(Barrier::WcFlush)
        );
        assert_eq!(
            Strategy::Relaxed.doorbell_barrier(Arch::PowerPc64, true),
            None
        );
    }
}
