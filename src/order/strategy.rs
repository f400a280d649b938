//! Strategies: where barriers go around copies, single accesses and doorbells.

use super::{Arch, Barrier};

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
    use crate::order::instructions;

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
