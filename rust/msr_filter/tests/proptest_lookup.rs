// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Property tests: the table-driven lookup agrees with the plain linear
//! reference model on random filters and indices, and random descriptors
//! are accepted or rejected exactly like the reference.

mod support;

use msr_filter::{build, FilterDesc, MsrAccess, RangeDesc};
use proptest::prelude::*;
use support::*;

/// Bases clustered where bugs hide: near 0, around x2APIC, near the top of
/// the index space (wraparound), and anywhere.
fn base() -> impl Strategy<Value = u32> {
    prop_oneof![
        0u32..64,
        0x780u32..0x980,
        (u32::MAX - 0x4000)..=u32::MAX,
        0xc000_0000u32..0xc000_0100,
        any::<u32>(),
    ]
}

fn nmsrs() -> impl Strategy<Value = u32> {
    prop_oneof![
        4 => 1u32..80,
        2 => 1u32..0x3001,
        1 => Just(0x3000u32),
        1 => Just(0u32),
    ]
}

/// A valid-ish range plus its bitmap bytes.
fn range() -> impl Strategy<Value = (u32, u32, u32, Vec<u8>)> {
    (1u32..=3, base(), nmsrs(), any::<u64>()).prop_map(|(flags, base, nmsrs, seed)| {
        // Cheap deterministic bitmap from a seed (proptest shrinks the seed).
        let len = (u64::from(nmsrs).div_ceil(64) * 8) as usize;
        let mut x = seed | 1;
        let bitmap = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        (flags, base, nmsrs, bitmap)
    })
}

fn build_filter(
    deny: bool,
    ranges: &[(u32, u32, u32, Vec<u8>)],
) -> (Box<msr_filter::Filter<Vec<u8>>>, RefFilter) {
    let mut mem = RegionMem::default();
    let mut descs = Vec::new();
    for (i, (flags, base, nmsrs, bytes)) in ranges.iter().enumerate() {
        let p = mem.map(0x100_0000 * (i as u64 + 1), bytes.clone());
        descs.push(rd(*flags, *base, *nmsrs, p));
    }
    let d = desc(u32::from(deny), &descs);
    let mut m2 = mem.clone();
    let want = ref_build(&d, None, &mut |a, b| m2.copy(a, b)).expect("valid by construction");
    let f = build(&d, &mut HostAlloc::default(), |a, b| mem.copy(a, b)).expect("valid");
    assert_eq!(to_ref(&f), want);
    (f, want)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn lookup_matches_linear_scan(
        deny in any::<bool>(),
        ranges in prop::collection::vec(range(), 1..=16),
        extra in prop::collection::vec(any::<u32>(), 0..64),
    ) {
        // All-empty + deny is rejected; keep one range non-empty.
        let mut ranges = ranges;
        if ranges.iter().all(|r| r.2 == 0) {
            ranges[0].2 = 1;
            ranges[0].3 = vec![0; 8];
        }
        let (f, rf) = build_filter(deny, &ranges);
        let mut idx = probe_indices(&rf);
        idx.extend(extra);
        assert_lookups_agree(&f, &rf, &idx);
    }

    #[test]
    fn lookup_dense_window(
        deny in any::<bool>(),
        ranges in prop::collection::vec(
            (1u32..=3, 0u32..200, 1u32..100, any::<u8>()), 1..=16),
    ) {
        // Small, heavily overlapping ranges; check every index in the window.
        let ranges: Vec<_> = ranges
            .into_iter()
            .map(|(fl, b, n, fill)| {
                let len = (n as usize).div_ceil(64) * 8;
                let bytes = (0..len).map(|k| fill.rotate_left(k as u32)).collect();
                (fl, b, n, bytes)
            })
            .collect();
        let (f, rf) = build_filter(deny, &ranges);
        let idx: Vec<u32> = (0..400).collect();
        assert_lookups_agree(&f, &rf, &idx);
    }

    #[test]
    fn random_descriptors_validate_like_reference(
        flags in prop_oneof![Just(0u32), Just(1u32), any::<u32>()],
        raw in prop::collection::vec(
            (prop_oneof![1u32..=3, any::<u32>()], any::<u32>(),
             prop_oneof![Just(0u32), 1u32..0x3002, any::<u32>()],
             prop_oneof![0u64..0x8000_0000, any::<u64>()]), 16),
        fail in prop::option::of(0usize..17),
        mem_bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let mut d = FilterDesc { flags, ..FilterDesc::default() };
        for (slot, (fl, base, n, p)) in d.ranges.iter_mut().zip(raw) {
            *slot = RangeDesc { flags: fl, base, nmsrs: n, bitmap: p };
        }
        let mut input = vec![match fail { Some(n) => (n as u8) << 1, None => 0x3e }];
        input.extend_from_slice(&d.to_native());
        input.extend_from_slice(&mem_bytes);
        check_fuzz_input(&input);
        input[0] |= 1;
        // Compat: pointers are truncated to 32 bits by the encoding.
        let mut compat = vec![input[0]];
        compat.extend_from_slice(&d.to_compat());
        compat.extend_from_slice(&mem_bytes);
        check_fuzz_input(&compat);
    }

    #[test]
    fn lookup_matches_linear_scan_evenly_spaced(
        deny in any::<bool>(),
        first in prop_oneof![any::<u32>(), (u32::MAX - 0x40_0000)..=u32::MAX, 0u32..0x1000],
        stride_log in 0u32..20,
        ranges in prop::collection::vec(
            (1u32..=3, 0u32..4, 0u32..3, any::<u8>()), 5..=16),
        extra in prop::collection::vec(any::<u32>(), 0..16),
    ) {
        // Ranges about `stride` apart (as many filters are), where bucket
        // tables are likely: some overlap, touch, or hold one MSR.
        let stride = 1u32 << stride_log;
        let ranges: Vec<_> = ranges
            .into_iter()
            .enumerate()
            .map(|(i, (fl, shift_by, size, fill))| {
                let base = first
                    .wrapping_add((i as u32).wrapping_mul(stride))
                    .wrapping_add(shift_by * (stride / 4));
                let n = match size {
                    0 => 1,
                    1 => (stride / 2).clamp(1, 0x3000),
                    _ => stride.min(0x3000),
                };
                let len = (n as usize).div_ceil(64) * 8;
                let bytes = (0..len).map(|k| fill.rotate_left(k as u32)).collect();
                (fl, base, n, bytes)
            })
            .collect();
        let (f, rf) = build_filter(deny, &ranges);
        let mut idx = probe_indices(&rf);
        idx.extend(extra);
        for k in 0..=(17 * 4) {
            let i = first.wrapping_add(k * (stride / 4).max(1));
            idx.extend([i.wrapping_sub(1), i, i.wrapping_add(1)]);
        }
        assert_lookups_agree(&f, &rf, &idx);
    }

    #[test]
    fn access_type_tables_are_independent(
        base in base(), n in 1u32..200, seed in any::<u8>(), index in any::<u32>(),
    ) {
        let len = (n as usize).div_ceil(64) * 8;
        let ranges = vec![(1, base, n, vec![seed; len]), (2, base, n, vec![!seed; len])];
        let (f, rf) = build_filter(true, &ranges);
        for i in [index, base, base.wrapping_add(n / 2)] {
            prop_assert_eq!(f.allowed(i, MsrAccess::Read), ref_allowed(Some(&rf), i, 1));
            prop_assert_eq!(f.allowed(i, MsrAccess::Write), ref_allowed(Some(&rf), i, 2));
        }
    }
}
