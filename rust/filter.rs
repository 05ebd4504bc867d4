// SPDX-License-Identifier: GPL-2.0

//! The VM's filter: `kvm_msr_allowed()`, `KVM_X86_SET_MSR_FILTER`, its free and its debugfs
//! file.

use core::{
    ffi::{c_int, c_void},
    ops::{Deref, DerefMut},
    pin::Pin,
};
use kernel::{
    alloc::{flags::GFP_KERNEL_ACCOUNT, AllocError, KBox},
    bindings,
    prelude::*,
    seq_file::SeqFile,
    seq_print,
    sync::{
        atomic::{Acquire, Atomic, Relaxed, Release},
        srcu::SrcuFree,
    },
    types::Opaque,
    uaccess::{UserPtr, UserSlice},
};

use crate::{
    msr_filter::{
        desc::FilterDesc,
        errno::Errno,
        filter::{build, is_x2apic_msr, Filter, FilterAlloc, MsrAccess, Shape},
        uapi::{COMPAT_FILTER_SIZE, NATIVE_FILTER_SIZE},
    },
    vm::{Stat, Vm},
};

/// The filter of a VM: bitmaps and interval table in boxed byte slices (16 bytes each in the
/// filter), allocated to their exact size.
type VmFilter = Filter<KBox<[u8]>>;

/// The largest filter in slab bytes: the node (kmalloc-512), 16 bitmaps of
/// `KVM_MSR_FILTER_MAX_BITMAP_SIZE` (0x600) bytes in kmalloc-2048 and a 256-byte table.
const MAX_FILTER_BYTES: u32 = 512 + 16 * 2048 + 256;

/// How many bytes of replaced filters of a VM may wait for their SRCU grace period at once.
///
/// Eight of the largest filters (about 262 KiB), or many more small ones: as long as the
/// replaced filters fit, `KVM_X86_SET_MSR_FILTER` returns without waiting; one that does not
/// fit waits for an (expedited) grace period, as upstream does on every call. All of it is
/// charged to the VM's memory cgroup.
const MAX_PENDING_BYTES: u32 = 8 * MAX_FILTER_BYTES;

/// Claims `bytes` of the VM's `MAX_PENDING_BYTES` for a deferred free, if they fit.
fn claim_deferral(pending: &Atomic<u32>, bytes: u32) -> bool {
    let mut cur = pending.load(Relaxed);
    // `cur <= MAX_PENDING_BYTES` and `bytes <= MAX_FILTER_BYTES`: no overflow.
    while cur.saturating_add(bytes) <= MAX_PENDING_BYTES {
        match pending.cmpxchg(cur, cur.saturating_add(bytes), Acquire) {
            Ok(_) => return true,
            Err(now) => cur = now,
        }
    }
    false
}

/// The slab bytes `node` occupies: the node, its bitmaps and its table.
fn node_bytes(node: &Node) -> usize {
    let f = &node.filter;
    let p: *const Node = node;
    // SAFETY: `node`, every bitmap and the table are live allocations of the slab allocator.
    let mut bytes = unsafe { bindings::ksize(p.cast()) };
    for b in Iterator::chain(f.ranges().map(|r| r.bitmap()), f.table()) {
        // SAFETY: as above.
        bytes = bytes.saturating_add(unsafe { bindings::ksize(b.as_ptr().cast()) });
    }
    bytes
}

/// The object behind the VM's filter pointer: a filter and what freeing it after an SRCU grace
/// period needs.
///
/// # Invariants
///
/// `pending` points to the VM's `kvm_msr_filter_vm.pending`, which outlives the node: the VM
/// waits for SRCU callbacks (`srcu_barrier()`) before it is freed. `deferred` is nonzero only
/// on replaced nodes that are being freed by an SRCU callback: the bytes each claimed in
/// `pending`. `waits` counts the VM's `KVM_X86_SET_MSR_FILTER` calls that waited for a grace
/// period up to this node's installation: set before the node is published, from its
/// predecessor's, under `kvm->lock`.
pub(crate) struct Node {
    head: Opaque<bindings::callback_head>,
    pending: *const Atomic<u32>,
    deferred: Atomic<u32>,
    waits: u64,
    filter: VmFilter,
}

