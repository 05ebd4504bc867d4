// SPDX-License-Identifier: GPL-2.0

//! A VM as the MSR filter sees it: `struct kvm_msr_filter_vm`.

use kernel::{
    bindings,
    sync::{
        atomic::{Atomic, Relaxed},
        srcu::SrcuPtr,
        Mutex, Srcu,
    },
    types::Opaque,
};

use crate::filter::Node;

/// A VM's `struct kvm_msr_filter_vm`.
///
/// # Invariants
///
/// The wrapped struct belongs to a live VM that latched this module: KVM set its `srcu`, `lock`,
/// `user_space_msr_mask` and `stats` pointers to the VM's initialised fields before, and they
/// stay valid until the module's `destroy` returns. Its `filter` slot holds null or a
/// `KBox<Node>` pointer published under `srcu`; `pending`, `*user_space_msr_mask` and `*stats`
/// are accessed atomically only.
#[repr(transparent)]
pub(crate) struct Vm(Opaque<bindings::kvm_msr_filter_vm>);

impl Vm {
    /// Creates a reference to the VM behind `ptr`.
    ///
    /// # Safety
    ///
    /// `ptr` must be the `kvm_msr_filter_vm` of a live VM that uses this module, passed by KVM to
    /// one of its ops, and valid for `'a`.
    pub(crate) unsafe fn from_raw<'a>(ptr: *mut bindings::kvm_msr_filter_vm) -> &'a Self {
        // SAFETY: `Vm` is a transparent wrapper of the struct; the caller guarantees that it is
        // valid for `'a`, and KVM set it up as the type invariants require.
        unsafe { &*ptr.cast() }
    }

    fn raw(&self) -> *mut bindings::kvm_msr_filter_vm {
        self.0.get()
    }

    /// The VM's `kvm->srcu`.
    pub(crate) fn srcu(&self) -> &Srcu {
        // SAFETY: by the type invariants `srcu` is constant and points to the VM's initialised
        // `kvm->srcu`, valid as long as `self`.
        unsafe { Srcu::from_raw((*self.raw()).srcu) }
    }

    /// Asks SRCU to expedite the VM's grace period in progress, without waiting for it.
    ///
    /// The replaced filters queued with `call_srcu()` are then freed within an expedited grace
    /// period rather than a normal one, so that fewer of them are pending at a time.
    pub(crate) fn expedite_grace_period(&self) {
        // SAFETY: by the type invariants `srcu` points to the VM's initialised `kvm->srcu`;
        // `srcu_expedite_current()` only queues work and may be called from process context.
        unsafe { bindings::srcu_expedite_current((*self.raw()).srcu) }
    }

    /// The VM's `kvm->lock`.
    pub(crate) fn lock(&self) -> &Mutex<()> {
        // SAFETY: as in `srcu`, for `kvm->lock`.
        unsafe { Mutex::from_raw((*self.raw()).lock) }
    }

    /// The VM's filter pointer, protected by `kvm->srcu`.
    pub(crate) fn filter(&self) -> SrcuPtr<'_, Node> {
        // SAFETY: by the type invariants the slot only ever holds null or a `KBox<Node>` pointer
        // published under `srcu`; this module reads it inside `srcu` read sections, frees a
        // replaced node only after a grace period (`Retired`) and waits for the deferred frees
        // before KVM cleans up `kvm->srcu` (`filter::destroy`).
        unsafe {
            SrcuPtr::from_raw(
                core::ptr::addr_of_mut!((*self.raw()).filter).cast(),
                self.srcu(),
            )
        }
    }

    /// The slab bytes of this VM's replaced filters still waiting for their grace period.
    pub(crate) fn pending(&self) -> &Atomic<u32> {
        // SAFETY: by the type invariants `pending` is valid as long as `self` and only accessed
        // atomically.
        unsafe { Atomic::from_ptr(core::ptr::addr_of_mut!((*self.raw()).pending)) }
    }

    /// The VM's `KVM_CAP_X86_USER_SPACE_MSR` mask.
    pub(crate) fn user_space_msr_mask(&self) -> &Atomic<u32> {
        // SAFETY: by the type invariants the mask is valid as long as `self` and only accessed
        // atomically (vCPUs read it without a lock).
        unsafe { Atomic::from_ptr((*self.raw()).user_space_msr_mask) }
    }

    /// Adds one to the statistic `stat`.
    pub(crate) fn count(&self, stat: Stat) {
        self.stat(stat).add(1, Relaxed);
    }

    /// The value of the statistic `stat`.
    pub(crate) fn stat_value(&self, stat: Stat) -> u64 {
        self.stat(stat).load(Relaxed)
    }

    fn stat(&self, stat: Stat) -> &Atomic<u64> {
        // SAFETY: by the type invariants `stats` points to the VM's live counters.
        let s = unsafe { (*self.raw()).stats };
        // SAFETY: as above; each field is a `u64` only accessed atomically (KVM's stats reader
        // reads whole `u64`s).
        unsafe {
            Atomic::from_ptr(match stat {
                Stat::ExitsInval => core::ptr::addr_of_mut!((*s).exits_inval),
                Stat::ExitsUnknown => core::ptr::addr_of_mut!((*s).exits_unknown),
                Stat::ExitsFilter => core::ptr::addr_of_mut!((*s).exits_filter),
                Stat::DeniedReads => core::ptr::addr_of_mut!((*s).denied_reads),
                Stat::DeniedWrites => core::ptr::addr_of_mut!((*s).denied_writes),
                Stat::Updates => core::ptr::addr_of_mut!((*s).updates),
            })
        }
    }
}

/// The MSR filter statistics of `struct kvm_msr_filter_stats`.
#[derive(Clone, Copy)]
pub(crate) enum Stat {
    /// `exits_inval`: exits with `KVM_MSR_EXIT_REASON_INVAL`.
    ExitsInval,
    /// `exits_unknown`: exits with `KVM_MSR_EXIT_REASON_UNKNOWN`.
    ExitsUnknown,
    /// `exits_filter`: exits with `KVM_MSR_EXIT_REASON_FILTER`.
    ExitsFilter,
    /// `denied_reads`: guest reads denied by the filter.
    DeniedReads,
    /// `denied_writes`: guest writes denied by the filter.
    DeniedWrites,
    /// `updates`: successful `KVM_X86_SET_MSR_FILTER` calls.
    Updates,
}
