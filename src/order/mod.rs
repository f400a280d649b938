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

mod orders;
mod strategy;

pub use orders::{
    orders_accesses, orders_device_stores, orders_ram_before_device, orders_ram_loads, AccessKind,
};
pub use strategy::{Op, Placement, Strategy};

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
