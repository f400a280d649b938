//! Typed NVMe commands and PRP data pointers: every builder's wire dwords against the
//! specification's layout (computed by hand), every refusal, the PRP builder over scattered
//! mock DMA memory (PRP1 only, PRP2, a list, a chained list, odd offsets, misaligned segments),
//! the CMB data pointer rule, and a property: the entries reconstruct exactly the bytes given.

use iomem::backend::MockIo;
use iomem::dma::{DmaAddr, MockDma, MOCK_PAGE};
use iomem::nvme::cmb::{self, BarTable, CmbInfo, CmbPool, CmbScheme, PciBar, ProbeOptions};
use iomem::nvme::cmd::admin::{self, Cns, Feature, FeatureId, Priority, QueueCounts, Select};
use iomem::nvme::cmd::nvm::{self, Namespace};
use iomem::nvme::cmd::{opcodes, Command};
use iomem::nvme::prp::{
    no_list, CmbPrpList, CmbRule, DataPtr, HostPrpList, PageSize, Prp2, PrpBuilder, PrpEntry,
};
use iomem::nvme::regs::{Cc, Cmbloc, Cmbsz};
use iomem::nvme::Error;
use proptest::prelude::*;

const PAGE: usize = 4096;
const CMB_BUS: u64 = 0xfd00_0000;

fn dw(c: &Command) -> [u32; 16] {
    c.dwords()
}

fn qdw(c: &admin::QueueCreate) -> [u32; 16] {
    c.dwords()
}

fn page() -> PageSize {
    PageSize::new(PAGE).unwrap()
}

fn ns() -> Namespace {
    Namespace::from_parts(1, 512, 1 << 20, Some(128 * 1024)).unwrap()
}

/// A 4 KiB data pointer over a fresh mock page (and the mock, to keep it).
fn page_ptr(dma: &MockDma, bytes: usize) -> DataPtr {
    let buf = dma.alloc(bytes).unwrap();
    PrpBuilder::new(page(), None)
        .borrow(&buf.lease(), 0..bytes, None)
        .unwrap()
}

#[test]
fn identify_wire_format() {
    let dma = MockDma::new(1 << 16);
    let d = page_ptr(&dma, 4096);
    let c = admin::identify(Cns::Controller, 0, d).unwrap();
    let w = dw(&c);
    assert_eq!(w[0], 0x06);
    assert_eq!((w[1], w[10]), (0, 1));
    assert_eq!(u64::from(w[6]) | u64::from(w[7]) << 32, d.prp1().get());
    assert_eq!((w[8], w[9]), (0, 0), "one page: no PRP2");
    let c = admin::identify(Cns::Namespace, 1, d).unwrap();
    assert_eq!((dw(&c)[1], dw(&c)[10]), (1, 0));
    let c = admin::identify(Cns::ActiveNamespaces, 0, d).unwrap();
    assert_eq!(dw(&c)[10], 2);
    // refusals
    assert!(matches!(
        admin::identify(Cns::Namespace, 0, d),
        Err(Error::InvalidField { field: "NSID", .. })
    ));
    assert!(admin::identify(Cns::Controller, 1, d).is_err());
    let short = PrpBuilder::new(page(), None);
    let buf = dma.alloc(4096).unwrap();
    let half = short.borrow(&buf.lease(), 0..2048, None).unwrap();
    assert!(matches!(
        admin::identify(Cns::Controller, 0, half),
        Err(Error::DataLength {
            expected: 4096,
            got: 2048,
            ..
        })
    ));
    // SAFETY: no command was submitted.
    unsafe { dma.quarantine().release() };
}

