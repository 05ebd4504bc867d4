// SPDX-License-Identifier: GPL-2.0 OR MIT

//! The few errors the MSR filter code can report.

/// An error of the MSR filter code, mapped 1:1 onto a kernel errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Errno {
    /// `EINVAL`: invalid argument.
    Inval,
    /// `EFAULT`: bad user address.
    Fault,
    /// `ENOMEM`: allocation failure.
    NoMem,
    /// `E2BIG`: the user's array is too small (`KVM_GET_REG_LIST`).
    TooBig,
}

impl Errno {
    /// The negative errno value the kernel returns for this error.
    pub const fn to_errno(self) -> i32 {
        match self {
            Errno::Inval => -22,
            Errno::Fault => -14,
            Errno::NoMem => -12,
            Errno::TooBig => -7,
        }
    }
}
