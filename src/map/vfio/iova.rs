//! [`IovaAllocator`]: which I/O virtual addresses of an IOMMU domain are free.

use std::collections::BTreeMap;
use std::ops::Range;
use std::vec::Vec;

/// A first-fit allocator of IOVA ranges inside the ranges an IOMMU accepts.
///
/// Ranges are whole pages of `page` bytes. Freed ranges merge with their free neighbours.
/// A range that a device may still reach by a stale DMA — the IOVA of memory quarantined
/// because its command was abandoned — is **retired** instead of freed: it is never handed
/// out again until [`recycle_retired`](Self::recycle_retired), after the devices are reset. The
/// memory behind it can be freed at once (the IOMMU no longer maps it, so a stale write is
/// blocked there), but were the IOVA mapped again, to other memory, the stale write would land
/// in that memory.
///
/// # Invariant
/// `free` holds disjoint, non-adjacent `start -> end` ranges (half-open, page-aligned), inside
/// the accepted ranges, disjoint from `retired` and from everything handed out.
#[derive(Debug, Clone)]
pub struct IovaAllocator {
    free: BTreeMap<u64, u64>,
    retired: Vec<Range<u64>>,
    page: u64,
}

impl IovaAllocator {
    /// An allocator over `ranges` (half-open; parts outside whole pages of `page` bytes, a power
    /// of two, are dropped), handing out nothing below `floor` (a driver keeps IOVA 0 and the
    /// first pages unmapped, so a zeroed address field faults instead of reaching memory). A
    /// page size that is not a power of two is rounded up to one; one above 2^63 (no power of
    /// two in 64 bits is that large) leaves the allocator empty.
    pub fn new(ranges: impl IntoIterator<Item = Range<u64>>, page: u64, floor: u64) -> Self {
        let rounded = page.max(1).checked_next_power_of_two();
        let mut a = IovaAllocator {
            free: BTreeMap::new(),
            retired: Vec::new(),
            page: rounded.unwrap_or(1 << 63),
        };
        let Some(page) = rounded else {
            return a;
        };
        for r in ranges {
            let start = r
                .start
                .max(floor)
                .checked_add(page - 1)
                .map(|s| s & !(page - 1));
            let end = r.end & !(page - 1);
            if let Some(start) = start {
                if start < end {
                    a.insert(start, end);
                }
            }
        }
        a
    }

    /// The page size: every range handed out is a multiple of it, and aligned to it.
    pub fn page(&self) -> u64 {
        self.page
    }

    /// A free range of `len` bytes (rounded up to whole pages) at an IOVA aligned to `align`
    /// (a power of two; at least a page), or `None` if none is left.
    pub fn alloc(&mut self, len: u64, align: u64) -> Option<Range<u64>> {
        let page = self.page;
        let len = len.max(1).checked_add(page - 1)? & !(page - 1);
        let align = align.max(page).checked_next_power_of_two()?;
        let (start, end, at) = self.free.iter().find_map(|(&s, &e)| {
            let at = s.checked_add(align - 1)? & !(align - 1);
            (at.checked_add(len)? <= e).then_some((s, e, at))
        })?;
        self.free.remove(&start);
        if start < at {
            self.free.insert(start, at);
        }
        if at + len < end {
            self.free.insert(at + len, end);
        }
        Some(at..at + len)
    }

    /// Gives `range` (from [`alloc`](Self::alloc)) back: no device can reach it any more.
    pub fn free(&mut self, range: Range<u64>) {
        self.insert(range.start, range.end);
    }

    /// Keeps `range` (from [`alloc`](Self::alloc)) from reuse until
    /// [`recycle_retired`](Self::recycle_retired): a device may still send a stale DMA to it.
    pub fn retire(&mut self, range: Range<u64>) {
        self.retired.push(range);
    }

    /// Bytes of retired IOVA space.
    pub fn retired(&self) -> u64 {
        self.retired.iter().map(|r| r.end - r.start).sum()
    }

