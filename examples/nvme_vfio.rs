//! The NVMe driver of `nvme_e2e` over VFIO instead of sysfs: the controller behind an IOMMU, its
//! BAR0 mapped through the VFIO device file, every queue and buffer in host memory at IOVAs
//! (`VFIO_IOMMU_MAP_DMA`), none in huge pages. Run by CI in a QEMU guest with `intel-iommu`
//! (`.ci/qemu/run.sh vfio`).
//!
//! 1. finds the NVMe controller; opens it through VFIO — if it is not bound to `vfio-pci` yet,
//!    prints the typed error and binds it (`driver_override` + `drivers_probe`);
//! 2. resets it (`VFIO_DEVICE_RESET`), turns memory decoding and bus mastering on, maps BAR0
//!    (uncached: vfio-pci maps BARs so), brings the controller up with admin queues and the
//!    Identify page at IOVAs;
//! 3. creates an I/O queue pair of 1024 entries (or CAP.MQES + 1): a 64 KiB submission queue
//!    and a 16 KiB completion queue, each one run of IOVAs over scattered base pages;
//! 4. writes 64 KiB from host memory to namespace 1 and reads it back (PRP lists at IOVAs);
//! 5. if the CMB BAR is mappable through VFIO, reads the blocks into the CMB (mapped uncached);
//! 6. with a second controller, opens it in the same container (one IOVA space) and maps its
//!    CMB BAR into the IOMMU at an IOVA, as a peer-to-peer target;
//! 7. drops a lease uncompleted and reclaims the quarantine: the region is unmapped from the
//!    IOMMU and freed, its IOVAs retired; deletes the pair and shuts the controller down.
//!
//! It **overwrites** 64 KiB of namespace 1 from LBA 64: run it only against a scratch disk.
//! Run as root: `cargo run --release --features vfio --example nvme_vfio -- [0000:01:00.0]`.
//!
//! `nvme_vfio expect no-iommu-group|group-not-viable` checks instead that opening the first
//! controller fails with that typed error (CI's vfio-errors runs): without an IOMMU, and with
//! two controllers in one IOMMU group (behind a PCIe-to-PCI bridge) of which the second stays
//! bound to the kernel's nvme driver — then binds that one too and expects the group to open.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use iomem::dma::{DmaAddr, DmaProvider, DmaRegion};
use iomem::map::linux::{BarMapping, PciDevice};
use iomem::map::vfio::{
    bar_region, bind_vfio_pci, Container, Error as VfioError, VfioDevice, VfioDma,
};
use iomem::nvme::cmb::{BarTable, CmbPool, ProbeOptions};
use iomem::nvme::cmd::{nvm, Lent, Request};
use iomem::nvme::ctrl::{Config, Controller, QueueMem};
use iomem::nvme::identify::Namespace;
use iomem::nvme::prp::{CmbPrpList, HostPrpList};
use iomem::nvme::regs::{CQ_ENTRY_SIZE, SQ_ENTRY_SIZE};
use iomem::nvme::sq::HostSqRing;
use iomem::{Caching, Mmio};

/// PCI class code of an NVMe controller.
const NVME_CLASS: u32 = 0x01_08_02;
/// Entries of the I/O queue pair (or CAP.MQES + 1 if smaller).
const IO_QUEUE_ENTRIES: u16 = 1024;
/// Size of the round trip.
const TRANSFER: usize = 64 * 1024;
/// First LBA written.
const SLBA: u64 = 64;

type Res<T> = Result<T, Box<dyn std::error::Error>>;
type Ctrl = Controller<Arc<BarMapping>, Mmio>;

/// A Read or Write of [`TRANSFER`] bytes at `slba` lending the host region `buf` (and a PRP
/// list at IOVAs) to the command until its completion.
fn host_rw(
    ctrl: &Ctrl,
    ns: &Namespace,
    dma: &VfioDma,
    write: bool,
    buf: &DmaRegion<Mmio>,
) -> Res<Request<Mmio>> {
    // CAST: at most 128 blocks.
    let nlb = (TRANSFER / ns.lba_size()) as u32;
    let list = dma.alloc(ctrl.page_size().bytes())?;
    let prp = ctrl
        .prp()
        .lend(buf.lease(), 0..TRANSFER, |_| Ok(HostPrpList::new(list)))?;
    Ok(prp.into_request(|d| {
        if write {
            nvm::write(ns, SLBA, nlb, d)
        } else {
            nvm::read(ns, SLBA, nlb, d)
        }
    })?)
}

