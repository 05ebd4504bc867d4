// SPDX-License-Identifier: GPL-2.0 OR MIT

//! End-to-end scenarios on /dev/kvm. Every assertion is about what the
//! guest reported over port I/O (values read, #GP taken) plus the exit
//! summary.
//!
//! Without a usable /dev/kvm at build time these tests are `#[ignore]`d
//! (cargo test reports them as ignored). If /dev/kvm disappears between
//! build and run, each test prints `SKIP:` and returns, unless
//! `MSR_VMM_REQUIRE_KVM=1` is set, in which case it fails.
//! `MSR_VMM_NO_KVM=1` (at build and run time) pretends KVM is absent.

use msr_vmm::guest::Command::{self, Read, Write};
use msr_vmm::policy::Policy;
use msr_vmm::vmm::{self, Action, Config, Dir, Outcome, Report, Topology};

const EXAMPLE: &str = include_str!("../policies/intel-example.toml");

fn kvm_usable() -> bool {
    let ok = std::env::var_os("MSR_VMM_NO_KVM").is_none()
        && std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/kvm")
            .is_ok();
    if !ok {
        assert!(
            std::env::var_os("MSR_VMM_REQUIRE_KVM").is_none(),
            "MSR_VMM_REQUIRE_KVM is set but /dev/kvm is not usable"
        );
        eprintln!("SKIP: /dev/kvm is not usable; KVM scenario not run");
    }
    ok
}

fn run(cfg: &Config) -> Report {
    let mut log = |_: &str| {};
    match vmm::run(cfg, &mut log) {
        Ok(r) => r,
        Err(e) => panic!("run failed: {e}"),
    }
}

fn outcomes(r: &Report) -> Vec<Outcome> {
    r.observations.iter().map(|o| o.outcome).collect()
}

fn policy(text: &str) -> Policy {
    match Policy::parse(text) {
        Ok(p) => p,
        Err(e) => panic!("policy: {e}"),
    }
}

