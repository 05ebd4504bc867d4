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
//! the index and has the access type's flag decide. Here [`build`] picks, per
//! filter and per access type, the cheapest of three shapes ([`Shape`]):
//!
//! - [`Shape::Scan`]: with at most [`SCAN_MAX`] ranges that have the access
//!   type's flag (and can match at all), those ranges, in filter order, with
//!   one unsigned comparison each (`index - base < nmsrs`) and no flag test;
//! - with more, a lookup of the disjoint intervals the ranges cut the index
//!   space into, each mapped to the range the linear scan would pick for a
//!   read and for a write (or to the default), the first interval (from
//!   index 0, up to `lo`) being kept in the filter itself:
//!   - [`Shape::Bucket`]: if some power of two `1 << shift` cuts the indices
//!     from `lo` on into [`BUCKETS`] buckets (the last one open-ended) such
//!     that at most one interval starts strictly inside each bucket, a
//!     bucket table of [`BUCKETS`] 8-byte entries: the entry of bucket
//!     `min((index - lo) >> shift, BUCKETS - 1)` holds that start (the
//!     split) and the intervals' slots below and at or above it. One load
//!     and one comparison, at any number of ranges; 128 bytes. The build
//!     takes the smallest such shift;
//!   - [`Shape::Search`]: otherwise, a binary search of a table of the
//!     intervals, allocated to their number: at most 32 entries of 8 bytes.
//!     Six probes at most, where upstream's loop costs up to 16 range
//!     checks.
//!
//! Either way one bitmap byte decides.

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

    /// Index of this access type's lookup plan: its flag (1 or 2).
    const fn plan(self) -> usize {
        self as usize
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

    /// Allocates the interval or bucket table of a filter: exactly `len` bytes, at
    /// most `TABLE_MAX * TABLE_ENTRY_SIZE` (256), contents need not be zeroed.
    ///
    /// Only filters with more than [`SCAN_MAX`] ranges of an access type
    /// have a table. By default it is allocated like a bitmap.
    fn alloc_table(&mut self, len: usize) -> Result<Self::Bitmap, Errno> {
        self.alloc_bitmap(len)
    }
}

/// One accepted range of a [`Filter`], as [`Filter::ranges`] shows it.
#[derive(Clone, Copy, Debug)]
pub struct Range<'a> {
    flags: u32,
    base: u32,
    nmsrs: u32,
    bitmap: &'a [u8],
}

impl<'a> Range<'a> {
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
    pub fn bitmap(&self) -> &'a [u8] {
        self.bitmap
    }

    /// Whether the range can match any index: `base + nmsrs` must not wrap
    /// in `u32` (upstream computes `end` in `u32`, and `index < end` then
    /// fails for every index above `base`).
    pub fn reachable(&self) -> bool {
        reachable(self.base, self.nmsrs)
    }
}

/// See [`Range::reachable`].
const fn reachable(base: u32, nmsrs: u32) -> bool {
    base.checked_add(nmsrs).is_some()
}

/// Most ranges of one access type that a lookup scans one by one; a filter
/// with more ranges for an access type searches its interval table instead.
///
/// Four: around four ranges a scan and a search cost about the same in the
/// host benchmark (`cargo bench --bench lookup_table`), and a filter with at
/// most four ranges per access type, the common case, needs no table.
pub const SCAN_MAX: usize = 4;

/// Largest number of interval-table entries: 16 ranges cut the index space
/// into at most 33 intervals, the first of which is kept in the filter.
pub const TABLE_MAX: usize = 2 * KVM_MSR_FILTER_MAX_RANGES;
/// Size in bytes of one interval-table entry (a little-endian `u64`).
pub const TABLE_ENTRY_SIZE: usize = 8;
/// Largest number of binary-search probes of a lookup (`ceil(log2(33))`).
pub const TABLE_STEPS: u32 = 6;

/// Slot value meaning "no range: use the default action".
const SLOT_DEFAULT: u8 = u8::MAX;

/// Number of buckets of a bucket table (see [`Shape::Bucket`]).
pub const BUCKETS: usize = 16;
/// Size in bytes of a bucket table: one table entry per bucket.
pub const BUCKET_TABLE_SIZE: usize = BUCKETS * TABLE_ENTRY_SIZE;