/// The test pattern.
fn pattern() -> Vec<u8> {
    // CAST: TRANSFER fits in 32 bits; the byte is the low byte of the mix, by intent.
    (0..TRANSFER as u32)
        .map(|i| (i ^ 0x6a6a).wrapping_mul(2_654_435_761).rotate_right(11) as u8)
        .collect()
}

/// The IOVA of `region`, for printing: read through a lease that is completed at once (a lease
/// dropped uncompleted would quarantine the region).
fn iova(region: &DmaRegion<Mmio>) -> Res<DmaAddr> {
    let lease = region.lease();
    let addr = lease.range(0..region.len())?;
    // SAFETY: the address was given to no device.
    unsafe { lease.complete() };
    Ok(addr)
}

/// Compares read-back bytes with what was written.
fn check(what: &str, back: &[u8], want: &[u8]) -> Res<()> {
    match back.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: read-back differs from the pattern at byte {i}").into()),
    }
}

/// Opens `pci` through VFIO, binding it to vfio-pci first if the typed error says it is not.
fn open(pci: &PciDevice, container: &Arc<Container>) -> Res<VfioDevice> {
    match VfioDevice::open(pci, container) {
        Err(e @ VfioError::NotBoundToVfioPci { .. }) => {
            println!("before binding: {e}");
            let t = Instant::now();
            bind_vfio_pci(pci)?;
            println!(
                "bound {} to {:?} in {} us",
                pci.address(),
                pci.driver()?,
                t.elapsed().as_micros()
            );
            Ok(VfioDevice::open(pci, container)?)
        }
        r => Ok(r?),
    }
}

