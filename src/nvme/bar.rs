//! The memory BARs of a PCI function, as the platform assigned them: [`PciBar`] and
//! [`BarTable`], which the CMB and PMR are found in ([`cmb`](super::cmb),
//! [`pmr`](super::pmr)). Their public path is [`nvme::cmb`](super::cmb).

/// One memory BAR of a PCI function, as the platform assigned it.
///
/// The CMB and PMR found through it ([`cmb::probe`](super::cmb::probe),
/// [`pmr::probe`](super::pmr::probe)) and the pools over them
/// ([`CmbPool`](super::cmb::CmbPool), [`PmrPool`](super::pmr::PmrPool)) hand devices addresses
/// inside it ([`DmaAddr`](crate::dma::DmaAddr)), and [`cmb::enable`](super::cmb::enable) tells
/// the controller its CMB is there. So a `PciBar` comes from the platform —
/// `BarTable::from_sysfs` (feature `linux`: sysfs `resource` and the BAR registers),
/// `BarTable::from_vfio` (feature `vfio`) — or from [`PciBar::new`], whose caller vouches for
/// it.
///
/// # Invariant
/// `[bus_addr, bus_addr + size)` is device memory of a BAR, where devices reach it; `size > 0`
/// and the sum does not overflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciBar {
    pub(crate) bus_addr: u64,
    pub(crate) size: u64,
}

impl PciBar {
    /// A memory BAR at bus address `bus_addr`, `size` bytes. The size must be non-zero and
    /// `bus_addr + size` must not overflow ([`crate::Error::InvalidArgument`]: a PCI matter, so
    /// a core error).
    ///
    /// # Safety
    /// `[bus_addr, bus_addr + size)` is a memory BAR of the function, at the bus address devices
    /// use for it (what the platform assigned). Pools over a CMB or PMR found in it give
    /// devices addresses inside it: with a wrong one, their DMA goes to whatever memory really is
    /// there — host RAM too. A table for a test or a model controller, whose addresses no real
    /// device is given, meets this.
    pub unsafe fn new(bus_addr: u64, size: u64) -> crate::Result<Self> {
        if size == 0 {
            return Err(crate::Error::InvalidArgument("a BAR has a non-zero size"));
        }
        if bus_addr.checked_add(size).is_none() {
            return Err(crate::Error::InvalidArgument(
                "BAR bus address + size overflows 64 bits",
            ));
        }
        Ok(PciBar { bus_addr, size })
    }

    /// Bus address of the BAR's first byte (what a device puts on the bus to reach it).
    pub fn bus_addr(&self) -> u64 {
        self.bus_addr
    }

    /// Size of the BAR in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

/// The six BARs of a PCI function. An entry is `None` if the BAR is absent, is an I/O BAR, or is
/// the upper half of a 64-bit BAR (so BAR3 is `None` when BAR2 is 64-bit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BarTable {
    bars: [Option<PciBar>; 6],
}

impl BarTable {
    /// A table with no memory BARs.
    pub fn new() -> Self {
        Self::default()
    }
    /// The table with BAR `index` (0 to 5) set ([`crate::Error::InvalidArgument`] otherwise).
    pub fn with(mut self, index: usize, bar: PciBar) -> crate::Result<Self> {
        *self
            .bars
            .get_mut(index)
            .ok_or(crate::Error::InvalidArgument("BAR index must be 0 to 5"))? = Some(bar);
        Ok(self)
    }
    /// BAR `index`, if it is a memory BAR.
    pub fn get(&self, index: usize) -> Option<PciBar> {
        self.bars.get(index).copied().flatten()
    }

    /// The memory BARs of `dev` as the platform assigned them: sizes from sysfs `resource`,
    /// bus addresses from the BAR registers ([`Bar::bus_addr`](crate::map::linux::Bar::bus_addr):
    /// the CPU physical address where config space cannot be read). I/O BARs and absent ones
    /// are `None`.
    #[cfg(feature = "linux")]
    pub fn from_sysfs(dev: &crate::map::linux::PciDevice) -> crate::map::linux::Result<Self> {
        let mut table = BarTable::new();
        for b in dev.bars()? {
            if b.kind() != crate::map::linux::BarKind::Memory {
                continue;
            }
            // SAFETY: the kernel's record of this function's BAR: where devices reach it and
            // its size.
            let bar = unsafe { PciBar::new(b.bus_addr(), b.size()) };
            if let (Some(slot), Ok(bar)) = (table.bars.get_mut(b.index()), bar) {
                *slot = Some(bar);
            }
        }
        Ok(table)
    }

    /// The memory BARs of a device bound to VFIO: each BAR region's size, and the bus address
    /// its BAR registers decode ([`VfioDevice::bar_bus_addr`]). BARs that decode no memory are
    /// `None`.
    ///
    /// [`VfioDevice::bar_bus_addr`]: crate::map::vfio::VfioDevice::bar_bus_addr
    #[cfg(feature = "vfio")]
    pub fn from_vfio(dev: &crate::map::vfio::VfioDevice) -> Self {
        let mut table = BarTable::new();
        for (n, slot) in (0u32..).zip(table.bars.iter_mut()) {
            let region = dev.region(crate::map::vfio::bar_region(n));
            if let (Ok(r), Ok(bus)) = (region, dev.bar_bus_addr(n)) {
                // SAFETY: the function's own BAR: the bus address its registers decode (which
                // the platform programmed) and the size VFIO reports for its region.
                *slot = unsafe { PciBar::new(bus, r.size) }.ok();
            }
        }
        table
    }
}
