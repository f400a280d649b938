//! A minimal user-space NVMe driver on Linux, built on `iomem`'s NVMe layer: the reference for
//! driving a real controller with the crate, and the end-to-end test CI runs inside a QEMU
//! guest (`.ci/qemu/run.sh`).
//!
//! What it does, in order:
//! 1. finds the NVMe controller (PCI class `0x010802`) through sysfs, unbinds a kernel driver,
//!    turns on memory decoding and bus mastering, maps BAR0 (registers, uncached);
//! 2. brings the controller up with [`Controller::new`] (reset within CAP.TO, admin queues in
//!    locked host memory with pagemap addresses — no IOMMU, so physical = bus address — enable,
//!    Identify), enables the Controller Memory Buffer and builds a pool over its BAR
//!    (write-combining);
//! 3. creates I/O queue pair 1 with its submission queue in the CMB and its completion queue
//!    in a 2 MiB huge page, and pair 2 entirely in huge pages (1024 entries, or CAP.MQES + 1);
//! 4. writes a pattern from a CMB buffer to namespace 1 and reads it back into another CMB
//!    buffer (64 KiB: PRP lists in the CMB too), then the same through host memory, then reads
//!    the host-written blocks into the CMB, comparing each time;
//! 5. measures `memcpy_toio` into the CMB per ordering strategy and mapping, deletes the queue
//!    pairs and shuts the controller down.
//!
//! With `fault` it instead turns memory decoding off behind the driver's back and expects the
//! next command to end in a typed error ([`nvme::Error::DeviceGone`], or a timeout) rather than
//! a hang, and the CMB pool's accounting to balance once the buffers are dropped. With
//! `unplug` it keeps reading until the host hot-unplugs the controller (QEMU `device_del`) and
//! expects the same. With `bound` it expects a kernel driver to own the controller at first:
//! mapping a BAR then fails with [`MapError::DriverOwnsBar`].
//!
//! It **overwrites** 128 KiB of namespace 1 from LBA 64: run it only against a scratch disk.
//! Run as root:
//! `cargo run --release --features linux --example nvme_e2e -- [full|fault|unplug] [bound] [0000:01:00.0]`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iomem::dma::{DmaProvider, DmaRegion};
use iomem::map::linux::{BarMapping, DmaBuffer, Error as MapError, PagemapDma, PciDevice};
use iomem::nvme::cmb::{BarTable, CmbPool, ProbeOptions};
use iomem::nvme::cmd::{nvm, Lent, Request};
use iomem::nvme::ctrl::{Config, Controller, Done, QueueMem};
use iomem::nvme::identify::Namespace;
use iomem::nvme::prp::{CmbPrpList, HostPrpList, PrpListMem};
use iomem::nvme::regs::{ControllerRegs, CQ_ENTRY_SIZE, SQ_ENTRY_SIZE};
use iomem::nvme::sq::HostSqRing;
use iomem::p2p::P2pBuf;
use iomem::{nvme, Backend, Barrier, Caching, Error, IoMem, Mmio, Strategy};

/// PCI class code of an NVMe controller (mass storage, non-volatile memory, NVMe).
const NVME_CLASS: u32 = 0x01_08_02;
/// Entries of each I/O queue (or CAP.MQES + 1 if smaller).
const IO_QUEUE_ENTRIES: u16 = 1024;
/// Size of each Write/Read round trip.
const TRANSFER: usize = 64 * 1024;
/// First LBA written.
const SLBA: u64 = 64;

type Res<T> = Result<T, Box<dyn std::error::Error>>;
/// The controller: BAR0 shared by it and its queue pairs, DMA memory from pagemap.
type Ctrl = Controller<Arc<BarMapping>, Mmio>;

/// A Read or Write of [`TRANSFER`] bytes at `slba` with the data in the CMB buffer `buf` and
/// the PRP list in the CMB (`list`), which the caller keeps.
///
/// # Safety
/// `buf` and `list` stay allocated, and lent to no other command, until the command completes.
unsafe fn cmb_rw(
    ctrl: &Ctrl,
    ns: &Namespace,
    write: bool,
    slba: u64,
    buf: &P2pBuf<BarMapping>,
    list: &dyn PrpListMem,
) -> Res<Request<Mmio>> {
    let data = ctrl.prp().borrow_p2p(buf, 0..TRANSFER, Some(list))?;
    // CAST: at most 128 blocks.
    let nlb = (TRANSFER / ns.lba_size()) as u32;
    let cmd = if write {
        nvm::write(ns, slba, nlb, data)?
    } else {
        nvm::read(ns, slba, nlb, data)?
    };
    // SAFETY: the command names `buf` and `list`, which the caller keeps (its contract).
    Ok(unsafe { Request::new(cmd, Lent::none()) })
}

