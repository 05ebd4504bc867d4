// SPDX-License-Identifier: GPL-2.0-only
/*
 * Guest-visible semantics of MSR filtering and userspace MSR exits: exit
 * reasons, completion, lookup order, x2APIC exemption, intercept
 * recalculation, the emulator path and teardown with an exit pending.
 *
 * The guest is a small "probe" loop: the host writes an operation into
 * guest memory, the guest performs exactly one RDMSR/WRMSR (optionally with
 * the forced emulation prefix) and reports the vector and value back.  The
 * host counts and answers the MSR exits in between.
 *
 * Rule ids refer to abi-rules.md section 1.4 of the kvm-msr-rs project.
 */
#include <pthread.h>
#include <stdlib.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "apic.h"
#include "msr_filter_util.h"

enum {
	OP_RD,
	OP_WR,
	OP_RD_FEP,
	OP_WR_FEP,
	OP_X2APIC_ENABLE,
};

/* Host -> guest. */
static u32 g_op, g_msr;
static u64 g_val;
/* Guest -> host. */
static u8 g_vec;
static u64 g_res;

static void guest_probe(void)
{
	for (;;) {
		GUEST_SYNC(0);
		g_res = 0;
		switch (g_op) {
		case OP_RD:
			g_vec = rdmsr_safe(g_msr, &g_res);
			break;
		case OP_WR:
			g_vec = wrmsr_safe(g_msr, g_val);
			break;
		case OP_RD_FEP:
			g_vec = rdmsr_safe_fep(g_msr, &g_res);
			break;
		case OP_WR_FEP:
			g_vec = kvm_asm_safe_fep("wrmsr", "a"((u32)g_val),
						 "d"((u32)(g_val >> 32)),
						 "c"(g_msr));
			break;
		case OP_X2APIC_ENABLE:
			x2apic_enable();
			g_vec = 0;
			break;
		default:
			GUEST_FAIL("bad op %u", g_op);
		}
	}
}

struct probe {
	int exits;		/* number of MSR exits seen */
	u32 exit_reason;	/* KVM_EXIT_X86_RDMSR/WRMSR of the last one */
	u32 reason;		/* run->msr.reason */
	u64 data;		/* run->msr.data as delivered */
	u8 vector;		/* guest exception vector, 0 if none */
	u64 value;		/* value read by the guest */
};

/* Reply given to the next MSR exit(s). */
static u64 reply_data;
static u8 reply_error;

static void probe_start(struct kvm_vcpu *vcpu)
{
	vcpu_arch_set_entry_point(vcpu, guest_probe);
	mf_install_gp_handler(vcpu->vm);
	mf_expect_sync(vcpu);
}

static struct probe do_probe(struct kvm_vcpu *vcpu, u32 op, u32 msr, u64 val)
{
	struct kvm_run *run = vcpu->run;
	struct probe p = {};
	struct ucall uc;

	g_op = op;
	g_msr = msr;
	g_val = val;
	sync_global_to_guest(vcpu->vm, g_op);
	sync_global_to_guest(vcpu->vm, g_msr);
	sync_global_to_guest(vcpu->vm, g_val);

	for (;;) {
		mf_run(vcpu);
		if (run->exit_reason == KVM_EXIT_X86_RDMSR ||
		    run->exit_reason == KVM_EXIT_X86_WRMSR) {
			p.exits++;
			p.exit_reason = run->exit_reason;
			p.reason = run->msr.reason;
			p.data = run->msr.data;
			TEST_ASSERT(run->msr.index == msr,
				    "exit for MSR 0x%x, want 0x%x",
				    run->msr.index, msr);
			TEST_ASSERT(!run->msr.error, "error byte not cleared");
			for (int i = 0; i < 7; i++)
				TEST_ASSERT(!run->msr.pad[i], "pad not cleared");
			if (run->exit_reason == KVM_EXIT_X86_RDMSR)
				run->msr.data = reply_data;
			run->msr.error = reply_error;
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC,
			    "unexpected ucall %lu", uc.cmd);
		break;
	}
	sync_global_from_guest(vcpu->vm, g_vec);
	sync_global_from_guest(vcpu->vm, g_res);
	p.vector = g_vec;
	p.value = g_res;
	TEST_ASSERT(p.exits <= 1, "%d exits for one access to MSR 0x%x",
		    p.exits, msr);
	return p;
}

