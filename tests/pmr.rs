//! The Persistent Memory Region against the model: probe, enable (the NRDY wait within PMRTO,
//! a vanished device), PMRMSC and CBAI, the pool's RDS/WDS gating, Read into and Write from a
//! PMR buffer through `nvme::ctrl` with no host data pointer, the data pointer rule for PMR
//! addresses, and the PMRSTS flush (what a power loss would leave).
#![cfg(feature = "model")]

#[path = "support/nvme.rs"]
mod support;

use iomem::nvme::cmb::{BarTable, PciBar};
use iomem::nvme::model::PmrConfig;
use iomem::nvme::pmr::{self, PmrInfo, PmrPool, PMRTO_ZERO_WAIT_MS};
use iomem::nvme::prp::PageSize;
use iomem::nvme::regs::{PmrHealth, Pmrcap, Pmrebs, Pmrsts};
use iomem::IoMem;
use support::*;

/// Where the model's PMR BAR is (qboot put it here next to a CMB) and how big it is.
const PMR_BUS: u64 = 0x1_0100_0000;
const PMR_SIZE: u64 = 256 << 10;

fn pmr_model(pmr: PmrConfig) -> ModelConfig {
    ModelConfig {
        pmr: Some(pmr),
        ..ModelConfig::default()
    }
}

fn in_pmr(addr: u64) -> bool {
    (PMR_BUS..PMR_BUS + PMR_SIZE).contains(&addr)
}

/// A model with `pmr`, a controller on it, and the PMR probed (not enabled).
fn up_pmr(dma: &MockDma, pmr: PmrConfig) -> (NvmeModel, Ctrl, PmrInfo) {
    let (model, ctrl) = up_with(pmr_model(pmr), dma);
    let info = pmr::probe(&ctrl.regs().unwrap(), &model.bars())
        .unwrap()
        .expect("the model has a PMR");
    (model, ctrl, info)
}

fn qemu() -> PmrConfig {
    PmrConfig::new(PMR_SIZE, PMR_BUS)
}

#[test]
fn probe_reads_qemus_pmr_and_a_controller_without_one_has_none() {
    let dma = MockDma::new(4 << 20);
    let (_model, _ctrl, info) = up_pmr(&dma, qemu());
    assert_eq!(
        (info.bir, info.size(), info.bus_addr()),
        (4, PMR_SIZE, PMR_BUS)
    );
    assert!(info.rds && info.wds && info.cmss);
    assert_eq!(info.pmrcap.pmrwbm(), 2);
    assert!(info.flushes_on_pmrsts_read());
    assert_eq!((info.timeout_ms, info.elasticity_buffer), (0, 0));
    assert_eq!(info.ready_timeout_ms(), PMRTO_ZERO_WAIT_MS);

    let (model, ctrl) = up(&dma);
    let regs = ctrl.regs().unwrap();
    assert!(!regs.cap().unwrap().pmrs());
    assert_eq!(pmr::probe(&regs, &model.bars()).unwrap(), None);
}

