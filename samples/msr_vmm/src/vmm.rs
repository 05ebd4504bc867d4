// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The VMM proper: one VM, one vCPU in real mode, one memory slot, and the
//! MSR exit handlers.

use std::alloc::{self, Layout};
use std::collections::{BTreeMap, HashSet};
use std::ffi::CString;
use std::path::PathBuf;
use std::ptr::NonNull;

use kvm_bindings::{kvm_enable_cap, kvm_userspace_memory_region};
use kvm_ioctls::{Cap, Kvm, MsrExitReason, MsrFilterDefaultAction, VcpuExit, VcpuFd, VmFd};

use crate::error::Error;
use crate::filter::{Filter, MSR_CORE_THREAD_COUNT};
use crate::guest::{self, Command};
use crate::policy::Policy;

/// Guest-visible CPU topology, answered through MSR_CORE_THREAD_COUNT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Cores per package.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
}

impl Topology {
    /// Checks that both counts fit the MSR's 16-bit fields.
    pub fn new(cores: u32, threads: u32) -> Result<Topology, String> {
        if cores == 0 || threads == 0 {
            return Err("--cores and --threads must be at least 1".into());
        }
        if cores > 0xffff || cores.saturating_mul(threads) > 0xffff {
            return Err(format!(
                "{cores} cores x {threads} threads does not fit MSR_CORE_THREAD_COUNT (16-bit fields)"
            ));
        }
        Ok(Topology { cores, threads })
    }

    /// The MSR value: bits 31:16 core count, bits 15:0 thread count.
    pub fn msr_value(&self) -> u64 {
        (u64::from(self.cores) << 16) | u64::from(self.cores * self.threads)
    }
}

/// What to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The KVM device.
    pub kvm_path: PathBuf,
    /// Answer reads of MSR_CORE_THREAD_COUNT from this topology.
    pub topology: Option<Topology>,
    /// Enable UNKNOWN exits: unknown reads give 0, writes are dropped.
    pub ignore_msrs: bool,
    /// CPU-model policy, installed as a DEFAULT_DENY filter.
    pub policy: Option<Policy>,
    /// Leave FILTER exits off so KVM injects #GP for denied accesses itself.
    pub kernel_gp: bool,
    /// The guest program.
    pub program: Vec<Command>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kvm_path: PathBuf::from("/dev/kvm"),
            topology: None,
            ignore_msrs: false,
            policy: None,
            kernel_gp: false,
            program: Vec::new(),
        }
    }
}

impl Config {
    /// The MSR exit reasons to enable with KVM_CAP_X86_USER_SPACE_MSR.
    pub fn exit_mask(&self) -> MsrExitReason {
        let mut m = MsrExitReason::empty();
        if self.filter().is_some() && !self.kernel_gp {
            m |= MsrExitReason::Filter;
        }
        if self.ignore_msrs {
            m |= MsrExitReason::Unknown;
        }
        m
    }

    /// Checks option combinations that cannot work.
    pub fn validate(&self) -> Result<(), Error> {
        if self.kernel_gp && self.topology.is_some() {
            return Err(Error::Config(
                "--kernel-gp leaves FILTER exits off, so MSR_CORE_THREAD_COUNT cannot be answered from userspace: drop --cores/--threads".into(),
            ));
        }
        if self.kernel_gp && self.policy.is_none() {
            return Err(Error::Config("--kernel-gp needs --policy".into()));
        }
        if let (Some(p), Some(_)) = (&self.policy, &self.topology) {
            if let Some(e) = p.entries.iter().find(|e| {
                e.decision == crate::policy::Decision::Deny
                    && e.first <= MSR_CORE_THREAD_COUNT
                    && MSR_CORE_THREAD_COUNT <= e.last
            }) {
                return Err(Error::Config(format!(
                    "the policy denies MSR_CORE_THREAD_COUNT (0x35, line {}) but --cores/--threads asks to answer it",
                    e.line
                )));
            }
        }
        if self.program.is_empty() {
            return Err(Error::Config(
                "the guest program is empty: give --read/--write, --cores/--threads or --demo"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The filter to install, if any.
    pub fn filter(&self) -> Option<Result<Filter, String>> {
        match (&self.policy, self.topology) {
            (Some(p), t) => Some(Filter::from_policy(p, t.is_some())),
            (None, Some(_)) => Some(Ok(Filter::core_thread_count_only())),
            (None, None) => None,
        }
    }
}

/// Read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Dir {
    /// RDMSR.
    Read,
    /// WRMSR.
    Write,
}

impl Dir {
    /// "rdmsr" or "wrmsr".
    pub fn name(self) -> &'static str {
        match self {
            Dir::Read => "rdmsr",
            Dir::Write => "wrmsr",
        }
    }
}

/// What the guest saw for one command, as it reported it over port I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// RDMSR completed with this value (EDX:EAX).
    Value(u64),
    /// WRMSR completed.
    Written,
    /// The instruction raised #GP.
    Gp,
}

/// One command and the guest's view of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observation {
    /// The command.
    pub command: Command,
    /// What the guest saw.
    pub outcome: Outcome,
}