static u64 rd_ok(struct kvm_vcpu *vcpu, u32 msr)
{
	struct probe p = do_probe(vcpu, OP_RD, msr, 0);

	TEST_ASSERT(!p.exits && !p.vector,
		    "RDMSR 0x%x: exits=%d vector=%u, want in-kernel success",
		    msr, p.exits, p.vector);
	return p.value;
}

static void wr_ok(struct kvm_vcpu *vcpu, u32 msr, u64 val)
{
	struct probe p = do_probe(vcpu, OP_WR, msr, val);

	TEST_ASSERT(!p.exits && !p.vector,
		    "WRMSR 0x%x: exits=%d vector=%u, want in-kernel success",
		    msr, p.exits, p.vector);
}

/* Access @msr expecting exactly one exit with @reason; reply with success. */
static struct probe expect_exit(struct kvm_vcpu *vcpu, u32 op, u32 msr,
				u64 val, u32 reason)
{
	bool rd = op == OP_RD || op == OP_RD_FEP;
	struct probe p;

	reply_data = 0x5a5a0000ull | msr;
	reply_error = 0;
	p = do_probe(vcpu, op, msr, val);
	TEST_ASSERT(p.exits == 1, "%s 0x%x: no userspace exit (vector %u)",
		    rd ? "RDMSR" : "WRMSR", msr, p.vector);
	TEST_ASSERT_EQ(p.exit_reason, rd ? KVM_EXIT_X86_RDMSR : KVM_EXIT_X86_WRMSR);
	TEST_ASSERT(p.reason == reason, "%s 0x%x: reason %u, want %u",
		    rd ? "RDMSR" : "WRMSR", msr, p.reason, reason);
	TEST_ASSERT(!p.vector, "fault %u after successful completion", p.vector);
	if (rd) {
		TEST_ASSERT_EQ(p.data, 0);
		TEST_ASSERT_EQ(p.value, reply_data);
	} else {
		TEST_ASSERT_EQ(p.data, val);
	}
	return p;
}

static void expect_gp(struct kvm_vcpu *vcpu, u32 op, u32 msr, u64 val)
{
	struct probe p = do_probe(vcpu, op, msr, val);

	TEST_ASSERT(!p.exits && p.vector == GP_VECTOR,
		    "MSR 0x%x op %u: exits=%d vector=%u, want #GP without exit",
		    msr, op, p.exits, p.vector);
}

static bool filter_exit(struct kvm_vcpu *vcpu, u32 op, u32 msr, u64 val)
{
	struct probe p;

	reply_data = 0x5a5a0000ull | msr;
	reply_error = 0;
	p = do_probe(vcpu, op, msr, val);
	if (p.exits)
		TEST_ASSERT(p.reason == KVM_MSR_EXIT_REASON_FILTER,
			    "MSR 0x%x: reason %u, want FILTER", msr, p.reason);
	return p.exits;
}

KVM_ONE_VCPU_TEST_SUITE(msr_exit);

/*
 * F1/F2/F3: unknown MSR -> UNKNOWN, bad value for a known MSR -> INVAL,
 * denied -> FILTER (even for an MSR KVM implements); read data starts at 0,
 * write data is the guest's value.
 */
