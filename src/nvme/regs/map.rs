//! The controller register map: every register of BAR0 declared once (see
//! [`registers!`](super::macros)). The checks that need more than bit extraction are in
//! [`values`](super::values).

use super::{ControllerRegs, PmrHealth, Registers, Shutdown, ShutdownStatus};

registers! {
    block = Registers;
    extra_offsets {
        /// Start of the doorbell registers.
        pub const DOORBELLS: usize = 0x1000;
    }

    /// Controller Capabilities (CAP): what the controller can do. Always valid once decoded:
    /// MQES is not zero, CSS names a command set, MPSMIN ≤ MPSMAX.
    CAP @ 0x00 [cap_lo, cap_hi]: u64 => Cap, ReadOnly(cap), gone = OnesOrZero,
        check = Cap::check {
        15:0  mqes: u16, "MQES: maximum queue entries supported, 0's based.";
        16:16 cqr: bool, "CQR: contiguous queues required.";
        18:17 ams: u8, "AMS: arbitration mechanisms supported.";
        31:24 to: u8, "TO: worst-case time to become ready, in 500 ms units.";
        35:32 dstrd: u8, "DSTRD: doorbell stride exponent; the stride is `4 << DSTRD` bytes.";
        36:36 nssrs: bool, "NSSRS: NVM subsystem reset supported.";
        44:37 css: u8, "CSS: command sets supported; bit 0 = NVM, bit 6 = I/O command sets, \
            bit 7 = admin only.";
        45:45 bps: bool, "BPS: boot partition support.";
        47:46 cps: u8, "CPS: controller power scope (NVMe 2.0).";
        51:48 mpsmin: u8, "MPSMIN: minimum memory page size exponent; the size is \
            `2^(12 + MPSMIN)`.";
        55:52 mpsmax: u8, "MPSMAX: maximum memory page size exponent.";
        56:56 pmrs: bool, "PMRS: persistent memory region supported.";
        57:57 cmbs: bool, "CMBS: controller memory buffer supported (NVMe 1.4+): the CMB is \
            controlled through CMBMSC.";
        58:58 nsss: bool, "NSSS: NVM subsystem shutdown supported (NVMe 2.0).";
        60:59 crms: u8, "CRMS: controller ready modes supported (NVMe 2.0).";
    }

    /// Version (VS): `major.minor.tertiary`. Ordered by version.
    #[derive(PartialOrd, Ord)]
    VS @ 0x08 [vs]: u32 => Vs, ReadOnly(vs), gone = OnesOrZero, check = Vs::check {
        7:0   tertiary: u8 => with_tertiary, "TER: tertiary version.";
        15:8  minor: u8 => with_minor, "MNR: minor version.";
        31:16 major: u16 => with_major, "MJR: major version.";
    }

    /// Interrupt Mask Set (INTMS): writing 1 masks an interrupt vector; reads give the mask.
    INTMS @ 0x0C [intms]: u32 => Intms, ReadWrite(intms, set_intms), gone = Never {
        31:0  ivms: u32 => with_ivms, "IVMS: interrupt vector mask set.";
    }

    /// Interrupt Mask Clear (INTMC): writing 1 unmasks an interrupt vector; reads give the
    /// mask.
    INTMC @ 0x10 [intmc]: u32 => Intmc, ReadWrite(intmc, set_intmc), gone = Never {
        31:0  ivmc: u32 => with_ivmc, "IVMC: interrupt vector mask clear.";
    }

    /// Controller Configuration (CC). Built with the `with_` methods.
    #[derive(Default)]
    CC @ 0x14 [cc]: u32 => Cc, ReadWrite(cc, set_cc), gone = Ones {
        0:0   en: bool => with_en, "EN: enable.";
        6:4   css: u8 =>? with_css, "CSS: I/O command set selected.";
        10:7  mps: u8 =>? with_mps, "MPS: memory page size exponent; the page size is \
            `2^(12 + MPS)`.";
        13:11 ams: u8 =>? with_ams, "AMS: arbitration mechanism selected.";
        15:14 shn: u8 as Shutdown => with_shn, "SHN: shutdown notification.";
        19:16 iosqes: u8 =>? with_iosqes, "IOSQES: I/O submission queue entry size exponent.";
        23:20 iocqes: u8 =>? with_iocqes, "IOCQES: I/O completion queue entry size exponent.";
        24:24 crime: bool => with_crime, "CRIME: controller ready independent of media \
            enable (NVMe 2.0).";
    }

    /// Controller Status (CSTS).
    CSTS @ 0x1C [csts]: u32 => Csts, ReadOnly(csts), gone = Ones {
        0:0   rdy: bool, "RDY: ready.";
        1:1   cfs: bool, "CFS: controller fatal status.";
        3:2   shst: u8 as ShutdownStatus, "SHST: shutdown status.";
        4:4   nssro: bool, "NSSRO: NVM subsystem reset occurred.";
        5:5   pp: bool, "PP: processing paused.";
        6:6   st: bool, "ST: shutdown type (NVMe 2.0).";
    }

    /// NVM Subsystem Reset (NSSR): writing [`Nssr::RESET`](crate::nvme::regs::Nssr::RESET) (\"NVMe\") resets the subsystem.
    NSSR @ 0x20 [nssr]: u32 => Nssr, WriteOnly(set_nssr) {
        31:0  nssrc: u32 => with_nssrc, "NSSRC: NVM subsystem reset control.";
    }

    /// Admin Queue Attributes (AQA): admin queue sizes.
    AQA @ 0x24 [aqa]: u32 => Aqa, ReadWrite(aqa, set_aqa), gone = Ones {
        11:0  asqs: u16 =>? with_asqs, "ASQS: admin submission queue size, 0's based.";
        27:16 acqs: u16 =>? with_acqs, "ACQS: admin completion queue size, 0's based.";
    }

    /// An admin queue base address (ASQ, ACQ): page aligned.
    type QueueBase: u64, ReadWrite, check = QueueBase::check {
        63:12 addr: addr =>? with_addr, "The queue's bus address.";
    }

    /// Admin Submission Queue Base Address (ASQ).
    ASQ @ 0x28 [asq_lo, asq_hi]: u64 => QueueBase, ReadWrite(asq, set_asq), gone = Ones;

    /// Admin Completion Queue Base Address (ACQ).
    ACQ @ 0x30 [acq_lo, acq_hi]: u64 => QueueBase, ReadWrite(acq, set_acq), gone = Ones;

    /// Controller Memory Buffer Location (CMBLOC). Decoding the offset needs CMBSZ too (see
    /// [`Cmbloc::offset_bytes`](crate::nvme::regs::Cmbloc::offset_bytes)); the BIR is checked by [`Cmbloc::bir_checked`](crate::nvme::regs::Cmbloc::bir_checked).
    CMBLOC @ 0x38 [cmbloc]: u32 => Cmbloc, ReadOnly(cmbloc), gone = Ones {
        2:0   bir: u8, "BIR: base indicator register: which BAR holds the CMB.";
        3:3   cqmms: bool, "CQMMS: CMB queue mixed memory support.";
        4:4   cqpds: bool, "CQPDS: CMB queue physically discontiguous support.";
        5:5   cdpmls: bool, "CDPMLS: CMB data pointer mixed locations support.";
        6:6   cdpcils: bool, "CDPCILS: CMB data pointer and command independent locations \
            support.";
        7:7   cdmmms: bool, "CDMMMS: CMB data metadata mixed memory support.";
        8:8   cqda: bool, "CQDA: CMB queue dword alignment.";
        31:12 ofst: u32, "OFST: offset of the CMB in the BAR, in CMBSZ.SZU units.";
    }

    /// Controller Memory Buffer Size (CMBSZ). Zero means no CMB.
    CMBSZ @ 0x3C [cmbsz]: u32 => Cmbsz, ReadOnly(cmbsz), gone = Ones {
        0:0   sqs: bool, "SQS: submission queues may live in the CMB.";
        1:1   cqs: bool, "CQS: completion queues may live in the CMB.";
        2:2   lists: bool, "LISTS: PRP and SGL lists may live in the CMB.";
        3:3   rds: bool, "RDS: read data (controller-to-host transfers) may target the CMB.";
        4:4   wds: bool, "WDS: write data (host-to-controller transfers) may come from the CMB.";
        11:8  szu: u8, "SZU: size units, raw (see \
            [`Cmbsz::unit_bytes`](crate::nvme::regs::Cmbsz::unit_bytes)).";
        31:12 sz: u32, "SZ: size in SZU units, raw.";
    }

    /// Boot Partition Information (BPINFO).
    BPINFO @ 0x40 [bpinfo]: u32 => Bpinfo, ReadOnly(bpinfo), gone = Ones {
        14:0  bpsz: u16, "BPSZ: boot partition size, in 128 KiB units.";
        25:24 brs: u8, "BRS: boot read status.";
        31:31 abpid: bool, "ABPID: active boot partition ID.";
    }

    /// Boot Partition Read Select (BPRSEL).
    BPRSEL @ 0x44 [bprsel]: u32 => Bprsel, ReadWrite(bprsel, set_bprsel), gone = Ones {
        9:0   bprsz: u16 =>? with_bprsz, "BPRSZ: boot partition read size, in 4 KiB units.";
        29:10 bprof: u32 =>? with_bprof, "BPROF: boot partition read offset, in 4 KiB units.";
        31:31 bpid: bool => with_bpid, "BPID: boot partition identifier.";
    }

    /// Boot Partition Memory Buffer Location (BPMBL).
    BPMBL @ 0x48 [bpmbl_lo, bpmbl_hi]: u64 => Bpmbl, ReadWrite(bpmbl, set_bpmbl), gone = Ones {
        63:12 bmbba: addr =>? with_bmbba, "BMBBA: boot partition memory buffer base address.";
    }

    /// Controller Memory Buffer Memory Space Control (CMBMSC, NVMe 1.4+).
    #[derive(Default)]
    CMBMSC @ 0x50 [cmbmsc_lo, cmbmsc_hi]: u64 => Cmbmsc, ReadWrite(cmbmsc, set_cmbmsc),
        gone = Ones, check = Cmbmsc::check {
        0:0   cre: bool => with_cre, "CRE: capabilities registers enabled (CMBLOC, CMBSZ).";
        1:1   cmse: bool => with_cmse, "CMSE: controller memory space enable.";
        63:12 cba: addr =>? with_cba, "CBA: controller base address of the CMB.";
    }

    /// Controller Memory Buffer Status (CMBSTS, NVMe 1.4+).
    CMBSTS @ 0x58 [cmbsts]: u32 => Cmbsts, ReadOnly(cmbsts), gone = Ones {
        0:0   cbai: bool, "CBAI: controller base address invalid: the CBA written to CMBMSC was \
            refused.";
    }

    /// Controller Memory Buffer Elasticity Buffer Size (CMBEBS, NVMe 1.4+).
    CMBEBS @ 0x5C [cmbebs]: u32 => Cmbebs, ReadOnly(cmbebs), gone = Ones {
        3:0   cmbszu: u8, "CMBSZU: CMB elasticity buffer size units.";
        4:4   rbb: bool, "RBB: read bypass behavior.";
        31:8  cmbwbz: u32, "CMBWBZ: CMB elasticity buffer size, in CMBSZU units.";
    }

    /// Controller Memory Buffer Sustained Write Throughput (CMBSWTP, NVMe 1.4+).
    CMBSWTP @ 0x60 [cmbswtp]: u32 => Cmbswtp, ReadOnly(cmbswtp), gone = Ones {
        3:0   cmbswtu: u8, "CMBSWTU: CMB sustained write throughput units.";
        31:8  cmbswtv: u32, "CMBSWTV: CMB sustained write throughput, in CMBSWTU units.";
    }

    /// NVM Subsystem Shutdown (NSSD, NVMe 2.0).
    NSSD @ 0x64 [nssd]: u32 => Nssd, WriteOnly(set_nssd) {
        31:0  nssc: u32 => with_nssc, "NSSC: NVM subsystem shutdown control.";
    }

    /// Controller Ready Timeouts (CRTO, NVMe 2.0).
    CRTO @ 0x68 [crto]: u32 => Crto, ReadOnly(crto), gone = Ones {
        15:0  crwmt: u16, "CRWMT: controller ready with media timeout, in 500 ms units.";
        31:16 crimt: u16, "CRIMT: controller ready independent of media timeout, in 500 ms \
            units.";
    }

    /// Persistent Memory Region Capabilities (PMRCAP, NVMe 1.4+): zero on a controller without
    /// a PMR (CAP.PMRS clear). Once decoded, PMRTU is not reserved, PMRWBM names a mechanism
    /// and RDS/WDS are set only with CMSS.
    PMRCAP @ 0xE00 [pmrcap]: u32 => Pmrcap, ReadOnly(pmrcap), gone = Ones,
        check = Pmrcap::check {
        3:3   rds: bool, "RDS: read data support: data of commands that move data to the host \
            (Read) may be in the PMR.";
        4:4   wds: bool, "WDS: write data support: data of commands that move data from the \
            host (Write) may be in the PMR.";
        7:5   bir: u8, "BIR: base indicator register: the BAR that is the PMR (2 to 5).";
        9:8   pmrtu: u8, "PMRTU: time units of PMRTO: 0 = 500 ms, 1 = minutes.";
        13:10 pmrwbm: u8, "PMRWBM: write barrier mechanisms: bit 0 (CMR) a completed memory \
            read of the PMR, bit 1 (CPMRSTSR) a completed read of PMRSTS, makes every earlier \
            write to the PMR persistent.";
        23:16 pmrto: u8, "PMRTO: time to wait for PMRSTS.NRDY to follow PMRCTL.EN, in PMRTU \
            units.";
        24:24 cmss: bool, "CMSS: controller memory space supported: host-supplied addresses \
            (data pointers) may reference the PMR once PMRMSC.CMSE is set.";
    }

    /// Persistent Memory Region Control (PMRCTL, NVMe 1.4+). Not reset by a controller reset.
    #[derive(Default)]
    PMRCTL @ 0xE04 [pmrctl]: u32 => Pmrctl, ReadWrite(pmrctl, set_pmrctl), gone = Ones {
        0:0   en: bool => with_en, "EN: enable: the PMR serves PCIe reads and writes once \
            PMRSTS.NRDY is clear.";
    }

    /// Persistent Memory Region Status (PMRSTS, NVMe 1.4+). Reading it is the flush of a
    /// controller whose PMRCAP.PMRWBM has bit 1.
    PMRSTS @ 0xE08 [pmrsts]: u32 => Pmrsts, ReadOnly(pmrsts), gone = Ones {
        7:0   err: u8, "ERR: error, vendor specific (0: none).";
        8:8   nrdy: bool, "NRDY: not ready: the PMR does not serve PCIe accesses.";
        11:9  hsts: u8 as PmrHealth, "HSTS: health status.";
        12:12 cbai: bool, "CBAI: controller base address invalid: the CBA written to PMRMSC was \
            refused.";
    }

    /// Persistent Memory Region Elasticity Buffer Size (PMREBS, NVMe 1.4+).
    PMREBS @ 0xE0C [pmrebs]: u32 => Pmrebs, ReadOnly(pmrebs), gone = Ones {
        3:0   pmrszu: u8, "PMRSZU: size units of PMRWBZ: 0 bytes, 1 KiB, 2 MiB, 3 GiB.";
        4:4   rbb: bool, "RBB: read bypass behavior: reads may bypass buffered writes.";
        31:8  pmrwbz: u32, "PMRWBZ: elasticity buffer size, in PMRSZU units.";
    }

    /// Persistent Memory Region Sustained Write Throughput (PMRSWTP, NVMe 1.4+).
    PMRSWTP @ 0xE10 [pmrswtp]: u32 => Pmrswtp, ReadOnly(pmrswtp), gone = Ones {
        3:0   pmrswtu: u8, "PMRSWTU: throughput units: 0 bytes/s, 1 KiB/s, 2 MiB/s, 3 GiB/s.";
        31:8  pmrswtv: u32, "PMRSWTV: sustained write throughput, in PMRSWTU units.";
    }

    /// Persistent Memory Region Controller Memory Space Control (PMRMSCL at 0xE14, PMRMSCU at
    /// 0xE18; NVMe 1.4+).
    #[derive(Default)]
    PMRMSC @ 0xE14 [pmrmsc_lo, pmrmsc_hi]: u64 => Pmrmsc, ReadWrite(pmrmsc, set_pmrmsc),
        gone = Ones, check = Pmrmsc::check {
        1:1   cmse: bool => with_cmse, "CMSE: controller memory space enable: addresses in \
            [CBA, CBA + size) reach the PMR.";
        63:12 cba: addr =>? with_cba, "CBA: controller base address of the PMR.";
    }
}

