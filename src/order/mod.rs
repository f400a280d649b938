//! MMIO ordering: barrier kinds, the instructions each architecture uses for them, and the
//! strategies that decide where barriers go.
//!
//! A [`Barrier`] is a value naming *what* must be ordered. [`instructions`] is the single table
//! saying which instructions each [`Arch`] executes for it — the same table the real backend
//! executes on the host (through `order/<arch>.rs`) and the mock records for any architecture, so
//! a test on x86_64 proves where powerpc would put its `sync`s.

mod lock;

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

/// What a barrier orders. Each kind names the Linux primitive it corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Barrier {
    /// Full barrier (`mb()`): every earlier load and store, to RAM or MMIO, is ordered before
    /// every later one.
    Mb,
    /// Read barrier (`rmb()`): earlier loads (RAM and MMIO) before later loads.
    Rmb,
    /// Write barrier (`wmb()`): earlier stores (RAM and MMIO) before later stores.
    Wmb,
    /// Before an MMIO write (the barrier inside `writel()`, `__io_bw()`): earlier stores to RAM
    /// (a command a device will fetch by DMA) are visible to the device before the MMIO write.
    IoBeforeWrite,
    /// Before an MMIO read (`__io_br()`): earlier accesses are ordered before the read. Only
    /// powerpc needs an instruction here.
    IoBeforeRead,
    /// After an MMIO read (`__io_ar()`): the read completes before later loads from RAM (a
    /// completion status read before the DMA'd data it announces).
    IoAfterRead,
    /// Orders MMIO accesses among themselves only (`eieio` on powerpc). Not enough to order
    /// MMIO against RAM.
    IoOrder,
    /// Ordering of coherent RAM only (`dma_wmb()`/`dma_rmb()`, `lwsync` on powerpc): **not**
    /// enough to order anything against MMIO — powerpc's `lwsync` does not order
    /// caching-inhibited accesses at all.
    DmaOrder,
    /// Drains write-combining buffers: every earlier store to a write-combining mapping is
    /// performed before any later store (`sfence` on x86_64).
    WcFlush,
    /// Before releasing a lock after MMIO writes (`mmiowb()`): MMIO writes made inside the
    /// critical section reach the device before the next lock holder's.
    MmioUnlock,
}

impl Barrier {
    /// Every barrier kind.
    pub const ALL: [Barrier; 10] = [
        Barrier::Mb,
        Barrier::Rmb,
        Barrier::Wmb,
        Barrier::IoBeforeWrite,
        Barrier::IoBeforeRead,
        Barrier::IoAfterRead,
        Barrier::IoOrder,
        Barrier::DmaOrder,
        Barrier::WcFlush,
        Barrier::MmioUnlock,
    ];
}

/// The instructions `arch` executes for `barrier`, as assembler mnemonics (an empty slice means a
/// compiler-only fence). This table is the contract the per-architecture `asm!` is checked
/// against.
pub const fn instructions(arch: Arch, barrier: Barrier) -> &'static [&'static str] {
    use Barrier::*;
    match arch {
        Arch::PowerPc64 => match barrier {
            Mb | Rmb | Wmb | IoBeforeWrite | IoBeforeRead | WcFlush | MmioUnlock => &["sync"],
            IoAfterRead => &["twi 0,r,0", "isync"],
            IoOrder => &["eieio"],
            DmaOrder => &["lwsync"],
        },
        Arch::Aarch64 => match barrier {
            Mb => &["dsb sy"],
            Rmb => &["dsb ld"],
            Wmb | WcFlush => &["dsb st"],
            IoBeforeWrite => &["dmb oshst"],
            IoAfterRead => &["dmb oshld"],
            IoOrder => &["dmb osh"],
            DmaOrder => &["dmb oshld", "dmb oshst"],
            IoBeforeRead | MmioUnlock => &[],
        },
        Arch::Riscv64 => match barrier {
            Mb => &["fence iorw,iorw"],
            Rmb => &["fence ir,ir"],
            Wmb | WcFlush => &["fence ow,ow"],
            IoBeforeWrite => &["fence w,o"],
            IoAfterRead => &["fence i,r"],
            IoOrder => &["fence io,io"],
            DmaOrder => &["fence rw,rw"],
            MmioUnlock => &["fence o,w"],
            IoBeforeRead => &[],
        },
        Arch::X86_64 => match barrier {
            Mb => &["mfence"],
            Rmb => &["lfence"],
            Wmb | WcFlush => &["sfence"],
            IoBeforeWrite | IoBeforeRead | IoAfterRead | IoOrder | DmaOrder | MmioUnlock => &[],
        },
        Arch::Other => &["fence seqcst"],
    }
}

/// Executes `barrier` on the host CPU.
#[inline(always)]
pub fn execute(barrier: Barrier) {
    host::execute(barrier)
}

/// Where barriers go around copies, single accesses and doorbells.
///
/// Chosen per handle ([`IoMem::with_strategy`](crate::IoMem::with_strategy)); the default is
/// [`Strategy::Conservative`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Strategy {
    /// Exactly what Linux emits on the architecture for `writel`/`readl`/`memcpy_toio`/
    /// `memcpy_fromio`/`memset_io` (see [`Placement`]).
    #[default]
    Conservative,
    /// No barriers inside copies or single accesses (`writel_relaxed`); the caller orders.
    Relaxed,
    /// Copies and command writes carry no barriers; the doorbell write carries the one barrier
    /// that publishes everything before it.
    Batched,
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
    const NONE: Placement = Placement {
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
    /// - powerpc64 (`arch/powerpc/include/asm/io.h`, `arch/powerpc/kernel/io.c`): `writel` is
    ///   `sync; st`, `readl` is `sync; ld; twi; isync`, `_memcpy_toio`/`_memset_io` are
    ///   `sync; copy; sync`, `_memcpy_fromio` is `sync; (load; eieio)*; sync`;
    /// - aarch64 (`arch/arm64/include/asm/io.h`, `arch/arm64/kernel/io.c`): `writel` is
    ///   `dmb oshst; str`, `readl` is `ldr; dmb oshld`, the copies have no barriers;
    /// - riscv64 (`arch/riscv/include/asm/mmio.h`): `writel` is `fence w,o; sw`, `readl` is
    ///   `lw; fence i,r`, the copies have no barriers;
    /// - x86_64 (`arch/x86/include/asm/io.h`): plain `mov`s, no barrier instructions.
    ///
    /// A doorbell is always a `writel` (never relaxed): [`Barrier::IoBeforeWrite`] first.
    pub const fn placement(self, arch: Arch, op: Op) -> Placement {
        use Barrier::*;
        if let Op::Doorbell = op {
            return Placement::around(Some(IoBeforeWrite), None);
        }
        match self {
            Strategy::Relaxed | Strategy::Batched => Placement::NONE,
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
}