fn run(addr: Option<&str>) -> Res<()> {
    let t_start = Instant::now();
    let found = PciDevice::find_by_class(NVME_CLASS)?.devices;
    let pci = match addr {
        Some(a) => PciDevice::open(a)?,
        None => found
            .first()
            .cloned()
            .ok_or("no NVMe controller (PCI class 0x010802) found")?,
    };
    println!("device {} driver {:?}", pci.address(), pci.driver()?);
    let container = Container::open()?;
    let dev = open(&pci, &container)?;
    // A second controller, if any, joins the same container: one IOVA space for both.
    let peer = match found.iter().find(|p| p.address() != pci.address()) {
        Some(p) => Some(open(p, &container)?),
        None => None,
    };
    let info = container
        .info()
        .ok_or("no IOMMU info after attaching the group")?;
    println!(
        "VFIO: group {} in a type1v2 container (groups {:?}); IOMMU page sizes {:#x}, IOVA ranges {:x?}",
        dev.group().number(),
        container.groups(),
        info.page_sizes,
        info.iova_ranges
    );
    for r in dev.regions().iter().filter(|r| r.exists()) {
        println!(
            "  region {}: {:#x} bytes at {:#x} in the device file, flags {:#x}{}",
            r.index,
            r.size,
            r.offset,
            r.flags,
            if r.mappable() { " (mmap)" } else { "" }
        );
    }
    if dev.can_reset() {
        let t = Instant::now();
        dev.reset()?;
        println!("VFIO_DEVICE_RESET in {} us", t.elapsed().as_micros());
    }
    let before = dev.command()?;
    println!(
        "PCI COMMAND {before:#06x} -> {:#06x}",
        dev.enable(true, true)?
    );

    let bar0 = Arc::new(dev.map_bar(0)?);
    if bar0.caching() != Caching::Uncached {
        return Err("a VFIO BAR mapping must be uncached".into());
    }
    let dma = VfioDma::new(&container)?;
    // The peer's CMB BAR in the IOMMU (for p2p DMA from this controller; not used here).
    let peer_bar = match &peer {
        Some(p) => {
            p.enable(true, false)?; // its BAR faults while memory decoding is off
            let bar = dma.map_peer_bar(Arc::new(p.map_bar(2)?), p.bar_bus_addr(2)?)?;
            println!(
                "peer {} (group {}, same container: groups {:?}): BAR 2 ({} KiB, uncached VFIO \
                 mmap) mapped at IOVA {:#x}",
                p.address(),
                p.group().number(),
                container.groups(),
                bar.len() / 1024,
                bar.iova()
            );
            Some(bar)
        }
        None => None,
    };
    let t = Instant::now();
    let admin = QueueMem::host(&dma, 16)?;
    let mut ctrl: Ctrl = Controller::new(bar0.clone(), admin, dma.alloc(4096)?, Config::default())?;
    let (asq, acq) = (ctrl.admin().sq().dma_addr(), ctrl.admin().cq().dma_addr());
    let (cap, id) = (ctrl.cap(), ctrl.identify());
    println!(
        "controller up in {} us over VFIO: CAP {:#018x} (MQES {}); VID {:#06x} SN {:?} MN {:?}; \
         admin SQ at IOVA {}, CQ at IOVA {}",
        t.elapsed().as_micros(),
        cap.raw(),
        cap.mqes(),
        id.vid,
        id.serial(),
        id.model(),
        asq,
        acq,
    );
    let ns = ctrl.identify_namespace(1)?;
    if SLBA + (TRANSFER / ns.lba_size()) as u64 > ns.lba_count() {
        return Err("namespace too small for the round trip".into());
    }

    // One I/O pair, 1024 entries: the 64 KiB SQ is 16 scattered base pages, one run of IOVAs.
    let n = IO_QUEUE_ENTRIES.min(u16::try_from(cap.max_queue_entries()).unwrap_or(u16::MAX));
    let sq = HostSqRing::new(dma.alloc_contiguous(usize::from(n) * SQ_ENTRY_SIZE)?)?;
    let cq = dma.alloc_contiguous(usize::from(n) * CQ_ENTRY_SIZE)?;
    let mut qp = ctrl.create_io_pair(QueueMem::new(sq, cq, n))?;
    println!(
        "I/O pair 1: {} entries, SQ ({} KiB) at IOVA {}, CQ ({} KiB) at IOVA {}, base pages, no huge pages",
        qp.sq().entries(),
        usize::from(n) * SQ_ENTRY_SIZE / 1024,
        qp.sq().dma_addr(),
        usize::from(n) * CQ_ENTRY_SIZE / 1024,
        qp.cq().dma_addr()
    );

    // Host round trip.
    let data = pattern();
    let (hw, hr) = (dma.alloc(TRANSFER)?, dma.alloc(TRANSFER)?);
    hw.mem().copy_from_slice(&data)?;
    hr.mem().fill(0xee)?;
    let t = Instant::now();
    qp.execute(host_rw(&ctrl, &ns, &dma, true, &hw)?)?.ok()?;
    let t_write = t.elapsed();
    qp.execute(host_rw(&ctrl, &ns, &dma, false, &hr)?)?.ok()?;
    let t_rt = t.elapsed();
    let mut back = vec![0u8; TRANSFER];
    hr.mem().copy_to_slice(&mut back)?;
    check("host round trip", &back, &data)?;
    println!(
        "round trip: {TRANSFER} bytes at LBA {SLBA} from IOVA {} and back into IOVA {}: identical \
         (write {} us, write + read {} us); {} KiB mapped in the IOMMU",
        iova(&hw)?,
        iova(&hr)?,
        t_write.as_micros(),
        t_rt.as_micros(),
        dma.mapped() / 1024
    );

    // The CMB, if its BAR is mappable through VFIO (uncached: no write-combining there).
    let bars = BarTable::from_vfio(&dev);
    match ctrl.enable_cmb(&bars, ProbeOptions::default())? {
        Some(cmb) if dev.region(bar_region(u32::from(cmb.bir)))?.mappable() => {
            let pool = CmbPool::new(dev.map_bar(u32::from(cmb.bir))?, cmb, ctrl.cc())?;
            let rbuf = pool.alloc_read_buf(TRANSFER)?;
            let list_bytes = ctrl
                .page_size()
                .list_bytes(TRANSFER / ctrl.page_size().bytes());
            let rlist = CmbPrpList::alloc(&pool, list_bytes)?;
            rbuf.io().fill(0xee)?;
            let data_ptr = ctrl.prp().borrow_p2p(&rbuf, 0..TRANSFER, Some(&rlist))?;
            // CAST: at most 128 blocks.
            let nlb = (TRANSFER / ns.lba_size()) as u32;
            let t = Instant::now();
            let read = nvm::read(&ns, SLBA, nlb, data_ptr)?;
            // SAFETY: `rbuf` and `rlist` are kept past `execute`, which returns after the
            // completion (after an error the example stops, reusing neither).
            qp.execute(unsafe { Request::new(read, Lent::none()) })?
                .ok()?;
            let t_read = t.elapsed();
            rbuf.io().copy_to_slice(&mut back)?;
            check("read into the CMB", &back, &data)?;
            println!(
                "CMB (BAR {}, bus {:#x}, mapped uncached through VFIO): the blocks read into the CMB \
                 in {} us: identical",
                cmb.bir,
                cmb.bus_addr(),
                t_read.as_micros()
            );
            // SAFETY: the command that used the list completed (`execute` returned).
            drop(unsafe { rlist.complete() });
        }
        Some(cmb) => println!("CMB in BAR {}: not mappable through VFIO, skipped", cmb.bir),
        None => println!("no CMB"),
    }

    // Quarantine: a lease dropped uncompleted keeps its region mapped; reclaiming unmaps it
    // from the IOMMU, frees the memory and retires the IOVAs.
    let lost = dma.alloc(8192)?;
    let lease = lost.lease();
    let lost_iova = lease.addr(0)?;
    drop((lease, lost)); // as a driver bailing out of a command would
    let (held, mapped) = (dma.quarantine().len(), dma.mapped());
    let n_reclaimed = dma.reclaim();
    println!(
        "quarantine: {held} lease(s) of the region at IOVA {lost_iova} held, {} KiB mapped; \
         reclaimed {n_reclaimed}: {} KiB mapped, {} KiB of IOVA retired",
        mapped / 1024,
        dma.mapped() / 1024,
        dma.retired() / 1024
    );
    if held != 1 || dma.retired() != 8192 || dma.mapped() + 8192 != mapped {
        return Err("reclaiming the quarantine did not unmap the region".into());
    }

    ctrl.delete_io_pair(qp)?;
    ctrl.shutdown()?;
    drop(peer_bar);
    println!(
        "queue pair deleted, controller shut down; total {} ms",
        t_start.elapsed().as_millis()
    );
    Ok(())
}

