// SPDX-License-Identifier: GPL-2.0-only
/*
 * MSR filtering on Intel VMX paths (rule ids of abi-rules.md section 1.4):
 *
 * - E5/F9: an L2 RDMSR/WRMSR that L1 passes through but the filter denies
 *   exits to userspace while the vCPU is in guest mode; error=1 injects
 *   #GP into L2, error=0 completes the access.  An MSR that L1 intercepts
 *   goes to L1, never to userspace.
 * - G3/E10: the nested bitmap merge follows filter changes.
 * - E4: the VMCS MSR lists are filtered but never exit to userspace: a
 *   denied VM-entry MSR-load entry fails the VM-entry with MSR_LOAD_FAIL,
 *   a denied VM-exit MSR-store or MSR-load entry is a VM-abort (a triple
 *   fault of L1: KVM_EXIT_SHUTDOWN).
 * - E11: a WRMSR to IA32_TSC_DEADLINE with the in-kernel LAPIC in
 *   TSC-deadline mode; on VMX the write is taken by the WRMSR fastpath.
 *
 * The nested tests skip unless KVM exposes VMX (nested SVM is covered by
 * msr_filter_nested_test).  The TSC_DEADLINE tests run on any host with an
 * in-kernel LAPIC: the semantics are the same on SVM, where they must pass
 * too.
 */
#include <stdlib.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "vmx.h"
#include "msr_filter_util.h"

#define VAL_USER	0x1111222233334444ull
#define VAL_USER2	0x0000000000000063ull
#define VAL_WR		0x00007fff00002222ull
#define VAL_L2		0x00007fff00003333ull
#define VAL_LOAD_A	0x00007fff0000aaa0ull
#define VAL_LOAD_B	0x0000000000047700ull
#define VAL_STORE	0x0000000000043300ull
#define VAL_HOSTLOAD	0x0000000000041100ull

#define NO_NVMX	"needs nested VMX (KVM does not expose VMX here; " \
		"nested SVM: msr_filter_nested_test)"

/* Intel SDM 25.6.9: read bitmap low/high at 0/1024, write at 2048/3072. */
static void msr_bitmap_set(void *bitmap, u32 msr, bool write, bool intercept)
{
	u32 base = write ? 2048 : 0;
	u8 *b;

	if (msr >= 0xc0000000u) {
		base += 1024;
		msr -= 0xc0000000u;
	}
	b = (u8 *)bitmap + base + msr / 8;
	if (intercept)
		*b |= 1u << (msr % 8);
	else
		*b &= ~(1u << (msr % 8));
}

/*
 * L1: VMXON (the first time), a fresh VMCS for @l2 with the library's MSR
 * bitmap, which is all zeroes: every MSR passes through.
 */
static void l1_prepare(struct vmx_pages *vmx, void *l2, bool vmxon)
{
	if (vmxon)
		GUEST_ASSERT(prepare_for_vmx_operation(vmx));
	GUEST_ASSERT(load_vmcs(vmx));
	prepare_vmcs(vmx, l2);
	GUEST_ASSERT(!vmwrite(CPU_BASED_VM_EXEC_CONTROL,
			      vmreadz(CPU_BASED_VM_EXEC_CONTROL) |
			      CPU_BASED_USE_MSR_BITMAPS));
}

static void l1_skip_insn(void)
{
	vmwrite(GUEST_RIP, vmreadz(GUEST_RIP) +
		vmreadz(VM_EXIT_INSTRUCTION_LEN));
}

static void l1_assert_exit(u32 reason)
{
	u32 got = vmreadz(VM_EXIT_REASON);

	__GUEST_ASSERT(got == reason, "L2 exit reason 0x%x, want 0x%x",
		       got, reason);
}

static bool in_guest_mode(struct kvm_vcpu *vcpu)
{
	return vcpu->run->flags & KVM_RUN_X86_GUEST_MODE;
}