/// `Plan::shift` of a plan whose table is an interval table.
const NO_BUCKETS: u8 = u8::MAX;

/// One past the largest index.
const END_ALL: u64 = 1 << 32;

const _: () = assert!((1usize << TABLE_STEPS) > TABLE_MAX);
const _: () = assert!((1usize << (TABLE_STEPS - 1)) <= TABLE_MAX);
const _: () = assert!(KVM_MSR_FILTER_MAX_RANGES < SLOT_DEFAULT as usize);
const _: () = assert!(SCAN_MAX <= KVM_MSR_FILTER_MAX_RANGES && SCAN_MAX < u8::MAX as usize);
const _: () =
    assert!(BUCKETS.is_power_of_two() && BUCKET_TABLE_SIZE <= TABLE_MAX * TABLE_ENTRY_SIZE);

/// How a lookup of one access type finds the deciding range of a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// The given number (0 to [`SCAN_MAX`]) of ranges is scanned in order.
    Scan(u32),
    /// The interval table is searched in the given number of probes (1 to
    /// [`TABLE_STEPS`]).
    Search(u32),
    /// The bucket table is looked up: [`BUCKETS`] buckets of `1 << n`
    /// indices (n from 0 to 31) each, the last one to the end of the index
    /// space.
    Bucket(u32),
}

/// What a lookup of one access type does.
///
/// # Invariants
///
/// If `n <= SCAN_MAX`, `scan[..n]` are the slots, in filter order, of every
/// reachable range with one of the plan's flags (`KVM_MSR_FILTER_READ`,
/// `KVM_MSR_FILTER_WRITE` or both, see [`Filter`]). Otherwise `n` is
/// `PLAN_SEARCH`: for a read or a write plan the filter has a table, for the
/// plan of both flags lookups take the linear scan. `shift` is below 32 for
/// a read or a write plan whose filter has a bucket table with buckets of
/// `1 << shift` indices, and `NO_BUCKETS` otherwise. `prefix` is true only
/// if `n <= SCAN_MAX` and `scan[..n]` is `0..n`.
///
/// Eight bytes: a lookup finds its plan with one scaled index.
#[derive(Clone, Copy, Debug)]
#[repr(align(8))]
struct Plan {
    n: u8,
    scan: [u8; SCAN_MAX],
    shift: u8,
    prefix: bool,
}

/// `Plan::n` of an access type whose lookups go to the table.
const PLAN_SEARCH: u8 = u8::MAX;

impl Plan {
    const EMPTY: Plan = Plan {
        n: 0,
        scan: [0; SCAN_MAX],
        shift: NO_BUCKETS,
        prefix: true,
    };
}

/// The key that an entry is compared with: an entry is at or below the key
/// exactly when its interval starts at or below `index` (entries hold the
/// start in bits 63:16 and two slots in bits 15:0).
const fn table_key(index: u32) -> u64 {
    ((index as u64) << 16) | 0xffff
}

/// A table entry: the interval starting at `start` and its read and write slots.
const fn table_entry(start: u32, read: u8, write: u8) -> u64 {
    ((start as u64) << 16) | ((write as u64) << 8) | read as u64
}

/// A bucket-table entry: `split` in bits 31:0, then the slots (read in the
/// low byte, write in the high byte) of the bucket's indices below `split`
/// in bits 47:32 and of those at or above it in bits 63:48.
const fn bucket_entry(split: u32, below: u16, above: u16) -> u64 {
    ((above as u64) << 48) | ((below as u64) << 32) | split as u64
}

