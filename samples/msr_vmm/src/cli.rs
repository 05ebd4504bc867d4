// SPDX-License-Identifier: GPL-2.0 OR MIT

//! Command-line parsing (by hand: a handful of options).

use std::path::PathBuf;

use crate::error::Error;
use crate::guest::{Command, parse_u32, parse_u64};
use crate::policy::Policy;
use crate::vmm::{Config, Topology};

/// The example policy, built in for `--demo` (and `--policy builtin`).
pub const EXAMPLE_POLICY: &str = include_str!("../policies/intel-example.toml");

/// Usage text for `--help`.
pub const USAGE: &str = "\
Usage: msr-vmm [OPTIONS]

Runs a tiny real-mode guest that executes RDMSR/WRMSR commands and reports
what it saw, with KVM userspace MSR filtering and MSR exits.

Options:
  --cores N          cores per package; with --threads, reads of
                     MSR_CORE_THREAD_COUNT (0x35) are answered from userspace
                     (FILTER exit) with (cores << 16) | (cores * threads)
  --threads N        threads per core (default 1 when only --cores is given)
  --ignore-msrs      enable UNKNOWN exits: reads of MSRs unknown to KVM
                     return 0, writes are dropped, each logged once
  --policy FILE      CPU-model policy (TOML) installed as a DEFAULT_DENY
                     filter; `builtin` is the example policy
  --kernel-gp        with --policy: leave FILTER exits off, so KVM itself
                     injects #GP for denied accesses (no userspace exit)
  --read MSR         guest program: RDMSR MSR (repeatable, runs in order)
  --write MSR=VALUE  guest program: WRMSR MSR with VALUE (repeatable)
  --demo             example policy, 4 cores x 2 threads (unless given),
                     --ignore-msrs and a built-in program (unless --read or
                     --write are given)
  --kvm PATH         KVM device (default /dev/kvm)
  -h, --help         this text

Numbers are decimal or 0x-prefixed hexadecimal.
Exit status: 0 ok, 1 KVM/guest/configuration error, 2 bad command line.
";

/// The `--demo` program.
pub fn demo_program() -> Vec<Command> {
    vec![
        Command::Read(0x35),                          // topology, FILTER exit
        Command::Read(0x10),                          // TSC: allowed, KVM answers
        Command::Write(0x277, 0x0007_0406_0007_0406), // PAT: allowed
        Command::Read(0x19c),                         // allowed, unknown to KVM
        Command::Write(0x19c, 0),                     // read-only in the policy
        Command::Read(0xc001_0015),                   // AMD HWCR: denied
        Command::Write(0xc001_0015, 0),               // denied
        Command::Read(0x1234_5678),                   // not in the policy
    ]
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Print the usage.
    Help,
    /// Run this configuration.
    Run(Box<Config>),
}

