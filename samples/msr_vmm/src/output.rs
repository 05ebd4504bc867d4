// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Human-readable output: the setup, the guest's view and the exit summary.

use std::fmt::Write as _;

use kvm_ioctls::MsrFilterRangeFlags;

use crate::filter::MSR_CORE_THREAD_COUNT;
use crate::guest::Command;
use crate::vmm::{Config, Outcome, Report, default_name, reason_name};

fn flags_name(f: MsrFilterRangeFlags) -> &'static str {
    match (
        f.contains(MsrFilterRangeFlags::READ),
        f.contains(MsrFilterRangeFlags::WRITE),
    ) {
        (true, true) => "READ|WRITE",
        (true, false) => "READ",
        (false, true) => "WRITE",
        (false, false) => "-",
    }
}

/// Describes the configuration (topology, exits, filter).
pub fn setup(cfg: &Config) -> String {
    let mut s = String::new();
    if let Some(t) = cfg.topology {
        let _ = writeln!(
            s,
            "topology: {} cores x {} threads -> MSR_CORE_THREAD_COUNT = {:#010x}",
            t.cores,
            t.threads,
            t.msr_value()
        );
    }
    if let Some(p) = &cfg.policy {
        let _ = writeln!(
            s,
            "policy: {} ({} entries)",
            p.model.as_deref().unwrap_or("(unnamed model)"),
            p.entries.len()
        );
    }
    let mask = cfg.exit_mask();
    let reasons: Vec<&str> = mask.iter().map(reason_name).collect();
    let _ = writeln!(
        s,
        "MSR exits to userspace: {}",
        if reasons.is_empty() {
            "none".to_string()
        } else {
            reasons.join("|")
        }
    );
    match cfg.filter() {
        Some(Ok(f)) => {
            let _ = writeln!(
                s,
                "filter: {}, {} range(s)",
                default_name(f.default),
                f.ranges.len()
            );
            for r in &f.ranges {
                let allowed = r.bitmap.iter().map(|b| b.count_ones()).sum::<u32>();
                let _ = writeln!(
                    s,
                    "  [{:#010x}, +{:<#7x}) {:<10} {:>5} allowed",
                    r.base,
                    r.nmsrs,
                    flags_name(r.flags),
                    allowed
                );
            }
        }
        Some(Err(e)) => {
            let _ = writeln!(s, "filter: invalid: {e}");
        }
        None => {
            let _ = writeln!(s, "filter: none");
        }
    }
    s
}

/// The guest's view, one line per command.
pub fn guest_view(report: &Report) -> String {
    let mut s = String::from("guest view:\n");
    for o in &report.observations {
        let _ = match (o.command, o.outcome) {
            (Command::Read(i), Outcome::Value(v)) => {
                let extra = if i == MSR_CORE_THREAD_COUNT {
                    format!("  ({} cores, {} threads)", (v >> 16) & 0xffff, v & 0xffff)
                } else {
                    String::new()
                };
                writeln!(
                    s,
                    "  rdmsr {i:#010x}                     -> {v:#018x}{extra}"
                )
            }
            (Command::Write(i, v), Outcome::Written) => {
                writeln!(s, "  wrmsr {i:#010x} <- {v:#018x} -> ok")
            }
            (Command::Read(i), _) => writeln!(s, "  rdmsr {i:#010x}                     -> #GP"),
            (Command::Write(i, v), _) => {
                writeln!(s, "  wrmsr {i:#010x} <- {v:#018x} -> #GP")
            }
        };
    }
    s
}

/// The exit summary.
pub fn summary(report: &Report) -> String {
    let sum = &report.summary;
    let join = |m: &std::collections::BTreeMap<&'static str, u64>| {
        if m.is_empty() {
            "none".to_string()
        } else {
            m.iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut s = String::from("exit summary:\n");
    let _ = writeln!(s, "  KVM exits by reason: {}", join(&sum.exits));
    let _ = writeln!(s, "  MSR exits by reason: {}", join(&sum.msr_reasons));
    let _ = writeln!(s, "  MSR exits by MSR:");
    if sum.by_msr.is_empty() {
        let _ = writeln!(s, "    none");
    }
    for (k, n) in &sum.by_msr {
        let _ = writeln!(
            s,
            "    {:#010x} {} {:<7} x{:<3} {}",
            k.index,
            k.dir.name(),
            k.reason,
            n,
            k.action.describe()
        );
    }
    s
}