#[test]
fn queue_commands_wire_format_and_refusals() {
    let dma = MockDma::new(1 << 16);
    let ring = dma.alloc_contiguous(4096).unwrap();
    let base = ring.lease().addr(0).unwrap();
    let c = admin::create_io_cq(3, 256, base, Some(5)).unwrap();
    let w = qdw(&c);
    assert_eq!(w[0], 0x05);
    assert_eq!(w[10], 255 << 16 | 3, "QSIZE 0's based, QID");
    assert_eq!(w[11], 5 << 16 | 0b11, "IV, IEN, PC");
    assert_eq!((c.opcode(), c.ring()), (0x05, base.get()));
    assert_eq!(
        admin::create_io_cq(3, 2, base, None).unwrap().dword(11),
        Some(1)
    );
    let c = admin::create_io_sq(4, 64, base, 3, Priority::Low).unwrap();
    let w = qdw(&c);
    assert_eq!(
        (w[0], w[10], w[11]),
        (0x01, 63 << 16 | 4, 3 << 16 | 3 << 1 | 1)
    );
    assert!(matches!(
        admin::create_io_cq(0, 64, base, None),
        Err(Error::InvalidField { field: "QID", .. })
    ));
    assert!(matches!(
        admin::create_io_cq(1, 1, base, None),
        Err(Error::InvalidField {
            field: "QSIZE",
            value: 1,
            ..
        })
    ));
    assert!(admin::create_io_sq(1, 64, base, 0, Priority::Medium).is_err());
    let off = ring.lease().addr(64).unwrap();
    assert!(
        admin::create_io_cq(1, 64, off, None).is_err(),
        "unaligned ring"
    );
    let c = admin::delete_io_sq(7).unwrap();
    assert_eq!((dw(&c)[0], dw(&c)[10]), (0x00, 7));
    let c = admin::delete_io_cq(7).unwrap();
    assert_eq!((dw(&c)[0], dw(&c)[10]), (0x04, 7));
    assert!(admin::delete_io_cq(0).is_err());
    let c = admin::abort(2, 0x1234);
    assert_eq!((dw(&c)[0], dw(&c)[10]), (0x08, 0x1234 << 16 | 2));
}

#[test]
fn features_wire_format() {
    let c = admin::set_features(Feature::NumberOfQueues { sq: 4, cq: 2 }).unwrap();
    let w = dw(&c);
    assert_eq!((w[0], w[10], w[11]), (0x09, 0x07, 1 << 16 | 3));
    let c = admin::set_features(Feature::NumberOfQueues {
        sq: 65535,
        cq: 65535,
    })
    .unwrap();
    assert_eq!(c.dword(11), Some(0xfffe_fffe));
    assert!(matches!(
        admin::set_features(Feature::NumberOfQueues { sq: 0, cq: 1 }),
        Err(Error::InvalidField { field: "NSQR", .. })
    ));
    assert!(admin::set_features(Feature::NumberOfQueues { sq: 1, cq: 0 }).is_err());
    let c = admin::set_features(Feature::Arbitration {
        burst: 3,
        low: 1,
        medium: 2,
        high: 4,
    })
    .unwrap();
    assert_eq!(
        (c.dword(10), c.dword(11)),
        (Some(1), Some(4 << 24 | 2 << 16 | 1 << 8 | 3))
    );
    assert!(admin::set_features(Feature::Arbitration {
        burst: 8,
        low: 0,
        medium: 0,
        high: 0
    })
    .is_err());
    let c = admin::set_features(Feature::VolatileWriteCache { enabled: true }).unwrap();
    assert_eq!((c.dword(10), c.dword(11)), (Some(6), Some(1)));
    let c = admin::get_features(FeatureId::NumberOfQueues, Select::Supported);
    assert_eq!((c.opcode(), c.dword(10)), (0x0a, Some(3 << 8 | 7)));
    assert_eq!(
        QueueCounts::from_result(0x0003_0007),
        QueueCounts { sq: 8, cq: 4 }
    );
    assert_eq!(
        QueueCounts::from_result(0xffff_ffff),
        QueueCounts {
            sq: 65536,
            cq: 65536
        }
    );
}

