//! `p2p_copy`: copies an LBA range from one NVMe controller to another without the data
//! touching host RAM, in the shape of SPDK's `examples/nvme/cmb_copy`. Run with `--help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use iomem::dma::DmaProvider;
use iomem::map::linux::{BarKind, BarMapping, P2pDistance, PagemapDma, PciDevice, PeerAccess};
use iomem::nvme::cmb::{BarTable, CmbInfo, CmbPool, PciBar, ProbeOptions};
use iomem::nvme::cmd::nvm;
use iomem::nvme::ctrl::{Config, Controller, QueueMem, QueuePair};
use iomem::nvme::identify::Namespace;
use iomem::nvme::prp::{CmbPrpList, DataPtr, HostPrpList, Prp2, PrpListMem};
use iomem::nvme::sq::HostSqRing;
use iomem::p2p::P2pBuf;
use iomem::{Caching, Mmio};

const HELP: &str = "\
p2p_copy: copy blocks from NVMe controller A to controller B peer-to-peer, through the
Controller Memory Buffer (CMB) of one of them, without the data touching host RAM.

  p2p_copy [--read A_BDF] [--write B_BDF] [--cmb-of B|A] [--slba N] [--bytes N]
           [--override REASON] [--host-bounce]

What it does (as root, both controllers unbound from the kernel's nvme driver or never bound;
it unbinds them otherwise):
  1. brings both controllers up from user space over their sysfs BAR0 mappings and enables the
     CMB of the one --cmb-of names (default B);
  2. checks the PCI p2p distance between A and B (the kernel's pci_p2pdma rules); if p2p is
     not known to route, it refuses unless --override names why the platform routes it anyway;
  3. writes a test pattern to BYTES of A's namespace 1 from LBA N (through host memory);
  4. the p2p copy: A reads the range straight into a buffer in the CMB, then B writes that
     buffer to its namespace 1 at LBA N; every PRP (data pointers and PRP list entries, and the
     lists themselves) of both commands must lie in the CMB, checked before submission;
  5. the host-bounce copy of the same data, for comparison: A reads it into host memory, B
     writes it from there at LBA N + BYTES / (B's LBA size);
  6. reads A's range and both of B's ranges back through host memory and compares them with the
     pattern; prints both copies' throughput and their ratio.
It OVERWRITES BYTES on A and 2 x BYTES on B from LBA N: use scratch namespaces.

Options:
  --read A_BDF       source controller (default: the first NVMe controller, by PCI address)
  --write B_BDF      destination controller (default: the second)
  --cmb-of B|A       whose CMB holds the buffer (default B: A's DMA goes to a peer)
  --slba N           first LBA (default 0)
  --bytes N          bytes to copy, a multiple of 4096 (default 1048576); split into commands
                     of at most the controllers' MDTS
  --override REASON  hand the CMB's address to the peer although the p2p distance is
                     not-supported (e.g. qemu-root-complex-routes-p2p)
  --host-bounce      copy through host memory only (no p2p: for a platform that does not
                     route it; the distance is printed, not enforced)
Exit status 0 only if the data compares equal and no PRP of the p2p copy pointed outside the
CMB (so none into host RAM).";

type Res<T> = Result<T, Box<dyn std::error::Error>>;
type Ctrl = Controller<Arc<BarMapping>, Mmio>;
type Qp = QueuePair<HostSqRing<Mmio>, Mmio, Arc<BarMapping>>;

/// One controller, up, with an I/O queue pair and namespace 1.
struct Side {
    name: &'static str,
    dev: PciDevice,
    bars: BarTable,
    ctrl: Ctrl,
    qp: Qp,
    ns: Namespace,
}

fn bring_up(name: &'static str, dev: PciDevice, host: &PagemapDma) -> Res<Side> {
    if let Some(driver) = dev.driver()? {
        dev.unbind()?;
        println!("{name}: unbound {driver}");
    }
    let mut bars = BarTable::new();
    for b in dev.bars()? {
        if b.kind() == BarKind::Memory {
            bars = bars.with(b.index(), PciBar::new(b.bus_addr(), b.size())?)?;
        }
    }
    dev.enable(true, true)?;
    let bar0 = Arc::new(dev.map_bar(0, Caching::Uncached)?);
    let admin = QueueMem::host(host, 16)?;
    let mut ctrl: Ctrl = Controller::new(bar0, admin, host.alloc(4096)?, Config::default())?;
    let ns = ctrl.identify_namespace(1)?;
    let qp = ctrl.create_io_pair(QueueMem::host(host, 32)?)?;
    println!(
        "{name}: {} BAR0 at {:#x}, MDTS {:?} bytes, namespace 1: {} LBAs of {} bytes",
        dev.address(),
        bars.get(0).map_or(0, |b| b.bus_addr),
        ctrl.max_transfer()?,
        ns.lba_count(),
        ns.lba_size()
    );
    Ok(Side {
        name,
        dev,
        bars,
        ctrl,
        qp,
        ns,
    })
}

/// Reads or writes `bytes` at `slba` through host memory `buf`, in commands of `chunk` bytes.
fn host_io(
    s: &mut Side,
    host: &PagemapDma,
    write: bool,
    slba: u64,
    buf: &iomem::dma::DmaRegion<Mmio>,
    chunk: usize,
) -> Res<()> {
    let list_bytes = s.ctrl.page_size().list_bytes(chunk / 4096 + 1).max(4096);
    let list = HostPrpList::new(host.alloc(list_bytes)?);
    for off in (0..buf.len()).step_by(chunk) {
        let d = s
            .ctrl
            .prp()
            .borrow(&buf.lease(), off..off + chunk, Some(&list))?;
        let lba = slba + (off / s.ns.lba_size()) as u64;
        // CAST: at most MDTS / LBA size blocks.
        let nlb = (chunk / s.ns.lba_size()) as u32;
        let cmd = if write {
            nvm::write(&s.ns, lba, nlb, d)?
        } else {
            nvm::read(&s.ns, lba, nlb, d)?
        };
        s.qp.execute(cmd)?;
    }
    Ok(())
}

/// The CMB the p2p buffer lives in, and a second, uncached view of it to read PRP lists back.
struct Cmb {
    info: CmbInfo,
    view: BarMapping,
    bar_bus: u64,
}

impl Cmb {
    fn range(&self) -> std::ops::Range<u64> {
        self.info.bus_addr..self.info.bus_addr + self.info.size
    }
    fn word(&self, bus: u64) -> Res<u64> {
        let mut w = [0u8; 8];
        let off = usize::try_from(bus - self.bar_bus)?;
        self.view
            .io()
            .subslice(off..off + 8)?
            .copy_to_slice(&mut w)?;
        Ok(u64::from_le_bytes(w))
    }
    /// Checks that every pointer of `d` — PRP1, PRP2, the list and its entries — is in the
    /// CMB; returns how many were checked.
    fn check(&self, d: &DataPtr, page: u64) -> Res<usize> {
        let cmb = self.range();
        let inside = |what: &str, a: u64| -> Res<()> {
            if cmb.contains(&a) {
                Ok(())
            } else {
                Err(format!("{what} {a:#x} is outside the CMB {cmb:#x?}: host RAM").into())
            }
        };
        inside("PRP1", d.prp1().get())?;
        let mut n = 1;
        match d.prp2() {
            Prp2::None => {}
            Prp2::Page(a) => {
                inside("PRP2", a.get())?;
                n += 1;
            }
            Prp2::List(a) => {
                inside("PRP2 (list)", a.get())?;
                n += 1;
                // CAST: usize is at most 64 bits.
                let pages = ((d.prp1().get() % page) + d.len() as u64).div_ceil(page) as usize;
                let (per, mut left, mut at) = ((page / 8) as usize, pages - 1, a.get());
                loop {
                    let here = left.min(per);
                    for k in 0..here {
                        inside("PRP list entry", self.word(at + 8 * k as u64)?)?;
                    }
                    n += here;
                    if left <= per {
                        break;
                    }
                    at = self.word(at + 8 * (per as u64 - 1))?;
                    left -= per - 1;
                }
            }
        }
        Ok(n)
    }
}

fn run(o: &Opts) -> Res<()> {
    let pick = |bdf: &Option<String>, k: usize| -> Res<PciDevice> {
        Ok(match bdf {
            Some(a) => PciDevice::open(a)?,
            None => PciDevice::find_by_class(0x01_08_02)?
                .devices
                .into_iter()
                .nth(k)
                .ok_or("fewer than two NVMe controllers (PCI class 0x010802)")?,
        })
    };
    let (dev_a, dev_b) = (pick(&o.read, 0)?, pick(&o.write, 1)?);
    let distance = P2pDistance::between(&dev_a, &dev_b)?;
    println!(
        "IOMEM-P2P-COPY verdict {} -> {}: {} ({distance})",
        dev_a.address(),
        dev_b.address(),
        distance.kind()
    );
    let access = match (o.reason, o.bounce_only) {
        (_, true) => None,
        (Some(r), _) => Some(PeerAccess::override_unchecked(r)),
        (None, _) => Some(PeerAccess::check(distance).map_err(|e| {
            format!("{e} (pass --override REASON if this platform routes it, or --host-bounce)")
        })?),
    };
    println!("peer access: {:?}", access.as_ref().map(|a| a.basis()));

    let host = PagemapDma::new();
    let mut a = bring_up("A", dev_a, &host)?;
    let mut b = bring_up("B", dev_b, &host)?;
    let (own, peer) = if o.cmb_of_a {
        (&mut a, &mut b)
    } else {
        (&mut b, &mut a)
    };
    let info = own
        .ctrl
        .enable_cmb(&own.bars, ProbeOptions::default())?
        .ok_or("no CMB on the --cmb-of controller")?;
    let bar = usize::from(info.bir);
    let cmb = Cmb {
        info,
        view: own.dev.map_bar(bar, Caching::Uncached)?,
        bar_bus: own.bars.get(bar).ok_or("no CMB BAR")?.bus_addr,
    };
    let pool = CmbPool::new(
        own.dev.map_bar(bar, Caching::WriteCombining)?,
        info,
        own.ctrl.cc(),
    )?;
    own.qp.set_device_data(true);
    peer.qp.set_device_data(true);
    println!(
        "CMB of {}: bus {:#x?} (BAR{bar}, {} MiB)",
        own.name,
        cmb.range(),
        info.size >> 20
    );

    let page = a.ctrl.page_size().bytes();
    let mdts = [a.ctrl.max_transfer()?, b.ctrl.max_transfer()?]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(o.bytes);
    let chunk = mdts.min(o.bytes) / page * page;
    if chunk == 0 || o.bytes % chunk != 0 || page != b.ctrl.page_size().bytes() {
        return Err(format!(
            "--bytes {} must be a multiple of {chunk} (MDTS) and of the page size",
            o.bytes
        )
        .into());
    }
    let blocks = |s: &Side| (o.bytes / s.ns.lba_size()) as u64;
    let second = o.slba + blocks(&b); // B's range for the host-bounce copy
    if o.slba + blocks(&a) > a.ns.lba_count()
        || second + blocks(&b) > b.ns.lba_count()
        || o.bytes % a.ns.lba_size().max(b.ns.lba_size()) != 0
    {
        return Err("namespaces too small for --slba/--bytes (B needs room for two copies)".into());
    }

    // The pattern on A, and B's ranges poisoned.
    let pattern: Vec<u8> = (0..o.bytes as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let hbuf = host.alloc(o.bytes)?;
    hbuf.mem().copy_from_slice(&pattern)?;
    host_io(&mut a, &host, true, o.slba, &hbuf, chunk)?;
    hbuf.mem().fill(0xee)?;
    host_io(&mut b, &host, true, o.slba, &hbuf, chunk)?;
    host_io(&mut b, &host, true, second, &hbuf, chunk)?;

    // The p2p copy: buffer and lists in the CMB.
    let (mut checked, mut t_p2p, nlists) = (0, 0.0, o.bytes / chunk);
    if let Some(access) = &access {
        let buf: P2pBuf<BarMapping> = pool.alloc_data_buf(o.bytes)?;
        buf.io().fill(0xdd)?;
        let lists: Vec<CmbPrpList<BarMapping>> = (0..2 * nlists)
            .map(|_| CmbPrpList::alloc(&pool, a.ctrl.page_size().list_bytes(chunk / page)))
            .collect::<Result<_, _>>()?;
        println!(
            "p2p buffer: bus {:#x}..{:#x}; PRP lists at {:#x}..",
            buf.bus_addr(),
            buf.bus_addr() + o.bytes as u64,
            lists[0].run(0..8)?.get()
        );
        let t = Instant::now();
        for (k, off) in (0..o.bytes).step_by(chunk).enumerate() {
            for (write, s) in [(false, &mut a), (true, &mut b)] {
                let list = &lists[2 * k + usize::from(write)];
                let mine = o.cmb_of_a != write; // reading side A owns the CMB, or writing side B does
                let d = if mine {
                    s.ctrl
                        .prp()
                        .borrow_p2p(&buf, off..off + chunk, Some(list))?
                } else {
                    s.ctrl
                        .prp()
                        .borrow_peer(&buf, off..off + chunk, Some(list), access)?
                };
                checked += cmb.check(&d, page as u64)?;
                // CAST: at most MDTS / LBA size blocks.
                let nlb = (chunk / s.ns.lba_size()) as u32;
                let at = o.slba + (off / s.ns.lba_size()) as u64;
                let cmd = if write {
                    nvm::write(&s.ns, at, nlb, d)?
                } else {
                    nvm::read(&s.ns, at, nlb, d)?
                };
                s.qp.execute(cmd)?;
            }
        }
        t_p2p = t.elapsed().as_secs_f64();
        println!("IOMEM-P2P-COPY no-host-PRP: {checked} pointers (PRP1, PRP2, list entries) of {} commands, all in the CMB {:#x?}", 2 * nlists, cmb.range());
        // SAFETY: every command that used the lists completed (`execute` returned).
        drop(
            lists
                .into_iter()
                .map(|l| unsafe { l.complete() })
                .collect::<Vec<_>>(),
        );
    }

    // The host-bounce copy of the same data, to B's second range.
    let t = Instant::now();
    host_io(&mut a, &host, false, o.slba, &hbuf, chunk)?;
    host_io(&mut b, &host, true, second, &hbuf, chunk)?;
    let t_bounce = t.elapsed().as_secs_f64();

    // Everything back through host memory.
    let mut back = vec![0u8; o.bytes];
    let mut ranges = vec![(false, o.slba, "A"), (true, second, "B (host-bounce copy)")];
    if access.is_some() {
        ranges.insert(1, (true, o.slba, "B (p2p copy)"));
    }
    for (on_b, at, what) in ranges {
        let s = if on_b { &mut b } else { &mut a };
        hbuf.mem().fill(0)?;
        host_io(s, &host, false, at, &hbuf, chunk)?;
        hbuf.mem().copy_to_slice(&mut back)?;
        if let Some(i) = back.iter().zip(&pattern).position(|(x, y)| x != y) {
            return Err(format!(
                "{what} at LBA {at}: byte {i} is {:#x}, the pattern {:#x}",
                back[i], pattern[i]
            )
            .into());
        }
        println!("read back {what} from LBA {at}: equals the pattern");
    }
    let mbs = |secs: f64| o.bytes as f64 / secs / 1e6;
    if access.is_none() {
        println!(
            "IOMEM-P2P-COPY host-bounce only: {} bytes in {:.1} ms, {:.1} MB/s",
            o.bytes,
            t_bounce * 1e3,
            mbs(t_bounce)
        );
        return Ok(());
    }
    println!(
        "IOMEM-P2P-COPY throughput {} bytes in {} commands of {chunk}: p2p {:.1} MB/s ({:.1} ms), host bounce {:.1} MB/s ({:.1} ms), p2p/bounce {:.2}",
        o.bytes, nlists, mbs(t_p2p), t_p2p * 1e3, mbs(t_bounce), t_bounce * 1e3, t_bounce / t_p2p
    );
    Ok(())
}

struct Opts {
    read: Option<String>,
    write: Option<String>,
    cmb_of_a: bool,
    slba: u64,
    bytes: usize,
    reason: Option<&'static str>,
    bounce_only: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        read: None,
        write: None,
        cmb_of_a: false,
        slba: 0,
        bytes: 1 << 20,
        reason: None,
        bounce_only: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--read" => o.read = Some(val()?),
            "--write" => o.write = Some(val()?),
            "--cmb-of" => {
                o.cmb_of_a = match val()?.as_str() {
                    "A" | "a" => true,
                    "B" | "b" => false,
                    v => return Err(format!("--cmb-of {v}: A or B")),
                }
            }
            "--slba" => o.slba = val()?.parse().map_err(|e| format!("--slba: {e}"))?,
            "--bytes" => o.bytes = val()?.parse().map_err(|e| format!("--bytes: {e}"))?,
            "--override" => o.reason = Some(Box::leak(val()?.into_boxed_str())),
            "--host-bounce" => o.bounce_only = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let o = match parse() {
        Ok(o) => o,
        Err(e) if e.is_empty() => {
            println!("{HELP}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("p2p_copy: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(&o) {
        Ok(()) => {
            println!("p2p_copy: PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("p2p_copy: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
