// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Criterion benchmark of the MSR filter lookup: the crate's
//! (`Filter::allowed`) against upstream's loop compiled from C
//! (`benches/c/upstream_lookup.c`), at 0, 1, 2, 4, 8 and 16 ranges, hit
//! (last range) and miss.
//!
//! `cargo bench --bench lookup` (add `-- --quick` for a short run). For a
//! ratio table with median/min/max, run `cargo bench --bench lookup_table`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use msr_filter::MsrAccess;

#[path = "common/mod.rs"]
mod common;

fn lookup(c: &mut Criterion) {
    common::self_check();
    let mut g = c.benchmark_group("lookup");
    for (name, n, index, _) in common::cases() {
        let rf = common::rust_filter(n);
        let lf = common::CFilter::new(n);
        g.bench_function(format!("rust/{name}"), |b| {
            b.iter(|| common::rust_allowed(black_box(&rf), black_box(index), MsrAccess::Read))
        });
        g.bench_function(format!("c/{name}"), |b| {
            b.iter(|| black_box(&lf).allowed(black_box(index), MsrAccess::Read.flag()))
        });
    }
    g.finish();
}

criterion_group!(benches, lookup);
criterion_main!(benches);
