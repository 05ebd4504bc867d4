// SPDX-License-Identifier: GPL-2.0-only
/*
 * H1: KVM_X86_SET_MSR_FILTER from 32-bit userspace.  The KVM selftest
 * library does not build for i386, so this is a standalone program using
 * raw ioctls.  Built with -m32 it issues the compat ioctl 0x4104AEC6 (260
 * byte struct, 32-bit bitmap pointers); built natively the same source
 * issues 0x4188AEC6, so the two binaries must give identical results.
 *
 * The guest is a few bytes of real-mode code: RDMSR of a denied MSR (FILTER
 * exit, completed with data), then RDMSR of an allowed unknown MSR (#GP
 * through the IVT since only FILTER exits are enabled).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kselftest_harness.h"

#define MSR_DENIED	0x474f4f00u
#define MSR_UNKNOWN	0x474f4f01u
#define MEM_SIZE	0x10000
#define CODE_GPA	0x1000
#define GP_GPA		0x2000
#define BAD_PTR		((void *)0x10)

#define NATIVE_64_NR	0x4188AEC6u
#define COMPAT_32_NR	0x4104AEC6u

static uint64_t zero_bits;
static uint64_t ones_bits = ~0ull;

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	uint8_t *mem;
};

static int kvm_open_vm(struct vm *vm, bool with_vcpu)
{
	struct kvm_userspace_memory_region region = {};
	int run_size;

	memset(vm, 0, sizeof(*vm));
	vm->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm < 0)
		return -1;
	vm->fd = ioctl(vm->kvm, KVM_CREATE_VM, 0);
	if (vm->fd < 0)
		return -1;
	if (!with_vcpu)
		return 0;

	vm->mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vm->mem == MAP_FAILED)
		return -1;
	region.memory_size = MEM_SIZE;
	region.userspace_addr = (uintptr_t)vm->mem;
	if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region))
		return -1;
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	if (vm->vcpu < 0)
		return -1;
	run_size = ioctl(vm->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		       vm->vcpu, 0);
	return vm->run == MAP_FAILED ? -1 : 0;
}

static void kvm_close_vm(struct vm *vm)
{
	if (vm->vcpu > 0)
		close(vm->vcpu);
	close(vm->fd);
	close(vm->kvm);
}

static int set_filter(struct vm *vm, struct kvm_msr_filter *f)
{
	return ioctl(vm->fd, KVM_X86_SET_MSR_FILTER, f) ? -errno : 0;
}

static void range(struct kvm_msr_filter *f, int i, uint32_t flags,
		  uint32_t base, uint32_t nmsrs, void *bitmap)
{
	f->ranges[i].flags = flags;
	f->ranges[i].base = base;
	f->ranges[i].nmsrs = nmsrs;
	f->ranges[i].bitmap = bitmap;
}

FIXTURE(compat) {
	struct vm vm;
};

FIXTURE_SETUP(compat)
{
	if (access("/dev/kvm", R_OK | W_OK))
		SKIP(return, "no /dev/kvm");
	ASSERT_EQ(0, kvm_open_vm(&self->vm, true));
	if (ioctl(self->vm.kvm, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) != 1)
		SKIP(return, "KVM_CAP_X86_MSR_FILTER missing");
}

FIXTURE_TEARDOWN(compat)
{
	if (self->vm.fd > 0)
		kvm_close_vm(&self->vm);
}

/* H1: the ioctl number and struct layout this build uses. */
TEST_F(compat, ioctl_number)
{
	if (sizeof(void *) == 4) {
		ASSERT_EQ(COMPAT_32_NR, (uint32_t)KVM_X86_SET_MSR_FILTER);
		ASSERT_EQ(260, sizeof(struct kvm_msr_filter));
		ASSERT_EQ(16, sizeof(struct kvm_msr_filter_range));
	} else {
		ASSERT_EQ(NATIVE_64_NR, (uint32_t)KVM_X86_SET_MSR_FILTER);
		ASSERT_EQ(392, sizeof(struct kvm_msr_filter));
		ASSERT_EQ(24, sizeof(struct kvm_msr_filter_range));
	}
	TH_LOG("KVM_X86_SET_MSR_FILTER = 0x%x (%zu-bit)",
	       (uint32_t)KVM_X86_SET_MSR_FILTER, sizeof(void *) * 8);
}

