// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The MSR filter object: validation, construction and lookup.
//!
//! [`build`] turns a [`FilterDesc`] into a [`Filter`] with the same checks,
//! in the same order and with the same errors as upstream KVM. Every
//! allocation goes through a caller-provided [`FilterAlloc`], and the bitmaps
//! are copied from user memory through a caller-provided callback, so this
//! module needs neither `alloc` nor `unsafe`.
//!
//! # Lookup
//!
//! Upstream scans the ranges linearly and lets the *first* range that covers
//! the index and has the access type's flag decide. Here the ranges are
//! compiled, once per access type, into a sorted table of disjoint intervals.
//! Each interval maps to the slot of the range that the linear scan would
//! pick for every index in it, or to the default action. A lookup is a
//! branchless binary search over the intervals actually used, padded with
//! sentinels to a power of two, followed by one bit test: at most
//! [`TABLE_STEPS`] steps whatever the filter (16 ranges), 2 for one range,
//! where upstream's loop costs up to 16 range checks.

use core::ops::{Deref, DerefMut};

use super::desc::{FilterDesc, RangeDesc};
use super::errno::Errno;
use super::uapi::{
    KVM_MSR_FILTER_DEFAULT_DENY, KVM_MSR_FILTER_MAX_BITMAP_SIZE, KVM_MSR_FILTER_MAX_RANGES,
    KVM_MSR_FILTER_RANGE_VALID_MASK, KVM_MSR_FILTER_READ, KVM_MSR_FILTER_VALID_MASK,
    KVM_MSR_FILTER_WRITE, X2APIC_MSR_FIRST, X2APIC_MSR_LAST,
};

/// The kind of MSR access being checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MsrAccess {
    /// RDMSR; matches ranges with `KVM_MSR_FILTER_READ`.
    Read = KVM_MSR_FILTER_READ,
    /// WRMSR; matches ranges with `KVM_MSR_FILTER_WRITE`.
    Write = KVM_MSR_FILTER_WRITE,
}

impl MsrAccess {
    /// The range flag bit for this access type (the C `type` argument).
    pub const fn flag(self) -> u32 {
        self as u32
    }

    /// Converts a C `type` value (exactly 1 or 2) into an access type.
    pub const fn from_type(ty: u32) -> Option<Self> {
        match ty {
            KVM_MSR_FILTER_READ => Some(MsrAccess::Read),
            KVM_MSR_FILTER_WRITE => Some(MsrAccess::Write),
            _ => None,
        }
    }

    /// Index of this access type's lookup table.
    const fn table(self) -> usize {
        match self {
            MsrAccess::Read => 0,
            MsrAccess::Write => 1,
        }
    }
}

/// Returns true if `index` is an x2APIC MSR (0x800..=0x8ff), which is never filtered.
pub const fn is_x2apic_msr(index: u32) -> bool {
    index >= X2APIC_MSR_FIRST && index <= X2APIC_MSR_LAST
}

/// Size in bytes of the bitmap that KVM copies for a range of `nmsrs` MSRs.
///
/// This is `BITS_TO_LONGS(nmsrs) * sizeof(long)` on a 64-bit kernel, i.e.
/// `ceil(nmsrs / 64) * 8`, computed in `u64` so it cannot overflow. It can be
/// up to 7 bytes more than `ceil(nmsrs / 8)`, and upstream reads all of them.
pub const fn bitmap_size(nmsrs: u32) -> u64 {
    // (2^32 - 1 + 63) / 64 * 8 < 2^36: no overflow.
    (nmsrs as u64).div_ceil(64) * 8
}

/// Fallible allocation for [`build`].
///
/// The kernel implements it with `KBox`/`KVec<u8>` and `GFP_KERNEL_ACCOUNT`;
/// host tests with `Box`/`Vec`. Every method may fail, and a failure aborts
/// the build with the error it returns (normally [`Errno::NoMem`]).
pub trait FilterAlloc {
    /// Owned bitmap storage.
    type Bitmap: Deref<Target = [u8]> + DerefMut;
    /// Owned (boxed) filter object.
    type Boxed: DerefMut<Target = Filter<Self::Bitmap>>;