/// How the VMM completed an MSR exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Read answered from the topology.
    Topology,
    /// #GP injected (error = 1) because the filter denies it.
    Denied,
    /// Unknown MSR read, answered with 0.
    ReadZero,
    /// Unknown MSR write, dropped.
    Dropped,
    /// #GP injected for any other reason.
    Gp,
}

impl Action {
    /// Human-readable form for the summary.
    pub fn describe(self) -> &'static str {
        match self {
            Action::Topology => "answered from topology",
            Action::Denied => "#GP (filtered)",
            Action::ReadZero => "read as 0 (ignore_msrs)",
            Action::Dropped => "dropped (ignore_msrs)",
            Action::Gp => "#GP",
        }
    }
}

/// The name of an MSR exit reason.
pub fn reason_name(r: MsrExitReason) -> &'static str {
    if r.contains(MsrExitReason::Filter) {
        "FILTER"
    } else if r.contains(MsrExitReason::Unknown) {
        "UNKNOWN"
    } else if r.contains(MsrExitReason::Inval) {
        "INVAL"
    } else {
        "NONE"
    }
}

/// Key of the per-MSR summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct MsrKey {
    /// The MSR.
    pub index: u32,
    /// Read or write.
    pub dir: Dir,
    /// FILTER / UNKNOWN / INVAL.
    pub reason: &'static str,
    /// What the VMM did.
    pub action: Action,
}

/// Exit counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// KVM exits by KVM_EXIT_* name.
    pub exits: BTreeMap<&'static str, u64>,
    /// MSR exits by KVM_MSR_EXIT_REASON_* name.
    pub msr_reasons: BTreeMap<&'static str, u64>,
    /// MSR exits by MSR, direction, reason and action.
    pub by_msr: BTreeMap<MsrKey, u64>,
}

impl Summary {
    /// Number of MSR exits for `index` in direction `dir`.
    pub fn msr_exits(&self, index: u32, dir: Dir) -> u64 {
        self.by_msr
            .iter()
            .filter(|(k, _)| k.index == index && k.dir == dir)
            .map(|(_, n)| n)
            .sum()
    }
}

/// Everything a run produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// The guest's view, one entry per command, in order.
    pub observations: Vec<Observation>,
    /// Exit counts.
    pub summary: Summary,
    /// The ignore_msrs messages (each unknown MSR and direction once).
    pub log: Vec<String>,
}

/// Page-aligned, zeroed guest memory that outlives the VM using it.
struct GuestMemory {
    ptr: NonNull<u8>,
    layout: Layout,
}

impl GuestMemory {
    fn new(image: &[u8]) -> Result<GuestMemory, Error> {
        let layout = Layout::from_size_align(image.len(), 4096)
            .map_err(|e| Error::Config(format!("guest memory layout: {e}")))?;
        if layout.size() == 0 {
            return Err(Error::Config("guest memory is empty".into()));
        }
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw)
            .ok_or_else(|| Error::Config("cannot allocate guest memory".into()))?;
        // SAFETY: `ptr` points to `layout.size() == image.len()` writable
        // bytes that nothing else references yet.
        unsafe { core::ptr::copy_nonoverlapping(image.as_ptr(), ptr.as_ptr(), image.len()) };
        Ok(GuestMemory { ptr, layout })
    }
}

impl Drop for GuestMemory {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) };
    }
}

/// The VM. Field order is drop order: the vCPU and the VM go before the
/// memory they map.
struct Machine {
    vcpu: VcpuFd,
    _vm: VmFd,
    _mem: GuestMemory,
}

