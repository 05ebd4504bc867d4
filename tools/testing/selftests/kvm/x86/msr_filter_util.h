/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * Shared helpers for the kvm-msr-rs MSR filter selftests.
 */
#ifndef SELFTEST_KVM_MSR_FILTER_UTIL_H
#define SELFTEST_KVM_MSR_FILTER_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_module.h"

/* An MSR index nobody implements. */
#define MSR_NONEXIST		0x474f4f00u
#define MSR_NONEXIST2		0x474f4f01u

#define ALL_REASONS		(KVM_MSR_EXIT_REASON_INVAL |		\
				 KVM_MSR_EXIT_REASON_UNKNOWN |		\
				 KVM_MSR_EXIT_REASON_FILTER)

/* One deny bit for a single-MSR range (8 bytes: KVM reads whole longs). */
static u64 mf_zero_bits __maybe_unused;
static u64 mf_ones_bits __maybe_unused = ~0ull;

static inline void mf_range(struct kvm_msr_filter *f, int slot, u32 flags,
			    u32 base, u32 nmsrs, void *bitmap)
{
	f->ranges[slot].flags = flags;
	f->ranges[slot].base = base;
	f->ranges[slot].nmsrs = nmsrs;
	f->ranges[slot].bitmap = bitmap;
}

/* Deny @type accesses to one MSR, allow everything else. */
static inline void mf_deny_one(struct kvm_vm *vm, u32 msr, u32 type)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };

	mf_range(&f, 0, type, msr, 1, &mf_zero_bits);
	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);
}

/* Install an empty DEFAULT_ALLOW filter, i.e. remove filtering. */
static inline void mf_allow_all(struct kvm_vm *vm)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };

	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);
}

/* Returns 0 or -errno. */
static inline int mf_set(struct kvm_vm *vm, struct kvm_msr_filter *f)
{
	int r = __vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, f);

	return r ? -errno : 0;
}

static inline int mf_set_mask(struct kvm_vm *vm, u64 mask)
{
	int r = __vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, mask);

	return r ? -errno : 0;
}

#define MF_ASSERT_ERRNO(expr, want)					\
do {									\
	int __r = (expr);						\
	TEST_ASSERT(__r == (want), "%s: got %d (%s), want %d (%s)",	\
		    #expr, __r, __r ? strerror(-__r) : "ok", (want),	\
		    (want) ? strerror(-(want)) : "ok");			\
} while (0)

/*
 * Run until something other than a ucall SYNC-less exit happens; report
 * guest asserts.  Returns the exit reason.
 */
static inline u32 mf_run(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	vcpu_run(vcpu);
	if (vcpu->run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
		struct kvm_regs regs;
		int i;

		vcpu_regs_get(vcpu, &regs);
		ksft_print_msg("internal error: suberror %u, rip 0x%llx, ndata %u:",
			       vcpu->run->internal.suberror, regs.rip,
			       vcpu->run->internal.ndata);
		for (i = 0; i < vcpu->run->internal.ndata && i < 16; i++)
			printf(" 0x%llx", vcpu->run->internal.data[i]);
		printf("\n");
	}
	if (vcpu->run->exit_reason == KVM_EXIT_IO &&
	    get_ucall(vcpu, &uc) == UCALL_ABORT)
		REPORT_GUEST_ASSERT(uc);
	return vcpu->run->exit_reason;
}

/* Run and expect an MSR exit of the given kind; returns the kvm_run. */
static inline struct kvm_run *mf_expect_msr_exit(struct kvm_vcpu *vcpu,
						 u32 exit, u32 index,
						 u32 reason)
{
	struct kvm_run *run = vcpu->run;

	mf_run(vcpu);
	TEST_ASSERT(run->exit_reason == exit,
		    "want exit %s for MSR 0x%x, got %s",
		    exit_reason_str(exit), index,
		    exit_reason_str(run->exit_reason));
	TEST_ASSERT(run->msr.index == index, "MSR exit index 0x%x, want 0x%x",
		    run->msr.index, index);
	TEST_ASSERT(run->msr.reason == reason, "MSR 0x%x: reason %u, want %u",
		    index, run->msr.reason, reason);
	TEST_ASSERT(run->msr.error == 0, "MSR exit with error=%u preset",
		    run->msr.error);
	return run;
}

static inline u64 mf_expect_sync(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	mf_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
		    "want UCALL_SYNC, got %lu", uc.cmd);
	return uc.args[1];
}