    /// Moves `filter` into newly allocated storage and returns it unchanged.
    fn alloc_filter(&mut self, filter: Filter<Self::Bitmap>) -> Result<Self::Boxed, Errno>;

    /// Allocates a bitmap of exactly `len` bytes (contents need not be zeroed).
    ///
    /// A buffer of any other length is treated as an allocation failure.
    fn alloc_bitmap(&mut self, len: usize) -> Result<Self::Bitmap, Errno>;
}

/// One accepted range of a [`Filter`].
#[derive(Debug)]
pub struct Range<B> {
    flags: u32,
    base: u32,
    nmsrs: u32,
    bitmap: B,
}

impl<B: Deref<Target = [u8]>> Range<B> {
    /// The range's `KVM_MSR_FILTER_READ`/`WRITE` flags (never 0).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// First MSR index of the range.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// Number of MSRs in the range (never 0).
    pub fn nmsrs(&self) -> u32 {
        self.nmsrs
    }

    /// The bitmap as copied from userspace ([`bitmap_size`] bytes).
    ///
    /// Bit `i` (byte `i / 8`, bit `i % 8`) set means MSR `base + i` is allowed.
    pub fn bitmap(&self) -> &[u8] {
        &self.bitmap
    }

    /// Whether the range can match any index: `base + nmsrs` must not wrap
    /// in `u32` (upstream computes `end` in `u32`, and `index < end` then
    /// fails for every index above `base`).
    pub fn reachable(&self) -> bool {
        self.base.checked_add(self.nmsrs).is_some()
    }

    /// Tests the bit for `index`, which the caller has checked to be in range.
    fn test(&self, index: u32) -> bool {
        let off = index.wrapping_sub(self.base);
        // `off / 8` is below `bitmap.len()` for every in-range index because
        // the bitmap holds at least ceil(nmsrs / 8) bytes; `get` avoids a
        // panic path anyway (a missing byte reads as "deny").
        match self.bitmap.get((off / 8) as usize) {
            Some(byte) => (byte >> (off % 8)) & 1 != 0,
            None => false,
        }
    }
}

/// Number of entries of a lookup table: a power of two of at least
/// `2 * KVM_MSR_FILTER_MAX_RANGES + 1`, the largest number of intervals that
/// 16 ranges can cut the index space into.
pub const TABLE_SIZE: usize = 64;
/// Largest number of binary-search steps of a lookup (`log2(TABLE_SIZE)`).
pub const TABLE_STEPS: u32 = 6;
/// Table slot value meaning "no range: use the default action".
const SLOT_DEFAULT: u8 = u8::MAX;

/// `Table::top` of a search over the whole table.
const FULL_TOP: u8 = (TABLE_SIZE / 2) as u8;

const _: () = assert!(TABLE_SIZE == 1 << TABLE_STEPS);
const _: () = assert!(TABLE_SIZE / 2 <= u8::MAX as usize);
const _: () = assert!(TABLE_SIZE > 2 * KVM_MSR_FILTER_MAX_RANGES);
const _: () = assert!(KVM_MSR_FILTER_MAX_RANGES < SLOT_DEFAULT as usize);

/// A compiled lookup table for one access type.
///
/// # Invariants
///
/// - `starts` is sorted (non-decreasing) and `starts[0] == 0`.
/// - For every index `i`, with `k` the largest entry such that
///   `starts[k] <= i`, `slots[k]` is the slot of the first range (in filter
///   order) that covers `i` and has this table's flag, or `SLOT_DEFAULT`.
/// - Unused entries are sentinels `(u32::MAX, SLOT_DEFAULT)`. That is correct
///   even for `i == u32::MAX`: no range can cover `u32::MAX`, because a range
///   that reaches it has `base + nmsrs == 2^32`, which wraps to an `end` of 0.
/// - `top` is 0 or a power of two below `TABLE_SIZE`, and every entry from
///   `2 * top` on (from 1 on when `top` is 0) is a sentinel: the search only
///   needs to look at the first `2 * top` entries.
#[derive(Clone, Copy, Debug)]
struct Table {
    starts: [u32; TABLE_SIZE],
    slots: [u8; TABLE_SIZE],
    top: u8,
}