#[test]
fn nvm_commands_wire_format_and_refusals() {
    let dma = MockDma::new(1 << 20);
    let ns = ns();
    let d = page_ptr(&dma, 4096);
    let wide = Namespace::from_parts(1, 512, 1 << 40, None).unwrap();
    let c = nvm::read(&wide, 0x1_2345_6789, 8, d).unwrap();
    let w = dw(&c);
    assert_eq!((w[0], w[1]), (u32::from(opcodes::nvm::READ), 1));
    assert_eq!((w[10], w[11], w[12]), (0x2345_6789, 1, 7));
    assert_eq!(c.prp1(), d.prp1().get());
    let c = nvm::write(&ns, 5, 8, d).unwrap();
    assert_eq!(
        (c.opcode(), c.dword(10), c.dword(12)),
        (0x01, Some(5), Some(7))
    );
    let c = nvm::flush(0xffff_ffff);
    assert_eq!((c.opcode(), c.nsid(), c.prp1()), (0x00, 0xffff_ffff, 0));
    let c = nvm::write_zeroes(&ns, 10, 65536).unwrap();
    assert_eq!((c.opcode(), c.dword(12), c.prp1()), (0x08, Some(0xffff), 0));
    // refusals
    assert!(matches!(
        nvm::read(&ns, 0, 0, d),
        Err(Error::InvalidField {
            field: "NLB",
            value: 0,
            ..
        })
    ));
    assert!(nvm::write_zeroes(&ns, 0, 65537).is_err());
    assert_eq!(
        nvm::write_zeroes(&ns, (1 << 20) - 4, 5).unwrap_err(),
        Error::LbaRange {
            slba: (1 << 20) - 4,
            nlb: 5,
            capacity: 1 << 20
        }
    );
    assert!(matches!(
        nvm::write_zeroes(&ns, u64::MAX, 2),
        Err(Error::LbaRange { .. })
    ));
    assert_eq!(
        nvm::read(&ns, 0, 4, d).unwrap_err(),
        Error::DataLength {
            command: "Read",
            expected: 2048,
            got: 4096
        }
    );
    let big = dma.alloc(256 * 1024).unwrap();
    let list = HostPrpList::alloc(&dma, 4096).unwrap();
    let big = PrpBuilder::new(page(), None)
        .borrow(&big.lease(), 0..256 * 1024, Some(&list))
        .unwrap();
    assert_eq!(
        nvm::read(&ns, 0, 512, big).unwrap_err(),
        Error::TransferTooLarge {
            bytes: 256 * 1024,
            max: 128 * 1024
        }
    );
    // SAFETY: nothing was submitted.
    unsafe { dma.quarantine().release() };
}

/// Walks a data pointer as a controller does: the `(address, bytes)` of every page, following
/// (and chaining) the PRP list through `read`.
fn walk(d: &DataPtr, page: usize, read: impl Fn(u64, &mut [u8])) -> Vec<(u64, usize)> {
    let p = page as u64;
    let first = (page - (d.prp1().get() % p) as usize).min(d.len());
    let mut out = vec![(d.prp1().get(), first)];
    let mut left = d.len() - first;
    match d.prp2() {
        Prp2::None => assert_eq!(left, 0),
        Prp2::Page(a) => {
            assert!(left <= page);
            out.push((a.get(), left));
        }
        Prp2::List(a) => {
            assert!(left > page);
            let mut list = a.get();
            let per = page / 8;
            let mut i = 0;
            while left > 0 {
                let mut e = [0u8; 8];
                read(list + 8 * i as u64, &mut e);
                let e = u64::from_le_bytes(e);
                if i == per - 1 && left > page {
                    list = e; // chain
                    i = 0;
                    continue;
                }
                assert_eq!(e % p, 0, "list entries are page aligned");
                let n = left.min(page);
                out.push((e, n));
                left -= n;
                i += 1;
            }
        }
    }
    out
}

/// Merges adjacent `(address, bytes)` runs.
fn merge(v: &[(u64, usize)]) -> Vec<(u64, usize)> {
    let mut out: Vec<(u64, usize)> = Vec::new();
    for &(a, n) in v {
        match out.last_mut() {
            Some((b, m)) if *b + *m as u64 == a => *m += n,
            _ => out.push((a, n)),
        }
    }
    out
}

fn raw(segs: &[(DmaAddr, usize)]) -> Vec<(u64, usize)> {
    segs.iter().map(|(a, n)| (a.get(), *n)).collect()
}

