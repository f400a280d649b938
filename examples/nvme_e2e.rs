//! A minimal user-space NVMe driver on Linux, built on `iomem`: the reference for using the
//! crate against a real controller, and the end-to-end test CI runs inside a QEMU guest
//! (`.ci/qemu/run.sh`).
//!
//! What it does, in order:
//! 1. finds the NVMe controller (PCI class `0x010802`) through sysfs, unbinds a kernel driver,
//!    turns on memory decoding and bus mastering in PCI COMMAND, maps BAR0 (registers, uncached);
//! 2. resets the controller (CC.EN = 0, waits for CSTS.RDY = 0 within CAP.TO);
//! 3. enables the Controller Memory Buffer (CMBMSC), maps its BAR write-combining and builds a
//!    pool over it;
//! 4. puts the admin submission queue in the CMB and the admin completion queue in locked host
//!    memory (physical address from `/proc/self/pagemap`; no IOMMU, so physical = bus address);
//! 5. enables the controller, identifies it and namespace 1;
//! 6. creates an I/O completion queue (host memory) and an I/O submission queue (CMB);
//! 7. writes a pattern from a CMB buffer to the namespace, reads it back into another CMB buffer
//!    (64 KiB: the PRP lists live in the CMB too) and compares;
//! 8. measures `memcpy_toio` into the CMB under each ordering strategy and mapping.
//!
//! With the argument `fault` it then turns memory decoding off behind the driver's back and
//! expects the next command to end in a typed error ([`nvme::Error::DeviceGone`] or
//! [`DriverError::Timeout`]) rather than a hang, and the CMB pool's accounting to balance once the
//! buffers are dropped.
//!
//! With `unplug` it keeps reading until the host hot-unplugs the controller (QEMU monitor
//! `device_del`, the controller behind a `pcie-root-port`) and expects the same.
//!
//! With `bound` it expects a kernel driver to own the controller at first, checks that mapping a
//! BAR then fails with [`MapError::DriverOwnsBar`], and unbinds the driver.
//!
//! Every wait has a deadline. Exit code 0 means every check passed.
//!
//! It **overwrites** 128 KiB of namespace 1 from LBA 64: run it only against a scratch disk
//! (CI gives QEMU an empty image). Run as root, on a machine (or guest) whose controller may be
//! taken from the kernel:
//! `cargo run --release --features linux --example nvme_e2e -- [full|fault|unplug] [bound] [0000:01:00.0]`.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use iomem::dma::DmaProvider;
use iomem::map::linux::{BarKind, BarMapping, DmaBuffer, Error as MapError, PagemapDma, PciDevice};
use iomem::nvme;
use iomem::nvme::cmb::{self, BarTable, CmbPool, PciBar, ProbeOptions};
use iomem::nvme::cmd::admin::{self, Cns, Priority};
use iomem::nvme::cmd::nvm::{self, Namespace};
use iomem::nvme::cq::CompletionQueue;
use iomem::nvme::prp::{CmbPrpList, CmbRule, HostPrpList, PageSize, PrpBuilder, PrpListMem};
use iomem::nvme::regs::{
    Aqa, Cap, Cc, ControllerRegs, Csts, QueueBase, CQ_ENTRY_SIZE, SQ_ENTRY_SIZE,
};
use iomem::nvme::sq::{CmbSubmissionQueue, Command, HostSqRing, SqRing, SubmissionQueue};
use iomem::p2p::P2pBuf;
use iomem::{Backend, Barrier, Caching, Error, IoMem, Mmio, Strategy};

/// PCI class code of an NVMe controller (mass storage, non-volatile memory, NVMe).
const NVME_CLASS: u32 = 0x01_08_02;
/// How long one command may take before it is an error.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(5);
/// Entries in every queue this driver creates.
const QUEUE_ENTRIES: u16 = 16;
/// Entries of the I/O queues (or CAP.MQES + 1 if smaller): 16 KiB of completion queue, in a
/// 2 MiB huge page so it is physically contiguous (PC = 1).
const IO_QUEUE_ENTRIES: u16 = 1024;
/// Size of the Write/Read round trip.
const TRANSFER: usize = 64 * 1024;
/// First LBA written.
const SLBA: u64 = 64;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// How the driver's own waits and commands end, besides the library's errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DriverError {
    /// The NVMe layer's error (a core error comes wrapped in it).
    Nvme(nvme::Error),
    /// The controller did not reach the expected state in time.
    Timeout {
        /// What was being waited for.
        what: &'static str,
        /// How long we waited, in milliseconds.
        ms: u64,
    },
    /// The controller completed a command with a failure status.
    CommandFailed {
        /// The command's opcode.
        opcode: u8,
        /// The command's identifier.
        cid: u16,
        /// The completion's status.
        status: nvme::Status,
    },
}

