// SPDX-License-Identifier: GPL-2.0-only
/*
 * B4 and the failure atomicity of the MSR filter paths, under systematic
 * fault injection: every allocation and user copy of an operation is made
 * to fail, one at a time, through the per-task countdown
 * /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION with FAILSLAB,
 * FAIL_PAGE_ALLOC and FAULT_INJECTION_USERCOPY; the debug flavour has
 * them).  For N = 1, 2, 3, ... the operation runs with fail-nth = N until
 * a run sees no injected fault.  After every run:
 *
 *   - the return value is 0, or -ENOMEM / -EFAULT and then a fault was
 *     injected (an error without an injected fault is a failure);
 *   - on failure the state from before is still the one in force, on
 *     success the new one: the guest probes an allowed and a denied MSR,
 *     reading and writing (userspace exit with reason FILTER, reason
 *     UNKNOWN, or #GP), and the VM's debugfs msr_filter file is compared
 *     with the one of the expected filter;
 *   - the vCPU still runs (each probe ends at a HLT).
 *
 * Like msr_filter_compat_test this is a standalone program with raw ioctls
 * (the selftest library asserts on every failed ioctl and does not build
 * for i386), built twice: with -m32 it issues the compat
 * KVM_X86_SET_MSR_FILTER and runs the filter operations only; the native
 * build runs every operation.  The guest is real-mode code: RDMSR or WRMSR
 * then HLT, and a #GP handler that is a HLT of its own.
 *
 * The test prints how many faults it injected per operation; an operation
 * that has fault points (the filter ioctls, KVM_ENABLE_CAP, VM creation,
 * the module load) fails if none was injected, so a kernel without working
 * fault injection cannot pass.  Without fail-nth the binary skips (one
 * "1..0 # SKIP"); with MF_FAULTS_DRY=1 in the environment it then runs
 * each operation once without faults instead (a check of the test itself
 * on any KVM host).  Arguments name the operations to run (default: all
 * of the build's), so that the slow ones can be separate tests.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/kvm.h>

#include "kselftest.h"
#include "msr_filter_module.h"

#define MSR_P		0x474f4f00u	/* the probed MSRs, unknown to KVM */
#define MSR_Q		0x474f4f01u
#define FILLER_BASE	0x60000000u
#define MAX_BITS	(0x600 * 8)	/* a maximal bitmap: 0x600 bytes */
#define MEM_SIZE	0x10000
#define RD_GPA		0x1000		/* rdmsr; hlt */
#define WR_GPA		0x1010		/* wrmsr; hlt */
#define GP_GPA		0x2000		/* hlt */
#define MAX_RUNS	20000
#define RD_DATA		0x8877665544332211ull	/* userspace's answer to a RDMSR */

#define ALL_EXITS	(KVM_MSR_EXIT_REASON_FILTER | KVM_MSR_EXIT_REASON_UNKNOWN)

/* What the guest sees when it accesses an MSR. */
enum outcome { O_FILTER, O_UNKNOWN, O_GP, O_BROKEN };

static const char *const outcome_name[] = { "FILTER exit", "UNKNOWN exit", "#GP", "broken" };

/* The filters of the test: none, A and B (which differ on every probe). */
enum variant { V_NONE, V_A, V_B };

struct vm {
	int fd, vcpu;
	struct kvm_run *run;
};

static int kvm_fd, fail_fd = -1, run_size;
static bool dry;	/* MF_FAULTS_DRY=1 without fail-nth: every run once, no faults */
static uint8_t *guest_mem;
static uint8_t bitmaps[2][16][0x600];
static int tests_run, tests_failed;
static char fail_msg[512];

/* Records the first failure of the current test and returns false. */
static bool __printf(1, 2) fail(const char *fmt, ...)
{
	va_list ap;

	if (!fail_msg[0]) {
		va_start(ap, fmt);
		vsnprintf(fail_msg, sizeof(fail_msg), fmt, ap);
		va_end(ap);
	}
	return false;
}

#define CHECK(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)

/* --- fail-nth --- */

/* Arms the countdown: the Nth fault point of this task from now fails. */
static void arm(unsigned int n)
{
	char buf[16];
	int len = snprintf(buf, sizeof(buf), "%u", n);

	if (dry)
		return;
	if (pwrite(fail_fd, buf, len, 0) != len) {
		perror("fail-nth");
		exit(1);
	}
}

/*
 * Disarms the countdown; returns whether the fault was injected since
 * arm(). A remaining count of 0 means it was; the read's own copy to user
 * space is a fault point too, and if that one is hit the read fails, which
 * also means that nothing before it was.
 */
static bool disarm(void)
{
	char buf[16] = "";
	ssize_t r;
	bool injected;

	if (dry)
		return false;
	r = pread(fail_fd, buf, sizeof(buf) - 1, 0);
	injected = r > 0 && atoi(buf) == 0;

	/* The write's copy from user space can consume a last count: fine. */
	if (pwrite(fail_fd, "0", 1, 0) != 1 && errno != EFAULT) {
		perror("fail-nth");
		exit(1);
	}
	return injected;
}

static bool write_knob(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok;
}