fn open_kvm(path: &std::path::Path) -> Result<Kvm, Error> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| Error::Config(format!("bad KVM path {}", path.display())))?;
    Kvm::new_with_path(&c).map_err(|e| {
        let hint = match std::io::Error::from_raw_os_error(e.errno()).kind() {
            std::io::ErrorKind::NotFound => " (is KVM enabled in this kernel?)",
            std::io::ErrorKind::PermissionDenied => {
                " (need read/write access: run as root or join the kvm group)"
            }
            _ => "",
        };
        Error::Kvm(format!("cannot open {}: {e}{hint}", path.display()))
    })
}

fn setup(cfg: &Config) -> Result<Machine, Error> {
    let kvm = open_kvm(&cfg.kvm_path)?;
    let vm = kvm
        .create_vm()
        .map_err(|e| Error::kvm("KVM_CREATE_VM", e))?;

    let mask = cfg.exit_mask();
    let filter = cfg.filter().transpose().map_err(Error::Config)?;
    if !mask.is_empty() {
        if !vm.check_extension(Cap::X86UserSpaceMsr) {
            return Err(Error::Kvm(
                "KVM lacks KVM_CAP_X86_USER_SPACE_MSR (userspace MSR exits)".into(),
            ));
        }
        // Enable the exits before installing the filter, as api.rst asks.
        let cap = kvm_enable_cap {
            cap: Cap::X86UserSpaceMsr as u32,
            args: [u64::from(mask.bits()), 0, 0, 0],
            ..Default::default()
        };
        vm.enable_cap(&cap)
            .map_err(|e| Error::kvm("KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)", e))?;
    }
    if let Some(f) = &filter {
        if !vm.check_extension(Cap::X86MsrFilter) {
            return Err(Error::Kvm(
                "KVM lacks KVM_CAP_X86_MSR_FILTER (KVM_X86_SET_MSR_FILTER)".into(),
            ));
        }
        let ranges: Vec<_> = f.ranges.iter().map(|r| r.as_range()).collect();
        vm.set_msr_filter(f.default, &ranges)
            .map_err(|e| Error::kvm("KVM_X86_SET_MSR_FILTER", e))?;
    }

    let image = guest::build_image(&cfg.program).map_err(|guest::TooBig(n)| {
        Error::Config(format!(
            "a guest program of {n} commands does not fit in guest memory"
        ))
    })?;
    let mem = GuestMemory::new(&image)?;
    let region = kvm_userspace_memory_region {
        slot: 0,
        flags: 0,
        guest_phys_addr: 0,
        memory_size: mem.layout.size() as u64,
        userspace_addr: mem.ptr.as_ptr() as u64,
    };
    // SAFETY: the region is a live, page-aligned allocation owned by
    // `Machine`, which drops the VM before the memory.
    unsafe { vm.set_user_memory_region(region) }
        .map_err(|e| Error::kvm("KVM_SET_USER_MEMORY_REGION", e))?;

    let vcpu = vm
        .create_vcpu(0)
        .map_err(|e| Error::kvm("KVM_CREATE_VCPU", e))?;
    let mut sregs = vcpu
        .get_sregs()
        .map_err(|e| Error::kvm("KVM_GET_SREGS", e))?;
    for seg in [
        &mut sregs.cs,
        &mut sregs.ds,
        &mut sregs.es,
        &mut sregs.fs,
        &mut sregs.gs,
        &mut sregs.ss,
    ] {
        seg.base = 0;
        seg.selector = 0;
    }
    sregs.idt.base = 0;
    sregs.idt.limit = 0x3ff;
    vcpu.set_sregs(&sregs)
        .map_err(|e| Error::kvm("KVM_SET_SREGS", e))?;
    let regs = kvm_bindings::kvm_regs {
        rip: guest::CODE_START,
        rsp: guest::STACK_TOP,
        rflags: 2,
        // RCX and every other register start at 0.
        ..Default::default()
    };
    vcpu.set_regs(&regs)
        .map_err(|e| Error::kvm("KVM_SET_REGS", e))?;

    Ok(Machine {
        vcpu,
        _vm: vm,
        _mem: mem,
    })
}

/// Upper bound on exits, so a misbehaving guest cannot spin forever.
const MAX_EXITS: usize = 1_000_000;