static struct kvm_vm *vmx_vm(struct kvm_vcpu **vcpu, void *l1_code,
			     struct vmx_pages **vmx, gva_t *extra_gva)
{
	struct kvm_vm *vm;
	gva_t vmx_gva;

	vm = vm_create_with_one_vcpu(vcpu, l1_code);
	*vmx = vcpu_alloc_vmx(vm, &vmx_gva);
	if (extra_gva) {
		*extra_gva = vm_alloc_page(vm);
		memset(addr_gva2hva(vm, *extra_gva), 0, getpagesize());
		vcpu_args_set(*vcpu, 3, vmx_gva, *extra_gva,
			      addr_gva2gpa(vm, *extra_gva));
	} else {
		vcpu_args_set(*vcpu, 1, vmx_gva);
	}
	mf_install_gp_handler(vm);
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	return vm;
}

/* Expect an MSR exit from L2 (KVM_RUN_X86_GUEST_MODE set). */
static struct kvm_run *expect_l2_exit(struct kvm_vcpu *vcpu, u32 exit, u32 msr)
{
	struct kvm_run *run;

	run = mf_expect_msr_exit(vcpu, exit, msr, KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(in_guest_mode(vcpu),
		    "MSR 0x%x exit not taken in guest mode (flags 0x%x)",
		    msr, run->flags);
	return run;
}

/* Expect a ucall SYNC from L2; returns its stage, *arg gets arg1. */
static u64 expect_l2_sync(struct kvm_vcpu *vcpu, u64 *arg)
{
	struct ucall uc;

	mf_run(vcpu);
	TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_IO,
		    "want the L2 ucall, got exit %s (MSR 0x%x)",
		    exit_reason_str(vcpu->run->exit_reason),
		    vcpu->run->msr.index);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "want UCALL_SYNC, got %lu", uc.cmd);
	TEST_ASSERT(in_guest_mode(vcpu), "ucall stage %lu not from L2",
		    uc.args[1]);
	if (arg)
		*arg = uc.args[2];
	return uc.args[1];
}

/*
 * E5/F9: the filter denies reads and writes of KERNEL_GS_BASE (an MSR the
 * nested bitmap merge takes from vmcs01, nested.c:819) and SYSENTER_CS
 * (not merged: L0 always intercepts it for L2 and, seeing L1's bitmap pass
 * it through, emulates it, nested.c nested_vmx_exit_handled_msr()), and
 * reads of SYSCALL_MASK, which L1 intercepts.
 */
static void l2_code_filter_exit(void)
{
	u64 v = 0;

	GUEST_ASSERT_EQ(rdmsr_safe(MSR_KERNEL_GS_BASE, &v), 0);
	GUEST_ASSERT_EQ(v, VAL_USER);
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_KERNEL_GS_BASE, &v), GP_VECTOR);
	GUEST_ASSERT_EQ(wrmsr_safe(MSR_KERNEL_GS_BASE, VAL_WR), 0);
	GUEST_ASSERT_EQ(wrmsr_safe(MSR_KERNEL_GS_BASE, VAL_WR), GP_VECTOR);
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_IA32_SYSENTER_CS, &v), 0);
	GUEST_ASSERT_EQ(v, VAL_USER2);
	GUEST_ASSERT_EQ(wrmsr_safe(MSR_IA32_SYSENTER_CS, 0x10), GP_VECTOR);
	/* Intercepted by L1: L1 sees the RDMSR exit. */
	(void)rdmsr_safe(MSR_SYSCALL_MASK, &v);
	GUEST_FAIL("L1 did not intercept RDMSR SYSCALL_MASK");
}

static void l1_filter_exit(struct vmx_pages *vmx)
{
	l1_prepare(vmx, l2_code_filter_exit, true);
	msr_bitmap_set(vmx->msr, MSR_SYSCALL_MASK, false, true);
	/* The filter goes in now: L1's VMCS setup reads SYSENTER_CS. */
	GUEST_SYNC(0);
	GUEST_ASSERT(!vmlaunch());
	l1_assert_exit(EXIT_REASON_MSR_READ);
	/* L1's own access to a denied MSR exits to userspace (from L1). */
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSCALL_MASK), 0x5a5a);
	GUEST_DONE();
}

