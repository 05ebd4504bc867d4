// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Compiles the host benchmark's C reference (`benches/c/upstream_lookup.c`,
//! upstream's lookup) with clang and the code generation flags the kernel
//! uses for it, and links it into the benchmarks only. The library, its
//! tests and the kernel module do not use it.
//!
//! Without clang (`CLANG`, else `clang-22`, else `clang`) the benchmarks are
//! built without it (`cfg(no_c_anchor)`) and `lookup_table` refuses to run.

use std::env;
use std::path::PathBuf;
use std::process::Command;

/// The kernel's flags that matter for this code: -O2 and the x86-64
/// KBUILD_CFLAGS that change code generation (no SSE, no red zone, no jump
/// tables, no CET), with -fPIE instead of -mcmodel=kernel -fno-pic so that
/// it links into a userspace executable.
const CFLAGS: &[&str] = &[
    "-O2",
    "-std=gnu11",
    "-fno-strict-aliasing",
    "-fno-common",
    "-fno-delete-null-pointer-checks",
    "-mno-sse",
    "-mno-mmx",
    "-mno-sse2",
    "-mno-3dnow",
    "-mno-avx",
    "-mno-80387",
    "-mno-red-zone",
    "-fno-jump-tables",
    "-fcf-protection=none",
    "-fPIE",
    "-Wall",
    "-Werror",
];

fn main() {
    let src = "benches/c/upstream_lookup.c";
    println!("cargo:rerun-if-changed={src}");
    println!("cargo:rerun-if-env-changed=CLANG");
    println!("cargo:rustc-check-cfg=cfg(no_c_anchor)");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let obj = out.join("upstream_lookup.o");
    let candidates: Vec<String> = match env::var("CLANG") {
        Ok(c) => vec![c],
        Err(_) => vec!["clang-22".into(), "clang".into()],
    };
    for cc in &candidates {
        let status = Command::new(cc)
            .args(CFLAGS)
            .args(["-c", src, "-o"])
            .arg(&obj)
            .status();
        match status {
            Ok(s) if s.success() => {
                println!("cargo:rustc-link-arg-benches={}", obj.display());
                println!("cargo:rustc-env=C_ANCHOR_CC={cc} {}", CFLAGS.join(" "));
                return;
            }
            Ok(s) => panic!("{cc} failed on {src}: {s}"),
            Err(_) => continue,
        }
    }
    println!(
        "cargo:warning=no clang ({}): benchmarks without the C reference",
        candidates.join(", ")
    );
    println!("cargo:rustc-cfg=no_c_anchor");
}
