// SPDX-License-Identifier: GPL-2.0-only
/*
 * KVM_X86_SET_MSR_FILTER / KVM_CAP_X86_USER_SPACE_MSR argument validation:
 * reserved bits, errno precedence, size limits, the 8-byte granular bitmap
 * copy, and host-initiated accesses bypassing the filter.
 *
 * Rule ids refer to abi-rules.md section 1.4 of the kvm-msr-rs project.
 */
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_util.h"

#define BAD_PTR		((u8 *)0x10)

KVM_ONE_VCPU_TEST_SUITE(msr_abi);

/* A1: cap->flags must be 0; args[1..3] are ignored. */
KVM_ONE_VCPU_TEST(msr_abi, cap_flags, NULL)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args = { KVM_MSR_EXIT_REASON_FILTER },
	};
	int i;

	for (i = 0; i < 32; i++) {
		cap.flags = 1u << i;
		TEST_ASSERT(__vm_ioctl(vcpu->vm, KVM_ENABLE_CAP, &cap) == -1 &&
			    errno == EINVAL, "cap.flags bit %d accepted", i);
	}
	cap.flags = 0;
	cap.args[1] = ~0ull;
	cap.args[2] = ~0ull;
	cap.args[3] = ~0ull;
	TEST_ASSERT(!__vm_ioctl(vcpu->vm, KVM_ENABLE_CAP, &cap),
		    "args[1..3] must be ignored: %s", strerror(errno));
}

/* A2: every bit of args[0] outside 0x7 gives EINVAL; valid masks succeed. */
KVM_ONE_VCPU_TEST(msr_abi, cap_mask_reserved_bits, NULL)
{
	int i;

	for (i = 0; i < 64; i++) {
		if (BIT_ULL(i) & KVM_MSR_EXIT_REASON_VALID_MASK)
			MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, BIT_ULL(i)), 0);
		else
			MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, BIT_ULL(i)), -EINVAL);
	}
	for (i = 0; i <= 7; i++)
		MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, i), 0);
	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, ~0ull), -EINVAL);
}

/* A3: CHECK_EXTENSION returns 1 for both caps; MSR_FILTER is not enable-able. */
KVM_ONE_VCPU_TEST(msr_abi, check_extension, NULL)
{
	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_X86_USER_SPACE_MSR), 1);
	TEST_ASSERT_EQ(kvm_check_cap(KVM_CAP_X86_MSR_FILTER), 1);
	TEST_ASSERT_EQ(vm_check_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR), 1);
	TEST_ASSERT_EQ(vm_check_cap(vcpu->vm, KVM_CAP_X86_MSR_FILTER), 1);
	TEST_ASSERT(__vm_enable_cap(vcpu->vm, KVM_CAP_X86_MSR_FILTER, 0) == -1 &&
		    errno == EINVAL, "enabling KVM_CAP_X86_MSR_FILTER must fail");
}

/* B2: every filter flag bit but DEFAULT_DENY is reserved. */
KVM_ONE_VCPU_TEST(msr_abi, filter_flags_reserved_bits, NULL)
{
	struct kvm_msr_filter f = {};
	int i;

	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, &mf_zero_bits);
	for (i = 0; i < 32; i++) {
		int want = -EINVAL;

		f.flags = 1u << i;
		if (f.flags & KVM_MSR_FILTER_VALID_MASK)
			want = 0;
		MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), want);
	}
}

/* B5: every range flag bit but READ|WRITE is reserved; flags == 0 is EINVAL. */
KVM_ONE_VCPU_TEST(msr_abi, range_flags_reserved_bits, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	int i;

	mf_range(&f, 0, 0, 0, 1, &mf_zero_bits);
	for (i = 0; i < 32; i++) {
		int want = -EINVAL;

		f.ranges[0].flags = 1u << i;
		if (f.ranges[0].flags & KVM_MSR_FILTER_RANGE_VALID_MASK)
			want = 0;
		MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), want);
	}
	f.ranges[0].flags = 0;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
	f.ranges[0].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	/* A valid range later than a bad one does not rescue it. */
	f.ranges[0].flags = 4;
	mf_range(&f, 1, KVM_MSR_FILTER_READ, 0, 1, &mf_zero_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
}