#[test]
fn enable_turns_the_bar_and_the_memory_space_on_and_disable_off() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, info) = up_pmr(&dma, qemu());
    let regs = ctrl.regs().unwrap();
    let bar = model.pmr_bar().unwrap();
    let io = IoMem::new(&*bar);
    io.try_write32(0, 0xdead_beef).unwrap();
    assert_eq!(
        io.try_read32(0).unwrap(),
        0,
        "a disabled PMR reads 0, drops writes"
    );

    let sts = pmr::enable(&regs, &info).unwrap();
    assert!(!sts.nrdy());
    assert_eq!(pmr::health(sts).unwrap(), PmrHealth::Normal);
    assert!(regs.pmrctl().unwrap().en());
    let msc = regs.pmrmsc().unwrap();
    assert_eq!((msc.cmse(), msc.cba()), (true, PMR_BUS));
    io.try_write32(0, 0xdead_beef).unwrap();
    assert_eq!(io.try_read32(0).unwrap(), 0xdead_beef);

    pmr::disable(&regs, &info).unwrap();
    assert!(regs.pmrsts().unwrap().nrdy());
    assert_eq!(io.try_read32(0).unwrap(), 0);
    // A flush of a disabled PMR is refused: it persists nothing.
    match pmr::flush(&regs, &info) {
        Err(Error::BadRegister {
            reg: "PMRSTS", why, ..
        }) => assert!(why.contains("NRDY")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn enable_waits_for_nrdy_within_pmrto() {
    let dma = MockDma::new(4 << 20);
    let slow = PmrConfig {
        pmrto: 1, // 500 ms
        ready_delay: Duration::from_millis(60),
        ..qemu()
    };
    let (_m, ctrl, info) = up_pmr(&dma, slow);
    assert_eq!(info.ready_timeout_ms(), 500);
    let (r, took) = timed(|| pmr::enable(&ctrl.regs().unwrap(), &info));
    assert!(!r.unwrap().nrdy());
    assert!(took >= Duration::from_millis(60), "{took:?}");

    let never = PmrConfig {
        ready_delay: Duration::MAX,
        ..slow
    };
    let (_m, ctrl, info) = up_pmr(&dma, never);
    let (r, took) = timed(|| pmr::enable(&ctrl.regs().unwrap(), &info));
    match r {
        Err(Error::WaitTimeout { what, ms: 500 }) => assert!(what.contains("NRDY = 0")),
        other => panic!("{other:?}"),
    }
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(2),
        "{took:?}"
    );
}

#[test]
fn a_vanished_device_ends_the_wait_at_once() {
    let dma = MockDma::new(4 << 20);
    for v in [Vanish::Zeros, Vanish::AllOnes] {
        let (model, ctrl, info) = up_pmr(&dma, qemu());
        model.inject(Fault::Vanish(v));
        match pmr::enable(&ctrl.regs().unwrap(), &info) {
            Err(Error::DeviceGone { .. }) => {}
            other => panic!("{v:?}: {other:?}"),
        }
        // A flush of a vanished device is no flush either.
        match pmr::flush(&ctrl.regs().unwrap(), &info) {
            Err(Error::DeviceGone { .. }) => {}
            other => panic!("{v:?}: {other:?}"),
        }
    }
    // Gone in the middle of a wait that would last 60 s.
    let never = PmrConfig {
        pmrto: 120,
        ready_delay: Duration::MAX,
        ..qemu()
    };
    let (model, ctrl, info) = up_pmr(&dma, never);
    assert_eq!(info.ready_timeout_ms(), 60_000);
    let m = model.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        m.inject(Fault::Vanish(Vanish::Zeros));
    });
    let (r, took) = timed(|| pmr::enable(&ctrl.regs().unwrap(), &info));
    t.join().unwrap();
    assert!(matches!(r, Err(Error::DeviceGone { .. })), "{r:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[test]
fn a_cba_the_controller_refuses_sets_cbai() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, info) = up_pmr(&dma, qemu());
    let regs = ctrl.regs().unwrap();
    pmr::enable(&regs, &info).unwrap();
    // The same PMR registers decoded against other BARs (a PmrInfo comes only from `decode`).
    let at = |bus: u64, size: u64| {
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        let bar = unsafe { PciBar::new(bus, size) }.unwrap();
        let bars = BarTable::new().with(usize::from(info.bir), bar).unwrap();
        pmr::decode(info.pmrcap, info.pmrebs, &bars).unwrap()
    };
    let wraps = at(0xffff_ffff_ffff_f000, 0x800);
    match pmr::enable_memory_space(&regs, &wraps) {
        Err(Error::BadRegister {
            reg: "PMRSTS", why, ..
        }) => assert!(why.contains("CBAI")),
        other => panic!("{other:?}"),
    }
    let odd = at(PMR_BUS + 0x800, PMR_SIZE);
    assert!(matches!(
        pmr::enable_memory_space(&regs, &odd),
        Err(Error::Core(iomem::Error::InvalidArgument(_)))
    ));
    let bars = model.bars();
    let no_cmss = pmr::decode(
        Pmrcap::decode(info.pmrcap.raw() & !(1 << 24 | 1 << 4 | 1 << 3)).unwrap(), // no CMSS, RDS, WDS
        info.pmrebs,
        &bars,
    )
    .unwrap();
    assert!(!no_cmss.cmss);
    assert!(matches!(
        pmr::enable_memory_space(&regs, &no_cmss),
        Err(Error::Unsupported { .. })
    ));
}

