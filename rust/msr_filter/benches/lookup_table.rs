// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Printing harness for the lookup benchmark: for every case (0, 1, 2, 4, 8
//! and 16 ranges; hit in the last range, miss), times `REPS` batches of
//! `ITERS` lookups of the crate's and of upstream's loop compiled from C
//! (`benches/c/upstream_lookup.c`, clang at the kernel's -O2, see build.rs),
//! interleaved, and prints ns/lookup as median, min and max plus the speedup
//! (C / Rust, so > 1 means Rust is faster).
//!
//! `cargo bench --bench lookup_table [-- --reps R --iters N --case NAME]`.
//! Besides the table it prints machine-readable lines
//! `RESULT host_lookup_<case> <c|rust> <median> <min> <max> ns`.

use std::hint::black_box;
use std::time::Instant;

use msr_filter::{Filter, MsrAccess};

#[path = "common/mod.rs"]
mod common;

#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(mut v: Vec<f64>) -> Stats {
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let median = if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    };
    Stats {
        median,
        min: v[0],
        max: v[n - 1],
    }
}

/// ns per lookup of one batch of `iters` lookups of the tables.
fn batch_rust(f: &Filter<Box<[u8]>>, index: u32, iters: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        black_box(common::rust_allowed(f, black_box(index), MsrAccess::Read));
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

/// ns per lookup of one batch of `iters` lookups of upstream's C.
fn batch_c(f: &common::CFilter, index: u32, iters: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        black_box(f.allowed(black_box(index), MsrAccess::Read.flag()));
    }
    t.elapsed().as_nanos() as f64 / iters as f64
}

fn arg(args: &[String], name: &str, default: u64) -> u64 {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How build.rs compiled the C reference.
const C_ANCHOR: &str = match option_env!("C_ANCHOR_CC") {
    Some(cc) => cc,
    None => "nothing (no clang)",
};

fn main() {
    if cfg!(no_c_anchor) {
        eprintln!("lookup_table: built without clang, so without the C reference (see build.rs)");
        std::process::exit(1);
    }
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `--quick` shortens the run.
    let quick = args.iter().any(|a| a == "--quick");
    let reps = arg(&args, "--reps", if quick { 5 } else { 15 }).max(1) as usize;
    let iters = arg(&args, "--iters", if quick { 200_000 } else { 2_000_000 }).max(1);

    common::self_check();
    println!(
        "# host lookup: {reps} batches of {iters} lookups per case, ns/lookup median (min-max)"
    );
    println!(
        "# c = upstream kvm_msr_allowed_c() loop compiled by {}, rust = msr_filter::Filter::allowed",
        C_ANCHOR
    );
    println!("{:<10} {:>26} {:>26} {:>9}", "case", "c", "rust", "c/rust");
    // `--case NAME` measures only that case (for example under a profiler).
    let only = args
        .iter()
        .position(|a| a == "--case")
        .and_then(|i| args.get(i + 1));
    for (name, n, index, _) in common::cases() {
        if only.is_some_and(|c| *c != name) {
            continue;
        }
        let rf = common::rust_filter(n);
        let lf = common::CFilter::new(n);
        // Warm up caches and the branch predictors.
        batch_rust(&rf, index, iters / 10 + 1);
        batch_c(&lf, index, iters / 10 + 1);
        let (mut r, mut c) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            c.push(batch_c(&lf, index, iters));
            r.push(batch_rust(&rf, index, iters));
        }
        let (c, r) = (stats(c), stats(r));
        let fmt = |s: Stats| format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max);
        println!(
            "{:<10} {:>26} {:>26} {:>8.2}x",
            name,
            fmt(c),
            fmt(r),
            c.median / r.median
        );
        for (imp, s) in [("c", c), ("rust", r)] {
            println!(
                "RESULT host_lookup_{name} {imp} {:.3} {:.3} {:.3} ns",
                s.median, s.min, s.max
            );
        }
    }
    println!(
        "# host object sizes: rust Filter<Box<[u8]>> {} bytes (+ bitmaps and table), c kvm_x86_msr_filter {} bytes (+ bitmaps)",
        std::mem::size_of::<Filter<Box<[u8]>>>(),
        std::mem::size_of::<common::CFilterRaw>()
    );
}