#[test]
fn prp1_prp2_list_and_chained_list() {
    let dma = MockDma::new(8 << 20).with_scatter(3);
    let b = PrpBuilder::new(page(), None);
    let read = |a: u64, buf: &mut [u8]| dma.device_read(unsafe_addr(a), buf).unwrap();
    // PRP1 only, at an odd (dword-aligned) offset
    let buf = dma.alloc(2 * PAGE).unwrap();
    let l = buf.lease();
    let d = b.borrow(&l, 100..PAGE, None).unwrap();
    assert_eq!(
        (d.prp1(), d.prp2(), d.len()),
        (l.addr(100).unwrap(), Prp2::None, PAGE - 100)
    );
    // PRP2: two pages
    let d = b.borrow(&l, 100..PAGE + 100, None).unwrap();
    assert_eq!(d.prp2(), Prp2::Page(l.addr(PAGE).unwrap()));
    assert_eq!(
        walk(&d, PAGE, read),
        [
            (l.addr(100).unwrap().get(), PAGE - 100),
            (l.addr(PAGE).unwrap().get(), 100)
        ]
    );
    // a list: 5 pages, scattered (runs of 3)
    let buf = dma.alloc(5 * PAGE).unwrap();
    let prp = b
        .lend(buf.lease(), 0..5 * PAGE, |n| {
            assert_eq!(n, PAGE);
            HostPrpList::alloc(&dma, n)
        })
        .unwrap();
    let d = prp.data();
    assert!(matches!(d.prp2(), Prp2::List(_)));
    let segs = buf.lease().segments(0..5 * PAGE).unwrap();
    assert_eq!(merge(&walk(&d, PAGE, read)), raw(&segs));
    // SAFETY: nothing was submitted.
    unsafe { prp.into_parts().1.complete() };
    // a chained list: 600 pages need 599 entries, more than one list page holds (512)
    let buf = dma.alloc(600 * PAGE).unwrap();
    let need = PageSize::new(PAGE).unwrap().list_bytes(600);
    assert_eq!(need, 2 * PAGE);
    let list = HostPrpList::new(dma.alloc_contiguous(need).unwrap());
    let d = b.borrow(&buf.lease(), 0..600 * PAGE, Some(&list)).unwrap();
    let segs = buf.lease().segments(0..600 * PAGE).unwrap();
    assert_eq!(merge(&walk(&d, PAGE, read)), raw(&segs));
    // the chain entry is the last of the first list page
    let mut e = [0u8; 8];
    read(list.lease().addr(PAGE - 8).unwrap().get(), &mut e);
    assert_eq!(
        u64::from_le_bytes(e),
        list.lease().addr(PAGE).unwrap().get()
    );
    // too small a list, or none
    let small = HostPrpList::new(dma.alloc_contiguous(PAGE).unwrap());
    assert!(b.borrow(&buf.lease(), 0..600 * PAGE, Some(&small)).is_err());
    assert!(matches!(
        b.borrow(&buf.lease(), 0..3 * PAGE, None),
        Err(Error::Unsupported { .. })
    ));
    assert!(b.lend(buf.lease(), 0..3 * PAGE, no_list).is_err());
    // SAFETY: nothing was submitted.
    unsafe { dma.quarantine().release() };
}

fn unsafe_addr(a: u64) -> DmaAddr {
    // SAFETY: the mock's device side checks every address against its allocations.
    unsafe { DmaAddr::from_raw(a) }
}

#[test]
fn misaligned_segments_are_refused_naming_the_first() {
    let dma = MockDma::new(1 << 20);
    let buf = dma.alloc(4 * PAGE).unwrap();
    let l = buf.lease();
    let b = PrpBuilder::new(page(), None);
    assert!(matches!(
        b.borrow(&l, 2..PAGE, None),
        Err(Error::PrpSegment { index: 0, .. })
    ));
    let a = |o| l.addr(o).unwrap();
    let list = HostPrpList::alloc(&dma, PAGE).unwrap();
    // SAFETY (all three): the segments lie inside `buf`, which outlives the data pointers.
    let mid_start =
        unsafe { b.from_segments(&[(a(0), PAGE), (a(PAGE + 8), 100)], PAGE + 100, Some(&list)) };
    assert!(
        matches!(mid_start, Err(Error::PrpSegment { index: 1, .. })),
        "{mid_start:?}"
    );
    let first_end = unsafe { b.from_segments(&[(a(0), 100), (a(PAGE), 100)], 200, None) };
    assert!(matches!(
        first_end,
        Err(Error::PrpSegment {
            index: 0,
            len: 100,
            ..
        })
    ));
    let mid_end = unsafe {
        b.from_segments(
            &[(a(0), PAGE), (a(PAGE), 8), (a(2 * PAGE), PAGE)],
            2 * PAGE + 8,
            Some(&list),
        )
    };
    assert!(matches!(mid_end, Err(Error::PrpSegment { index: 1, .. })));
    assert!(b.borrow(&l, 0..0, None).is_err());
    // SAFETY: nothing was submitted.
    unsafe { dma.quarantine().release() };
}