/// A Read or Write of [`TRANSFER`] bytes at `slba` lending the host region `buf` (and a PRP
/// list from `host`) to the command until its completion.
fn host_rw(
    ctrl: &Ctrl,
    ns: &Namespace,
    host: &PagemapDma,
    write: bool,
    slba: u64,
    buf: &DmaRegion<Mmio>,
) -> Res<Request<Mmio>> {
    // CAST: at most 128 blocks.
    let nlb = (TRANSFER / ns.lba_size()) as u32;
    let list = host.alloc(ctrl.page_size().bytes())?; // 512 entries: enough for TRANSFER
    let prp = ctrl
        .prp()
        .lend(buf.lease(), 0..TRANSFER, |_| Ok(HostPrpList::new(list)))?;
    Ok(prp.into_request(|d| {
        if write {
            nvm::write(ns, slba, nlb, d)
        } else {
            nvm::read(ns, slba, nlb, d)
        }
    })?)
}

/// The test pattern for `seed`.
fn pattern(seed: u32) -> Vec<u8> {
    // CAST: TRANSFER fits in 32 bits; the byte is the low byte of the mix, by intent.
    (0..TRANSFER as u32)
        .map(|i| (i ^ seed).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect()
}

/// Compares read-back bytes with what was written.
fn check(what: &str, back: &[u8], want: &[u8]) -> Res<()> {
    match back.iter().zip(want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: read-back differs from the pattern at byte {i}").into()),
    }
}

/// 4 KiB random-offset reads per second through `qp` with `depth` commands in flight, for
/// about `secs` seconds: the library's polled driver (one doorbell per batch of new commands,
/// one CQ head write per batch of completions).
fn iops<R: iomem::nvme::sq::SqRing>(
    ctrl: &Ctrl,
    qp: &mut iomem::nvme::ctrl::QueuePair<R, Mmio, Arc<BarMapping>>,
    ns: &Namespace,
    host: &PagemapDma,
    depth: usize,
    secs: f64,
) -> Res<f64> {
    let bufs: Vec<DmaRegion<Mmio>> = (0..depth)
        .map(|_| host.alloc(4096))
        .collect::<Result<_, _>>()?;
    let blocks = (4096 / ns.lba_size()) as u64;
    let span = ns.lba_count() / blocks;
    let (mut issued, mut done, mut failed) = (0u64, 0u64, 0u64);
    let t = Instant::now();
    while t.elapsed().as_secs_f64() < secs || issued > done {
        while qp.in_flight() < depth && t.elapsed().as_secs_f64() < secs {
            let buf = &bufs[(issued % depth as u64) as usize];
            // CAST: a block count of one 4 KiB page.
            let slba = (issued.wrapping_mul(2_654_435_761) % span) * blocks;
            let prp = ctrl
                .prp()
                .lend(buf.lease(), 0..4096, iomem::nvme::prp::no_list)?;
            qp.push(prp.into_request(|d| nvm::read(ns, slba, blocks as u32, d))?)?;
            issued += 1;
        }
        qp.ring()?;
        qp.poll(depth, |d| {
            done += 1;
            failed += u64::from(!d.status.is_success());
        })?;
    }
    if failed > 0 {
        return Err(format!("{failed} of {done} reads failed").into());
    }
    Ok(done as f64 / t.elapsed().as_secs_f64())
}

/// 4 KiB reads per second through the kernel's driver: `O_DIRECT` reads of one block at a time
/// from `dev` (what `dd iflag=direct bs=4k` does), for about `secs` seconds.
fn kernel_iops(dev: &str, secs: f64) -> Res<f64> {
    use std::os::unix::fs::{FileExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
        .open(dev)?;
    // O_DIRECT needs a block-aligned buffer.
    let layout = std::alloc::Layout::from_size_align(4096, 4096)?;
    let mut buf = AlignedBuf::new(layout);
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed().as_secs_f64() < secs {
        f.read_exact_at(buf.as_mut(), (n % 256) * 4096)?;
        n += 1;
    }
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// A zeroed heap buffer with an alignment of its own.
struct AlignedBuf(*mut u8, std::alloc::Layout);

impl AlignedBuf {
    fn new(layout: std::alloc::Layout) -> Self {
        // SAFETY: the layout has a non-zero size (4 KiB).
        let p = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!p.is_null(), "out of memory");
        AlignedBuf(p, layout)
    }
    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: `self.0` points to `self.1.size()` initialised (zeroed) bytes owned by this
        // value, borrowed mutably for the slice's life.
        unsafe { std::slice::from_raw_parts_mut(self.0, self.1.size()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout, freed once.
        unsafe { std::alloc::dealloc(self.0, self.1) }
    }
}

/// Whether `r` is the error a vanished device must produce.
fn expect_gone(what: &str, r: Result<Done, nvme::Error>, waited: Duration) -> Res<()> {
    match r {
        Err(e @ (nvme::Error::DeviceGone { .. } | nvme::Error::Timeout { .. })) => {
            println!(
                "{what}: command ended in {e:?} after {} ms: {e}",
                waited.as_millis()
            );
            Ok(())
        }
        other => Err(format!("{what}: expected DeviceGone or Timeout, got {other:?}").into()),
    }
}

fn run(mode: Mode, addr: Option<&str>, expect_driver: bool) -> Res<()> {
    let t_start = Instant::now();
    let dev = match addr {
        Some(a) => PciDevice::open(a)?,
        None => {
            let scan = PciDevice::find_by_class(NVME_CLASS)?;
            for (entry, e) in &scan.skipped {
                println!("skipped {entry}: {e}");
            }
            let first = scan.devices.into_iter().next();
            first.ok_or("no NVMe controller (PCI class 0x010802) found")?
        }
    };
    println!("device {} driver {:?}", dev.address(), dev.driver()?);
    if let Some(driver) = dev.driver()? {
        // The kernel's own driver, for scale: QD1 4 KiB direct reads of its block device.
        match kernel_iops("/dev/nvme0n1", 1.0) {
            Ok(r) => println!("IOPS kernel driver ({driver}) QD1 4 KiB O_DIRECT: {r:.0}"),
            Err(e) => println!("IOPS kernel driver: /dev/nvme0n1 not readable: {e}"),
        }
        // While a kernel driver owns the BARs the kernel refuses to map them; the error says so.
        match dev.map_bar(0, Caching::Uncached) {
            Err(e @ MapError::DriverOwnsBar { .. }) => println!("while {driver} is bound: {e}"),
            Err(e) => return Err(e.into()),
            Ok(_) if expect_driver => {
                return Err(format!("BAR0 mapped while {driver} is bound").into())
            }
            Ok(_) => {}
        }
        dev.unbind()?;
        println!("unbound {driver}: driver now {:?}", dev.driver()?);
    } else if expect_driver {
        return Err("expected a kernel driver bound to the controller".into());
    }
    let bars = BarTable::from_sysfs(&dev)?;
    let before = dev.command()?;
    println!(
        "PCI COMMAND {before:#06x} -> {:#06x}",
        dev.enable(true, true)?
    );

    // Bring-up: admin queues and the Identify page in locked host memory.
    let bar0 = Arc::new(dev.map_bar(0, Caching::Uncached)?);
    let host = PagemapDma::new();
    let t = Instant::now();
    let admin = QueueMem::host(&host, 16)?;
    let mut ctrl: Ctrl =
        Controller::new(bar0.clone(), admin, host.alloc(4096)?, Config::default())?;
    let (cap, id) = (ctrl.cap(), ctrl.identify());
    println!(
        "controller up in {} us: CAP {:#018x} (MQES {}, TO {} ms); VID {:#06x} SN {:?} MN {:?} \
         FR {:?} MDTS {} NN {}",
        t.elapsed().as_micros(),
        cap.raw(),
        cap.mqes(),
        cap.timeout_ms(),
        id.vid,
        id.serial(),
        id.model(),
        id.firmware(),
        id.mdts,
        id.nn
    );
    let ns = ctrl.identify_namespace(1)?;
    let nlb = (TRANSFER / ns.lba_size()) as u64;
    println!(
        "namespace 1: {} LBAs of {} bytes",
        ns.lba_count(),
        ns.lba_size()
    );
    if SLBA + 2 * nlb > ns.lba_count() {
        return Err("namespace too small for the round trips".into());
    }

    // The CMB: enabled, mapped write-combining, a pool over it. From now on every data pointer
    // the controller's PRP builder makes keeps the CMB rule (a command's data all in the CMB
    // or none of it).
    let info = ctrl.enable_cmb(&bars, ProbeOptions::default())?;
    let info = info.ok_or("the controller has no CMB")?;
    println!("CMB: {info:?}");
    let cmb_bar = dev.map_bar(usize::from(info.bir), Caching::WriteCombining)?;
    let pool = CmbPool::new(cmb_bar, info, ctrl.cc())?;
    let pool_initial = pool.stats().free;

    // I/O queue pair 1: SQ in the CMB, CQ in a huge page; pair 2: both in huge pages.
    let huge = PagemapDma::huge_pages();
    let n = IO_QUEUE_ENTRIES.min(u16::try_from(cap.max_queue_entries()).unwrap_or(u16::MAX));
    let cq_ring = || huge.alloc_contiguous(usize::from(n) * CQ_ENTRY_SIZE);
    let mut qp1 = ctrl.create_io_pair(QueueMem::new(pool.alloc_sq(n.into())?, cq_ring()?, n))?;
    // Pair 1's commands read into the CMB, and the CPU reads that data after each completion:
    // the pair orders those device loads after the completion (borrowed buffers lend nothing
    // it could see).
    qp1.set_device_data(true);
    let sq2 = HostSqRing::new(huge.alloc_contiguous(usize::from(n) * SQ_ENTRY_SIZE)?)?;
    let mut qp2 = ctrl.create_io_pair(QueueMem::new(sq2, cq_ring()?, n))?;
    println!(
        "I/O SQ 1 in the CMB at {}, CQ 1 in a huge page at {}; SQ 2 at {}, CQ 2 at {}: {} entries",
        qp1.sq().dma_addr(),
        qp1.cq().dma_addr(),
        qp2.sq().dma_addr(),
        qp2.cq().dma_addr(),
        qp1.sq().entries()
    );

    // CMB round trip: data and PRP lists in the CMB.
    let list_bytes = ctrl
        .page_size()
        .list_bytes(TRANSFER / ctrl.page_size().bytes());
    let (wbuf, rbuf) = (
        pool.alloc_write_buf(TRANSFER)?,
        pool.alloc_read_buf(TRANSFER)?,
    );
    let (wlist, rlist) = (
        CmbPrpList::alloc(&pool, list_bytes)?,
        CmbPrpList::alloc(&pool, list_bytes)?,
    );
    let data = pattern(0);
    wbuf.io().copy_from_slice(&data)?;
    rbuf.io().fill(0xee)?;
    let t = Instant::now();
    // SAFETY: (so for every `cmb_rw` below) the CMB buffers and lists are this function's,
    // kept past each `execute`, which returns after the completion; after an error the
    // example stops, and nothing reuses the pool.
    qp1.execute(unsafe { cmb_rw(&ctrl, &ns, true, SLBA, &wbuf, &wlist) }?)?;
    let t_write = t.elapsed();
    // SAFETY: as above.
    qp1.execute(unsafe { cmb_rw(&ctrl, &ns, false, SLBA, &rbuf, &rlist) }?)?;
    let mut back = vec![0u8; TRANSFER];
    rbuf.io().copy_to_slice(&mut back)?;
    check("CMB round trip", &back, &data)?;
    println!(
        "round trip: {TRANSFER} bytes at LBA {SLBA} from and back into the CMB, PRP lists in the \
         CMB: identical (write {} us, write + read {} us)",
        t_write.as_micros(),
        t.elapsed().as_micros()
    );

    // Host round trip on pair 2: data and lists in locked RAM, lent to each command.
    let hslba = SLBA + nlb;
    let hdata = pattern(0x5a5a);
    let (hw, hr) = (host.alloc(TRANSFER)?, host.alloc(TRANSFER)?);
    hw.mem().copy_from_slice(&hdata)?;
    hr.mem().fill(0xee)?;
    qp2.execute(host_rw(&ctrl, &ns, &host, true, hslba, &hw)?)?;
    qp2.execute(host_rw(&ctrl, &ns, &host, false, hslba, &hr)?)?;
    hr.mem().copy_to_slice(&mut back)?;
    check("host round trip", &back, &hdata)?;
    // SAFETY: as above.
    qp1.execute(unsafe { cmb_rw(&ctrl, &ns, false, hslba, &rbuf, &rlist) }?)?;
    rbuf.io().copy_to_slice(&mut back)?;
    check("host-written blocks read into the CMB", &back, &hdata)?;
    println!(
        "round trip: {TRANSFER} bytes at LBA {hslba} from and back into host memory (PRP lists of \
         pagemap addresses, queue pair 2 in huge pages), then into the CMB: identical"
    );

    if mode == Mode::Full {
        // The polled driver's 4 KiB read rate, host memory, queue pair 2.
        for depth in [1, 32] {
            let r = iops(&ctrl, &mut qp2, &ns, &host, depth, 1.0)?;
            println!("IOPS library driver QD{depth} 4 KiB reads (host memory): {r:.0}");
        }
        // memcpy_toio throughput into the CMB, per strategy and mapping.
        let cmb_uc = dev.map_bar(usize::from(info.bir), Caching::Uncached)?;
        let scratch = pool.alloc_data_buf(256 * 1024)?;
        let range = scratch.offset()..scratch.offset() + scratch.len();
        let uc = cmb_uc
            .io()
            .subslice(range)?
            .with_policy(scratch.io().policy());
        let ram = DmaBuffer::new(scratch.len())?;
        for s in [Strategy::Conservative, Strategy::Relaxed, Strategy::Batched] {
            println!(
                "memcpy_toio ({} KiB, {s:?}): CMB write-combining {:.1} MB/s, CMB uncached {:.1} \
                 MB/s, host RAM {:.1} MB/s",
                scratch.len() / 1024,
                throughput(scratch.io(), s)?,
                throughput(uc, s)?,
                throughput(ram.io().with_policy(scratch.io().policy()), s)?
            );
        }
        drop(scratch);
        ctrl.delete_io_pair(qp1)?;
        ctrl.delete_io_pair(qp2)?;
        // SAFETY: every command that used the lists completed (`execute` returned), and their
        // queues are deleted.
        drop(unsafe { (wlist.complete(), rlist.complete()) });
        drop((wbuf, rbuf));
        let free = pool.stats().free;
        if free != pool_initial {
            return Err(format!("pool accounting: {free} free, initially {pool_initial}").into());
        }
        ctrl.shutdown()?;
        let ms = t_start.elapsed().as_millis();
        println!("queues deleted, controller shut down, pool balanced; total {ms} ms");
        return Ok(());
    }

    let what = if mode == Mode::Fault {
        "fault"
    } else {
        "unplug"
    };
    let t = Instant::now();
    let r = if mode == Mode::Fault {
        // The device goes away: memory decoding off. Doorbells vanish, reads return 0 (QEMU)
        // or all-ones (hardware).
        println!(
            "fault: PCI COMMAND = {:#06x} (memory space off)",
            dev.enable(false, true)?
        );
        // SAFETY: as above; `rbuf` and `rlist` are kept until this function returns.
        qp1.execute(unsafe { cmb_rw(&ctrl, &ns, false, SLBA, &rbuf, &rlist) }?)
    } else {
        // The host removes the device when it sees this line; read until a command fails.
        println!("IOMEM-E2E-UNPLUG-READY");
        let mut reads = 0u32;
        loop {
            // SAFETY: as above; `rbuf` and `rlist` are kept until this function returns.
            let r = qp1.execute(unsafe { cmb_rw(&ctrl, &ns, false, SLBA, &rbuf, &rlist) }?);
            if r.is_err() || t.elapsed() > Duration::from_secs(20) {
                println!("unplug: {reads} reads completed before the device went away");
                break r;
            }
            reads += 1;
            std::thread::sleep(Duration::from_millis(2));
        }
    };
    expect_gone(what, r, t.elapsed())?;
    match ctrl.check() {
        Err(e @ nvme::Error::DeviceGone { .. }) => println!("{what}: controller check: {e}"),
        other => return Err(format!("{what}: controller check gave {other:?}").into()),
    }
    // Pair 1's SQ ring is in the CMB; dropped while its queue may still exist on the controller
    // (it could not be deleted), the ring is quarantined in the pool, not freed.
    let sq_ring = qp1.sq().entries() as usize * SQ_ENTRY_SIZE;
    drop((qp1, qp2));
    if mode == Mode::Fault {
        // Bring it back: decoding on; dropping the controller disables it.
        dev.enable(true, true)?;
        drop(ctrl);
        let regs = ControllerRegs::new(bar0.io())?;
        let deadline = Instant::now() + Duration::from_millis(cap.timeout_ms());
        while regs.csts()?.rdy() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(100));
        }
        let csts = regs.csts()?;
        println!(
            "fault: decoding back on, controller reset: CSTS {:#010x}",
            csts.raw()
        );
        if csts.rdy() {
            return Err("fault: the controller did not reset".into());
        }
    } else {
        match PciDevice::open(dev.address()) {
            Err(e @ MapError::NoDevice { .. }) => println!("unplug: sysfs: {e}"),
            Ok(_) => {
                return Err(format!("unplug: {} is still listed in sysfs", dev.address()).into())
            }
            Err(e) => return Err(e.into()),
        }
    }
    // SAFETY: the controller was reset (fault) or removed from the system (unplug): nothing
    // reads the lists any more.
    drop(unsafe { (wlist.complete(), rlist.complete()) });
    drop((wbuf, rbuf));
    let stats = pool.stats();
    println!(
        "{what}: pool {} bytes free, {} quarantined (the abandoned SQ ring), {} allocations \
         after dropping every buffer (initially {pool_initial} free)",
        stats.free, stats.quarantined, stats.allocations
    );
    if stats.free + sq_ring != pool_initial
        || stats.quarantined != sq_ring
        || stats.allocations != 0
    {
        return Err("pool accounting does not balance".into());
    }
    println!("total {} ms", t_start.elapsed().as_millis());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// `memcpy_toio` throughput into `dst` under `strategy`, in MB/s: the best of up to 30 copies
/// within about 150 ms (the best round is the one least disturbed by the rest of the machine).
fn throughput<B: Backend>(dst: IoMem<'_, [u8], B>, strategy: Strategy) -> Result<f64, Error> {
    let dst = dst.with_strategy(strategy);
    let src: Vec<u8> = (0..dst.len()).map(|i| i as u8).collect();
    let mut best = f64::MAX;
    let start = Instant::now();
    for _ in 0..30 {
        let t = Instant::now();
        iomem::memcpy_toio(&dst, &src)?;
        // Publish the copy as a doorbell would (drains write-combining buffers).
        dst.backend().barrier(Barrier::WcFlush);
        best = best.min(t.elapsed().as_secs_f64());
        if start.elapsed() > Duration::from_millis(150) {
            break;
        }
    }
    Ok(dst.len() as f64 / best / 1e6)
}

/// What to do after the round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Measure `memcpy_toio` throughput, disable the controller.
    Full,
    /// Turn memory decoding off and expect a typed error.
    Fault,
    /// Keep reading until the device is hot-unplugged (by the host), expect a typed error.
    Unplug,
}

fn main() -> ExitCode {
    let mut mode = Mode::Full;
    let mut addr = None;
    let mut expect_driver = false;
    for a in std::env::args().skip(1) {
        match a.as_str() {
            "bound" => expect_driver = true,
            "full" => mode = Mode::Full,
            "fault" => mode = Mode::Fault,
            "unplug" => mode = Mode::Unplug,
            a if a.contains(':') => addr = Some(a.to_string()),
            other => {
                eprintln!(
                    "nvme_e2e: unknown argument {other:?} (full | fault | unplug, bound, <pci address>)"
                );
                return ExitCode::from(2);
            }
        }
    }
    match run(mode, addr.as_deref(), expect_driver) {
        Ok(()) => {
            println!("nvme_e2e: PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nvme_e2e: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