/// The bucket table of the intervals `entries` ([`table_entry`]s by strictly
/// increasing start, the first at 0) for buckets of `1 << shift` indices
/// from `lo` on, or `None` if a bucket holds more than one interval start.
///
/// Bucket `b` holds the indices from `lo + (b << shift)` to the next
/// bucket's first, the last bucket all indices above; `shift` is below 32.
fn bucket_table(entries: &[u64], lo: u32, shift: u32) -> Option<[u64; BUCKETS]> {
    let mut table = [0u64; BUCKETS];
    // `entries[..p]` start at or below the current bucket's first index.
    let mut p = 0usize;
    for (b, slot) in (0..BUCKETS as u64).zip(table.iter_mut()) {
        // Below 2^32 + 2^36, and `p` at most `entries.len()`: the wrapping
        // operations do not wrap (and leave no overflow check in the kernel).
        let first = u64::from(lo).wrapping_add(b << (shift % 32));
        let next = if b.wrapping_add(1) == BUCKETS as u64 {
            END_ALL
        } else {
            END_ALL.min(u64::from(lo).wrapping_add(b.wrapping_add(1) << (shift % 32)))
        };
        while entries.get(p).is_some_and(|&e| e >> 16 <= first) {
            p = p.wrapping_add(1);
        }
        let below = p
            .checked_sub(1)
            .and_then(|k| entries.get(k))
            .map_or(u16::MAX, |&e| e as u16);
        let mut inside = entries
            .get(p..)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&e| e >> 16 < next);
        *slot = match (inside.next(), inside.next()) {
            // No split: `above` for every index of the bucket.
            (None, _) => bucket_entry(0, below, below),
            (Some(&e), None) => bucket_entry((e >> 16) as u32, below, e as u16),
            _ => return None,
        };
    }
    Some(table)
}

/// A built MSR filter (upstream's `struct kvm_x86_msr_filter`).
///
/// `B` is the bitmap storage type (see [`FilterAlloc::Bitmap`]).
///
/// # Invariants
///
/// - Slots `0..count` hold the accepted ranges in order: `flags[s]` is
///   nonzero, `bitmaps[s]` is `Some` with [`bitmap_size`]`(nmsrs[s])` bytes;
///   later slots are empty (`flags` 0, `bitmaps` `None`).
/// - `plans[t]` describes the lookups of a C `type` whose bits 1:0 are `t`
///   (see [`Plan`]): upstream tests `flags & type` and every range's flags
///   are within bits 1:0, so those two bits are all of `type` that counts.
///   `plans[0]` (no flag: only the default) is empty, `plans[1]` is for
///   reads, `plans[2]` for writes, `plans[3]` for either flag.
/// - `first` is the entry (bits 15:0) of the interval starting at 0. If the
///   read and write plans that are not scans have a `shift` other than
///   `NO_BUCKETS` (they all have the same), `table` is a bucket table:
///   [`BUCKETS`] entries ([`bucket_entry`]), entry `b` for the indices from
///   `lo + (b << shift)` below the next entry's (the last entry for all
///   indices above), `lo` being where the second interval starts, as
///   [`bucket_table`] makes them. Otherwise `table`, if any, is an interval
///   table: entries ([`table_entry`]) sorted by strictly increasing start,
///   all above 0; with `first`, the entry with the largest start at or below
///   an index names, for each access type, the slot of the first reachable
///   range with that type's flag that covers the index, or `SLOT_DEFAULT`.
#[derive(Debug)]
pub struct Filter<B> {
    default_allow: bool,
    count: u8,
    flags: [u8; KVM_MSR_FILTER_MAX_RANGES],
    first: u16,
    lo: u32,
    plans: [Plan; 4],
    bases: [u32; KVM_MSR_FILTER_MAX_RANGES],
    nmsrs: [u32; KVM_MSR_FILTER_MAX_RANGES],
    bitmaps: [Option<B>; KVM_MSR_FILTER_MAX_RANGES],
    table: Option<B>,
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
            flags: [0; KVM_MSR_FILTER_MAX_RANGES],
            first: table_entry(0, SLOT_DEFAULT, SLOT_DEFAULT) as u16,
            lo: 0,
            plans: [Plan::EMPTY; 4],
            bases: [0; KVM_MSR_FILTER_MAX_RANGES],
            nmsrs: [0; KVM_MSR_FILTER_MAX_RANGES],
            bitmaps: [const { None }; KVM_MSR_FILTER_MAX_RANGES],
            table: None,
        }
    }

    /// The action for indices not decided by any range.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// Number of accepted (non-empty) ranges.
    pub fn count(&self) -> usize {
        usize::from(self.count)
    }
}

impl<B: Deref<Target = [u8]>> Filter<B> {
    /// The accepted ranges, in the order userspace gave them (empty slots
    /// removed).
    pub fn ranges(&self) -> impl Iterator<Item = Range<'_>> + '_ {
        self.flags
            .iter()
            .zip(self.bases.iter().zip(self.nmsrs.iter()))
            .zip(self.bitmaps.iter())
            .filter_map(|((&flags, (&base, &nmsrs)), bitmap)| {
                bitmap.as_ref().map(|b| Range {
                    flags: u32::from(flags),
                    base,
                    nmsrs,
                    bitmap: b,
                })
            })
    }

