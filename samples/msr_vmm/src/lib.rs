// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `msr-vmm`: a small VMM showing KVM userspace MSR filtering
//! (`KVM_X86_SET_MSR_FILTER`) and MSR exits (`KVM_CAP_X86_USER_SPACE_MSR`,
//! `KVM_EXIT_X86_RDMSR/WRMSR`) with the `kvm-ioctls` crate.

#![deny(unsafe_op_in_unsafe_fn)]

pub mod cli;
pub mod error;
pub mod filter;
pub mod guest;
pub mod output;
pub mod policy;
pub mod vmm;

pub use error::Error;