    /// Bytes free.
    pub fn available(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).sum()
    }

    /// Frees every retired range.
    ///
    /// # Safety
    /// No device can send a DMA to a retired range any more: every device of the IOMMU domain
    /// was reset (or had bus mastering turned off) since the ranges were retired.
    pub unsafe fn recycle_retired(&mut self) {
        for r in core::mem::take(&mut self.retired) {
            self.insert(r.start, r.end);
        }
    }

    /// Adds `start..end` to the free ranges, merging with neighbours.
    fn insert(&mut self, mut start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        if let Some((&s, &e)) = self.free.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
                self.free.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.free.range(start..).next() {
            if s > end {
                break;
            }
            end = end.max(e);
            self.free.remove(&s);
        }
        self.free.insert(start, end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn first_fit_aligned_and_merging() {
        let mut a = IovaAllocator::new(Some(0..16 * MIB), 4096, MIB);
        assert_eq!(a.available(), 15 * MIB);
        let x = a.alloc(5000, 1).unwrap();
        assert_eq!(x, MIB..MIB + 0x2000);
        let y = a.alloc(MIB, 2 * MIB).unwrap();
        assert_eq!(y, 2 * MIB..3 * MIB);
        let z = a.alloc(4096, 1).unwrap();
        assert_eq!(
            z.start,
            MIB + 0x2000,
            "the gap before the aligned range is still free"
        );
        a.free(x);
        a.free(z);
        a.free(y);
        assert_eq!(a.available(), 15 * MIB);
        assert_eq!(a.free.len(), 1, "everything merged back: {:?}", a.free);
        assert_eq!(a.alloc(15 * MIB, 1), Some(MIB..16 * MIB));
        assert_eq!(a.alloc(1, 1), None);
    }

    #[test]
    fn ranges_are_clipped_to_pages_and_the_floor() {
        // The x86 MSI window (0xfee00000..0xfef00000) is a hole between two accepted ranges.
        let a = IovaAllocator::new([0..0xfee0_0000, 0xfef0_0000..1 << 48, 10..20], 4096, MIB);
        assert_eq!(a.free.len(), 2);
        assert_eq!(a.free.first_key_value(), Some((&MIB, &0xfee0_0000)));
        let mut a = IovaAllocator::new(Some(0x1800..0x5800), 4096, 0);
        assert_eq!(a.alloc(0x3000, 1), Some(0x2000..0x5000));
        assert_eq!(a.alloc(1, 1), None);
        assert_eq!(IovaAllocator::new(None, 3000, 0).page(), 4096);
    }

    #[test]
    fn a_page_size_above_2_pow_63_leaves_it_empty() {
        let mut a = IovaAllocator::new(Some(0..u64::MAX), (1 << 63) + 1, 0);
        assert_eq!(a.available(), 0);
        assert_eq!(a.alloc(1, 1), None);
        let a = IovaAllocator::new(Some(0..u64::MAX), u64::MAX, 0);
        assert_eq!(a.available(), 0);
    }

    #[test]
    fn retired_ranges_come_back_only_when_recycled() {
        let mut a = IovaAllocator::new(Some(0..4 * 4096), 4096, 0);
        let r = a.alloc(4 * 4096, 1).unwrap();
        a.retire(r);
        assert_eq!((a.available(), a.retired()), (0, 4 * 4096));
        assert_eq!(a.alloc(1, 1), None);
        // SAFETY: no device in a unit test.
        unsafe { a.recycle_retired() };
        assert_eq!((a.available(), a.retired()), (4 * 4096, 0));
        assert!(a.alloc(u64::MAX, 1).is_none());
        assert_eq!(a.alloc(4096, 1), Some(0..4096));
        assert!(
            a.alloc(1, 1 << 63).is_none(),
            "no aligned address left below 2^64"
        );
    }
}