    /// Upstream's `kvm_msr_allowed()` for a filter that is installed.
    ///
    /// x2APIC MSRs are always allowed; otherwise the first range covering
    /// `index` with `access`'s flag decides through its bitmap, and the
    /// default action applies when there is none.
    #[inline]
    pub fn allowed(&self, index: u32, access: MsrAccess) -> bool {
        self.allowed_raw(index, access.flag())
    }

    /// Like [`Filter::allowed`] but with the raw C `type` value, any value:
    /// the result is upstream's for every `type` (KVM passes only 1 and 2).
    ///
    /// Always inlined: the kernel's entry points have checked the x2APIC
    /// range already, and a call of its own would cost every lookup a jump
    /// and that check again.
    #[inline(always)]
    pub fn allowed_raw(&self, index: u32, ty: u32) -> bool {
        if is_x2apic_msr(index) {
            return true;
        }
        // Only bits 1:0 of `type` can meet a range's flags.
        let t = (ty & (KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE)) as usize;
        let plan = &self.plans[t % 4];
        let n = usize::from(plan.n);
        if n > SCAN_MAX {
            // Not colder than a scan: the hint keeps the scans, where a
            // taken branch is a large part of the cost, on the fall-through
            // path.
            core::hint::cold_path();
            return match t as u32 {
                KVM_MSR_FILTER_READ => self.allowed_table::<false>(index),
                KVM_MSR_FILTER_WRITE => self.allowed_table::<true>(index),
                _ => self.allowed_both(index),
            };
        }
        if plan.prefix {
            // The slots are `0..n`: C's loop, no slot number to load before
            // the range's base.
            for s in 0..n {
                let s = s % KVM_MSR_FILTER_MAX_RANGES;
                let off = index.wrapping_sub(self.bases[s]);
                if off < self.nmsrs[s] {
                    return self.test(s, off);
                }
            }
        } else {
            // The slots of a filter whose ranges do not all have the flag:
            // laid out after the common case.
            core::hint::cold_path();
            for &s in plan.scan.iter().take(n) {
                let s = usize::from(s) % KVM_MSR_FILTER_MAX_RANGES;
                let off = index.wrapping_sub(self.bases[s]);
                if off < self.nmsrs[s] {
                    return self.test(s, off);
                }
            }
        }
        self.default_allow
    }

    /// The lookup of a `type` with both flags when more than [`SCAN_MAX`]
    /// ranges can match: upstream's linear scan.
    #[inline(never)]
    fn allowed_both(&self, index: u32) -> bool {
        self.allowed_linear(index, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE)
    }

    /// The lookup of a read (`WRITE` false) or a write whose plan is not a
    /// scan: through the bucket table or a search of the interval table.
    /// Not inlined: the scans stay free of the table lookup's register needs.
    #[inline(never)]
    fn allowed_table<const WRITE: bool>(&self, index: u32) -> bool {
        let (plan, sel) = if WRITE {
            (KVM_MSR_FILTER_WRITE, 8)
        } else {
            (KVM_MSR_FILTER_READ, 0)
        };
        let shift = self.plans[plan as usize % 4].shift;
        let slots = if shift != NO_BUCKETS {
            self.bucket(index, shift)
        } else {
            self.search(index)
        };
        // `SLOT_DEFAULT` is no slot: the default action.
        let s = usize::from((slots >> sel) as u8);
        match (self.bitmaps.get(s), self.bases.get(s)) {
            (Some(Some(b)), Some(&base)) => test_bytes(b, index.wrapping_sub(base)),
            _ => self.default_allow,
        }
    }