/// Asserts that the last events of `mock` are exactly the accesses of register `name`: one
/// 32-bit access per dword of its `width` bytes at `off`, low dword first for a read and high
/// dword first for a write.
#[cfg(test)]
fn expect_dwords(mock: &crate::backend::MockIo, name: &str, off: usize, width: usize, write: bool) {
    use crate::backend::mock::Dir;
    let mut want: alloc::vec::Vec<usize> = (0..width / 4).map(|i| off + 4 * i).collect();
    if write {
        want.reverse();
    }
    let got = mock.accesses();
    let got_offsets: alloc::vec::Vec<usize> = got.iter().map(|a| a.offset).collect();
    assert_eq!(got_offsets, want, "{name}: offsets of the accesses");
    for a in &got {
        assert_eq!(a.width, 4, "{name}: every access is 32 bits");
        assert_eq!(a.dir == Dir::Write, write, "{name}: direction");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::MockIo;
    use crate::IoMem;

    #[test]
    fn every_register_is_one_access_per_dword_at_its_offset() {
        assert_eq!(ACCESS_TESTS.len(), 27, "one per register");
        for test in ACCESS_TESTS {
            let mock = MockIo::new(0x2000);
            let regs = ControllerRegs::new(IoMem::new(&mock)).unwrap();
            test(&regs, &mock);
            mock.assert_no_violations();
        }
    }
}
