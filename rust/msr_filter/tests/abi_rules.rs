// SPDX-License-Identifier: GPL-2.0 OR MIT

//! One test per rule of abi-rules.md sections 1.1, 1.4 A, B, D and F.

mod support;

use msr_filter::uapi::*;
use msr_filter::*;
use support::*;

/// Maps a bitmap of `bytes` at a fresh address and returns the address.
fn mapped(mem: &mut RegionMem, slot: u64, bytes: Vec<u8>) -> u64 {
    mem.map(0x10_0000 * (slot + 1), bytes)
}

fn build_with(
    d: &FilterDesc,
    mem: &mut RegionMem,
    alloc: &mut HostAlloc,
) -> Result<Box<Filter<Vec<u8>>>, Errno> {
    build(d, alloc, |a, b| mem.copy(a, b))
}

fn build_simple(d: &FilterDesc, mem: &mut RegionMem) -> Result<Box<Filter<Vec<u8>>>, Errno> {
    build_with(d, mem, &mut HostAlloc::default())
}

// ---- 1.1 UAPI -------------------------------------------------------------

#[test]
fn uapi_constants() {
    assert_eq!(KVM_EXIT_X86_RDMSR, 29);
    assert_eq!(KVM_EXIT_X86_WRMSR, 30);
    assert_eq!(
        (
            KVM_MSR_EXIT_REASON_INVAL,
            KVM_MSR_EXIT_REASON_UNKNOWN,
            KVM_MSR_EXIT_REASON_FILTER
        ),
        (1, 2, 4)
    );
    assert_eq!(KVM_MSR_EXIT_REASON_VALID_MASK, 7);
    assert_eq!(
        (KVM_CAP_X86_USER_SPACE_MSR, KVM_CAP_X86_MSR_FILTER),
        (188, 189)
    );
    assert_eq!(KVM_MSR_FILTER_MAX_BITMAP_SIZE, 0x600);
    assert_eq!((KVM_MSR_FILTER_READ, KVM_MSR_FILTER_WRITE), (1, 2));
    assert_eq!(KVM_MSR_FILTER_RANGE_VALID_MASK, 3);
    assert_eq!(
        (KVM_MSR_FILTER_DEFAULT_ALLOW, KVM_MSR_FILTER_DEFAULT_DENY),
        (0, 1)
    );
    assert_eq!(KVM_MSR_FILTER_VALID_MASK, 1);
    assert_eq!(KVM_MSR_FILTER_MAX_RANGES, 16);
    assert_eq!(NATIVE_FILTER_SIZE, 392);
    assert_eq!(COMPAT_FILTER_SIZE, 260);
    assert_eq!(KVM_X86_SET_MSR_FILTER, 0x4188_AEC6);
    assert_eq!(KVM_X86_SET_MSR_FILTER_COMPAT, 0x4104_AEC6);
    assert_eq!((KVM_MSR_RET_UNSUPPORTED, KVM_MSR_RET_FILTERED), (2, 3));
    assert_eq!(KVM_RUN_MSR_SIZE, 24);
}

#[test]
fn errno_values() {
    assert_eq!(Errno::Inval.to_errno(), -22);
    assert_eq!(Errno::Fault.to_errno(), -14);
    assert_eq!(Errno::NoMem.to_errno(), -12);
    assert_eq!(Errno::TooBig.to_errno(), -7);
    for e in [Errno::Inval, Errno::Fault, Errno::NoMem, Errno::TooBig] {
        assert_eq!(Errno::from_errno(e.to_errno()), Some(e));
    }
    assert_eq!(Errno::from_errno(-1), None);
}

#[test]
fn parse_native_layout() {
    let mut b = [0u8; NATIVE_FILTER_SIZE];
    b[0..4].copy_from_slice(&1u32.to_le_bytes());
    b[4..8].copy_from_slice(&[0xff; 4]); // padding is ignored
    for i in 0..16usize {
        let off = 8 + 24 * i;
        b[off..off + 4].copy_from_slice(&(i as u32 + 100).to_le_bytes());
        b[off + 4..off + 8].copy_from_slice(&(i as u32 + 200).to_le_bytes());
        b[off + 8..off + 12].copy_from_slice(&(i as u32 + 300).to_le_bytes());
        b[off + 12..off + 16].copy_from_slice(&[0xee; 4]);
        b[off + 16..off + 24].copy_from_slice(&(0x1234_5678_9abc_0000u64 + i as u64).to_le_bytes());
    }
    let d = FilterDesc::from_native(&b);
    assert_eq!(d.flags, 1);
    for (i, r) in d.ranges.iter().enumerate() {
        let i = i as u32;
        assert_eq!(
            *r,
            rd(
                i + 100,
                i + 300,
                i + 200,
                0x1234_5678_9abc_0000 + u64::from(i)
            )
        );
    }
    assert_eq!(FilterDesc::from_native_slice(&b), Ok(d));
    let mut longer = b.to_vec();
    longer.push(9);
    assert_eq!(FilterDesc::from_native_slice(&longer), Ok(d));
    // Re-encoding zeroes the padding only.
    let re = d.to_native();
    assert_eq!(FilterDesc::from_native(&re), d);
    assert_eq!(&re[4..8], &[0; 4]);
}

