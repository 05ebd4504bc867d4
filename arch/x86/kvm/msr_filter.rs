// SPDX-License-Identifier: GPL-2.0

//! KVM x86 userspace MSR filtering and deflection, in Rust.
//!
//! This is the kernel half of the implementation: it carries out what the `no_std` core in
//! `rust/msr_filter/` decides. It owns the per-VM filter object behind `kvm->arch.msr_filter_rs`
//! and implements, for VMs created with `kvm.msr_filter_rust=1`:
//!
//! - `kvm_msr_allowed()`: the lookup, under SRCU read protection of `kvm->srcu`;
//! - `KVM_X86_SET_MSR_FILTER` and its compat form: copy, validation and build, publication
//!   under `kvm->lock`, grace period outside it, free;
//! - `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`, the exit to userspace and its
//!   `complete_userspace_io` completions.
//!
//! C header: [`arch/x86/kvm/msrs.h`](srctree/arch/x86/kvm/msrs.h)

use core::ffi::{c_int, c_void};
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, KBox, KVec},
    bindings,
    prelude::*,
    sync::{
        atomic::{Atomic, Relaxed},
        srcu::SrcuPtr,
        Mutex, Srcu,
    },
    uaccess::{UserPtr, UserSlice},
};

/// The `no_std` core, shared with the host crate in `rust/msr_filter`.
#[allow(dead_code, unreachable_pub)]
#[path = "../../../rust/msr_filter/src"]
mod core_filter {
    pub mod desc;
    pub mod errno;
    pub mod exit;
    pub mod filter;
    pub mod uapi;
}

use core_filter::{
    desc::FilterDesc,
    errno::Errno,
    exit::{
        check_user_space_msr_cap, complete, msr_exit, Completion, CompletionKind, MsrDir, MsrRun,
        RegWrite,
    },
    filter::{build, is_x2apic_msr, Filter, FilterAlloc},
    uapi::{COMPAT_FILTER_SIZE, KVM_EXIT_X86_RDMSR, KVM_RUN_MSR_SIZE, NATIVE_FILTER_SIZE},
};

/// The filter object installed in a VM.
type VmFilter = Filter<KVec<u8>>;

/// Converts an error of the core into a kernel [`Error`].
fn to_error(e: Errno) -> Error {
    match e {
        Errno::Inval => EINVAL,
        Errno::Fault => EFAULT,
        Errno::NoMem => ENOMEM,
    }
}

/// Allocates filter objects and bitmaps for the core, charged to the VM's memory cgroup.
struct AccountedAlloc;

impl FilterAlloc for AccountedAlloc {
    type Bitmap = KVec<u8>;
    type Boxed = KBox<VmFilter>;

    fn alloc_filter(&mut self, filter: VmFilter) -> Result<KBox<VmFilter>, Errno> {
        KBox::new(filter, GFP_KERNEL_ACCOUNT).map_err(|_| Errno::NoMem)
    }

    fn alloc_bitmap(&mut self, len: usize) -> Result<KVec<u8>, Errno> {
        KVec::from_elem(0u8, len, GFP_KERNEL_ACCOUNT).map_err(|_| Errno::NoMem)
    }
}

/// Copies `buf.len()` bytes from the user address `addr`, like `memdup_user()` does.
fn copy_bitmap(addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let addr = usize::try_from(addr).map_err(|_| Errno::Fault)?;
    UserSlice::new(UserPtr::from_addr(addr), buf.len())
        .reader()
        .read_slice(buf)
        .map_err(|_| Errno::Fault)
}

/// Reads the userspace `struct kvm_msr_filter` (or its compat layout) at `argp`.
fn read_desc(argp: *mut c_void, compat: bool) -> Result<FilterDesc> {
    let ptr = UserPtr::from_ptr(argp);
    if compat {
        let mut raw = [0u8; COMPAT_FILTER_SIZE];
        UserSlice::new(ptr, raw.len()).reader().read_slice(&mut raw)?;
        Ok(FilterDesc::from_compat(&raw))
    } else {
        let mut raw = [0u8; NATIVE_FILTER_SIZE];
        UserSlice::new(ptr, raw.len()).reader().read_slice(&mut raw)?;
        Ok(FilterDesc::from_native(&raw))
    }
}

/// The VM's filter pointer, a view of `kvm->arch.msr_filter_rs` protected by `kvm->srcu`.
///
/// # Safety
///
/// `srcu` must point to the VM's initialised `kvm->srcu` and `slot` to its
/// `kvm->arch.msr_filter_rs`, both valid for `'a`; the slot is only accessed through this
/// module, which keeps a `KBox<VmFilter>` (or null) in it.
unsafe fn vm_filter<'a>(
    srcu: *mut bindings::srcu_struct,
    slot: *mut *mut c_void,
) -> SrcuPtr<'a, VmFilter> {
    // SAFETY: the caller guarantees `srcu` is a valid, initialised instance for `'a`.
    let srcu = unsafe { Srcu::from_raw(srcu) };
    // SAFETY: the caller guarantees `slot` is valid for `'a`; this module only ever stores
    // `KBox<VmFilter>` pointers in it, reads it inside `kvm->srcu` read sections and frees a
    // replaced filter only after a grace period (`Retired`).
    unsafe { SrcuPtr::from_raw(slot.cast(), srcu) }
}

