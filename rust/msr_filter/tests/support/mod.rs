// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Host-side helpers shared by the tests and the fuzz target: a `Vec`/`Box`
//! allocator with failure injection, fake user memory, a deliberately plain
//! reference model of upstream's filter code, the encoders and models only
//! tests need (so the kernel module does not carry them), and the fuzz
//! checker.

#![allow(dead_code, clippy::manual_range_contains, clippy::manual_div_ceil)]

use std::boxed::Box;
use std::vec;
use std::vec::Vec;

use msr_filter::{
    build, is_x2apic_msr, msr_exit, uapi, Errno, Filter, FilterAlloc, FilterDesc, MsrAccess,
    MsrDir, MsrExit, RangeDesc,
};

/// One allocation request seen by [`HostAlloc`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllocEvent {
    /// The filter object.
    Filter,
    /// A bitmap of this many bytes.
    Bitmap(usize),
}

/// `Box`/`Vec` allocator that can fail its `fail_at`-th request (0-based).
#[derive(Default)]
pub struct HostAlloc {
    pub fail_at: Option<usize>,
    pub log: Vec<AllocEvent>,
}

impl HostAlloc {
    pub fn failing_at(n: usize) -> Self {
        HostAlloc {
            fail_at: Some(n),
            log: Vec::new(),
        }
    }

    fn step(&mut self, ev: AllocEvent) -> Result<(), Errno> {
        let n = self.log.len();
        self.log.push(ev);
        if self.fail_at == Some(n) {
            Err(Errno::NoMem)
        } else {
            Ok(())
        }
    }
}

impl FilterAlloc for HostAlloc {
    type Bitmap = Vec<u8>;
    type Boxed = Box<Filter<Vec<u8>>>;

    fn alloc_filter(&mut self, filter: Filter<Vec<u8>>) -> Result<Self::Boxed, Errno> {
        self.step(AllocEvent::Filter)?;
        Ok(Box::new(filter))
    }

    fn alloc_bitmap(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
        self.step(AllocEvent::Bitmap(len))?;
        // Poison so that a short copy would show.
        Ok(vec![0xa5; len])
    }
}

/// Fake user memory made of mapped regions; everything else faults.
#[derive(Default, Clone)]
pub struct RegionMem {
    pub regions: Vec<(u64, Vec<u8>)>,
    pub copies: Vec<(u64, usize)>,
}

impl RegionMem {
    pub fn map(&mut self, addr: u64, bytes: Vec<u8>) -> u64 {
        self.regions.push((addr, bytes));
        addr
    }

    pub fn copy(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.copies.push((addr, buf.len()));
        for (base, bytes) in &self.regions {
            let off = match addr.checked_sub(*base) {
                Some(o) => o as usize,
                None => continue,
            };
            if off <= bytes.len() && bytes.len() - off >= buf.len() {
                buf.copy_from_slice(&bytes[off..off + buf.len()]);
                return Ok(());
            }
        }
        Err(Errno::Fault)
    }
}

/// User memory for fuzzing: addresses with bit 31 set fault, others read
/// the fuzz bytes cyclically (zeros if there are none).
#[derive(Clone)]
pub struct FuzzMem {
    pub data: Vec<u8>,
    pub copies: Vec<(u64, usize)>,
}

