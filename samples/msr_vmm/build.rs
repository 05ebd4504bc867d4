// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Sets `cfg(no_kvm)` when /dev/kvm cannot be opened read-write on the
//! build machine, so the end-to-end tests show up as "ignored" there. The
//! tests check again at run time and print SKIP if KVM went away.
//! `MSR_VMM_NO_KVM=1` pretends /dev/kvm is absent (to check the skip path).

use std::fs::OpenOptions;

fn main() {
    println!("cargo::rustc-check-cfg=cfg(no_kvm)");
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=/dev/kvm");
    println!("cargo::rerun-if-env-changed=MSR_VMM_NO_KVM");
    if std::env::var_os("MSR_VMM_NO_KVM").is_some()
        || OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_err()
    {
        println!("cargo::rustc-cfg=no_kvm");
        println!("cargo::warning=/dev/kvm is not usable: the KVM end-to-end tests will be ignored");
    }
}
