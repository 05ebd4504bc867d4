// SPDX-License-Identifier: GPL-2.0-only
/*
 * E5/F9/G3/C5 under nested SVM: an MSR that L1 passes through to L2 but
 * the userspace filter denies must exit to userspace while the vCPU is in
 * L2 (guest mode), and error=1 must inject #GP into L2.  An MSR that L1
 * intercepts goes to L1 instead, never to userspace.  Destroying the VM
 * with such an exit pending (vCPU in L2) must be clean.
 *
 * Skips on VMX hosts and when nested SVM is not exposed.
 */
#include <stdlib.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "svm_util.h"
#include "msr_filter_util.h"

#define FS_VAL_USER	0x1111222233334444ull
#define FS_VAL_WR	0x00007fff00002222ull

/* L2: passthrough FS_BASE, denied by the userspace filter. */
static void l2_passthrough(void)
{
	u64 v = 0;
	u8 vec;

	vec = rdmsr_safe(MSR_FS_BASE, &v);
	GUEST_ASSERT_EQ(vec, 0);
	GUEST_ASSERT_EQ(v, FS_VAL_USER);

	vec = rdmsr_safe(MSR_FS_BASE, &v);
	GUEST_ASSERT_EQ(vec, GP_VECTOR);

	vec = wrmsr_safe(MSR_FS_BASE, FS_VAL_WR);
	GUEST_ASSERT_EQ(vec, 0);

	vec = wrmsr_safe(MSR_FS_BASE, FS_VAL_WR);
	GUEST_ASSERT_EQ(vec, GP_VECTOR);
	vmmcall();
}

/* L2: SYSCALL_MASK, intercepted by L1 and denied by the filter. */
static void l2_intercepted(void)
{
	u64 v;

	(void)rdmsr_safe(MSR_SYSCALL_MASK, &v);
	GUEST_FAIL("L1 did not intercept RDMSR");
}

static void msrpm_set(u8 *msrpm, u32 msr, bool read, bool set)
{
	u32 bit = 2 * (msr - 0xc0000000u) + (read ? 0 : 1);
	u8 *b = msrpm + 0x800 + bit / 8;

	if (set)
		*b |= 1u << (bit % 8);
	else
		*b &= ~(1u << (bit % 8));
}

static void l1_code(struct svm_test_data *svm)
{
	struct vmcb *vmcb = svm->vmcb;

	generic_svm_setup(svm, l2_passthrough);
	vmcb->control.intercept |= 1ull << INTERCEPT_MSR_PROT;
	msrpm_set(svm->msr, MSR_FS_BASE, true, false);
	msrpm_set(svm->msr, MSR_FS_BASE, false, false);
	msrpm_set(svm->msr, MSR_SYSCALL_MASK, true, true);

	run_guest(vmcb, svm->vmcb_gpa);
	GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_VMMCALL);
	GUEST_SYNC(1);

	generic_svm_setup(svm, l2_intercepted);
	vmcb->control.intercept |= 1ull << INTERCEPT_MSR_PROT;
	run_guest(vmcb, svm->vmcb_gpa);
	GUEST_ASSERT_EQ(vmcb->control.exit_code, SVM_EXIT_MSR);
	GUEST_ASSERT_EQ(vmcb->control.exit_info_1, 0);

	/* L1's own access to the denied MSR does exit to userspace. */
	GUEST_ASSERT_EQ(rdmsr(MSR_SYSCALL_MASK), 0x5a5a);
	GUEST_DONE();
}

#define NO_NSVM	"needs nested SVM (KVM does not expose SVM here; " \
		"nested VMX: msr_filter_vmx_test)"

static bool in_guest_mode(struct kvm_vcpu *vcpu)
{
	int size = kvm_check_cap(KVM_CAP_NESTED_STATE);
	struct kvm_nested_state *st;
	bool ret;

	if (size <= 0)
		return true;	/* cannot tell; don't fail on that */
	st = calloc(1, size);
	st->size = size;
	vcpu_ioctl(vcpu, KVM_GET_NESTED_STATE, st);
	ret = st->flags & KVM_STATE_NESTED_GUEST_MODE;
	free(st);
	return ret;
}

static struct kvm_vm *setup(struct kvm_vcpu **vcpu)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	struct kvm_vm *vm;
	gva_t svm_gva;

	vm = vm_create_with_one_vcpu(vcpu, l1_code);
	vcpu_alloc_svm(vm, &svm_gva);
	vcpu_args_set(*vcpu, 1, svm_gva);
	mf_install_gp_handler(vm);

	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 MSR_FS_BASE, 1, &mf_zero_bits);
	mf_range(&f, 1, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);
	return vm;
}

TEST(l2_filter_exit)
{
	struct kvm_vcpu *vcpu;
	struct kvm_run *run;
	struct kvm_vm *vm;

	if (!kvm_cpu_has(X86_FEATURE_SVM))
		SKIP(return, NO_NSVM);
	vm = setup(&vcpu);
	run = vcpu->run;

	/* L2 read, completed with data. */
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_FS_BASE,
			   KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(in_guest_mode(vcpu), "FS_BASE exit not taken from L2");
	run->msr.data = FS_VAL_USER;

	/* L2 read, completed with error=1: #GP into L2. */
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_FS_BASE,
			   KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(in_guest_mode(vcpu), "FS_BASE exit not taken from L2");
	run->msr.error = 1;

	/* L2 writes. */
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_FS_BASE,
			   KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT_EQ(run->msr.data, FS_VAL_WR);
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_WRMSR, MSR_FS_BASE,
			   KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(in_guest_mode(vcpu), "FS_BASE exit not taken from L2");
	run->msr.error = 1;

	TEST_ASSERT_EQ(mf_expect_sync(vcpu), 1);

	/* L1-intercepted MSR: L1 gets the #VMEXIT, userspace only L1's read. */
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_SYSCALL_MASK,
			   KVM_MSR_EXIT_REASON_FILTER);
	TEST_ASSERT(!in_guest_mode(vcpu), "L1's own RDMSR reported in L2");
	run->msr.data = 0x5a5a;
	mf_expect_done(vcpu);
	kvm_vm_free(vm);
}

/* C5: destroy the VM with an L2 MSR exit pending and a filter installed. */
TEST(teardown_in_l2_with_pending_exit)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	if (!kvm_cpu_has(X86_FEATURE_SVM))
		SKIP(return, NO_NSVM);
	vm = setup(&vcpu);
	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_FS_BASE,
			   KVM_MSR_EXIT_REASON_FILTER);
	mf_deny_one(vm, MSR_GS_BASE, KVM_MSR_FILTER_READ);
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