#[test]
fn parse_compat_layout() {
    let mut b = [0u8; COMPAT_FILTER_SIZE];
    b[0..4].copy_from_slice(&0x8000_0001u32.to_le_bytes());
    for i in 0..16usize {
        let off = 4 + 16 * i;
        b[off..off + 4].copy_from_slice(&(i as u32 + 1).to_le_bytes());
        b[off + 4..off + 8].copy_from_slice(&(i as u32 + 2).to_le_bytes());
        b[off + 8..off + 12].copy_from_slice(&(i as u32 + 3).to_le_bytes());
        b[off + 12..off + 16].copy_from_slice(&(0xfff0_0000u32 + i as u32).to_le_bytes());
    }
    let d = FilterDesc::from_compat(&b);
    assert_eq!(d.flags, 0x8000_0001);
    for (i, r) in d.ranges.iter().enumerate() {
        let i = i as u32;
        // The 32-bit pointer is zero-extended, never sign-extended.
        assert_eq!(*r, rd(i + 1, i + 3, i + 2, u64::from(0xfff0_0000u32 + i)));
    }
    assert_eq!(d.to_compat(), b);
    assert_eq!(FilterDesc::from_compat_slice(&b), Ok(d));
}

// ---- B1: short struct copy -------------------------------------------------

#[test]
fn b1_short_struct_is_efault() {
    assert_eq!(FilterDesc::from_native_slice(&[0; 391]), Err(Errno::Fault));
    assert_eq!(FilterDesc::from_compat_slice(&[0; 259]), Err(Errno::Fault));
    assert_eq!(FilterDesc::from_native_slice(&[]), Err(Errno::Fault));
}

// ---- B2: filter flags ---------------------------------------------------------

#[test]
fn b2_reserved_filter_flags_einval_before_alloc() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0; 8]);
    for flags in [2u32, 4, 0x8000_0000, 0xffff_ffff, 3] {
        let mut alloc = HostAlloc::default();
        let d = desc(flags, &[rd(1, 0, 1, p)]);
        assert_eq!(
            build_with(&d, &mut mem, &mut alloc).err(),
            Some(Errno::Inval)
        );
        assert!(alloc.log.is_empty(), "checked before any allocation");
    }
    assert!(mem.copies.is_empty());
}

// ---- B3: empty filters ----------------------------------------------------------

#[test]
fn b3_all_empty_deny_is_einval() {
    let mut alloc = HostAlloc::default();
    let d = desc(KVM_MSR_FILTER_DEFAULT_DENY, &[]);
    assert_eq!(check_header(&d), Err(Errno::Inval));
    assert_eq!(
        build_with(&d, &mut RegionMem::default(), &mut alloc).err(),
        Some(Errno::Inval)
    );
    assert!(alloc.log.is_empty());
    // Even with garbage in the empty slots.
    let d = desc(1, &[rd(0xffff_ffff, 0x1234, 0, 0xdead_beef); 16]);
    assert_eq!(
        build_simple(&d, &mut RegionMem::default()).err(),
        Some(Errno::Inval)
    );
}

#[test]
fn b3_all_empty_allow_is_no_filtering() {
    let mut alloc = HostAlloc::default();
    let d = desc(KVM_MSR_FILTER_DEFAULT_ALLOW, &[]);
    let f = build_with(&d, &mut RegionMem::default(), &mut alloc).unwrap();
    assert_eq!(f.count(), 0);
    assert!(f.default_allow());
    assert_eq!(f.ranges().count(), 0);
    assert_eq!(
        alloc.log,
        vec![AllocEvent::Filter],
        "the object still exists"
    );
    for i in [0, 0x10, 0x7ff, 0x800, 0x900, 0xc000_0080, u32::MAX] {
        assert!(f.allowed(i, MsrAccess::Read));
        assert!(f.allowed(i, MsrAccess::Write));
    }
}

#[test]
fn b3_deny_with_one_range_is_valid() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0xff; 8]);
    let d = desc(KVM_MSR_FILTER_DEFAULT_DENY, &[rd(1, 0x10, 1, p)]);
    let f = build_simple(&d, &mut mem).unwrap();
    assert!(!f.default_allow());
    assert!(f.allowed(0x10, MsrAccess::Read));
    assert!(!f.allowed(0x10, MsrAccess::Write));
    assert!(!f.allowed(0x11, MsrAccess::Read));
}

// ---- B4: filter object allocation -----------------------------------------------

#[test]
fn b4_filter_object_enomem() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0; 8]);
    let d = desc(0, &[rd(1, 0, 1, p)]);
    let mut alloc = HostAlloc::failing_at(0);
    assert_eq!(
        build_with(&d, &mut mem, &mut alloc).err(),
        Some(Errno::NoMem)
    );
    assert!(mem.copies.is_empty(), "no range processed");
    // The empty+DENY check comes first.
    let mut alloc = HostAlloc::failing_at(0);
    let d = desc(1, &[]);
    assert_eq!(
        build_with(&d, &mut mem, &mut alloc).err(),
        Some(Errno::Inval)
    );
    // Bad range flags are found only after the object exists.
    let mut alloc = HostAlloc::failing_at(0);
    let d = desc(0, &[rd(4, 0, 1, p)]);
    assert_eq!(
        build_with(&d, &mut mem, &mut alloc).err(),
        Some(Errno::NoMem)
    );
}

// ---- B5: per-range checks ----------------------------------------------------------

#[test]
fn b5_empty_range_skipped_without_checks() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0xff; 8]);
    let garbage = rd(0xffff_fff0, 0xffff_ffff, 0, 0xdead_beef_dead_beef);
    let mut ranges = vec![garbage; 16];
    ranges[9] = rd(3, 0x100, 1, p);
    let mut alloc = HostAlloc::default();
    let f = build_with(&desc(0, &ranges), &mut mem, &mut alloc).unwrap();
    assert_eq!(f.count(), 1);
    assert_eq!(mem.copies, vec![(p, 8)], "no copy from empty ranges");
    assert_eq!(alloc.log, vec![AllocEvent::Filter, AllocEvent::Bitmap(8)]);
    assert_eq!(check_range(&garbage), Ok(None));
}