TEST(l2_filter_exit)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	struct vmx_pages *vmx;
	struct kvm_vcpu *vcpu;
	struct kvm_run *run;
	struct kvm_vm *vm;

	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, NO_NVMX);
	vm = vmx_vm(&vcpu, l1_filter_exit, &vmx, NULL);
	run = vcpu->run;
	TEST_ASSERT_EQ(mf_expect_sync(vcpu), 0);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 MSR_KERNEL_GS_BASE, 1, &mf_zero_bits);
	mf_range(&f, 1, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 MSR_IA32_SYSENTER_CS, 1, &mf_zero_bits);
	mf_range(&f, 2, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);

	run = expect_l2_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_KERNEL_GS_BASE);
	run->msr.data = VAL_USER;
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_KERNEL_GS_BASE);
	run->msr.error = 1;
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_KERNEL_GS_BASE);
	TEST_ASSERT_EQ(run->msr.data, VAL_WR);
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_KERNEL_GS_BASE);
	run->msr.error = 1;
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_IA32_SYSENTER_CS);
	run->msr.data = VAL_USER2;
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_IA32_SYSENTER_CS);
	TEST_ASSERT_EQ(run->msr.data, 0x10);
	run->msr.error = 1;

	/* SYSCALL_MASK: L1 takes L2's exit; userspace sees only L1's read. */
	run = mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_SYSCALL_MASK,
				 KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(!in_guest_mode(vcpu), "L1's own RDMSR reported in L2");
	run->msr.data = 0x5a5a;
	mf_expect_done(vcpu);
	kvm_vm_free(vm);
}

/*
 * G3/E10: filter changes while L2 runs.  L0 handles SYSENTER_CS for L2
 * itself and so applies a change at once; KERNEL_GS_BASE passes through
 * the merged bitmap, which vmcs01's change marks stale (vmx.c:4125,
 * force_msr_bitmap_recalc) and the next nested VM-entry rebuilds
 * (nested.c:3524, nested_get_vmcs12_pages()).  Until that entry the old
 * merge stands: 7.3 applies a deny to a passed-through merged MSR only
 * when L1 next enters L2.
 */
static void l2_code_filter_change(void)
{
	u64 v = 0;

	/* Stage 1: all allowed, L1 passes KERNEL_GS_BASE through. */
	GUEST_ASSERT_EQ(wrmsr_safe(MSR_KERNEL_GS_BASE, VAL_L2), 0);
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_IA32_SYSENTER_CS, &v), 0);
	GUEST_SYNC_ARGS(1, rdmsr(MSR_KERNEL_GS_BASE), 0, 0, 0);

	/* Denied now (allow -> deny).  L0's own intercept: exits at once. */
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_IA32_SYSENTER_CS, &v), 0);
	GUEST_ASSERT_EQ(v, VAL_USER2);
	/* The merged bitmap is not rebuilt before the next VM-entry. */
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_KERNEL_GS_BASE, &v), 0);
	GUEST_SYNC_ARGS(2, v, 0, 0, 0);
	vmcall();
	/* After L1's VMRESUME the merge has the deny. */
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_KERNEL_GS_BASE, &v), 0);
	GUEST_ASSERT_EQ(v, VAL_USER);
	GUEST_ASSERT_EQ(wrmsr_safe(MSR_KERNEL_GS_BASE, VAL_WR), GP_VECTOR);
	GUEST_SYNC(3);

	/* Allowed again (deny -> allow): no exit, L2's own value. */
	GUEST_ASSERT_EQ(rdmsr_safe(MSR_IA32_SYSENTER_CS, &v), 0);
	GUEST_SYNC_ARGS(4, rdmsr(MSR_KERNEL_GS_BASE), 0, 0, 0);
	vmcall();
	GUEST_SYNC_ARGS(5, rdmsr(MSR_KERNEL_GS_BASE), 0, 0, 0);
	vmcall();
}