/// `kvm_msr_allowed()`: may the guest access MSR `index` with access `ty` (read 1, write 2)?
///
/// # Safety
///
/// `srcu` and `filter` must point to the `kvm->srcu` and `kvm->arch.msr_filter_rs` of a live VM.
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_msr_allowed(
    srcu: *mut bindings::srcu_struct,
    filter: *mut *mut c_void,
    index: u32,
    ty: u32,
) -> bool {
    // x2APIC MSRs cannot be filtered; no need to enter the read section.
    if is_x2apic_msr(index) {
        return true;
    }
    // SAFETY: the caller passes the fields of a live VM.
    let filter = unsafe { vm_filter(srcu, filter) };
    filter.read(|f| f.map_or(true, |f| f.allowed_raw(index, ty)))
}

/// `KVM_X86_SET_MSR_FILTER` (or, with `compat`, its 32-bit form) with the argument at `argp`.
///
/// Builds the new filter outside any lock, publishes it under `kvm->lock`, then waits for an
/// SRCU grace period outside the lock before freeing the old one. On any error the installed
/// filter is left untouched. Returns 0 or a negative errno; the caller requests the intercept
/// recalculation on success.
///
/// # Safety
///
/// `srcu`, `lock` and `filter` must point to the `kvm->srcu`, `kvm->lock` and
/// `kvm->arch.msr_filter_rs` of a live VM; `argp` is an untrusted user pointer.
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_set_msr_filter(
    srcu: *mut bindings::srcu_struct,
    lock: *mut bindings::mutex,
    filter: *mut *mut c_void,
    argp: *mut c_void,
    compat: bool,
) -> c_int {
    let desc = match read_desc(argp, compat) {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let new = match build(&desc, &mut AccountedAlloc, copy_bitmap) {
        Ok(f) => f,
        Err(e) => return to_error(e).to_errno(),
    };
    // SAFETY: the caller passes the fields of a live VM.
    let filter = unsafe { vm_filter(srcu, filter) };
    // SAFETY: the caller passes the VM's initialised `kvm->lock`, which outlives this call.
    let lock = unsafe { Mutex::<()>::from_raw(lock) };
    let old = {
        let _guard = lock.lock();
        filter.replace(Some(new))
    };
    // Never wait for the grace period with `kvm->lock` held: vCPUs may take it inside their
    // SRCU read sections (Documentation/virt/kvm/locking.rst).
    old.synchronize();
    0
}

/// Frees the VM's filter at VM destruction, after its vCPUs are gone.
///
/// # Safety
///
/// `filter` must point to the `kvm->arch.msr_filter_rs` of a VM being destroyed, whose vCPUs
/// have all been freed, so that no reader can exist.
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_free_msr_filter(filter: *mut *mut c_void) {
    // SAFETY: the caller guarantees `filter` is valid and that no reader exists; the slot holds
    // null or a `KBox<VmFilter>` pointer, which we take ownership of and drop.
    let slot = unsafe { Atomic::<*mut VmFilter>::from_ptr(filter.cast()) };
    let old = slot.load(Relaxed);
    slot.store(core::ptr::null_mut(), Relaxed);
    if !old.is_null() {
        // SAFETY: `old` came from `KBox::into_raw` in `SrcuPtr::replace` and nothing else can
        // reach it any more.
        drop(unsafe { KBox::from_raw(old) });
    }
}

/// `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`: validates `arg0` and replaces the mask.
///
/// # Safety
///
/// `mask` must point to the `kvm->arch.user_space_msr_mask` of a live VM, accessed atomically
/// only (vCPUs read it without a lock).
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_enable_user_space_msr(mask: *mut u32, arg0: u64) -> c_int {
    // `cap->flags` was already checked for every capability by the caller.
    match check_user_space_msr_cap(0, arg0) {
        Ok(m) => {
            // SAFETY: the caller guarantees `mask` is valid and only accessed atomically.
            unsafe { Atomic::from_ptr(mask) }.store(m, Relaxed);
            0
        }
        Err(e) => to_error(e).to_errno(),
    }
}

/// `kvm_msr_user_space()`: should the failed MSR access (internal code `r`) exit to
/// userspace? If so, fills `kvm_run.exit_reason` and `kvm_run.msr` and returns `true`.
///
/// # Safety
///
/// `mask` must point to the VM's `user_space_msr_mask` (accessed atomically only);
/// `run_exit_reason` and `run_msr` to the `exit_reason` and `msr` fields of the vCPU's mapped
/// `kvm_run`, which userspace may access concurrently.
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_msr_user_space(
    mask: *mut u32,
    run_exit_reason: *mut u32,
    run_msr: *mut c_void,
    exit_reason: u32,
    index: u32,
    data: u64,
    r: c_int,
) -> bool {
    // SAFETY: the caller guarantees `mask` is valid and only accessed atomically.
    let mask = unsafe { Atomic::from_ptr(mask) }.load(Relaxed);
    let dir = if exit_reason == KVM_EXIT_X86_RDMSR {
        MsrDir::Read
    } else {
        MsrDir::Write
    };
    let Some(exit) = msr_exit(mask, dir, index, data, r) else {
        return false;
    };
    let bytes = exit.run.to_bytes();
    // SAFETY: the caller guarantees both pointers are valid for writes of their fields; the
    // `msr` member is 24 bytes. Volatile writes: userspace shares this memory.
    unsafe {
        core::ptr::write_volatile(run_exit_reason, exit.exit_reason);
        let dst = run_msr.cast::<u8>();
        for (i, b) in bytes.iter().enumerate() {
            core::ptr::write_volatile(dst.add(i), *b);
        }
    }
    true
}

// vCPU operations that KVM's C code provides for the completions (arch/x86/kvm/msrs.c).
extern "C" {
    fn kvm_rs_vcpu_run_msr(vcpu: *mut c_void) -> *mut c_void;
    fn kvm_rs_vcpu_write_edx_eax(vcpu: *mut c_void, rax: u64, rdx: u64);
    fn kvm_rs_vcpu_write_imm_reg(vcpu: *mut c_void, data: u64);
    fn kvm_rs_vcpu_complete_insn(vcpu: *mut c_void, err: c_int) -> c_int;
    fn kvm_rs_vcpu_complete_emulated(vcpu: *mut c_void, err: c_int) -> c_int;
}

// `enum kvm_rs_msr_completion` (arch/x86/kvm/msrs.h).
const KVM_RS_MSR_FAST_RDMSR: u32 = 0;
const KVM_RS_MSR_FAST_RDMSR_IMM: u32 = 1;
const KVM_RS_MSR_FAST_ACCESS: u32 = 2;
const KVM_RS_MSR_EMULATED_RDMSR: u32 = 3;
const KVM_RS_MSR_EMULATED_ACCESS: u32 = 4;

/// The `complete_userspace_io` callback of an MSR exit, run when userspace re-enters `KVM_RUN`.
///
/// `kind` says which callback the exit was set up with. `kvm_run.msr` is read once, so the
/// register write and the #GP decision always agree even if userspace changes it concurrently.
/// Returns what the C callback would: 1 to re-enter the guest, 0 to exit to userspace, or a
/// negative errno.
///
/// # Safety
///
/// `vcpu` must be the running `struct kvm_vcpu` whose MSR exit is being completed.
#[no_mangle]
pub unsafe extern "C" fn kvm_rs_complete_msr(vcpu: *mut c_void, kind: u32) -> c_int {
    let (ck, emulated) = match kind {
        KVM_RS_MSR_FAST_RDMSR => (CompletionKind::Rdmsr, false),
        KVM_RS_MSR_FAST_RDMSR_IMM => (CompletionKind::RdmsrImm, false),
        KVM_RS_MSR_FAST_ACCESS => (CompletionKind::Wrmsr, false),
        KVM_RS_MSR_EMULATED_RDMSR => (CompletionKind::Rdmsr, true),
        KVM_RS_MSR_EMULATED_ACCESS => (CompletionKind::Wrmsr, true),
        _ => return EINVAL.to_errno(),
    };
    // SAFETY: the caller passes a valid vCPU; the result points to its `kvm_run.msr`.
    let src = unsafe { kvm_rs_vcpu_run_msr(vcpu) }.cast::<u8>();
    let mut raw = [0u8; KVM_RUN_MSR_SIZE];
    for (i, b) in raw.iter_mut().enumerate() {
        // SAFETY: `src` points to the 24-byte `msr` member of the mapped `kvm_run`; volatile
        // reads because userspace shares this memory.
        *b = unsafe { core::ptr::read_volatile(src.add(i)) };
    }
    let err = match complete(ck, &MsrRun::from_bytes(&raw)) {
        Completion::Fault(error) => c_int::from(error),
        Completion::Done(write) => {
            match write {
                // SAFETY: `vcpu` is valid and running (caller's guarantee).
                RegWrite::EdxEax { rax, rdx } => unsafe { kvm_rs_vcpu_write_edx_eax(vcpu, rax, rdx) },
                // SAFETY: as above; the target register was saved when the exit was set up.
                RegWrite::Gpr(data) => unsafe { kvm_rs_vcpu_write_imm_reg(vcpu, data) },
                RegWrite::None => {}
            }
            0
        }
    };
    if emulated {
        // SAFETY: `vcpu` is valid and running; it exited from the instruction emulator.
        unsafe { kvm_rs_vcpu_complete_emulated(vcpu, err) }
    } else {
        // SAFETY: `vcpu` is valid and running; it exited from an intercepted instruction.
        unsafe { kvm_rs_vcpu_complete_insn(vcpu, err) }
    }
}