impl FuzzMem {
    pub fn copy(&mut self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        self.copies.push((addr, buf.len()));
        if addr & (1 << 31) != 0 {
            return Err(Errno::Fault);
        }
        for (i, b) in buf.iter_mut().enumerate() {
            *b = if self.data.is_empty() {
                0
            } else {
                self.data[((addr as usize) + i) % self.data.len()]
            };
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Reference model: a line-by-line, unoptimised restatement of upstream C.
// ---------------------------------------------------------------------------

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefRange {
    pub flags: u32,
    pub base: u32,
    pub nmsrs: u32,
    pub bitmap: Vec<u8>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefFilter {
    pub default_allow: bool,
    pub ranges: Vec<RefRange>,
}

/// kvm_msr_allowed(): x2APIC first, no filter allows, then a linear scan
/// where `end` is computed with 32-bit wraparound.
pub fn ref_allowed(filter: Option<&RefFilter>, index: u32, ty: u32) -> bool {
    if index >= 0x800 && index <= 0x8ff {
        return true;
    }
    let f = match filter {
        None => return true,
        Some(f) => f,
    };
    let mut allowed = f.default_allow;
    for r in &f.ranges {
        let start = r.base;
        let end = ((r.base as u64 + r.nmsrs as u64) & 0xffff_ffff) as u32;
        if index >= start && index < end && (r.flags & ty) != 0 {
            let bit = (index - start) as usize;
            allowed = (r.bitmap[bit / 8] >> (bit % 8)) & 1 == 1;
            break;
        }
    }
    allowed
}

/// A user-memory copier.
pub type CopyFn<'a> = dyn FnMut(u64, &mut [u8]) -> Result<(), Errno> + 'a;

/// kvm_vm_ioctl_set_msr_filter() up to installation. `fail_alloc` is the
/// 0-based allocation that fails; `copy` reads user memory. Returns the
/// filter or the negative errno.
pub fn ref_build(
    desc: &FilterDesc,
    fail_alloc: Option<usize>,
    copy: &mut CopyFn<'_>,
) -> Result<RefFilter, i32> {
    if desc.flags & !1 != 0 {
        return Err(-22);
    }
    let mut empty = true;
    for r in &desc.ranges {
        empty &= r.nmsrs == 0;
    }
    let default_allow = desc.flags & 1 == 0;
    if empty && !default_allow {
        return Err(-22);
    }
    let mut nalloc = 0usize;
    if fail_alloc == Some(nalloc) {
        return Err(-12);
    }
    nalloc += 1;
    let mut f = RefFilter {
        default_allow,
        ranges: Vec::new(),
    };
    for r in &desc.ranges {
        if r.nmsrs == 0 {
            continue;
        }
        if r.flags & !3 != 0 {
            return Err(-22);
        }
        if r.flags == 0 {
            return Err(-22);
        }
        let longs = (r.nmsrs as u64 + 63) / 64;
        let size = longs * 8;
        if size == 0 || size > 0x600 {
            return Err(-22);
        }
        if fail_alloc == Some(nalloc) {
            return Err(-12);
        }
        nalloc += 1;
        let mut bitmap = vec![0u8; size as usize];
        if copy(r.bitmap, &mut bitmap).is_err() {
            return Err(-14);
        }
        f.ranges.push(RefRange {
            flags: r.flags,
            base: r.base,
            nmsrs: r.nmsrs,
            bitmap,
        });
    }
    Ok(f)
}

/// Converts a built filter into the reference representation.
pub fn to_ref(f: &Filter<Vec<u8>>) -> RefFilter {
    RefFilter {
        default_allow: f.default_allow(),
        ranges: f
            .ranges()
            .map(|r| RefRange {
                flags: r.flags(),
                base: r.base(),
                nmsrs: r.nmsrs(),
                bitmap: r.bitmap().to_vec(),
            })
            .collect(),
    }
}

/// Interesting indices for a filter: fixed edges plus every range edge +-1.
pub fn probe_indices(f: &RefFilter) -> Vec<u32> {
    let mut v = vec![
        0,
        1,
        0x7ff,
        0x800,
        0x801,
        0x8fe,
        0x8ff,
        0x900,
        0x3000,
        0xc000_0080,
        0x7fff_ffff,
        0x8000_0000,
        u32::MAX - 1,
        u32::MAX,
    ];
    for r in &f.ranges {
        let end = r.base.wrapping_add(r.nmsrs);
        for d in [0u32, 1, 2, 7, 8, 9, 63, 64, 65] {
            v.push(r.base.wrapping_add(d));
            v.push(r.base.wrapping_sub(d));
            v.push(end.wrapping_add(d));
            v.push(end.wrapping_sub(d));
        }
        v.push(r.base.wrapping_add(r.nmsrs / 2));
    }
    v
}

/// Asserts that `f` and the reference agree on every index in `indices`, for
/// both access types and through every public lookup entry point.
pub fn assert_lookups_agree(f: &Filter<Vec<u8>>, rf: &RefFilter, indices: &[u32]) {
    for &i in indices {
        for access in [MsrAccess::Read, MsrAccess::Write] {
            let ty = access.flag();
            let want = ref_allowed(Some(rf), i, ty);
            assert_eq!(f.allowed(i, access), want, "index {i:#x} type {ty}");
            assert_eq!(msr_filter::msr_allowed(Some(f), i, access), want);
            assert_eq!(f.allowed_raw(i, ty), want);
            assert_eq!(
                is_x2apic_msr(i) || f.allowed_linear(i, ty),
                want,
                "linear {i:#x}"
            );
            assert!(msr_filter::msr_allowed::<Vec<u8>>(None, i, access));
        }
        // Any type: only bits 1:0 can meet a range's flags, the lookup keys
        // its plan on them alone.
        for ty in [0u32, 3, 4, 5, 6, 7, 0x8000_0002, 0xffff_fffd, 0xffff_ffff] {
            assert_eq!(
                f.allowed_raw(i, ty),
                ref_allowed(Some(rf), i, ty),
                "raw {ty}"
            );
        }
    }
}

/// Fuzz/corpus checker. Input layout:
/// byte 0: bit 0 = compat layout, bits 1..=5 = failing allocation (>= 17: none);
/// then the filter struct (392 or 260 bytes); then 4-byte LE probe indices
/// interleaved with user memory: the rest is both the fake user memory and
/// a list of extra probe indices.
pub fn check_fuzz_input(data: &[u8]) {
    let Some((&ctrl, rest)) = data.split_first() else {
        return;
    };
    let compat = ctrl & 1 != 0;
    let fail = usize::from((ctrl >> 1) & 0x1f);
    let fail_at = if fail < 17 { Some(fail) } else { None };

    let parsed = if compat {
        FilterDesc::from_compat_slice(rest)
    } else {
        FilterDesc::from_native_slice(rest)
    };
    let size = if compat {
        uapi::COMPAT_FILTER_SIZE
    } else {
        uapi::NATIVE_FILTER_SIZE
    };
    let desc = match parsed {
        Ok(d) => d,
        Err(e) => {
            assert!(rest.len() < size);
            assert_eq!(e, Errno::Fault);
            return;
        }
    };
    // Re-encoding gives back the same descriptor.
    if compat {
        assert_eq!(FilterDesc::from_compat(&desc.to_compat()), desc);
        for r in &desc.ranges {
            assert!(r.bitmap <= u64::from(u32::MAX));
        }
    } else {
        assert_eq!(FilterDesc::from_native(&desc.to_native()), desc);
    }
    let user = &rest[size..];

    let mut mem = FuzzMem {
        data: user.to_vec(),
        copies: Vec::new(),
    };
    let mut alloc = HostAlloc {
        fail_at,
        log: Vec::new(),
    };
    let got = build(&desc, &mut alloc, |a, b| mem.copy(a, b));

    let mut ref_mem = FuzzMem {
        data: user.to_vec(),
        copies: Vec::new(),
    };
    let want = ref_build(&desc, fail_at, &mut |a, b| ref_mem.copy(a, b));

    // Same user reads, in the same order, with the same lengths.
    assert_eq!(mem.copies, ref_mem.copies);
    // Every bitmap allocation has the C size for its range.
    for ev in &alloc.log {
        if let AllocEvent::Bitmap(n) = ev {
            assert!(*n > 0 && *n <= 0x600 && n % 8 == 0);
        }
    }

    match (got, want) {
        (Err(e), Err(w)) => {
            assert!(matches!(e.to_errno(), -22 | -14 | -12));
            assert_eq!(e.to_errno(), w);
        }
        (Ok(f), Ok(rf)) => {
            assert_eq!(to_ref(&f), rf);
            assert_eq!(f.count(), rf.ranges.len());
            let mut idx = probe_indices(&rf);
            idx.extend(
                user.chunks_exact(4)
                    .take(256)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])),
            );
            assert_lookups_agree(&f, &rf, &idx);
        }
        (g, w) => panic!("mismatch: got {:?}, want {:?}", g.map(|f| f.count()), w),
    }
}

/// Builds a native fuzz input from parts (used to seed the corpus).
pub fn make_fuzz_input(ctrl: u8, desc: &FilterDesc, user: &[u8]) -> Vec<u8> {
    let mut v = vec![ctrl];
    if ctrl & 1 != 0 {
        v.extend_from_slice(&desc.to_compat());
    } else {
        v.extend_from_slice(&desc.to_native());
    }
    v.extend_from_slice(user);
    v
}

/// Convenience constructor for a range descriptor.
pub fn rd(flags: u32, base: u32, nmsrs: u32, bitmap: u64) -> RangeDesc {
    RangeDesc {
        flags,
        nmsrs,
        base,
        bitmap,
    }
}

/// Builds a descriptor from up to 16 ranges (the rest empty).
pub fn desc(flags: u32, ranges: &[RangeDesc]) -> FilterDesc {
    let mut d = FilterDesc {
        flags,
        ..FilterDesc::default()
    };
    for (slot, r) in d.ranges.iter_mut().zip(ranges) {
        *slot = *r;
    }
    d
}

// ---- Test-only encoders and models -----------------------------------------

/// Writes `val` little-endian at `off`.
fn put_u32(bytes: &mut [u8], off: usize, val: u32) {
    bytes[off..off + 4].copy_from_slice(&val.to_le_bytes());
}

/// Writes `val` little-endian at `off`.
fn put_u64(bytes: &mut [u8], off: usize, val: u64) {
    bytes[off..off + 8].copy_from_slice(&val.to_le_bytes());
}

/// The first `N` bytes of `bytes`, or [`Errno::Fault`] if there are fewer
/// (a short `copy_from_user()`).
fn head<const N: usize>(bytes: &[u8]) -> Result<&[u8; N], Errno> {
    bytes
        .get(..N)
        .and_then(|b| <&[u8; N]>::try_from(b).ok())
        .ok_or(Errno::Fault)
}

/// What userspace-side tests need of `struct kvm_msr_filter` beyond the
/// kernel's fixed-size decoders: decoding from a slice that may be short
/// (a short `copy_from_user()`), and encoding.
pub trait DescBytes: Sized {
    /// Decodes the x86-64 layout from the start of `bytes`; [`Errno::Fault`]
    /// if fewer than `NATIVE_FILTER_SIZE` bytes are given.
    fn from_native_slice(bytes: &[u8]) -> Result<Self, Errno>;
    /// Decodes the compat layout from the start of `bytes`; [`Errno::Fault`]
    /// if fewer than `COMPAT_FILTER_SIZE` bytes are given.
    fn from_compat_slice(bytes: &[u8]) -> Result<Self, Errno>;
    /// Encodes the x86-64 layout, with zeroed padding.
    fn to_native(self) -> [u8; uapi::NATIVE_FILTER_SIZE];
    /// Encodes the compat layout; bitmap addresses are truncated to 32 bits.
    fn to_compat(self) -> [u8; uapi::COMPAT_FILTER_SIZE];
}

impl DescBytes for FilterDesc {
    fn from_native_slice(bytes: &[u8]) -> Result<Self, Errno> {
        head(bytes).map(Self::from_native)
    }