/*
 * fail-nth bypasses the probability, but each capability still filters on
 * GFP flags: fail sleeping (GFP_KERNEL) and order-0 allocations too, and
 * print nothing per injected fault (a stack dump each would flood the
 * console).  The old values are restored at exit.
 */
static const char *const knobs[][2] = {
	{ "/sys/kernel/debug/failslab/ignore-gfp-wait", "N" },
	{ "/sys/kernel/debug/failslab/verbose", "0" },
	{ "/sys/kernel/debug/fail_page_alloc/ignore-gfp-wait", "N" },
	{ "/sys/kernel/debug/fail_page_alloc/min-order", "0" },
	{ "/sys/kernel/debug/fail_page_alloc/verbose", "0" },
	{ "/sys/kernel/debug/fail_usercopy/verbose", "0" },
};

#define NR_KNOBS	ARRAY_SIZE(knobs)

static char saved_knobs[NR_KNOBS][16];

static void restore_fault_knobs(void)
{
	size_t i;

	for (i = 0; i < NR_KNOBS; i++)
		if (saved_knobs[i][0])
			write_knob(knobs[i][0], saved_knobs[i]);
}

static void setup_fault_knobs(void)
{
	size_t i;

	for (i = 0; i < NR_KNOBS; i++) {
		FILE *f = fopen(knobs[i][0], "r");

		if (f && !fgets(saved_knobs[i], sizeof(saved_knobs[i]), f))
			saved_knobs[i][0] = 0;
		if (f)
			fclose(f);
		saved_knobs[i][strcspn(saved_knobs[i], "\n")] = 0;
		if (!write_knob(knobs[i][0], knobs[i][1]))
			printf("# cannot set %s to %s\n", knobs[i][0], knobs[i][1]);
	}
	atexit(restore_fault_knobs);
}

/*
 * With @on, sleeping slab allocations and all page allocations are no
 * fault points any more (failslab's ignore-gfp-wait, fail_page_alloc's
 * min-order above the largest order): what remains on the filter paths is
 * their user copies.  Page allocations must go too: SLUB refills a cache
 * with a non-sleeping high-order attempt first, at unpredictable times.
 */
static bool copies_only(bool on)
{
	return write_knob("/sys/kernel/debug/failslab/ignore-gfp-wait", on ? "Y" : "N") &&
	       write_knob("/sys/kernel/debug/fail_page_alloc/min-order", on ? "11" : "0");
}

/* --- Steps: each returns 0 or -errno, armed or not. --- */

static int err(int r)
{
	return r < 0 ? -errno : 0;
}

static void build_filter(struct kvm_msr_filter *f, enum variant v, int nranges)
{
	int i;

	memset(f, 0, sizeof(*f));
	if (v == V_NONE)
		return;
	/*
	 * A: default allow, P denied (bit 0 of a range at P).  B: default deny,
	 * Q denied (bit 9 of a range at P - 8), P allowed.  Every range has a
	 * maximal bitmap; ranges 1.. allow a block of their own.
	 */
	f->flags = v == V_A ? KVM_MSR_FILTER_DEFAULT_ALLOW : KVM_MSR_FILTER_DEFAULT_DENY;
	for (i = 0; i < nranges; i++) {
		uint8_t *bm = bitmaps[v == V_B][i];

		memset(bm, 0xff, 0x600);
		f->ranges[i].nmsrs = MAX_BITS;
		f->ranges[i].bitmap = bm;
		if (i == 0) {
			f->ranges[i].flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
			f->ranges[i].base = v == V_A ? MSR_P : MSR_P - 8;
			bm[v == V_A ? 0 : 1] &= v == V_A ? ~1 : ~2;
		} else {
			f->ranges[i].flags = i % 3 == 0 ? KVM_MSR_FILTER_READ :
					     i % 3 == 1 ? KVM_MSR_FILTER_WRITE :
					     KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
			f->ranges[i].base = FILLER_BASE + i * 0x4000;
		}
	}
}

static int st_filter(struct vm *vm, enum variant v, int nranges)
{
	struct kvm_msr_filter f;

	build_filter(&f, v, nranges);
	return err(ioctl(vm->fd, KVM_X86_SET_MSR_FILTER, &f));
}

static int st_cap(struct vm *vm, uint64_t mask)
{
	struct kvm_enable_cap cap = {
		.cap = KVM_CAP_X86_USER_SPACE_MSR,
		.args = { mask },
	};

	return err(ioctl(vm->fd, KVM_ENABLE_CAP, &cap));
}

static int st_create_vm(struct vm *vm)
{
	vm->fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
	return vm->fd < 0 ? -errno : 0;
}

static int st_memslot(struct vm *vm)
{
	struct kvm_userspace_memory_region region = {
		.memory_size = MEM_SIZE,
		.userspace_addr = (uintptr_t)guest_mem,
	};

	return err(ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &region));
}

static int st_create_vcpu(struct vm *vm)
{
	vm->vcpu = ioctl(vm->fd, KVM_CREATE_VCPU, 0);
	return vm->vcpu < 0 ? -errno : 0;
}

static int st_map_run(struct vm *vm)
{
	void *p = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vm->vcpu, 0);

	if (p == MAP_FAILED)
		return -errno;
	vm->run = p;
	return 0;
}

