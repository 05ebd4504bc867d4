// SPDX-License-Identifier: GPL-2.0-only
/*
 * C1-C3, J2: several vCPUs spin on RDMSR/WRMSR while the main thread keeps
 * replacing the MSR filter (and issuing failing sets).  Every observed
 * result must be explained by either the old or the new filter:
 *
 *   MSR_A (SYSENTER_ESP)   read+write denied by both filters: always exits
 *   MSR_B (SYSENTER_EIP)   allowed by both filters: never exits
 *   MSR_C (KERNEL_GS_BASE) reads denied by filter X only, writes by Y only
 *
 * Reads handled by userspace return a marker, reads handled by KVM return
 * the value the host stored, so the guest can tell which path ran.
 *
 * Usage: msr_filter_stress_test [-i iterations] [-s seconds] [-v vcpus]
 *        (or MSR_FILTER_STRESS_ITERS / MSR_FILTER_STRESS_SECS in the
 *        environment; defaults 10000 sets, stopping early after 60 s)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_util.h"

#define MSR_A		MSR_IA32_SYSENTER_ESP
#define MSR_B		MSR_IA32_SYSENTER_EIP
#define MSR_C		MSR_KERNEL_GS_BASE
/*
 * SYSENTER_ESP/EIP keep only 32 bits for a vCPU that is not Intel-compatible
 * (an AMD host, or QEMU TCG's SVM), so A and B use 32-bit values.
 */
#define VAL_A		0x8000a000ull
#define VAL_B		0x8000b000ull
#define VAL_C		0xffffffff8000c000ull
#define MARK(msr)	(0x5a5a000000000000ull | (msr))
#define MAX_VCPUS	4

static unsigned long iterations = 10000;
static unsigned long max_seconds = 60;
static int nr_vcpus = 2;
static atomic_bool stop;

static void guest_code(void)
{
	u64 v;

	for (;;) {
		v = rdmsr(MSR_A);
		GUEST_ASSERT_EQ(v, MARK(MSR_A));
		v = rdmsr(MSR_B);
		GUEST_ASSERT_EQ(v, VAL_B);
		v = rdmsr(MSR_C);
		GUEST_ASSERT(v == VAL_C || v == MARK(MSR_C));
		wrmsr(MSR_A, VAL_A);
		wrmsr(MSR_B, VAL_B);
		wrmsr(MSR_C, VAL_C);
	}
}

struct vcpu_stats {
	unsigned long exits[3][2];	/* [A,B,C][read, write] */
};

static void *vcpu_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct kvm_run *run = vcpu->run;
	struct vcpu_stats *st = calloc(1, sizeof(*st));
	bool rd;
	int m;

	while (!atomic_load(&stop)) {
		mf_run(vcpu);
		TEST_ASSERT(run->exit_reason == KVM_EXIT_X86_RDMSR ||
			    run->exit_reason == KVM_EXIT_X86_WRMSR,
			    "vCPU %u: unexpected exit %s", vcpu->id,
			    exit_reason_str(run->exit_reason));
		TEST_ASSERT(run->msr.reason == KVM_MSR_EXIT_REASON_FILTER,
			    "vCPU %u: reason %u", vcpu->id, run->msr.reason);
		rd = run->exit_reason == KVM_EXIT_X86_RDMSR;
		switch (run->msr.index) {
		case MSR_A:
			m = 0;
			break;
		case MSR_C:
			m = 2;
			break;
		default:
			TEST_FAIL("vCPU %u: exit for MSR 0x%x (allowed by both filters)",
				  vcpu->id, run->msr.index);
		}
		if (rd)
			run->msr.data = MARK(run->msr.index);
		else
			TEST_ASSERT_EQ(run->msr.data, m ? VAL_C : VAL_A);
		st->exits[m][!rd]++;
	}
	return st;
}

static u8 bm_deny[16];
static u8 bm_allow[8] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

static void build_filters(struct kvm_msr_filter *x, struct kvm_msr_filter *y,
			  struct kvm_msr_filter *bad)
{
	const u32 rw = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;

	/* X: DEFAULT_ALLOW; deny A r/w, deny C reads. */
	memset(x, 0, sizeof(*x));
	x->flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(x, 0, rw, MSR_A, 1, bm_deny);
	mf_range(x, 1, KVM_MSR_FILTER_READ, MSR_C, 1, bm_deny);
	mf_range(x, 2, rw, MSR_B, 1, bm_allow);

	/* Y: DEFAULT_DENY; allow B, allow C reads, deny C writes, deny A. */
	memset(y, 0, sizeof(*y));
	y->flags = KVM_MSR_FILTER_DEFAULT_DENY;
	mf_range(y, 0, rw, MSR_B, 1, bm_allow);
	mf_range(y, 3, KVM_MSR_FILTER_READ, MSR_C, 1, bm_allow);
	mf_range(y, 5, rw, MSR_A - 64, 128, bm_deny);

