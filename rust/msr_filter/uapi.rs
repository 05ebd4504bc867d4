// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Constants of the KVM x86 MSR filtering and MSR exit ABI.
//!
//! The values are those of the Linux UAPI headers (`<linux/kvm.h>` and
//! `<asm/kvm.h>`) and of KVM's internal MSR return codes. They are repeated
//! here so that this module builds without any bindings.

/// Range flag: the range applies to RDMSR (reads).
pub const KVM_MSR_FILTER_READ: u32 = 1 << 0;
/// Range flag: the range applies to WRMSR (writes).
pub const KVM_MSR_FILTER_WRITE: u32 = 1 << 1;
/// All valid range flags.
pub const KVM_MSR_FILTER_RANGE_VALID_MASK: u32 = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;

/// Filter flag: accesses not covered by any range are allowed (the value 0).
pub const KVM_MSR_FILTER_DEFAULT_ALLOW: u32 = 0;
/// Filter flag: accesses not covered by any range are denied.
pub const KVM_MSR_FILTER_DEFAULT_DENY: u32 = 1 << 0;
/// All valid filter flags.
pub const KVM_MSR_FILTER_VALID_MASK: u32 = KVM_MSR_FILTER_DEFAULT_DENY;

/// Number of range slots in `struct kvm_msr_filter`.
pub const KVM_MSR_FILTER_MAX_RANGES: usize = 16;
/// Largest bitmap, in bytes, that one range may have.
pub const KVM_MSR_FILTER_MAX_BITMAP_SIZE: u64 = 0x600;

/// First MSR index of the x2APIC block, which can never be filtered.
pub const X2APIC_MSR_FIRST: u32 = 0x800;
/// Last MSR index (inclusive) of the x2APIC block.
pub const X2APIC_MSR_LAST: u32 = 0x8ff;

/// `kvm_run.exit_reason` for a RDMSR deflected to userspace.
pub const KVM_EXIT_X86_RDMSR: u32 = 29;
/// `kvm_run.exit_reason` for a WRMSR deflected to userspace.
pub const KVM_EXIT_X86_WRMSR: u32 = 30;

/// MSR exit reason: the access failed inside KVM (e.g. #GP).
pub const KVM_MSR_EXIT_REASON_INVAL: u32 = 1 << 0;
/// MSR exit reason: KVM does not implement the MSR.
pub const KVM_MSR_EXIT_REASON_UNKNOWN: u32 = 1 << 1;
/// MSR exit reason: the access was denied by the MSR filter.
pub const KVM_MSR_EXIT_REASON_FILTER: u32 = 1 << 2;
/// All valid MSR exit reasons (the valid bits of `KVM_CAP_X86_USER_SPACE_MSR`'s `args[0]`).
pub const KVM_MSR_EXIT_REASON_VALID_MASK: u32 =
    KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN | KVM_MSR_EXIT_REASON_FILTER;

/// Capability number of `KVM_CAP_X86_USER_SPACE_MSR`.
pub const KVM_CAP_X86_USER_SPACE_MSR: u32 = 188;
/// Capability number of `KVM_CAP_X86_MSR_FILTER`.
pub const KVM_CAP_X86_MSR_FILTER: u32 = 189;

/// Internal MSR access return code: the MSR is not handled by KVM.
pub const KVM_MSR_RET_UNSUPPORTED: i32 = 2;
/// Internal MSR access return code: the access was denied by the filter.
pub const KVM_MSR_RET_FILTERED: i32 = 3;

/// `sizeof(struct kvm_msr_filter_range)` on x86-64.
pub const NATIVE_RANGE_SIZE: usize = 24;
/// `sizeof(struct kvm_msr_filter)` on x86-64.
pub const NATIVE_FILTER_SIZE: usize = 8 + KVM_MSR_FILTER_MAX_RANGES * NATIVE_RANGE_SIZE;
/// `sizeof(struct kvm_msr_filter_range)` in the 32-bit compat ABI.
pub const COMPAT_RANGE_SIZE: usize = 16;
/// `sizeof(struct kvm_msr_filter)` in the 32-bit compat ABI.
pub const COMPAT_FILTER_SIZE: usize = 4 + KVM_MSR_FILTER_MAX_RANGES * COMPAT_RANGE_SIZE;

/// `KVM_X86_SET_MSR_FILTER` ioctl number on x86-64.
pub const KVM_X86_SET_MSR_FILTER: u32 = 0x4188_AEC6;
/// `KVM_X86_SET_MSR_FILTER` ioctl number in the 32-bit compat ABI.
pub const KVM_X86_SET_MSR_FILTER_COMPAT: u32 = 0x4104_AEC6;

/// Size of the `msr` member of `kvm_run`'s exit union.
pub const KVM_RUN_MSR_SIZE: usize = 24;

// Compile-time checks of the layout arithmetic above.
const _: () = assert!(NATIVE_FILTER_SIZE == 392);
const _: () = assert!(COMPAT_FILTER_SIZE == 260);
const _: () = assert!((KVM_X86_SET_MSR_FILTER >> 16) & 0x3fff == NATIVE_FILTER_SIZE as u32);
const _: () = assert!((KVM_X86_SET_MSR_FILTER_COMPAT >> 16) & 0x3fff == COMPAT_FILTER_SIZE as u32);