    fn from_compat_slice(bytes: &[u8]) -> Result<Self, Errno> {
        head(bytes).map(Self::from_compat)
    }

    fn to_native(self) -> [u8; uapi::NATIVE_FILTER_SIZE] {
        let mut out = [0u8; uapi::NATIVE_FILTER_SIZE];
        put_u32(&mut out, 0, self.flags);
        let mut off = 8;
        for r in self.ranges.iter() {
            put_u32(&mut out, off, r.flags);
            put_u32(&mut out, off + 4, r.nmsrs);
            put_u32(&mut out, off + 8, r.base);
            put_u64(&mut out, off + 16, r.bitmap);
            off += uapi::NATIVE_RANGE_SIZE;
        }
        out
    }

    fn to_compat(self) -> [u8; uapi::COMPAT_FILTER_SIZE] {
        let mut out = [0u8; uapi::COMPAT_FILTER_SIZE];
        put_u32(&mut out, 0, self.flags);
        let mut off = 4;
        for r in self.ranges.iter() {
            put_u32(&mut out, off, r.flags);
            put_u32(&mut out, off + 4, r.nmsrs);
            put_u32(&mut out, off + 8, r.base);
            // Truncation is the point: the compat ABI has 32-bit pointers.
            put_u32(&mut out, off + 12, r.bitmap as u32);
            off += uapi::COMPAT_RANGE_SIZE;
        }
        out
    }
}

/// Maps a negative errno value back to an [`Errno`], if it is one of the
/// core's.
pub trait ErrnoFrom: Sized {
    /// The inverse of `Errno::to_errno()`.
    fn from_errno(errno: i32) -> Option<Self>;
}

impl ErrnoFrom for Errno {
    fn from_errno(errno: i32) -> Option<Self> {
        [Errno::Inval, Errno::Fault, Errno::NoMem, Errno::TooBig]
            .into_iter()
            .find(|e| e.to_errno() == errno)
    }
}

// Models of what upstream's C does with an access result `r` on the
// instruction and emulator paths. The kernel module leaves these paths to
// C; the rules tests pin the decisions that the exit code relies on.

/// What an intercepted RDMSR/WRMSR (`kvm_emulate_{rd,wr}msr{,_imm}`) does
/// after the access itself returned `r`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InsnOutcome {
    /// `r == 0`: for reads write the value to the registers, then call the
    /// vendor `complete_emulated_msr(vcpu, 0)` (skip the instruction).
    Done,
    /// Exit to userspace: fill `kvm_run`, set the completion callback, return 0.
    Exit(MsrExit),
    /// Call the vendor `complete_emulated_msr(vcpu, r)` with this nonzero
    /// `r` (#GP on VMX/SVM).
    Fault(i32),
    /// WRMSR only: return this negative `r` from `KVM_RUN`.
    Return(i32),
}