#[test]
fn the_pool_hands_out_data_buffers_only_as_rds_and_wds_allow() {
    let dma = MockDma::new(4 << 20);
    for (rds, wds) in [(true, true), (true, false), (false, true), (false, false)] {
        let cfg = PmrConfig { rds, wds, ..qemu() };
        let (model, ctrl, info) = up_pmr(&dma, cfg);
        assert_eq!((info.rds, info.wds), (rds, wds));
        let pool = PmrPool::new(model.pmr_bar().unwrap(), info, ctrl.cc()).unwrap();
        assert_eq!(pool.alloc_read_buf(4096).is_ok(), rds);
        assert_eq!(pool.alloc_write_buf(4096).is_ok(), wds);
        assert_eq!(pool.alloc_data_buf(4096).is_ok(), rds && wds);
        let any = pool.alloc(8192).unwrap(); // the CPU's own use: always
        assert!(in_pmr(any.bus_addr()) && any.bus_addr() % 4096 == 0);
        for r in [
            pool.alloc_read_buf(1),
            pool.alloc_write_buf(1),
            pool.alloc_data_buf(1),
        ] {
            if let Err(e) = r {
                assert!(matches!(e, Error::Unsupported { .. }), "{e:?}");
            }
        }
    }
}

#[test]
fn bad_register_values_are_typed_errors() {
    let bars = BarTable::new()
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        .with(4, unsafe { PciBar::new(PMR_BUS, 1 << 20) }.unwrap())
        .unwrap();
    let good = 1u32 << 24 | 2 << 10 | 4 << 5 | 1 << 4 | 1 << 3;
    assert!(pmr::decode(Pmrcap::decode(good).unwrap(), Pmrebs::from_raw(0), &bars).is_ok());
    for (raw, why) in [
        (good | 2 << 8, "PMRTU"),        // reserved time unit
        (good & !(0xf << 10), "PMRWBM"), // no write barrier mechanism
        (good & !(1 << 24), "CMSS"),     // RDS/WDS without CMSS
        (u32::MAX, "vanished"),          // all-ones
    ] {
        match Pmrcap::decode(raw) {
            Err(Error::BadRegister {
                reg: "PMRCAP",
                why: w,
                ..
            }) => assert!(w.contains(why)),
            Err(Error::DeviceGone { reg: "PMRCAP", .. }) => assert_eq!(why, "vanished"),
            other => panic!("{raw:#x}: {other:?}"),
        }
    }
    let with_bir = |bir: u32| Pmrcap::decode(good & !(7 << 5) | bir << 5).unwrap();
    for bir in [0, 1, 6, 7] {
        match pmr::decode(with_bir(bir), Pmrebs::from_raw(0), &bars) {
            Err(Error::BadRegister {
                reg: "PMRCAP", why, ..
            }) => assert!(why.contains("BIR")),
            other => panic!("BIR {bir}: {other:?}"),
        }
    }
    match pmr::decode(with_bir(2), Pmrebs::from_raw(0), &bars) {
        Err(Error::BadRegister { why, .. }) => assert!(why.contains("not a memory BAR")),
        other => panic!("{other:?}"),
    }
    // A BAR of size 0, or one that wraps, does not exist (PciBar::new refuses it).
    for (bus, size) in [(PMR_BUS, 0), (u64::MAX - 0xfff, 1 << 20)] {
        // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
        let bar = unsafe { PciBar::new(bus, size) };
        assert!(matches!(bar, Err(iomem::Error::InvalidArgument(_))));
    }
    // PMREBS: 4 MiB of elasticity buffer; a reserved size unit.
    let info = pmr::decode(with_bir(4), Pmrebs::from_raw(4 << 8 | 2), &bars).unwrap();
    assert_eq!(info.elasticity_buffer, 4 << 20);
    assert!(pmr::decode(with_bir(4), Pmrebs::from_raw(4 << 8 | 4), &bars).is_err());
    // PMRTO in minutes.
    let minutes = Pmrcap::decode(good | 1 << 8 | 3 << 16).unwrap();
    assert_eq!(minutes.timeout_ms(), 180_000);
    // PMRSTS health, and a reserved HSTS.
    for (hsts, want) in [(1, "restore error"), (2, "read only"), (3, "unreliable")] {
        match pmr::health(Pmrsts::decode(hsts << 9).unwrap()) {
            Err(Error::BadRegister { why, .. }) => assert!(why.contains(want), "{why}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(pmr::health(Pmrsts::decode(0x01).unwrap()).is_err()); // ERR
    assert!(Pmrsts::decode(5 << 9).is_err());
}

/// A controller with the PMR enabled, namespace 1, a host I/O pair and a pool over the PMR.
fn up_io_pmr(dma: &MockDma) -> (NvmeModel, Ctrl, PmrInfo, Namespace, Qp, PmrPool<Io>) {
    let (model, mut ctrl, info) = up_pmr(dma, qemu());
    let enabled = ctrl.enable_pmr(&model.bars()).unwrap().unwrap();
    assert_eq!(enabled, info); // the builder now counts the PMR as the controller's own memory
    let pool = PmrPool::new(model.pmr_bar().unwrap(), info, ctrl.cc()).unwrap();
    let ns = ctrl.identify_namespace(1).unwrap();
    let qp = ctrl
        .create_io_pair(QueueMem::host(dma, 16).unwrap())
        .unwrap();
    (model, ctrl, info, ns, qp, pool)
}

#[test]
fn write_from_and_read_into_the_pmr_through_the_controller() {
    let dma = MockDma::new(8 << 20);
    let (model, mut ctrl, info, ns, mut qp, pool) = up_io_pmr(&dma);
    let mut last_read = (0, Vec::new());
    for pages in [2usize, 3] {
        let len = pages * 4096;
        let data = pattern(len, pages as u8);
        let src = pool.alloc_write_buf(len).unwrap();
        src.io()
            .subslice(..len)
            .unwrap()
            .copy_from_slice(&data)
            .unwrap();
        let dst = pool.alloc_read_buf(len).unwrap();
        let (src_bus, dst_bus) = (src.bus_addr(), dst.bus_addr());
        let nlb = (len / 512) as u32;
        let mark = model.log().len();
        for (write, buf) in [(true, src), (false, dst)] {
            let req: Req = ctrl
                .prp()
                .lend_p2p(buf, len, |n| HostPrpList::alloc(&dma, n))
                .unwrap()
                .into_request(|d| rw(&ns, write, 16, nlb, d))
                .unwrap();
            qp.execute(req).unwrap();
        }
        assert_eq!(model.read_lbas(16, nlb), data);
        let off = (dst_bus - PMR_BUS) as usize;
        let mut back = vec![0u8; len];
        pool.io()
            .subslice(off..off + len)
            .unwrap()
            .copy_to_slice(&mut back)
            .unwrap();
        assert_eq!(back, data);
        last_read = (off, data);
        let log = model.log();
        let io: Vec<_> = log[mark..].iter().filter(|p| p.qid == qp.qid()).collect();
        assert_eq!(io.len(), 2);
        for (p, base) in io.iter().zip([src_bus, dst_bus]) {
            assert_eq!(p.status, 0);
            // Every data pointer is in the PMR: PRP1, and PRP2 or every list entry.
            assert_eq!(p.prps.prp1, base);
            if pages == 2 {
                assert_eq!((p.prps.prp2, p.prps.list.len()), (base + 4096, 0));
            } else {
                assert!(!in_pmr(p.prps.prp2), "the list is in host memory");
                assert_eq!(p.prps.list, [base + 4096, base + 8192]);
            }
            let data_ptrs = p.prps.list.iter().chain(Some(&p.prps.prp1));
            assert!(data_ptrs.copied().all(in_pmr), "{:?}", p.prps);
        }
    }
    // Read data is persistent after a flush, like the CPU's writes.
    let (off, data) = last_read;
    assert_ne!(
        model.pmr_persisted().unwrap()[off..off + data.len()],
        data[..]
    );
    pmr::flush(&ctrl.regs().unwrap(), &info).unwrap();
    let persisted = model.pmr_persisted().unwrap();
    assert_eq!(persisted.len() as u64, PMR_SIZE);
    assert_eq!(persisted[off..off + data.len()], data[..]);
    ctrl.delete_io_pair(qp).unwrap();
    assert_eq!(pool.stats().allocations, 0);
}

#[test]
fn prp1_decides_for_pmr_addresses_as_for_the_cmb() {
    let dma = MockDma::new(8 << 20);
    let (model, _ctrl, _info, ns, mut qp, pool) = up_io_pmr(&dma);
    let pmr_page = pool.alloc_data_buf(4096).unwrap();
    let host = dma.alloc(4096).unwrap();
    let lease = host.lease();
    let blind = PrpBuilder::new(PageSize::new(4096).unwrap(), None);
    let host_seg = (lease.addr(0).unwrap(), 4096);
    let pmr_seg = (pmr_page.dma_addr(), 4096);
    for segs in [[pmr_seg, host_seg], [host_seg, pmr_seg]] {
        // SAFETY: both pages are owned by this test and outlive the command, which completes
        // (with an error) before they are dropped; the device may write both (a Read).
        let d = unsafe { blind.from_segments(&segs, 8192, None) }.unwrap();
        let read = nvm::read(&ns, 0, 16, d).unwrap();
        // SAFETY: as above: the pages outlive the command, lent to no other.
        let cid = qp
            .submit(unsafe { Request::new(read, Lent::none()) })
            .unwrap();
        match qp.wait(cid) {
            Err(Error::CommandFailed { status, .. }) => {
                assert_eq!((status.code(), status.raw()), (Code::InvalidCmbUse, 0x4012));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(model.log().last().unwrap().status, 0x4012);
    }
    // SAFETY: the command completed; the device no longer uses the host page.
    unsafe { lease.complete() };
}

#[test]
fn a_pmrsts_read_makes_the_cpus_writes_persistent() {
    let dma = MockDma::new(4 << 20);
    let (model, ctrl, info) = up_pmr(&dma, qemu());
    let regs = ctrl.regs().unwrap();
    pmr::enable(&regs, &info).unwrap();
    let pool = PmrPool::new(model.pmr_bar().unwrap(), info, ctrl.cc()).unwrap();
    let data = pattern(8192, 7);
    pool.io()
        .subslice(4096..4096 + 8192)
        .unwrap()
        .copy_from_slice(&data)
        .unwrap();
    let before = model.stats().pmr_flushes;
    assert_ne!(
        &model.pmr_persisted().unwrap()[4096..4096 + 8192],
        &data[..]
    );
    let sts = pool.flush(&regs).unwrap();
    assert_eq!(pmr::health(sts).unwrap(), PmrHealth::Normal);
    assert_eq!(
        &model.pmr_persisted().unwrap()[4096..4096 + 8192],
        &data[..]
    );
    assert_eq!(model.stats().pmr_flushes, before + 1);
    // The barrier before the read was issued through BAR0's backend.
    assert!(model.bar0().barriers().contains(&iomem::Barrier::Mb));

    // A controller whose only mechanism is a PMR memory read: `pmr::flush` says so, the pool
    // reads the PMR instead.
    let cfg = PmrConfig {
        pmrwbm: 1,
        ..qemu()
    };
    let (model, ctrl, info) = up_pmr(&dma, cfg);
    let regs = ctrl.regs().unwrap();
    pmr::enable(&regs, &info).unwrap();
    assert!(matches!(
        pmr::flush(&regs, &info),
        Err(Error::Unsupported { .. })
    ));
    let pool = PmrPool::new(model.pmr_bar().unwrap(), info, ctrl.cc()).unwrap();
    pool.flush(&regs).unwrap();
}

#[test]
fn the_controllers_prp_builder_knows_the_pmr_next_to_the_cmb() {
    use iomem::nvme::cmb::{CmbScheme, ProbeOptions};
    use iomem::nvme::model::CmbConfig;
    let dma = MockDma::new(8 << 20);
    let model_config = ModelConfig {
        pmr: Some(qemu()),
        cmb: Some(CmbConfig::new(1 << 20, CmbScheme::Cmbmsc)),
        ..ModelConfig::default()
    };
    let (model, mut ctrl) = up_with(model_config, &dma);
    let host = dma.alloc(2 * 4096).unwrap();
    let lease = host.lease();
    // Before the PMR is enabled its addresses are not the controller's: a PMR page after a host
    // PRP1 is not refused by the builder (the controller would DMA to the BAR as to any peer).
    let cmb = ctrl
        .enable_cmb(&model.bars(), ProbeOptions::default())
        .unwrap()
        .unwrap();
    let host_seg = (lease.addr(0).unwrap(), 4096);
    let pmr_seg = || {
        // SAFETY: a made-up page inside the model's PMR, never given to a device (the
        // builder only computes pointers from it here).
        (
            unsafe { iomem::dma::DmaAddr::from_raw(PMR_BUS + 0x2000) },
            4096,
        )
    };
    // SAFETY: as above: nothing is submitted.
    let mixed = unsafe { ctrl.prp().from_segments(&[host_seg, pmr_seg()], 8192, None) };
    assert!(mixed.is_ok(), "{mixed:?}");
    let info = ctrl.enable_pmr(&model.bars()).unwrap().expect("a PMR");
    assert!(info.cmss);
    // Now it is: PRP1 in host memory refuses a PMR page, PRP1 in the PMR refuses a host page,
    // and PMR and CMB pages mix (controller memory both, as QEMU's nvme_map_addr allows).
    // SAFETY: as above.
    let refused = unsafe { ctrl.prp().from_segments(&[host_seg, pmr_seg()], 8192, None) };
    assert!(
        matches!(refused, Err(Error::CmbPlacement { .. })),
        "{refused:?}"
    );
    // SAFETY: as above.
    let refused = unsafe { ctrl.prp().from_segments(&[pmr_seg(), host_seg], 8192, None) };
    assert!(
        matches!(refused, Err(Error::CmbPlacement { .. })),
        "{refused:?}"
    );
    // SAFETY: a made-up page inside the CMB; nothing is submitted.
    let cmb_seg = (
        unsafe { iomem::dma::DmaAddr::from_raw(cmb.bus_addr() + 0x1000) },
        4096,
    );
    // SAFETY: as above.
    let both = unsafe { ctrl.prp().from_segments(&[pmr_seg(), cmb_seg], 8192, None) };
    assert!(both.is_ok(), "{both:?}");
    // SAFETY: nothing was submitted.
    unsafe { lease.complete() };
}
