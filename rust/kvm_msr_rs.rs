// SPDX-License-Identifier: GPL-2.0

//! KVM x86 userspace MSR filtering and deflection, in Rust: the `kvm_msr_rs` module.
//!
//! Loaded, the module registers a `struct kvm_msr_filter_ops` with KVM. Every VM created while
//! it is registered latches it, holds a reference on the module until the VM is destroyed, and
//! gets from it:
//!
//! - `kvm_msr_allowed()`: the lookup, under SRCU read protection of `kvm->srcu`, which the MSR
//!   exit handlers and the emulator already hold ([`filter`]);
//! - `KVM_X86_SET_MSR_FILTER` and its compat form: copy, validation and build, publication
//!   under `kvm->lock`, grace period outside it, free ([`filter`]);
//! - `KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR)`, the exit to userspace and its
//!   `complete_userspace_io` completions ([`vcpu`]);
//! - the MSR uAPI of x86 `KVM_{GET,SET}_ONE_REG` and `KVM_GET_REG_LIST`: the register ids,
//!   with the MSR access left to KVM, host-initiated and unfiltered ([`one_reg`]).
//!
//! VMs created while it is not loaded use KVM's own C implementation. What is decided, rather
//! than carried out, lives in the `no_std` core [`msr_filter`], which is also a host crate with
//! its own tests (`rust/msr_filter/Cargo.toml`).
//!
//! C header: [`arch/x86/include/asm/kvm_msr_filter_ops.h`](srctree/arch/x86/include/asm/kvm_msr_filter_ops.h)

use kernel::{bindings, error::to_result, prelude::*, types::Opaque, ThisModule};

mod filter;
mod one_reg;
mod vcpu;
mod vm;

/// The `no_std` core: the same files as the host crate `rust/msr_filter`.
#[forbid(unsafe_code)]
#[deny(missing_docs)]
pub mod msr_filter {
    pub mod desc;
    pub mod errno;
    pub mod exit;
    pub mod filter;
    pub mod one_reg;
    pub mod uapi;
}

module! {
    type: KvmMsrRs,
    name: "kvm_msr_rs",
    authors: ["kvm-msr-rs developers"],
    description: "KVM x86 userspace MSR filtering and deflection in Rust",
    license: "GPL",
}

/// This module's `struct kvm_msr_filter_ops`, registered with KVM.
///
/// # Invariants
///
/// `ops` is initialised and registered with KVM (`kvm_msr_filter_register()`) from the end of
/// [`Registration::new`] until [`PinnedDrop::drop`] unregisters it; it is pinned, so KVM's
/// pointer to it stays valid in between.
#[pin_data(PinnedDrop)]
struct Registration {
    #[pin]
    ops: Opaque<bindings::kvm_msr_filter_ops>,
}

impl Registration {
    /// Registers the ops table of `module`.
    fn new(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            ops <- Opaque::try_ffi_init(move |slot: *mut bindings::kvm_msr_filter_ops| {
                let ops = bindings::kvm_msr_filter_ops {
                    owner: module.as_ptr(),
                    msr_allowed: Some(filter::msr_allowed),
                    msr_allowed_held: Some(filter::msr_allowed_held),
                    set_filter: Some(filter::set_filter),
                    enable_user_space_msr: Some(vcpu::enable_user_space_msr),
                    msr_user_space: Some(vcpu::msr_user_space),
                    complete: Some(vcpu::complete),
                    destroy: Some(filter::destroy),
                    show: Some(filter::show),
                    one_reg: Some(one_reg::one_reg),
                    reg_list: Some(one_reg::reg_list),
                };
                // SAFETY: `slot` is valid for writes (`try_ffi_init`'s guarantee).
                unsafe { slot.write(ops) };
                // SAFETY: `slot` is initialised and pinned: it stays at this address until
                // `drop` unregisters it.
                to_result(unsafe { bindings::kvm_msr_filter_register(slot) })
            }),
        })
    }
}

#[pinned_drop]
impl PinnedDrop for Registration {
    fn drop(self: Pin<&mut Self>) {
        // SAFETY: by the type invariants `ops` is registered. The module is being unloaded, so
        // no VM holds a reference on it: none uses `ops` any more.
        unsafe { bindings::kvm_msr_filter_unregister(self.ops.get()) };
    }
}

// SAFETY: KVM only reads the ops table, from any thread.
unsafe impl Sync for Registration {}

// SAFETY: the ops table holds function pointers and the module pointer only.
unsafe impl Send for Registration {}

/// The module's state: its registration with KVM.
#[pin_data]
struct KvmMsrRs {
    #[pin]
    reg: Registration,
}

impl kernel::InPlaceModule for KvmMsrRs {
    fn init(module: &'static ThisModule) -> impl PinInit<Self, Error> {
        try_pin_init!(Self {
            reg <- Registration::new(module),
        })
    }
}