impl From<nvme::Error> for DriverError {
    fn from(e: nvme::Error) -> Self {
        DriverError::Nvme(e)
    }
}

impl From<Error> for DriverError {
    fn from(e: Error) -> Self {
        DriverError::Nvme(e.into())
    }
}

impl std::fmt::Display for DriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            DriverError::Nvme(e) => e.fmt(f),
            DriverError::Timeout { what, ms } => write!(
                f,
                "timed out after {ms} ms waiting for {what}; the controller is stuck or slower \
                 than it claims: reset it"
            ),
            DriverError::CommandFailed {
                opcode,
                cid,
                status,
            } => write!(f, "command {cid} (opcode {opcode:#04x}) failed: {status}"),
        }
    }
}

impl std::error::Error for DriverError {}

// ---------------------------------------------------------------------------------------------
// Commands and completions (NVMe Base Specification, "Submission Queue Entry" and
// "Completion Queue Entry").

// ---------------------------------------------------------------------------------------------
// Queues.

/// A buffer in the CMB, allocated from the pool over the CMB's BAR mapping.
type CmbBuf = P2pBuf<BarMapping>;

/// A submission queue in the CMB, its doorbell in BAR0.
type Sq<'a> = CmbSubmissionQueue<BarMapping, &'a Mmio>;

/// A completion queue in coherent host memory (`DmaMem`), lent to the controller for the
/// queue's life, its head doorbell in BAR0.
type Cq<'a> = CompletionQueue<Mmio, &'a Mmio>;

// ---------------------------------------------------------------------------------------------
// Surprise removal.

/// Whether an enabled controller is still there. A device that is gone (surprise removal, link
/// down, memory decoding off) reads all-ones on real hardware and 0 under QEMU: neither is a
/// valid CSTS for an enabled controller, nor a valid CAP or VS ever.
/// [`nvme::Error::DeviceGone`] for those, [`nvme::Error::BadRegister`] for a fatal or
/// no-longer-ready controller.
fn check_alive<B: Backend>(regs: &ControllerRegs<'_, B>) -> Result<Csts, nvme::Error> {
    let csts = regs.csts()?; // all-ones → DeviceGone
    let raw = csts.raw();
    if csts.cfs() {
        return Err(nvme::Error::BadRegister {
            reg: "CSTS",
            value: raw.into(),
            why: "controller fatal status (CFS) is set",
        });
    }
    if !csts.rdy() {
        // An enabled controller that reads not-ready: gone (all-zeros) or reset under us.
        regs.cap()?; // 0 or all-ones → DeviceGone
        regs.vs()?;
        return Err(nvme::Error::BadRegister {
            reg: "CSTS",
            value: raw.into(),
            why: "the controller is no longer ready (reset behind the driver?)",
        });
    }
    Ok(csts)
}

// ---------------------------------------------------------------------------------------------
// The controller.

struct Controller<'a> {
    regs: ControllerRegs<'a, Mmio>,
    cap: Cap,
}

impl<'a> Controller<'a> {
    /// Whether the controller is still there (see [`check_alive`]).
    fn check_alive(&self) -> Result<Csts, nvme::Error> {
        check_alive(&self.regs)
    }

