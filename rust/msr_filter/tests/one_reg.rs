// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Rules I1-I2 (x86 ONE_REG and REG_LIST) of `abi-rules.md`, one test or more per rule, against
//! a fake vCPU and user memory that record what the ioctl did, in order.

use msr_filter::one_reg::*;
use msr_filter::Errno;
use proptest::prelude::*;

/// User memory: 8-byte words at fixed addresses, anything else faults.
#[derive(Default)]
struct Env {
    shstk: bool,
    mem: Vec<(u64, u8)>,
    /// MSRs KVM knows, with their values.
    msrs: Vec<(u32, u64)>,
    /// What happened, in order.
    log: Vec<String>,
}

impl Env {
    fn map(&mut self, addr: u64, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            let a = addr + i as u64;
            self.mem.retain(|&(x, _)| x != a);
            self.mem.push((a, *b));
        }
    }
    fn map_u64(&mut self, addr: u64, v: u64) {
        self.map(addr, &v.to_le_bytes());
    }
    fn read_u64(&self, addr: u64) -> Option<u64> {
        let mut b = [0u8; 8];
        for (i, x) in b.iter_mut().enumerate() {
            *x = self.mem.iter().find(|&&(a, _)| a == addr + i as u64)?.1;
        }
        Some(u64::from_le_bytes(b))
    }
    fn one_reg_at(&mut self, argp: u64, id: u64, addr: u64) {
        self.map_u64(argp, id);
        self.map_u64(argp + 8, addr);
    }
}

impl OneRegEnv for Env {
    fn copy_from_user(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.log.push(format!("read {addr:#x}+{}", buf.len()));
        for (i, b) in buf.iter_mut().enumerate() {
            let a = addr.checked_add(i as u64).ok_or(Errno::Fault)?;
            *b = self
                .mem
                .iter()
                .find(|&&(x, _)| x == a)
                .ok_or(Errno::Fault)?
                .1;
        }
        Ok(())
    }
    fn copy_to_user(&mut self, addr: u64, buf: &[u8]) -> Result<(), Errno> {
        self.log.push(format!("write {addr:#x}+{}", buf.len()));
        for i in 0..buf.len() as u64 {
            let a = addr.checked_add(i).ok_or(Errno::Fault)?;
            if !self.mem.iter().any(|&(x, _)| x == a) {
                return Err(Errno::Fault);
            }
        }
        self.map(addr, buf);
        Ok(())
    }
    fn has_shstk(&self) -> bool {
        self.shstk
    }
    fn get_msr(&mut self, index: u32) -> Option<u64> {
        self.log.push(format!("get {index:#x}"));
        self.msrs
            .iter()
            .find(|&&(i, _)| i == index)
            .map(|&(_, v)| v)
    }
    fn set_msr(&mut self, index: u32, data: u64) -> bool {
        self.log.push(format!("set {index:#x}={data:#x}"));
        match self.msrs.iter_mut().find(|(i, _)| *i == index) {
            Some(m) => {
                m.1 = data;
                true
            }
            None => false,
        }
    }
}

const ARGP: u64 = 0x1000;
const VAL: u64 = 0x2000;
const TSC_AUX: u32 = 0xc000_0103;

fn env() -> Env {
    let mut e = Env {
        msrs: vec![(TSC_AUX, 7), (MSR_KVM_INTERNAL_GUEST_SSP, 0x5000)],
        ..Env::default()
    };
    e.map_u64(VAL, 0x1234);
    e
}

/// The id layout of upstream's `struct kvm_x86_reg_id`, decoded field by field the way the C
/// bitfields lay it out, and upstream's checks written from it: the model the core is checked
/// against.
fn model(id: u64, shstk: bool) -> Result<u32, Errno> {
    let b = id.to_le_bytes();
    let index = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let (ty, rsvd1, rsvd2, size, x86) = (b[4], b[5], b[6] & 0xf, b[6] >> 4, b[7]);
    if x86 != 0x20 || rsvd1 != 0 || rsvd2 != 0 {
        return Err(Errno::Inval);
    }
    let (ty, index) = match ty {
        3 if index == 0 && shstk => (2, 0x4b56_4dff),
        3 => return Err(Errno::Inval),
        t => (t, index),
    };
    if ty != 2 || size != 3 {
        return Err(Errno::Inval);
    }
    Ok(index)
}

