// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Deflection of MSR accesses to userspace, and their completion.
//!
//! These are the decisions of upstream's `kvm_msr_reason()`,
//! `kvm_msr_user_space()`, `__kvm_emulate_{rd,wr}msr()`,
//! `kvm_emulator_{get,set}_msr_with_filter()` and the `complete_*` callbacks,
//! expressed as plain values. The kernel side only carries them out (writes
//! `kvm_run`, sets `complete_userspace_io`, injects #GP, writes registers).

use super::errno::Errno;
use super::uapi::{
    KVM_EXIT_X86_RDMSR, KVM_EXIT_X86_WRMSR, KVM_MSR_EXIT_REASON_FILTER, KVM_MSR_EXIT_REASON_INVAL,
    KVM_MSR_EXIT_REASON_UNKNOWN, KVM_MSR_EXIT_REASON_VALID_MASK, KVM_MSR_RET_FILTERED,
    KVM_MSR_RET_UNSUPPORTED, KVM_RUN_MSR_SIZE,
};

/// Validates `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`.
///
/// `cap_flags` is `kvm_enable_cap.flags` (checked first, for every cap) and
/// `arg0` is `args[0]`. Returns the new `user_space_msr_mask`, which replaces
/// the old one (0 included), or [`Errno::Inval`].
pub fn check_user_space_msr_cap(cap_flags: u32, arg0: u64) -> Result<u32, Errno> {
    if cap_flags != 0 {
        return Err(Errno::Inval);
    }
    if arg0 & !u64::from(KVM_MSR_EXIT_REASON_VALID_MASK) != 0 {
        return Err(Errno::Inval);
    }
    // arg0 <= 7 here.
    u32::try_from(arg0).map_err(|_| Errno::Inval)
}

/// The exit reason for a failed MSR access with internal return code `r`
/// (upstream `kvm_msr_reason()`): UNSUPPORTED gives UNKNOWN, FILTERED gives
/// FILTER, anything else (1, negative errnos, ...) gives INVAL.
pub const fn msr_exit_reason(r: i32) -> u32 {
    match r {
        KVM_MSR_RET_UNSUPPORTED => KVM_MSR_EXIT_REASON_UNKNOWN,
        KVM_MSR_RET_FILTERED => KVM_MSR_EXIT_REASON_FILTER,
        _ => KVM_MSR_EXIT_REASON_INVAL,
    }
}

/// Direction of an MSR access.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsrDir {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
}

impl MsrDir {
    /// The `kvm_run.exit_reason` for an exit in this direction.
    pub const fn exit_reason(self) -> u32 {
        match self {
            MsrDir::Read => KVM_EXIT_X86_RDMSR,
            MsrDir::Write => KVM_EXIT_X86_WRMSR,
        }
    }
}

/// The `msr` member of `kvm_run`'s exit union (24 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MsrRun {
    /// Userspace to kernel: nonzero means "inject #GP".
    pub error: u8,
    /// Padding; the kernel zeroes it on exit.
    pub pad: [u8; 7],
    /// Kernel to userspace: one `KVM_MSR_EXIT_REASON_*` bit.
    pub reason: u32,
    /// Kernel to userspace: the MSR index.
    pub index: u32,
    /// Both ways: the value written, or the value to return for a read.
    pub data: u64,
}

impl MsrRun {
    /// Encodes the little-endian `kvm_run.msr` layout.
    pub fn to_bytes(self) -> [u8; KVM_RUN_MSR_SIZE] {
        let mut out = [0u8; KVM_RUN_MSR_SIZE];
        let (head, rest) = out.split_at_mut(8);
        let (reason, rest) = rest.split_at_mut(4);
        let (index, data) = rest.split_at_mut(4);
        let (error, pad) = head.split_at_mut(1);
        error.copy_from_slice(&[self.error]);
        pad.copy_from_slice(&self.pad);
        reason.copy_from_slice(&self.reason.to_le_bytes());
        index.copy_from_slice(&self.index.to_le_bytes());
        data.copy_from_slice(&self.data.to_le_bytes());
        out
    }

