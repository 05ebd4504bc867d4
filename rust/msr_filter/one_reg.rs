// SPDX-License-Identifier: GPL-2.0 OR MIT

//! x86 `KVM_GET_ONE_REG`, `KVM_SET_ONE_REG` and `KVM_GET_REG_LIST` (upstream since 6.18).
//!
//! A register id on x86 is `struct kvm_x86_reg_id` in a `u64`: bits 0-31 the index, 32-39 the
//! type (MSR 2, KVM 3), 40-47 and 48-51 reserved, 52-55 the size, 56-63 the architecture. An MSR
//! id names any MSR `KVM_GET_MSRS` and `KVM_SET_MSRS` accept, and the access is host-initiated
//! as theirs is: the MSR filter never applies to it. The only KVM-defined register is
//! `KVM_REG_GUEST_SSP`, which exists when the vCPU has shadow stacks (SHSTK) and is KVM's
//! internal MSR `MSR_KVM_INTERNAL_GUEST_SSP`; it is also the only register `KVM_GET_REG_LIST`
//! enumerates.
//!
//! [`one_reg`] and [`reg_list`] are the two ioctls, written against an [`OneRegEnv`] that does
//! the user copies and the MSR accesses, so that the order of their checks and side effects,
//! which fixes the errno a VMM sees, is tested on the host (`tests/one_reg.rs`).

use super::{desc::le_u64, errno::Errno};

/// `KVM_REG_ARCH_MASK`: the architecture field of a register id.
pub const KVM_REG_ARCH_MASK: u64 = 0xff00_0000_0000_0000;
/// `KVM_REG_X86`: the x86 architecture field.
pub const KVM_REG_X86: u64 = 0x2000_0000_0000_0000;
/// `KVM_REG_SIZE_MASK`: the size field of a register id.
pub const KVM_REG_SIZE_MASK: u64 = 0x00f0_0000_0000_0000;
/// `KVM_REG_SIZE_U64`: the size field of a 64-bit register.
pub const KVM_REG_SIZE_U64: u64 = 0x0030_0000_0000_0000;
/// `KVM_X86_REG_TYPE_MSR`: the register is an MSR, the index its number.
pub const KVM_X86_REG_TYPE_MSR: u8 = 2;
/// `KVM_X86_REG_TYPE_KVM`: the register is defined by KVM.
pub const KVM_X86_REG_TYPE_KVM: u8 = 3;
/// `KVM_REG_GUEST_SSP`: the KVM-defined register holding the guest's SSP.
pub const KVM_REG_GUEST_SSP: u32 = 0;
/// `MSR_KVM_INTERNAL_GUEST_SSP` (`arch/x86/kvm/msrs.h`): the MSR KVM reads and writes for
/// `KVM_REG_GUEST_SSP`.
pub const MSR_KVM_INTERNAL_GUEST_SSP: u32 = 0x4b56_4dff;

/// `KVM_X86_REG_MSR(index)`: the id of MSR `index`.
pub const fn reg_msr(index: u32) -> u64 {
    KVM_REG_X86 | KVM_REG_SIZE_U64 | ((KVM_X86_REG_TYPE_MSR as u64) << 32) | index as u64
}

/// `KVM_X86_REG_KVM(index)`: the id of KVM-defined register `index` (the size field is U64 for
/// `KVM_REG_GUEST_SSP` and 0 for any other index, as the UAPI macro computes it).
pub const fn reg_kvm(index: u32) -> u64 {
    let size = if index == KVM_REG_GUEST_SSP {
        KVM_REG_SIZE_U64
    } else {
        0
    };
    KVM_REG_X86 | size | ((KVM_X86_REG_TYPE_KVM as u64) << 32) | index as u64
}

/// `sizeof(struct kvm_one_reg)`: `u64 id; u64 addr`.
pub const KVM_ONE_REG_SIZE: usize = 16;
/// Offset of `reg[]` in `struct kvm_reg_list` (`u64 n; u64 reg[]`).
pub const KVM_REG_LIST_REG_OFFSET: u64 = 8;

/// `struct kvm_one_reg`, as copied from userspace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OneReg {
    /// The register id.
    pub id: u64,
    /// The user address of the register's value.
    pub addr: u64,
}

impl OneReg {
    /// Decodes the 16 bytes of a `struct kvm_one_reg` (little endian, as on x86).
    pub fn from_bytes(raw: &[u8; KVM_ONE_REG_SIZE]) -> Self {
        Self {
            id: le_u64(raw, 0),
            addr: le_u64(raw, 8),
        }
    }
}