// SAFETY: the filter is plain data; `pending` is only used for an atomic subtraction, which is
// fine from any thread (the SRCU callback runs in softirq context).
unsafe impl Send for Node {}

// SAFETY: vCPUs on several CPUs read the installed node at once, through `&Node`: the filter and
// `waits` are immutable once published, `deferred` and the counter behind `pending` are atomics, and `head`
// is only touched by `call_srcu()` after the node has been unpublished.
unsafe impl Sync for Node {}

impl Drop for Node {
    fn drop(&mut self) {
        // A deferred node is dropped by its SRCU callback: its bytes no longer wait.
        let bytes = self.deferred.load(Relaxed);
        if bytes != 0 {
            // SAFETY: by the type invariants `pending` is valid.
            unsafe { &*self.pending }.fetch_sub(bytes, Release);
        }
    }
}

// SAFETY: `srcu_head` returns the node's own `head`, used only for the `call_srcu()` that frees
// the node, and `from_srcu_head` is its exact inverse.
unsafe impl SrcuFree for Node {
    fn srcu_head(this: *mut Self) -> *mut bindings::callback_head {
        // SAFETY: `this` points to a live node (caller's guarantee); no reference is created.
        Opaque::cast_into(unsafe { core::ptr::addr_of!((*this).head) })
    }

    unsafe fn from_srcu_head(head: *mut bindings::callback_head) -> *mut Self {
        // SAFETY: `head` is the `head` field of a `Node` (the caller's guarantee).
        unsafe { kernel::container_of!(Opaque::cast_from(head).cast_mut(), Node, head) }
    }
}

/// The boxed node the core builds into; it dereferences to the filter.
struct NodeBox(KBox<Node>);

impl Deref for NodeBox {
    type Target = VmFilter;

    fn deref(&self) -> &VmFilter {
        &self.0.filter
    }
}

impl DerefMut for NodeBox {
    fn deref_mut(&mut self) -> &mut VmFilter {
        &mut self.0.filter
    }
}

/// Converts an error of the core into a kernel [`Error`].
pub(crate) fn to_error(e: Errno) -> Error {
    match e {
        Errno::Inval => EINVAL,
        Errno::Fault => EFAULT,
        Errno::NoMem => ENOMEM,
        Errno::TooBig => E2BIG,
    }
}

/// Allocates filter objects and bitmaps for the core, charged to the VM's memory cgroup.
///
/// # Invariants
///
/// `pending` points to the VM's `kvm_msr_filter_vm.pending`.
struct AccountedAlloc {
    pending: *const Atomic<u32>,
}

impl FilterAlloc for AccountedAlloc {
    type Bitmap = KBox<[u8]>;
    type Boxed = NodeBox;

    fn alloc_filter(&mut self, filter: VmFilter) -> Result<NodeBox, Errno> {
        let node = Node {
            head: Opaque::uninit(),
            // INVARIANT: `self.pending` is the VM's counter, which outlives every node.
            pending: self.pending,
            deferred: Atomic::new(0),
            waits: 0,
            filter,
        };
        KBox::new(node, GFP_KERNEL_ACCOUNT)
            .map(NodeBox)
            .map_err(|_| Errno::NoMem)
    }

    fn alloc_bitmap(&mut self, len: usize) -> Result<KBox<[u8]>, Errno> {
        KBox::pin_slice(|_| Ok::<u8, AllocError>(0), len, GFP_KERNEL_ACCOUNT)
            .map(Pin::into_inner)
            .map_err(|_| Errno::NoMem)
    }
}

// The node fits the slab object C's `struct kvm_x86_msr_filter` (392 bytes) takes, kmalloc-512:
// with the interval table (at most 256 bytes, only for filters with more than `SCAN_MAX` ranges
// of an access type) and bitmaps of C's sizes, a filter takes at most 256 bytes more than C's.
const _: () = assert!(core::mem::size_of::<Node>() <= 512);

/// Copies `buf.len()` bytes from the user address `addr`, like `memdup_user()` does.
fn copy_bitmap(addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let addr = usize::try_from(addr).map_err(|_| Errno::Fault)?;
    UserSlice::new(UserPtr::from_addr(addr), buf.len())
        .reader()
        .read_slice(buf)
        .map_err(|_| Errno::Fault)
}

