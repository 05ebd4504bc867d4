// SPDX-License-Identifier: GPL-2.0

//! x86 `KVM_{GET,SET}_ONE_REG` and `KVM_GET_REG_LIST`: the kernel side of
//! [`crate::msr_filter::one_reg`].
//!
//! The core decides (register ids, the order of copies and accesses, the errno); this file does
//! the user copies and hands the MSR access back to KVM, which makes it host-initiated and so
//! unfiltered, exactly as `KVM_GET_MSRS`/`KVM_SET_MSRS` do.

use core::ffi::{c_int, c_void};
use kernel::{
    bindings,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    filter::to_error,
    msr_filter::{
        errno::Errno,
        one_reg::{one_reg as decide_one_reg, reg_list as decide_reg_list, OneRegEnv},
    },
};

/// A vCPU in one of its ioctls, as the core's [`OneRegEnv`].
///
/// # Invariants
///
/// `0` is a `struct kvm_vcpu` of a VM that uses this module, loaded by its ioctl (which holds
/// `vcpu->mutex`) for as long as this value exists.
struct IoctlVcpu(*mut bindings::kvm_vcpu);

impl IoctlVcpu {
    /// Wraps `vcpu`.
    ///
    /// # Safety
    ///
    /// `vcpu` must be the vCPU KVM passed to this module's `one_reg` or `reg_list` op, used only
    /// until the op returns.
    unsafe fn from_raw(vcpu: *mut bindings::kvm_vcpu) -> Self {
        // INVARIANT: the caller's guarantee.
        Self(vcpu)
    }

    fn host_msr(&mut self, index: u32, data: &mut u64, set: bool) -> bool {
        // SAFETY: `self.0` is a loaded vCPU (type invariants); `data` is valid for reads and
        // writes of a `u64` for the duration of the call.
        unsafe { bindings::kvm_msr_filter_vcpu_host_msr(self.0, index, data, set) == 0 }
    }
}

/// A user address as a [`UserPtr`]; an address that does not fit a pointer cannot be one.
fn user_ptr(addr: u64) -> Result<UserPtr, Errno> {
    usize::try_from(addr)
        .map(UserPtr::from_addr)
        .map_err(|_| Errno::Fault)
}

impl OneRegEnv for IoctlVcpu {
    fn copy_from_user(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        UserSlice::new(user_ptr(addr)?, buf.len())
            .reader()
            .read_slice(buf)
            .map_err(|_| Errno::Fault)
    }

    fn copy_to_user(&mut self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        UserSlice::new(user_ptr(addr)?, buf.len())
            .writer()
            .write_slice(buf)
            .map_err(|_| Errno::Fault)
    }

    fn has_shstk(&self) -> bool {
        // SAFETY: `self.0` is a loaded vCPU (type invariants).
        unsafe { bindings::kvm_msr_filter_vcpu_has_shstk(self.0) }
    }

    fn get_msr(&mut self, index: u32) -> Option<u64> {
        let mut data = 0;
        self.host_msr(index, &mut data, false).then_some(data)
    }

    fn set_msr(&mut self, index: u32, mut data: u64) -> bool {
        self.host_msr(index, &mut data, true)
    }
}

/// `KVM_GET_ONE_REG` (`set` false) or `KVM_SET_ONE_REG` (`set` true) with the user
/// `struct kvm_one_reg` at `argp`.
///
/// # Safety
///
/// `vcpu` must be a vCPU, loaded by its ioctl, of a live VM that uses this module.
pub(crate) unsafe extern "C" fn one_reg(
    vcpu: *mut bindings::kvm_vcpu,
    set: bool,
    argp: *mut c_void,
) -> c_int {
    // SAFETY: KVM passes the vCPU of the ioctl being handled.
    let mut vcpu = unsafe { IoctlVcpu::from_raw(vcpu) };
    match decide_one_reg(&mut vcpu, argp.addr() as u64, set) {
        Ok(()) => 0,
        Err(e) => to_error(e).to_errno(),
    }
}

/// `KVM_GET_REG_LIST` with the user `struct kvm_reg_list` at `argp`.
///
/// # Safety
///
/// `vcpu` must be a vCPU, loaded by its ioctl, of a live VM that uses this module.
pub(crate) unsafe extern "C" fn reg_list(
    vcpu: *mut bindings::kvm_vcpu,
    argp: *mut c_void,
) -> c_int {
    // SAFETY: KVM passes the vCPU of the ioctl being handled.
    let mut vcpu = unsafe { IoctlVcpu::from_raw(vcpu) };
    match decide_reg_list(&mut vcpu, argp.addr() as u64) {
        Ok(()) => 0,
        Err(e) => to_error(e).to_errno(),
    }
}