#[test]
fn b5_range_flags() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0; 8]);
    for flags in [0u32, 4, 5, 7, 0x8000_0001, 0xffff_ffff] {
        let d = desc(0, &[rd(flags, 0, 1, p)]);
        assert_eq!(
            build_simple(&d, &mut mem).err(),
            Some(Errno::Inval),
            "flags {flags:#x}"
        );
    }
    for flags in [1u32, 2, 3] {
        let d = desc(0, &[rd(flags, 0, 1, p)]);
        assert_eq!(
            build_simple(&d, &mut mem)
                .unwrap()
                .ranges()
                .next()
                .unwrap()
                .flags(),
            flags
        );
    }
}

#[test]
fn b5_bitmap_size_limits() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0xff; 0x600]);
    let f = build_simple(&desc(0, &[rd(1, 0, 0x3000, p)]), &mut mem).unwrap();
    assert_eq!(f.ranges().next().unwrap().bitmap().len(), 0x600);
    for n in [
        0x3001u32,
        0x3040,
        0x3041,
        0xffff_ffc1,
        0xffff_ffe1,
        0xffff_ffff,
    ] {
        let mut alloc = HostAlloc::default();
        let d = desc(0, &[rd(1, 0, n, p)]);
        assert_eq!(
            build_with(&d, &mut mem, &mut alloc).err(),
            Some(Errno::Inval),
            "n={n:#x}"
        );
        assert_eq!(alloc.log, vec![AllocEvent::Filter]);
    }
    assert_eq!(bitmap_size(0xffff_ffff), 0x2000_0000);
    assert_eq!(bitmap_size(0), 0);
}

#[test]
fn b5_exact_copy_length_is_ceil_n_64_times_8() {
    for (n, len) in [
        (1u32, 8usize),
        (8, 8),
        (9, 8),
        (32, 8),
        (63, 8),
        (64, 8),
        (65, 16),
        (128, 16),
        (129, 24),
        (0x3000, 0x600),
    ] {
        assert_eq!(bitmap_size(n), len as u64);
        let mut mem = RegionMem::default();
        let p = mapped(&mut mem, 0, vec![0xff; 0x600]);
        let mut alloc = HostAlloc::default();
        let f = build_with(&desc(0, &[rd(2, 0, n, p)]), &mut mem, &mut alloc).unwrap();
        assert_eq!(mem.copies, vec![(p, len)]);
        assert_eq!(alloc.log[1], AllocEvent::Bitmap(len));
        assert_eq!(f.ranges().next().unwrap().bitmap().len(), len);
    }
}

#[test]
fn b5_bitmap_tail_read_like_c() {
    // T-bitmap-tail: 32 MSRs need 4 bytes, but KVM reads 8. A bitmap that
    // ends 4 bytes before unmapped memory gives EFAULT, exactly like C.
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0xff; 4]);
    let d = desc(0, &[rd(1, 0, 32, p)]);
    assert_eq!(build_simple(&d, &mut mem).err(), Some(Errno::Fault));
    let mut mem = RegionMem::default();
    assert_eq!(mapped(&mut mem, 0, vec![0xff; 8]), p);
    assert!(build_simple(&d, &mut mem).is_ok());
}

#[test]
fn b5_bad_flags_and_bad_pointer_is_einval() {
    let mut mem = RegionMem::default();
    let d = desc(0, &[rd(0, 0, 1, 0xdead_0000)]);
    assert_eq!(build_simple(&d, &mut mem).err(), Some(Errno::Inval));
    let d = desc(0, &[rd(1, 0, 0x3001, 0xdead_0000)]);
    assert_eq!(build_simple(&d, &mut mem).err(), Some(Errno::Inval));
    assert!(mem.copies.is_empty());
}

#[test]
fn b5_earlier_bad_pointer_wins_over_later_bad_flags() {
    let mut mem = RegionMem::default();
    let good = mapped(&mut mem, 0, vec![0; 8]);
    let d = desc(
        0,
        &[
            rd(1, 0, 1, good),
            rd(1, 0, 1, 0xdead_0000),
            rd(8, 0, 1, good),
        ],
    );
    assert_eq!(build_simple(&d, &mut mem).err(), Some(Errno::Fault));
    let d = desc(0, &[rd(8, 0, 1, good), rd(1, 0, 1, 0xdead_0000)]);
    assert_eq!(build_simple(&d, &mut mem).err(), Some(Errno::Inval));
}

#[test]
fn b5_bitmap_enomem_at_the_same_point() {
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0; 0x600]);
    let ranges = [rd(1, 0, 1, p), rd(1, 0, 100, p), rd(8, 0, 1, p)];
    // Alloc 0 = object, 1 = first bitmap, 2 = second bitmap.
    let mut alloc = HostAlloc::failing_at(2);
    assert_eq!(
        build_with(&desc(0, &ranges), &mut mem, &mut alloc).err(),
        Some(Errno::NoMem)
    );
    assert_eq!(mem.copies, vec![(p, 8)]);
    assert_eq!(
        alloc.log,
        vec![
            AllocEvent::Filter,
            AllocEvent::Bitmap(8),
            AllocEvent::Bitmap(16)
        ]
    );
    // Without the failure, the third range's bad flags are found.
    assert_eq!(
        build_simple(&desc(0, &ranges), &mut mem).err(),
        Some(Errno::Inval)
    );
}

#[test]
fn b5_allocator_returning_wrong_length_is_enomem() {
    struct Short;
    impl FilterAlloc for Short {
        type Bitmap = Vec<u8>;
        type Boxed = Box<Filter<Vec<u8>>>;
        fn alloc_filter(&mut self, f: Filter<Vec<u8>>) -> Result<Self::Boxed, Errno> {
            Ok(Box::new(f))
        }
        fn alloc_bitmap(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
            Ok(vec![0; len - 1])
        }
    }
    let d = desc(0, &[rd(1, 0, 1, 0x1000)]);
    assert_eq!(
        build(&d, &mut Short, |_, _| Ok(())).err(),
        Some(Errno::NoMem)
    );
}

