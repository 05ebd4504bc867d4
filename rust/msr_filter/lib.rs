// SPDX-License-Identifier: GPL-2.0 OR MIT

//! `no_std` core of KVM x86 userspace MSR filtering.
//!
//! Pure, safe logic shared by the in-kernel KVM Rust code and host tests:
//!
//! - [`uapi`]: ABI constants and struct sizes.
//! - [`errno`]: the error type ([`Errno`]).
//! - [`desc`]: decoding of the native and compat `struct kvm_msr_filter`.
//! - [`filter`]: filter validation and construction with upstream's order of
//!   checks, and a lookup that scans up to four ranges or searches an
//!   interval table in at most six probes (`kvm_msr_allowed()`).
//! - [`exit`]: exit-to-userspace and completion decisions.
//! - [`one_reg`]: x86 `KVM_{GET,SET}_ONE_REG` register ids and `KVM_GET_REG_LIST`.
//!
//! The kernel module `kvm_msr_rs` compiles the same files as the modules of
//! its `msr_filter` module (`rust/kvm_msr_rs.rs`), so modules refer to each
//! other only through `super::`, and the lints below hold there too.

#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod desc;
pub mod errno;
pub mod exit;
pub mod filter;
pub mod one_reg;
pub mod uapi;

pub use desc::{FilterDesc, RangeDesc};
pub use errno::Errno;
pub use exit::{
    check_user_space_msr_cap, complete, msr_exit, msr_exit_reason, Completion, CompletionKind,
    MsrDir, MsrExit, MsrRun, RegWrite,
};
pub use filter::{
    bitmap_size, build, check_header, check_range, is_x2apic_msr, msr_allowed, Filter, FilterAlloc,
    MsrAccess, Range, Shape,
};
pub use one_reg::{one_reg, one_reg_msr, reg_list, reg_list_ids, OneReg, OneRegEnv};
