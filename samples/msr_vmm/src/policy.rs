// SPDX-License-Identifier: GPL-2.0 OR MIT

//! CPU-model policy files.
//!
//! A policy is a TOML file that lists the MSRs a CPU model has (`[[allow]]`
//! tables) and the MSRs it must not have (`[[deny]]` tables). See README.md
//! for the format. Every error carries the line number it refers to.

use core::fmt;
use core::ops::Range;

use serde::Deserialize;
use toml::Spanned;

/// First and last index of the x2APIC MSR range, which KVM never filters.
pub const X2APIC_FIRST: u32 = 0x800;
/// Last index of the x2APIC MSR range.
pub const X2APIC_LAST: u32 = 0x8ff;

/// Largest number of MSRs one policy range may span: 16 filter ranges of
/// 0x3000 MSRs each.
pub const MAX_RANGE_SPAN: u64 = 16 * 0x3000;

/// A policy error, with the 1-based line it refers to when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// 1-based line number in the policy file.
    pub line: Option<usize>,
    /// What is wrong, one line.
    pub msg: String,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(l) => write!(f, "line {l}: {}", self.msg),
            None => write!(f, "{}", self.msg),
        }
    }
}

/// Which accesses an `[[allow]]` entry permits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// RDMSR only.
    Read,
    /// WRMSR only.
    Write,
    /// Both.
    ReadWrite,
}

impl Access {
    /// Whether RDMSR is permitted.
    pub fn read(self) -> bool {
        matches!(self, Access::Read | Access::ReadWrite)
    }
    /// Whether WRMSR is permitted.
    pub fn write(self) -> bool {
        matches!(self, Access::Write | Access::ReadWrite)
    }
}

/// The decision for one MSR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The model has the MSR; the listed accesses go to KVM.
    Allow(Access),
    /// The model lacks the MSR; every access raises #GP in the guest.
    Deny,
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Decision::Allow(Access::Read) => f.write_str("allow (access = \"r\")"),
            Decision::Allow(Access::Write) => f.write_str("allow (access = \"w\")"),
            Decision::Allow(Access::ReadWrite) => f.write_str("allow (access = \"rw\")"),
            Decision::Deny => f.write_str("deny"),
        }
    }
}

/// One contiguous, inclusive run of MSRs with one decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// First MSR index.
    pub first: u32,
    /// Last MSR index (inclusive).
    pub last: u32,
    /// What the policy says about these MSRs.
    pub decision: Decision,
    /// 1-based line in the policy file.
    pub line: usize,
}

/// A parsed, validated CPU-model policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// The model name (`model = "..."`), if given.
    pub model: Option<String>,
    /// All entries in file order.
    pub entries: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPolicy {
    model: Option<String>,
    #[serde(default)]
    allow: Vec<RawAllow>,
    #[serde(default)]
    deny: Vec<RawDeny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    #[serde(default)]
    msrs: Vec<Spanned<u64>>,
    #[serde(default)]
    ranges: Vec<Spanned<Vec<u64>>>,
    access: Option<Spanned<String>>,
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeny {
    #[serde(default)]
    msrs: Vec<Spanned<u64>>,
    #[serde(default)]
    ranges: Vec<Spanned<Vec<u64>>>,
    #[allow(dead_code)]
    note: Option<String>,
}

/// Maps byte offsets to 1-based line numbers.
struct Lines(Vec<usize>);

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines(starts)
    }
    fn line(&self, offset: usize) -> usize {
        match self.0.binary_search(&offset) {
            Ok(i) => i + 1,
            Err(i) => i,
        }
    }
    fn of(&self, span: &Range<usize>) -> usize {
        self.line(span.start)
    }
}

fn err(line: usize, msg: impl Into<String>) -> PolicyError {
    PolicyError {
        line: Some(line),
        msg: msg.into(),
    }
}

fn index(v: u64, line: usize) -> Result<u32, PolicyError> {
    u32::try_from(v).map_err(|_| err(line, format!("MSR index {v:#x} does not fit in 32 bits")))
}