// ---- B6/B7: compaction and bit order ---------------------------------------------------

#[test]
fn b6_ranges_compacted_in_order_overlaps_allowed() {
    let mut mem = RegionMem::default();
    let a = mapped(&mut mem, 0, vec![0x01; 8]);
    let b = mapped(&mut mem, 1, vec![0x02; 8]);
    let c = mapped(&mut mem, 2, vec![0x04; 32]);
    let mut ranges = vec![rd(0, 0, 0, 0); 16];
    ranges[2] = rd(1, 0x100, 8, a);
    ranges[5] = rd(3, 0x100, 16, b); // overlaps the first
    ranges[15] = rd(2, 0x800, 0x100, c); // covers x2APIC: accepted
    let f = build_simple(&desc(0, &ranges), &mut mem).unwrap();
    let got: Vec<_> = f
        .ranges()
        .map(|r| (r.flags(), r.base(), r.nmsrs(), r.bitmap()[0]))
        .collect();
    assert_eq!(
        got,
        vec![(1, 0x100, 8, 1), (3, 0x100, 16, 2), (2, 0x800, 0x100, 4)]
    );
    assert_eq!(f.count(), 3);
}

#[test]
fn b7_bit_order() {
    let mut mem = RegionMem::default();
    let p = mapped(
        &mut mem,
        0,
        vec![0b0000_0010, 0b1000_0010, 0, 0, 0, 0, 0, 0x80],
    );
    let f = build_simple(&desc(1, &[rd(3, 0x1000, 64, p)]), &mut mem).unwrap();
    let allowed: Vec<u32> = (0x1000..0x1040)
        .filter(|&i| f.allowed(i, MsrAccess::Read))
        .collect();
    assert_eq!(allowed, vec![0x1001, 0x1009, 0x100f, 0x103f]);
}

// ---- D: lookup ----------------------------------------------------------------------------

#[test]
fn d1_x2apic_always_allowed() {
    let mut mem = RegionMem::default();
    let z = mapped(&mut mem, 0, vec![0; 0x600]);
    // DEFAULT_DENY plus all-zero bitmaps covering the x2APIC block.
    let d = desc(1, &[rd(3, 0, 0x3000, z), rd(3, 0x800, 0x100, z)]);
    let f = build_simple(&d, &mut mem).unwrap();
    for i in 0x800..=0x8ff {
        assert!(f.allowed(i, MsrAccess::Read) && f.allowed(i, MsrAccess::Write));
        assert!(msr_allowed(Some(&*f), i, MsrAccess::Write));
        assert!(msr_allowed::<Vec<u8>>(None, i, MsrAccess::Read));
    }
    for i in [0x7ffu32, 0x900, 0] {
        assert!(!f.allowed(i, MsrAccess::Read));
        assert!(!f.allowed(i, MsrAccess::Write));
    }
    assert!(is_x2apic_msr(0x800) && is_x2apic_msr(0x8ff));
    assert!(!is_x2apic_msr(0x7ff) && !is_x2apic_msr(0x900));
}

#[test]
fn d2_no_filter_allows_everything() {
    for i in [0u32, 0x10, 0x3000, 0xc000_0080, u32::MAX] {
        assert!(msr_allowed::<Vec<u8>>(None, i, MsrAccess::Read));
        assert!(msr_allowed::<Vec<u8>>(None, i, MsrAccess::Write));
    }
}

#[test]
fn d3_first_match_decides() {
    let mut mem = RegionMem::default();
    let deny = mapped(&mut mem, 0, vec![0; 8]);
    let allow = mapped(&mut mem, 1, vec![0xff; 8]);
    let d = desc(0, &[rd(3, 0x10, 4, deny), rd(3, 0x10, 16, allow)]);
    let f = build_simple(&d, &mut mem).unwrap();
    for i in 0x10..0x14 {
        assert!(!f.allowed(i, MsrAccess::Read));
    }
    for i in 0x14..0x20 {
        assert!(f.allowed(i, MsrAccess::Read));
    }
}

#[test]
fn d3_read_only_range_does_not_shadow_later_write_range() {
    let mut mem = RegionMem::default();
    let deny = mapped(&mut mem, 0, vec![0; 8]);
    let allow = mapped(&mut mem, 1, vec![0xff; 8]);
    // Default deny; READ range denies, a later WRITE range allows.
    let d = desc(
        1,
        &[
            rd(KVM_MSR_FILTER_READ, 0x20, 8, deny),
            rd(KVM_MSR_FILTER_WRITE, 0x20, 8, allow),
        ],
    );
    let f = build_simple(&d, &mut mem).unwrap();
    assert!(!f.allowed(0x20, MsrAccess::Read));
    assert!(f.allowed(0x20, MsrAccess::Write));
    // And the split the selftest uses: a WRITE-only deny does not affect reads.
    let d = desc(0, &[rd(KVM_MSR_FILTER_WRITE, 0x20, 8, deny)]);
    let f = build_simple(&d, &mut mem).unwrap();
    assert!(f.allowed(0x20, MsrAccess::Read));
    assert!(!f.allowed(0x20, MsrAccess::Write));
}

