// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Turning the configuration into the ranges of one `KVM_X86_SET_MSR_FILTER`.

use kvm_bindings::{KVM_MSR_FILTER_MAX_BITMAP_SIZE, KVM_MSR_FILTER_MAX_RANGES};
use kvm_ioctls::{MsrFilterDefaultAction, MsrFilterRange, MsrFilterRangeFlags};

use crate::policy::Policy;

/// MSR_CORE_THREAD_COUNT.
pub const MSR_CORE_THREAD_COUNT: u32 = 0x35;

/// Most MSRs one range can cover: 0x600 bytes of bitmap.
pub const MAX_MSRS_PER_RANGE: u32 = KVM_MSR_FILTER_MAX_BITMAP_SIZE * 8;

/// One filter range with its own bitmap.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRange {
    /// READ and/or WRITE.
    pub flags: MsrFilterRangeFlags,
    /// First MSR index.
    pub base: u32,
    /// Number of MSRs covered.
    pub nmsrs: u32,
    /// One bit per MSR, 1 = allowed. Its length is rounded up to a multiple
    /// of 8 bytes because KVM copies `BITS_TO_LONGS(nmsrs) * 8` bytes.
    pub bitmap: Vec<u8>,
}

impl OwnedRange {
    fn new(flags: MsrFilterRangeFlags, base: u32, nmsrs: u32) -> Self {
        let len = (nmsrs as usize).div_ceil(64) * 8;
        OwnedRange {
            flags,
            base,
            nmsrs,
            bitmap: vec![0; len],
        }
    }

    /// Whether the bitmap allows `msr` (false outside the range).
    pub fn allows(&self, msr: u32) -> bool {
        match msr.checked_sub(self.base) {
            Some(off) if off < self.nmsrs => self.bitmap[off as usize / 8] & (1 << (off % 8)) != 0,
            _ => false,
        }
    }

    fn set(&mut self, msr: u32) {
        let off = (msr - self.base) as usize;
        self.bitmap[off / 8] |= 1 << (off % 8);
    }

    /// The borrowed form `kvm-ioctls` takes.
    pub fn as_range(&self) -> MsrFilterRange<'_> {
        MsrFilterRange {
            flags: self.flags,
            base: self.base,
            msr_count: self.nmsrs,
            bitmap: &self.bitmap,
        }
    }
}

/// A complete filter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    /// ALLOW or DENY for MSRs no range covers.
    pub default: MsrFilterDefaultAction,
    /// At most 16 ranges.
    pub ranges: Vec<OwnedRange>,
}

impl Filter {
    /// QEMU's setup: allow everything except reads of MSR_CORE_THREAD_COUNT,
    /// which exit to userspace. One range, nmsrs = 1, an all-zero bitmap of
    /// 8 bytes (KVM reads a whole `unsigned long`).
    pub fn core_thread_count_only() -> Filter {
        Filter {
            default: MsrFilterDefaultAction::ALLOW,
            ranges: vec![OwnedRange::new(
                MsrFilterRangeFlags::READ,
                MSR_CORE_THREAD_COUNT,
                1,
            )],
        }
    }

    /// A DEFAULT_DENY filter that allows what `policy` allows. With
    /// `intercept_core_thread_count`, reads of 0x35 are kept denied so that
    /// they reach userspace as FILTER exits.
    pub fn from_policy(
        policy: &Policy,
        intercept_core_thread_count: bool,
    ) -> Result<Filter, String> {
        let mut reads = policy.allowed(false);
        let writes = policy.allowed(true);
        if intercept_core_thread_count {
            reads.retain(|&m| m != MSR_CORE_THREAD_COUNT);
        }

        let mut ranges = Vec::new();
        if reads == writes {
            ranges.extend(group(
                &reads,
                MsrFilterRangeFlags::READ | MsrFilterRangeFlags::WRITE,
            ));
        } else {
            ranges.extend(group(&reads, MsrFilterRangeFlags::READ));
            ranges.extend(group(&writes, MsrFilterRangeFlags::WRITE));
        }
        if ranges.len() > KVM_MSR_FILTER_MAX_RANGES as usize {
            return Err(format!(
                "the policy needs {} filter ranges of at most {:#x} MSRs each; KVM allows {}",
                ranges.len(),
                MAX_MSRS_PER_RANGE,
                KVM_MSR_FILTER_MAX_RANGES
            ));
        }
        if ranges.is_empty() {
            // DEFAULT_DENY with no range is rejected by KVM (EINVAL): add a
            // one-MSR range that denies MSR 0, which is denied anyway.
            ranges.push(OwnedRange::new(MsrFilterRangeFlags::READ, 0, 1));
        }
        Ok(Filter {
            default: MsrFilterDefaultAction::DENY,
            ranges,
        })
    }

