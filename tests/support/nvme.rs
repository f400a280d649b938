//! Helpers shared by the controller tests (`tests/controller_*.rs`): a controller brought up on
//! the model, host and CMB data buffers, Read/Write requests, and the accounting checks.
//!
//! Each test file includes it with `#[path = "support/nvme.rs"] mod support;`.
#![allow(dead_code, unused_imports)]

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use iomem::backend::MockIo;
pub use iomem::dma::{DmaRegion, MockDma};
pub use iomem::nvme::cmb::{CmbInfo, CmbPool, CmbScheme, ProbeOptions};
pub use iomem::nvme::cmd::{admin, nvm, Command, Lent, Request};
pub use iomem::nvme::ctrl::{Config, Controller, Done, QueueMem, QueuePair};
pub use iomem::nvme::identify::Namespace;
pub use iomem::nvme::model::{CmbConfig, Fault, ModelConfig, NvmeModel, Target, Vanish};
pub use iomem::nvme::prp::{CmbPrpList, HostPrpList, PrpBuilder};
pub use iomem::nvme::sq::HostSqRing;
pub use iomem::nvme::status::Code;
pub use iomem::nvme::Error;
pub use iomem::p2p::P2pBuf;

/// The mock's backend (host DMA memory, BAR0 and the CMB's BAR are all `Arc<MockIo>`).
pub type Io = Arc<MockIo>;
pub type Ctrl = Controller<Io, Io>;
pub type Qp = QueuePair<HostSqRing<Io>, Io, Io>;
pub type CmbQp = QueuePair<P2pBuf<Io>, Io, Io>;
pub type Region = DmaRegion<Io>;
pub type Req = Request<Io>;

/// Short deadlines, for tests that wait for them.
pub fn config() -> Config {
    Config {
        command_timeout: Duration::from_millis(300),
        ready_timeout: Some(Duration::from_millis(300)),
        ..Config::default()
    }
}

/// Long deadlines (2 s and more), for tests that must end long before them.
pub fn long_config() -> Config {
    Config {
        command_timeout: Duration::from_secs(3),
        ready_timeout: Some(Duration::from_secs(3)),
        shutdown_timeout: Duration::from_secs(3),
        ..Config::default()
    }
}

/// A model with `model_config` and a controller brought up on it with `config`.
pub fn up_cfg(model_config: ModelConfig, config: Config, dma: &MockDma) -> (NvmeModel, Ctrl) {
    let model = NvmeModel::new(model_config, dma.clone()).unwrap();
    let ctrl = Controller::new(
        model.bar0(),
        QueueMem::host(dma, 32).unwrap(),
        dma.alloc(4096).unwrap(),
        config,
    )
    .unwrap();
    (model, ctrl)
}

pub fn up_with(model_config: ModelConfig, dma: &MockDma) -> (NvmeModel, Ctrl) {
    up_cfg(model_config, config(), dma)
}

pub fn up(dma: &MockDma) -> (NvmeModel, Ctrl) {
    up_with(ModelConfig::default(), dma)
}

/// A controller, namespace 1 and one host I/O pair of `entries` entries.
pub fn up_io(dma: &MockDma, config: Config, entries: u16) -> (NvmeModel, Ctrl, Namespace, Qp) {
    let (model, mut ctrl) = up_cfg(ModelConfig::default(), config, dma);
    let ns = ctrl.identify_namespace(1).unwrap();
    let qp = ctrl
        .create_io_pair(QueueMem::host(dma, entries).unwrap())
        .unwrap();
    (model, ctrl, ns, qp)
}

/// `len` bytes of a pattern seeded by `seed`.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 9) as u8)
        .collect()
}

/// A host data buffer holding [`pattern`]`(len, seed)`.
pub fn buffer(dma: &MockDma, len: usize, seed: u8) -> (Region, Vec<u8>) {
    let r = dma.alloc(len).unwrap();
    let data = pattern(len, seed);
    r.mem()
        .subslice(..len)
        .unwrap()
        .copy_from_slice(&data)
        .unwrap();
    (r, data)
}

/// The first `len` bytes of a host buffer.
pub fn contents(r: &Region, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    r.mem()
        .subslice(..len)
        .unwrap()
        .copy_to_slice(&mut v)
        .unwrap();
    v
}

