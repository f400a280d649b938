//! [`CmbRule`]: where a command's data pointers may point, for a controller with a CMB.

use crate::nvme::cmb::{CmbInfo, CmbScheme};
use crate::nvme::prp::PrpEntry;
use crate::nvme::{Error, Result};

/// Which memory a data pointer reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Placement {
    /// Host memory (or any address outside the controller's own CMB, a peer's BAR included).
    Host,
    /// The controller's own Controller Memory Buffer.
    Cmb,
    /// The controller's own Persistent Memory Region (controller memory like the CMB: QEMU's
    /// `nvme_map_addr` lets one command mix CMB and PMR pages, never either with host memory).
    Pmr,
}

impl Placement {
    /// Whether this is the controller's own memory (CMB or PMR), which PRP1's side of the rule
    /// is decided by.
    pub fn is_controller_memory(self) -> bool {
        self != Placement::Host
    }
}

/// The data pointer rule of one controller's CMB.
///
/// # The rule, and where it comes from
/// The NVMe Base Specification (1.4, CMBLOC) lets a controller say how freely a command may
/// mix memories: **CDPMLS** (bit 5, "CMB Data Pointer Mixed Locations Support") set means the
/// data pointers of one command may point both into the CMB and outside it; clear means they
/// must all be on one side, and the controller fails a mix with *Invalid Use of Controller
/// Memory Buffer* (status 0x12). **CDPCILS** (bit 6) is about the command (its submission
/// queue) and its data pointers being in different memories, and **CDMMMS** (bit 7) about data
/// and metadata; this crate's commands carry no metadata, and where the queue lives is the
/// queue layer's business.
///
/// QEMU (`hw/nvme/ctrl.c`, checked in 7.2 by experiment, see `shared/qemu-nvme.md`, and in the
/// current source) **advertises CDPMLS = 1 and CDPCILS = 1** (`nvme_cmb_enable_regs`:
/// `NVME_CMBLOC_SET_CDPMLS(cmbloc, 1)`) **but refuses mixing**: `nvme_map_prp` starts the
/// transfer as DMA or as CMB according to PRP1 alone (`nvme_sg_init(n, sg,
/// nvme_addr_is_dma(n, prp1))`), and `nvme_map_addr` then fails every later pointer on the
/// other side with `NVME_INVALID_USE_OF_CMB | NVME_DNR` (0x4012 in the completion). A CMB range
/// must also lie wholly inside the CMB (`nvme_map_addr_cmb`: data transfer error otherwise).
/// Where the PRP list itself lives does not matter (`nvme_addr_read` reads either). An address
/// counts as the CMB only while CMBMSC.CMSE is set, or always for a pre-1.4 ("legacy") CMB,
/// and only inside `[CBA, CBA + size)` (`nvme_addr_is_cmb`).
///
/// So this rule follows the behaviour, not the advertised bit: by default **PRP1 decides** —
/// in the CMB, every data pointer must be in the CMB; in host memory, none may be. A caller
/// that knows its controller honours CDPMLS opts in with
/// [`with_mixed_locations`](Self::with_mixed_locations) (or
/// [`trusting_cdpmls`](Self::trusting_cdpmls)).
///
/// ```
/// use iomem::nvme::cmb::{self, BarTable, CmbScheme, PciBar, ProbeOptions};
/// use iomem::nvme::prp::{CmbRule, Placement};
/// use iomem::nvme::regs::{Cmbloc, Cmbsz};
///
/// // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
/// let bars = BarTable::new().with(2, unsafe { PciBar::new(0xfd00_0000, 1 << 20) }?)?;
/// let info = cmb::decode(Cmbloc::from_raw(2 | 3 << 5), Cmbsz::from_raw(1 << 20 | 1 << 8 | 0x1d),
///                        &bars, CmbScheme::Cmbmsc, ProbeOptions::default())?;
/// let rule = CmbRule::new(&info, true);
/// assert_eq!(rule.placement(0xfd00_1000, 4096)?, Placement::Cmb);
/// assert_eq!(rule.placement(0x1000, 4096)?, Placement::Host);
/// assert!(!rule.mixed_locations());          // QEMU advertises CDPMLS but refuses a mix
/// assert!(rule.trusting_cdpmls().mixed_locations());
/// assert_eq!(CmbRule::new(&info, false).placement(0xfd00_1000, 8)?, Placement::Host);
/// // With the PMR too: controller memory like the CMB.
/// let both = rule.with_pmr(0x1_0000_0000, 1 << 20);
/// assert_eq!(both.placement(0x1_0000_2000, 4096)?, Placement::Pmr);
/// assert!(both.placement(0x1_000f_f000, 8192).is_err()); // runs past the PMR's end
/// # Ok::<(), iomem::nvme::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmbRule {
    start: u64,
    end: u64,
    enabled: bool,
    mixed: bool,
    cdpmls: bool,
    /// The PMR's bus range, once its memory space is enabled (empty otherwise).
    pmr_start: u64,
    pmr_end: u64,
}