static void l1_filter_change(struct vmx_pages *vmx)
{
	int i;

	l1_prepare(vmx, l2_code_filter_change, true);
	GUEST_ASSERT(!vmlaunch());
	for (i = 0; i < 2; i++) {
		l1_assert_exit(EXIT_REASON_VMCALL);
		l1_skip_insn();
		GUEST_ASSERT(!vmresume());
	}
	l1_assert_exit(EXIT_REASON_VMCALL);
	GUEST_DONE();
}

TEST(l2_filter_change)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	struct vmx_pages *vmx;
	struct kvm_vcpu *vcpu;
	struct kvm_run *run;
	struct kvm_vm *vm;
	u64 v;

	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, NO_NVMX);
	vm = vmx_vm(&vcpu, l1_filter_change, &vmx, NULL);
	mf_allow_all(vm);

	TEST_ASSERT_EQ(expect_l2_sync(vcpu, &v), 1);
	TEST_ASSERT_EQ(v, VAL_L2);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 MSR_KERNEL_GS_BASE, 1, &mf_zero_bits);
	mf_range(&f, 1, KVM_MSR_FILTER_READ, MSR_IA32_SYSENTER_CS, 1,
		 &mf_zero_bits);
	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);

	run = expect_l2_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_IA32_SYSENTER_CS);
	run->msr.data = VAL_USER2;
	TEST_ASSERT_EQ(expect_l2_sync(vcpu, &v), 2);
	TEST_ASSERT(v == VAL_L2,
		    "KERNEL_GS_BASE read 0x%lx before the next nested VM-entry, want L2's 0x%llx (old merge)",
		    v, VAL_L2);
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_KERNEL_GS_BASE);
	run->msr.data = VAL_USER;
	run = expect_l2_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_KERNEL_GS_BASE);
	TEST_ASSERT_EQ(run->msr.data, VAL_WR);
	run->msr.error = 1;
	TEST_ASSERT_EQ(expect_l2_sync(vcpu, NULL), 3);

	mf_allow_all(vm);
	/* No exit for either MSR now, before and after the next VM-entry. */
	TEST_ASSERT_EQ(expect_l2_sync(vcpu, &v), 4);
	TEST_ASSERT_EQ(v, VAL_L2);
	TEST_ASSERT_EQ(expect_l2_sync(vcpu, &v), 5);
	TEST_ASSERT_EQ(v, VAL_L2);
	mf_expect_done(vcpu);
	kvm_vm_free(vm);
}

/*
 * E4, VM-entry MSR-load list: entry 0 (KERNEL_GS_BASE) allowed, entry 1
 * (SYSCALL_MASK) write-denied.  nested.c:1097-1130 writes the entries in
 * order through kvm_emulate_msr_write(), which refuses a denied MSR
 * without a userspace exit; the VM-entry then fails with
 * EXIT_REASON_MSR_LOAD_FAIL and qualification = failed index + 1
 * (nested.c:3700-3707), after entry 0 was loaded.
 */
static void l2_entry_load(void)
{
	GUEST_ASSERT_EQ(rdmsr(MSR_KERNEL_GS_BASE), VAL_LOAD_A);
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSCALL_MASK), VAL_LOAD_B);
	vmcall();
}