/// A Read (`write` false) or Write of `range` of `r` at `slba`, lending `r` and a host PRP list.
pub fn io_req(
    prp: PrpBuilder,
    dma: &MockDma,
    ns: &Namespace,
    write: bool,
    slba: u64,
    r: &Region,
    range: std::ops::Range<usize>,
) -> Req {
    let nlb = (range.len() / ns.lba_size()) as u32;
    prp.lend(r.lease(), range, |n| HostPrpList::alloc(dma, n))
        .unwrap()
        .into_request(|d| rw(ns, write, slba, nlb, d))
        .unwrap()
}

/// Read or Write `nlb` blocks at `slba` over `d`.
pub fn rw(
    ns: &Namespace,
    write: bool,
    slba: u64,
    nlb: u32,
    d: iomem::nvme::prp::DataPtr,
) -> iomem::nvme::Result<Command> {
    if write {
        nvm::write(ns, slba, nlb, d)
    } else {
        nvm::read(ns, slba, nlb, d)
    }
}

pub fn write_req(ctrl: &Ctrl, dma: &MockDma, ns: &Namespace, slba: u64, r: &Region) -> Req {
    io_req(ctrl.prp(), dma, ns, true, slba, r, 0..r.len())
}

pub fn read_req(ctrl: &Ctrl, dma: &MockDma, ns: &Namespace, slba: u64, r: &Region) -> Req {
    io_req(ctrl.prp(), dma, ns, false, slba, r, 0..r.len())
}

/// The CMB's bus addresses in the model (`CmbConfig::new` puts BAR2 here).
pub const CMB_BUS: u64 = 0xfd00_0000;

/// A model with a 1 MiB CMB under `scheme` (Legacy: NVMe 1.3), a controller with the CMB
/// enabled, and a pool over it.
pub fn up_cmb(dma: &MockDma, scheme: CmbScheme) -> (NvmeModel, Ctrl, CmbInfo, CmbPool<Io>) {
    let vs = match scheme {
        CmbScheme::Legacy => 0x0001_0300,
        CmbScheme::Cmbmsc => 0x0001_0400,
    };
    let (model, mut ctrl) = up_with(
        ModelConfig {
            vs,
            cmb: Some(CmbConfig::new(1 << 20, scheme)),
            ..ModelConfig::default()
        },
        dma,
    );
    let info = ctrl
        .enable_cmb(&model.bars(), ProbeOptions::default())
        .unwrap()
        .expect("the model has a CMB");
    let pool = CmbPool::new(model.cmb_bar().unwrap(), info, ctrl.cc()).unwrap();
    (model, ctrl, info, pool)
}

/// Whether `addr` is in the model's CMB.
pub fn in_cmb(addr: u64) -> bool {
    (CMB_BUS..CMB_BUS + (1 << 20)).contains(&addr)
}

/// Writes `data` into a CMB buffer.
pub fn cmb_fill(buf: &P2pBuf<Io>, data: &[u8]) {
    buf.io()
        .subslice(..data.len())
        .unwrap()
        .copy_from_slice(data)
        .unwrap();
}

/// The first `len` bytes of a CMB buffer, as the model's BAR holds them.
pub fn cmb_peek(model: &NvmeModel, buf_bus: u64, len: usize) -> Vec<u8> {
    let off = (buf_bus - CMB_BUS) as usize;
    model.cmb_bar().unwrap().peek(off, len)
}

/// The completion `f` returns within `within`, polling `qp`.
pub fn poll_until<R: iomem::nvme::sq::SqRing>(
    qp: &mut QueuePair<R, Io, Io>,
    n: usize,
    within: Duration,
) -> iomem::nvme::Result<Vec<Done>> {
    let mut done = Vec::new();
    let end = Instant::now() + within;
    while done.len() < n {
        qp.poll(64, |d| done.push(d))?;
        assert!(
            Instant::now() < end,
            "only {} of {n} completions",
            done.len()
        );
    }
    Ok(done)
}

/// Polls `qp` (8 completions at a time) until a poll fails, at most 300 times — more than the
/// 256 polls between two of the pair's health checks — and returns the last poll's result.
pub fn poll_until_error<R: iomem::nvme::sq::SqRing>(
    qp: &mut QueuePair<R, Io, Io>,
) -> iomem::nvme::Result<usize> {
    let mut polled = Ok(0);
    for _ in 0..300 {
        polled = qp.poll(8, |_| {});
        if polled.is_err() {
            break;
        }
    }
    polled
}

/// Runs `f` and returns its result with the time it took.
pub fn timed<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let r = f();
    (r, t.elapsed())
}