#[test]
fn d4_wrapping_range_never_matches() {
    let mut mem = RegionMem::default();
    let deny = mapped(&mut mem, 0, vec![0; 8]);
    // base + nmsrs wraps to 8: nothing matches, default (allow) applies.
    let f = build_simple(&desc(0, &[rd(3, 0xffff_fff8, 16, deny)]), &mut mem).unwrap();
    assert!(!f.ranges().next().unwrap().reachable());
    for i in (0xffff_fff0..=u32::MAX).chain(0..16) {
        assert!(f.allowed(i, MsrAccess::Read), "{i:#x}");
        assert!(f.allowed(i, MsrAccess::Write), "{i:#x}");
    }
    // base + nmsrs == 2^32 exactly (end 0) never matches either.
    let f = build_simple(&desc(0, &[rd(3, 0xffff_ffff, 1, deny)]), &mut mem).unwrap();
    assert!(f.allowed(u32::MAX, MsrAccess::Read));
    let f = build_simple(&desc(0, &[rd(3, 0xffff_fff8, 8, deny)]), &mut mem).unwrap();
    assert!(f.allowed(0xffff_fff8, MsrAccess::Read));
    // end == 0xffffffff matches up to 0xfffffffe only.
    let f = build_simple(&desc(0, &[rd(3, 0xffff_fff0, 15, deny)]), &mut mem).unwrap();
    assert!(!f.allowed(0xffff_fff0, MsrAccess::Read));
    assert!(!f.allowed(0xffff_fffe, MsrAccess::Write));
    assert!(f.allowed(0xffff_ffff, MsrAccess::Read));
    // A wrapping range does not hide a later range either.
    let d = desc(
        1,
        &[
            rd(3, 0xffff_fff8, 16, deny),
            rd(3, 0, 8, mapped(&mut mem, 1, vec![0xff; 8])),
        ],
    );
    let f = build_simple(&d, &mut mem).unwrap();
    assert!(f.allowed(3, MsrAccess::Read));
    assert!(!f.allowed(0xffff_fffa, MsrAccess::Read));
}

#[test]
fn d5_access_types() {
    assert_eq!(MsrAccess::from_type(1), Some(MsrAccess::Read));
    assert_eq!(MsrAccess::from_type(2), Some(MsrAccess::Write));
    assert_eq!(MsrAccess::from_type(0), None);
    assert_eq!(MsrAccess::from_type(3), None);
    assert_eq!(MsrAccess::Read.flag(), 1);
    assert_eq!(MsrAccess::Write.flag(), 2);
}

#[test]
fn d_sixteen_ranges_match_reference() {
    // 16 disjoint ranges with gaps: the maximum of 33 intervals per table.
    let mut mem = RegionMem::default();
    let mut ranges = Vec::new();
    for i in 0..16u32 {
        let bytes: Vec<u8> = (0..8)
            .map(|k| (i as u8).wrapping_mul(37).wrapping_add(k * 11))
            .collect();
        let p = mapped(&mut mem, u64::from(i), bytes);
        ranges.push(rd(1 + i % 3, 1 + i * 100, 50, p));
    }
    for flags in [0, 1] {
        let d = desc(flags, &ranges);
        let f = build_simple(&d, &mut mem).unwrap();
        let rf = to_ref(&f);
        let idx: Vec<u32> = (0..1700).chain(probe_indices(&rf)).collect();
        assert_lookups_agree(&f, &rf, &idx);
    }
}

#[test]
fn d_shape_follows_the_ranges_used() {
    // Up to SCAN_MAX ranges of an access type are scanned in order; with
    // more, a bucket table (BUCKETS entries of 8 bytes) is looked up if
    // some bucket size leaves at most one interval start inside each
    // bucket, else the interval table is searched in
    // ceil(log2(intervals)) probes and sized to the intervals (8 bytes
    // each, the first one excluded).
    let mut mem = RegionMem::default();
    let p = mapped(&mut mem, 0, vec![0xff; 8]);
    let shapes = |f: &Filter<Vec<u8>>| {
        (
            f.lookup_shape(MsrAccess::Read),
            f.lookup_shape(MsrAccess::Write),
            f.table_bytes(),
        )
    };
    // No range at all: nothing to scan, no table.
    let f = build_simple(&desc(0, &[]), &mut mem).unwrap();
    assert_eq!(shapes(&f), (Shape::Scan(0), Shape::Scan(0), 0));
    // One read range: the write lookup has nothing to scan.
    let f = build_simple(&desc(0, &[rd(KVM_MSR_FILTER_READ, 0x100, 64, p)]), &mut mem).unwrap();
    assert_eq!(shapes(&f), (Shape::Scan(1), Shape::Scan(0), 0));
    // An unreachable range (base + nmsrs wraps) is never scanned.
    let wide = mapped(&mut mem, 1, vec![0xff; 64]);
    let f = build_simple(&desc(0, &[rd(3, 0xffff_ff00, 0x200, wide)]), &mut mem).unwrap();
    assert_eq!(shapes(&f), (Shape::Scan(0), Shape::Scan(0), 0));
    let max = filter::SCAN_MAX as u32;
    let disjoint = |n: u32, flags: u32| -> Vec<RangeDesc> {
        (0..n).map(|i| rd(flags, 0x100 * (i + 1), 64, p)).collect()
    };
    let f = build_simple(&desc(0, &disjoint(max, 3)), &mut mem).unwrap();
    assert_eq!(shapes(&f), (Shape::Scan(max), Shape::Scan(max), 0));
    // One more: 2 * (max + 1) + 1 intervals, starting 0x40 apart and then
    // 0xc0 apart: buckets of 0x80.
    let n = max + 1;
    let f = build_simple(&desc(0, &disjoint(n, 3)), &mut mem).unwrap();
    let bucket = Shape::Bucket(7);
    assert_eq!(shapes(&f), (bucket, bucket, filter::BUCKET_TABLE_SIZE));
    // The two access types choose their shapes independently; the table
    // covers the intervals of both. The write range's bounds, 8 apart and
    // far above the others, share a bucket at every bucket size that
    // reaches them: the interval table is searched.
    let mut mixed = disjoint(n, KVM_MSR_FILTER_READ);
    mixed.push(rd(KVM_MSR_FILTER_WRITE, 0x10_0000, 8, p));
    let f = build_simple(&desc(0, &mixed), &mut mem).unwrap();
    let (r, w, bytes) = shapes(&f);
    assert!(matches!(r, Shape::Search(_)), "{r:?}");
    assert_eq!((w, bytes), (Shape::Scan(1), 8 * (2 * n as usize + 2)));
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0..0x1000).chain(probe_indices(&rf)).collect();
    assert_lookups_agree(&f, &rf, &idx);
    // 16 disjoint ranges: 33 intervals, buckets of 0x100 with the end of a
    // range inside each.
    let f = build_simple(&desc(0, &disjoint(16, 3)), &mut mem).unwrap();
    let bucket = Shape::Bucket(8);
    assert_eq!(shapes(&f), (bucket, bucket, filter::BUCKET_TABLE_SIZE));
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0..0x1200).chain(probe_indices(&rf)).collect();
    assert_lookups_agree(&f, &rf, &idx);
    // 16 ranges back to back share their boundaries: 1 + 16 + 1 intervals,
    // starting 64 apart, buckets of 64.
    let touching: Vec<_> = (0..16u32).map(|i| rd(3, 0x100 + 64 * i, 64, p)).collect();
    let f = build_simple(&desc(0, &touching), &mut mem).unwrap();
    let bucket = Shape::Bucket(6);
    assert_eq!(shapes(&f), (bucket, bucket, filter::BUCKET_TABLE_SIZE));
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0..0x1000).chain(probe_indices(&rf)).collect();
    assert_lookups_agree(&f, &rf, &idx);
    // Five ranges of one MSR back to back and one far away of one MSR: the
    // far range's two bounds, one apart, share a bucket at every bucket
    // size that reaches them, so the 8 intervals after the first are
    // searched, in 4 probes.
    let mut packed: Vec<_> = (0..5u32).map(|i| rd(3, 0x100 + i, 1, p)).collect();
    packed.push(rd(3, 0x10_0000, 1, p));
    let f = build_simple(&desc(0, &packed), &mut mem).unwrap();
    let search = Shape::Search(4);
    assert_eq!(shapes(&f), (search, search, 8 * 8));
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0..0x1000).chain(probe_indices(&rf)).collect();
    assert_lookups_agree(&f, &rf, &idx);
}

