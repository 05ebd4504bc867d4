// SPDX-License-Identifier: GPL-2.0

//! `KVM_CAP_X86_USER_SPACE_MSR`: the mask, the exit to userspace and its completions.

use core::ffi::c_int;
use kernel::{bindings, prelude::*, sync::atomic::Relaxed};

use crate::{
    filter::to_error,
    msr_filter::{
        exit::{
            check_user_space_msr_cap, complete as decide_completion, msr_exit, Completion,
            CompletionKind, MsrDir, MsrRun, RegWrite,
        },
        uapi::{
            KVM_EXIT_X86_RDMSR, KVM_MSR_EXIT_REASON_FILTER, KVM_MSR_EXIT_REASON_UNKNOWN,
            KVM_MSR_RET_FILTERED, KVM_RUN_MSR_SIZE,
        },
    },
    vm::{Stat, Vm},
};

// `kvm_run.msr` is read and written in whole `u64`s.
const _: () = assert!(KVM_RUN_MSR_SIZE % 8 == 0);

/// `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`: validates `mask` (`args[0]`) and replaces the
/// VM's mask.
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a live VM that uses this module.
pub(crate) unsafe extern "C" fn enable_user_space_msr(
    vm: *mut bindings::kvm_msr_filter_vm,
    mask: u64,
) -> c_int {
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    // `cap->flags` was already checked for every capability by KVM.
    match check_user_space_msr_cap(0, mask) {
        Ok(m) => {
            vm.user_space_msr_mask().store(m, Relaxed);
            0
        }
        Err(e) => to_error(e).to_errno(),
    }
}

/// A vCPU in `KVM_RUN`, between an MSR exit's setup and its completion.
///
/// # Invariants
///
/// `0` is the running `struct kvm_vcpu` of a VM that uses this module.
struct Vcpu(*mut bindings::kvm_vcpu);

impl Vcpu {
    /// Wraps the running vCPU `vcpu`.
    ///
    /// # Safety
    ///
    /// `vcpu` must be the running vCPU KVM passed to one of this module's ops.
    unsafe fn from_raw(vcpu: *mut bindings::kvm_vcpu) -> Self {
        // INVARIANT: the caller's guarantee.
        Self(vcpu)
    }

    /// Reads the `msr` member of the vCPU's `kvm_run`, once.
    fn read_run_msr(&self) -> MsrRun {
        // SAFETY: `self.0` is valid (type invariants); the result points to its `kvm_run.msr`.
        let src = unsafe { bindings::kvm_msr_filter_vcpu_run_msr(self.0) }.cast::<u64>();
        let mut raw = [0u8; KVM_RUN_MSR_SIZE];
        let (words, _) = raw.as_chunks_mut::<8>();
        for (i, w) in words.iter_mut().enumerate() {
            // SAFETY: `src` points to the 24-byte `msr` member of the mapped `kvm_run`, which
            // holds a `__u64` and so is 8-byte aligned; volatile reads because userspace shares
            // this memory.
            *w = unsafe { core::ptr::read_volatile(src.add(i)) }.to_le_bytes();
        }
        MsrRun::from_bytes(&raw)
    }

    /// Sets `kvm_run.exit_reason` and the `msr` member.
    fn write_exit(&self, exit_reason: u32, run: &MsrRun) {
        let bytes = run.to_bytes();
        // SAFETY: `self.0` is valid (type invariants).
        unsafe { bindings::kvm_msr_filter_vcpu_set_exit_reason(self.0, exit_reason) };
        // SAFETY: as above; the result points to its `kvm_run.msr`.
        let dst = unsafe { bindings::kvm_msr_filter_vcpu_run_msr(self.0) }.cast::<u64>();
        let (words, _) = bytes.as_chunks::<8>();
        for (i, w) in words.iter().enumerate() {
            // SAFETY: as in `read_run_msr()`; volatile writes because userspace shares this
            // memory.
            unsafe { core::ptr::write_volatile(dst.add(i), u64::from_le_bytes(*w)) };
        }
    }

