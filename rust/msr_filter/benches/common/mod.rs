// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Shared setup of the host lookup benchmarks: the filter layouts (the same
//! ones `msr_filter_bench lookup` installs in the kernel), a host allocator
//! and a deliberately plain model of upstream's linear-scan lookup.

#![allow(dead_code)]

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use msr_filter::{build, Errno, Filter, FilterAlloc, FilterDesc, MsrAccess, RangeDesc};

/// First MSR index of range 0; range `i` starts `i * RANGE_STRIDE` above it.
pub const RANGE_BASE: u32 = 0x4000_0000;
/// Distance between the bases of consecutive ranges (ranges are disjoint).
pub const RANGE_STRIDE: u32 = 0x1000;
/// MSRs per range.
pub const RANGE_NMSRS: u32 = 0x100;
/// An index that no range covers and that is above every range, so that a
/// linear scan looks at every range before falling back to the default.
pub const MISS_INDEX: u32 = 0x474f_4f00;
/// Range counts measured.
pub const RANGE_COUNTS: [usize; 3] = [1, 4, 16];

/// The index that hits the last of `n` ranges (in its middle).
pub fn hit_index(n: usize) -> u32 {
    RANGE_BASE + (n as u32 - 1) * RANGE_STRIDE + RANGE_NMSRS / 2
}

/// `Vec`/`Box` allocator (never fails).
pub struct HostAlloc;

impl FilterAlloc for HostAlloc {
    type Bitmap = Vec<u8>;
    type Boxed = Box<Filter<Vec<u8>>>;

    fn alloc_filter(&mut self, filter: Filter<Vec<u8>>) -> Result<Self::Boxed, Errno> {
        Ok(Box::new(filter))
    }

    fn alloc_bitmap(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
        Ok(vec![0; len])
    }
}

/// The benchmark filter with `n` ranges: DEFAULT_DENY, each range read+write
/// with every MSR allowed. A hit therefore returns true, a miss false.
pub fn bench_desc(n: usize) -> FilterDesc {
    let mut d = FilterDesc {
        flags: msr_filter::uapi::KVM_MSR_FILTER_DEFAULT_DENY,
        ..FilterDesc::default()
    };
    for (i, r) in d.ranges.iter_mut().take(n).enumerate() {
        *r = RangeDesc {
            flags: msr_filter::uapi::KVM_MSR_FILTER_READ | msr_filter::uapi::KVM_MSR_FILTER_WRITE,
            nmsrs: RANGE_NMSRS,
            base: RANGE_BASE + i as u32 * RANGE_STRIDE,
            // Fake user address: the copier below fills every bitmap with ones.
            bitmap: 0x1000 * (i as u64 + 1),
        };
    }
    d
}

/// Builds the `n`-range benchmark filter with the crate (compiled tables).
pub fn rust_filter(n: usize) -> Box<Filter<Vec<u8>>> {
    build(&bench_desc(n), &mut HostAlloc, |_, buf| {
        buf.fill(0xff);
        Ok(())
    })
    .expect("benchmark filter must build")
}

/// One range of [`LinearFilter`], laid out like upstream's
/// `struct msr_bitmap_range`.
pub struct LinearRange {
    pub flags: u32,
    pub nmsrs: u32,
    pub base: u32,
    pub bitmap: Box<[u64]>,
}

/// Upstream's `struct kvm_x86_msr_filter` and `kvm_msr_allowed()` loop,
/// restated plainly: x2APIC check, then the first range that covers the
/// index with the access type's flag decides with `test_bit()`.
pub struct LinearFilter {
    pub count: u8,
    pub default_allow: bool,
    pub ranges: Vec<LinearRange>,
}

impl LinearFilter {
    /// The `n`-range benchmark filter (same content as [`rust_filter`]).
    pub fn new(n: usize) -> Self {
        let d = bench_desc(n);
        let ranges: Vec<LinearRange> = d
            .ranges
            .iter()
            .filter(|r| r.nmsrs != 0)
            .map(|r| LinearRange {
                flags: r.flags,
                nmsrs: r.nmsrs,
                base: r.base,
                bitmap: vec![!0u64; (r.nmsrs as usize).div_ceil(64)].into_boxed_slice(),
            })
            .collect();
        LinearFilter {
            count: ranges.len() as u8,
            default_allow: d.flags & msr_filter::uapi::KVM_MSR_FILTER_DEFAULT_DENY == 0,
            ranges,
        }
    }

    /// `kvm_msr_allowed()` minus the SRCU and vCPU plumbing.
    #[inline(never)]
    pub fn allowed(&self, index: u32, ty: u32) -> bool {
        if (0x800..=0x8ff).contains(&index) {
            return true;
        }
        let mut allowed = self.default_allow;
        for r in &self.ranges[..usize::from(self.count)] {
            let start = r.base;
            let end = start.wrapping_add(r.nmsrs);
            if index >= start && index < end && r.flags & ty != 0 {
                let bit = (index - start) as usize;
                allowed = (r.bitmap[bit / 64] >> (bit % 64)) & 1 != 0;
                break;
            }
        }
        allowed
    }
}

/// The crate's lookup behind the same calling convention as
/// [`LinearFilter::allowed`] (not inlined into the benchmark loop either).
#[inline(never)]
pub fn rust_allowed(f: &Filter<Vec<u8>>, index: u32, access: MsrAccess) -> bool {
    f.allowed(index, access)
}

/// The measured cases: (name, number of ranges, index, expected result).
pub fn cases() -> Vec<(String, usize, u32, bool)> {
    let mut v = Vec::new();
    for n in RANGE_COUNTS {
        v.push((format!("{n}r_hit"), n, hit_index(n), true));
        v.push((format!("{n}r_miss"), n, MISS_INDEX, false));
    }
    v
}

/// Checks that both lookups agree with the expected result of every case.
pub fn self_check() {
    for (name, n, index, want) in cases() {
        let rf = rust_filter(n);
        let lf = LinearFilter::new(n);
        assert_eq!(
            rust_allowed(&rf, index, MsrAccess::Read),
            want,
            "{name} rust"
        );
        assert_eq!(
            lf.allowed(index, MsrAccess::Read.flag()),
            want,
            "{name} linear"
        );
        assert_eq!(rf.allowed_linear(index, 1), want, "{name} allowed_linear");
    }
}