fn cmb_info(loc: u32) -> CmbInfo {
    let bars = BarTable::new()
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        .with(2, unsafe { PciBar::new(CMB_BUS, 1 << 20) }.unwrap())
        .unwrap();
    cmb::decode(
        Cmbloc::from_raw(2 | loc),
        Cmbsz::from_raw(1 << 20 | 1 << 8 | 0x1d),
        &bars,
        CmbScheme::Cmbmsc,
        ProbeOptions::default(),
    )
    .unwrap()
}

#[test]
fn the_cmb_rule_prp1_decides() {
    let info = cmb_info(3 << 5); // CDPMLS and CDPCILS advertised, as QEMU does
    let pool = CmbPool::new(MockIo::new(1 << 20), info, Cc::default()).unwrap();
    let dma = MockDma::new(1 << 20);
    let b = PrpBuilder::new(page(), Some(CmbRule::new(&info, true)));
    // all in the CMB, list in the CMB: fine
    let data = pool.alloc_data_buf(4 * PAGE).unwrap();
    let clist = CmbPrpList::alloc(&pool, PAGE).unwrap();
    let d = b.borrow_p2p(&data, 0..4 * PAGE, Some(&clist)).unwrap();
    assert_eq!(d.prp1().get(), data.bus_addr());
    // all in the CMB, list in host memory: fine too (the list's place does not matter)
    let hlist = HostPrpList::alloc(&dma, PAGE).unwrap();
    assert!(b.borrow_p2p(&data, 0..4 * PAGE, Some(&hlist)).is_ok());
    // host data, list in the CMB: fine
    let host = dma.alloc(4 * PAGE).unwrap();
    assert!(b.borrow(&host.lease(), 0..4 * PAGE, Some(&clist)).is_ok());
    // a mix: PRP1 in the CMB, PRP2 in host memory
    let h = host.lease().addr(0).unwrap();
    // SAFETY: both segments are owned buffers that outlive the (never submitted) pointers.
    let mix = unsafe { b.from_segments(&[(data.dma_addr(), PAGE), (h, PAGE)], 2 * PAGE, None) };
    assert!(
        matches!(mix, Err(Error::CmbPlacement { entry: PrpEntry::Prp2, addr, .. }) if addr == h.get()),
        "{mix:?}"
    );
    // PRP1 in host memory, list entry 1 in the CMB
    let segs = [(h, 2 * PAGE), (data.dma_addr(), PAGE)];
    // SAFETY: as above.
    let mix = unsafe { b.from_segments(&segs, 3 * PAGE, Some(&hlist)) };
    assert!(
        matches!(
            mix,
            Err(Error::CmbPlacement {
                entry: PrpEntry::List(1),
                ..
            })
        ),
        "{mix:?}"
    );
    // trusting CDPMLS allows the mix
    let trusting = PrpBuilder::new(page(), Some(CmbRule::new(&info, true).trusting_cdpmls()));
    // SAFETY: as above.
    assert!(unsafe { trusting.from_segments(&segs, 3 * PAGE, Some(&hlist)) }.is_ok());
    // the CMB not enabled: its addresses count as host memory, so the mix is no mix
    let off = PrpBuilder::new(page(), Some(CmbRule::new(&info, false)));
    // SAFETY: as above.
    assert!(unsafe { off.from_segments(&segs, 3 * PAGE, Some(&hlist)) }.is_ok());
    // SAFETY: nothing was submitted.
    unsafe { dma.quarantine().release() };
}

