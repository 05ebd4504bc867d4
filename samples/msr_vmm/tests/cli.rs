// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Bad input through the real binary: one line on stderr, a non-zero exit
//! status, never a panic. None of these need KVM.

use std::process::{Command, Output};

fn msr_vmm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_msr-vmm"))
        .args(args)
        .output()
        .expect("spawn msr-vmm")
}

/// Asserts a clean failure and returns its single stderr line.
fn fails(args: &[&str], code: i32) -> String {
    let out = msr_vmm(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.starts_with("msr-vmm: error: "), "{stderr}");
    stderr
}

fn temp_policy(name: &str, text: &str) -> String {
    let dir = std::env::temp_dir().join(format!("msr-vmm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write policy");
    path.to_string_lossy().into_owned()
}

#[test]
fn help() {
    let out = msr_vmm(&["--help"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("--policy FILE"));
}

#[test]
fn unknown_option() {
    let e = fails(&["--cores", "4", "--frobnicate"], 2);
    assert!(e.contains("unknown option '--frobnicate'"), "{e}");
}

#[test]
fn bad_numbers() {
    fails(&["--cores", "four"], 2);
    fails(&["--read", "0x1_0000_0000"], 2);
    fails(&["--cores", "300", "--threads", "300"], 2);
}

#[test]
fn no_kvm_device() {
    let e = fails(&["--kvm", "/nonexistent/kvm", "--cores", "2"], 1);
    assert!(e.contains("cannot open /nonexistent/kvm"), "{e}");
}

#[test]
fn not_a_kvm_device() {
    let e = fails(&["--kvm", "/dev/null", "--cores", "2"], 1);
    assert!(e.contains("failed"), "{e}");
}

#[test]
fn kvm_device_without_permission() {
    // Root ignores file modes, so drop to `nobody` when setpriv exists.
    let Ok(out) = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_msr-vmm"))
        .args(["--kvm", "/dev/kvm", "--cores", "2"])
        .output()
    else {
        eprintln!("SKIP: setpriv not available");
        return;
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !stderr.starts_with("msr-vmm:") {
        eprintln!("SKIP: cannot run as nobody: {stderr}");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("cannot open /dev/kvm"), "{stderr}");
}

#[test]
fn malformed_policy_has_line_number() {
    let p = temp_policy(
        "bad.toml",
        "model = \"x\"\n[[allow]]\nmsrs = [0x10]\nacess = \"r\"\n",
    );
    let e = fails(&["--policy", &p, "--read", "0x10"], 1);
    assert!(e.contains("bad.toml: line 4:"), "{e}");

    let p = temp_policy("syntax.toml", "[[deny]]\nmsrs = [0x10 0x11]\n");
    let e = fails(&["--policy", &p, "--read", "0x10"], 1);
    assert!(e.contains("line 2:"), "{e}");
}

#[test]
fn policy_duplicate_with_different_decision() {
    let p = temp_policy(
        "dup.toml",
        "[[allow]]\nmsrs = [0x10, 0xc0010015]\n\n[[deny]]\nmsrs = [0xc0010015]\n",
    );
    let e = fails(&["--policy", &p, "--read", "0x10"], 1);
    assert!(
        e.contains("line 5:") && e.contains("0xc0010015") && e.contains("line 2"),
        "{e}"
    );
}

#[test]
fn missing_policy_file() {
    let e = fails(&["--policy", "/nonexistent/policy.toml"], 1);
    assert!(e.contains("cannot read policy file"), "{e}");
}

#[test]
fn conflicting_options() {
    let e = fails(&["--kernel-gp", "--cores", "2", "--policy", "builtin"], 1);
    assert!(e.contains("--kernel-gp"), "{e}");
    let e = fails(&["--ignore-msrs"], 1);
    assert!(e.contains("program is empty"), "{e}");
}
