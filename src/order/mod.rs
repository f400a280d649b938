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
//!   architecture allows; [`orders_device_stores`] is the part of it read from this table, and
//!   [`orders_accesses`] (with [`orders_ram_before_device`] and [`orders_ram_loads`]) the part
//!   that models host RAM: commands written to RAM before a doorbell, completions read from it.
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
    use std::vec::Vec;

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