fn number<T>(opt: &str, v: &str, parse: fn(&str) -> Option<T>) -> Result<T, Error> {
    parse(v).ok_or_else(|| Error::Usage(format!("{opt}: '{v}' is not a valid number")))
}

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Parsed, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut cfg = Config::default();
    let mut cores = None;
    let mut threads = None;
    let mut policy: Option<String> = None;
    let mut demo = false;

    let mut it = args.into_iter().map(Into::into);
    while let Some(arg) = it.next() {
        let (opt, inline) = match arg.split_once('=') {
            Some((o, v)) if o.starts_with("--") => (o.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            opt.as_str(),
            "--cores" | "--threads" | "--policy" | "--read" | "--write" | "--kvm"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it
                    .next()
                    .ok_or_else(|| Error::Usage(format!("{opt} needs a value")))?,
            }
        } else {
            if inline.is_some() {
                return Err(Error::Usage(format!("{opt} takes no value")));
            }
            String::new()
        };
        match opt.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--cores" => cores = Some(number(&opt, &value, parse_u32)?),
            "--threads" => threads = Some(number(&opt, &value, parse_u32)?),
            "--ignore-msrs" => cfg.ignore_msrs = true,
            "--kernel-gp" => cfg.kernel_gp = true,
            "--demo" => demo = true,
            "--policy" => policy = Some(value),
            "--kvm" => cfg.kvm_path = PathBuf::from(value),
            "--read" => cfg
                .program
                .push(Command::Read(number(&opt, &value, parse_u32)?)),
            "--write" => {
                let (m, v) = value.split_once('=').ok_or_else(|| {
                    Error::Usage(format!("--write: expected MSR=VALUE, got '{value}'"))
                })?;
                cfg.program.push(Command::Write(
                    number(&opt, m, parse_u32)?,
                    number(&opt, v, parse_u64)?,
                ));
            }
            _ if opt.starts_with('-') => {
                return Err(Error::Usage(format!("unknown option '{opt}'")));
            }
            _ => return Err(Error::Usage(format!("unexpected argument '{opt}'"))),
        }
    }

    if demo {
        cores = cores.or(Some(4));
        threads = threads.or(Some(2));
        cfg.ignore_msrs = true;
        policy = policy.or_else(|| Some("builtin".into()));
        if cfg.program.is_empty() {
            cfg.program = demo_program();
        }
    }
    if cores.is_some() || threads.is_some() {
        let t = Topology::new(cores.unwrap_or(1), threads.unwrap_or(1)).map_err(Error::Usage)?;
        cfg.topology = Some(t);
        if cfg.program.is_empty() {
            cfg.program.push(Command::Read(0x35));
        }
    }
    if let Some(p) = policy {
        cfg.policy = Some(if p == "builtin" {
            Policy::parse(EXAMPLE_POLICY)
                .map_err(|e| Error::Config(format!("built-in policy: {e}")))?
        } else {
            Policy::load(std::path::Path::new(&p)).map_err(Error::Config)?
        });
    }
    Ok(Parsed::Run(Box::new(cfg)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        match parse(args.iter().copied()) {
            Ok(Parsed::Run(c)) => *c,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn usage_err(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(e @ Error::Usage(_)) => e.to_string(),
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn topology_defaults_program() {
        let c = cfg(&["--cores", "4", "--threads=2"]);
        assert_eq!(
            c.topology,
            Some(Topology {
                cores: 4,
                threads: 2
            })
        );
        assert_eq!(c.program, vec![Command::Read(0x35)]);
        let c = cfg(&["--cores", "3"]);
        assert_eq!(
            c.topology,
            Some(Topology {
                cores: 3,
                threads: 1
            })
        );
    }

    #[test]
    fn program_in_order() {
        let c = cfg(&["--read", "0x10", "--write", "0x277=0x6", "--read=53"]);
        assert_eq!(
            c.program,
            vec![
                Command::Read(0x10),
                Command::Write(0x277, 6),
                Command::Read(53)
            ]
        );
    }

    #[test]
    fn demo() {
        let c = cfg(&["--demo", "--cores", "8"]);
        assert_eq!(
            c.topology,
            Some(Topology {
                cores: 8,
                threads: 2
            })
        );
        assert!(c.ignore_msrs && c.policy.is_some());
        assert_eq!(c.program, demo_program());
    }

    #[test]
    fn errors() {
        assert!(usage_err(&["--bogus"]).contains("unknown option '--bogus'"));
        assert!(usage_err(&["--cores"]).contains("needs a value"));
        assert!(usage_err(&["--cores", "x"]).contains("not a valid number"));
        assert!(usage_err(&["--write", "0x10"]).contains("MSR=VALUE"));
        assert!(usage_err(&["--ignore-msrs=1"]).contains("takes no value"));
        assert!(usage_err(&["--cores", "0"]).contains("at least 1"));
        assert!(usage_err(&["stray"]).contains("unexpected argument"));
        assert_eq!(parse(["--help"]), Ok(Parsed::Help));
    }

    #[test]
    fn missing_policy_file() {
        let e = parse(["--policy", "/nonexistent/p.toml"]).expect_err("fails");
        assert!(matches!(e, Error::Config(_)));
        assert!(e.to_string().contains("/nonexistent/p.toml"), "{e}");
    }
}