/// Indices around the bucket bounds of a filter whose lowest interval
/// bound above 0 is `lo`, for buckets of `1 << shift` indices.
fn bucket_indices(lo: u32, shift: u32) -> Vec<u32> {
    let mut v = Vec::new();
    for b in 0..=filter::BUCKETS as u64 + 1 {
        let first = u64::from(lo) + (b << shift);
        for d in [0u64, 1, 2] {
            for i in [first.wrapping_sub(d), first + d] {
                if let Ok(i) = u32::try_from(i) {
                    v.push(i);
                }
            }
        }
    }
    v.push(lo / 2);
    v
}

/// Builds `ranges` (flags, base, nmsrs, bitmap byte), checks the shapes
/// and every lookup against the reference around the ranges' and the
/// buckets' bounds, and returns the filter.
fn check_buckets(
    deny: bool,
    ranges: &[(u32, u32, u32, u8)],
    want: (Shape, Shape),
    extra: &[u32],
) -> Box<Filter<Vec<u8>>> {
    let mut mem = RegionMem::default();
    let descs: Vec<_> = ranges
        .iter()
        .zip(0u64..)
        .map(|(&(fl, base, n, fill), i)| {
            let len = (n as usize).div_ceil(64) * 8;
            let bytes = (0..len).map(|k| fill.rotate_left(k as u32)).collect();
            rd(fl, base, n, mapped(&mut mem, i, bytes))
        })
        .collect();
    let f = build_simple(&desc(u32::from(deny), &descs), &mut mem).unwrap();
    let shapes = (
        f.lookup_shape(MsrAccess::Read),
        f.lookup_shape(MsrAccess::Write),
    );
    assert_eq!(shapes, want, "{:x?}", ranges.first());
    let rf = to_ref(&f);
    let mut idx = probe_indices(&rf);
    idx.extend_from_slice(extra);
    let lo = ranges
        .iter()
        .filter(|r| r.1.checked_add(r.2).is_some())
        .map(|r| r.1)
        .min()
        .unwrap_or(0);
    for s in [shapes.0, shapes.1] {
        if let Shape::Bucket(shift) = s {
            idx.extend(bucket_indices(lo, shift));
        }
    }
    assert_lookups_agree(&f, &rf, &idx);
    f
}

