//! Register decode: arbitrary register values never panic; every failure is a typed error, and
//! a CMB that decodes lies inside its BAR. Also runs `cmb::probe` against a mock BAR0 holding
//! the values, and raw-offset accesses at arbitrary offsets against it.
#![no_main]

use iomem::backend::MockIo;
use iomem::nvme::cmb::{self, BarTable, CmbScheme, PciBar, ProbeOptions};
use iomem::nvme::regs::*;
use iomem::nvme::Error;
use iomem::IoMem;
use libfuzzer_sys::fuzz_target;

fn typed(e: &Error) -> bool {
    matches!(
        e,
        Error::BadRegister { .. }
            | Error::DeviceGone { .. }
            | Error::Unsupported { .. }
            | Error::Core(
                iomem::Error::InvalidArgument(_)
                    | iomem::Error::Overflow { .. }
                    | iomem::Error::OutOfRange { .. }
                    | iomem::Error::Misaligned { .. }
            )
    )
}

fuzz_target!(|data: &[u8]| {
    let mut b = [0u8; 64];
    let n = data.len().min(64);
    b[..n].copy_from_slice(&data[..n]);
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    let (cap, vs, cc, csts, aqa) = (u64_at(0), u32_at(8), u32_at(12), u32_at(16), u32_at(20));
    let (asq, cmbloc, cmbsz, cmbmsc, cmbsts) =
        (u64_at(24), u32_at(32), u32_at(36), u64_at(40), u32_at(48));
    let (bar_base, bar_log2) = (u32_at(52) as u64 * 4096, 12 + (b[56] % 28) as u32);

    if let Ok(c) = Cap::decode(cap) {
        let _ = (
            c.mqes(),
            c.cqr(),
            c.timeout_ms(),
            c.mpsmin_bytes(),
            c.mpsmax_bytes(),
            c.cmbs(),
        );
        for q in [0u16, 1, u16::MAX] {
            assert!(c.sq_tail_doorbell(q).unwrap() >= 0x1000);
            assert!(c.cq_head_doorbell(q).unwrap() > c.sq_tail_doorbell(q).unwrap());
        }
        let _ = Cc::from_raw(cc).check_against(c);
    } else if let Err(e) = Cap::decode(cap) {
        assert!(typed(&e));
    }
    if let Err(e) = Vs::decode(vs) {
        assert!(typed(&e));
    }
    let c = Cc::from_raw(cc);
    let _ = (c.en(), c.page_size(), c.shn(), c.iosqes(), c.iocqes());
    if let Err(e) = Csts::decode(csts) {
        assert!(typed(&e));
    }
    let a = Aqa::from_raw(aqa);
    assert!(a.sq_entries() >= 1 && a.cq_entries() <= 4096);
    let _ = QueueBase::decode("ASQ", asq);
    let _ = Cmbmsc::decode(cmbmsc);
    let _ = Cmbsts::from_raw(cmbsts).cbai();

    let (loc, sz) = (Cmbloc::from_raw(cmbloc), Cmbsz::from_raw(cmbsz));
    let _ = (
        loc.bir_checked(),
        loc.offset_bytes(sz),
        sz.size_bytes(),
        sz.unit_bytes(),
    );
    // SAFETY: made-up BARs of a mock controller: no device is given their addresses.
    let Ok(bar) = (unsafe { PciBar::new(bar_base, 1u64 << bar_log2) }) else {
        return;
    };
    let mut bars = BarTable::new();
    for i in [0usize, 2, 3, 4, 5] {
        if b[57] >> i & 1 == 1 {
            bars = bars.with(i, bar).unwrap();
        }
    }
    let strict = ProbeOptions {
        strict_size: b[58] & 1 == 1,
    };
    for scheme in [CmbScheme::Legacy, CmbScheme::Cmbmsc] {
        match cmb::decode(loc, sz, &bars, scheme, strict) {
            Ok(info) => {
                assert!(info.size() > 0 && info.offset().checked_add(info.size()).unwrap() <= bar.size());
                assert_eq!(info.bus_addr(), bar.bus_addr() + info.offset());
            }
            Err(e) => assert!(typed(&e)),
        }
    }

    // The whole probe against a mock holding these registers (writes land in RAM).
    let m = MockIo::new(0x1000);
    m.poke(0, &b[..0x38]);
    m.poke(offsets::CMBLOC, &cmbloc.to_le_bytes());
    m.poke(offsets::CMBSZ, &cmbsz.to_le_bytes());
    m.poke(offsets::CMBMSC, &cmbmsc.to_le_bytes());
    let regs = ControllerRegs::new(IoMem::new(&m)).unwrap();
    match cmb::probe_and_enable(&regs, &bars, strict) {
        Ok(Some(info)) => assert!(info.offset() + info.size() <= bar.size()),
        Ok(None) => {}
        Err(e) => assert!(typed(&e), "{e:?}"),
    }

    // Raw-offset 64-bit accesses check both dwords before the first access: a refused one
    // touches nothing.
    // CAST: on a 32-bit target the low half of the offset; any offset will do.
    let far = u64_at(56) as usize;
    let off = if b[59] & 1 == 1 { far } else { far % 0x1010 };
    m.clear_events();
    match regs.try_write64_hi_lo(off, cap) {
        Ok(()) => assert_eq!(m.writes().len(), 2),
        Err(e) => assert!(typed(&e) && m.accesses().is_empty(), "{e:?}"),
    }
    m.clear_events();
    match regs.try_read64_lo_hi(off) {
        Ok(_) => assert_eq!(m.reads().len(), 2),
        Err(e) => assert!(typed(&e) && m.accesses().is_empty(), "{e:?}"),
    }
});
