//! Faults a test injects into the model: a status instead of execution, a late or lost
//! completion, a fatal controller, a device that vanished, a controller that never gets ready.

use std::time::Duration;
use std::vec::Vec;

/// Which commands a per-command fault applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Target {
    /// `Some(true)`: admin commands only; `Some(false)`: I/O commands only; `None`: both.
    pub admin: Option<bool>,
    /// Only commands with this opcode; `None`: any opcode.
    pub opcode: Option<u8>,
}

impl Target {
    /// Every command.
    pub const fn any() -> Self {
        Target {
            admin: None,
            opcode: None,
        }
    }

    /// Admin commands with opcode `op`.
    pub const fn admin(op: u8) -> Self {
        Target {
            admin: Some(true),
            opcode: Some(op),
        }
    }

    /// I/O commands with opcode `op`.
    pub const fn io(op: u8) -> Self {
        Target {
            admin: Some(false),
            opcode: Some(op),
        }
    }

    /// Whether a command (`admin`: it came from the admin queue) matches.
    pub const fn matches(&self, admin: bool, opcode: u8) -> bool {
        let queue = match self.admin {
            Some(a) => a == admin,
            None => true,
        };
        let op = match self.opcode {
            Some(o) => o == opcode,
            None => true,
        };
        queue && op
    }
}

/// How a vanished device's BARs read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vanish {
    /// Every read returns 0: QEMU after `device_del`, or PCI memory decoding off.
    Zeros,
    /// Every read returns all ones of its width: real hardware after a surprise removal.
    AllOnes,
}

impl Vanish {
    /// What a read of `width` bytes returns (the low 16 bytes of a wider one).
    pub const fn value(self, width: usize) -> u128 {
        match self {
            Vanish::Zeros => 0,
            Vanish::AllOnes if width >= 16 => u128::MAX,
            Vanish::AllOnes => (1u128 << (8 * width)) - 1,
        }
    }
}

/// A fault to inject with [`NvmeModel::inject`](super::NvmeModel::inject).
///
/// The per-command faults (`Status`, `Delay`, `LoseCompletion`) apply to the next `times`
/// matching commands ([`FOREVER`](Self::FOREVER): all of them); when several match a command
/// the one injected first applies. The others hold until
/// [`NvmeModel::clear_faults`](super::NvmeModel::clear_faults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Matching commands are not executed and complete with this Status Field (bits 14:0 as
    /// the specification lays them out, `dw3 >> 17`: SC 7:0, SCT 10:8, CRD 12:11, More 13,
    /// DNR 14).
    Status {
        /// Which commands.
        target: Target,
        /// The Status Field.
        status: u16,
        /// How many commands.
        times: u32,
    },
    /// Matching commands execute at once, their completions are posted once `delay` has
    /// passed (on a later BAR0 access or [`NvmeModel::advance`](super::NvmeModel::advance)).
    Delay {
        /// Which commands.
        target: Target,
        /// How long the completion is held.
        delay: Duration,
        /// How many commands.
        times: u32,
    },
    /// Matching commands execute and their completions are never posted.
    LoseCompletion {
        /// Which commands.
        target: Target,
        /// How many commands.
        times: u32,
    },
    /// CSTS.CFS reads 1 from now on, and no more commands are processed.
    Fatal,
    /// The device is gone: every BAR0 and CMB read returns [`Vanish::value`], writes are
    /// dropped, nothing more is fetched, executed or posted.
    Vanish(Vanish),
    /// CC.EN = 1 never sets CSTS.RDY.
    NeverReady,
}

impl Fault {
    /// `times` for a fault that applies to every matching command.
    pub const FOREVER: u32 = u32::MAX;
}

/// What a per-command fault does to one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    /// Complete with this status, without executing.
    Status(u16),
    /// Execute, post after the delay.
    Delay(Duration),
    /// Execute, never post.
    Lose,
}

/// The faults in force.
#[derive(Debug, Default)]
pub(super) struct Faults {
    per_command: Vec<(Target, Action, u32)>,
    /// CSTS.CFS is forced on.
    pub fatal: bool,
    /// The device is gone.
    pub vanish: Option<Vanish>,
    /// CSTS.RDY never follows CC.EN.
    pub never_ready: bool,
}

impl Faults {
    /// Adds a fault.
    pub fn add(&mut self, fault: Fault) {
        let (target, action, times) = match fault {
            Fault::Status {
                target,
                status,
                times,
            } => (target, Action::Status(status & 0x7fff), times),
            Fault::Delay {
                target,
                delay,
                times,
            } => (target, Action::Delay(delay), times),
            Fault::LoseCompletion { target, times } => (target, Action::Lose, times),
            Fault::Fatal => return self.fatal = true,
            Fault::Vanish(v) => return self.vanish = Some(v),
            Fault::NeverReady => return self.never_ready = true,
        };
        if times > 0 {
            self.per_command.push((target, action, times));
        }
    }

    /// The action for a command, counted against its fault.
    pub fn take(&mut self, admin: bool, opcode: u8) -> Option<Action> {
        let i = self
            .per_command
            .iter()
            .position(|(t, _, _)| t.matches(admin, opcode))?;
        let (_, action, times) = &mut self.per_command[i];
        let action = *action;
        if *times != Fault::FOREVER {
            *times -= 1;
            if *times == 0 {
                self.per_command.remove(i);
            }
        }
        Some(action)
    }
}