	/* A set that fails on its 5th range and must change nothing. */
	memset(bad, 0, sizeof(*bad));
	bad->flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(bad, 0, rw, MSR_C, 1, bm_allow);
	mf_range(bad, 1, rw, MSR_A, 1, bm_allow);
	mf_range(bad, 2, rw, 0, 1, bm_allow);
	mf_range(bad, 3, rw, 1, 1, bm_allow);
	mf_range(bad, 4, 0x10, 2, 1, bm_allow);
}

FIXTURE(msr_stress) {};
FIXTURE_SETUP(msr_stress) {}
FIXTURE_TEARDOWN(msr_stress) {}

TEST_F_TIMEOUT(msr_stress, filter_replace, 600)
{
	struct kvm_msr_filter x, y, bad;
	struct kvm_vcpu *vcpus[MAX_VCPUS];
	pthread_t threads[MAX_VCPUS];
	struct vcpu_stats total = {};
	struct kvm_vm *vm;
	unsigned long i;
	time_t deadline;
	int v, m;

	vm = vm_create_with_vcpus(nr_vcpus, guest_code, vcpus);
	for (v = 0; v < nr_vcpus; v++) {
		TEST_ASSERT_EQ(_vcpu_set_msr(vcpus[v], MSR_A, VAL_A), 1);
		TEST_ASSERT_EQ(_vcpu_set_msr(vcpus[v], MSR_B, VAL_B), 1);
		TEST_ASSERT_EQ(_vcpu_set_msr(vcpus[v], MSR_C, VAL_C), 1);
	}
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	build_filters(&x, &y, &bad);
	vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &x);

	for (v = 0; v < nr_vcpus; v++)
		pthread_create(&threads[v], NULL, vcpu_thread, vcpus[v]);

	deadline = time(NULL) + max_seconds;
	for (i = 0; i < iterations; i++) {
		if (!(i % 64) && time(NULL) > deadline) {
			ksft_print_msg("time budget of %lus reached\n", max_seconds);
			break;
		}
		struct kvm_msr_filter *f = (i & 1) ? &x : &y;

		vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, f);
		if (!(i % 16))
			MF_ASSERT_ERRNO(mf_set(vm, &bad), -EINVAL);
	}
	atomic_store(&stop, true);

	/*
	 * MSR_A exits on every loop, so each vCPU thread soon notices the stop
	 * flag; kick nothing else.
	 */
	for (v = 0; v < nr_vcpus; v++) {
		struct vcpu_stats *st;

		pthread_join(threads[v], (void **)&st);
		for (m = 0; m < 3; m++) {
			total.exits[m][0] += st->exits[m][0];
			total.exits[m][1] += st->exits[m][1];
		}
		free(st);
	}
	ksft_print_msg("%lu filter sets, %d vCPUs; exits: A r%lu w%lu, C r%lu w%lu\n",
		       i, nr_vcpus, total.exits[0][0], total.exits[0][1],
		       total.exits[2][0], total.exits[2][1]);
	TEST_ASSERT(total.exits[0][0] && total.exits[0][1], "MSR_A never exited");
	kvm_vm_free(vm);
}

int main(int argc, char *argv[])
{
	char *env = getenv("MSR_FILTER_STRESS_ITERS");
	char *hargv[argc + 1];
	int hargc = 0, i;

	if (env)
		iterations = strtoul(env, NULL, 0);
	env = getenv("MSR_FILTER_STRESS_SECS");
	if (env)
		max_seconds = strtoul(env, NULL, 0);
	/* Strip our own options before handing argv to the harness. */
	for (i = 0; i < argc; i++) {
		if (i && !strcmp(argv[i], "-i") && i + 1 < argc) {
			iterations = strtoul(argv[++i], NULL, 0);
			continue;
		}
		if (i && !strcmp(argv[i], "-s") && i + 1 < argc) {
			max_seconds = strtoul(argv[++i], NULL, 0);
			continue;
		}
		if (i && !strcmp(argv[i], "-v") && i + 1 < argc) {
			nr_vcpus = atoi(argv[++i]);
			continue;
		}
		hargv[hargc++] = argv[i];
	}
	hargv[hargc] = NULL;
	TEST_ASSERT(nr_vcpus >= 1 && nr_vcpus <= MAX_VCPUS, "1..%d vCPUs", MAX_VCPUS);

	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_USER_SPACE_MSR));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_MSR_FILTER));
	mf_host_la57_quirk();
	return test_harness_run(hargc, hargv);
}