impl Table {
    /// The table with no ranges: everything maps to the default.
    const EMPTY: Table = {
        let mut starts = [u32::MAX; TABLE_SIZE];
        starts[0] = 0;
        Table {
            starts,
            slots: [SLOT_DEFAULT; TABLE_SIZE],
            top: 0,
        }
    };

    /// Returns the slot deciding `index`, in `log2(2 * top)` steps.
    fn lookup(&self, index: u32) -> u8 {
        const MASK: usize = TABLE_SIZE - 1;
        let mut pos = 0usize;
        let mut half = usize::from(self.top);
        while half != 0 {
            // `pos` is a sum of distinct larger powers of two, each at most
            // `top`, so `pos | half` is `pos + half` and at most
            // `2 * top - 1 < TABLE_SIZE`. Bitwise operations and the mask
            // make both facts obvious to the compiler: no overflow check
            // and no bounds check, hence no panic path.
            let probe = (pos | half) & MASK;
            // Branchless select: adds `half` when the probe is not past `index`.
            let take = usize::from(self.starts[probe] <= index);
            pos |= half & take.wrapping_neg();
            half >>= 1;
        }
        self.slots[pos & MASK]
    }

    /// Number of binary-search steps a lookup takes.
    fn steps(&self) -> u32 {
        if self.top == 0 {
            0
        } else {
            self.top.trailing_zeros() + 1
        }
    }

    /// Recomputes the table for the ranges in `ranges` that have `flag`.
    fn compile<B: Deref<Target = [u8]>>(&mut self, ranges: &[Option<Range<B>>], flag: u32) {
        // Interval boundaries: 0 plus the start and end of every reachable
        // range with `flag`. At most 1 + 2 * 16 = 33 of them.
        let mut bounds = [u32::MAX; 2 * KVM_MSR_FILTER_MAX_RANGES + 1];
        let mut nbounds = 1usize;
        bounds[0] = 0;
        let active = || {
            ranges
                .iter()
                .flatten()
                .filter(move |r| r.flags & flag != 0 && r.reachable())
        };
        for r in active() {
            for b in [r.base, r.base.wrapping_add(r.nmsrs)] {
                if let Some(slot) = bounds.get_mut(nbounds) {
                    *slot = b;
                    nbounds += 1;
                }
            }
        }
        let bounds = bounds.get_mut(..nbounds).unwrap_or(&mut []);
        sort_bounds(bounds);

        *self = Table::EMPTY;
        let mut n = 0usize;
        let mut prev: Option<u32> = None;
        for &b in bounds.iter() {
            if prev == Some(b) {
                continue;
            }
            prev = Some(b);
            // The owner of [b, next bound) is the first range covering b.
            let owner = ranges
                .iter()
                .enumerate()
                .filter_map(|(i, r)| r.as_ref().map(|r| (i, r)))
                .find(|(_, r)| {
                    r.flags & flag != 0 && r.reachable() && b >= r.base && b - r.base < r.nmsrs
                })
                .and_then(|(i, _)| u8::try_from(i).ok())
                .unwrap_or(SLOT_DEFAULT);
            // Merge with the previous interval when the owner is the same.
            if n > 0 && self.slots.get(n - 1) == Some(&owner) {
                continue;
            }
            if let (Some(s), Some(o)) = (self.starts.get_mut(n), self.slots.get_mut(n)) {
                *s = b;
                *o = owner;
                n += 1;
            }
        }
        // INVARIANT: `n <= 33`, so `2 * top`, the smallest power of two of at
        // least `n`, is at most 64 and the entries from `n` on are sentinels.
        let top = n.checked_next_power_of_two().unwrap_or(0) / 2;
        self.top = u8::try_from(top).unwrap_or(FULL_TOP);
    }
}