/* A1-A3 and B2/B5 reserved bits through this ioctl. */
TEST_F(compat, reserved_bits)
{
	struct kvm_msr_filter f = {};
	struct kvm_enable_cap cap = { .cap = KVM_CAP_X86_USER_SPACE_MSR };
	int i;

	ASSERT_EQ(1, ioctl(self->vm.fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_USER_SPACE_MSR));
	for (i = 0; i < 64; i++) {
		cap.args[0] = 1ull << i;
		ASSERT_EQ(i < 3 ? 0 : -1, ioctl(self->vm.fd, KVM_ENABLE_CAP, &cap));
	}
	cap.args[0] = 4;
	cap.flags = 1;
	ASSERT_EQ(-1, ioctl(self->vm.fd, KVM_ENABLE_CAP, &cap));
	ASSERT_EQ(EINVAL, errno);

	range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, &zero_bits);
	for (i = 0; i < 32; i++) {
		f.flags = 1u << i;
		ASSERT_EQ(i == 0 ? 0 : -EINVAL, set_filter(&self->vm, &f));
	}
	f.flags = 0;
	for (i = 0; i < 32; i++) {
		f.ranges[0].flags = 1u << i;
		ASSERT_EQ(i < 2 ? 0 : -EINVAL, set_filter(&self->vm, &f));
	}
	f.ranges[0].flags = 0;
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
}

/* B1/B3/B5: errno precedence and empty ranges. */
TEST_F(compat, errno_order)
{
	struct kvm_msr_filter f = {};
	int i;

	ASSERT_EQ(-1, ioctl(self->vm.fd, KVM_X86_SET_MSR_FILTER, BAD_PTR));
	ASSERT_EQ(EFAULT, errno);

	range(&f, 0, 0x80, 0, 1, BAD_PTR);
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
	range(&f, 0, KVM_MSR_FILTER_READ, 0, 0x3001, BAD_PTR);
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
	range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, BAD_PTR);
	ASSERT_EQ(-EFAULT, set_filter(&self->vm, &f));
	range(&f, 1, 0x80, 0, 1, &zero_bits);
	ASSERT_EQ(-EFAULT, set_filter(&self->vm, &f));
	range(&f, 0, 0x80, 0, 1, &zero_bits);
	range(&f, 1, KVM_MSR_FILTER_READ, 0, 1, BAD_PTR);
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));

	/* Empty ranges: garbage accepted; all-empty DENY rejected. */
	memset(&f, 0, sizeof(f));
	for (i = 0; i < 16; i++)
		range(&f, i, 0xffffffff, 0xdeadbeef, 0, BAD_PTR);
	ASSERT_EQ(0, set_filter(&self->vm, &f));
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
	range(&f, 9, KVM_MSR_FILTER_WRITE, 0, 1, &ones_bits);
	ASSERT_EQ(0, set_filter(&self->vm, &f));
}

/* B5: size limits and the 8-byte granular bitmap copy. */
TEST_F(compat, size_and_tail)
{
	static uint8_t big[0x600];
	struct kvm_msr_filter f = {};
	long pg = getpagesize();
	uint8_t *p;

	range(&f, 0, KVM_MSR_FILTER_READ, 0, 0x3000, big);
	ASSERT_EQ(0, set_filter(&self->vm, &f));
	f.ranges[0].nmsrs = 0x3001;
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
	f.ranges[0].nmsrs = 0xffffffff;
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));
	f.ranges[0].nmsrs = 0xffffffe1;
	ASSERT_EQ(-EINVAL, set_filter(&self->vm, &f));

	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	ASSERT_EQ(0, mprotect(p + pg, pg, PROT_NONE));
	range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, p + pg - 1);
	ASSERT_EQ(-EFAULT, set_filter(&self->vm, &f));
	range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, p + pg - 8);
	ASSERT_EQ(0, set_filter(&self->vm, &f));
	range(&f, 0, KVM_MSR_FILTER_READ, 0, 65, p + pg - 8);
	ASSERT_EQ(-EFAULT, set_filter(&self->vm, &f));
	munmap(p, 2 * pg);
}

static const uint8_t guest_code[] = {
	0x66, 0xb9, 0x00, 0x4f, 0x4f, 0x47,	/* mov $MSR_DENIED, %ecx */
	0x0f, 0x32,				/* rdmsr */
	0xf4,					/* hlt */
	0x66, 0xb9, 0x01, 0x4f, 0x4f, 0x47,	/* mov $MSR_UNKNOWN, %ecx */
	0x0f, 0x32,				/* rdmsr */
	0xf4,					/* hlt (not reached) */
};