KVM_ONE_VCPU_TEST(msr_exit, exit_reasons, NULL)
{
	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);

	expect_exit(vcpu, OP_RD, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	expect_exit(vcpu, OP_WR, MSR_NONEXIST, 0xfeedf00d12345678ull,
		    KVM_MSR_EXIT_REASON_UNKNOWN);
	/* EFER bit 63 is reserved: KVM knows EFER but rejects the value. */
	expect_exit(vcpu, OP_WR, MSR_EFER, EFER_LME | EFER_LMA | EFER_NX | BIT_ULL(63),
		    KVM_MSR_EXIT_REASON_INVAL);

	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ);
	expect_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);
	/* Only reads are denied. */
	wr_ok(vcpu, MSR_SYSCALL_MASK, 0x700);
	/* The filter check precedes KVM's handling: unknown+denied -> FILTER. */
	mf_deny_one(vcpu->vm, MSR_NONEXIST, KVM_MSR_FILTER_WRITE);
	expect_exit(vcpu, OP_WR, MSR_NONEXIST, 1, KVM_MSR_EXIT_REASON_FILTER);
	expect_exit(vcpu, OP_RD, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	mf_allow_all(vcpu->vm);
	TEST_ASSERT_EQ(rd_ok(vcpu, MSR_SYSCALL_MASK), 0x700);
}

/*
 * F2/F4: no exit without the reason bit in the mask: the guest gets #GP
 * and KVM_RUN does not fail (the -EPERM regression).
 */
KVM_ONE_VCPU_TEST(msr_exit, gp_without_mask_bit, NULL)
{
	probe_start(vcpu);

	/* Mask never enabled. */
	expect_gp(vcpu, OP_RD, MSR_NONEXIST, 0);
	expect_gp(vcpu, OP_WR, MSR_NONEXIST, 0);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE);
	expect_gp(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);
	expect_gp(vcpu, OP_WR, MSR_SYSCALL_MASK, 0);

	/* FILTER only: unknown and invalid accesses #GP in the kernel. */
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	expect_gp(vcpu, OP_RD, MSR_NONEXIST, 0);
	expect_gp(vcpu, OP_WR, MSR_EFER, EFER_LME | EFER_LMA | EFER_NX | BIT_ULL(63));
	expect_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);

	/* Everything but FILTER: denied accesses #GP. */
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR,
		      KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_UNKNOWN);
	expect_gp(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);
	expect_gp(vcpu, OP_WR, MSR_SYSCALL_MASK, 0);
	expect_exit(vcpu, OP_RD, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
}

/* F5: any nonzero error byte means #GP, for reads and writes. */
KVM_ONE_VCPU_TEST(msr_exit, completion_error_byte, NULL)
{
	static const u8 errs[] = { 1, 2, 0x80, 0xff };
	struct probe p;
	int i;

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE);

	for (i = 0; i < ARRAY_SIZE(errs); i++) {
		reply_error = errs[i];
		reply_data = 0x1234;
		p = do_probe(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);
		TEST_ASSERT(p.exits == 1 && p.vector == GP_VECTOR,
			    "read error=%u: exits=%d vector=%u", errs[i],
			    p.exits, p.vector);
		p = do_probe(vcpu, OP_WR, MSR_SYSCALL_MASK, 0x1234);
		TEST_ASSERT(p.exits == 1 && p.vector == GP_VECTOR,
			    "write error=%u: exits=%d vector=%u", errs[i],
			    p.exits, p.vector);
		p = do_probe(vcpu, OP_RD, MSR_NONEXIST, 0);
		TEST_ASSERT(p.exits == 1 && p.vector == GP_VECTOR,
			    "unknown read error=%u: exits=%d vector=%u", errs[i],
			    p.exits, p.vector);
	}
	/* error = 0 with full 64-bit data: EDX:EAX gets both halves. */
	reply_error = 0;
	reply_data = 0x8877665544332211ull;
	p = do_probe(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);
	TEST_ASSERT(p.exits == 1 && !p.vector, "read: exits=%d vector=%u",
		    p.exits, p.vector);
	TEST_ASSERT_EQ(p.value, 0x8877665544332211ull);
	/* A successful write completion leaves the in-kernel MSR alone. */
	mf_allow_all(vcpu->vm);
	wr_ok(vcpu, MSR_SYSCALL_MASK, 0x300);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_WRITE);
	expect_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0x400, KVM_MSR_EXIT_REASON_FILTER);
	mf_allow_all(vcpu->vm);
	TEST_ASSERT_EQ(rd_ok(vcpu, MSR_SYSCALL_MASK), 0x300);
}

extern char mf_rdmsr_start[], mf_rdmsr_end[];