static int st_real_mode(struct vm *vm)
{
	struct kvm_sregs sregs;

	if (ioctl(vm->vcpu, KVM_GET_SREGS, &sregs))
		return -errno;
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	sregs.ss.base = 0;
	sregs.ss.selector = 0;
	return err(ioctl(vm->vcpu, KVM_SET_SREGS, &sregs));
}

static void vm_close(struct vm *vm)
{
	if (vm->run)
		munmap(vm->run, run_size);
	if (vm->vcpu > 0)
		close(vm->vcpu);
	if (vm->fd > 0)
		close(vm->fd);
	memset(vm, 0, sizeof(*vm));
}

/* Is @r an errno that an injected fault may cause? */
static bool fault_errno(int r)
{
	return r == -ENOMEM || r == -EFAULT;
}

/* Counts of one operation's runs. */
struct tally {
	double secs;
	int runs, injected, enomem, efault, absorbed;
	int emulation;		/* failed emulations (internal error, unskipped HLT) */
	int no_debugfs;		/* VMs created without their debugfs directory */
};

/*
 * Judges one armed step: @r is its result and @injected whether a fault was
 * injected.  An injected fault may also be absorbed (a fallback, or a
 * fault point outside the step's error path).
 */
static bool judge(struct tally *t, const char *what, int r, bool injected)
{
	if (injected)
		t->injected++;
	if (!r) {
		t->absorbed += injected;
		return true;
	}
	CHECK(injected, "%s failed with %s (%d) and no fault was injected",
	      what, strerror(-r), r);
	CHECK(fault_errno(r), "%s failed with %s (%d) on an injected fault, want ENOMEM or EFAULT",
	      what, strerror(-r), r);
	if (r == -ENOMEM)
		t->enomem++;
	else
		t->efault++;
	return true;
}

static void report(const char *op, const struct tally *t)
{
	printf("# faults: %s: %d runs, %d faults injected (ENOMEM %d, EFAULT %d, absorbed %d",
	       op, t->runs, t->injected, t->enomem, t->efault, t->absorbed);
	if (t->emulation)
		printf(", emulation failures %d", t->emulation);
	if (t->no_debugfs)
		printf(", VMs without debugfs %d", t->no_debugfs);
	printf(") in %.1f s\n", t->secs);
}

/* --- Probing the state in force --- */

/* Completes a userspace MSR exit without error (a RDMSR reads RD_DATA). */
static void complete_msr_exit(struct kvm_run *run)
{
	run->msr.error = 0;
	run->msr.data = RD_DATA;
}

/* Did the guest's RDMSR get RD_DATA in EDX:EAX? */
static bool read_completed(const struct kvm_regs *regs)
{
	return regs->rax == (uint32_t)RD_DATA && regs->rdx == RD_DATA >> 32;
}

/* One guest RDMSR (or WRMSR) of @msr; completes a userspace exit. */
static enum outcome probe(struct vm *vm, bool write, uint32_t msr)
{
	struct kvm_run *run = vm->run;
	uint32_t gpa = write ? WR_GPA : RD_GPA;
	struct kvm_regs regs = {
		.rip = gpa, .rsp = 0x8000, .rflags = 2, .rcx = msr,
		.rax = 0x11112222, .rdx = 0x33334444,
	};
	enum outcome o;

	if (ioctl(vm->vcpu, KVM_SET_REGS, &regs) || ioctl(vm->vcpu, KVM_RUN, 0))
		return O_BROKEN;
	if (run->exit_reason == KVM_EXIT_HLT) {
		if (ioctl(vm->vcpu, KVM_GET_REGS, &regs) || regs.rip != GP_GPA + 1)
			return O_BROKEN;
		return O_GP;
	}
	if (run->exit_reason != (write ? KVM_EXIT_X86_WRMSR : KVM_EXIT_X86_RDMSR) ||
	    run->msr.index != msr)
		return O_BROKEN;
	if (write && run->msr.data != 0x3333444411112222ull)
		return O_BROKEN;
	switch (run->msr.reason) {
	case KVM_MSR_EXIT_REASON_FILTER:
		o = O_FILTER;
		break;
	case KVM_MSR_EXIT_REASON_UNKNOWN:
		o = O_UNKNOWN;
		break;
	default:
		return O_BROKEN;
	}
	complete_msr_exit(run);
	if (ioctl(vm->vcpu, KVM_RUN, 0) || run->exit_reason != KVM_EXIT_HLT ||
	    ioctl(vm->vcpu, KVM_GET_REGS, &regs) || regs.rip != gpa + 3)
		return O_BROKEN;
	if (!write && !read_completed(&regs))
		return O_BROKEN;
	return o;
}

/* What the guest must see for @msr under filter @v and exit mask @mask. */
static enum outcome expected(enum variant v, uint64_t mask, uint32_t msr)
{
	bool denied = (v == V_A && msr == MSR_P) || (v == V_B && msr == MSR_Q);

	if (denied)
		return mask & KVM_MSR_EXIT_REASON_FILTER ? O_FILTER : O_GP;
	return mask & KVM_MSR_EXIT_REASON_UNKNOWN ? O_UNKNOWN : O_GP;
}