#[test]
fn id_macros() {
    // The values of asm/kvm.h's macros.
    assert_eq!(reg_msr(0xc000_0103), 0x2030_0002_c000_0103);
    assert_eq!(reg_kvm(KVM_REG_GUEST_SSP), 0x2030_0003_0000_0000);
    assert_eq!(reg_kvm(1), 0x2000_0003_0000_0001);
}

/// I1: the architecture must be x86 (`KVM_REG_X86`), whatever the rest.
#[test]
fn i1_arch_must_be_x86() {
    let id = reg_msr(TSC_AUX) & !KVM_REG_ARCH_MASK;
    for arch in [0u64, 0x10, 0x21, 0x40, 0xff] {
        assert_eq!(
            one_reg_msr(id | arch << 56, true),
            Err(Errno::Inval),
            "{arch:#x}"
        );
    }
    assert_eq!(one_reg_msr(id | KVM_REG_X86, false), Ok(TSC_AUX));
}

/// I1: both reserved fields (bits 40-47, bits 48-51) must be zero.
#[test]
fn i1_reserved_fields() {
    for bit in 40..52 {
        assert_eq!(
            one_reg_msr(reg_msr(TSC_AUX) | 1 << bit, false),
            Err(Errno::Inval),
            "{bit}"
        );
        let ssp = reg_kvm(KVM_REG_GUEST_SSP) | 1 << bit;
        assert_eq!(one_reg_msr(ssp, true), Err(Errno::Inval), "{bit}");
    }
}

/// I1: a KVM-type id is only `KVM_REG_GUEST_SSP`, only with SHSTK, and names KVM's internal
/// SSP MSR; its size is checked after the translation.
#[test]
fn i1_kvm_type_guest_ssp() {
    let ssp = reg_kvm(KVM_REG_GUEST_SSP);
    assert_eq!(one_reg_msr(ssp, true), Ok(MSR_KVM_INTERNAL_GUEST_SSP));
    assert_eq!(one_reg_msr(ssp, false), Err(Errno::Inval));
    for index in [1, 2, 0x35, u32::MAX] {
        let id = KVM_REG_X86 | KVM_REG_SIZE_U64 | 3 << 32 | u64::from(index);
        assert_eq!(one_reg_msr(id, true), Err(Errno::Inval), "{index:#x}");
    }
    // The UAPI macro gives SSP size U64; another size fails after the translation.
    assert_eq!(
        one_reg_msr(ssp & !KVM_REG_SIZE_MASK, true),
        Err(Errno::Inval)
    );
}

/// I1: any type but MSR (after the KVM translation) is invalid.
#[test]
fn i1_type_must_be_msr() {
    for ty in (0u64..=0xff).filter(|&t| t != 2 && t != 3) {
        let id = KVM_REG_X86 | KVM_REG_SIZE_U64 | ty << 32 | u64::from(TSC_AUX);
        assert_eq!(one_reg_msr(id, true), Err(Errno::Inval), "{ty}");
    }
}

/// I1: the size must be U64; every MSR index is accepted (KVM decides at the access).
#[test]
fn i1_size_must_be_u64() {
    for size in (0u64..16).filter(|&s| s != 3) {
        let id = (reg_msr(TSC_AUX) & !KVM_REG_SIZE_MASK) | size << 52;
        assert_eq!(one_reg_msr(id, false), Err(Errno::Inval), "{size}");
    }
    for index in [0, 0x35, 0x800, 0x8ff, 0x4000_0000, u32::MAX] {
        assert_eq!(one_reg_msr(reg_msr(index), false), Ok(index));
    }
}

proptest! {
    /// I1: every id decodes as the bitfield model does, with and without SHSTK.
    #[test]
    fn i1_decode_matches_bitfield_model(id in any::<u64>(), shstk in any::<bool>(),
                                        low in any::<u32>(), ty in 0u64..5, size in 0u64..16) {
        prop_assert_eq!(one_reg_msr(id, shstk), model(id, shstk));
        // Mostly valid ids: x86, no reserved bits, a near-valid type and size.
        let near = KVM_REG_X86 | size << 52 | ty << 32 | u64::from(low % 4);
        prop_assert_eq!(one_reg_msr(near, shstk), model(near, shstk));
    }
}