static void guest_rdmsr_dirty_regs(void)
{
	u64 rax, rdx;

	/* Upper halves of RAX/RDX are dirty before the RDMSR. */
	asm volatile("mov $-1, %%rax\n\t"
		     "mov $-1, %%rdx\n\t"
		     "mf_rdmsr_start: rdmsr\n\t"
		     "mf_rdmsr_end:\n\t"
		     : "=a"(rax), "=d"(rdx) : "c"(MSR_SYSCALL_MASK));
	GUEST_ASSERT_EQ(rax, 0x55667788);
	GUEST_ASSERT_EQ(rdx, 0x11223344);
	GUEST_DONE();
}

/*
 * F5/F8: the completion runs on the next KVM_RUN even with immediate_exit=1
 * (which then fails with EINTR); RAX/RDX are zero-extended and RIP is past
 * the RDMSR when KVM_GET_REGS is called afterwards.
 */
KVM_ONE_VCPU_TEST(msr_exit, immediate_exit_completion, guest_rdmsr_dirty_regs)
{
	struct kvm_run *run = vcpu->run;
	struct kvm_regs regs;
	int r;

	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ);

	mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, MSR_SYSCALL_MASK,
			   KVM_MSR_EXIT_REASON_FILTER);
	vcpu_regs_get(vcpu, &regs);
	TEST_ASSERT_EQ(regs.rip, (u64)mf_rdmsr_start);

	run->msr.data = 0x1122334455667788ull;
	run->immediate_exit = 1;
	r = __vcpu_run(vcpu);
	TEST_ASSERT(r == -1 && errno == EINTR,
		    "KVM_RUN with immediate_exit: r=%d errno=%d", r, errno);
	run->immediate_exit = 0;

	vcpu_regs_get(vcpu, &regs);
	TEST_ASSERT_EQ(regs.rax, 0x55667788);
	TEST_ASSERT_EQ(regs.rdx, 0x11223344);
	TEST_ASSERT_EQ(regs.rip, (u64)mf_rdmsr_end);

	/* The completion must not run twice. */
	mf_expect_done(vcpu);
}

/* A2: the mask is replaced (0 included); a rejected mask keeps the old one. */
KVM_ONE_VCPU_TEST(msr_exit, mask_replace, NULL)
{
	probe_start(vcpu);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ);

	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, KVM_MSR_EXIT_REASON_FILTER), 0);
	expect_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);

	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, 0), 0);
	expect_gp(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);

	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, KVM_MSR_EXIT_REASON_FILTER), 0);
	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, 0x8), -EINVAL);
	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, 0x8 | KVM_MSR_EXIT_REASON_UNKNOWN), -EINVAL);
	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, BIT_ULL(63)), -EINVAL);
	expect_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);
	expect_gp(vcpu, OP_RD, MSR_NONEXIST, 0);

	/* Replaced, not OR-ed. */
	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, KVM_MSR_EXIT_REASON_UNKNOWN), 0);
	expect_gp(vcpu, OP_RD, MSR_SYSCALL_MASK, 0);
	expect_exit(vcpu, OP_RD, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
}

static char saved_ignore_msrs = 'N';

static void restore_ignore_msrs(void)
{
	char v[2] = { saved_ignore_msrs, 0 };

	mf_write_kvm_param("ignore_msrs", v);
}

/*
 * F3: with kvm.ignore_msrs=1 unknown MSRs are handled in the kernel (reads
 * give 0, no #GP, no UNKNOWN exit), but FILTER exits still happen.
 */
KVM_ONE_VCPU_TEST(msr_exit, ignore_msrs, NULL)
{
	struct probe p;

	saved_ignore_msrs = kvm_is_ignore_msrs() ? 'Y' : 'N';
	if (!mf_write_kvm_param("ignore_msrs", "Y"))
		ksft_exit_skip("kvm.ignore_msrs is not writable\n");
	atexit(restore_ignore_msrs);

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	p = do_probe(vcpu, OP_RD, MSR_NONEXIST, 0);
	TEST_ASSERT(!p.exits && !p.vector && !p.value,
		    "ignore_msrs read: exits=%d vector=%u value=0x%lx",
		    p.exits, p.vector, p.value);
	p = do_probe(vcpu, OP_WR, MSR_NONEXIST, 5);
	TEST_ASSERT(!p.exits && !p.vector, "ignore_msrs write: exits=%d vector=%u",
		    p.exits, p.vector);

	mf_deny_one(vcpu->vm, MSR_NONEXIST, KVM_MSR_FILTER_READ);
	expect_exit(vcpu, OP_RD, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_FILTER);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_WRITE);
	expect_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);
	restore_ignore_msrs();
}