fn push_items(
    lines: &Lines,
    msrs: &[Spanned<u64>],
    ranges: &[Spanned<Vec<u64>>],
    decision: Decision,
    out: &mut Vec<Entry>,
) -> Result<(), PolicyError> {
    for m in msrs {
        let line = lines.of(&m.span());
        let i = index(*m.get_ref(), line)?;
        out.push(Entry {
            first: i,
            last: i,
            decision,
            line,
        });
    }
    for r in ranges {
        let line = lines.of(&r.span());
        let [first, last] = r.get_ref()[..] else {
            return Err(err(
                line,
                "a range must be [first, last] (two MSR indices, inclusive)",
            ));
        };
        let (first, last) = (index(first, line)?, index(last, line)?);
        if first > last {
            return Err(err(
                line,
                format!("range [{first:#x}, {last:#x}] is reversed"),
            ));
        }
        if u64::from(last - first) + 1 > MAX_RANGE_SPAN {
            return Err(err(
                line,
                format!(
                    "range [{first:#x}, {last:#x}] spans more than {MAX_RANGE_SPAN:#x} MSRs, more than one KVM filter can describe"
                ),
            ));
        }
        out.push(Entry {
            first,
            last,
            decision,
            line,
        });
    }
    Ok(())
}

fn access(lines: &Lines, a: &Option<Spanned<String>>) -> Result<Access, PolicyError> {
    let Some(a) = a else {
        return Ok(Access::ReadWrite);
    };
    match a.get_ref().as_str() {
        "rw" => Ok(Access::ReadWrite),
        "r" => Ok(Access::Read),
        "w" => Ok(Access::Write),
        other => Err(err(
            lines.of(&a.span()),
            format!("access must be \"r\", \"w\" or \"rw\", not {other:?}"),
        )),
    }
}

impl Policy {
    /// Parses and validates a policy from the text of a TOML file.
    pub fn parse(text: &str) -> Result<Policy, PolicyError> {
        let lines = Lines::new(text);
        let raw: RawPolicy = toml::from_str(text).map_err(|e| PolicyError {
            line: e.span().map(|s| lines.of(&s)),
            msg: e.message().trim().replace('\n', "; "),
        })?;

        let mut entries = Vec::new();
        for a in &raw.allow {
            let acc = access(&lines, &a.access)?;
            push_items(
                &lines,
                &a.msrs,
                &a.ranges,
                Decision::Allow(acc),
                &mut entries,
            )?;
        }
        for d in &raw.deny {
            push_items(&lines, &d.msrs, &d.ranges, Decision::Deny, &mut entries)?;
        }
        // Report problems in file order.
        entries.sort_by_key(|e| e.line);

        for e in &entries {
            if e.decision == Decision::Deny && e.first <= X2APIC_LAST && e.last >= X2APIC_FIRST {
                return Err(err(
                    e.line,
                    format!(
                        "cannot deny MSRs {X2APIC_FIRST:#x}-{X2APIC_LAST:#x}: KVM never filters the x2APIC range"
                    ),
                ));
            }
        }

        // The same MSR listed twice with different decisions is an error,
        // reported at the later line. Listing it twice the same way is fine.
        for (i, later) in entries.iter().enumerate() {
            for earlier in &entries[..i] {
                let overlap = earlier.first <= later.last && later.first <= earlier.last;
                if overlap && earlier.decision != later.decision {
                    let msr = later.first.max(earlier.first);
                    return Err(err(
                        later.line,
                        format!(
                            "MSR {msr:#x} is listed as {} here and as {} on line {}",
                            later.decision, earlier.decision, earlier.line
                        ),
                    ));
                }
            }
        }

        Ok(Policy {
            model: raw.model,
            entries,
        })
    }