/// Sorts the (at most 33) interval boundaries of a table in place.
///
/// An insertion sort without a panic path: `sort_unstable()`'s quicksort
/// ends in calls the kernel's objtool cannot follow ("falls through to next
/// function"), and a few dozen elements need nothing faster.
fn sort_bounds(v: &mut [u32]) {
    for i in 1..v.len() {
        let mut j = i;
        while j > 0 {
            let Some([a, b]) = v.get_mut(j - 1..=j) else {
                break;
            };
            if *a <= *b {
                break;
            }
            core::mem::swap(a, b);
            j -= 1;
        }
    }
}

/// A built MSR filter (upstream's `struct kvm_x86_msr_filter`).
///
/// `B` is the bitmap storage type (see [`FilterAlloc::Bitmap`]).
#[derive(Debug)]
pub struct Filter<B> {
    default_allow: bool,
    count: usize,
    ranges: [Option<Range<B>>; KVM_MSR_FILTER_MAX_RANGES],
    tables: [Table; 2],
}

impl<B> Filter<B> {
    /// An empty filter (no ranges) with the given default action.
    ///
    /// Use it only to implement [`FilterAlloc::alloc_filter`]; filters with
    /// ranges come from [`build`].
    pub const fn new(default_allow: bool) -> Self {
        Filter {
            default_allow,
            count: 0,
            ranges: [const { None }; KVM_MSR_FILTER_MAX_RANGES],
            tables: [Table::EMPTY; 2],
        }
    }

    /// The action for indices not decided by any range.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// Number of accepted (non-empty) ranges.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The accepted ranges, in the order userspace gave them (empty slots
    /// removed).
    pub fn ranges(&self) -> impl Iterator<Item = &Range<B>> + '_ {
        self.ranges.iter().flatten()
    }
}

impl<B: Deref<Target = [u8]>> Filter<B> {
    /// Upstream's `kvm_msr_allowed()` for a filter that is installed.
    ///
    /// x2APIC MSRs are always allowed; otherwise the first range covering
    /// `index` with `access`'s flag decides through its bitmap, and the
    /// default action applies when there is none. At most six search steps.
    pub fn allowed(&self, index: u32, access: MsrAccess) -> bool {
        if is_x2apic_msr(index) {
            return true;
        }
        let slot = match self.tables.get(access.table()) {
            Some(t) => t.lookup(index),
            None => SLOT_DEFAULT,
        };
        match self.ranges.get(usize::from(slot)) {
            Some(Some(r)) => r.test(index),
            _ => self.default_allow,
        }
    }

    /// Number of binary-search steps of a lookup for `access` (0 to
    /// [`TABLE_STEPS`]): the base-2 logarithm of the number of intervals the
    /// ranges with `access`'s flag cut the index space into, rounded up.
    pub fn lookup_steps(&self, access: MsrAccess) -> u32 {
        self.tables.get(access.table()).map_or(0, Table::steps)
    }

    /// Like [`Filter::allowed`] but with the raw C `type` value.
    ///
    /// Values other than 1 and 2 (KVM never passes them) fall back to the
    /// linear scan, so that the result is still exactly upstream's.
    pub fn allowed_raw(&self, index: u32, ty: u32) -> bool {
        match MsrAccess::from_type(ty) {
            Some(access) => self.allowed(index, access),
            None => is_x2apic_msr(index) || self.allowed_linear(index, ty),
        }
    }

    /// Upstream's linear first-match scan, without the x2APIC exemption.
    ///
    /// Slow path kept for unusual `ty` values and for self-checks.
    pub fn allowed_linear(&self, index: u32, ty: u32) -> bool {
        for r in self.ranges() {
            let end = r.base.wrapping_add(r.nmsrs);
            if index >= r.base && index < end && r.flags & ty != 0 {
                return r.test(index);
            }
        }
        self.default_allow
    }