static inline void mf_expect_done(struct kvm_vcpu *vcpu)
{
	struct ucall uc;

	mf_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_DONE,
		    "want UCALL_DONE, got %lu", uc.cmd);
}

/*
 * Host quirk: some hosts (seen on a paravirtual 6.18 KVM backend) report a
 * 57-bit virtual address width and LA57 in KVM_GET_SUPPORTED_CPUID but
 * refuse CR4.LA57 in KVM_SET_SREGS, which breaks the selftest library's
 * vCPU setup.  Probe it once and, if so, make the library use 4-level
 * paging by patching its cached copy of the supported CPUID.  This changes
 * nothing on a host where LA57 works (e.g. QEMU TCG).
 */
static inline void mf_host_la57_quirk(void)
{
	struct kvm_cpuid2 *cpuid = (struct kvm_cpuid2 *)kvm_get_supported_cpuid();
	struct kvm_cpuid_entry2 *e;
	struct kvm_sregs sregs;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int r, i;

	if (kvm_cpu_property(X86_PROPERTY_MAX_VIRT_ADDR) != 57)
		return;

	vm = vm_create_barebones();
	vcpu = __vm_vcpu_add(vm, 0);
	vcpu_init_cpuid(vcpu, cpuid);
	vcpu_sregs_get(vcpu, &sregs);
	sregs.cr0 = X86_CR0_PE | X86_CR0_NE | X86_CR0_PG;
	sregs.cr4 = X86_CR4_PAE | X86_CR4_LA57;
	sregs.efer = EFER_LME | EFER_LMA;
	sregs.cr3 = 0x1000;
	sregs.cs.l = 1;
	sregs.cs.db = 0;
	r = __vcpu_ioctl(vcpu, KVM_SET_SREGS, &sregs);
	kvm_vm_free(vm);
	if (!r)
		return;

	ksft_print_msg("host advertises LA57 but rejects CR4.LA57; using 4-level paging\n");
	for (i = 0; i < cpuid->nent; i++) {
		e = &cpuid->entries[i];
		if (e->function == 0x80000008)
			e->eax = (e->eax & ~0xff00u) | (48u << 8);
		if (e->function == 7 && e->index == 0)
			e->ecx &= ~(1u << 16);
	}
}

/*
 * #GP fixup for KVM_ASM_SAFE() sequences, equivalent to the library's but
 * built without SSE: the library's generic fixup is auto-vectorised, and a
 * host seen during development (paravirtual 6.18 backend) fails to run SSE
 * instructions inside guest exception handlers.
 */
static void __attribute__((target("general-regs-only")))
mf_gp_handler(struct ex_regs *regs)
{
	if (regs->r9 == KVM_EXCEPTION_MAGIC && regs->rip == regs->r10) {
		regs->rip = regs->r11;
		regs->r9 = regs->vector;
		regs->r10 = regs->error_code;
		return;
	}
	GUEST_FAIL("unexpected #GP at 0x%lx", regs->rip);
}

static inline void mf_install_gp_handler(struct kvm_vm *vm)
{
	vm_install_exception_handler(vm, GP_VECTOR, mf_gp_handler);
}

/* Writes a kvm module parameter; returns false if that is impossible. */
static inline bool mf_write_kvm_param(const char *param, const char *val)
{
	char path[128];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "/sys/module/kvm/parameters/%s", param);
	f = fopen(path, "w");
	if (!f)
		return false;
	ok = fputs(val, f) >= 0;
	ok = !fclose(f) && ok;
	return ok;
}

/*
 * Makes "c" or "rust" the implementation of the VMs created next; returns
 * false if that is impossible (no module file, or Rust VMs still exist).
 */
static inline bool mf_select_impl(const char *impl)
{
	int r;

	if (!strcmp(impl, "rust")) {
		r = mf_rust_loaded() ? 0 : mf_load_rust();
		return !r || r == -EEXIST;
	}
	r = mf_rust_loaded() ? mf_unload_rust() : 0;
	return !r || r == -ENOENT;
}

#ifdef __KSELFTEST_HARNESS_H
/*
 * main() of the harness-based MSR filter tests: both capabilities, this
 * host's quirks, then the tests.
 */
static inline int mf_test_main(int argc, char *argv[])
{
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_USER_SPACE_MSR));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_MSR_FILTER));
	mf_host_la57_quirk();
	return test_harness_run(argc, argv);
}
#endif

#endif /* SELFTEST_KVM_MSR_FILTER_UTIL_H */