static void l1_entry_load(struct vmx_pages *vmx, struct vmx_msr_entry *list,
			  u64 list_gpa)
{
	u64 mask = rdmsr(MSR_SYSCALL_MASK);

	list[0] = (struct vmx_msr_entry){ .index = MSR_KERNEL_GS_BASE,
					  .value = VAL_LOAD_A };
	list[1] = (struct vmx_msr_entry){ .index = MSR_SYSCALL_MASK,
					  .value = VAL_LOAD_B };
	wrmsr(MSR_KERNEL_GS_BASE, 0);

	l1_prepare(vmx, l2_entry_load, true);
	vmwrite(VM_ENTRY_MSR_LOAD_ADDR, list_gpa);
	vmwrite(VM_ENTRY_MSR_LOAD_COUNT, 2);
	GUEST_SYNC(0);		/* the host denies writes to SYSCALL_MASK */
	GUEST_ASSERT(!vmlaunch());
	l1_assert_exit(EXIT_REASON_MSR_LOAD_FAIL | VMX_EXIT_REASONS_FAILED_VMENTRY);
	GUEST_ASSERT_EQ(vmreadz(EXIT_QUALIFICATION), 2);
	GUEST_ASSERT_EQ(rdmsr(MSR_KERNEL_GS_BASE), VAL_LOAD_A);
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSCALL_MASK), mask);

	GUEST_SYNC(1);		/* the host allows everything */
	wrmsr(MSR_KERNEL_GS_BASE, 0);
	l1_prepare(vmx, l2_entry_load, false);
	vmwrite(VM_ENTRY_MSR_LOAD_ADDR, list_gpa);
	vmwrite(VM_ENTRY_MSR_LOAD_COUNT, 2);
	GUEST_ASSERT(!vmlaunch());
	l1_assert_exit(EXIT_REASON_VMCALL);
	GUEST_DONE();
}

TEST(entry_load_list)
{
	struct vmx_pages *vmx;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	gva_t list;

	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, NO_NVMX);
	vm = vmx_vm(&vcpu, l1_entry_load, &vmx, &list);
	TEST_ASSERT_EQ(mf_expect_sync(vcpu), 0);
	mf_deny_one(vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_WRITE);
	/* No userspace exit for the list: the next exit is the ucall. */
	TEST_ASSERT_EQ(mf_expect_sync(vcpu), 1);
	mf_allow_all(vm);
	mf_expect_done(vcpu);
	kvm_vm_free(vm);
}

/*
 * E4, VM-exit MSR-store and MSR-load lists.  A first L2 exit with both
 * allowed stores SYSCALL_MASK as L2 left it and loads L1's value; then the
 * host denies reads (store list) or writes (load list) of SYSCALL_MASK and
 * the next L2 exit is a VM-abort: nested.c:4785-4790 (store) and
 * 5056-5068 (load) call nested_vmx_abort(), which requests a triple fault
 * (nested.c:210-215) of L1 after the exit: KVM_EXIT_SHUTDOWN, no MSR exit.
 */
static void l2_exit_lists(void)
{
	wrmsr(MSR_SYSCALL_MASK, VAL_STORE);
	vmcall();
	vmcall();
	GUEST_FAIL("L2 resumed after a VM-abort");
}

static void l1_exit_lists(struct vmx_pages *vmx, struct vmx_msr_entry *list,
			  u64 list_gpa)
{
	list[0] = (struct vmx_msr_entry){ .index = MSR_SYSCALL_MASK };
	list[1] = (struct vmx_msr_entry){ .index = MSR_SYSCALL_MASK,
					  .value = VAL_HOSTLOAD };
	l1_prepare(vmx, l2_exit_lists, true);
	vmwrite(VM_EXIT_MSR_STORE_ADDR, list_gpa);
	vmwrite(VM_EXIT_MSR_STORE_COUNT, 1);
	vmwrite(VM_EXIT_MSR_LOAD_ADDR, list_gpa + sizeof(*list));
	vmwrite(VM_EXIT_MSR_LOAD_COUNT, 1);
	GUEST_ASSERT(!vmlaunch());
	l1_assert_exit(EXIT_REASON_VMCALL);
	GUEST_ASSERT_EQ(list[0].value, VAL_STORE);
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSCALL_MASK), VAL_HOSTLOAD);

	GUEST_SYNC(1);		/* the host denies SYSCALL_MASK */
	l1_skip_insn();
	vmresume();
	GUEST_FAIL("L1 resumed after a VM-abort (exit reason 0x%lx)",
		   vmreadz(VM_EXIT_REASON));
}