    /// Decodes the little-endian `kvm_run.msr` layout.
    pub fn from_bytes(b: &[u8; KVM_RUN_MSR_SIZE]) -> Self {
        let [error, p0, p1, p2, p3, p4, p5, p6, r0, r1, r2, r3, i0, i1, i2, i3, data @ ..] = *b;
        MsrRun {
            error,
            pad: [p0, p1, p2, p3, p4, p5, p6],
            reason: u32::from_le_bytes([r0, r1, r2, r3]),
            index: u32::from_le_bytes([i0, i1, i2, i3]),
            data: u64::from_le_bytes(data),
        }
    }
}

/// A decided exit to userspace (upstream `kvm_msr_user_space()` returning 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MsrExit {
    /// Value for `kvm_run.exit_reason` (29 or 30).
    pub exit_reason: u32,
    /// Contents for `kvm_run.msr` (error and pad zero).
    pub run: MsrRun,
}

/// Upstream `kvm_msr_user_space()`: whether a failed access with return code
/// `r` (nonzero) exits to userspace given the VM's `user_space_msr_mask`,
/// and with which `kvm_run` contents. `data` is only used for writes (reads
/// report 0).
pub fn msr_exit(mask: u32, dir: MsrDir, index: u32, data: u64, r: i32) -> Option<MsrExit> {
    let reason = msr_exit_reason(r);
    if mask & reason == 0 {
        return None;
    }
    Some(MsrExit {
        exit_reason: dir.exit_reason(),
        run: MsrRun {
            error: 0,
            pad: [0; 7],
            reason,
            index,
            data: match dir {
                MsrDir::Read => 0,
                MsrDir::Write => data,
            },
        },
    })
}

/// Register update of a completed read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegWrite {
    /// Nothing to write (writes).
    None,
    /// RDMSR: `RAX = rax`, `RDX = rdx` (each the 32-bit half, zero-extended).
    EdxEax {
        /// New RAX: low 32 bits of the data.
        rax: u64,
        /// New RDX: high 32 bits of the data.
        rdx: u64,
    },
    /// `RDMSR r64, imm32`: write the full value to the saved target GPR.
    Gpr(u64),
}

/// How to complete an MSR exit when userspace re-enters `KVM_RUN`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completion {
    /// `error != 0`: no register write; pass `error` (as an `int`) to the
    /// vendor `complete_emulated_msr` (fast path) or inject #GP (emulator path).
    Fault(u8),
    /// `error == 0`: do the register write, then skip the instruction
    /// (`complete_emulated_msr(vcpu, 0)`, or re-run the emulator with
    /// `EMULTYPE_NO_DECODE | EMULTYPE_SKIP | EMULTYPE_COMPLETE_USER_EXIT`).
    Done(RegWrite),
}

/// Which completion callback the exit was set up with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompletionKind {
    /// RDMSR (fast path or emulator): data goes to EDX:EAX.
    Rdmsr,
    /// `RDMSR r64, imm32`: data goes to one 64-bit GPR.
    RdmsrImm,
    /// WRMSR (any form): only `error` is consumed.
    Wrmsr,
}

/// Completion decision from the `kvm_run.msr` userspace left behind. Any
/// nonzero `error` byte means #GP; `index` and `reason` are ignored.
pub fn complete(kind: CompletionKind, run: &MsrRun) -> Completion {
    if run.error != 0 {
        return Completion::Fault(run.error);
    }
    Completion::Done(match kind {
        CompletionKind::Rdmsr => RegWrite::EdxEax {
            rax: run.data & 0xffff_ffff,
            rdx: run.data >> 32,
        },
        CompletionKind::RdmsrImm => RegWrite::Gpr(run.data),
        CompletionKind::Wrmsr => RegWrite::None,
    })
}