    /// Loads the registers a successful completion writes.
    fn write_regs(&self, write: RegWrite) {
        match write {
            // SAFETY: `self.0` is valid and running (type invariants).
            RegWrite::EdxEax { rax, rdx } => unsafe {
                bindings::kvm_msr_filter_vcpu_write_edx_eax(self.0, rax, rdx)
            },
            // SAFETY: as above; the target register was saved when the exit was set up.
            RegWrite::Gpr(data) => unsafe {
                bindings::kvm_msr_filter_vcpu_write_imm_reg(self.0, data)
            },
            RegWrite::None => {}
        }
    }

    /// Completes the instruction: skip it, or inject #GP if `err` is nonzero.
    fn complete_insn(&self, emulated: bool, err: c_int) -> c_int {
        if emulated {
            // SAFETY: `self.0` is valid and running; it exited from the instruction emulator.
            unsafe { bindings::kvm_msr_filter_vcpu_complete_emulated(self.0, err) }
        } else {
            // SAFETY: `self.0` is valid and running; it exited from an intercepted instruction.
            unsafe { bindings::kvm_msr_filter_vcpu_complete_insn(self.0, err) }
        }
    }
}

/// `kvm_msr_user_space()`: should the failed MSR access (internal code `r`) exit to
/// userspace? If so, fills `kvm_run.exit_reason` and `kvm_run.msr` and returns `true`.
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a live VM that uses this module and `vcpu` its
/// running vCPU.
pub(crate) unsafe extern "C" fn msr_user_space(
    vm: *mut bindings::kvm_msr_filter_vm,
    vcpu: *mut bindings::kvm_vcpu,
    exit_reason: u32,
    index: u32,
    data: u64,
    r: c_int,
) -> bool {
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    // SAFETY: KVM passes the running vCPU.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    let mask = vm.user_space_msr_mask().load(Relaxed);
    let dir = if exit_reason == KVM_EXIT_X86_RDMSR {
        MsrDir::Read
    } else {
        MsrDir::Write
    };
    if r == KVM_MSR_RET_FILTERED {
        vm.count(match dir {
            MsrDir::Read => Stat::DeniedReads,
            MsrDir::Write => Stat::DeniedWrites,
        });
    }
    let Some(exit) = msr_exit(mask, dir, index, data, r) else {
        return false;
    };
    vm.count(match exit.run.reason {
        KVM_MSR_EXIT_REASON_UNKNOWN => Stat::ExitsUnknown,
        KVM_MSR_EXIT_REASON_FILTER => Stat::ExitsFilter,
        _ => Stat::ExitsInval,
    });
    vcpu.write_exit(exit.exit_reason, &exit.run);
    true
}

/// The `complete_userspace_io` callback of an MSR exit, run when userspace re-enters `KVM_RUN`.
///
/// `kind` says which callback the exit was set up with. `kvm_run.msr` is read once, so the
/// register write and the #GP decision always agree even if userspace changes it concurrently.
/// Returns what the C callback would: 1 to re-enter the guest, 0 to exit to userspace, or a
/// negative errno.
///
/// # Safety
///
/// `vcpu` must be the running vCPU, of a VM that uses this module, whose MSR exit is being
/// completed.
pub(crate) unsafe extern "C" fn complete(
    vcpu: *mut bindings::kvm_vcpu,
    kind: bindings::kvm_msr_completion,
) -> c_int {
    let (ck, emulated) = match kind {
        bindings::kvm_msr_completion_KVM_MSR_COMPLETE_FAST_RDMSR => (CompletionKind::Rdmsr, false),
        bindings::kvm_msr_completion_KVM_MSR_COMPLETE_FAST_RDMSR_IMM => {
            (CompletionKind::RdmsrImm, false)
        }
        bindings::kvm_msr_completion_KVM_MSR_COMPLETE_FAST_ACCESS => (CompletionKind::Wrmsr, false),
        bindings::kvm_msr_completion_KVM_MSR_COMPLETE_EMULATED_RDMSR => {
            (CompletionKind::Rdmsr, true)
        }
        bindings::kvm_msr_completion_KVM_MSR_COMPLETE_EMULATED_ACCESS => {
            (CompletionKind::Wrmsr, true)
        }
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: KVM passes the running vCPU.
    let vcpu = unsafe { Vcpu::from_raw(vcpu) };
    let err = match decide_completion(ck, &vcpu.read_run_msr()) {
        Completion::Fault(error) => c_int::from(error),
        Completion::Done(write) => {
            vcpu.write_regs(write);
            0
        }
    };
    vcpu.complete_insn(emulated, err)
}