static void exit_list_abort(u32 deny)
{
	struct vmx_pages *vmx;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	gva_t list;

	vm = vmx_vm(&vcpu, l1_exit_lists, &vmx, &list);
	TEST_ASSERT_EQ(mf_expect_sync(vcpu), 1);
	mf_deny_one(vm, MSR_SYSCALL_MASK, deny);
	mf_run(vcpu);
	TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_SHUTDOWN,
		    "VM-exit with a %s-denied MSR in its list: exit %s, want SHUTDOWN (VM-abort)",
		    deny == KVM_MSR_FILTER_READ ? "read" : "write",
		    exit_reason_str(vcpu->run->exit_reason));
	TEST_ASSERT(!in_guest_mode(vcpu), "VM-abort left the vCPU in L2");
	kvm_vm_free(vm);
}

TEST(exit_store_list_abort)
{
	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, NO_NVMX);
	exit_list_abort(KVM_MSR_FILTER_READ);
}

TEST(exit_load_list_abort)
{
	if (!kvm_cpu_has(X86_FEATURE_VMX))
		SKIP(return, NO_NVMX);
	exit_list_abort(KVM_MSR_FILTER_WRITE);
}

/*
 * E11: WRMSR IA32_TSC_DEADLINE from L1 with LVTT in TSC-deadline mode.
 * Upstream 7.3's VMX exit fastpath (vmx.c:7407-7408, msrs.c:960-983)
 * consumes this write before the normal path's kvm_msr_allowed() check.
 * The ABI (a denied write is a FILTER exit, or #GP without the exit
 * enabled) must hold on every path; SVM without NRIPS (QEMU TCG) never
 * takes the fastpath.
 */
/*
 * Far enough not to expire during the test (an expired deadline reads 0),
 * near enough that KVM's conversion to ns does not overflow.
 */
#define DEADLINE_AHEAD	BIT_ULL(40)

static void guest_tsc_deadline(void)
{
	u64 d = rdtsc() + DEADLINE_AHEAD;

	x2apic_enable();
	/* Masked: the deadline never interrupts; x2APIC MSRs are unfiltered. */
	x2apic_write_reg(APIC_LVTT, APIC_LVT_TIMER_TSCDEADLINE | APIC_LVT_MASKED | 0xec);
	for (;;) {
		u8 vec = wrmsr_safe(MSR_IA32_TSC_DEADLINE, d);

		GUEST_SYNC_ARGS(d, vec, rdmsr(MSR_IA32_TSC_DEADLINE), 0, 0);
		d += 0x1000;
	}
}

struct deadline_step {
	u64 written;
	u8 vec;
	u64 readback;
};

static void deadline_step(struct kvm_vcpu *vcpu, struct deadline_step *s)
{
	struct ucall uc;

	mf_run(vcpu);
	TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_IO &&
		    get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "want the guest's report, got exit %s",
		    exit_reason_str(vcpu->run->exit_reason));
	s->written = uc.args[1];
	s->vec = uc.args[2];
	s->readback = uc.args[3];
}

static struct kvm_vm *deadline_vm(struct __test_metadata *_metadata,
				  struct kvm_vcpu **vcpu)
{
	struct kvm_vm *vm;

	if (!kvm_cpu_has(X86_FEATURE_TSC_DEADLINE_TIMER) ||
	    !kvm_cpu_has(X86_FEATURE_X2APIC))
		SKIP(return NULL, "KVM does not offer the TSC-deadline timer and x2APIC");
	vm = vm_create_with_one_vcpu(vcpu, guest_tsc_deadline);
	mf_install_gp_handler(vm);
	return vm;
}