/// I1: `KVM_GET_ONE_REG` reads the MSR and writes its value to `addr`.
#[test]
fn i1_get_reads_then_writes_value() {
    let mut e = env();
    e.one_reg_at(ARGP, reg_msr(TSC_AUX), VAL);
    assert_eq!(one_reg(&mut e, ARGP, false), Ok(()));
    assert_eq!(e.read_u64(VAL), Some(7));
    assert_eq!(
        e.log,
        ["read 0x1000+16", "get 0xc0000103", "write 0x2000+8"]
    );
}

/// I1: `KVM_SET_ONE_REG` reads the value from `addr` and writes the MSR.
#[test]
fn i1_set_reads_value_then_writes_msr() {
    let mut e = env();
    e.one_reg_at(ARGP, reg_msr(TSC_AUX), VAL);
    assert_eq!(one_reg(&mut e, ARGP, true), Ok(()));
    assert_eq!(e.msrs[0], (TSC_AUX, 0x1234));
    assert_eq!(
        e.log,
        ["read 0x1000+16", "read 0x2000+8", "set 0xc0000103=0x1234"]
    );
}

/// I1: `KVM_REG_GUEST_SSP` reaches the internal MSR, both ways.
#[test]
fn i1_guest_ssp_access() {
    let mut e = env();
    e.shstk = true;
    e.one_reg_at(ARGP, reg_kvm(KVM_REG_GUEST_SSP), VAL);
    assert_eq!(one_reg(&mut e, ARGP, false), Ok(()));
    assert_eq!(e.read_u64(VAL), Some(0x5000));
    e.map_u64(VAL, 0x6000);
    assert_eq!(one_reg(&mut e, ARGP, true), Ok(()));
    assert_eq!(e.msrs[1], (MSR_KVM_INTERNAL_GUEST_SSP, 0x6000));
    e.shstk = false;
    e.log.clear();
    assert_eq!(one_reg(&mut e, ARGP, false), Err(Errno::Inval));
    assert_eq!(e.log, ["read 0x1000+16"]);
}

/// I1, errno order: an unreadable `struct kvm_one_reg` is EFAULT before anything else.
#[test]
fn i1_efault_on_the_struct_first() {
    for set in [false, true] {
        let mut e = env();
        e.map_u64(ARGP, reg_msr(TSC_AUX)); // addr field unmapped: a partial struct
        assert_eq!(one_reg(&mut e, ARGP, set), Err(Errno::Fault));
        assert_eq!(e.log, ["read 0x1000+16"]);
    }
}

/// One `KVM_{GET,SET}_ONE_REG` of `id` with its value at `addr`, on a fresh vCPU: the result
/// and what the ioctl did, in order.
fn call(id: u64, addr: u64, set: bool) -> (Result<(), Errno>, Vec<String>) {
    let mut e = env();
    e.one_reg_at(ARGP, id, addr);
    (one_reg(&mut e, ARGP, set), e.log)
}

/// I1, errno order: an invalid id is EINVAL before the value is touched, even at a bad address.
#[test]
fn i1_einval_id_before_value() {
    for set in [false, true] {
        let (r, log) = call(reg_msr(TSC_AUX) | 1 << 40, 0xdead_0000, set);
        assert_eq!(r, Err(Errno::Inval));
        assert_eq!(log, ["read 0x1000+16"]);
    }
}

/// I1, errno order for a get: a refused read is EINVAL without a write; a good read to a bad
/// address is EFAULT.
#[test]
fn i1_get_einval_before_efault() {
    let (r, log) = call(reg_msr(0x35), 0xdead_0000, false);
    assert_eq!(r, Err(Errno::Inval));
    assert_eq!(log, ["read 0x1000+16", "get 0x35"]);
    let (r, log) = call(reg_msr(TSC_AUX), 0xdead_0000, false);
    assert_eq!(r, Err(Errno::Fault));
    assert_eq!(
        log,
        ["read 0x1000+16", "get 0xc0000103", "write 0xdead0000+8"]
    );
}

