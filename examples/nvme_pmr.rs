//! Persistence through an NVMe controller's Persistent Memory Region, on Linux (sysfs): the
//! guest half of the QEMU runs `pmr-write` and `pmr-check` (`.ci/qemu/run.sh`), which boot
//! twice on one backing file (`-object memory-backend-file,share=on,…` with
//! `-device nvme,…,pmrdev=…`).
//!
//! - `write SEED`: finds the NVMe controller (PCI class `0x010802`), unbinds a kernel driver,
//!   turns on memory decoding, maps BAR0, probes and enables the PMR ([`pmr::enable`]: PMRCTL.EN,
//!   PMRSTS.NRDY = 0 within PMRTO, PMRMSC = CBA | CMSE), maps the PMR's BAR write-combining,
//!   writes a pattern over the whole PMR, reads it back, flushes ([`PmrPool::flush`]: a full
//!   barrier, then a read of PMRSTS, which QEMU answers with an msync of the backing file), and
//!   prints the pattern's checksum (`IOMEM-PMR-SUM=…`).
//! - `check SEED`: on a fresh boot, prints the PMR's state as found (PMRCTL.EN is 0 after a
//!   power cycle: the contents are not reachable until it is set), enables it, reads the whole
//!   PMR and compares it with the pattern.
//! - `file PATH SEED`: compares a file (the host's backing file) with the pattern.
//!
//! The controller itself is never enabled (CC.EN): the PMR works without it, and nothing is
//! DMA'd. Run as root: `cargo run --release --features linux --example nvme_pmr -- write 7`.

use std::process::ExitCode;
use std::time::Instant;

use iomem::map::linux::PciDevice;
use iomem::nvme::cmb::BarTable;
use iomem::nvme::pmr::{self, PmrPool};
use iomem::nvme::regs::{Cc, ControllerRegs};
use iomem::{Caching, IoMem};

/// PCI class code of an NVMe controller.
const NVME_CLASS: u32 = 0x01_08_02;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// `len` bytes of the pattern for `seed`: splitmix64 of `seed + index` per 8-byte word, little
/// endian.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    let mut i = 0u64;
    while out.len() < len {
        let mut z = seed.wrapping_add(i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        out.extend_from_slice(&(z ^ (z >> 31)).to_le_bytes());
        i += 1;
    }
    out.truncate(len);
    out
}

/// FNV-1a, 64 bits.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Compares `got` with the pattern for `seed`.
fn compare(what: &str, got: &[u8], seed: u64) -> Res<()> {
    let want = pattern(seed, got.len());
    println!(
        "{what}: {} bytes, checksum {:#018x} (pattern {:#018x}), first bytes {:02x?}",
        got.len(),
        checksum(got),
        checksum(&want),
        &got[..got.len().min(8)]
    );
    match got.iter().zip(&want).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(format!("{what}: differs from the pattern at byte {i}").into()),
    }
}

fn run(write: bool, seed: u64) -> Res<()> {
    let t = Instant::now();
    let scan = PciDevice::find_by_class(NVME_CLASS)?;
    let dev = scan
        .devices
        .into_iter()
        .next()
        .ok_or("no NVMe controller found")?;
    if let Some(driver) = dev.driver()? {
        dev.unbind()?;
        println!("unbound {driver}");
    }
    let bars = BarTable::from_sysfs(&dev)?;
    dev.enable(true, false)?; // memory decoding; no DMA here
    let bar0 = dev.map_bar(0, Caching::Uncached)?;
    let regs = ControllerRegs::new(IoMem::new(&bar0))?;
    let info = pmr::probe(&regs, &bars)?.ok_or("the controller has no PMR (CAP.PMRS = 0)")?;
    println!("device {}: {info:?}", dev.address());
    println!(
        "as found: PMRCTL {:?} PMRSTS {:?} PMRMSC {:?}",
        regs.pmrctl()?,
        regs.pmrsts()?,
        regs.pmrmsc()?
    );
    let sts = pmr::enable(&regs, &info)?;
    println!("enabled: PMRSTS {sts:?} PMRMSC {:?}", regs.pmrmsc()?);
    let bar = dev.map_bar(usize::from(info.bir), Caching::WriteCombining)?;
    let pool = PmrPool::new(bar, info, Cc::default())?;
    let io = pool.io();
    let mut back = vec![0u8; io.len()];
    if write {
        let data = pattern(seed, io.len());
        io.copy_from_slice(&data)?;
        io.copy_to_slice(&mut back)?;
        compare("written and read back", &back, seed)?;
        let t_flush = Instant::now();
        let sts = pool.flush(&regs)?;
        println!(
            "flushed (PMRSTS read) in {} us: {sts:?}",
            t_flush.elapsed().as_micros()
        );
        println!("IOMEM-PMR-SUM={:#018x}", checksum(&data));
    } else {
        io.copy_to_slice(&mut back)?;
        compare("after the reboot", &back, seed)?;
        println!("IOMEM-PMR-SUM={:#018x}", checksum(&back));
    }
    println!("done in {} ms", t.elapsed().as_millis());
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seed = |s: &str| s.parse::<u64>().map_err(|e| format!("seed {s:?}: {e}"));
    let r = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["write", s] => seed(s).map_err(Into::into).and_then(|s| run(true, s)),
        ["check", s] => seed(s).map_err(Into::into).and_then(|s| run(false, s)),
        ["file", path, s] => seed(s).map_err(Into::into).and_then(|s| {
            let bytes = std::fs::read(path)?;
            compare(path, &bytes, s)?;
            println!("IOMEM-PMR-SUM={:#018x}", checksum(&bytes));
            Ok(())
        }),
        _ => {
            eprintln!("nvme_pmr: usage: write SEED | check SEED | file PATH SEED");
            return ExitCode::from(2);
        }
    };
    match r {
        Ok(()) => {
            println!("nvme_pmr: PASS");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("nvme_pmr: FAIL: {e}");
            ExitCode::FAILURE
        }
    }
}
