// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Replays every file of the committed fuzz corpus (fuzz/corpus/build_filter)
//! through the fuzz target's checker, so that CI exercises it on stable.

mod support;

use std::path::PathBuf;

use support::*;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/build_filter")
}

#[test]
fn replay_corpus() {
    let mut n = 0;
    let mut entries: Vec<_> = std::fs::read_dir(corpus_dir())
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let data = std::fs::read(&path).expect("read corpus file");
        check_fuzz_input(&data);
        n += 1;
    }
    assert!(n > 0, "empty corpus");
    eprintln!("replayed {n} corpus files");
}

#[test]
fn seeds_pass_checker() {
    for s in seeds() {
        check_fuzz_input(&s);
    }
}

/// Hand-made seeds (written into the corpus by
/// `cargo test --test fuzz_corpus -- --ignored write_seed_corpus`).
fn seeds() -> Vec<Vec<u8>> {
    let user: Vec<u8> = (0u8..=255).collect();
    let none = 0x3e; // no allocation failure, native
    let many: Vec<_> = (0..16u32)
        .map(|i| rd(1 + i % 3, i * 37, 1 + i * 5, u64::from(i)))
        .collect();
    vec![
        make_fuzz_input(none, &desc(0, &[]), &[]),
        make_fuzz_input(none, &desc(1, &[]), &[]),
        make_fuzz_input(none, &desc(1, &[rd(1, 0x10, 64, 0)]), &user),
        make_fuzz_input(none | 1, &desc(0, &[rd(3, 0x800, 0x100, 4)]), &user),
        make_fuzz_input(none, &desc(0, &[rd(3, 0xffff_fff8, 16, 0)]), &user),
        make_fuzz_input(
            none,
            &desc(1, &[rd(1, 0, 0x3000, 0), rd(2, 0, 0x3001, 0)]),
            &user,
        ),
        make_fuzz_input(
            none,
            &desc(0, &[rd(1, 0, 1, 0x8000_0000), rd(8, 0, 1, 0)]),
            &user,
        ),
        make_fuzz_input(2 << 1, &desc(0, &[rd(1, 0, 1, 0), rd(2, 5, 100, 0)]), &user),
        make_fuzz_input(none, &desc(1, &many), &user),
        make_fuzz_input(none | 1, &desc(0, &many), &user),
        vec![0; 10],
    ]
}

#[test]
#[ignore = "writes the seed corpus; run with --ignored to regenerate"]
fn write_seed_corpus() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}")), s).unwrap();
    }
}