/// I1, errno order for a set: an unreadable value is EFAULT without an access, even for an
/// MSR KVM would refuse; a refused write is EINVAL.
#[test]
fn i1_set_efault_before_einval() {
    let (r, log) = call(reg_msr(0x35), 0xdead_0000, true);
    assert_eq!(r, Err(Errno::Fault));
    assert_eq!(log, ["read 0x1000+16", "read 0xdead0000+8"]);
    let (r, log) = call(reg_msr(0x35), VAL, true);
    assert_eq!(r, Err(Errno::Inval));
    assert_eq!(log, ["read 0x1000+16", "read 0x2000+8", "set 0x35=0x1234"]);
}

/// I2: without SHSTK the list is empty: `n` becomes 0, whatever it was, and nothing else is
/// written.
#[test]
fn i2_reg_list_empty_without_shstk() {
    for n in [0, 1, 100, u64::MAX] {
        let mut e = env();
        e.map_u64(ARGP, n);
        assert_eq!(reg_list(&mut e, ARGP), Ok(()));
        assert_eq!(e.read_u64(ARGP), Some(0));
        assert_eq!(e.log, ["read 0x1000+8", "write 0x1000+8"]);
    }
}

/// I2: with SHSTK the list is `KVM_X86_REG_KVM(KVM_REG_GUEST_SSP)`, and MSRs are not listed.
#[test]
fn i2_reg_list_guest_ssp() {
    let mut e = env();
    e.shstk = true;
    e.map_u64(ARGP, 4);
    e.map_u64(ARGP + 8, 0);
    assert_eq!(reg_list(&mut e, ARGP), Ok(()));
    assert_eq!(e.read_u64(ARGP), Some(1));
    assert_eq!(e.read_u64(ARGP + 8), Some(0x2030_0003_0000_0000));
    assert_eq!(reg_list_ids(true), [reg_kvm(KVM_REG_GUEST_SSP)]);
}

/// I2: too small an `n` is E2BIG, after the real count was written back.
#[test]
fn i2_reg_list_e2big_after_writing_n() {
    let mut e = env();
    e.shstk = true;
    e.map_u64(ARGP, 0);
    e.map_u64(ARGP + 8, 0xaa);
    assert_eq!(reg_list(&mut e, ARGP), Err(Errno::TooBig));
    assert_eq!(e.read_u64(ARGP), Some(1));
    assert_eq!(e.read_u64(ARGP + 8), Some(0xaa));
    assert_eq!(e.log, ["read 0x1000+8", "write 0x1000+8"]);
}

/// I2, errno order: EFAULT reading `n`, then EFAULT writing the ids.
#[test]
fn i2_reg_list_efault() {
    let mut e = env();
    assert_eq!(reg_list(&mut e, 0xdead_0000), Err(Errno::Fault));
    assert_eq!(e.log, ["read 0xdead0000+8"]);
    let mut e = env();
    e.shstk = true;
    e.map_u64(ARGP, 1); // reg[0] unmapped
    assert_eq!(reg_list(&mut e, ARGP), Err(Errno::Fault));
    assert_eq!(e.read_u64(ARGP), Some(1));
    assert_eq!(e.log, ["read 0x1000+8", "write 0x1000+8", "write 0x1008+8"]);
    // `n` at the very top of the address space: reg[] would wrap, which is a fault.
    let mut e = env();
    e.shstk = true;
    e.map_u64(u64::MAX - 7, 1);
    assert_eq!(reg_list(&mut e, u64::MAX - 7), Err(Errno::Fault));
}

#[test]
fn one_reg_struct_layout() {
    let mut raw = [0u8; KVM_ONE_REG_SIZE];
    raw[..8].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    raw[8..].copy_from_slice(&0x1112_1314_1516_1718u64.to_le_bytes());
    let r = OneReg::from_bytes(&raw);
    assert_eq!(
        (r.id, r.addr),
        (0x0102_0304_0506_0708, 0x1112_1314_1516_1718)
    );
}