TEST(tsc_deadline_allowed)
{
	struct deadline_step s;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = deadline_vm(_metadata, &vcpu);
	if (!vm)
		return;
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_deny_one(vm, MSR_NONEXIST, KVM_MSR_FILTER_WRITE);
	deadline_step(vcpu, &s);
	TEST_ASSERT_EQ(s.vec, 0);
	TEST_ASSERT(s.readback == s.written,
		    "TSC_DEADLINE reads 0x%lx after writing 0x%lx (LVTT not in deadline mode?)",
		    s.readback, s.written);
	kvm_vm_free(vm);
}

TEST(tsc_deadline_denied_exit)
{
	struct deadline_step s;
	struct kvm_vcpu *vcpu;
	struct kvm_run *run;
	struct kvm_vm *vm;
	u64 before;

	vm = deadline_vm(_metadata, &vcpu);
	if (!vm)
		return;
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	deadline_step(vcpu, &s);
	TEST_ASSERT(s.vec == 0 && s.readback == s.written,
		    "allowed write: vector %u, reads 0x%lx, wrote 0x%lx",
		    s.vec, s.readback, s.written);
	before = s.readback;

	mf_deny_one(vm, MSR_IA32_TSC_DEADLINE, KVM_MSR_FILTER_WRITE);
	run = vcpu->run;
	mf_run(vcpu);
	TEST_ASSERT(run->exit_reason == KVM_EXIT_X86_WRMSR,
		    "denied WRMSR TSC_DEADLINE gave exit %s, not a FILTER exit: the write bypassed the filter (E11, the WRMSR fastpath)",
		    exit_reason_str(run->exit_reason));
	TEST_ASSERT_EQ(run->msr.index, MSR_IA32_TSC_DEADLINE);
	TEST_ASSERT_EQ(run->msr.reason, KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT_EQ(run->msr.error, 0);
	TEST_ASSERT_EQ(run->msr.data, before + 0x1000);
	/* Completed by userspace: the guest sees success, KVM wrote nothing. */
	deadline_step(vcpu, &s);
	TEST_ASSERT_EQ(s.written, before + 0x1000);
	TEST_ASSERT_EQ(s.vec, 0);
	TEST_ASSERT(s.readback == before,
		    "TSC_DEADLINE reads 0x%lx after a write completed by userspace, want 0x%lx",
		    s.readback, before);

	/* error=1: #GP at the WRMSR. */
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_IA32_TSC_DEADLINE,
			   KVM_MSR_EXIT_REASON_FILTER)->msr.error = 1;
	deadline_step(vcpu, &s);
	TEST_ASSERT_EQ(s.vec, GP_VECTOR);
	TEST_ASSERT_EQ(s.readback, before);

	/* Allowed again: the next write lands. */
	mf_allow_all(vm);
	deadline_step(vcpu, &s);
	TEST_ASSERT(s.vec == 0 && s.readback == s.written,
		    "re-allowed write: vector %u, reads 0x%lx, wrote 0x%lx",
		    s.vec, s.readback, s.written);
	kvm_vm_free(vm);
}

TEST(tsc_deadline_denied_gp)
{
	struct deadline_step s;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	u64 before;

	vm = deadline_vm(_metadata, &vcpu);
	if (!vm)
		return;
	deadline_step(vcpu, &s);
	TEST_ASSERT(s.vec == 0 && s.readback == s.written,
		    "allowed write: vector %u, reads 0x%lx, wrote 0x%lx",
		    s.vec, s.readback, s.written);
	before = s.readback;

	/* No KVM_CAP_X86_USER_SPACE_MSR: a denied write is a #GP (F4). */
	mf_deny_one(vm, MSR_IA32_TSC_DEADLINE, KVM_MSR_FILTER_WRITE);
	deadline_step(vcpu, &s);
	TEST_ASSERT(s.vec == GP_VECTOR,
		    "denied WRMSR TSC_DEADLINE without the user-space exit: vector %u, not #GP: the write bypassed the filter (E11, the WRMSR fastpath)",
		    s.vec);
	TEST_ASSERT(s.readback == before,
		    "TSC_DEADLINE reads 0x%lx after a denied write, want 0x%lx",
		    s.readback, before);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
