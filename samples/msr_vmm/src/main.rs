// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `msr-vmm` command-line entry point. Errors are printed as one line on
//! stderr and turned into a non-zero exit status.

use std::process::ExitCode;

use msr_vmm::cli::{self, Parsed};
use msr_vmm::{output, vmm};

fn main() -> ExitCode {
    let parsed = match cli::parse(std::env::args().skip(1)) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let cfg = match parsed {
        Parsed::Help => {
            print!("{}", cli::USAGE);
            return ExitCode::SUCCESS;
        }
        Parsed::Run(cfg) => cfg,
    };
    if let Err(e) = cfg.validate() {
        return fail(&e);
    }
    print!("{}", output::setup(&cfg));
    let mut log = |line: &str| eprintln!("msr-vmm: {line}");
    match vmm::run(&cfg, &mut log) {
        Ok(report) => {
            print!("{}", output::guest_view(&report));
            print!("{}", output::summary(&report));
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

fn fail(e: &msr_vmm::Error) -> ExitCode {
    eprintln!("msr-vmm: error: {e}");
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1))
}