#[test]
fn d_bucket_table_lookups() {
    const RW: u32 = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
    // The benchmark's layout (msr_filter_bench, benches/common): ranges of
    // 0x100 MSRs 0x1000 apart; a bucket per range at 5, 8 and 16 ranges.
    let bench = |n: u32| -> Vec<(u32, u32, u32, u8)> {
        (0..n)
            .map(|i| (RW, 0x4000_0000 + i * 0x1000, 0x100, 0x5a))
            .collect()
    };
    let extra = [0x4000_f080, 0x474f_4f00, 0x4000_0000 - 1, u32::MAX];
    let at = |s| (Shape::Bucket(s), Shape::Bucket(s));
    let f = check_buckets(true, &bench(16), at(12), &extra);
    assert_eq!(f.table_bytes(), filter::BUCKET_TABLE_SIZE);
    check_buckets(true, &bench(8), at(11), &extra);
    check_buckets(false, &bench(5), at(11), &extra);
    // msr_filter_obs_test's 16 ranges: one MSR each, 0x100 apart.
    let obs: Vec<_> = (0..16u32)
        .map(|i| (RW, 0x1000_0000 + i * 0x100, 1, 0xff))
        .collect();
    check_buckets(false, &obs, at(8), &[]);
    // Ranges of one type only: five read ranges bucketed, two write ranges
    // scanned, in the same table.
    let mut one: Vec<_> = (0..5u32)
        .map(|i| (KVM_MSR_FILTER_READ, 0x1000 + i * 0x200, 0x80, 0x0f))
        .collect();
    one.push((KVM_MSR_FILTER_WRITE, 0x1080, 0x80, 0xf0));
    one.push((KVM_MSR_FILTER_WRITE, 0x1600, 0x100, 0x33));
    let f = check_buckets(true, &one, (Shape::Bucket(8), Shape::Scan(2)), &[]);
    assert_eq!(f.table_bytes(), filter::BUCKET_TABLE_SIZE);
    // Overlapping ranges, the first one of each type deciding.
    let overlap = [
        (RW, 0x2000, 0x100, 0x01),
        (KVM_MSR_FILTER_READ, 0x2080, 0x100, 0x7e),
        (RW, 0x2000, 0x200, 0xa5),
        (KVM_MSR_FILTER_WRITE, 0x1f80, 0x400, 0x3c),
        (RW, 0x2100, 0x40, 0xff),
        (RW, 0x2300, 0x100, 0x00),
    ];
    let f = check_buckets(false, &overlap, at(7), &[]);
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0x1e00..0x2600).collect();
    assert_lookups_agree(&f, &rf, &idx);
    // Near the top: a range ending at u32::MAX (index u32::MAX is never in
    // a range), an unreachable one (its end wraps) and the last bucket
    // reaching past the index space.
    let top = [
        (RW, 0xffff_f000, 0x100, 0x55),
        (RW, 0xffff_f200, 0x100, 0xaa),
        (RW, 0xffff_f400, 0x100, 0x0f),
        (RW, 0xffff_f800, 0x100, 0xf0),
        (RW, 0xffff_ff00, 0xff, 0xff),
        (RW, 0xffff_ff80, 0x100, 0xff),
    ];
    let f = check_buckets(true, &top, at(8), &[]);
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0xffff_e000..=u32::MAX).collect();
    assert_lookups_agree(&f, &rf, &idx);
    // Ranges at index 0 and around the x2APIC MSRs.
    let low = [
        (RW, 0, 0x100, 0x81),
        (RW, 0x700, 0x100, 0x18),
        (RW, 0x800, 0x100, 0x99),
        (RW, 0x900, 0x80, 0x42),
        (KVM_MSR_FILTER_READ, 0xc00, 0x100, 0x01),
    ];
    let f = check_buckets(false, &low, (Shape::Bucket(8), Shape::Scan(4)), &[]);
    let rf = to_ref(&f);
    let idx: Vec<u32> = (0..0x1200).collect();
    assert_lookups_agree(&f, &rf, &idx);
}

#[test]
fn d_table_allocation_failure_is_enomem() {
    // The interval table is the last allocation of a build.
    struct NoTable;
    impl FilterAlloc for NoTable {
        type Bitmap = Vec<u8>;
        type Boxed = Box<Filter<Vec<u8>>>;
        fn alloc_filter(&mut self, f: Filter<Vec<u8>>) -> Result<Self::Boxed, Errno> {
            Ok(Box::new(f))
        }
        fn alloc_bitmap(&mut self, len: usize) -> Result<Vec<u8>, Errno> {
            Ok(vec![0; len])
        }
        fn alloc_table(&mut self, _len: usize) -> Result<Vec<u8>, Errno> {
            Err(Errno::NoMem)
        }
    }
    let few: Vec<_> = (0..filter::SCAN_MAX as u32)
        .map(|i| rd(3, 0x100 * i, 8, 0x1000))
        .collect();
    assert!(build(&desc(0, &few), &mut NoTable, |_, _| Ok(())).is_ok());
    let many: Vec<_> = (0..=filter::SCAN_MAX as u32)
        .map(|i| rd(3, 0x100 * i, 8, 0x1000))
        .collect();
    assert_eq!(
        build(&desc(0, &many), &mut NoTable, |_, _| Ok(())).err(),
        Some(Errno::NoMem)
    );
}

// ---- A: capability ------------------------------------------------------------------------

#[test]
fn a_user_space_msr_cap_validation() {
    assert_eq!(check_user_space_msr_cap(0, 0), Ok(0));
    assert_eq!(check_user_space_msr_cap(0, 7), Ok(7));
    assert_eq!(check_user_space_msr_cap(0, 4), Ok(4));
    assert_eq!(check_user_space_msr_cap(0, 8), Err(Errno::Inval));
    assert_eq!(check_user_space_msr_cap(0, 1 << 32), Err(Errno::Inval));
    assert_eq!(check_user_space_msr_cap(0, 1 << 63), Err(Errno::Inval));
    assert_eq!(check_user_space_msr_cap(1, 1), Err(Errno::Inval));
    assert_eq!(check_user_space_msr_cap(0x8000_0000, 0), Err(Errno::Inval));
}

// ---- F: exits and completion ------------------------------------------------------------

#[test]
fn f1_reason_mapping() {
    assert_eq!(msr_exit_reason(2), KVM_MSR_EXIT_REASON_UNKNOWN);
    assert_eq!(msr_exit_reason(3), KVM_MSR_EXIT_REASON_FILTER);
    for r in [1, 4, -1, -5, -14, -22, i32::MIN, i32::MAX] {
        assert_eq!(msr_exit_reason(r), KVM_MSR_EXIT_REASON_INVAL, "r={r}");
    }
}

