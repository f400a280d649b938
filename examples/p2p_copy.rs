//! `p2p_copy`: copies an LBA range from one NVMe controller to another without the data
//! touching host RAM, in the shape of SPDK's `examples/nvme/cmb_copy`. Run with `--help`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use iomem::dma::{DmaProvider, DmaRegion};
use iomem::map::linux::{BarMapping, P2pDistance, PagemapDma, PciDevice, PeerAccess};
#[cfg(feature = "vfio")]
use iomem::map::vfio::{self, Container, PeerBar, VfioDevice, VfioDma};
use iomem::nvme::cmb::{BarTable, CmbInfo, CmbPool, ProbeOptions};
use iomem::nvme::cmd::{nvm, Lent, Request};
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
           [--override REASON] [--host-bounce] [--vfio] [--until-unplugged]

What it does (as root; it unbinds the kernel's nvme driver from both controllers if bound):
  1. brings both controllers up from user space over their sysfs BAR0 mappings (or, with
     --vfio, through VFIO behind the IOMMU) and enables the CMB of the one --cmb-of names
     (default B);
  2. checks the PCI p2p distance between A and B (the kernel's pci_p2pdma rules): if p2p is
     not known to route, it refuses unless --override names why the platform routes it anyway;
  3. writes a test pattern to BYTES of A's namespace 1 from LBA N (through host memory);
  4. the p2p copy: A reads the range straight into a buffer in the CMB, then B writes that
     buffer to its namespace 1 at LBA N, in commands of at most MDTS; the PRP lists are in the
     CMB too, and every PRP (PRP1, PRP2, each list entry) of every command is checked to lie in
     the CMB before submission: nothing of the copy touches host RAM;
  5. with --host-bounce, the same data the classic way for comparison: A reads it into host
     memory, B writes it from there at LBA N + BYTES / (B's LBA size);
  6. reads A's range and B's back through host memory and compares them with the pattern;
     prints the copies' throughput (and with --host-bounce their ratio, p2p / bounce).
It OVERWRITES BYTES on A and on B (twice that on B with --host-bounce) from LBA N: use scratch
namespaces. Under QEMU the p2p copy is slower than the bounce (QEMU moves DMA to a peer's BAR
a page at a time); on hardware it saves the host memory bandwidth of both transfers.

Options:
  --read A_BDF       source controller (default: the first NVMe controller, by PCI address)
  --write B_BDF      destination controller (default: the second)
  --cmb-of B|A       whose CMB holds the buffer (default B: A's DMA goes to a peer)
  --slba N           first LBA (default 0)
  --bytes N          bytes to copy, a multiple of 4096 (default 1048576); split into commands
                     of at most the controllers' MDTS
  --override REASON  hand the CMB's address to the peer although the p2p distance is
                     not-supported (e.g. qemu-root-complex-routes-p2p)
  --host-bounce      also copy through host memory, and compare the throughput
  --vfio             drive both controllers through VFIO (bound to vfio-pci, binding them if
                     needed; one container, so one IOVA space): host memory is mapped in the
                     IOMMU at IOVAs, the CMB's BAR too, and the other controller reaches the
                     CMB at those IOVAs, not at its bus address. Needs an IOMMU
                     (intel_iommu=on) and the build feature vfio. VFIO maps BARs uncached.
  --until-unplugged  a fault test: after the copy, print IOMEM-E2E-UNPLUG-READY and keep
                     copying until B is hot-unplugged (at most 60 s); passes only if both
                     controllers' paths end in typed errors (B: device gone; A: its DMA into
                     the vanished CMB failing), nothing hangs, the buffers go back to the pool
                     and A still works. Needs the CMB on B (--cmb-of B, the default).
Exit status 0 only if the data compares equal and no PRP of the p2p copy pointed outside the
CMB (so none into host RAM).";

type Res<T> = Result<T, Box<dyn std::error::Error>>;
type Ctrl = Controller<Arc<BarMapping>, Mmio>;
type Qp = QueuePair<HostSqRing<Mmio>, Mmio, Arc<BarMapping>>;

/// How a controller is reached: its sysfs BAR files, or its VFIO device file.
enum Dev {
    Sysfs(PciDevice),
    #[cfg(feature = "vfio")]
    Vfio(VfioDevice),
}

impl Dev {
    /// Maps BAR `n` (VFIO maps every BAR uncached, whatever `caching` asks).
    fn map_bar(&self, n: usize, caching: Caching) -> Res<BarMapping> {
        match self {
            Dev::Sysfs(d) => Ok(d.map_bar(n, caching)?),
            #[cfg(feature = "vfio")]
            Dev::Vfio(d) => Ok(d.map_bar(u32::try_from(n)?)?),
        }
    }
}

/// One controller, up, with an I/O queue pair and namespace 1.
struct Side {
    name: &'static str,
    /// The PCI address.
    addr: String,
    dev: Dev,
    bars: BarTable,
    ctrl: Ctrl,
    qp: Qp,
    ns: Namespace,
}

/// Opens `pci` for the copy: through sysfs (unbinding the kernel's driver) or through VFIO in
/// `container` (binding it to vfio-pci if the typed error says it is not). Returns the device,
/// its memory BARs with their bus addresses, and BAR0 mapped uncached.
fn open(name: &str, pci: PciDevice, vfio: Option<&VfioCtx>) -> Res<(Dev, BarTable, BarMapping)> {
    #[cfg(feature = "vfio")]
    if let Some(cx) = vfio {
        let dev = match VfioDevice::open(&pci, &cx.container) {
            Err(e @ vfio::Error::NotBoundToVfioPci { .. }) => {
                println!("{name}: {e}; binding it");
                vfio::bind_vfio_pci(&pci)?;
                VfioDevice::open(&pci, &cx.container)?
            }
            r => r?,
        };
        let bars = BarTable::from_vfio(&dev);
        dev.enable(true, true)?;
        let group = dev.group().number();
        println!(
            "{name}: {} through VFIO (IOMMU group {group})",
            pci.address()
        );
        let bar0 = dev.map_bar(0)?;
        return Ok((Dev::Vfio(dev), bars, bar0));
    }
    let _ = vfio;
    if let Some(driver) = pci.driver()? {
        pci.unbind()?;
        println!("{name}: unbound {driver}");
    }
    let bars = BarTable::from_sysfs(&pci)?;
    pci.enable(true, true)?;
    let bar0 = pci.map_bar(0, Caching::Uncached)?;
    Ok((Dev::Sysfs(pci), bars, bar0))
}

/// The VFIO side of a run: one container for both controllers.
#[cfg(feature = "vfio")]
struct VfioCtx {
    container: Arc<Container>,
}
#[cfg(not(feature = "vfio"))]
enum VfioCtx {}

/// Brings an opened controller up with admin queues, an I/O pair and namespace 1.
fn bring_up<H>(name: &'static str, opened: (Dev, BarTable, BarMapping), host: &H) -> Res<Side>
where
    H: DmaProvider<Backend = Mmio>,
    H::Error: std::error::Error + 'static,
{
    let (dev, bars, bar0) = opened;
    let bar0 = Arc::new(bar0);
    let admin = QueueMem::host(host, 16)?;
    let mut ctrl: Ctrl = Controller::new(bar0, admin, host.alloc(4096)?, Config::default())?;
    let ns = ctrl.identify_namespace(1)?;
    let qp = ctrl.create_io_pair(QueueMem::host(host, 32)?)?;
    let (bar0, mdts) = (
        bars.get(0).map_or(0, |b| b.bus_addr()),
        ctrl.max_transfer()?,
    );
    let (lbas, lba) = (ns.lba_count(), ns.lba_size());
    let addr = match &dev {
        Dev::Sysfs(d) => d.address().to_string(),
        #[cfg(feature = "vfio")]
        Dev::Vfio(d) => d.address().to_string(),
    };
    println!(
        "{name}: {addr} BAR0 at {bar0:#x}, MDTS {mdts:?} bytes, namespace 1: {lbas} x {lba} B"
    );
    Ok(Side {
        name,
        addr,
        dev,
        bars,
        ctrl,
        qp,
        ns,
    })
}

/// A Read or Write of `d`'s bytes at `at` of `s`'s namespace.
///
/// # Safety
/// The memory `d` names (data and PRP list) stays allocated, and lent to no other command,
/// until the command completes.
unsafe fn rw(s: &Side, write: bool, at: u64, d: DataPtr) -> Res<Request<Mmio>> {
    // CAST: at most MDTS / LBA size blocks.
    let nlb = (d.len() / s.ns.lba_size()) as u32;
    let cmd = if write {
        nvm::write(&s.ns, at, nlb, d)?
    } else {
        nvm::read(&s.ns, at, nlb, d)?
    };
    // SAFETY: the caller's contract.
    Ok(unsafe { Request::new(cmd, Lent::none()) })
}

/// Reads or writes `bytes` at `slba` through host memory `buf`, in commands of `chunk` bytes.
fn host_io<H>(
    s: &mut Side,
    host: &H,
    write: bool,
    slba: u64,
    buf: &DmaRegion<Mmio>,
    chunk: usize,
) -> Res<()>
where
    H: DmaProvider<Backend = Mmio>,
    H::Error: std::error::Error + 'static,
{
    let list_bytes = s.ctrl.page_size().list_bytes(chunk / 4096 + 1).max(4096);
    let list = HostPrpList::new(host.alloc(list_bytes)?);
    for off in (0..buf.len()).step_by(chunk) {
        let d = s
            .ctrl
            .prp()
            .borrow(&buf.lease(), off..off + chunk, Some(&list))?;
        // SAFETY: `buf` and `list` are kept past `execute`, which returns after the completion
        // (after an error the example stops, reusing neither).
        let cmd = unsafe { rw(s, write, slba + (off / s.ns.lba_size()) as u64, d) }?;
        s.qp.execute(cmd)?.ok()?;
    }
    Ok(())
}

/// The CMB the p2p buffer lives in, and a second, uncached view of it to read PRP lists back.
struct Cmb {
    info: CmbInfo,
    view: BarMapping,
    bar_bus: u64,
    /// With VFIO: the CMB's BAR mapped in the IOMMU, which the other controller reaches it by.
    window: Option<Window>,
}

#[cfg(feature = "vfio")]
type Window = PeerBar;
#[cfg(not(feature = "vfio"))]
enum Window {}

/// A device address as the CMB's bus address: itself, or for the controller that reaches the
/// CMB through the IOMMU (`iova`), the bus address of the window byte it names.
fn as_bus(window: Option<&Window>, iova: bool, a: u64) -> Option<u64> {
    if !iova {
        return Some(a);
    }
    match window {
        #[cfg(feature = "vfio")]
        Some(w) => {
            let off = a.checked_sub(w.iova()).filter(|&o| o < w.len())?;
            Some(w.bus_addr() + off)
        }
        #[cfg(not(feature = "vfio"))]
        Some(w) => match *w {},
        None => Some(a),
    }
}

impl Cmb {
    fn range(&self) -> std::ops::Range<u64> {
        self.info.bus_addr()..self.info.bus_addr() + self.info.size()
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
    /// Checks that every pointer of `d` — PRP1, PRP2, the list's entries and chain pointers —
    /// is in the CMB (`iova`: the pointers are IOVAs of the window); returns how many were
    /// checked.
    fn check(&self, d: &DataPtr, page: u64, iova: bool) -> Res<usize> {
        let bus = |what: &str, a: u64| {
            as_bus(self.window.as_ref(), iova, a)
                .ok_or_else(|| format!("{what} {a:#x} is outside the CMB's IOMMU window"))
        };
        let mut ptrs = vec![("PRP1", bus("PRP1", d.prp1().get())?)];
        match d.prp2() {
            Prp2::None => {}
            Prp2::Page(a) => ptrs.push(("PRP2", bus("PRP2", a.get())?)),
            Prp2::List(a) => {
                let a = bus("PRP2 (list)", a.get())?;
                ptrs.push(("PRP2 (list)", a));
                // CAST: usize is at most 64 bits wide.
                let pages = (d.prp1().get() % page + d.len() as u64).div_ceil(page);
                // Every list page but the last: `per - 1` entries, then the next page's address.
                let (per, mut left, mut at) = (page / 8, pages - 1, a);
                loop {
                    for k in 0..left.min(per) {
                        let e = bus("PRP list entry", self.word(at + 8 * k)?)?;
                        ptrs.push(("PRP list entry", e));
                    }
                    if left <= per {
                        break;
                    }
                    let next = bus("PRP list chain", self.word(at + 8 * (per - 1))?)?;
                    (at, left) = (next, left - (per - 1));
                }
            }
        }
        let cmb = self.range();
        match ptrs.iter().find(|(_, a)| !cmb.contains(a)) {
            Some((what, a)) => Err(format!("{what} {a:#x} is outside the CMB {cmb:#x?}").into()),
            None => Ok(ptrs.len()),
        }
    }
}

fn run(o: &Opts) -> Res<()> {
    let nvme = PciDevice::find_by_class(0x01_08_02)?.devices; // by PCI address
    let pick = |bdf: &Option<String>, k: usize| -> Res<PciDevice> {
        let none = "fewer than two NVMe controllers (PCI class 0x010802)";
        let addr = bdf
            .as_deref()
            .or(nvme.get(k).map(|d| d.address()))
            .ok_or(none)?;
        Ok(PciDevice::open(addr)?)
    };
    let (dev_a, dev_b) = (pick(&o.read, 0)?, pick(&o.write, 1)?);
    let distance = P2pDistance::between(&dev_a, &dev_b)?;
    let (aa, ba, kind) = (dev_a.address(), dev_b.address(), distance.kind());
    println!("IOMEM-P2P-COPY verdict {aa} -> {ba}: {kind} ({distance})");
    let access = match o.reason {
        Some(r) => PeerAccess::override_unchecked(r),
        None => PeerAccess::check(distance)
            .map_err(|e| format!("{e} (--override REASON if this platform routes it)"))?,
    };
    println!("peer access: {:?}", access.basis());

    if o.vfio {
        #[cfg(feature = "vfio")]
        {
            let cx = VfioCtx {
                container: Container::open()?,
            };
            let (oa, ob) = (open("A", dev_a, Some(&cx))?, open("B", dev_b, Some(&cx))?);
            // Both groups are in the container now: one IOVA space for both controllers.
            let host = VfioDma::new(&cx.container)?;
            println!(
                "VFIO: one type1v2 container, groups {:?}",
                cx.container.groups()
            );
            let window = |own: &Side, bar: usize| -> Res<Option<Window>> {
                let bus = own.bars.get(bar).ok_or("no CMB BAR")?.bus_addr();
                let map = Arc::new(own.dev.map_bar(bar, Caching::Uncached)?);
                Ok(Some(host.map_peer_bar(map, bus)?))
            };
            return copy(o, oa, ob, &access, &host, &window);
        }
        #[cfg(not(feature = "vfio"))]
        return Err("--vfio: this p2p_copy was built without the feature vfio".into());
    }
    let (oa, ob) = (open("A", dev_a, None)?, open("B", dev_b, None)?);
    copy(o, oa, ob, &access, &PagemapDma::new(), &|_, _| Ok(None))
}

/// What a window-mapping function gives: the CMB's BAR mapped in the IOMMU (VFIO), or `None`
/// (bus addresses are device addresses).
type MapWindow<'a> = &'a dyn Fn(&Side, usize) -> Res<Option<Window>>;

/// The copy, on two opened controllers, with host memory from `host`.
fn copy<H>(
    o: &Opts,
    oa: (Dev, BarTable, BarMapping),
    ob: (Dev, BarTable, BarMapping),
    access: &PeerAccess,
    host: &H,
    map_window: MapWindow<'_>,
) -> Res<()>
where
    H: DmaProvider<Backend = Mmio>,
    H::Error: std::error::Error + 'static,
{
    let mut a = bring_up("A", oa, host)?;
    let mut b = bring_up("B", ob, host)?;
    a.qp.set_device_data(true); // reads into device memory: order the CPU after completions
    b.qp.set_device_data(true);
    let own = if o.cmb_of_a { &mut a } else { &mut b };
    let info = own
        .ctrl
        .enable_cmb(&own.bars, ProbeOptions::default())?
        .ok_or("no CMB on the --cmb-of controller")?;
    let bar = usize::from(info.bir);
    let cmb = Cmb {
        info,
        view: own.dev.map_bar(bar, Caching::Uncached)?,
        bar_bus: own.bars.get(bar).ok_or("no CMB BAR")?.bus_addr(),
        window: map_window(own, bar)?,
    };
    let pool = CmbPool::new(
        own.dev.map_bar(bar, Caching::WriteCombining)?,
        info,
        own.ctrl.cc(),
    )?;
    let (name, range, mib) = (own.name, cmb.range(), info.size() >> 20);
    println!("CMB of {name}: bus {range:#x?} (BAR{bar}, {mib} MiB)");
    #[cfg(feature = "vfio")]
    if let Some(w) = &cmb.window {
        let (iova, kib) = (w.iova(), w.len() >> 10);
        println!("IOMEM-P2P-COPY window: BAR{bar} ({kib} KiB) in the IOMMU at IOVA {iova:#x}");
    }

    let page = a.ctrl.page_size().bytes();
    let mdts = [a.ctrl.max_transfer()?, b.ctrl.max_transfer()?]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(o.bytes);
    let chunk = mdts.min(o.bytes) / page * page;
    let blocks = |s: &Side| (o.bytes / s.ns.lba_size()) as u64;
    let second = o.slba + blocks(&b); // B's range for the host-bounce copy
    if chunk == 0 || o.bytes % chunk != 0 || page != b.ctrl.page_size().bytes() {
        return Err(format!("--bytes must be a multiple of {chunk} (MDTS, pages)").into());
    }
    if o.slba + blocks(&a) > a.ns.lba_count() || second + blocks(&b) > b.ns.lba_count() {
        return Err("namespaces too small for --slba/--bytes (B needs room for two copies)".into());
    }

    // The pattern on A, and B's ranges poisoned.
    let pattern: Vec<u8> = (0..o.bytes as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect();
    let hbuf = host.alloc(o.bytes)?;
    hbuf.mem().copy_from_slice(&pattern)?;
    host_io(&mut a, host, true, o.slba, &hbuf, chunk)?;
    hbuf.mem().fill(0xee)?;
    host_io(&mut b, host, true, o.slba, &hbuf, chunk)?;
    if o.bounce {
        host_io(&mut b, host, true, second, &hbuf, chunk)?;
    }

    // The p2p copy: buffer and lists in the CMB.
    let (mut checked, nlists) = (0, o.bytes / chunk);
    let buf: P2pBuf<BarMapping> = pool.alloc_data_buf(o.bytes)?;
    buf.io().fill(0xdd)?;
    let lists: Vec<CmbPrpList<BarMapping>> = (0..2 * nlists)
        .map(|_| CmbPrpList::alloc(&pool, a.ctrl.page_size().list_bytes(chunk / page)))
        .collect::<Result<_, _>>()?;
    let (start, end) = (buf.bus_addr(), buf.bus_addr() + o.bytes as u64);
    let list0 = lists[0].run(0..8)?.get();
    println!("p2p buffer: bus {start:#x}..{end:#x}; PRP lists from {list0:#x}");
    let t = Instant::now();
    for (k, off) in (0..o.bytes).step_by(chunk).enumerate() {
        for (write, s) in [(false, &mut a), (true, &mut b)] {
            let (list, range) = (&lists[2 * k + usize::from(write)], off..off + chunk);
            // The controller whose CMB it is uses it as its own memory, the other as a peer's.
            let own = o.cmb_of_a != write;
            let d = match &cmb.window {
                _ if own => s.ctrl.prp().borrow_p2p(&buf, range, Some(list))?,
                None => s.ctrl.prp().borrow_peer(&buf, range, Some(list), access)?,
                #[cfg(feature = "vfio")]
                Some(w) => s
                    .ctrl
                    .prp()
                    .borrow_peer_iommu(&buf, range, Some(list), w, access)?,
                #[cfg(not(feature = "vfio"))]
                Some(w) => match *w {},
            };
            checked += cmb.check(&d, page as u64, !own)?;
            // SAFETY: as in `host_io`, for `buf` and the lists.
            let cmd = unsafe { rw(s, write, o.slba + (off / s.ns.lba_size()) as u64, d) }?;
            s.qp.execute(cmd)?.ok()?;
        }
    }
    let t_p2p = t.elapsed().as_secs_f64();
    println!(
        "IOMEM-P2P-COPY no-host-PRP: {checked} pointers (PRP1, PRP2, list entries) of {} \
         commands, all in the CMB {:#x?}",
        2 * nlists,
        cmb.range()
    );
    // SAFETY: every command that used the lists completed (`execute` returned).
    drop(
        lists
            .into_iter()
            .map(|l| unsafe { l.complete() })
            .collect::<Vec<_>>(),
    );

    if o.unplug {
        return until_unplugged(o, a, b, host, &pool, access, chunk);
    }

    // The host-bounce copy of the same data, to B's second range.
    let t = Instant::now();
    if o.bounce {
        host_io(&mut a, host, false, o.slba, &hbuf, chunk)?;
        host_io(&mut b, host, true, second, &hbuf, chunk)?;
    }
    let t_bounce = t.elapsed().as_secs_f64();

    // Everything back through host memory.
    let mut back = vec![0u8; o.bytes];
    let ranges = [
        (false, o.slba, "A"),
        (true, o.slba, "B (p2p copy)"),
        (true, second, "B (host-bounce copy)"),
    ];
    for &(on_b, at, what) in &ranges[..2 + usize::from(o.bounce)] {
        let s = if on_b { &mut b } else { &mut a };
        hbuf.mem().fill(0)?;
        host_io(s, host, false, at, &hbuf, chunk)?;
        hbuf.mem().copy_to_slice(&mut back)?;
        if let Some(i) = back.iter().zip(&pattern).position(|(x, y)| x != y) {
            let (x, y) = (back[i], pattern[i]);
            return Err(format!("{what} at LBA {at}: byte {i} is {x:#x}, not {y:#x}").into());
        }
        println!("read back {what} from LBA {at}: equals the pattern");
    }
    let mbs = |secs: f64| o.bytes as f64 / secs / 1e6;
    let bounce = if o.bounce {
        let (mb, ms, r) = (mbs(t_bounce), t_bounce * 1e3, t_bounce / t_p2p);
        format!(", host bounce {mb:.1} MB/s ({ms:.1} ms), p2p/bounce {r:.2}")
    } else {
        String::new()
    };
    println!(
        "IOMEM-P2P-COPY throughput {} bytes in {nlists} commands of {chunk}: p2p {:.1} MB/s \
         ({:.1} ms){bounce}",
        o.bytes,
        mbs(t_p2p),
        t_p2p * 1e3
    );
    Ok(())
}

/// The outcome of one side's command in the unplug test: none, a typed NVMe error, or (an
/// error of the test) anything else.
fn typed(side: &str, r: Res<()>) -> Res<Option<iomem::nvme::Error>> {
    match r {
        Ok(()) => Ok(None),
        Err(e) => match e.downcast::<iomem::nvme::Error>() {
            Ok(e) => {
                println!("IOMEM-P2P-UNPLUG {side}: typed error {e:?}: {e}");
                Ok(Some(*e))
            }
            Err(e) => Err(format!("{side}: not a typed NVMe error: {e}").into()),
        },
    }
}

/// `--until-unplugged`: copies through B's CMB until B is gone, then checks both paths' errors,
/// the pool and A.
fn until_unplugged<H>(
    o: &Opts,
    mut a: Side,
    mut b: Side,
    host: &H,
    pool: &CmbPool<BarMapping>,
    access: &PeerAccess,
    chunk: usize,
) -> Res<()>
where
    H: DmaProvider<Backend = Mmio>,
    H::Error: std::error::Error + 'static,
{
    if o.cmb_of_a || o.vfio {
        return Err("--until-unplugged takes the CMB of B over sysfs".into());
    }
    let before = pool.stats();
    let buf = pool.alloc_data_buf(chunk)?;
    let list_bytes = a
        .ctrl
        .page_size()
        .list_bytes(chunk / a.ctrl.page_size().bytes());
    let lists = [
        CmbPrpList::alloc(pool, list_bytes)?,
        CmbPrpList::alloc(pool, list_bytes)?,
    ];
    let in_use = pool.stats();
    println!("IOMEM-E2E-UNPLUG-READY");
    let (t, deadline) = (Instant::now(), Duration::from_secs(60));
    let (mut err_a, mut err_b, mut rounds) = (None, None, 0u64);
    while (err_a.is_none() || err_b.is_none()) && t.elapsed() < deadline {
        if err_a.is_none() {
            let d = a
                .ctrl
                .prp()
                .borrow_peer(&buf, 0..chunk, Some(&lists[0]), access);
            // SAFETY: as in `host_io`: `buf` and the lists are kept until this function returns.
            let r = d
                .map_err(Into::into)
                .and_then(|d| unsafe { rw(&a, false, o.slba, d) });
            let r = r.and_then(|c| Ok(a.qp.execute(c)?.ok().map(drop)?));
            err_a = typed("A (read into B's CMB)", r)?;
        }
        if err_b.is_none() {
            let d = b.ctrl.prp().borrow_p2p(&buf, 0..chunk, Some(&lists[1]));
            // SAFETY: as for A's command above.
            let r = d
                .map_err(Into::into)
                .and_then(|d| unsafe { rw(&b, true, o.slba, d) });
            let r = r.and_then(|c| Ok(b.qp.execute(c)?.ok().map(drop)?));
            err_b = typed("B (write from its CMB)", r)?;
        }
        rounds += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!("IOMEM-P2P-UNPLUG {rounds} rounds in {secs:.1} s");
    let (Some(ea), Some(eb)) = (err_a, err_b) else {
        return Err("B was not unplugged within 60 s (or a path did not fail)".into());
    };
    if !matches!(eb, iomem::nvme::Error::DeviceGone { .. }) {
        return Err(format!("B's path should end in DeviceGone, not {eb:?}").into());
    }
    // A's command completed with an error status (its DMA into the vanished BAR failed): A
    // reads the lists no more, so they can be completed; any other error leaves them lent
    // (quarantined in the pool).
    if matches!(ea, iomem::nvme::Error::CommandFailed { .. }) {
        // SAFETY: B was removed from the system (its path saw it gone) and A's last command
        // using list 0 completed; no controller reads either list any more.
        drop(lists.map(|l| unsafe { l.complete() }));
    } else {
        drop(lists);
    }
    drop(buf);
    let after = pool.stats();
    let used = |s: iomem::p2p::P2pStats| s.total - s.free;
    println!(
        "IOMEM-P2P-UNPLUG pool: {} allocations ({} bytes) before the test, {} ({} bytes) during \
         it, {} ({} bytes) after it, {} bytes quarantined",
        before.allocations,
        used(before),
        in_use.allocations,
        used(in_use),
        after.allocations,
        used(after),
        after.quarantined
    );
    if after.allocations != before.allocations || used(after) != used(before) {
        return Err("the test's buffers did not go back to B's pool".into());
    }
    // A is fine: it reads its range back through host memory.
    let back = host.alloc(chunk)?;
    host_io(&mut a, host, false, o.slba, &back, chunk)?;
    let mut bytes = vec![0u8; chunk];
    back.mem().copy_to_slice(&mut bytes)?;
    let (byte0, nonzero) = (bytes[0], bytes.iter().filter(|&&x| x != 0).count());
    println!("IOMEM-P2P-UNPLUG A after the unplug: read {chunk} bytes ({nonzero} non-zero, first {byte0:#x})");
    let gone = PciDevice::open(&b.addr);
    println!(
        "IOMEM-P2P-UNPLUG B in sysfs: {:?}",
        gone.as_ref().map(|_| "still listed")
    );
    if gone.is_ok() {
        return Err("B is still listed in sysfs after the unplug".into());
    }
    drop(b);
    Ok(())
}

#[derive(Default)]
struct Opts {
    read: Option<String>,
    write: Option<String>,
    cmb_of_a: bool,
    slba: u64,
    bytes: usize,
    reason: Option<&'static str>,
    bounce: bool,
    vfio: bool,
    unplug: bool,
}

fn parse() -> Result<Opts, String> {
    let mut o = Opts {
        bytes: 1 << 20,
        ..Opts::default()
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
            "--host-bounce" => o.bounce = true,
            "--vfio" => o.vfio = true,
            "--until-unplugged" => o.unplug = true,
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    let (msg, code) = match parse().map(|o| run(&o)) {
        Err(e) if e.is_empty() => (HELP.to_string(), 0),
        Err(e) => (format!("p2p_copy: {e}\n\n{HELP}"), 2),
        Ok(Err(e)) => (format!("p2p_copy: FAIL: {e}"), 1),
        Ok(Ok(())) => ("p2p_copy: PASS".to_string(), 0),
    };
    if code == 0 {
        println!("{msg}");
    } else {
        eprintln!("{msg}");
    }
    ExitCode::from(code)
}