/// Decision for an intercepted RDMSR (either form) whose access returned `r`.
///
/// A nonzero `r` that is not deflected always faults, negative or not.
pub fn rdmsr_outcome(mask: u32, index: u32, r: i32) -> InsnOutcome {
    if r == 0 {
        return InsnOutcome::Done;
    }
    match msr_exit(mask, MsrDir::Read, index, 0, r) {
        Some(e) => InsnOutcome::Exit(e),
        None => InsnOutcome::Fault(r),
    }
}

/// Decision for an intercepted WRMSR (either form) of `data` that returned `r`.
///
/// A negative `r` that is not deflected is returned from `KVM_RUN`.
pub fn wrmsr_outcome(mask: u32, index: u32, data: u64, r: i32) -> InsnOutcome {
    if r == 0 {
        return InsnOutcome::Done;
    }
    match msr_exit(mask, MsrDir::Write, index, data, r) {
        Some(e) => InsnOutcome::Exit(e),
        None if r < 0 => InsnOutcome::Return(r),
        None => InsnOutcome::Fault(r),
    }
}

/// Result of the emulator's filtered MSR access (`X86EMUL_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmulOutcome {
    /// `X86EMUL_CONTINUE`: the access succeeded.
    Continue,
    /// `X86EMUL_IO_NEEDED`: exit to userspace with this exit.
    IoNeeded(MsrExit),
    /// `X86EMUL_PROPAGATE_FAULT`: the emulator injects #GP.
    PropagateFault,
    /// `X86EMUL_UNHANDLEABLE`: `r < 0`, decided before any deflection.
    Unhandleable,
}

/// Upstream `kvm_emulator_{get,set}_msr_with_filter()` decision for an
/// access that returned `r`. `data` is the value for writes (ignored for reads).
pub fn emulator_outcome(mask: u32, dir: MsrDir, index: u32, data: u64, r: i32) -> EmulOutcome {
    if r < 0 {
        return EmulOutcome::Unhandleable;
    }
    if r == 0 {
        return EmulOutcome::Continue;
    }
    match msr_exit(mask, dir, index, data, r) {
        Some(e) => EmulOutcome::IoNeeded(e),
        None => EmulOutcome::PropagateFault,
    }
}