    /// Waits until CSTS.RDY == `ready`, within CAP.TO.
    fn wait_ready(&self, ready: bool) -> Result<Csts, DriverError> {
        let ms = self.cap.timeout_ms();
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let csts = self.regs.csts()?;
            if csts.rdy() == ready {
                return Ok(csts);
            }
            if csts.cfs() && ready {
                return Err(nvme::Error::BadRegister {
                    reg: "CSTS",
                    value: csts.raw().into(),
                    why: "controller fatal status while enabling",
                }
                .into());
            }
            if Instant::now() > deadline {
                self.regs.cap()?; // a vanished device reads as one, not as a slow controller
                return Err(DriverError::Timeout {
                    what: if ready {
                        "CSTS.RDY = 1 after CC.EN = 1"
                    } else {
                        "CSTS.RDY = 0 after CC.EN = 0"
                    },
                    ms,
                });
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn disable(&self) -> Result<(), DriverError> {
        let cc = self.regs.cc()?;
        if cc.en() {
            self.regs.set_cc(cc.with_en(false));
        }
        self.wait_ready(false)?;
        Ok(())
    }

    /// Submits `cmd` on `sq`, waits for its completion on `cq`. Fails with the command's status,
    /// [`nvme::Error::DeviceGone`] or [`DriverError::Timeout`].
    /// Creates I/O completion queue `cq` and then submission queue `sq` on it, both physically
    /// contiguous (PC = 1), interrupts off.
    fn create_io_pair<R: SqRing>(
        &mut self,
        asq: &mut Sq<'a>,
        acq: &mut Cq<'a>,
        cq: &Cq<'a>,
        sq: &SubmissionQueue<R, &'a Mmio>,
    ) -> Result<(), DriverError> {
        // PC = 1, interrupts off.
        let cmd = admin::create_io_cq(cq.qid(), cq.entries(), cq.dma_addr(), None)?;
        self.execute(asq, acq, cmd)?;
        // Queue sizes come from u16 constants, so they fit.
        let entries = u16::try_from(sq.entries()).unwrap_or(u16::MAX);
        let cmd =
            admin::create_io_sq(sq.qid(), entries, sq.dma_addr(), cq.qid(), Priority::Urgent)?;
        self.execute(asq, acq, cmd)?;
        Ok(())
    }

    fn execute<R: SqRing>(
        &mut self,
        sq: &mut SubmissionQueue<R, &'a Mmio>,
        cq: &mut Cq<'a>,
        cmd: Command,
    ) -> Result<u32, DriverError> {
        // The command identifier is the slot: unique among this queue's outstanding commands.
        let cid = sq.push_with_slot_cid(&cmd)?;
        // The doorbell write is preceded by what the ring's caching needs: a write-combining
        // flush for a ring in a write-combining CMB mapping, even though BAR0 is uncached.
        sq.ring()?;
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        let mut polls = 0u32;
        loop {
            if let Some(c) = cq.pop()? {
                sq.update_head(c.sq_head)?;
                cq.ring_head();
                if c.cid != cid {
                    return Err(nvme::Error::BadRegister {
                        reg: "CQE.CID",
                        value: c.cid.into(),
                        why: "completion for a command that was not outstanding",
                    }
                    .into());
                }
                if !c.status.is_success() {
                    return Err(DriverError::CommandFailed {
                        opcode: cmd.opcode(),
                        cid,
                        status: c.status,
                    });
                }
                // The data the completion announces may be read next, from RAM or from the CMB
                // (MMIO): order the completion's load before them.
                self.regs.bar0().barrier(Barrier::Rmb);
                return Ok(c.result);
            }
            polls += 1;
            if polls % 256 == 0 {
                self.check_alive()?;
            }
            if Instant::now() > deadline {
                self.check_alive()?;
                return Err(DriverError::Timeout {
                    what: "command completion",
                    // CAST: a 5 s constant in milliseconds fits in 64 bits.
                    ms: COMMAND_TIMEOUT.as_millis() as u64,
                });
            }
            if polls > 64 {
                std::thread::sleep(Duration::from_micros(20));
            }
        }
    }
}

/// The device's memory BARs as the CMB code wants them: bus address and size of each; I/O BARs
/// are left out.
fn bar_table(dev: &PciDevice) -> Res<BarTable> {
    let mut table = BarTable::new();
    for b in dev.bars()? {
        if b.kind() == BarKind::Memory {
            table = table.with(b.index(), PciBar::new(b.bus_addr(), b.size())?)?;
        }
    }
    Ok(table)
}

fn ascii(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

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

// ---------------------------------------------------------------------------------------------

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

/// Whether `r` is the error a vanished device must produce.
fn expect_gone<T: std::fmt::Debug>(
    what: &str,
    r: Result<T, DriverError>,
    waited: Duration,
) -> Res<()> {
    match r {
        Err(
            e @ (DriverError::Nvme(nvme::Error::DeviceGone { .. }) | DriverError::Timeout { .. }),
        ) => {
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
            scan.devices
                .into_iter()
                .next()
                .ok_or("no NVMe controller (PCI class 0x010802) found")?
        }
    };
    println!(
        "device {} [{:04x}:{:04x}] class {:#08x} driver {:?}",
        dev.address(),
        dev.vendor_id()?,
        dev.device_id()?,
        dev.class()?,
        dev.driver()?
    );
    if let Some(driver) = dev.driver()? {
        // While a kernel driver owns the BARs the kernel refuses to map them (EINVAL with
        // CONFIG_IO_STRICT_DEVMEM); the typed error says so.
        match dev.map_bar(0, Caching::Uncached) {
            Err(e @ MapError::DriverOwnsBar { .. }) => println!("while {driver} is bound: {e}"),
            Err(e) => return Err(e.into()),
            Ok(_) if expect_driver => {
                return Err(format!("BAR0 mapped although {driver} is bound").into())
            }
            Ok(_) => {}
        }
        dev.unbind()?;
        println!("unbound {driver}: driver now {:?}", dev.driver()?);
    } else if expect_driver {
        return Err("expected a kernel driver bound to the controller".into());
    }
    for b in dev.bars()? {
        println!(
            "  BAR{} cpu {:#x} bus {:#x} size {:#x} {:?}{}{}",
            b.index(),
            b.start(),
            b.bus_addr(),
            b.size(),
            b.kind(),
            if b.is_64bit() { " 64-bit" } else { "" },
            if b.is_prefetchable() {
                " prefetchable"
            } else {
                ""
            },
        );
    }
    let cmd_before = dev.command()?;
    let cmd_after = dev.enable(true, true)?;
    println!("PCI COMMAND {cmd_before:#06x} -> {cmd_after:#06x}");

    // Registers.
    let bar0 = dev.map_bar(0, Caching::Uncached)?;
    let regs = ControllerRegs::new(bar0.io())?;
    let cap = regs.cap()?;
    let vs = regs.vs()?;
    println!(
        "CAP {:#018x} (MQES {}, CQR {}, TO {} ms, DSTRD {}, MPSMIN {}, CMBS {})",
        cap.raw(),
        cap.mqes(),
        cap.cqr(),
        cap.timeout_ms(),
        cap.dstrd(),
        cap.mpsmin_bytes(),
        cap.cmbs()
    );
    println!(
        "VS {:#010x} (NVMe {}.{}.{})",
        vs.raw(),
        vs.major(),
        vs.minor(),
        vs.tertiary()
    );
    println!(
        "CC {:#010x} CSTS {:#010x} (before reset)",
        regs.cc()?.raw(),
        regs.csts()?.raw()
    );
    let mut ctrl = Controller { regs, cap };

    // Reset.
    let t = Instant::now();
    ctrl.disable()?;
    println!("reset: CSTS.RDY = 0 after {} us", t.elapsed().as_micros());

    // The configuration the controller will run with: NVM command set, 4 KiB pages, 64-byte
    // SQ and 16-byte CQ entries. The CMB pool aligns to its page size.
    let page = 4096usize;
    let cc = Cc::from_raw(0)
        .with_css(0)?
        .with_page_size(page as u64)?
        .with_ams(0)?
        .with_queue_entry_sizes(SQ_ENTRY_SIZE, CQ_ENTRY_SIZE)?;
    cc.check_against(cap)?;

    // CMB: probe (CMBMSC.CRE makes CMBLOC/CMBSZ readable on 1.4+), then enable it at its BAR's
    // bus address (CMBMSC.CBA + CMSE).
    println!(
        "CMBLOC {:#010x} CMBSZ {:#010x} (before CMBMSC.CRE)",
        ctrl.regs.cmbloc()?.raw(),
        ctrl.regs.cmbsz()?.raw()
    );
    let info = cmb::probe(&ctrl.regs, &bar_table(&dev)?, ProbeOptions::default())?
        .ok_or("controller has no CMB; start QEMU with cmb_size_mb=16")?;
    println!(
        "CMBLOC {:#010x} (BIR {}, offset {:#x}) CMBSZ {:#010x} ({} MiB, SQS {} CQS {} LISTS {} RDS {} WDS {}, {:?})",
        info.cmbloc.raw(),
        info.bir,
        info.offset,
        info.cmbsz.raw(),
        info.size >> 20,
        info.sqs,
        info.cqs,
        info.lists,
        info.rds,
        info.wds,
        info.scheme
    );
    cmb::enable(&ctrl.regs, &info)?;
    let bir = usize::from(info.bir);
    println!(
        "CMBMSC {:#018x} CMBSTS {:#010x}: CMB bus address {:#x} (BAR{bir} at cpu {:#x})",
        ctrl.regs.cmbmsc()?.raw(),
        ctrl.regs.cmbsts()?.raw(),
        info.bus_addr,
        dev.bar(bir)?.start()
    );
    // The pool owns the write-combining mapping of the CMB's BAR; every buffer keeps it alive.
    let pool = CmbPool::new(dev.map_bar(bir, Caching::WriteCombining)?, info, cc)?;
    let pool_initial = pool.stats().free;
    println!("pool: {pool_initial} bytes free");

    // Admin queues: SQ in the CMB, CQ in host memory.
    let mut asq = Sq::new(
        pool.alloc_sq(QUEUE_ENTRIES.into())?,
        QUEUE_ENTRIES.into(),
        ctrl.regs.bar0().backend(),
        cap,
        0,
    )?;
    let host_dma = PagemapDma::new();
    let cq_bytes = |n: u16| usize::from(n) * CQ_ENTRY_SIZE;
    let mut acq = Cq::new(
        host_dma.alloc_contiguous(cq_bytes(QUEUE_ENTRIES))?,
        QUEUE_ENTRIES,
        ctrl.regs.bar0().backend(),
        cap,
        0,
    )?;
    println!(
        "admin SQ in CMB at bus {:#x}, admin CQ in host memory at {:#x}",
        asq.bus_addr(),
        acq.dma_addr()
    );
    ctrl.regs.set_aqa(Aqa::new(QUEUE_ENTRIES, QUEUE_ENTRIES)?);
    ctrl.regs.set_asq(QueueBase::new(asq.dma_addr())?);
    ctrl.regs.set_acq(QueueBase::new(acq.dma_addr())?);
    ctrl.regs.set_cc(cc.with_en(true));
    let t = Instant::now();
    let csts = ctrl.wait_ready(true)?;
    println!(
        "enabled: CC {:#010x} CSTS {:#010x} after {} us",
        ctrl.regs.cc()?.raw(),
        csts.raw(),
        t.elapsed().as_micros()
    );

    // Data pointers for this controller: its page size, and its CMB's rule (all of a command's
    // data in the CMB or none of it).
    let prps = PrpBuilder::new(PageSize::from_cc(cc), Some(CmbRule::new(&info, true)));

    // Identify controller and namespace 1, into a CMB buffer.
    let ident = pool.alloc_read_buf(page)?;
    let mut data = vec![0u8; page];
    let ident_ptr = prps.borrow_p2p(&ident, 0..page, None)?;
    ctrl.execute(
        &mut asq,
        &mut acq,
        admin::identify(Cns::Controller, 0, ident_ptr)?,
    )?;
    ident.io().copy_to_slice(&mut data)?;
    let mdts = data[77];
    println!(
        "identify: VID {:#06x} SN {:?} MN {:?} FR {:?} MDTS {} NN {}",
        u16::from_le_bytes([data[0], data[1]]),
        ascii(&data[4..24]),
        ascii(&data[24..64]),
        ascii(&data[64..72]),
        mdts,
        u32::from_le_bytes([data[516], data[517], data[518], data[519]])
    );
    if mdts != 0 && (page << mdts) < TRANSFER {
        return Err(format!("MDTS {mdts} is below the {TRANSFER}-byte transfer").into());
    }
    ctrl.execute(
        &mut asq,
        &mut acq,
        admin::identify(Cns::Namespace, 1, ident_ptr)?,
    )?;
    ident.io().copy_to_slice(&mut data)?;
    let nsze = u64::from_le_bytes(data[0..8].try_into()?);
    let flbas = usize::from(data[26] & 0xf);
    let lbads = data[128 + 4 * flbas + 2];
    let lba = 1usize << lbads;
    println!("namespace 1: {nsze} LBAs of {lba} bytes");
    if !(9..=16).contains(&lbads) || TRANSFER % lba != 0 {
        return Err(format!("unexpected LBA size 2^{lbads}").into());
    }
    let nlb = TRANSFER / lba;
    let ns = Namespace::from_parts(1, lba, nsze, None)?;
    // Two round trips, at SLBA and right after it.
    if SLBA + 2 * nlb as u64 > nsze {
        return Err("namespace too small for the round trip".into());
    }
    drop(ident);

    // I/O queues: CQ in host memory, SQ in the CMB (physically contiguous: PC = 1).
    // 1024 entries (or what CAP.MQES allows), the CQ in a huge page: physically contiguous.
    let io_entries = IO_QUEUE_ENTRIES.min(cap.max_queue_entries().try_into().unwrap_or(u16::MAX));
    let huge = PagemapDma::huge_pages();
    let mut iocq = Cq::new(
        huge.alloc_contiguous(cq_bytes(io_entries))?,
        io_entries,
        ctrl.regs.bar0().backend(),
        cap,
        1,
    )?;
    // Commands are copied into the ring without barriers; the doorbell's one barrier publishes
    // them.
    let mut iosq = Sq::new(
        pool.alloc_sq(io_entries.into())?,
        io_entries.into(),
        ctrl.regs.bar0().backend(),
        cap,
        1,
    )?
    .with_strategy(Strategy::Batched);
    ctrl.create_io_pair(&mut asq, &mut acq, &iocq, &iosq)?;
    println!(
        "I/O SQ 1 in CMB at bus {:#x}, I/O CQ 1 in a host huge page at {:#x}: {io_entries} entries each",
        iosq.bus_addr(),
        iocq.dma_addr()
    );

    // I/O queue pair 2 entirely in host memory: SQ and CQ each in a 2 MiB huge page (one run of
    // bus addresses, as PC = 1 needs). The host-memory round trip below runs on it.
    let mut hcq = Cq::new(
        huge.alloc_contiguous(cq_bytes(io_entries))?,
        io_entries,
        ctrl.regs.bar0().backend(),
        cap,
        2,
    )?;
    let hring = HostSqRing::new(huge.alloc_contiguous(usize::from(io_entries) * SQ_ENTRY_SIZE)?)?;
    let mut hsq =
        SubmissionQueue::new(hring, io_entries.into(), ctrl.regs.bar0().backend(), cap, 2)?
            .with_strategy(Strategy::Batched);
    ctrl.create_io_pair(&mut asq, &mut acq, &hcq, &hsq)?;
    println!(
        "I/O SQ 2 and CQ 2 in host huge pages at {} and {:#x}: {io_entries} entries each",
        hsq.dma_addr(),
        hcq.dma_addr()
    );

    // Write a pattern from a CMB buffer, read it back into another, compare.
    let wbuf = pool.alloc_write_buf(TRANSFER)?;
    let rbuf = pool.alloc_read_buf(TRANSFER)?;
    let wlist = CmbPrpList::new(pool.alloc_prp_list(TRANSFER / page - 1)?, pool.info())?;
    let rlist = CmbPrpList::new(pool.alloc_prp_list(TRANSFER / page - 1)?, pool.info())?;
    let pattern: Vec<u8> = (0..TRANSFER)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).rotate_right(13) as u8)
        .collect();
    wbuf.io().copy_from_slice(&pattern)?;
    rbuf.io().fill(0xee)?;
    // CAST: `nlb` is TRANSFER / LBA size, at most 128.
    let nlb32 = nlb as u32;
    // A Read or Write of `nlb` blocks at `slba` with the data in `buf` (the CMB) and the PRP
    // list, if needed, in `list` (the CMB too).
    let rw = |write: bool, slba: u64, buf: &CmbBuf, list: &CmbPrpList<BarMapping>| {
        let data = prps.borrow_p2p(buf, 0..TRANSFER, Some(list as &dyn PrpListMem))?;
        if write {
            nvm::write(&ns, slba, nlb32, data)
        } else {
            nvm::read(&ns, slba, nlb32, data)
        }
    };
    let t = Instant::now();
    ctrl.execute(&mut iosq, &mut iocq, rw(true, SLBA, &wbuf, &wlist)?)?;
    let t_write = t.elapsed();
    let t = Instant::now();
    ctrl.execute(&mut iosq, &mut iocq, rw(false, SLBA, &rbuf, &rlist)?)?;
    let t_read = t.elapsed();
    let mut back = vec![0u8; TRANSFER];
    rbuf.io().copy_to_slice(&mut back)?;
    if back != pattern {
        let first = back.iter().zip(&pattern).position(|(a, b)| a != b);
        return Err(format!("read-back differs from the pattern (first at byte {first:?})").into());
    }
    println!(
        "round trip: {TRANSFER} bytes ({nlb} LBAs at {SLBA}) written from and read back into the CMB, \
         PRP lists in the CMB: identical (write {} us, read {} us)",
        t_write.as_micros(),
        t_read.as_micros()
    );

    // The same through host memory: data and PRP lists in locked RAM, addressed page by page
    // (host pages are not physically contiguous). A command's data pointers are all in the CMB
    // or all in host memory; here they are all in host memory, at the next LBAs.
    let hslba = SLBA + nlb as u64;
    let host_pattern: Vec<u8> = pattern.iter().rev().map(|b| b ^ 0x5a).collect();
    let hw = host_dma.alloc(TRANSFER)?;
    let hr = host_dma.alloc(TRANSFER)?;
    let hwlist = HostPrpList::new(host_dma.alloc(page)?);
    let hrlist = HostPrpList::new(host_dma.alloc(page)?);
    let (hwl, hrl) = (hw.lease(), hr.lease());
    hw.mem().copy_from_slice(&host_pattern)?;
    hr.mem().fill(0xee)?;
    let wdata = prps.borrow(&hwl, 0..TRANSFER, Some(&hwlist))?;
    ctrl.execute(&mut hsq, &mut hcq, nvm::write(&ns, hslba, nlb32, wdata)?)?;
    let rdata = prps.borrow(&hrl, 0..TRANSFER, Some(&hrlist))?;
    ctrl.execute(&mut hsq, &mut hcq, nvm::read(&ns, hslba, nlb32, rdata)?)?;
    // SAFETY: both commands completed (`execute` returned their completions): the controller
    // is done with the data and the lists.
    unsafe {
        hwl.complete();
        hrl.complete();
        hwlist.into_lease().complete();
        hrlist.into_lease().complete();
    }
    hr.mem().copy_to_slice(&mut back)?;
    if back != host_pattern {
        return Err("host-memory read-back differs from the pattern".into());
    }
    // And what host memory wrote, read into the CMB.
    let cmd = rw(false, hslba, &rbuf, &rlist)?;
    ctrl.execute(&mut iosq, &mut iocq, cmd)?;
    rbuf.io().copy_to_slice(&mut back)?;
    if back != host_pattern {
        return Err("CMB read-back of host-written blocks differs".into());
    }
    println!(
        "round trip: {TRANSFER} bytes at LBA {hslba} written from and read back into host memory \
         (DmaMem regions, PRP lists of pagemap addresses, on queue pair 2 in huge pages), then read \
         into the CMB: identical"
    );
    drop((hw, hr));

    if mode == Mode::Full {
        // memcpy_toio throughput into the CMB, per strategy and mapping.
        let cmb_uc = dev.map_bar(bir, Caching::Uncached)?;
        let scratch = pool.alloc_data_buf(256 * 1024)?;
        // The same CMB bytes through the uncached mapping.
        let uc = cmb_uc
            .io()
            .subslice(scratch.offset()..scratch.offset() + scratch.len())?
            .with_policy(scratch.io().policy());
        // Host RAM through the same code path, for scale.
        let ram = DmaBuffer::new(scratch.len())?;
        for s in [Strategy::Conservative, Strategy::Relaxed, Strategy::Batched] {
            println!(
                "memcpy_toio ({} KiB, {s:?}): CMB write-combining {:.1} MB/s, CMB uncached {:.1} MB/s, host RAM {:.1} MB/s",
                scratch.len() / 1024,
                throughput(scratch.io(), s)?,
                throughput(uc, s)?,
                throughput(ram.io().with_policy(scratch.io().policy()), s)?
            );
        }
    } else {
        let what = if mode == Mode::Fault {
            "fault"
        } else {
            "unplug"
        };
        let t = Instant::now();
        let r = if mode == Mode::Fault {
            // The device goes away: memory decoding off. Doorbell writes vanish, reads return 0
            // (QEMU) or all-ones (hardware).
            let cmd = dev.enable(false, true)?;
            println!("fault: PCI COMMAND = {cmd:#06x} (memory space off)");
            ctrl.execute(&mut iosq, &mut iocq, rw(false, SLBA, &rbuf, &rlist)?)
        } else {
            // The host removes the device (QEMU monitor `device_del`) when it sees this line;
            // keep reading until a command fails, for at most 20 s.
            println!("IOMEM-E2E-UNPLUG-READY");
            let mut n = 0u32;
            loop {
                let r = ctrl.execute(&mut iosq, &mut iocq, rw(false, SLBA, &rbuf, &rlist)?);
                if r.is_err() || t.elapsed() > Duration::from_secs(20) {
                    println!("unplug: {n} reads completed before the device went away");
                    break r;
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
        };
        expect_gone(what, r, t.elapsed())?;
        // The registers tell the same story.
        match ctrl.regs.cap() {
            Err(nvme::Error::DeviceGone { reg, value }) => {
                println!("{what}: {reg} reads {value:#x}: a vanished device")
            }
            other => return Err(format!("{what}: CAP decoded as {other:?}").into()),
        }
        drop((wbuf, rbuf, wlist, rlist, iosq, asq));
        let stats = pool.stats();
        println!(
            "{what}: pool {} bytes free, {} allocations after dropping every buffer (initially {pool_initial} free)",
            stats.free, stats.allocations
        );
        if stats.free != pool_initial || stats.allocations != 0 {
            return Err("pool accounting does not balance".into());
        }
        if mode == Mode::Fault {
            // Bring it back: decoding on, reset.
            dev.enable(true, true)?;
            ctrl.disable()?;
            println!(
                "fault: memory space back on, controller reset: CSTS {:#010x}",
                ctrl.regs.csts()?.raw()
            );
        } else {
            match PciDevice::open(dev.address()) {
                Err(e @ MapError::NoDevice { .. }) => println!("unplug: sysfs: {e}"),
                Ok(_) => println!("unplug: {} is still listed in sysfs", dev.address()),
                Err(e) => return Err(e.into()),
            }
        }
        println!("total {} ms", t_start.elapsed().as_millis());
        return Ok(());
    }

    drop((wbuf, rbuf, wlist, rlist));
    ctrl.disable()?;
    drop((iosq, asq));
    let free = pool.stats().free;
    if free != pool_initial {
        return Err(format!("pool accounting: {free} free, initially {pool_initial}").into());
    }
    println!(
        "controller disabled; pool balanced; total {} ms",
        t_start.elapsed().as_millis()
    );
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use iomem::backend::MockIo;
    use iomem::nvme::regs::offsets;

    /// BAR0 of an enabled, ready NVMe 1.4 controller.
    fn bar0() -> MockIo {
        let m = MockIo::new(0x2000);
        m.poke(offsets::CAP, &0x0240_1820_0f01_07ffu64.to_le_bytes());
        m.poke(offsets::VS, &0x0001_0400u32.to_le_bytes());
        m.poke(offsets::CC, &0x0046_0001u32.to_le_bytes());
        m.poke(offsets::CSTS, &1u32.to_le_bytes());
        m
    }

    #[test]
    fn a_ready_controller_is_alive() {
        let m = bar0();
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        assert!(check_alive(&regs).unwrap().rdy());
    }

    #[test]
    fn a_removed_device_is_gone_whether_it_reads_zeros_or_ones() {
        for fill in [0x00u8, 0xff] {
            let m = bar0();
            m.poke(0, &[fill; 0x100]);
            let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
            match check_alive(&regs) {
                Err(nvme::Error::DeviceGone { .. }) => {}
                other => panic!("reads of {fill:#x}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_fatal_or_reset_controller_is_a_bad_register_not_gone() {
        let m = bar0();
        m.poke(offsets::CSTS, &3u32.to_le_bytes()); // RDY | CFS
        let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
        assert!(matches!(
            check_alive(&regs),
            Err(nvme::Error::BadRegister { reg: "CSTS", .. })
        ));
        m.poke(offsets::CSTS, &0u32.to_le_bytes()); // reset behind our back, CAP still sane
        assert!(matches!(
            check_alive(&regs),
            Err(nvme::Error::BadRegister { reg: "CSTS", .. })
        ));
    }
}