/* B1: an unreadable struct kvm_msr_filter gives EFAULT. */
KVM_ONE_VCPU_TEST(msr_abi, filter_struct_efault, NULL)
{
	int fd = vcpu->vm->fd;

	TEST_ASSERT(ioctl(fd, KVM_X86_SET_MSR_FILTER, NULL) == -1 &&
		    errno == EFAULT, "NULL filter: want EFAULT, got %s",
		    strerror(errno));
	TEST_ASSERT(ioctl(fd, KVM_X86_SET_MSR_FILTER, BAD_PTR) == -1 &&
		    errno == EFAULT, "bad filter pointer: want EFAULT");
}

/*
 * B5 precedence: within a range empty > flags > size > copy; across ranges,
 * array order decides.
 */
KVM_ONE_VCPU_TEST(msr_abi, errno_order, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };

	/* Bad flags and a bad pointer in one range: EINVAL, never EFAULT. */
	mf_range(&f, 0, 0x80, 0, 1, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
	mf_range(&f, 0, 0, 0, 1, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);

	/* Oversized and a bad pointer: EINVAL. */
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0, 0x3001, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);

	/* Good flags, bad pointer: EFAULT. */
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0, 1, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);

	/* Bad pointer in slot 0, bad flags in slot 1: EFAULT (slot 0 first). */
	mf_range(&f, 1, 0x80, 0, 1, &mf_zero_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);

	/* Bad flags in slot 0, bad pointer in slot 1: EINVAL. */
	mf_range(&f, 0, 0x80, 0, 1, &mf_zero_bits);
	mf_range(&f, 1, KVM_MSR_FILTER_READ, 0, 1, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);

	/* Bad pointer in the last slot after 15 good ones: EFAULT. */
	memset(&f, 0, sizeof(f));
	for (int i = 0; i < 15; i++)
		mf_range(&f, i, KVM_MSR_FILTER_READ, i * 64, 64, &mf_zero_bits);
	mf_range(&f, 15, KVM_MSR_FILTER_WRITE, 0, 64, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	/* ...and all 16 good ones are fine. */
	f.ranges[15].bitmap = (u8 *)&mf_zero_bits;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);

	/* Reserved filter flags are checked before any range. */
	f.flags = 2;
	f.ranges[0].bitmap = BAD_PTR;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
}

/* B5: nmsrs == 0 skips all validation of that range. */
KVM_ONE_VCPU_TEST(msr_abi, empty_range_garbage, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	int i;

	for (i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		mf_range(&f, i, 0xffffffff, 0xdeadbeef, 0, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);

	/* Garbage empty ranges mixed with a real one, also under DENY. */
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	mf_range(&f, 7, KVM_MSR_FILTER_READ, 0, 1, &mf_ones_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
}

/* B3: an all-empty filter is EINVAL with DEFAULT_DENY, valid with ALLOW. */
KVM_ONE_VCPU_TEST(msr_abi, empty_filter, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };

	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
	mf_range(&f, 3, 0xffff, 1, 0, BAD_PTR);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	memset(&f, 0, sizeof(f));
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
}

/* B5: at most 0x600 bitmap bytes, i.e. 0x3000 MSRs per range. */
KVM_ONE_VCPU_TEST(msr_abi, size_limits, NULL)
{
	static u8 big[KVM_MSR_FILTER_MAX_BITMAP_SIZE + 64];
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	static const u32 bad[] = { 0x3001, 0x3040, 0x3041, 0x10000,
				   0x7fffffff, 0x80000000, 0xffffffc0,
				   0xffffffe1, 0xffffffff };
	int i;

	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0, 0x3000, big);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0, 0x2fc1, big);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		f.ranges[0].nmsrs = bad[i];
		TEST_ASSERT(mf_set(vcpu->vm, &f) == -EINVAL,
			    "nmsrs 0x%x must be EINVAL", bad[i]);
	}
	/* 16 maximal ranges. */
	for (i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		mf_range(&f, i, KVM_MSR_FILTER_WRITE, i * 0x3000u, 0x3000, big);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
}