static const char *variant_name(enum variant v)
{
	return v == V_A ? "A" : v == V_B ? "B" : "none";
}

/*
 * The VM's debugfs msr_filter file without its counters ("generation",
 * "pending", "waits"): the filter itself.  Empty if there is no such file.
 */
static bool dump(struct vm *vm, char *buf, size_t len)
{
	char path[96], line[256];
	size_t used = 0;
	FILE *f;

	buf[0] = 0;
	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/msr_filter",
		 getpid(), vm->fd);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "generation:", 11) || !strncmp(line, "pending:", 8) ||
		    !strncmp(line, "waits:", 6))
			continue;
		used += snprintf(buf + used, len - used, "%s", line);
		if (used >= len)
			break;
	}
	fclose(f);
	return true;
}

/* The dumps of the filters, taken once per VM shape (see ref_dumps()). */
static char dumps[3][2048];

/*
 * KVM creates a VM's debugfs directory on a best-effort basis: a VM whose
 * creation had a fault injected may have none (KVM ignores the failure),
 * and then only the guest's probes are checked.
 */
static bool debugfs_optional;

/* Probes: the guest sees filter @v with mask @mask, and debugfs shows @v. */
static bool in_force(struct vm *vm, enum variant v, uint64_t mask, const char *when)
{
	static const bool writes[] = { false, false, true, true };
	static const uint32_t msrs[] = { MSR_P, MSR_Q, MSR_P, MSR_Q };
	char now[2048];
	int i;

	if (dump(vm, now, sizeof(now)) || !debugfs_optional)
		CHECK(!strcmp(now, dumps[v]), "%s: debugfs shows\n%s# instead of filter %s:\n%s",
		      when, now, variant_name(v), dumps[v]);
	for (i = 0; i < 4; i++) {
		enum outcome got = probe(vm, writes[i], msrs[i]);
		enum outcome want = expected(v, mask, msrs[i]);

		CHECK(got == want, "%s: %s 0x%x gave %s, want %s (filter %s, mask 0x%llx)",
		      when, writes[i] ? "WRMSR" : "RDMSR", msrs[i], outcome_name[got],
		      outcome_name[want], variant_name(v), (unsigned long long)mask);
	}
	return true;
}

/* Records the debugfs dump of each filter with @nranges ranges. */
static bool ref_dumps(struct vm *vm, int nranges)
{
	enum variant v;

	for (v = V_NONE; v <= V_B; v++) {
		CHECK(!st_filter(vm, v, nranges), "setting filter %s: %s",
		      variant_name(v), strerror(errno));
		dump(vm, dumps[v], sizeof(dumps[v]));
	}
	return true;
}