/* B3: an empty DEFAULT_ALLOW filter removes filtering, also under DENY. */
KVM_ONE_VCPU_TEST(msr_exit, empty_allow_removes_filter, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_range(&f, 0, KVM_MSR_FILTER_READ, MSR_NONEXIST, 1, &mf_zero_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
	TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "default deny");
	TEST_ASSERT(filter_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0), "default deny");

	/* A rejected empty DENY filter changes nothing. */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), -EINVAL);
	TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "still denied");

	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(&f, 5, 0xdead, 0, 0, (void *)1);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "no filter");
	TEST_ASSERT(!filter_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0), "no filter");
}

/* B5/C3: a failing set (bad 5th range) leaves the old filter fully active. */
KVM_ONE_VCPU_TEST(msr_exit, failed_set_keeps_old_filter, NULL)
{
	struct kvm_msr_filter old = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	struct kvm_msr_filter new = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };
	int i;

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_range(&old, 0, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	mf_range(&old, 1, KVM_MSR_FILTER_WRITE, MSR_STAR, 1, &mf_zero_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &old);

	/* Four valid ranges that would allow SYSCALL_MASK and deny LSTAR... */
	for (i = 0; i < 4; i++)
		mf_range(&new, i, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			 MSR_SYSCALL_MASK + 64 * i, 1, &mf_ones_bits);
	/* ...and a broken 5th one, in three flavours. */
	mf_range(&new, 4, 0x4, MSR_LSTAR, 1, &mf_zero_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &new), -EINVAL);
	mf_range(&new, 4, KVM_MSR_FILTER_READ, MSR_LSTAR, 0x3001, &mf_zero_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &new), -EINVAL);
	mf_range(&new, 4, KVM_MSR_FILTER_READ, MSR_LSTAR, 1, (void *)8);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &new), -EFAULT);

	TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "old range 0 lost");
	TEST_ASSERT(filter_exit(vcpu, OP_WR, MSR_STAR, 0), "old range 1 lost");
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_STAR, 0), "old allow lost");
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_LSTAR, 0), "new filter leaked");
	TEST_ASSERT(!filter_exit(vcpu, OP_WR, MSR_LSTAR, 0), "new default leaked");
}

/*
 * B6/D3: overlapping ranges are accepted and the first range that covers
 * the index *for this access type* decides; a READ-only range does not
 * shadow a later WRITE range.
 */
KVM_ONE_VCPU_TEST(msr_exit, overlap_first_match, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	const u32 rw = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);

	/* Deny first, allow second: denied. */
	mf_range(&f, 0, rw, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	mf_range(&f, 1, rw, MSR_STAR, 64, &mf_ones_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
	TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "first (deny) wins");
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_LSTAR, 0), "second range allows");

	/* Allow first, deny second: allowed. */
	mf_range(&f, 0, rw, MSR_STAR, 64, &mf_ones_bits);
	mf_range(&f, 1, rw, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "first (allow) wins");

	/* READ-only allow, then WRITE deny, then R/W allow. */
	mf_range(&f, 0, KVM_MSR_FILTER_READ, MSR_STAR, 64, &mf_ones_bits);
	mf_range(&f, 1, KVM_MSR_FILTER_WRITE, MSR_SYSCALL_MASK, 1, &mf_zero_bits);
	mf_range(&f, 2, rw, MSR_STAR, 64, &mf_ones_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "read allowed");
	TEST_ASSERT(filter_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0), "write denied");

	/* DEFAULT_DENY with a READ-only allow range: writes hit the default. */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	mf_range(&f, 0, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1, &mf_ones_bits);
	vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_SYSCALL_MASK, 0), "read allowed");
	TEST_ASSERT(filter_exit(vcpu, OP_WR, MSR_SYSCALL_MASK, 0), "write default-denied");

	/* B7: bit i is bit i%8 of byte i/8, little-endian. */
	{
		static u8 bm[8] = { 0xff, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f };

		memset(&f, 0, sizeof(f));
		f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
		mf_range(&f, 0, rw, MSR_STAR, 64, bm);
		vm_ioctl(vcpu->vm, KVM_X86_SET_MSR_FILTER, &f);
		TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_STAR + 9, 0), "bit 9 denied");
		TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_STAR + 63, 0), "bit 63 denied");
		TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_STAR + 1, 0), "bit 1 allowed");
		TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_STAR + 2, 0), "bit 2 allowed");
	}
}