    /// The two slots (read in bits 7:0, write in bits 15:8) of the interval
    /// holding `index`, from the bucket table: `first` below `lo`, else the
    /// entry of bucket `(index - lo) >> shift` (the last one beyond them)
    /// gives them, depending on which side of its split `index` is.
    #[inline]
    fn bucket(&self, index: u32, shift: u8) -> u16 {
        let Some(off) = index.checked_sub(self.lo) else {
            return self.first;
        };
        let b = (off >> (shift % 32)).min(BUCKETS as u32 - 1) as usize;
        let Some(table) = self
            .table
            .as_deref()
            .and_then(|t| t.first_chunk::<BUCKET_TABLE_SIZE>())
        else {
            return u16::MAX;
        };
        let (entries, _) = table.as_chunks::<TABLE_ENTRY_SIZE>();
        let e = match entries.get(b % BUCKETS) {
            Some(e) => u64::from_le_bytes(*e),
            None => return u16::MAX,
        };
        if index >= e as u32 {
            (e >> 48) as u16
        } else {
            (e >> 32) as u16
        }
    }

    /// The two slots (read in bits 7:0, write in bits 15:8) of the interval
    /// holding `index`: a binary search of the table. Its branches, not
    /// conditional moves: a predicted branch lets the CPU issue the next
    /// probe's load before the comparison is done, where a conditional move
    /// chains the loads one after the other.
    #[inline]
    fn search(&self, index: u32) -> u16 {
        let table: &[u8] = match &self.table {
            Some(t) => t,
            None => return self.first,
        };
        let (entries, _) = table.as_chunks::<TABLE_ENTRY_SIZE>();
        let key = table_key(index);
        // The first entry above `key`: `entries[..lo]` are all at or below.
        // Both are at most `TABLE_MAX`, so the wrapping operations do not wrap.
        let (mut lo, mut hi) = (0usize, entries.len());
        while lo < hi {
            let mid = lo.wrapping_add(hi) / 2;
            match entries.get(mid) {
                Some(e) if u64::from_le_bytes(*e) <= key => lo = mid.wrapping_add(1),
                _ => {
                    // Not colder than the other arm: the hint only makes
                    // LLVM emit a branch here instead of conditional moves.
                    core::hint::cold_path();
                    hi = mid;
                }
            }
        }
        match lo.checked_sub(1).and_then(|k| entries.get(k)) {
            Some(e) => u64::from_le_bytes(*e) as u16,
            None => self.first,
        }
    }

    /// Tests the bit `off` of slot `s`'s bitmap, `off` being in the range.
    #[inline]
    fn test(&self, s: usize, off: u32) -> bool {
        // `off / 8` is below the bitmap's length for every in-range offset
        // because the bitmap holds at least ceil(nmsrs / 8) bytes; `get`
        // avoids a panic path anyway (a missing byte reads as "deny").
        match self.bitmaps.get(s) {
            Some(Some(b)) => test_bytes(b, off),
            _ => false,
        }
    }

    /// How a lookup for `access` proceeds in this filter.
    pub fn lookup_shape(&self, access: MsrAccess) -> Shape {
        let plan = self.plans.get(access.plan()).unwrap_or(&Plan::EMPTY);
        if usize::from(plan.n) <= SCAN_MAX {
            return Shape::Scan(u32::from(plan.n));
        }
        if plan.shift != NO_BUCKETS {
            return Shape::Bucket(u32::from(plan.shift));
        }
        let entries = self
            .table
            .as_ref()
            .map_or(0, |t| t.len() / TABLE_ENTRY_SIZE);
        // ceil(log2(entries + 1)) probes (at most 32 entries).
        Shape::Search(usize::BITS.saturating_sub(entries.leading_zeros()))
    }

    /// Size in bytes of the interval or bucket table (0 without one).
    pub fn table_bytes(&self) -> usize {
        self.table().map_or(0, <[u8]>::len)
    }

    /// The interval or bucket table, if the filter has a nonempty one.
    pub fn table(&self) -> Option<&[u8]> {
        self.table.as_deref().filter(|t| !t.is_empty())
    }

    /// Upstream's linear first-match scan, without the x2APIC exemption.
    ///
    /// The lookup of a `type` with both flag bits when more than [`SCAN_MAX`]
    /// ranges can match (KVM never passes such a `type`), and the self-checks.
    pub fn allowed_linear(&self, index: u32, ty: u32) -> bool {
        for r in self.ranges() {
            let end = r.base.wrapping_add(r.nmsrs);
            if index >= r.base && index < end && r.flags & ty != 0 {
                return test_bytes(r.bitmap, index - r.base);
            }
        }
        self.default_allow
    }