/// The MSR a `KVM_{GET,SET}_ONE_REG` register id names, with upstream's checks in upstream's
/// order (`kvm_get_set_one_reg()`, `arch/x86/kvm/msrs.c`); every failure is `EINVAL`.
///
/// 1. the architecture must be x86;
/// 2. both reserved fields must be 0;
/// 3. a KVM-type id must be `KVM_REG_GUEST_SSP` of a vCPU with SHSTK (`has_shstk`), and then
///    names `MSR_KVM_INTERNAL_GUEST_SSP`;
/// 4. the type must then be MSR;
/// 5. the size must be U64 (checked after the type: a KVM id of the wrong size for a vCPU
///    without SHSTK fails at step 3).
pub fn one_reg_msr(id: u64, has_shstk: bool) -> Result<u32, Errno> {
    if id & KVM_REG_ARCH_MASK != KVM_REG_X86 {
        return Err(Errno::Inval);
    }
    let rsvd1 = (id >> 40) & 0xff;
    let rsvd2 = (id >> 48) & 0xf;
    if rsvd1 != 0 || rsvd2 != 0 {
        return Err(Errno::Inval);
    }
    // Bits 0-31: truncation intended.
    let mut index = id as u32;
    let mut ty = ((id >> 32) & 0xff) as u8;
    if ty == KVM_X86_REG_TYPE_KVM {
        if index != KVM_REG_GUEST_SSP || !has_shstk {
            return Err(Errno::Inval);
        }
        ty = KVM_X86_REG_TYPE_MSR;
        index = MSR_KVM_INTERNAL_GUEST_SSP;
    }
    if ty != KVM_X86_REG_TYPE_MSR {
        return Err(Errno::Inval);
    }
    if id & KVM_REG_SIZE_MASK != KVM_REG_SIZE_U64 {
        return Err(Errno::Inval);
    }
    Ok(index)
}

/// The register ids `KVM_GET_REG_LIST` enumerates: `KVM_REG_GUEST_SSP` with SHSTK, else none.
/// The MSRs are not enumerated (`KVM_GET_MSR_INDEX_LIST` lists them).
pub fn reg_list_ids(has_shstk: bool) -> &'static [u64] {
    const SSP: [u64; 1] = [reg_kvm(KVM_REG_GUEST_SSP)];
    if has_shstk {
        &SSP
    } else {
        &[]
    }
}

/// What [`one_reg`] and [`reg_list`] need of the kernel: user copies and the vCPU.
pub trait OneRegEnv {
    /// Copies `buf.len()` bytes from user address `addr`; `Err(Errno::Fault)` if any byte
    /// cannot be read.
    fn copy_from_user(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno>;
    /// Copies `buf` to user address `addr`; `Err(Errno::Fault)` if any byte cannot be written.
    fn copy_to_user(&mut self, addr: u64, buf: &[u8]) -> Result<(), Errno>;
    /// Does the vCPU have shadow stacks (guest CPUID SHSTK)?
    fn has_shstk(&self) -> bool;
    /// A host-initiated read of MSR `index`, as `KVM_GET_MSRS` does it (unfiltered); `None` if
    /// KVM refuses it.
    fn get_msr(&mut self, index: u32) -> Option<u64>;
    /// A host-initiated write of `data` to MSR `index`, as `KVM_SET_MSRS` does it
    /// (unfiltered); `false` if KVM refuses it.
    fn set_msr(&mut self, index: u32, data: u64) -> bool;
}

/// `KVM_GET_ONE_REG` (`set` false) or `KVM_SET_ONE_REG` (`set` true) with the user argument at
/// `argp`, as `kvm_get_set_one_reg()` does it:
///
/// - `EFAULT` if `struct kvm_one_reg` cannot be read;
/// - `EINVAL` if the id is not valid ([`one_reg_msr`]);
/// - get: `EINVAL` if KVM refuses the read, then `EFAULT` if the value cannot be written;
/// - set: `EFAULT` if the value cannot be read, then `EINVAL` if KVM refuses the write.
pub fn one_reg<E: OneRegEnv>(env: &mut E, argp: u64, set: bool) -> Result<(), Errno> {
    let mut raw = [0u8; KVM_ONE_REG_SIZE];
    env.copy_from_user(argp, &mut raw)?;
    let reg = OneReg::from_bytes(&raw);
    let index = one_reg_msr(reg.id, env.has_shstk())?;
    if set {
        let mut val = [0u8; 8];
        env.copy_from_user(reg.addr, &mut val)?;
        if !env.set_msr(index, u64::from_le_bytes(val)) {
            return Err(Errno::Inval);
        }
    } else {
        let val = env.get_msr(index).ok_or(Errno::Inval)?;
        env.copy_to_user(reg.addr, &val.to_le_bytes())?;
    }
    Ok(())
}

/// `KVM_GET_REG_LIST` with the user `struct kvm_reg_list` at `argp`, as `kvm_get_reg_list()`
/// does it: read `n` (`EFAULT`), write back the number of registers (`EFAULT`), then `E2BIG`
/// if the `n` read was smaller, else write the ids (`EFAULT`).
pub fn reg_list<E: OneRegEnv>(env: &mut E, argp: u64) -> Result<(), Errno> {
    let ids = reg_list_ids(env.has_shstk());
    let mut n = [0u8; 8];
    env.copy_from_user(argp, &mut n)?;
    let user_n = u64::from_le_bytes(n);
    // At most one id: the cast cannot truncate.
    let nr = ids.len() as u64;
    env.copy_to_user(argp, &nr.to_le_bytes())?;
    if user_n < nr {
        return Err(Errno::TooBig);
    }
    // `n` was read at `argp`, so `argp` is a user address and `reg[]` does not wrap; a sum
    // that did would not be one either.
    let mut addr = argp.checked_add(KVM_REG_LIST_REG_OFFSET);
    for id in ids {
        let a = addr.ok_or(Errno::Fault)?;
        env.copy_to_user(a, &id.to_le_bytes())?;
        addr = a.checked_add(8);
    }
    Ok(())
}