struct Run<'a> {
    cfg: &'a Config,
    report: Report,
    logged: HashSet<(u32, Dir)>,
    lo: u32,
    hi: u32,
    index: Option<u32>,
    log_sink: &'a mut dyn FnMut(&str),
}

impl Run<'_> {
    fn count_exit(&mut self, name: &'static str) {
        *self.report.summary.exits.entry(name).or_default() += 1;
    }

    fn count_msr(&mut self, index: u32, dir: Dir, reason: MsrExitReason, action: Action) {
        let reason = reason_name(reason);
        let s = &mut self.report.summary;
        *s.msr_reasons.entry(reason).or_default() += 1;
        *s.by_msr
            .entry(MsrKey {
                index,
                dir,
                reason,
                action,
            })
            .or_default() += 1;
    }

    fn log_once(&mut self, index: u32, dir: Dir, what: &str) {
        if self.logged.insert((index, dir)) {
            let line = format!(
                "ignore_msrs: {} of unknown MSR {index:#x}: {what}",
                dir.name()
            );
            (self.log_sink)(&line);
            self.report.log.push(line);
        }
    }

    /// Decides a RDMSR exit: `Some(value)` or `None` for #GP.
    fn rdmsr(&mut self, index: u32, reason: MsrExitReason) -> Option<u64> {
        let action = if reason.contains(MsrExitReason::Filter) {
            match self.cfg.topology {
                Some(t) if index == MSR_CORE_THREAD_COUNT => {
                    self.count_msr(index, Dir::Read, reason, Action::Topology);
                    return Some(t.msr_value());
                }
                _ => Action::Denied,
            }
        } else if reason.contains(MsrExitReason::Unknown) && self.cfg.ignore_msrs {
            self.log_once(index, Dir::Read, "returning 0");
            self.count_msr(index, Dir::Read, reason, Action::ReadZero);
            return Some(0);
        } else {
            Action::Gp
        };
        self.count_msr(index, Dir::Read, reason, action);
        None
    }

    /// Decides a WRMSR exit: true if accepted, false for #GP.
    fn wrmsr(&mut self, index: u32, data: u64, reason: MsrExitReason) -> bool {
        if reason.contains(MsrExitReason::Filter) {
            self.count_msr(index, Dir::Write, reason, Action::Denied);
            false
        } else if reason.contains(MsrExitReason::Unknown) && self.cfg.ignore_msrs {
            self.log_once(index, Dir::Write, &format!("dropping {data:#x}"));
            self.count_msr(index, Dir::Write, reason, Action::Dropped);
            true
        } else {
            self.count_msr(index, Dir::Write, reason, Action::Gp);
            false
        }
    }

    /// Handles one port write from the guest. Returns true when the guest
    /// reported the end of its program.
    fn io_out(&mut self, port: u16, data: &[u8]) -> Result<bool, Error> {
        let mut b = [0u8; 4];
        let n = data.len().min(4);
        b[..n].copy_from_slice(&data[..n]);
        let v = u32::from_le_bytes(b);
        match port {
            guest::PORT_VALUE_LO => self.lo = v,
            guest::PORT_VALUE_HI => self.hi = v,
            guest::PORT_INDEX => self.index = Some(v),
            guest::PORT_READ_STATUS | guest::PORT_WRITE_STATUS => {
                let i = self.report.observations.len();
                let command = *self.cfg.program.get(i).ok_or_else(|| {
                    Error::Guest(format!(
                        "reported result #{} but the program has {i} commands",
                        i + 1
                    ))
                })?;
                let write = port == guest::PORT_WRITE_STATUS;
                if write != matches!(command, Command::Write(..))
                    || self.index != Some(command.index())
                {
                    return Err(Error::Guest(format!(
                        "result #{} does not match `{command}` (reported ECX {:?})",
                        i + 1,
                        self.index
                    )));
                }
                let outcome = match (v & 0xff, write) {
                    (0, false) => Outcome::Value((u64::from(self.hi) << 32) | u64::from(self.lo)),
                    (0, true) => Outcome::Written,
                    _ => Outcome::Gp,
                };
                self.report
                    .observations
                    .push(Observation { command, outcome });
                self.index = None;
            }
            guest::PORT_DONE => return Ok(true),
            guest::PORT_UNEXPECTED => {
                return Err(Error::Guest(format!(
                    "unexpected exception, vector {}",
                    v & 0xff
                )));
            }
            _ => return Err(Error::Guest(format!("write to unknown port {port:#x}"))),
        }
        Ok(false)
    }
}