    /// Recomputes both lookup tables from the ranges.
    fn compile(&mut self) {
        let [read, write] = &mut self.tables;
        read.compile(&self.ranges, KVM_MSR_FILTER_READ);
        write.compile(&self.ranges, KVM_MSR_FILTER_WRITE);
    }
}

/// Upstream's `kvm_msr_allowed()` given the installed filter, if any.
///
/// The x2APIC check comes first; no filter means everything is allowed.
pub fn msr_allowed<B: Deref<Target = [u8]>>(
    filter: Option<&Filter<B>>,
    index: u32,
    access: MsrAccess,
) -> bool {
    if is_x2apic_msr(index) {
        return true;
    }
    match filter {
        Some(f) => f.allowed(index, access),
        None => true,
    }
}

/// The checks done before the filter object is allocated.
///
/// Returns the default action (`true` = allow). Errors: reserved filter flag
/// bits, or all ranges empty together with `KVM_MSR_FILTER_DEFAULT_DENY`
/// ([`Errno::Inval`]).
pub fn check_header(desc: &FilterDesc) -> Result<bool, Errno> {
    if desc.flags & !KVM_MSR_FILTER_VALID_MASK != 0 {
        return Err(Errno::Inval);
    }
    let empty = desc.ranges.iter().all(|r| r.nmsrs == 0);
    let default_allow = desc.flags & KVM_MSR_FILTER_DEFAULT_DENY == 0;
    if empty && !default_allow {
        return Err(Errno::Inval);
    }
    Ok(default_allow)
}

/// The per-range checks done before the bitmap is allocated.
///
/// Returns `Ok(None)` for an empty range (`nmsrs == 0`, nothing else is
/// checked), `Ok(Some(len))` with the bitmap length to copy, or
/// [`Errno::Inval`] for bad flags or a bad size.
pub fn check_range(range: &RangeDesc) -> Result<Option<usize>, Errno> {
    if range.nmsrs == 0 {
        return Ok(None);
    }
    if range.flags & !KVM_MSR_FILTER_RANGE_VALID_MASK != 0 || range.flags == 0 {
        return Err(Errno::Inval);
    }
    let size = bitmap_size(range.nmsrs);
    if size == 0 || size > KVM_MSR_FILTER_MAX_BITMAP_SIZE {
        return Err(Errno::Inval);
    }
    // size <= 0x600 fits any usize.
    usize::try_from(size).map(Some).map_err(|_| Errno::Inval)
}

/// Builds a filter exactly like upstream's `kvm_vm_ioctl_set_msr_filter()`
/// up to (not including) its installation.
///
/// Order: [`check_header`]; allocate the filter object; then for each of the
/// 16 ranges in array order: [`check_range`], allocate the bitmap, and
/// `copy(user_addr, buf)` it from userspace, where `buf.len()` is exactly
/// [`bitmap_size`]. The first error is returned and everything built so far
/// is dropped. Accepted ranges are compacted in order; overlaps are allowed.
pub fn build<A, C>(desc: &FilterDesc, alloc: &mut A, mut copy: C) -> Result<A::Boxed, Errno>
where
    A: FilterAlloc,
    C: FnMut(u64, &mut [u8]) -> Result<(), Errno>,
{
    let default_allow = check_header(desc)?;
    let mut filter = alloc.alloc_filter(Filter::new(default_allow))?;
    for r in desc.ranges.iter() {
        let Some(len) = check_range(r)? else {
            continue;
        };
        let mut bitmap = alloc.alloc_bitmap(len)?;
        if bitmap.len() != len {
            return Err(Errno::NoMem);
        }
        copy(r.bitmap, &mut bitmap)?;
        let count = filter.count;
        // At most 16 non-empty descriptors exist, so `count < 16` here.
        let slot = filter.ranges.get_mut(count).ok_or(Errno::Inval)?;
        *slot = Some(Range {
            flags: r.flags,
            base: r.base,
            nmsrs: r.nmsrs,
            bitmap,
        });
        filter.count = count + 1;
    }
    filter.compile();
    Ok(filter)
}