static const uint8_t gp_handler[] = {
	0xbb, 0xad, 0x0b,			/* mov $0xbad, %bx */
	0xf4,					/* hlt */
};

/* E1/F2/F5 end to end with a filter installed through this ioctl. */
TEST_F(compat, guest_rdmsr)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args = { KVM_MSR_EXIT_REASON_FILTER },
	};
	struct kvm_msr_filter f = {};
	struct kvm_run *run = self->vm.run;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	uint16_t *ivt = (uint16_t *)self->vm.mem;

	memcpy(self->vm.mem + CODE_GPA, guest_code, sizeof(guest_code));
	memcpy(self->vm.mem + GP_GPA, gp_handler, sizeof(gp_handler));
	ivt[13 * 2] = GP_GPA;
	ivt[13 * 2 + 1] = 0;

	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_GET_SREGS, &sregs));
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ss.base = 0;
	sregs.ss.selector = 0;
	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_SET_SREGS, &sregs));
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rsp = 0x8000;
	regs.rflags = 2;
	regs.rax = 0xffffffff;
	regs.rdx = 0xffffffff;
	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_SET_REGS, &regs));

	ASSERT_EQ(0, ioctl(self->vm.fd, KVM_ENABLE_CAP, &cap));
	range(&f, 0, KVM_MSR_FILTER_READ, MSR_DENIED, 1, &zero_bits);
	range(&f, 1, KVM_MSR_FILTER_READ, MSR_UNKNOWN, 1, &ones_bits);
	ASSERT_EQ(0, set_filter(&self->vm, &f));

	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_RUN, 0));
	ASSERT_EQ(KVM_EXIT_X86_RDMSR, run->exit_reason);
	ASSERT_EQ(KVM_MSR_EXIT_REASON_FILTER, run->msr.reason);
	ASSERT_EQ(MSR_DENIED, run->msr.index);
	ASSERT_EQ(0, run->msr.data);
	run->msr.data = 0x8877665544332211ull;

	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_RUN, 0));
	ASSERT_EQ(KVM_EXIT_HLT, run->exit_reason);
	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_GET_REGS, &regs));
	ASSERT_EQ(0x44332211ull, regs.rax);
	ASSERT_EQ(0x88776655ull, regs.rdx);
	ASSERT_EQ(CODE_GPA + 9, regs.rip);

	/* Allowed but unknown, no UNKNOWN exits enabled: #GP. */
	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_RUN, 0));
	ASSERT_EQ(KVM_EXIT_HLT, run->exit_reason);
	ASSERT_EQ(0, ioctl(self->vm.vcpu, KVM_GET_REGS, &regs));
	ASSERT_EQ(0xbad, regs.rbx & 0xffff);
}

/* The 64-bit layout, whatever this build's pointer size. */
struct native_range {
	uint32_t flags, nmsrs, base, pad;
	uint64_t bitmap;
};

struct native_filter {
	uint32_t flags, pad;
	struct native_range ranges[16];
};

/*
 * H1: from a 32-bit process the native number is not a compat number, so
 * the generic compat path passes it to the native handler (64-bit layout);
 * from a 64-bit process the compat number is unknown (ENOTTY).
 */
TEST_F(compat, other_ioctl_number)
{
	struct native_filter nf = {};
	struct kvm_msr_filter f = {};
	int r;

	nf.ranges[0].flags = KVM_MSR_FILTER_READ;
	nf.ranges[0].nmsrs = 1;
	nf.ranges[0].bitmap = (uintptr_t)&zero_bits;
	ASSERT_EQ(0, ioctl(self->vm.fd, NATIVE_64_NR, &nf));
	nf.ranges[0].bitmap = 0x10;
	ASSERT_EQ(-1, ioctl(self->vm.fd, NATIVE_64_NR, &nf));
	ASSERT_EQ(EFAULT, errno);
	nf.flags = 2;
	ASSERT_EQ(-1, ioctl(self->vm.fd, NATIVE_64_NR, &nf));
	ASSERT_EQ(EINVAL, errno);

	range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, &zero_bits);
	r = ioctl(self->vm.fd, COMPAT_32_NR, &f);
	if (sizeof(void *) == 4) {
		ASSERT_EQ(0, r);
	} else {
		ASSERT_EQ(-1, r);
		ASSERT_EQ(ENOTTY, errno);
	}
}

TEST_HARNESS_MAIN
