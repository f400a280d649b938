//! [`Status`]: the Status Field of a completion-queue entry, decoded.
//!
//! NVM Express Base Specification, "Completion Queue Entry" (Dword 3 bits 31:17) and "Status
//! Field Definition": SC (status code, bits 7:0 of the field), SCT (status code type, 10:8), CRD
//! (command retry delay, 12:11), M (more, 13), DNR (do not retry, 14). Linux names the codes in
//! `include/linux/nvme.h` (`NVME_SC_*`).

use core::fmt;

/// A completion's Status Field (the 15 bits above the phase tag in Dword 3).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(u16);

/// Status Code Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusType {
    /// 0h: Generic Command Status.
    Generic,
    /// 1h: Command Specific Status.
    CommandSpecific,
    /// 2h: Media and Data Integrity Errors.
    Media,
    /// 3h: Path Related Status.
    Path,
    /// 7h: Vendor Specific.
    Vendor,
    /// 4h–6h: reserved.
    Reserved(u8),
}

/// The status codes a driver meets most, by name; [`Code::Other`] for the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Code {
    /// Generic 00h: Successful Completion.
    Success,
    /// Generic 01h: Invalid Command Opcode.
    InvalidOpcode,
    /// Generic 02h: Invalid Field in Command.
    InvalidField,
    /// Generic 03h: Command ID Conflict.
    CommandIdConflict,
    /// Generic 04h: Data Transfer Error.
    DataTransferError,
    /// Generic 06h: Internal Error.
    InternalError,
    /// Generic 07h: Command Abort Requested.
    AbortRequested,
    /// Generic 08h: Command Aborted due to SQ Deletion.
    AbortedSqDeletion,
    /// Generic 0Bh: Invalid Namespace or Format.
    InvalidNamespace,
    /// Generic 0Ch: Command Sequence Error.
    CommandSequenceError,
    /// Generic 12h: Invalid Use of Controller Memory Buffer (a command mixing CMB and host data
    /// pointers, or a CMB address while the CMB is disabled).
    InvalidCmbUse,
    /// Generic 13h: PRP Offset Invalid.
    PrpOffsetInvalid,
    /// Generic 80h: LBA Out of Range.
    LbaOutOfRange,
    /// Generic 81h: Capacity Exceeded.
    CapacityExceeded,
    /// Generic 82h: Namespace Not Ready.
    NamespaceNotReady,
    /// Command specific 00h: Completion Queue Invalid.
    InvalidCq,
    /// Command specific 01h: Invalid Queue Identifier.
    InvalidQueueId,
    /// Command specific 02h: Invalid Queue Size.
    InvalidQueueSize,
    /// Command specific 08h: Invalid Interrupt Vector.
    InvalidInterruptVector,
    /// Media 80h: Write Fault.
    WriteFault,
    /// Media 81h: Unrecovered Read Error.
    UnrecoveredReadError,
    /// Media 86h: Access Denied.
    AccessDenied,
    /// Any other code.
    Other {
        /// Status Code Type (3 bits).
        sct: u8,
        /// Status Code.
        sc: u8,
    },
}

impl Code {
    /// The specification's name for the code.
    pub const fn name(self) -> &'static str {
        match self {
            Code::Success => "Successful Completion",
            Code::InvalidOpcode => "Invalid Command Opcode",
            Code::InvalidField => "Invalid Field in Command",
            Code::CommandIdConflict => "Command ID Conflict",
            Code::DataTransferError => "Data Transfer Error",
            Code::InternalError => "Internal Error",
            Code::AbortRequested => "Command Abort Requested",
            Code::AbortedSqDeletion => "Command Aborted due to SQ Deletion",
            Code::InvalidNamespace => "Invalid Namespace or Format",
            Code::CommandSequenceError => "Command Sequence Error",
            Code::InvalidCmbUse => "Invalid Use of Controller Memory Buffer",
            Code::PrpOffsetInvalid => "PRP Offset Invalid",
            Code::LbaOutOfRange => "LBA Out of Range",
            Code::CapacityExceeded => "Capacity Exceeded",
            Code::NamespaceNotReady => "Namespace Not Ready",
            Code::InvalidCq => "Completion Queue Invalid",
            Code::InvalidQueueId => "Invalid Queue Identifier",
            Code::InvalidQueueSize => "Invalid Queue Size",
            Code::InvalidInterruptVector => "Invalid Interrupt Vector",
            Code::WriteFault => "Write Fault",
            Code::UnrecoveredReadError => "Unrecovered Read Error",
            Code::AccessDenied => "Access Denied",
            Code::Other { .. } => "unnamed status",
        }
    }
}

impl Status {
    /// The Status Field as it sits in bits 14:0 (DNR in bit 14, SC in 7:0); bit 15 is ignored.
    pub const fn from_field(field: u16) -> Self {
        Status(field & 0x7fff)
    }

    /// The Status Field of a completion entry's Dword 3 (bits 31:17).
    pub const fn from_dw3(dw3: u32) -> Self {
        // CAST: bits 31:17 shifted down are 15 bits.
        Status::from_field((dw3 >> 17) as u16)
    }

    /// The raw 15-bit field.
    pub const fn raw(self) -> u16 {
        self.0
    }

    /// Status Code (SC).
    pub const fn sc(self) -> u8 {
        // CAST: the low 8 bits, by intent.
        self.0 as u8
    }

    /// Status Code Type (SCT), raw 3 bits.
    pub const fn sct_raw(self) -> u8 {
        // CAST: 3 bits.
        ((self.0 >> 8) & 0x7) as u8
    }

