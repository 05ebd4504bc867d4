// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The sample's error type: every variant prints as one line.

use core::fmt;

/// Everything that can go wrong, each with a one-line message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line (exit status 2).
    Usage(String),
    /// Bad configuration: policy file, conflicting options (exit status 1).
    Config(String),
    /// A KVM operation failed or a capability is missing (exit status 1).
    Kvm(String),
    /// The guest did something the VMM did not expect (exit status 1).
    Guest(String),
}

impl Error {
    /// The process exit status for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    /// A KVM ioctl failure: `what` failed with `e`.
    pub fn kvm(what: &str, e: kvm_ioctls::Error) -> Error {
        Error::Kvm(format!("{what} failed: {e}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "{m} (try --help)"),
            Error::Config(m) | Error::Kvm(m) => f.write_str(m),
            Error::Guest(m) => write!(f, "guest: {m}"),
        }
    }
}

impl std::error::Error for Error {}
