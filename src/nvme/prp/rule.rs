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
/// let bars = BarTable::new().with(2, PciBar::new(0xfd00_0000, 1 << 20)?)?;
/// let info = cmb::decode(Cmbloc::from_raw(2 | 3 << 5), Cmbsz::from_raw(1 << 20 | 1 << 8 | 0x1d),
///                        &bars, CmbScheme::Cmbmsc, ProbeOptions::default())?;
/// let rule = CmbRule::new(&info, true);
/// assert_eq!(rule.placement(0xfd00_1000, 4096)?, Placement::Cmb);
/// assert_eq!(rule.placement(0x1000, 4096)?, Placement::Host);
/// assert!(!rule.mixed_locations());          // QEMU advertises CDPMLS but refuses a mix
/// assert!(rule.trusting_cdpmls().mixed_locations());
/// assert_eq!(CmbRule::new(&info, false).placement(0xfd00_1000, 8)?, Placement::Host);
/// # Ok::<(), iomem::nvme::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CmbRule {
    start: u64,
    end: u64,
    enabled: bool,
    mixed: bool,
    cdpmls: bool,
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
        }
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
        if !self.enabled {
            return Ok(Placement::Host);
        }
        // CAST: usize is at most 64 bits wide.
        let last = addr.saturating_add((len as u64).saturating_sub(1));
        let inside = |a: u64| a >= self.start && a < self.end;
        match (inside(addr), inside(last)) {
            (true, true) => Ok(Placement::Cmb),
            (false, false) if !(addr < self.start && last >= self.end) => Ok(Placement::Host),
            _ => Err(Error::CmbPlacement {
                entry,
                addr,
                why: "the range is partly inside the CMB and partly outside it",
            }),
        }
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
                Some(f) if f != p && !self.mixed => {
                    return Err(Error::CmbPlacement {
                        entry,
                        addr,
                        why: if f == Placement::Cmb {
                            "PRP1 is in the CMB, so every data pointer must be (no mixed locations)"
                        } else {
                            "PRP1 is in host memory, so no data pointer may be in the CMB (no \
                             mixed locations)"
                        },
                    })
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}