#[test]
fn f2_exit_iff_mask_and_contents() {
    for mask in 0..8u32 {
        for r in [1, 2, 3, -22] {
            let e = msr_exit(mask, MsrDir::Write, 0x1234, 0xdead_beef_0000_0001, r);
            assert_eq!(e.is_some(), mask & msr_exit_reason(r) != 0);
        }
    }
    let e = msr_exit(4, MsrDir::Read, 0x35, 0x9999, 3).unwrap();
    assert_eq!(e.exit_reason, 29);
    assert_eq!(
        e.run,
        MsrRun {
            error: 0,
            pad: [0; 7],
            reason: 4,
            index: 0x35,
            data: 0
        }
    );
    let e = msr_exit(4, MsrDir::Write, 0x35, 0x9999, 3).unwrap();
    assert_eq!(e.exit_reason, 30);
    assert_eq!(e.run.data, 0x9999);
    // Bits outside the reason never matter.
    assert!(msr_exit(0xffff_fff8, MsrDir::Read, 0, 0, 3).is_none());
}

#[test]
fn f2_kvm_run_msr_bytes() {
    let run = MsrRun {
        error: 0xff,
        pad: [1, 2, 3, 4, 5, 6, 7],
        reason: 4,
        index: 0xc000_0080,
        data: 0x0102_0304_0506_0708,
    };
    let b = run.to_bytes();
    assert_eq!(
        b,
        [0xff, 1, 2, 3, 4, 5, 6, 7, 4, 0, 0, 0, 0x80, 0, 0, 0xc0, 8, 7, 6, 5, 4, 3, 2, 1]
    );
    assert_eq!(MsrRun::from_bytes(&b), run);
}

#[test]
fn f4_rdmsr_wrmsr_asymmetry() {
    // Not deflected (mask 0): WRMSR returns a negative r from KVM_RUN,
    // RDMSR turns it into #GP.
    assert_eq!(wrmsr_outcome(0, 0x10, 5, -5), InsnOutcome::Return(-5));
    assert_eq!(rdmsr_outcome(0, 0x10, -5), InsnOutcome::Fault(-5));
    assert_eq!(wrmsr_outcome(0, 0x10, 5, 1), InsnOutcome::Fault(1));
    assert_eq!(rdmsr_outcome(0, 0x10, 3), InsnOutcome::Fault(3));
    assert_eq!(rdmsr_outcome(7, 0x10, 0), InsnOutcome::Done);
    assert_eq!(wrmsr_outcome(7, 0x10, 5, 0), InsnOutcome::Done);
    // A negative r can be deflected as INVAL.
    let e = msr_exit(1, MsrDir::Write, 0x10, 5, -5).unwrap();
    assert_eq!(wrmsr_outcome(1, 0x10, 5, -5), InsnOutcome::Exit(e));
    assert_eq!(e.run.reason, KVM_MSR_EXIT_REASON_INVAL);
    let e = msr_exit(1, MsrDir::Read, 0x10, 0, -5).unwrap();
    assert_eq!(rdmsr_outcome(1, 0x10, -5), InsnOutcome::Exit(e));
    // FILTER exit only with the FILTER bit.
    assert_eq!(rdmsr_outcome(3, 0x10, 3), InsnOutcome::Fault(3));
    assert!(matches!(rdmsr_outcome(4, 0x10, 3), InsnOutcome::Exit(_)));
    assert!(matches!(wrmsr_outcome(2, 0x10, 0, 2), InsnOutcome::Exit(_)));
}

#[test]
fn f5_completion() {
    let mut run = MsrRun {
        data: 0xaabb_ccdd_1122_3344,
        index: 0xdead,
        reason: 0x77,
        ..MsrRun::default()
    };
    assert_eq!(
        complete(CompletionKind::Rdmsr, &run),
        Completion::Done(RegWrite::EdxEax {
            rax: 0x1122_3344,
            rdx: 0xaabb_ccdd
        })
    );
    assert_eq!(
        complete(CompletionKind::RdmsrImm, &run),
        Completion::Done(RegWrite::Gpr(0xaabb_ccdd_1122_3344))
    );
    assert_eq!(
        complete(CompletionKind::Wrmsr, &run),
        Completion::Done(RegWrite::None)
    );
    for err in [1u8, 2, 0x80, 0xff] {
        run.error = err;
        for kind in [
            CompletionKind::Rdmsr,
            CompletionKind::RdmsrImm,
            CompletionKind::Wrmsr,
        ] {
            assert_eq!(
                complete(kind, &run),
                Completion::Fault(err),
                "error byte {err}"
            );
        }
    }
    // Through the byte layout: the error byte alone decides.
    let mut b = [0u8; 24];
    b[0] = 2;
    assert_eq!(
        complete(CompletionKind::Wrmsr, &MsrRun::from_bytes(&b)),
        Completion::Fault(2)
    );
    b[0] = 0;
    b[1..8].copy_from_slice(&[0xff; 7]); // pad garbage is ignored
    assert_eq!(
        complete(CompletionKind::Wrmsr, &MsrRun::from_bytes(&b)),
        Completion::Done(RegWrite::None)
    );
}

#[test]
fn f6_emulator_outcomes() {
    for mask in 0..8u32 {
        // r < 0 is UNHANDLEABLE before any deflection, even with INVAL set.
        assert_eq!(
            emulator_outcome(mask, MsrDir::Read, 1, 0, -22),
            EmulOutcome::Unhandleable
        );
        assert_eq!(
            emulator_outcome(mask, MsrDir::Write, 1, 9, -1),
            EmulOutcome::Unhandleable
        );
        assert_eq!(
            emulator_outcome(mask, MsrDir::Read, 1, 0, 0),
            EmulOutcome::Continue
        );
        for r in [1, 2, 3] {
            let got = emulator_outcome(mask, MsrDir::Write, 0x42, 9, r);
            match msr_exit(mask, MsrDir::Write, 0x42, 9, r) {
                Some(e) => assert_eq!(got, EmulOutcome::IoNeeded(e)),
                None => assert_eq!(got, EmulOutcome::PropagateFault),
            }
        }
    }
}