    /// Slots of the ranges a lookup of `flag` can pick, in order.
    fn active(&self, flag: u32) -> impl Iterator<Item = usize> + '_ {
        (0..self.count()).filter(move |&s| {
            u32::from(self.flags[s % KVM_MSR_FILTER_MAX_RANGES]) & flag != 0
                && reachable(
                    self.bases[s % KVM_MSR_FILTER_MAX_RANGES],
                    self.nmsrs[s % KVM_MSR_FILTER_MAX_RANGES],
                )
        })
    }

    /// Chooses each access type's shape and, if one needs it, fills the
    /// interval table: `alloc` is called once, with the table's size.
    fn compile<A>(&mut self, alloc: &mut A) -> Result<(), Errno>
    where
        A: FilterAlloc<Bitmap = B>,
        B: DerefMut,
    {
        let mut search = false;
        // `plans[0]` stays empty: no range has a flag of type 0.
        for flag in [
            KVM_MSR_FILTER_READ,
            KVM_MSR_FILTER_WRITE,
            KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
        ] {
            let mut plan = Plan::EMPTY;
            let mut n = 0usize;
            for s in self.active(flag) {
                if let Some(slot) = plan.scan.get_mut(n) {
                    *slot = s as u8;
                }
                plan.prefix &= s == n;
                // At most 16 ranges: no overflow.
                n = n.saturating_add(1);
            }
            if n <= SCAN_MAX {
                // INVARIANT: the `n` active slots, in order; `prefix` if
                // each is its own position.
                plan.n = n as u8;
            } else {
                plan.n = PLAN_SEARCH;
                plan.prefix = false;
                // Both flags together take the linear scan: no table for them.
                search |= flag != KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
            }
            if let Some(p) = self.plans.get_mut(flag as usize) {
                *p = plan;
            }
        }
        if !search {
            return Ok(());
        }

        // Interval boundaries: 0 plus the start and end of every reachable
        // range. At most 1 + 2 * 16 = 33 of them.
        let mut bounds = [u32::MAX; TABLE_MAX + 1];
        let mut nbounds = 1usize;
        bounds[0] = 0;
        for s in self.active(KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE) {
            let base = self.bases[s % KVM_MSR_FILTER_MAX_RANGES];
            let end = base.wrapping_add(self.nmsrs[s % KVM_MSR_FILTER_MAX_RANGES]);
            for b in [base, end] {
                if let Some(slot) = bounds.get_mut(nbounds) {
                    *slot = b;
                    nbounds += 1;
                }
            }
        }
        let bounds = bounds.get_mut(..nbounds).unwrap_or(&mut []);
        sort_bounds(bounds);
        // The distinct bounds: the starts of the intervals, `0` first.
        let mut starts = [0u32; TABLE_MAX + 1];
        let mut m = 0usize;
        for &b in bounds.iter() {
            if m > 0 && starts.get(m - 1) == Some(&b) {
                continue;
            }
            if let Some(slot) = starts.get_mut(m) {
                *slot = b;
                m += 1;
            }
        }
        let starts = starts.get(..m).unwrap_or(&[]);

        // Every range covers whole intervals, so the first range of a type
        // that covers an interval's start covers all of it. Each reachable
        // range paints the intervals it covers with its slot, in reverse
        // slot order: the first range covering an interval paints it last.
        let mut read = [SLOT_DEFAULT; TABLE_MAX + 1];
        let mut write = [SLOT_DEFAULT; TABLE_MAX + 1];
        for s in (0..self.count()).rev() {
            let i = s % KVM_MSR_FILTER_MAX_RANGES;
            let (flags, base, nmsrs) = (u32::from(self.flags[i]), self.bases[i], self.nmsrs[i]);
            let Some(end) = base.checked_add(nmsrs) else {
                // Not reachable: no lookup picks it.
                continue;
            };
            // `base` and `end` are both in `starts`.
            let covered =
                starts.partition_point(|&b| b < base)..starts.partition_point(|&b| b < end);
            for (owners, flag) in [
                (&mut read, KVM_MSR_FILTER_READ),
                (&mut write, KVM_MSR_FILTER_WRITE),
            ] {
                if flags & flag != 0 {
                    // Below 16: fits.
                    owners
                        .get_mut(covered.clone())
                        .unwrap_or(&mut [])
                        .fill(s as u8);
                }
            }
        }

        // The intervals, merged where both owners stay the same.
        let mut entries = [0u64; TABLE_MAX + 1];
        let mut n = 0usize;
        for ((&b, &r), &w) in starts.iter().zip(read.iter()).zip(write.iter()) {
            let e = table_entry(b, r, w);
            if n > 0 && entries.get(n - 1).map(|&p| p as u16) == Some(e as u16) {
                continue;
            }
            if let Some(slot) = entries.get_mut(n) {
                *slot = e;
                n += 1;
            }
        }
        // `entries[0]` starts at 0 (the smallest bound): it stays in the
        // filter.
        let entries = entries.get(..n).unwrap_or(&[]);
        let (first, rest) = entries.split_first().unwrap_or((&0, &[]));
        self.first = *first as u16;
        // A bucket table if some bucket size leaves at most one interval
        // start inside each bucket (the smallest such size), else the other
        // intervals go to an interval table of their exact size.
        if let Some(&second) = rest.first() {
            let lo = (second >> 16) as u32;
            // A bucket size that leaves two interval starts above the last
            // bucket's first index fails: start at the smallest one that puts
            // the second-largest start at or below it.
            let penult = rest
                .len()
                .checked_sub(2)
                .and_then(|k| rest.get(k))
                .map_or(0, |&e| e >> 16);
            let span = penult.saturating_sub(u64::from(lo));
            let mut least = 0u32;
            while least < u32::BITS && ((BUCKETS as u64 - 1) << least) < span {
                least += 1;
            }
            if let Some((shift, buckets)) =
                (least..u32::BITS).find_map(|s| Some((s, bucket_table(entries, lo, s)?)))
            {
                let mut table = alloc.alloc_table(BUCKET_TABLE_SIZE)?;
                if table.len() != BUCKET_TABLE_SIZE {
                    return Err(Errno::NoMem);
                }
                let (chunks, _) = table.as_chunks_mut::<TABLE_ENTRY_SIZE>();
                for (c, e) in chunks.iter_mut().zip(buckets) {
                    *c = e.to_le_bytes();
                }
                for flag in [KVM_MSR_FILTER_READ, KVM_MSR_FILTER_WRITE] {
                    if let Some(p) = self.plans.get_mut(flag as usize) {
                        if p.n == PLAN_SEARCH {
                            // Below 32: fits.
                            p.shift = shift as u8;
                        }
                    }
                }
                // INVARIANT: `bucket_table()`'s table for `lo` and the
                // plans' shift; `first` is the interval below `lo`.
                self.lo = lo;
                self.table = Some(table);
                return Ok(());
            }
        }
        let len = rest.len().saturating_mul(TABLE_ENTRY_SIZE);
        let mut table = alloc.alloc_table(len)?;
        if table.len() != len {
            return Err(Errno::NoMem);
        }
        let (chunks, _) = table.as_chunks_mut::<TABLE_ENTRY_SIZE>();
        for (c, e) in chunks.iter_mut().zip(rest) {
            *c = e.to_le_bytes();
        }
        // INVARIANT: sorted, distinct starts above 0 (`first` is the one at 0).
        self.table = Some(table);
        Ok(())
    }
}

/// Tests bit `off` of `bitmap` (byte `off / 8`, bit `off % 8`); a missing byte is "deny".
fn test_bytes(bitmap: &[u8], off: u32) -> bool {
    match bitmap.get((off / 8) as usize) {
        Some(byte) => (byte >> (off % 8)) & 1 != 0,
        None => false,
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
        // At most 16 non-empty descriptors exist, so `count < 16` here.
        let f: &mut Filter<A::Bitmap> = &mut filter;
        let s = usize::from(f.count);
        let (Some(flags), Some(base), Some(nmsrs), Some(slot)) = (
            f.flags.get_mut(s),
            f.bases.get_mut(s),
            f.nmsrs.get_mut(s),
            f.bitmaps.get_mut(s),
        ) else {
            return Err(Errno::Inval);
        };
        // `check_range()` accepted only the READ and WRITE bits.
        *flags = r.flags as u8;
        *base = r.base;
        *nmsrs = r.nmsrs;
        *slot = Some(bitmap);
        f.count = f.count.saturating_add(1);
    }
    filter.compile(alloc)?;
    Ok(filter)
}