#[test]
fn cmb_lists_need_cmbsz_lists() {
    let bars = BarTable::new()
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        .with(2, unsafe { PciBar::new(CMB_BUS, 1 << 20) }.unwrap())
        .unwrap();
    let info = cmb::decode(
        Cmbloc::from_raw(2),
        Cmbsz::from_raw(1 << 20 | 1 << 8 | 0x19), // SQS, RDS, WDS; no LISTS
        &bars,
        CmbScheme::Legacy,
        ProbeOptions::default(),
    )
    .unwrap();
    let pool = CmbPool::new(MockIo::new(1 << 20), info, Cc::default()).unwrap();
    let buf = pool.pool().alloc(PAGE, PAGE).unwrap();
    assert!(matches!(
        CmbPrpList::new(buf, &info),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn a_lent_p2p_buffer_is_quarantined_when_abandoned() {
    let info = cmb_info(0);
    let pool = CmbPool::new(MockIo::new(1 << 20), info, Cc::default()).unwrap();
    let b = PrpBuilder::new(page(), Some(CmbRule::new(&info, true)));
    let free = pool.stats().free;
    let prp = b
        .lend_p2p::<std::sync::Arc<MockIo>, _, _>(
            pool.alloc_data_buf(4 * PAGE).unwrap(),
            4 * PAGE,
            |n| CmbPrpList::alloc(&pool, n),
        )
        .unwrap();
    let req = prp.into_request(|d| nvm::write(&ns(), 0, 32, d)).unwrap();
    drop(req); // abandoned in flight: data and list stay allocated
    assert_eq!(pool.stats().free, free - 5 * PAGE);
    let prp = b
        .lend_p2p::<std::sync::Arc<MockIo>, _, _>(pool.alloc_data_buf(PAGE).unwrap(), PAGE, no_list)
        .unwrap();
    let (_, lent) = prp.into_parts();
    // SAFETY: nothing was submitted.
    unsafe { lent.complete() };
    assert_eq!(pool.stats().free, free - 5 * PAGE, "completed: freed");
    let _ = MOCK_PAGE;
}

proptest! {
    /// Random segmentations of a scattered buffer (cut at page boundaries, a random first
    /// offset and length): the entries, walked as a controller does, reconstruct exactly the
    /// device ranges of the bytes.
    #[test]
    fn entries_reconstruct_the_bytes(run in 1usize..5, pages in 1usize..40, off in 0usize..1024, tail in 0usize..4096) {
        let dma = MockDma::new(4 << 20).with_scatter(run);
        let buf = dma.alloc(pages * PAGE).unwrap();
        let start = off * 4;
        let end = (pages * PAGE).saturating_sub(tail).max(start + 4);
        let b = PrpBuilder::new(page(), None);
        let prp = b.lend(buf.lease(), start..end, |n| HostPrpList::alloc(&dma, n)).unwrap();
        let read = |a: u64, out: &mut [u8]| dma.device_read(unsafe_addr(a), out).unwrap();
        let got = merge(&walk(&prp.data(), PAGE, read));
        let want = raw(&buf.lease().segments(start..end).unwrap());
        prop_assert_eq!(got, want);
        // SAFETY: nothing was submitted.
        unsafe { prp.into_parts().1.complete() };
        unsafe { dma.quarantine().release() };
    }
}

mod identify_data {
    use iomem::nvme::identify::{
        ActiveNamespaces, IdentifyController, IdentifyNamespace, Namespace,
    };
    use iomem::nvme::Error;
    use proptest::prelude::*;

    fn ctrl_bytes() -> Vec<u8> {
        let mut c = vec![0u8; 4096];
        c[0..2].copy_from_slice(&0x1b36u16.to_le_bytes());
        c[2..4].copy_from_slice(&0x1af4u16.to_le_bytes());
        c[4..24].copy_from_slice(b"serial-1            ");
        c[24..64].copy_from_slice(&[b' '; 40]);
        c[24..34].copy_from_slice(b"QEMU NVMe ");
        c[64..72].copy_from_slice(b"7.2.0\0\0\0");
        c[77] = 7;
        c[78..80].copy_from_slice(&3u16.to_le_bytes());
        c[80..84].copy_from_slice(&0x0001_0400u32.to_le_bytes());
        c[256..258].copy_from_slice(&0x010au16.to_le_bytes());
        c[512] = 0x66;
        c[513] = 0x44;
        c[516..520].copy_from_slice(&256u32.to_le_bytes());
        c
    }

    #[test]
    fn controller_fields() {
        let c = IdentifyController::decode(&ctrl_bytes()).unwrap();
        assert_eq!(
            (c.vid, c.ssvid, c.cntlid, c.ver, c.oacs, c.nn),
            (0x1b36, 0x1af4, 3, 0x10400, 0x10a, 256)
        );
        assert_eq!(
            (c.serial(), c.model(), c.firmware()),
            ("serial-1", "QEMU NVMe", "7.2.0")
        );
        assert_eq!(c.max_transfer(4096).unwrap(), Some(512 * 1024));
        let mut b = ctrl_bytes();
        b[77] = 0;
        assert_eq!(
            IdentifyController::decode(&b)
                .unwrap()
                .max_transfer(4096)
                .unwrap(),
            None
        );
        b[77] = 200;
        assert!(IdentifyController::decode(&b)
            .unwrap()
            .max_transfer(4096)
            .is_err());
        b[512] = 0x55;
        assert!(matches!(
            IdentifyController::decode(&b),
            Err(Error::BadData { field: "SQES", .. })
        ));
        assert!(IdentifyController::decode(&b[..100]).is_err());
    }

    fn ns_bytes(lbads: u8) -> Vec<u8> {
        let mut n = vec![0u8; 4096];
        n[0..8].copy_from_slice(&1000u64.to_le_bytes());
        n[8..16].copy_from_slice(&900u64.to_le_bytes());
        n[16..24].copy_from_slice(&10u64.to_le_bytes());
        n[25] = 1; // two formats
        n[26] = 1; // the second
        n[128 + 2] = 9;
        n[132..136].copy_from_slice(&(u32::from(lbads) << 16 | 8).to_le_bytes());
        n
    }

    #[test]
    fn namespace_fields_and_refusals() {
        let n = IdentifyNamespace::decode(&ns_bytes(12)).unwrap();
        assert_eq!(
            (n.nsze, n.ncap, n.nuse, n.formats.len()),
            (1000, 900, 10, 2)
        );
        assert_eq!(n.format().unwrap().ms, 8);
        let c = IdentifyController::decode(&ctrl_bytes()).unwrap();
        let ns = Namespace::new(1, &n, &c, 4096).unwrap();
        assert_eq!(
            (ns.nsid(), ns.lba_size(), ns.lba_count(), ns.max_transfer()),
            (1, 4096, 1000, Some(512 * 1024))
        );
        for lbads in [8, 17] {
            assert!(matches!(
                IdentifyNamespace::decode(&ns_bytes(lbads)),
                Err(Error::BadData { field: "LBADS", .. })
            ));
        }
        let mut b = ns_bytes(12);
        b[26] = 5; // past NLBAF
        assert!(matches!(
            IdentifyNamespace::decode(&b),
            Err(Error::BadData { field: "FLBAS", .. })
        ));
        assert!(IdentifyNamespace::decode(&[0u8; 4096]).is_err(), "inactive");
        assert!(Namespace::from_parts(0, 512, 1, None).is_err());
        assert!(Namespace::from_parts(1, 1000, 1, None).is_err());
    }

    #[test]
    fn active_namespace_list() {
        let mut b = vec![0u8; 4096];
        for (i, id) in [1u32, 2, 7].iter().enumerate() {
            b[4 * i..4 * i + 4].copy_from_slice(&id.to_le_bytes());
        }
        assert_eq!(ActiveNamespaces::decode(&b).unwrap().ids(), [1, 2, 7]);
        b[12..16].copy_from_slice(&3u32.to_le_bytes());
        assert!(ActiveNamespaces::decode(&b).is_err(), "not ascending");
    }

    proptest! {
        /// Decoding never panics, whatever the bytes.
        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..4200)) {
            let _ = IdentifyController::decode(&bytes).map(|c| (c.serial().len(), c.max_transfer(4096)));
            let _ = IdentifyNamespace::decode(&bytes);
            let _ = ActiveNamespaces::decode(&bytes);
        }
    }
}