/// Reads the userspace `struct kvm_msr_filter` (or its compat layout) at `argp`.
fn read_desc(argp: *mut c_void, compat: bool) -> Result<FilterDesc> {
    let ptr = UserPtr::from_ptr(argp);
    if compat {
        let mut raw = [0u8; COMPAT_FILTER_SIZE];
        UserSlice::new(ptr, raw.len())
            .reader()
            .read_slice(&mut raw)?;
        Ok(FilterDesc::from_compat(&raw))
    } else {
        let mut raw = [0u8; NATIVE_FILTER_SIZE];
        UserSlice::new(ptr, raw.len())
            .reader()
            .read_slice(&mut raw)?;
        Ok(FilterDesc::from_native(&raw))
    }
}

/// `kvm_msr_allowed()`: may the guest access MSR `index` with access `ty` (read 1, write 2)?
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a live VM that uses this module.
pub(crate) unsafe extern "C" fn msr_allowed(
    vm: *mut bindings::kvm_msr_filter_vm,
    index: u32,
    ty: u32,
) -> bool {
    // x2APIC MSRs cannot be filtered; no need to enter the read section.
    if is_x2apic_msr(index) {
        return true;
    }
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    vm.filter().read(|n| lookup(n, index, ty))
}

/// [`msr_allowed`] for a caller inside a read-side critical section of `kvm->srcu` (KVM's MSR
/// exit handlers and emulator, under `KVM_RUN`): no nested critical section is entered.
///
/// # Safety
///
/// As for [`msr_allowed`]; the caller is inside a read-side critical section of the VM's
/// `kvm->srcu` for the whole call.
pub(crate) unsafe extern "C" fn msr_allowed_held(
    vm: *mut bindings::kvm_msr_filter_vm,
    index: u32,
    ty: u32,
) -> bool {
    if is_x2apic_msr(index) {
        return true;
    }
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    // SAFETY: the caller is inside a read-side critical section of `kvm->srcu`, which protects
    // the filter pointer, until this returns.
    unsafe { vm.filter().read_held(|n| lookup(n, index, ty)) }
}

/// The lookup in the installed filter `n`: without one, every MSR is allowed.
#[inline(always)]
fn lookup(n: Option<&Node>, index: u32, ty: u32) -> bool {
    match n {
        Some(n) => n.filter.allowed_raw(index, ty),
        None => true,
    }
}

/// `KVM_X86_SET_MSR_FILTER` (or, with `compat`, its 32-bit form) with the argument at `argp`.
///
/// Builds the new filter outside any lock and publishes it under `kvm->lock`. The old filter is
/// freed by an SRCU callback after its grace period, so the ioctl does not wait for one; to
/// bound memory, at most `MAX_PENDING_BYTES` of replaced filters per VM wait for their grace
/// period: a replaced filter that does not fit is freed after an expedited grace period
/// (outside `kvm->lock`), as C frees every replaced filter after a grace period.
/// On any error the installed filter is left untouched. Returns 0 or a negative errno; KVM
/// requests the intercept recalculation on success.
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a live VM that uses this module; `argp` is an
/// untrusted user pointer.
pub(crate) unsafe extern "C" fn set_filter(
    vm: *mut bindings::kvm_msr_filter_vm,
    argp: *mut c_void,
    compat: bool,
) -> c_int {
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    let desc = match read_desc(argp, compat) {
        Ok(d) => d,
        Err(e) => return e.to_errno(),
    };
    let pending = vm.pending();
    let mut alloc = AccountedAlloc { pending };
    let mut new = match build(&desc, &mut alloc, copy_bitmap) {
        Ok(f) => f.0,
        Err(e) => return to_error(e).to_errno(),
    };
    let filter = vm.filter();
    let (old, deferrable) = {
        let _guard = vm.lock().lock();
        // The installed node, stable under `kvm->lock`. Its replacement is freed by an SRCU
        // callback without waiting, unless it does not fit in `MAX_PENDING_BYTES` with those
        // already waiting: then it is freed after a grace period, as C does, so memory stays
        // bounded, and the new node counts one more wait than the VM had.
        let (waits, deferrable) = filter.read(|cur| match cur {
            None => (0, true),
            Some(n) => {
                let bytes = u32::try_from(node_bytes(n)).unwrap_or(u32::MAX);
                let claimed = claim_deferral(pending, bytes);
                if claimed {
                    n.deferred.store(bytes, Relaxed);
                }
                (n.waits.saturating_add(u64::from(!claimed)), claimed)
            }
        });
        new.waits = waits;
        let old = filter.replace(Some(new));
        vm.count(Stat::Updates);
        (old, deferrable)
    };
    // Outside `kvm->lock`: never wait for SRCU with it held, vCPUs may take it inside their
    // read-side critical sections (Documentation/virt/kvm/locking.rst). The grace period the
    // callback waits for is expedited, so that the replaced filters do not pile up behind a
    // normal one. Expedited in the wait too: with callbacks queued SRCU never looks idle, so a
    // plain `synchronize_srcu()` would wait for a full normal grace period where C's usually
    // expedites on its own.
    if deferrable {
        if old.get().is_some() {
            old.defer();
            vm.expedite_grace_period();
        }
    } else {
        old.synchronize_expedited();
    }
    0
}