/* D4: base + nmsrs wraps in u32, and such a range never matches. */
KVM_ONE_VCPU_TEST(msr_exit, range_wrap_never_matches, NULL)
{
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_ALLOW };
	struct probe p;

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR,
		      KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		 0xfffffff8, 16, &mf_zero_bits);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);

	/* Inside [base, 2^32) and inside the wrapped part: not filtered. */
	p = expect_exit(vcpu, OP_RD, 0xfffffff8, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	p = expect_exit(vcpu, OP_RD, 0xffffffff, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	p = expect_exit(vcpu, OP_RD, 0x3, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	(void)p;
	TEST_ASSERT(!filter_exit(vcpu, OP_RD, MSR_IA32_SYSENTER_CS, 0), "unrelated");

	/* Under DEFAULT_DENY an all-allow wrapping range doesn't allow anything. */
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	f.ranges[0].bitmap = (u8 *)&mf_ones_bits;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	TEST_ASSERT(filter_exit(vcpu, OP_RD, 0xfffffffa, 0), "wrapped range matched");
	TEST_ASSERT(filter_exit(vcpu, OP_RD, 0x2, 0), "wrapped range matched");

	/* A range ending exactly at 2^32 (end == 0) also never matches. */
	f.ranges[0].nmsrs = 8;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	TEST_ASSERT(filter_exit(vcpu, OP_RD, 0xfffffffa, 0), "end==0 range matched");
	/* While one ending at 2^32 - 1 does. */
	f.ranges[0].nmsrs = 7;
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);
	p = expect_exit(vcpu, OP_RD, 0xfffffffa, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
}

/*
 * D1/F9: x2APIC MSRs 0x800-0x8ff are never filtered, even by a DEFAULT_DENY
 * filter with a deny range over them, but they can still exit with
 * UNKNOWN/INVAL reasons.
 */
KVM_ONE_VCPU_TEST(msr_exit, x2apic_never_filtered, NULL)
{
	static u8 deny_x2apic[32], deny_low[KVM_MSR_FILTER_MAX_BITMAP_SIZE];
	struct kvm_msr_filter f = { .flags = KVM_MSR_FILTER_DEFAULT_DENY };
	u64 id, tpr;
	struct probe p;

	TEST_REQUIRE(kvm_cpu_has(X86_FEATURE_X2APIC));
	probe_start(vcpu);
	p = do_probe(vcpu, OP_X2APIC_ENABLE, 0, 0);
	TEST_ASSERT(!p.exits && !p.vector, "x2APIC enable failed");

	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	mf_range(&f, 0, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, 0x800, 0x100,
		 deny_x2apic);
	mf_range(&f, 1, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE, 0, 0x3000,
		 deny_low);
	MF_ASSERT_ERRNO(mf_set(vcpu->vm, &f), 0);

	/* The filter is in force for ordinary MSRs... */
	TEST_ASSERT(filter_exit(vcpu, OP_RD, MSR_IA32_APICBASE, 0), "APICBASE read");
	/* ...but not for x2APIC registers. */
	id = rd_ok(vcpu, APIC_BASE_MSR + (APIC_ID >> 4));
	TEST_ASSERT_EQ(id, 0);
	rd_ok(vcpu, APIC_BASE_MSR + (APIC_LVR >> 4));
	wr_ok(vcpu, APIC_BASE_MSR + (APIC_TASKPRI >> 4), 0x20);
	tpr = rd_ok(vcpu, APIC_BASE_MSR + (APIC_TASKPRI >> 4));
	TEST_ASSERT_EQ(tpr, 0x20);
	wr_ok(vcpu, APIC_BASE_MSR + (APIC_TASKPRI >> 4), 0);
	rd_ok(vcpu, APIC_BASE_MSR + (APIC_SPIV >> 4));
	wr_ok(vcpu, APIC_BASE_MSR + (APIC_EOI >> 4), 0);

	/* F9: invalid x2APIC accesses still exit with INVAL. */
	p = expect_exit(vcpu, OP_WR, APIC_BASE_MSR + (APIC_ID >> 4), 1,
			KVM_MSR_EXIT_REASON_INVAL);
	p = expect_exit(vcpu, OP_RD, APIC_BASE_MSR + 0xff, 0,
			KVM_MSR_EXIT_REASON_INVAL);
	/* Without INVAL in the mask they #GP. */
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	expect_gp(vcpu, OP_WR, APIC_BASE_MSR + (APIC_ID >> 4), 1);
	(void)p;
}

/*
 * G1/E10: intercepts of passthrough MSRs follow the filter both ways:
 * denied -> every access exits, allowed again -> handled in the kernel (or
 * by hardware) with the guest's own values, denied again -> exits again.
 */
KVM_ONE_VCPU_TEST(msr_exit, intercept_recalc, NULL)
{
	static const u32 msrs[] = { MSR_FS_BASE, MSR_GS_BASE, MSR_KERNEL_GS_BASE,
				    MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP,
				    MSR_IA32_SYSENTER_EIP };
	const u32 rw = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	int i, round;

	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);

	for (round = 0; round < 2; round++) {
		for (i = 0; i < ARRAY_SIZE(msrs); i++) {
			u64 v = 0x1000ull * (i + 1) + round;

			mf_allow_all(vcpu->vm);
			/* Warm up: let KVM disable interception. */
			wr_ok(vcpu, msrs[i], v);
			TEST_ASSERT_EQ(rd_ok(vcpu, msrs[i]), v);

			mf_deny_one(vcpu->vm, msrs[i], rw);
			expect_exit(vcpu, OP_RD, msrs[i], 0, KVM_MSR_EXIT_REASON_FILTER);
			expect_exit(vcpu, OP_WR, msrs[i], v + 0x10,
				    KVM_MSR_EXIT_REASON_FILTER);
			/* Only reads denied: writes pass, reads exit. */
			mf_deny_one(vcpu->vm, msrs[i], KVM_MSR_FILTER_READ);
			wr_ok(vcpu, msrs[i], v + 0x20);
			expect_exit(vcpu, OP_RD, msrs[i], 0, KVM_MSR_EXIT_REASON_FILTER);
			/* Only writes denied. */
			mf_deny_one(vcpu->vm, msrs[i], KVM_MSR_FILTER_WRITE);
			TEST_ASSERT_EQ(rd_ok(vcpu, msrs[i]), v + 0x20);
			expect_exit(vcpu, OP_WR, msrs[i], v + 0x30,
				    KVM_MSR_EXIT_REASON_FILTER);

			mf_allow_all(vcpu->vm);
			TEST_ASSERT_EQ(rd_ok(vcpu, msrs[i]), v + 0x20);
			/* Twice, to make sure interception was dropped again. */
			TEST_ASSERT_EQ(rd_ok(vcpu, msrs[i]), v + 0x20);
			TEST_ASSERT_EQ(vcpu_get_msr(vcpu, msrs[i]), v + 0x20);
		}
	}
}

/*
 * E3/F6: the emulator path (forced emulation prefix) gives exactly one exit
 * per access, RIP lands after prefix + instruction on success and #GP is
 * raised at the RDMSR/WRMSR itself on error (the KVM_ASM_SAFE fixup only
 * accepts that RIP).
 */
KVM_ONE_VCPU_TEST(msr_exit, emulator_path, NULL)
{
	struct probe p;

	TEST_REQUIRE(is_forced_emulation_enabled);
	probe_start(vcpu);
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	mf_deny_one(vcpu->vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE);

	expect_exit(vcpu, OP_RD_FEP, MSR_SYSCALL_MASK, 0, KVM_MSR_EXIT_REASON_FILTER);
	expect_exit(vcpu, OP_WR_FEP, MSR_SYSCALL_MASK, 0x77, KVM_MSR_EXIT_REASON_FILTER);
	expect_exit(vcpu, OP_RD_FEP, MSR_NONEXIST, 0, KVM_MSR_EXIT_REASON_UNKNOWN);
	expect_exit(vcpu, OP_WR_FEP, MSR_NONEXIST, 5, KVM_MSR_EXIT_REASON_UNKNOWN);

	reply_error = 1;
	p = do_probe(vcpu, OP_RD_FEP, MSR_SYSCALL_MASK, 0);
	TEST_ASSERT(p.exits == 1 && p.vector == GP_VECTOR, "FEP read error");
	p = do_probe(vcpu, OP_WR_FEP, MSR_SYSCALL_MASK, 1);
	TEST_ASSERT(p.exits == 1 && p.vector == GP_VECTOR, "FEP write error");
	reply_error = 0;

	/* No exit without the mask bit: #GP from the emulator. */
	vm_enable_cap(vcpu->vm, KVM_CAP_X86_USER_SPACE_MSR, 0);
	expect_gp(vcpu, OP_RD_FEP, MSR_SYSCALL_MASK, 0);
	expect_gp(vcpu, OP_WR_FEP, MSR_NONEXIST, 0);

	/* Allowed accesses are emulated in the kernel. */
	mf_allow_all(vcpu->vm);
	p = do_probe(vcpu, OP_WR_FEP, MSR_SYSCALL_MASK, 0x500);
	TEST_ASSERT(!p.exits && !p.vector, "FEP write");
	p = do_probe(vcpu, OP_RD_FEP, MSR_SYSCALL_MASK, 0);
	TEST_ASSERT(!p.exits && !p.vector && p.value == 0x500, "FEP read");
}

/* C4: a filter installed before the vCPU exists applies from the first run. */
TEST(filter_before_vcpu_creation)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;

	vm = vm_create(1);
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	mf_deny_one(vm, MSR_FS_BASE, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE);
	vcpu = vm_vcpu_add(vm, 0, guest_probe);
	mf_expect_sync(vcpu);
	expect_exit(vcpu, OP_RD, MSR_FS_BASE, 0, KVM_MSR_EXIT_REASON_FILTER);
	expect_exit(vcpu, OP_WR, MSR_FS_BASE, 0x1234, KVM_MSR_EXIT_REASON_FILTER);
	kvm_vm_free(vm);
}