/* A VM with a vCPU in real mode, set up without faults. */
static bool vm_open(struct vm *vm)
{
	memset(vm, 0, sizeof(*vm));
	CHECK(!st_create_vm(vm), "KVM_CREATE_VM: %s", strerror(errno));
	CHECK(!st_memslot(vm), "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	CHECK(!st_create_vcpu(vm), "KVM_CREATE_VCPU: %s", strerror(errno));
	CHECK(!st_map_run(vm), "mmap(kvm_run): %s", strerror(errno));
	CHECK(!st_real_mode(vm), "KVM_SET_SREGS: %s", strerror(errno));
	return true;
}

static double now_secs(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* --- The operations --- */

/*
 * One run of an operation with its Nth fault point armed.  Returns 1 if a
 * fault was injected (run it again with N + 1), 0 if none was (done), -1
 * on a failure (fail() has the reason).
 */
typedef int (*run_fn)(void *ctx, unsigned int n, struct tally *t);

#define RCHECK(cond, ...) do { if (!(cond)) { fail(__VA_ARGS__); return -1; } } while (0)

/* Runs @run for N = 1, 2, 3, ... until a run injects nothing. */
static bool systematic(run_fn run, void *ctx, struct tally *t, bool has_fault_points)
{
	unsigned int n;
	int r = 1;

	for (n = 1; n < MAX_RUNS && r == 1; n++, t->runs++)
		r = run(ctx, n, t);
	if (r < 0)
		return false;
	CHECK(r == 0, "still injecting after %d runs", MAX_RUNS);
	CHECK(t->injected || !has_fault_points || dry, "no fault was injected");
	return true;
}

/* A setup step that must succeed. */
static bool setup_ok(int r, const char *what)
{
	CHECK(!r, "%s: %s", what, strerror(-r));
	return true;
}

/* KVM_X86_SET_MSR_FILTER from A to @to (B, or none: the clearing call). */
struct set_ctx {
	struct vm vm;
	const char *name;
	enum variant to;
	int nranges;
};

static int set_run(void *ctx, unsigned int n, struct tally *t)
{
	struct set_ctx *c = ctx;
	bool injected;
	int r;

	RCHECK(!st_filter(&c->vm, V_A, c->nranges), "reinstalling filter A: %s", strerror(errno));
	arm(n);
	r = st_filter(&c->vm, c->to, c->nranges);
	injected = disarm();
	if (!judge(t, c->name, r, injected) ||
	    !in_force(&c->vm, r ? V_A : c->to, ALL_EXITS, r ? "after a failed set" : "after a set"))
		return -1;
	return injected;
}

/*
 * Then once more with only the user copies as fault points: each failed
 * copy must give EFAULT, and each copy the ioctl makes (the structure, and
 * the bitmap of each non-empty range) must fail once.
 */
static bool op_set(const char *op, const char *name, enum variant to, int nranges,
		   struct tally *t)
{
	struct set_ctx c = { .name = name, .to = to, .nranges = nranges };
	int copies = 1 + (to == V_NONE ? 0 : nranges);
	struct tally ct = {};
	char what[96];
	bool ok = vm_open(&c.vm) && setup_ok(st_cap(&c.vm, ALL_EXITS), "KVM_ENABLE_CAP") &&
		  ref_dumps(&c.vm, nranges) && systematic(set_run, &c, t, true);

	if (ok && !dry) {
		ct.secs = now_secs();
		ok = copies_only(true) || fail("cannot make the user copies the only fault points");
		ok = ok && systematic(set_run, &c, &ct, true);
		copies_only(false);
		ct.secs = now_secs() - ct.secs;
		snprintf(what, sizeof(what), "%s, copies only", op);
		report(what, &ct);
		ok = ok && ((ct.enomem == 0 && ct.efault == copies) ||
			    fail("with copies only: ENOMEM %d, EFAULT %d; want 0 and %d",
				 ct.enomem, ct.efault, copies));
	}
	vm_close(&c.vm);
	return ok;
}

/* KVM_ENABLE_CAP(KVM_CAP_X86_USER_SPACE_MSR) from FILTER|UNKNOWN to FILTER. */
static int cap_run(void *ctx, unsigned int n, struct tally *t)
{
	struct vm *vm = ctx;
	bool injected;
	int r;

	RCHECK(!st_cap(vm, ALL_EXITS), "KVM_ENABLE_CAP: %s", strerror(errno));
	arm(n);
	r = st_cap(vm, KVM_MSR_EXIT_REASON_FILTER);
	injected = disarm();
	if (!judge(t, "KVM_ENABLE_CAP", r, injected) ||
	    !in_force(vm, V_A, r ? ALL_EXITS : KVM_MSR_EXIT_REASON_FILTER,
		      r ? "after a failed KVM_ENABLE_CAP" : "after KVM_ENABLE_CAP"))
		return -1;
	return injected;
}

static bool op_enable_cap(struct tally *t)
{
	struct vm vm;
	bool ok = vm_open(&vm) && ref_dumps(&vm, 1) &&
		  setup_ok(st_filter(&vm, V_A, 1), "KVM_X86_SET_MSR_FILTER") &&
		  systematic(cap_run, &vm, t, true);

	vm_close(&vm);
	return ok;
}

static int st_filter_a4(struct vm *vm)
{
	return st_filter(vm, V_A, 4);
}

static int st_cap_all(struct vm *vm)
{
	return st_cap(vm, ALL_EXITS);
}

/* The steps of VM creation, in order; one of the two filter steps runs. */
enum { S_VM, S_FILTER_EARLY = 2, S_FILTER_LATE = 6 };

static const struct {
	const char *name;
	int (*run)(struct vm *vm);
} steps[] = {
	{ "KVM_CREATE_VM", st_create_vm },
	{ "KVM_SET_USER_MEMORY_REGION", st_memslot },
	{ "KVM_X86_SET_MSR_FILTER", st_filter_a4 },	/* S_FILTER_EARLY */
	{ "KVM_CREATE_VCPU", st_create_vcpu },
	{ "mmap(kvm_run)", st_map_run },
	{ "KVM_{GET,SET}_SREGS", st_real_mode },
	{ "KVM_X86_SET_MSR_FILTER", st_filter_a4 },	/* S_FILTER_LATE */
	{ "KVM_ENABLE_CAP", st_cap_all },
};

/*
 * Runs the steps of VM creation from @first on, with the filter set after
 * the vCPU if @late; returns the index of the step that failed (its result
 * in *@res), or -1.
 */
static int create_steps(struct vm *vm, bool late, int first, int *res)
{
	int s;

	for (s = first; s < (int)ARRAY_SIZE(steps); s++) {
		if (s == (late ? S_FILTER_EARLY : S_FILTER_LATE))
			continue;
		*res = steps[s].run(vm);
		if (*res)
			return s;
	}
	return -1;
}

/*
 * VM creation with filter A installed before (or, with @late, after) the
 * vCPU: the whole sequence armed.  A failed step is retried without faults
 * and the sequence finished; then A must be in force and the vCPU run.
 */
static int create_run(void *ctx, unsigned int n, struct tally *t)
{
	static char scratch[2048];
	bool late = *(bool *)ctx, injected, ok;
	struct vm vm = {};
	int s, r = 0;

	arm(n);
	s = create_steps(&vm, late, S_VM, &r);
	injected = disarm();
	ok = judge(t, s < 0 ? "VM creation" : steps[s].name, r, injected);
	if (ok && s >= 0 && create_steps(&vm, late, s, &r) >= 0)
		ok = fail("%s after an injected fault: retried, it failed with %s",
			  steps[s].name, strerror(-r));
	if (ok) {
		if (injected && dumps[V_A][0] && !dump(&vm, scratch, sizeof(scratch)))
			t->no_debugfs++;
		debugfs_optional = injected;
		ok = in_force(&vm, V_A, ALL_EXITS, s < 0 ? "after creation" :
			      "after creation with a failed step");
		debugfs_optional = false;
	}
	vm_close(&vm);
	return ok ? injected : -1;
}

static bool op_create(bool late, struct tally *t)
{
	struct vm vm;
	bool ok = vm_open(&vm) && ref_dumps(&vm, 4);

	vm_close(&vm);
	return ok && systematic(create_run, &late, t, true);
}

/*
 * A denied RDMSR of a fresh vCPU (its first KVM_RUN: MMU roots and guest
 * page tables are allocated there), the exit to userspace and its
 * completion, both KVM_RUNs armed.  Then the vCPU is run without faults
 * until its HLT: a failed KVM_RUN is retried, and the exit must have been
 * delivered once and the read completed with userspace's data.  A fault in
 * a guest memory read of the instruction emulator ends KVM_RUN with
 * KVM_EXIT_INTERNAL_ERROR (KVM_INTERNAL_ERROR_EMULATION), in C and Rust
 * alike (it is upstream's emulator); that is accepted after an injected
 * fault, and running again retries the instruction: the RDMSR itself if
 * the failed emulation was the skip over it after the completion (no
 * NRIPS), which then exits again.  A failed skip over the HLT is not
 * reported at all: the HLT exit comes with RIP still on the HLT.
 */
static bool exit_settle(struct vm *vm, struct tally *t, bool fresh, bool completed,
			bool injected)
{
	struct kvm_run *run = vm->run;
	struct kvm_regs regs;
	int k;

	for (k = 0; k < 6; k++) {
		if (!fresh)
			CHECK(!ioctl(vm->vcpu, KVM_RUN, 0), "KVM_RUN retried: %s", strerror(errno));
		fresh = false;
		switch (run->exit_reason) {
		case KVM_EXIT_HLT:
			CHECK(completed, "HLT before the RDMSR exit");
			CHECK(!ioctl(vm->vcpu, KVM_GET_REGS, &regs), "KVM_GET_REGS");
			/*
			 * Without NRIPS the skip over the HLT is an emulation
			 * too; if it fails, KVM still exits with KVM_EXIT_HLT,
			 * RIP on the HLT, and running again executes it again.
			 */
			if (regs.rip == RD_GPA + 2 && injected) {
				t->emulation++;
				break;
			}
			CHECK(regs.rip == RD_GPA + 3 && read_completed(&regs),
			      "the read did not complete (rip 0x%llx, rax 0x%llx, rdx 0x%llx)",
			      (unsigned long long)regs.rip, (unsigned long long)regs.rax,
			      (unsigned long long)regs.rdx);
			return true;
		case KVM_EXIT_X86_RDMSR:
			CHECK(!completed, "a second RDMSR exit after the completion");
			CHECK(run->msr.index == MSR_P &&
			      run->msr.reason == KVM_MSR_EXIT_REASON_FILTER,
			      "RDMSR exit for 0x%x, reason %u", run->msr.index, run->msr.reason);
			complete_msr_exit(run);
			completed = true;
			break;
		case KVM_EXIT_INTERNAL_ERROR:
			CHECK(injected && run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION,
			      "KVM_EXIT_INTERNAL_ERROR, suberror %u, %s", run->internal.suberror,
			      injected ? "after an injected fault" : "no fault injected");
			t->emulation++;
			/*
			 * Without NRIPS (SVM under QEMU TCG) the completion skips
			 * the RDMSR with the emulator; if that fails the RDMSR is
			 * executed again and exits again.
			 */
			completed = false;
			break;
		default:
			return fail("exit reason %u", run->exit_reason);
		}
	}
	return fail("no HLT after %d runs", k);
}

/*
 * A VM with filter A of @nranges ranges and every exit enabled, whose
 * vCPU is about to RDMSR the denied MSR P; set up without faults.
 */
static bool vm_at_denied_rdmsr(struct vm *vm, int nranges)
{
	struct kvm_regs regs = {
		.rip = RD_GPA, .rsp = 0x8000, .rflags = 2, .rcx = MSR_P,
	};
	bool ok = vm_open(vm) && setup_ok(st_cap(vm, ALL_EXITS), "KVM_ENABLE_CAP") &&
		  setup_ok(st_filter(vm, V_A, nranges), "KVM_X86_SET_MSR_FILTER") &&
		  setup_ok(err(ioctl(vm->vcpu, KVM_SET_REGS, &regs)), "KVM_SET_REGS");

	if (!ok)
		vm_close(vm);
	return ok;
}

static int exit_run(void *ctx, unsigned int n, struct tally *t)
{
	bool injected, exited = false, ok;
	struct vm vm;
	int r1, r2 = 0;

	(void)ctx;
	if (!vm_at_denied_rdmsr(&vm, 1))
		return -1;
	arm(n);
	r1 = err(ioctl(vm.vcpu, KVM_RUN, 0));
	if (!r1 && vm.run->exit_reason == KVM_EXIT_X86_RDMSR && vm.run->msr.index == MSR_P) {
		exited = true;
		complete_msr_exit(vm.run);
		r2 = err(ioctl(vm.vcpu, KVM_RUN, 0));
	}
	injected = disarm();
	/* The exit of the last KVM_RUN is still to be handled if it succeeded. */
	ok = judge(t, r1 ? "KVM_RUN to the exit" : "KVM_RUN completing the exit",
		   r1 ? r1 : r2, injected) &&
	     exit_settle(&vm, t, r1 ? false : exited ? !r2 : true, exited, injected);
	vm_close(&vm);
	return ok ? injected : -1;
}

static bool op_exit(struct tally *t)
{
	return systematic(exit_run, NULL, t, false);
}

/* The module's reference count, or -1 if it is not loaded. */
static int module_refcnt(void)
{
	FILE *f = fopen("/sys/module/" MF_MODULE "/refcnt", "r");
	int n = -1;

	if (!f)
		return -1;
	if (fscanf(f, "%d", &n) != 1)
		n = -1;
	fclose(f);
	return n;
}

/*
 * VM teardown with filter A installed and an RDMSR exit pending (not
 * completed): munmap and both closes armed.  Each returns 0; afterwards
 * the VM's debugfs directory is gone and the module (if this VM used it)
 * is released.  Leaks show in the kmemleak scan after the tests.
 */
static int teardown_run(void *ctx, unsigned int n, struct tally *t)
{
	int refs = *(int *)ctx, r;
	char path[96];
	bool injected;
	struct vm vm;

	if (!vm_at_denied_rdmsr(&vm, 16))
		return -1;
	if (ioctl(vm.vcpu, KVM_RUN, 0) || vm.run->exit_reason != KVM_EXIT_X86_RDMSR) {
		vm_close(&vm);
		fail("setting up the pending exit: %s", strerror(errno));
		return -1;
	}
	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d", getpid(), vm.fd);
	arm(n);
	r = err(munmap(vm.run, run_size));
	r = r ? r : err(close(vm.vcpu));
	r = r ? r : err(close(vm.fd));
	injected = disarm();
	t->injected += injected;
	t->absorbed += injected && !r;
	RCHECK(!r, "teardown failed with %s", strerror(-r));
	RCHECK(access(path, F_OK), "%s still exists after the teardown", path);
	RCHECK(module_refcnt() == refs, "module refcnt %d after the teardown, %d before",
	       module_refcnt(), refs);
	return injected;
}

static bool op_teardown(struct tally *t)
{
	int refs = module_refcnt();

	return systematic(teardown_run, &refs, t, false);
}

/*
 * A new VM uses the implementation @rust says (its debugfs file, before
 * any filter is set, names it), filters and runs.
 */
static bool new_vm_works(bool rust, const char *when)
{
	struct vm vm;
	char d[2048];
	bool ok;

	if (!vm_open(&vm))
		return false;
	ok = !dump(&vm, d, sizeof(d)) ||
	     !strncmp(d, rust ? "impl: rust\n" : "impl: c\n", rust ? 11 : 8) ||
	     fail("%s: a new VM's msr_filter file starts\n%s# want impl: %s", when, d,
		  rust ? "rust" : "c");
	ok = ok && setup_ok(st_cap(&vm, ALL_EXITS), "KVM_ENABLE_CAP") && ref_dumps(&vm, 1) &&
	     setup_ok(st_filter(&vm, V_A, 1), "KVM_X86_SET_MSR_FILTER") &&
	     in_force(&vm, V_A, ALL_EXITS, when);
	vm_close(&vm);
	return ok;
}

/*
 * The Rust implementation's module, unloaded (@loading false) or loaded:
 * after a failed load the module is not loaded and new VMs use C; after a
 * failed unload it is live and new VMs use Rust.  A success with an
 * absorbed fault is undone for the next run.
 */
static int module_run(void *ctx, unsigned int n, struct tally *t)
{
	bool loading = *(bool *)ctx, injected, live;
	const char *what = loading ? "finit_module" : "delete_module";
	int r;

	arm(n);
	r = loading ? mf_load_rust() : mf_unload_rust();
	injected = disarm();
	if (!judge(t, what, r, injected))
		return -1;
	live = mf_rust_loaded();
	RCHECK(live == (loading == !r), "after %s %s: the module is %slive", what,
	       r ? "failed" : "succeeded", live ? "" : "not ");
	if (!new_vm_works(live, loading ? "after finit_module" : "after delete_module"))
		return -1;
	if (injected && !r)
		RCHECK(!(loading ? mf_unload_rust() : mf_load_rust()),
		       "undoing an absorbed fault: %s", strerror(errno));
	return injected;
}

/* Unload and load (or load and unload): the module ends as it started. */
static bool op_module(struct tally *t)
{
	bool was_live = mf_rust_loaded(), loading = !was_live;

	if (!systematic(module_run, &loading, t, true))
		return false;
	loading = !loading;
	if (!systematic(module_run, &loading, t, true))
		return false;
	CHECK(mf_rust_loaded() == was_live, "the module did not end as it started");
	return true;
}

/* --- TAP output and main --- */

static void result(const char *name, bool ok, const char *skip)
{
	tests_run++;
	if (skip) {
		printf("ok %d %s # SKIP %s\n", tests_run, name, skip);
		return;
	}
	if (!ok) {
		tests_failed++;
		printf("# %s: %s\n", name, fail_msg[0] ? fail_msg : "failed");
	}
	printf("%s %d %s\n", ok ? "ok" : "not ok", tests_run, name);
	fflush(stdout);
}

/* The operations, in run order; the 32-bit build runs the filter ones. */
static const struct {
	const char *name;
	bool native_only;
} ops[] = {
	{ "set_1_range", false }, { "set_4_ranges", false }, { "set_16_ranges", false },
	{ "set_clear", false },
	{ "enable_cap", true }, { "create_filter_before_vcpu", true },
	{ "create_filter_after_vcpu", true }, { "exit_and_completion", true },
	{ "teardown_exit_pending", true }, { "module_unload_load", true },
};

#define NR_OPS	((int)ARRAY_SIZE(ops))

static bool run_op(int i, struct tally *t)
{
	switch (i) {
	case 0:
		return op_set(ops[i].name, "KVM_X86_SET_MSR_FILTER", V_B, 1, t);
	case 1:
		return op_set(ops[i].name, "KVM_X86_SET_MSR_FILTER", V_B, 4, t);
	case 2:
		return op_set(ops[i].name, "KVM_X86_SET_MSR_FILTER", V_B, 16, t);
	case 3:
		return op_set(ops[i].name, "KVM_X86_SET_MSR_FILTER (clearing)", V_NONE, 16, t);
	case 4:
		return op_enable_cap(t);
	case 5:
		return op_create(false, t);
	case 6:
		return op_create(true, t);
	case 7:
		return op_exit(t);
	case 8:
		return op_teardown(t);
	default:
		return op_module(t);
	}
}

/*
 * Usage: msr_filter_faults_test_{32,64} [OPERATION...]: the named
 * operations (see ops[]), or all of this build's.
 */
int main(int argc, char *argv[])
{
	static const uint8_t rd[] = { 0x0f, 0x32, 0xf4 };	/* rdmsr; hlt */
	static const uint8_t wr[] = { 0x0f, 0x30, 0xf4 };	/* wrmsr; hlt */
	bool native = sizeof(void *) == 8, selected[NR_OPS] = {};
	const char *skip = NULL;
	int i, j, plan = 0;
	uint16_t *ivt;

	for (i = 0; i < NR_OPS; i++)
		selected[i] = argc == 1 && (native || !ops[i].native_only);
	for (j = 1; j < argc; j++) {
		for (i = 0; i < NR_OPS && strcmp(argv[j], ops[i].name); i++)
			;
		if (i == NR_OPS) {
			fprintf(stderr, "unknown operation %s\n", argv[j]);
			return 2;
		}
		selected[i] = true;
	}
	for (i = 0; i < NR_OPS; i++)
		plan += selected[i];

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("TAP version 13\n");
	kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	fail_fd = open("/proc/thread-self/fail-nth", O_RDWR | O_CLOEXEC);
	if (kvm_fd < 0)
		skip = "no /dev/kvm";
	else if (ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_X86_MSR_FILTER) != 1)
		skip = "no KVM_CAP_X86_MSR_FILTER";
	else if (fail_fd < 0 && getenv("MF_FAULTS_DRY"))
		dry = true;
	else if (fail_fd < 0)
		skip = "no /proc/thread-self/fail-nth (CONFIG_FAULT_INJECTION: the debug flavour)";
	if (skip) {
		/* One skip for the binary, not one per operation. */
		printf("1..0 # SKIP %s\n", skip);
		return 4;
	}
	printf("1..%d\n", plan);
	printf("# %s-bit build: KVM_X86_SET_MSR_FILTER = 0x%x\n", native ? "64" : "32",
	       (unsigned int)KVM_X86_SET_MSR_FILTER);
	if (dry)
		printf("# MF_FAULTS_DRY: no fault injection, each operation runs once\n");
	else
		setup_fault_knobs();
	run_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	guest_mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (guest_mem == MAP_FAILED || run_size <= 0) {
		perror("setup");
		return 1;
	}
	memcpy(guest_mem + RD_GPA, rd, sizeof(rd));
	memcpy(guest_mem + WR_GPA, wr, sizeof(wr));
	guest_mem[GP_GPA] = 0xf4;
	ivt = (uint16_t *)guest_mem;
	ivt[13 * 2] = GP_GPA;
	ivt[13 * 2 + 1] = 0;

	for (i = 0; i < NR_OPS; i++) {
		const char *why = NULL;
		struct tally t = {};
		bool ok = false;

		if (!selected[i])
			continue;
		if (!why && ops[i].native_only && !native)
			why = "the 64-bit build runs it";
		if (!why && !strcmp(ops[i].name, "module_unload_load") &&
		    (getuid() || !mf_rust_available()))
			why = "no " MF_MODULE_PATH " (or not root)";
		fail_msg[0] = 0;
		if (!why) {
			t.secs = now_secs();
			ok = run_op(i, &t);
			t.secs = now_secs() - t.secs;
			report(ops[i].name, &t);
		}
		result(ops[i].name, ok, why);
	}
	return tests_failed ? 1 : 0;
}