/*
 * B5: the bitmap is copied in whole longs (ceil(nmsrs/64)*8 bytes), so a
 * 1-MSR bitmap in the last byte before an unmapped page faults, while 8
 * bytes fully inside the page are fine.
 */
KVM_ONE_VCPU_TEST(msr_abi, bitmap_tail_read, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	long pg = getpagesize();
	u8 *p, *end;

	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap");
	TEST_ASSERT(!mprotect(p + pg, pg, PROT_NONE), "mprotect");
	end = p + pg;
	memset(p, 0xff, pg);

	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 1, end - 1);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 8, end - 1);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 1, end - 7);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 1, end - 8);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 64, end - 8);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 65, end - 8);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 65, end - 16);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	/* 9 MSRs need 2 bytes by ceil(n/8) but KVM reads 8. */
	mf_range(&f, 0, KVM_MSR_FILTER_READ, 0x1000, 9, end - 2);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EFAULT);
	munmap(p, 2 * pg);
}

/*
 * E7/I1: host-initiated KVM_GET/SET_MSRS and KVM_GET/SET_ONE_REG ignore a
 * DEFAULT_DENY filter that denies everything (x2APIC aside).
 */
KVM_ONE_VCPU_TEST(msr_abi, host_access_unfiltered, NULL)
{
	static const u32 msrs[] = { MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP,
				    MSR_IA32_SYSENTER_EIP, MSR_KERNEL_GS_BASE,
				    MSR_FS_BASE, MSR_GS_BASE, MSR_STAR,
				    MSR_LSTAR, MSR_SYSCALL_MASK, MSR_IA32_CR_PAT };
	static u8 zeros[KVM_MSR_FILTER_MAX_BITMAP_SIZE];
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };
	bool one_reg = kvm_has_cap(KVM_CAP_ONE_REG);
	u64 v, want;
	int i;

	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, 0, 0x3000, zeros);
	mf_range(&f, 1, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 0xc0000000, 0x3000, zeros);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);

	for (i = 0; i < ARRAY_SIZE(msrs); i++) {
		/*
		 * SYSENTER_ESP/EIP are 32-bit MSRs for a vCPU that is not
		 * Intel-compatible (AMD, QEMU TCG's SVM).
		 */
		want = (msrs[i] == MSR_IA32_CR_PAT) ? 0x0007040600070406ull :
		       (msrs[i] == MSR_IA32_SYSENTER_CS) ? 0x10 :
		       (msrs[i] == MSR_IA32_SYSENTER_ESP ||
			msrs[i] == MSR_IA32_SYSENTER_EIP) ? 0x80001000ull + i * 0x10 :
		       0xffffffff80001000ull + i * 0x10;
		TEST_ASSERT_EQ(_vcpu_set_msr(vcpu, msrs[i], want), 1);
		TEST_ASSERT_EQ(vcpu_get_msr(vcpu, msrs[i]), want);
		if (!one_reg)
			continue;
		TEST_ASSERT(!__vcpu_get_reg(vcpu, KVM_X86_REG_MSR(msrs[i]), &v),
			    "ONE_REG get 0x%x: %s", msrs[i], strerror(errno));
		TEST_ASSERT_EQ(v, want);
		want ^= 0x1000;
		if (msrs[i] == MSR_IA32_CR_PAT)
			want = 0x0606060606060606ull;
		TEST_ASSERT(!__vcpu_set_reg(vcpu, KVM_X86_REG_MSR(msrs[i]), want),
			    "ONE_REG set 0x%x: %s", msrs[i], strerror(errno));
		TEST_ASSERT_EQ(vcpu_get_msr(vcpu, msrs[i]), want);
	}
	if (!one_reg)
		ksft_print_msg("KVM_CAP_ONE_REG missing: ONE_REG half not run\n");
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