/*
 * C5/J1: destroying the VM while an MSR exit is pending completion (and a
 * filter is installed) must be clean; the pipeline checks the console for
 * KASAN/kmemleak reports.  Also with the vCPU fd closed first.
 */
TEST(teardown_with_pending_exit)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int i;

	for (i = 0; i < 4; i++) {
		vm = vm_create_with_one_vcpu(&vcpu, guest_probe);
		vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
		mf_deny_one(vm, MSR_SYSCALL_MASK, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE);
		mf_expect_sync(vcpu);
		g_op = (i & 1) ? OP_WR : OP_RD;
		g_msr = (i & 2) ? MSR_NONEXIST : MSR_SYSCALL_MASK;
		sync_global_to_guest(vm, g_op);
		sync_global_to_guest(vm, g_msr);
		mf_run(vcpu);
		TEST_ASSERT(vcpu->run->exit_reason == KVM_EXIT_X86_RDMSR ||
			    vcpu->run->exit_reason == KVM_EXIT_X86_WRMSR,
			    "no MSR exit: %s", exit_reason_str(vcpu->run->exit_reason));
		/* Replace the filter while the exit is pending, then drop it all. */
		mf_deny_one(vm, MSR_STAR, KVM_MSR_FILTER_READ);
		kvm_vm_free(vm);
	}
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