    /// Status Code Type.
    pub const fn sct(self) -> StatusType {
        match self.sct_raw() {
            0 => StatusType::Generic,
            1 => StatusType::CommandSpecific,
            2 => StatusType::Media,
            3 => StatusType::Path,
            7 => StatusType::Vendor,
            t => StatusType::Reserved(t),
        }
    }

    /// Command Retry Delay (CRD): which of the controller's retry delay times to wait, 0 for
    /// none.
    pub const fn crd(self) -> u8 {
        // CAST: 2 bits.
        ((self.0 >> 11) & 0x3) as u8
    }

    /// More (M): the controller has more status information (the Error Information log).
    pub const fn more(self) -> bool {
        self.0 & (1 << 13) != 0
    }

    /// Do Not Retry (DNR): the same command would fail again.
    pub const fn dnr(self) -> bool {
        self.0 & (1 << 14) != 0
    }

    /// Whether the command succeeded (SCT 0, SC 0).
    pub const fn is_success(self) -> bool {
        self.0 & 0x7ff == 0
    }

    /// The code, by name where the crate knows it.
    pub const fn code(self) -> Code {
        match (self.sct_raw(), self.sc()) {
            (0, 0x00) => Code::Success,
            (0, 0x01) => Code::InvalidOpcode,
            (0, 0x02) => Code::InvalidField,
            (0, 0x03) => Code::CommandIdConflict,
            (0, 0x04) => Code::DataTransferError,
            (0, 0x06) => Code::InternalError,
            (0, 0x07) => Code::AbortRequested,
            (0, 0x08) => Code::AbortedSqDeletion,
            (0, 0x0b) => Code::InvalidNamespace,
            (0, 0x0c) => Code::CommandSequenceError,
            (0, 0x12) => Code::InvalidCmbUse,
            (0, 0x13) => Code::PrpOffsetInvalid,
            (0, 0x80) => Code::LbaOutOfRange,
            (0, 0x81) => Code::CapacityExceeded,
            (0, 0x82) => Code::NamespaceNotReady,
            (1, 0x00) => Code::InvalidCq,
            (1, 0x01) => Code::InvalidQueueId,
            (1, 0x02) => Code::InvalidQueueSize,
            (1, 0x08) => Code::InvalidInterruptVector,
            (2, 0x80) => Code::WriteFault,
            (2, 0x81) => Code::UnrecoveredReadError,
            (2, 0x86) => Code::AccessDenied,
            (sct, sc) => Code::Other { sct, sc },
        }
    }
}

impl fmt::Debug for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("raw", &format_args!("{:#06x}", self.0))
            .field("code", &self.code())
            .field("crd", &self.crd())
            .field("more", &self.more())
            .field("dnr", &self.dnr())
            .finish()
    }
}

impl fmt::Display for Status {
    /// The specification's name, the SCT/SC pair and the flags: "Invalid Use of Controller
    /// Memory Buffer (SCT 0h, SC 12h, DNR)".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (SCT {:x}h, SC {:02x}h",
            self.code().name(),
            self.sct_raw(),
            self.sc()
        )?;
        if self.crd() != 0 {
            write!(f, ", CRD {}", self.crd())?;
        }
        if self.more() {
            f.write_str(", More")?;
        }
        if self.dnr() {
            f.write_str(", DNR")?;
        }
        f.write_str(")")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;

    #[test]
    fn fields_decode_as_the_specification_lays_them_out() {
        // QEMU's answer to a command mixing CMB and host data pointers: 0x4012.
        let s = Status::from_field(0x4012);
        assert_eq!(
            (s.sct(), s.sc(), s.crd(), s.more(), s.dnr()),
            (StatusType::Generic, 0x12, 0, false, true)
        );
        assert_eq!(s.code(), Code::InvalidCmbUse);
        assert_eq!(
            s.to_string(),
            "Invalid Use of Controller Memory Buffer (SCT 0h, SC 12h, DNR)"
        );
        // From Dword 3: CID 7, phase 1, LBA Out of Range with More and CRD 2.
        let dw3 = 7 | 1 << 16 | (0x80 | 2 << 11 | 1 << 13) << 17;
        let s = Status::from_dw3(dw3);
        assert_eq!(s.code(), Code::LbaOutOfRange);
        assert_eq!((s.crd(), s.more(), s.dnr()), (2, true, false));
        assert_eq!(
            s.to_string(),
            "LBA Out of Range (SCT 0h, SC 80h, CRD 2, More)"
        );
        assert!(Status::from_dw3(1 << 16 | 9).is_success());
        assert!(!Status::from_field(0x0102).is_success());
        assert_eq!(Status::from_field(0x0102).code(), Code::InvalidQueueSize);
        assert_eq!(
            Status::from_field(0x0281).code(),
            Code::UnrecoveredReadError
        );
        assert_eq!(Status::from_field(0x0502).sct(), StatusType::Reserved(5));
        assert_eq!(
            Status::from_field(0x07aa).code(),
            Code::Other { sct: 7, sc: 0xaa }
        );
        // Bit 15 of a 16-bit value is not part of the field.
        assert_eq!(Status::from_field(0x8000).raw(), 0);
    }

    /// Every named code decodes from its own (SCT, SC) and no two share one.
    #[test]
    fn named_codes_round_trip() {
        let mut seen = alloc::vec::Vec::new();
        for sct in 0..8u16 {
            for sc in 0..=255u16 {
                let c = Status::from_field(sct << 8 | sc).code();
                if !matches!(c, Code::Other { .. }) {
                    assert!(!seen.contains(&c), "{c:?} twice");
                    seen.push(c);
                } else {
                    assert_eq!(
                        c,
                        Code::Other {
                            sct: sct as u8,
                            sc: sc as u8
                        }
                    );
                }
            }
        }
        assert_eq!(seen.len(), 22);
    }
}