impl CmbRule {
    /// The rule for the CMB `info` describes. `enabled` says whether CMBMSC.CMSE is set (after
    /// [`cmb::enable`](crate::nvme::cmb::enable)); a legacy (pre-1.4) CMB always counts. While
    /// the CMB does not count, every address is host memory to the controller. Mixing is
    /// refused, as QEMU does.
    pub fn new(info: &CmbInfo, enabled: bool) -> Self {
        CmbRule {
            start: info.bus_addr,
            end: info.bus_addr.saturating_add(info.size),
            enabled: enabled || info.scheme == CmbScheme::Legacy,
            mixed: false,
            cdpmls: info.cmbloc.cdpmls(),
            pmr_start: 0,
            pmr_end: 0,
        }
    }

    /// The rule of a controller with a PMR and no CMB: the PMR of `size` bytes at `bus_addr`
    /// (its memory space enabled: PMRMSC.CMSE) is controller memory, everything else host.
    pub fn pmr_only(bus_addr: u64, size: u64) -> Self {
        CmbRule {
            start: 0,
            end: 0,
            enabled: true,
            mixed: false,
            cdpmls: false,
            pmr_start: 0,
            pmr_end: 0,
        }
        .with_pmr(bus_addr, size)
    }

    /// The same rule with the controller's PMR of `size` bytes at `bus_addr` (its memory space
    /// enabled) counted as controller memory too, as QEMU's `nvme_addr_is_pmr` does.
    pub fn with_pmr(mut self, bus_addr: u64, size: u64) -> Self {
        self.pmr_start = bus_addr;
        self.pmr_end = bus_addr.saturating_add(size);
        self
    }

    /// The same rule with mixing allowed or not (the caller vouches for its controller).
    pub fn with_mixed_locations(mut self, allowed: bool) -> Self {
        self.mixed = allowed;
        self
    }

    /// The same rule, with mixing allowed exactly when CMBLOC.CDPMLS says so (for controllers
    /// known to honour it; QEMU does not).
    pub fn trusting_cdpmls(self) -> Self {
        let cdpmls = self.cdpmls;
        self.with_mixed_locations(cdpmls)
    }

    /// Whether one command may mix CMB and host data pointers.
    pub fn mixed_locations(&self) -> bool {
        self.mixed
    }

    /// Whether CMB addresses count as the CMB (CMSE set, or a legacy CMB).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// Where `len` bytes from `addr` are, for the controller. A range partly in the CMB is an
    /// error ([`Error::CmbPlacement`], naming PRP1): the controller cannot transfer it.
    pub fn placement(&self, addr: u64, len: usize) -> Result<Placement> {
        self.place(PrpEntry::Prp1, addr, len)
    }

    fn place(&self, entry: PrpEntry, addr: u64, len: usize) -> Result<Placement> {
        // CAST: usize is at most 64 bits wide.
        let last = addr.saturating_add((len as u64).saturating_sub(1));
        let within = |start: u64, end: u64, kind: Placement, what: &'static str| {
            let inside = |a: u64| a >= start && a < end;
            match (inside(addr), inside(last)) {
                (true, true) => Ok(Some(kind)),
                (false, false) if !(addr < start && last >= end) => Ok(None),
                _ => Err(Error::CmbPlacement {
                    entry,
                    addr,
                    why: what,
                }),
            }
        };
        if self.enabled {
            let cmb = "the range is partly inside the CMB and partly outside it";
            if let Some(p) = within(self.start, self.end, Placement::Cmb, cmb)? {
                return Ok(p);
            }
        }
        let pmr = "the range is partly inside the PMR and partly outside it";
        Ok(within(self.pmr_start, self.pmr_end, Placement::Pmr, pmr)?.unwrap_or(Placement::Host))
    }

    /// Checks a command's data pointers (each `(entry, address, bytes)`, PRP1 first).
    pub(crate) fn check(
        &self,
        entries: impl IntoIterator<Item = (PrpEntry, u64, usize)>,
    ) -> Result<()> {
        let mut first = None;
        for (entry, addr, len) in entries {
            let p = self.place(entry, addr, len)?;
            match first {
                None => first = Some(p),
                Some(f) if f.is_controller_memory() != p.is_controller_memory() && !self.mixed => {
                    return Err(Error::CmbPlacement {
                        entry,
                        addr,
                        why: if f.is_controller_memory() {
                            "PRP1 is in the controller's memory (CMB or PMR), so every data \
                             pointer must be (no mixed locations)"
                        } else {
                            "PRP1 is in host memory, so no data pointer may be in the CMB or \
                             the PMR (no mixed locations)"
                        },
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