    /// Whether KVM would let the access through (ignoring the x2APIC
    /// exemption): the first range covering `msr` with the right flag
    /// decides, otherwise the default.
    pub fn allows(&self, msr: u32, write: bool) -> bool {
        let flag = if write {
            MsrFilterRangeFlags::WRITE
        } else {
            MsrFilterRangeFlags::READ
        };
        for r in &self.ranges {
            if r.flags.contains(flag)
                && msr >= r.base
                && u64::from(msr) < u64::from(r.base) + u64::from(r.nmsrs)
            {
                return r.allows(msr);
            }
        }
        self.default == MsrFilterDefaultAction::ALLOW
    }
}

/// Groups sorted, de-duplicated `msrs` into as few ranges of at most
/// [`MAX_MSRS_PER_RANGE`] MSRs as possible (greedy from the lowest index,
/// which is optimal for fixed-width windows) and sets their bits.
pub fn group(msrs: &[u32], flags: MsrFilterRangeFlags) -> Vec<OwnedRange> {
    let mut out: Vec<OwnedRange> = Vec::new();
    let mut i = 0;
    while i < msrs.len() {
        let base = msrs[i];
        let mut j = i;
        while j + 1 < msrs.len() && msrs[j + 1] - base < MAX_MSRS_PER_RANGE {
            j += 1;
        }
        let mut r = OwnedRange::new(flags, base, msrs[j] - base + 1);
        for &m in &msrs[i..=j] {
            r.set(m);
        }
        out.push(r);
        i = j + 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_style() {
        let f = Filter::core_thread_count_only();
        assert_eq!(f.ranges.len(), 1);
        assert_eq!(f.ranges[0].bitmap, vec![0; 8]);
        assert!(!f.allows(0x35, false));
        assert!(f.allows(0x35, true));
        assert!(f.allows(0x10, false));
    }

    #[test]
    fn grouping_respects_max_span() {
        let msrs = [0, 1, 0x2fff, 0x3000, 0xc000_0080, 0xc000_0081];
        let r = group(&msrs, MsrFilterRangeFlags::READ);
        assert_eq!(r.len(), 3);
        assert_eq!((r[0].base, r[0].nmsrs), (0, 0x3000));
        assert_eq!(r[0].bitmap.len(), 0x600);
        assert_eq!((r[1].base, r[1].nmsrs), (0x3000, 1));
        assert_eq!((r[2].base, r[2].nmsrs), (0xc000_0080, 2));
        assert_eq!(r[2].bitmap.len(), 8);
        assert!(r[0].allows(0x2fff) && !r[0].allows(2));
    }

    #[test]
    fn example_policy() {
        let p = Policy::parse(include_str!("../policies/intel-example.toml")).expect("parses");
        let f = Filter::from_policy(&p, true).expect("fits");
        assert_eq!(f.default, MsrFilterDefaultAction::DENY);
        assert!(f.ranges.len() <= 16);
        assert!(f.allows(0x10, false) && f.allows(0x10, true));
        assert!(f.allows(0xfe, false) && !f.allows(0xfe, true));
        assert!(!f.allows(0x35, false));
        assert!(!f.allows(0xc001_0015, false) && !f.allows(0xc001_0015, true));
        assert!(f.allows(0xc000_0080, true));
    }

    #[test]
    fn topology_overrides_an_allowed_0x35_read() {
        let p = Policy::parse("[[allow]]\nmsrs = [0x35, 0x36]\n").expect("parses");
        let f = Filter::from_policy(&p, true).expect("fits");
        assert!(!f.allows(0x35, false) && f.allows(0x35, true));
        assert!(f.allows(0x36, false));
        let f = Filter::from_policy(&p, false).expect("fits");
        assert!(f.allows(0x35, false));
        assert_eq!(f.ranges.len(), 1);
    }

    #[test]
    fn too_many_ranges() {
        let text: String = (0..17)
            .map(|i| format!("[[allow]]\nmsrs = [{}]\n", i * 0x10000))
            .collect();
        let p = Policy::parse(&text).expect("parses");
        let e = Filter::from_policy(&p, false).expect_err("17 ranges");
        assert!(e.contains("17 filter ranges"), "{e}");
    }

    #[test]
    fn empty_policy_gets_a_dummy_range() {
        let f = Filter::from_policy(&Policy::default(), false).expect("ok");
        assert_eq!(f.ranges.len(), 1);
        assert!(!f.allows(0, false));
    }
}