    /// Reads and parses a policy file; errors are prefixed with the path.
    pub fn load(path: &std::path::Path) -> Result<Policy, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read policy file {}: {e}", path.display()))?;
        Policy::parse(&text).map_err(|e| format!("policy file {}: {e}", path.display()))
    }

    /// The decision for `msr`, if the policy mentions it.
    pub fn decision(&self, msr: u32) -> Option<Decision> {
        self.entries
            .iter()
            .find(|e| e.first <= msr && msr <= e.last)
            .map(|e| e.decision)
    }

    /// Sorted, de-duplicated MSR indices for which the policy allows reads
    /// (`write == false`) or writes (`write == true`).
    pub fn allowed(&self, write: bool) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .entries
            .iter()
            .filter(|e| match e.decision {
                Decision::Allow(a) => {
                    if write {
                        a.write()
                    } else {
                        a.read()
                    }
                }
                Decision::Deny => false,
            })
            .flat_map(|e| e.first..=e.last)
            .collect();
        v.sort_unstable();
        v.dedup();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_of(text: &str) -> Option<usize> {
        Policy::parse(text).expect_err("should fail").line
    }

    #[test]
    fn parses_example_file() {
        let p = Policy::parse(include_str!("../policies/intel-example.toml")).expect("parses");
        assert!(p.model.is_some());
        assert_eq!(p.decision(0x10), Some(Decision::Allow(Access::ReadWrite)));
        assert_eq!(p.decision(0xc001_0015), Some(Decision::Deny));
        assert!(p.allowed(false).contains(&0x10));
    }

    #[test]
    fn access_and_ranges() {
        let p = Policy::parse(
            "[[allow]]\nmsrs = [0x10]\naccess = \"r\"\n[[allow]]\nranges = [[0x20, 0x23]]\n",
        )
        .expect("parses");
        assert_eq!(p.allowed(false), vec![0x10, 0x20, 0x21, 0x22, 0x23]);
        assert_eq!(p.allowed(true), vec![0x20, 0x21, 0x22, 0x23]);
        assert_eq!(p.entries[1].line, 5);
    }

    #[test]
    fn syntax_error_has_line() {
        assert_eq!(
            line_of("model = \"x\"\n\n[[allow]]\nmsrs = [0x10,\n"),
            Some(4)
        );
        assert_eq!(line_of("model = \"x\"\n[[allow]\n"), Some(2));
    }

    #[test]
    fn unknown_key_has_line() {
        let e = Policy::parse("model = \"x\"\n[[allow]]\nmsr = [1]\n").expect_err("fails");
        assert_eq!(e.line, Some(3));
        assert!(e.msg.contains("msr"), "{e}");
    }

    #[test]
    fn wrong_type_has_line() {
        assert_eq!(line_of("[[deny]]\n\nmsrs = [\"ten\"]\n"), Some(3));
        assert_eq!(line_of("[[deny]]\nmsrs = [-1]\n"), Some(2));
    }

    #[test]
    fn bad_values_have_lines() {
        assert_eq!(line_of("[[deny]]\nmsrs = [0x1_0000_0000]\n"), Some(2));
        assert_eq!(line_of("[[deny]]\n\nranges = [[5, 4]]\n"), Some(3));
        assert_eq!(line_of("[[deny]]\nranges = [[5]]\n"), Some(2));
        assert_eq!(line_of("[[allow]]\nranges = [[0, 0xfffff]]\n"), Some(2));
        assert_eq!(line_of("[[allow]]\nmsrs = [1]\naccess = \"x\"\n"), Some(3));
        assert_eq!(
            line_of("[[deny]]\nmsrs = [0x1]\nranges = [[0x7f0, 0x810]]\n"),
            Some(3)
        );
    }

    #[test]
    fn duplicate_with_different_decision() {
        let text = "[[allow]]\nmsrs = [0x10, 0x1b]\n\n[[deny]]\nmsrs = [0x1b]\n";
        let e = Policy::parse(text).expect_err("conflict");
        assert_eq!(e.line, Some(5));
        assert!(e.msg.contains("0x1b") && e.msg.contains("line 2"), "{e}");

        // Different access is a different decision too; ranges overlap.
        let text = "[[allow]]\nranges = [[0x10, 0x20]]\n[[allow]]\naccess = \"r\"\nmsrs = [0x18]\n";
        let e = Policy::parse(text).expect_err("conflict");
        assert_eq!(e.line, Some(5));
        assert!(e.msg.contains("0x18"), "{e}");

        // A deny listed before the allow is reported at the allow's line.
        let text = "[[allow]]\nmsrs = [0x30]\n[[deny]]\nmsrs = [0x40]\n[[allow]]\nmsrs = [0x40]\n";
        assert_eq!(line_of(text), Some(6));
    }

    #[test]
    fn duplicate_with_same_decision_is_fine() {
        let text = "[[allow]]\nmsrs = [0x10, 0x10]\n[[allow]]\nranges = [[0x8, 0x10]]\n";
        let p = Policy::parse(text).expect("parses");
        assert_eq!(p.allowed(true).len(), 9);
    }

    #[test]
    fn empty_policy() {
        let p = Policy::parse("# nothing\n").expect("parses");
        assert!(p.entries.is_empty());
    }
}
