// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Shared setup of the host lookup benchmarks: the filter layouts (the same
//! ones `msr_filter_bench lookup` installs in the kernel), a host allocator
//! and upstream's lookup compiled from C (`benches/c/upstream_lookup.c`,
//! built and linked by `build.rs`).

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
/// Range counts measured (0: a DEFAULT_ALLOW filter without ranges).
pub const RANGE_COUNTS: [usize; 6] = [0, 1, 2, 4, 8, 16];

/// The index that hits the last of `n` ranges (in its middle).
pub fn hit_index(n: usize) -> u32 {
    RANGE_BASE + (n as u32 - 1) * RANGE_STRIDE + RANGE_NMSRS / 2
}

/// `Box` allocator (never fails), with the kernel's storage type for bitmaps
/// and tables (`KBox<[u8]>` there).
pub struct HostAlloc;

impl FilterAlloc for HostAlloc {
    type Bitmap = Box<[u8]>;
    type Boxed = Box<Filter<Box<[u8]>>>;

    fn alloc_filter(&mut self, filter: Filter<Box<[u8]>>) -> Result<Self::Boxed, Errno> {
        Ok(Box::new(filter))
    }

    fn alloc_bitmap(&mut self, len: usize) -> Result<Box<[u8]>, Errno> {
        Ok(vec![0; len].into_boxed_slice())
    }
}

/// The benchmark filter with `n` ranges: DEFAULT_DENY, each range read+write
/// with every MSR allowed. A hit therefore returns true, a miss false. With
/// no range (which DEFAULT_DENY does not allow) it is DEFAULT_ALLOW.
pub fn bench_desc(n: usize) -> FilterDesc {
    let mut d = FilterDesc {
        flags: if n == 0 {
            msr_filter::uapi::KVM_MSR_FILTER_DEFAULT_ALLOW
        } else {
            msr_filter::uapi::KVM_MSR_FILTER_DEFAULT_DENY
        },
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
pub fn rust_filter(n: usize) -> Box<Filter<Box<[u8]>>> {
    build(&bench_desc(n), &mut HostAlloc, |_, buf| {
        buf.fill(0xff);
        Ok(())
    })
    .expect("benchmark filter must build")
}

/// Upstream's `struct msr_bitmap_range` (arch/x86/kvm/msrs.c).
#[repr(C)]
pub struct CRange {
    pub flags: u32,
    pub nmsrs: u32,
    pub base: u32,
    pub bitmap: *const u64,
}

/// Upstream's `struct kvm_x86_msr_filter`: `u8 count; bool default_allow:1;
/// struct msr_bitmap_range ranges[16];`. The bit-field is bit 0 of the byte
/// after `count` (x86-64 SysV); `c_layout_check()` compares with clang's
/// layout.
#[repr(C)]
pub struct CFilterRaw {
    pub count: u8,
    pub default_allow: u8,
    pub ranges: [CRange; 16],
}

#[cfg(not(no_c_anchor))]
extern "C" {
    fn upstream_msr_allowed(filter: *const CFilterRaw, index: u32, ty: u32) -> bool;
    fn upstream_filter_size() -> usize;
    fn upstream_range_offset(i: u32) -> usize;
}

/// Checks that [`CFilterRaw`] is laid out as the C compiler lays it out.
#[cfg(not(no_c_anchor))]
pub fn c_layout_check() {
    // SAFETY: plain functions of benches/c/upstream_lookup.c without arguments to validate.
    let (size, off0, off15) = unsafe {
        (
            upstream_filter_size(),
            upstream_range_offset(0),
            upstream_range_offset(15),
        )
    };
    assert_eq!(size, std::mem::size_of::<CFilterRaw>());
    assert_eq!(off0, std::mem::offset_of!(CFilterRaw, ranges));
    assert_eq!(off15, off0 + 15 * std::mem::size_of::<CRange>());
}

/// An upstream filter for the C reference, with its bitmaps (`unsigned
/// long` words, as `memdup_user()` leaves them on x86-64).
pub struct CFilter {
    raw: Box<CFilterRaw>,
    _bitmaps: Vec<Box<[u64]>>,
}

impl CFilter {
    /// The `n`-range benchmark filter (same content as [`rust_filter`]).
    pub fn new(n: usize) -> Self {
        let d = bench_desc(n);
        let mut bitmaps = Vec::new();
        let mut raw = Box::new(CFilterRaw {
            count: 0,
            default_allow: u8::from(d.flags & msr_filter::uapi::KVM_MSR_FILTER_DEFAULT_DENY == 0),
            ranges: std::array::from_fn(|_| CRange {
                flags: 0,
                nmsrs: 0,
                base: 0,
                bitmap: std::ptr::null(),
            }),
        });
        for r in d.ranges.iter().filter(|r| r.nmsrs != 0) {
            let bm = vec![!0u64; (r.nmsrs as usize).div_ceil(64)].into_boxed_slice();
            raw.ranges[usize::from(raw.count)] = CRange {
                flags: r.flags,
                nmsrs: r.nmsrs,
                base: r.base,
                bitmap: bm.as_ptr(),
            };
            bitmaps.push(bm);
            raw.count += 1;
        }
        CFilter {
            raw,
            _bitmaps: bitmaps,
        }
    }

    /// Upstream's lookup, compiled from C (`kvm_msr_allowed_c()` minus the
    /// SRCU section), not inlined.
    #[cfg(not(no_c_anchor))]
    pub fn allowed(&self, index: u32, ty: u32) -> bool {
        // SAFETY: `raw` and the bitmaps it points to live as long as `self`;
        // every bitmap holds `nmsrs` bits rounded up to whole words.
        unsafe { upstream_msr_allowed(&*self.raw, index, ty) }
    }

    /// Without clang there is no C reference to run.
    #[cfg(no_c_anchor)]
    pub fn allowed(&self, _index: u32, _ty: u32) -> bool {
        panic!("built without clang: no C reference (see build.rs)")
    }
}

/// The crate's lookup behind the same calling convention as
/// [`CFilter::allowed`] (not inlined into the benchmark loop either).
#[inline(never)]
pub fn rust_allowed(f: &Filter<Box<[u8]>>, index: u32, access: MsrAccess) -> bool {
    f.allowed(index, access)
}

/// The measured cases: (name, number of ranges, index, expected result).
/// Without ranges only the "miss" case exists (`0r`).
pub fn cases() -> Vec<(String, usize, u32, bool)> {
    let mut v = Vec::new();
    for n in RANGE_COUNTS {
        if n == 0 {
            v.push(("0r".to_string(), 0, MISS_INDEX, true));
            continue;
        }
        v.push((format!("{n}r_hit"), n, hit_index(n), true));
        v.push((format!("{n}r_miss"), n, MISS_INDEX, false));
    }
    v
}

/// Checks that both lookups agree with the expected result of every case.
pub fn self_check() {
    #[cfg(not(no_c_anchor))]
    c_layout_check();
    for (name, n, index, want) in cases() {
        let rf = rust_filter(n);
        let cf = CFilter::new(n);
        assert_eq!(
            rust_allowed(&rf, index, MsrAccess::Read),
            want,
            "{name} rust"
        );
        assert_eq!(cf.allowed(index, MsrAccess::Read.flag()), want, "{name} c");
        assert_eq!(rf.allowed_linear(index, 1), want, "{name} allowed_linear");
    }
}