fn cfg(program: Vec<Command>) -> Config {
    Config {
        program,
        ..Default::default()
    }
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn core_thread_count_from_topology() {
    if !kvm_usable() {
        return;
    }
    // (cores, threads, value the guest must read)
    let table = [
        (4, 2, 0x0004_0008u64),
        (1, 1, 0x0001_0001),
        (16, 1, 0x0010_0010),
        (8, 4, 0x0008_0020),
        (0xffff, 1, 0xffff_ffff),
    ];
    for (cores, threads, want) in table {
        let c = Config {
            topology: Some(Topology::new(cores, threads).expect("valid")),
            ..cfg(vec![Read(0x35), Read(0x35)])
        };
        let r = run(&c);
        assert_eq!(
            outcomes(&r),
            vec![Outcome::Value(want), Outcome::Value(want)],
            "{cores}x{threads}"
        );
        let s = &r.summary;
        assert_eq!(s.exits.get("X86_RDMSR"), Some(&2));
        assert_eq!(s.msr_reasons.get("FILTER"), Some(&2));
        assert_eq!(s.msr_reasons.len(), 1);
        assert_eq!(s.msr_exits(0x35, Dir::Read), 2);
        assert!(s.by_msr.keys().all(|k| k.action == Action::Topology));
        assert_eq!(s.exits.get("HLT"), Some(&1));
    }
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn qemu_setup_filters_only_reads_of_0x35() {
    if !kvm_usable() {
        return;
    }
    // DEFAULT_ALLOW: other MSRs and writes of 0x35 go to KVM, no exit.
    let c = Config {
        topology: Some(Topology::new(2, 2).expect("valid")),
        ..cfg(vec![
            Read(0x35),
            Write(0x277, 0x0006_0606_0006_0606),
            Read(0x277),
            Write(0x35, 1),
        ])
    };
    let r = run(&c);
    assert_eq!(
        outcomes(&r),
        vec![
            Outcome::Value(0x0002_0004),
            Outcome::Written,
            Outcome::Value(0x0006_0606_0006_0606),
            // KVM does not know MSR 0x35 and UNKNOWN exits are off.
            Outcome::Gp,
        ]
    );
    assert_eq!(r.summary.msr_reasons.get("FILTER"), Some(&1));
    assert_eq!(r.summary.exits.get("X86_WRMSR"), None);
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn ignore_msrs_reads_zero_and_drops_writes() {
    if !kvm_usable() {
        return;
    }
    let program = vec![
        Read(0x1234_5678),
        Write(0x1234_5678, 0xdead_beef),
        Read(0x1234_5678),
        Write(0x1234_5678, 1),
        Read(0x4000_1234),
    ];
    let c = Config {
        ignore_msrs: true,
        ..cfg(program.clone())
    };
    let mut logged = Vec::new();
    let mut log = |l: &str| logged.push(l.to_string());
    let r = vmm::run(&c, &mut log).expect("runs");
    assert_eq!(
        outcomes(&r),
        vec![
            Outcome::Value(0),
            Outcome::Written,
            Outcome::Value(0),
            Outcome::Written,
            Outcome::Value(0),
        ]
    );
    // Logged once per MSR and direction.
    assert_eq!(logged.len(), 3, "{logged:?}");
    assert_eq!(r.log, logged);
    let s = &r.summary;
    assert_eq!(s.msr_reasons.get("UNKNOWN"), Some(&5));
    assert_eq!(s.msr_exits(0x1234_5678, Dir::Read), 2);
    assert_eq!(s.msr_exits(0x1234_5678, Dir::Write), 2);
    assert_eq!(s.exits.get("X86_RDMSR"), Some(&3));
    assert_eq!(s.exits.get("X86_WRMSR"), Some(&2));

    // The same program without UNKNOWN exits: KVM injects #GP itself.
    let r = run(&cfg(program));
    assert!(outcomes(&r).iter().all(|o| *o == Outcome::Gp));
    assert!(r.summary.msr_reasons.is_empty());
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn policy_denies_with_gp() {
    if !kvm_usable() {
        return;
    }
    let c = Config {
        topology: Some(Topology::new(4, 2).expect("valid")),
        ignore_msrs: true,
        policy: Some(policy(EXAMPLE)),
        ..cfg(vec![
            Read(0x35),                // answered from topology
            Read(0xc001_0015),         // AMD HWCR, denied
            Write(0xc001_0015, 0),     // denied
            Read(0xc001_0002),         // in a denied range
            Read(0x10),                // TSC, allowed: KVM answers
            Write(0x277, 0x0406_0406), // PAT, allowed
            Read(0x277),               // reads back what was written
            Read(0xfe),                // MTRRCAP, read-only: allowed
            Write(0xfe, 0),            // read-only: denied
            Read(0x3b),                // not listed: default deny
            Read(0x19c),               // allowed, unknown to KVM: 0
        ])
    };
    let r = run(&c);
    let o = outcomes(&r);
    assert_eq!(o[0], Outcome::Value(0x0004_0008));
    assert_eq!(&o[1..4], &[Outcome::Gp, Outcome::Gp, Outcome::Gp]);
    assert!(
        matches!(o[4], Outcome::Value(v) if v != 0),
        "TSC {:?}",
        o[4]
    );
    assert_eq!(o[5], Outcome::Written);
    assert_eq!(o[6], Outcome::Value(0x0406_0406));
    assert!(matches!(o[7], Outcome::Value(_)));
    assert_eq!(&o[8..10], &[Outcome::Gp, Outcome::Gp]);
    assert_eq!(o[10], Outcome::Value(0));

    let s = &r.summary;
    // 0x35 + five denials go to userspace as FILTER exits.
    assert_eq!(s.msr_reasons.get("FILTER"), Some(&6));
    assert_eq!(s.msr_reasons.get("UNKNOWN"), Some(&1));
    assert_eq!(s.msr_exits(0xc001_0015, Dir::Read), 1);
    assert_eq!(s.msr_exits(0xc001_0015, Dir::Write), 1);
    assert_eq!(s.msr_exits(0x10, Dir::Read), 0);
    let denied: u64 = s
        .by_msr
        .iter()
        .filter(|(k, _)| k.action == Action::Denied)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(denied, 5);
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn policy_kernel_gp_has_no_exits() {
    if !kvm_usable() {
        return;
    }
    let c = Config {
        policy: Some(policy(EXAMPLE)),
        kernel_gp: true,
        ..cfg(vec![
            Read(0xc001_0015),
            Read(0x10),
            Read(0x35),
            Write(0xfe, 0),
        ])
    };
    let r = run(&c);
    let o = outcomes(&r);
    assert_eq!(o[0], Outcome::Gp);
    assert!(matches!(o[1], Outcome::Value(_)));
    assert_eq!(&o[2..], &[Outcome::Gp, Outcome::Gp]);
    assert!(r.summary.msr_reasons.is_empty());
    assert_eq!(r.summary.exits.get("X86_RDMSR"), None);
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn policy_with_sixteen_ranges() {
    if !kvm_usable() {
        return;
    }
    // One full 0x3000-MSR range (0x600-byte bitmap) plus 15 single MSRs far
    // apart: exactly KVM_MSR_FILTER_MAX_RANGES ranges.
    let mut text = String::from("[[allow]]\nranges = [[0x0, 0x2fff]]\n[[allow]]\nmsrs = [\n");
    for i in 1..16u32 {
        text.push_str(&format!("  {:#x},\n", 0x4000_0000 + i * 0x10_0000));
    }
    text.push_str("]\n[[deny]]\nmsrs = [0xc0000080]\n");
    let p = policy(&text);
    let f = msr_vmm::filter::Filter::from_policy(&p, false).expect("fits");
    assert_eq!(f.ranges.len(), 16);
    let c = Config {
        policy: Some(p),
        ignore_msrs: true,
        ..cfg(vec![
            Read(0x10),
            Read(0x4010_0000),
            Read(0x4010_0001),
            Read(0xc000_0080),
        ])
    };
    let r = run(&c);
    let o = outcomes(&r);
    assert!(matches!(o[0], Outcome::Value(v) if v != 0));
    // Allowed but unknown to KVM: UNKNOWN exit, read as 0.
    assert_eq!(o[1], Outcome::Value(0));
    assert_eq!(&o[2..], &[Outcome::Gp, Outcome::Gp]);
    assert_eq!(r.summary.msr_reasons.get("FILTER"), Some(&2));
    assert_eq!(r.summary.msr_reasons.get("UNKNOWN"), Some(&1));
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn policy_without_topology_denies_0x35() {
    if !kvm_usable() {
        return;
    }
    let c = Config {
        policy: Some(policy(EXAMPLE)),
        ..cfg(vec![Read(0x35)])
    };
    let r = run(&c);
    assert_eq!(outcomes(&r), vec![Outcome::Gp]);
    assert_eq!(r.summary.msr_exits(0x35, Dir::Read), 1);
}

#[test]
#[cfg_attr(no_kvm, ignore = "needs a usable /dev/kvm")]
fn demo_binary_prints_guest_view_and_summary() {
    if !kvm_usable() {
        return;
    }
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_msr-vmm"))
        .arg("--demo")
        .output()
        .expect("spawn msr-vmm");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("rdmsr 0x00000035")
            && stdout.contains("-> 0x0000000000040008  (4 cores, 8 threads)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("rdmsr 0xc0010015                     -> #GP"),
        "{stdout}"
    );
    assert!(stdout.contains("exit summary:"), "{stdout}");
    assert!(
        stdout.contains("MSR exits by reason: FILTER 5, UNKNOWN 1"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0x00000035 rdmsr FILTER  x1   answered from topology"),
        "{stdout}"
    );
}