/// Runs the guest program; `log` receives each ignore_msrs message as it
/// happens.
pub fn run(cfg: &Config, log: &mut dyn FnMut(&str)) -> Result<Report, Error> {
    cfg.validate()?;
    let mut m = setup(cfg)?;
    let mut r = Run {
        cfg,
        report: Report::default(),
        logged: HashSet::new(),
        lo: 0,
        hi: 0,
        index: None,
        log_sink: log,
    };
    let mut done = false;
    for _ in 0..MAX_EXITS {
        let exit = m.vcpu.run().map_err(|e| Error::kvm("KVM_RUN", e))?;
        match exit {
            VcpuExit::IoOut(port, data) => {
                r.count_exit("IO");
                if r.io_out(port, data)? {
                    done = true;
                }
            }
            VcpuExit::Hlt => {
                r.count_exit("HLT");
                if !done {
                    return Err(Error::Guest("halted before finishing its program".into()));
                }
                if r.report.observations.len() != cfg.program.len() {
                    return Err(Error::Guest(format!(
                        "reported {} results for {} commands",
                        r.report.observations.len(),
                        cfg.program.len()
                    )));
                }
                return Ok(r.report);
            }
            VcpuExit::X86Rdmsr(exit) => {
                r.count_exit("X86_RDMSR");
                match r.rdmsr(exit.index, exit.reason) {
                    Some(v) => {
                        *exit.data = v;
                        *exit.error = 0;
                    }
                    None => *exit.error = 1,
                }
            }
            VcpuExit::X86Wrmsr(exit) => {
                r.count_exit("X86_WRMSR");
                *exit.error = u8::from(!r.wrmsr(exit.index, exit.data, exit.reason));
            }
            VcpuExit::Shutdown => {
                return Err(Error::Guest("triple fault (KVM_EXIT_SHUTDOWN)".into()));
            }
            VcpuExit::FailEntry(reason, cpu) => {
                return Err(Error::Kvm(format!(
                    "KVM_EXIT_FAIL_ENTRY: hardware entry failure reason {reason:#x} on cpu {cpu}"
                )));
            }
            VcpuExit::InternalError => {
                return Err(Error::Kvm("KVM_EXIT_INTERNAL_ERROR".into()));
            }
            other => {
                return Err(Error::Guest(format!("unexpected exit {other:?}")));
            }
        }
    }
    Err(Error::Guest(format!("no HLT after {MAX_EXITS} exits")))
}

/// The default action's name for messages.
pub fn default_name(d: MsrFilterDefaultAction) -> &'static str {
    match d {
        MsrFilterDefaultAction::ALLOW => "DEFAULT_ALLOW",
        MsrFilterDefaultAction::DENY => "DEFAULT_DENY",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_value() {
        let t = Topology::new(4, 2).expect("valid");
        assert_eq!(t.msr_value(), 0x0004_0008);
        assert!(Topology::new(0, 1).is_err());
        assert!(Topology::new(0x100, 0x100).is_err());
        assert_eq!(
            Topology::new(0xffff, 1).expect("valid").msr_value(),
            0xffff_ffff
        );
    }

    #[test]
    fn exit_mask() {
        let mut c = Config {
            topology: Some(Topology {
                cores: 1,
                threads: 1,
            }),
            ..Default::default()
        };
        assert_eq!(c.exit_mask(), MsrExitReason::Filter);
        c.ignore_msrs = true;
        assert_eq!(
            c.exit_mask(),
            MsrExitReason::Filter | MsrExitReason::Unknown
        );
        c.topology = None;
        assert_eq!(c.exit_mask(), MsrExitReason::Unknown);
    }

    #[test]
    fn conflicting_options() {
        let policy = Policy::parse("[[deny]]\nmsrs = [0x35]\n").expect("parses");
        let c = Config {
            topology: Some(Topology {
                cores: 1,
                threads: 1,
            }),
            policy: Some(policy),
            program: vec![Command::Read(0x35)],
            ..Default::default()
        };
        let e = c.validate().expect_err("conflict");
        assert!(e.to_string().contains("line 2"), "{e}");
        let c = Config {
            kernel_gp: true,
            program: vec![Command::Read(0x35)],
            ..Default::default()
        };
        assert!(c.validate().is_err());
    }
}