/// Opens the first controller through VFIO, binding it to vfio-pci first, and expects `what`.
fn expect(what: &str) -> Res<()> {
    let found = PciDevice::find_by_class(NVME_CLASS)?.devices;
    let pci = found.first().ok_or("no NVMe controller found")?;
    let container = Container::open()?;
    if what == "group-not-viable" {
        bind_vfio_pci(pci)?;
    }
    let err = match (what, VfioDevice::open(pci, &container)) {
        (_, Ok(_)) => return Err(format!("{} opened: expected {what}", pci.address()).into()),
        ("no-iommu-group", Err(e @ VfioError::NoIommuGroup { .. })) => e,
        ("group-not-viable", Err(e @ VfioError::GroupNotViable { .. })) => e,
        (_, Err(e)) => return Err(format!("expected {what}, got: {e}").into()),
    };
    println!("IOMEM-VFIO-ERROR {what}: {err}");
    if let VfioError::GroupNotViable { devices, .. } = &err {
        // What the message says to do: bind the others in the group too, then it opens.
        let held: Vec<&str> = devices
            .iter()
            .filter(|(_, d)| d.as_deref().is_some_and(|d| d == "nvme"))
            .map(|(a, _)| a.as_str())
            .collect();
        if held.is_empty() {
            return Err("the message names no device held by the nvme driver".into());
        }
        for a in &held {
            bind_vfio_pci(&PciDevice::open(a)?)?;
        }
        let dev = VfioDevice::open(pci, &container)?;
        println!(
            "after binding {held:?} to vfio-pci: group {} opened, {} regions",
            dev.group().number(),
            dev.regions().iter().filter(|r| r.exists()).count()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, what] = args.as_slice() {
        if cmd == "expect" {
            return report(expect(what));
        }
    }
    let addr = args.first().filter(|a| a.contains(':'));
    report(run(addr.map(String::as_str)))
}

/// PASS or FAIL, as CI's guest runs read it.
fn report(r: Res<()>) -> ExitCode {
    match r {
        Ok(()) => {
            println!("nvme_vfio: PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nvme_vfio: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