/// Frees the VM's filter at VM destruction, after its vCPUs are gone.
///
/// Returns only after every SRCU callback this module queued for the VM has run, so that KVM
/// may then drop its reference on the module.
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a VM being destroyed that uses this module, whose
/// vCPUs have all been freed, so that no reader can exist, and whose `kvm->srcu` is cleaned up
/// only after this returns.
pub(crate) unsafe extern "C" fn destroy(vm: *mut bindings::kvm_msr_filter_vm) {
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a VM that is still valid and uses this
    // module.
    let vm = unsafe { Vm::from_raw(vm) };
    let filter = vm.filter();
    // Wait for the replaced filters still waiting for their grace period: their callbacks must
    // run before `kvm->srcu` is cleaned up and before this module may be unloaded.
    filter.srcu().barrier();
    // SAFETY: no reader exists any more (the caller's guarantee).
    drop(unsafe { filter.take() });
}

/// Shows the VM's filter in its debugfs file `msr_filter`.
///
/// # Safety
///
/// `vm` must be the `kvm_msr_filter_vm` of a live VM that uses this module, and `m` the
/// `seq_file` being shown.
pub(crate) unsafe extern "C" fn show(
    vm: *mut bindings::kvm_msr_filter_vm,
    m: *mut bindings::seq_file,
) -> c_int {
    // SAFETY: KVM passes the `kvm_msr_filter_vm` of a live VM using this module.
    let vm = unsafe { Vm::from_raw(vm) };
    // SAFETY: KVM passes the `seq_file` being shown, used only by this thread.
    let m = unsafe { SeqFile::from_raw(m) };
    seq_print!(m, "impl: rust\n");
    seq_print!(m, "generation: {}\n", vm.stat_value(Stat::Updates));
    seq_print!(m, "pending: {}\n", vm.pending().load(Relaxed));
    vm.filter().read(|n| {
        let Some(n) = n else {
            seq_print!(m, "default: none\n");
            return;
        };
        let f = &n.filter;
        let bytes = node_bytes(n);
        let default = if f.default_allow() { "allow" } else { "deny" };
        seq_print!(m, "default: {}\n", default);
        seq_print!(m, "waits: {}\n", n.waits);
        seq_print!(m, "bytes: {}\n", bytes);
        let shape = |access| match f.lookup_shape(access) {
            Shape::Scan(n) => ("scan", n),
            Shape::Search(n) => ("search", n),
            Shape::Bucket(n) => ("bucket", n),
        };
        let (read, write) = (shape(MsrAccess::Read), shape(MsrAccess::Write));
        seq_print!(
            m,
            "lookup: read={}:{} write={}:{}\n",
            read.0,
            read.1,
            write.0,
            write.1
        );
        for r in f.ranges() {
            seq_print!(
                m,
                "range: flags={:#x} base={:#x} nmsrs={}\n",
                r.flags(),
                r.base(),
                r.nmsrs()
            );
        }
    });
    0
}
