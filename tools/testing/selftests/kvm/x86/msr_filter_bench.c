// SPDX-License-Identifier: GPL-2.0-only
/*
 * msr_filter_bench: side-by-side measurements of the C and Rust MSR filter
 * implementations in one boot (each VM latches the implementation at
 * KVM_CREATE_VM: Rust while kvm_msr_rs.ko is loaded, C otherwise, so the
 * two are selected by loading and unloading the module between VM
 * creations).  Without the module file (an upstream kernel) only the C
 * implementation is measured, labelled "c".
 *
 * Parts (default: all, in this order):
 *   lookup   in-kernel cost of the MSR exit handlers' filter lookup
 *            (inside kvm->srcu, as under KVM_RUN) through the per-VM
 *            debugfs file msr_filter_bench, 1/2/4/8/16 disjoint ranges,
 *            index hitting the last range ("hit") or no range ("miss"); ns
 *            per lookup.  "lookup_0r" is the same call with no filter
 *            installed: the fixed cost (call, and C's own SRCU read-side
 *            section) without any search.
 *   setlat   KVM_X86_SET_MSR_FILTER latency (CLOCK_MONOTONIC around the
 *            ioctl; median, mean and p99) and how many of the sets waited
 *            for a grace period, with 0..N vCPUs busy in KVM_RUN, their guests spinning
 *            on RDMSR(MSR_IA32_TSC), which KVM intercepts and handles; once
 *            with the sets spaced out (-g ms apart, metric suffix _gap<ms>)
 *            and once back to back (suffix _b2b).  Each set also counts
 *            the involuntary context switches of the setting thread during
 *            the ioctl ("# preempted" lines: a set the scheduler preempted
 *            times the other threads too) and the RDMSR loops the busy
 *            vCPUs did meanwhile; "# slowest" lines show both for the
 *            three slowest sets.  -F runs the setting thread at SCHED_FIFO
 *            priority 1 during the timed sets, so that the busy vCPU
 *            threads cannot preempt it, for both implementations.
 *   exit     userspace exit round trip: the guest does RDMSRs of an MSR the
 *            filter denies, each one a KVM_EXIT_X86_RDMSR (reason FILTER)
 *            that userspace answers.  Each round trip is timed on its own,
 *            from one exit's return to userspace to the next one's, and
 *            the figures are over all of them: a timer tick or a
 *            preemption costs the round trip it lands in and moves the
 *            median of none of the others.  The implementations take
 *            turns every 100 or so exits (each rep of -e exits is cut
 *            into rounds of about 100).
 *   memory   the "bytes:" line of the per-VM debugfs msr_filter dump after
 *            installing 1/2/4/8/16-range filters of 1-MSR and 0x3000-MSR
 *            ranges.
 *
 * Output: one line per measurement,
 *   RESULT <metric> <impl> <median> <min> <max> <unit>
 * plus "SKIP <part> <reason>" for parts that cannot run and "# ..."
 * information lines.  Exit status 0 unless something failed.
 *
 * Usage: msr_filter_bench [-r reps] [-n lookup_iters] [-s set_reps]
 *                         [-R set_ranges] [-e exits_per_rep] [-v max_busy]
 *                         [-I c,rust] [-g set_gap_ms] [-F] [part...]
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_util.h"

#define MAX_BUSY	8
#define MAX_REPS	1000
#define MAX_EXITS	100000

/* The lookup layout; keep in sync with rust/msr_filter/benches/common. */
#define RANGE_BASE	0x40000000u
#define RANGE_STRIDE	0x1000u
#define RANGE_NMSRS	0x100u
#define MISS_INDEX	0x474f4f00u

#define SPIN_MSR	MSR_IA32_TSC
#define EXIT_MSR	MSR_NONEXIST

static int reps = 9;
static unsigned long lookup_iters = 1000000;
static int set_reps = 25;
static int set_ranges = 16;
static unsigned long exits_per_rep = 2000;
static int max_busy = 2;
static const char *impl_list = "c,rust";

static bool have_module;
static bool was_loaded;

/* Bitmaps: all MSRs allowed (0x3000 bits, the maximum) or all denied. */
static u8 bm_ones[0x600];
static u8 bm_zeros[0x600];

static int failures;

/* ------------------------------------------------------------------------ */

static double now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void result(const char *metric, const char *impl, double *v, int n,
		   const char *unit)
{
	double med, sum = 0;
	int i;

	if (n <= 0)
		return;
	for (i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp_double);
	med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
	printf("RESULT %s %s %.3f %.3f %.3f %s\n", metric, impl, med, v[0],
	       v[n - 1], unit);
	if (n > 1) {
		/* Nearest rank: the smallest value at or above 99% of them. */
		int p99 = (99 * n + 99) / 100 - 1;

		printf("# mean %s %s %.3f %s (n=%d)\n", metric, impl, sum / n, unit, n);
		printf("# p99 %s %s %.3f %s (n=%d)\n", metric, impl, v[p99], unit, n);
	}
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Implementation selection. */

static int nr_impls;
static char impls[2][8];

static void parse_impls(void)
{
	char buf[64], *tok, *save;

	if (!have_module) {
		strcpy(impls[0], "c");
		nr_impls = 1;
		printf("# no %s: measuring KVM's (C) implementation only\n",
		       MF_MODULE_PATH);
		return;
	}
	snprintf(buf, sizeof(buf), "%s", impl_list);
	for (tok = strtok_r(buf, ",", &save); tok && nr_impls < 2;
	     tok = strtok_r(NULL, ",", &save)) {
		TEST_ASSERT(!strcmp(tok, "c") || !strcmp(tok, "rust"),
			    "-I: unknown implementation '%s'", tok);
		snprintf(impls[nr_impls++], sizeof(impls[0]), "%s", tok);
	}
	TEST_ASSERT(nr_impls, "-I: no implementation");
}

/*
 * Selects the implementation of the VMs created next: kvm_msr_rs.ko loaded
 * (Rust) or not (C).  VMs of both can coexist, but the module can only be
 * unloaded once its VMs are gone: each part creates its C VMs first.
 */
static void select_impl(const char *impl)
{
	if (!have_module)
		return;
	TEST_ASSERT(mf_select_impl(impl), "cannot select %s", impl);
}

static void save_param(void)
{
	have_module = mf_rust_available();
	was_loaded = mf_rust_loaded();
}

static void restore_param(void)
{
	if (have_module)
		mf_select_impl(was_loaded ? "rust" : "c");
}

/* ------------------------------------------------------------------------ */
/* Per-VM debugfs files. */

static void vm_debugfs_path(struct kvm_vm *vm, const char *file, char *buf,
			    size_t len)
{
	snprintf(buf, len, "/sys/kernel/debug/kvm/%d-%d/%s", getpid(), vm->fd,
		 file);
}

/* Returns NULL if @file exists for @vm, else the reason it cannot be used. */
static const char *vm_debugfs_missing(struct kvm_vm *vm, const char *file)
{
	static char why[256];
	char path[128];

	if (access("/sys/kernel/debug/kvm", F_OK))
		return "/sys/kernel/debug/kvm absent (debugfs not mounted or not readable)";
	vm_debugfs_path(vm, file, path, sizeof(path));
	if (access(path, F_OK)) {
		snprintf(why, sizeof(why), "%s absent (kernel without the MSR filter debugfs interface)",
			 path);
		return why;
	}
	return NULL;
}

/* Reads the msr_filter dump; returns the value of "key: " or -1. */
static long long dump_value(struct kvm_vm *vm, const char *key, char *sval,
			    size_t slen)
{
	char path[128], line[256];
	size_t klen = strlen(key);
	long long v = -1;
	FILE *f;

	vm_debugfs_path(vm, "msr_filter", path, sizeof(path));
	f = fopen(path, "r");
	TEST_ASSERT(f, "open %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, key, klen) || line[klen] != ':')
			continue;
		if (sval) {
			snprintf(sval, slen, "%s", line + klen + 1 + (line[klen + 1] == ' '));
			sval[strcspn(sval, "\n")] = 0;
		}
		v = strtoll(line + klen + 1, NULL, 0);
		break;
	}
	fclose(f);
	return v;
}

/* Warns (and counts a failure) if @vm does not run @impl. */
static void check_vm_impl(struct kvm_vm *vm, const char *impl)
{
	char got[32] = "";

	if (vm_debugfs_missing(vm, "msr_filter"))
		return;
	dump_value(vm, "impl", got, sizeof(got));
	if (have_module && strcmp(got, impl)) {
		printf("# ERROR: VM created for impl %s reports impl '%s'\n", impl, got);
		failures++;
	}
}

/* Runs the in-kernel lookup loop; returns ns per lookup. */
static double kernel_lookup(struct kvm_vm *vm, u32 index, u32 type,
			    unsigned long iters)
{
	unsigned long long got_iters = 0, ns = 0;
	char path[128], buf[128];
	int fd, n;

	vm_debugfs_path(vm, "msr_filter_bench", path, sizeof(path));
	fd = open(path, O_RDWR);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	n = snprintf(buf, sizeof(buf), "0x%x %u %lu\n", index, type, iters);
	TEST_ASSERT(write(fd, buf, n) == n, "write %s: %s", path, strerror(errno));
	/*
	 * The result belongs to this open file (the file is not seekable and
	 * the write leaves the position at 0): read it from the same fd.
	 */
	n = read(fd, buf, sizeof(buf) - 1);
	if (n == 0 && lseek(fd, 0, SEEK_SET) == 0)
		n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	TEST_ASSERT(n > 0, "read %s: %s", path, n < 0 ? strerror(errno) : "empty");
	buf[n] = 0;
	TEST_ASSERT(sscanf(buf, "%llu %llu", &got_iters, &ns) == 2 &&
		    got_iters == iters,
		    "%s: unexpected result '%s' for %lu iterations", path, buf, iters);
	return (double)ns / iters;
}

/* ------------------------------------------------------------------------ */
/* Filters. */

/* @n ranges of @nmsrs MSRs, disjoint, read+write, with @bitmap. */
static void layout(struct kvm_msr_filter *f, u32 flags, int n, u32 nmsrs,
		   void *bitmap)
{
	u32 stride = nmsrs > RANGE_STRIDE ? 0x4000 : RANGE_STRIDE;
	int i;

	memset(f, 0, sizeof(*f));
	f->flags = flags;
	for (i = 0; i < n; i++)
		mf_range(f, i, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			 RANGE_BASE + i * stride, nmsrs, bitmap);
}

static u32 hit_index(int n)
{
	return RANGE_BASE + (n - 1) * RANGE_STRIDE + RANGE_NMSRS / 2;
}

/* ------------------------------------------------------------------------ */
/* lookup */

static void part_lookup(void)
{
	static const int counts[] = { 1, 2, 4, 8, 16 };
	struct kvm_vm *vms[2];
	struct kvm_msr_filter f;
	double v[2][2][MAX_REPS];	/* [impl][hit, miss][rep] */
	const char *why;
	char metric[64];
	int i, c, r, k;

	for (i = 0; i < nr_impls; i++) {
		select_impl(impls[i]);
		vms[i] = vm_create_barebones();
	}
	why = vm_debugfs_missing(vms[0], "msr_filter_bench");
	if (why) {
		printf("SKIP lookup %s\n", why);
		goto out;
	}
	for (i = 0; i < nr_impls; i++)
		check_vm_impl(vms[i], impls[i]);

	/* No filter yet: the fixed cost of the call. */
	for (i = 0; i < nr_impls; i++)
		kernel_lookup(vms[i], MISS_INDEX, KVM_MSR_FILTER_READ,
			      lookup_iters / 10 + 1);
	for (r = 0; r < reps; r++)
		for (i = 0; i < nr_impls; i++)
			v[i][0][r] = kernel_lookup(vms[i], MISS_INDEX,
						   KVM_MSR_FILTER_READ, lookup_iters);
	for (i = 0; i < nr_impls; i++)
		result("lookup_0r", impls[i], v[i][0], reps, "ns");

	for (c = 0; c < ARRAY_SIZE(counts); c++) {
		int n = counts[c];

		layout(&f, KVM_MSR_FILTER_DEFAULT_DENY, n, RANGE_NMSRS, bm_ones);
		for (i = 0; i < nr_impls; i++) {
			vm_ioctl(vms[i], KVM_X86_SET_MSR_FILTER, &f);
			/* Warm up. */
			kernel_lookup(vms[i], hit_index(n), KVM_MSR_FILTER_READ,
				      lookup_iters / 10 + 1);
		}
		/* Interleave the implementations rep by rep. */
		for (r = 0; r < reps; r++)
			for (k = 0; k < 2; k++)
				for (i = 0; i < nr_impls; i++)
					v[i][k][r] = kernel_lookup(vms[i],
						k ? MISS_INDEX : hit_index(n),
						KVM_MSR_FILTER_READ, lookup_iters);
		for (k = 0; k < 2; k++)
			for (i = 0; i < nr_impls; i++) {
				snprintf(metric, sizeof(metric), "lookup_%dr_%s",
					 n, k ? "miss" : "hit");
				result(metric, impls[i], v[i][k], reps, "ns");
			}
	}
out:
	for (i = 0; i < nr_impls; i++)
		kvm_vm_free(vms[i]);
}

/* ------------------------------------------------------------------------ */
/* memory */

static void part_memory(void)
{
	static const int counts[] = { 1, 2, 4, 8, 16 };
	static const struct { const char *name; u32 nmsrs; } sizes[] = {
		{ "tiny", 1 }, { "full", 0x3000 },
	};
	struct kvm_msr_filter f;
	struct kvm_vm *vm;
	const char *why;
	char metric[64];
	int i, c, s;

	for (i = 0; i < nr_impls; i++) {
		long long gen0, gen, bytes;

		select_impl(impls[i]);
		vm = vm_create_barebones();
		why = vm_debugfs_missing(vm, "msr_filter");
		if (why) {
			printf("SKIP memory %s\n", why);
			kvm_vm_free(vm);
			return;
		}
		check_vm_impl(vm, impls[i]);
		gen0 = dump_value(vm, "generation", NULL, 0);
		for (c = 0; c < ARRAY_SIZE(counts); c++) {
			for (s = 0; s < ARRAY_SIZE(sizes); s++) {
				double b;

				layout(&f, KVM_MSR_FILTER_DEFAULT_ALLOW, counts[c],
				       sizes[s].nmsrs, bm_ones);
				vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, &f);
				gen = dump_value(vm, "generation", NULL, 0);
				bytes = dump_value(vm, "bytes", NULL, 0);
				/* Only Rust shows a generation (C: -1 throughout). */
				if (gen0 >= 0 && gen != ++gen0) {
					printf("# ERROR: %s: generation %lld, want %lld\n",
					       impls[i], gen, gen0);
					failures++;
					gen0 = gen;
				}
				TEST_ASSERT(bytes > 0, "%s: no bytes: line", impls[i]);
				b = bytes;
				snprintf(metric, sizeof(metric), "mem_%dr_%s",
					 counts[c], sizes[s].name);
				result(metric, impls[i], &b, 1, "B");
			}
		}
		kvm_vm_free(vm);
	}
}

/* ------------------------------------------------------------------------ */
/* setlat */

static volatile u64 g_stop;
static volatile u64 g_spins[MAX_BUSY];

static void guest_spin(u64 idx)
{
	while (!g_stop) {
		rdmsr(SPIN_MSR);
		g_spins[idx]++;
	}
	GUEST_DONE();
}

static void *busy_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	for (;;) {
		vcpu_run(vcpu);
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_DONE:
			return NULL;
		case UCALL_ABORT:
			REPORT_GUEST_ASSERT(uc);
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
	}
}

/* Milliseconds between two timed sets (-g); back to back is always measured too. */
static int set_gap_ms = 20;
/* -F: the timed sets from a SCHED_FIFO thread. */
static bool set_fifo;

static long nivcsw(void)
{
	struct rusage ru;

	TEST_ASSERT(!getrusage(RUSAGE_THREAD, &ru), "getrusage");
	return ru.ru_nivcsw;
}

static void set_policy(int policy, int prio)
{
	struct sched_param sp = { .sched_priority = prio };

	TEST_ASSERT(!sched_setscheduler(0, policy, &sp),
		    "sched_setscheduler(%d, %d): %s", policy, prio, strerror(errno));
}

/*
 * Times set_reps sets; returns how many of them waited for a grace period:
 * the debugfs "waits:" count of a Rust VM, or every set for C (whose
 * KVM_X86_SET_MSR_FILTER always ends in synchronize_srcu()).
 */
static long long setlat_one(const char *metric, const char *impl, int busy,
			    int gap_ms, double *out)
{
	long long waits;
	struct kvm_vcpu *vcpus[MAX_BUSY];
	pthread_t threads[MAX_BUSY];
	struct kvm_msr_filter fa, fb;
	volatile u64 *stop = NULL, *spins = NULL;
	u64 before[MAX_BUSY];
	struct kvm_vm *vm;
	double t0, deadline;
	u64 loops0, loops[MAX_REPS];
	bool pre[MAX_REPS], shown[MAX_REPS] = {};
	int i, r, k, preempted = 0;
	long cs;

	select_impl(impl);
	if (busy) {
		vm = vm_create_with_vcpus(busy, guest_spin, vcpus);
	} else {
		vm = vm_create(1);
	}
	check_vm_impl(vm, impl);
	layout(&fa, KVM_MSR_FILTER_DEFAULT_ALLOW, set_ranges, RANGE_NMSRS, bm_ones);
	layout(&fb, KVM_MSR_FILTER_DEFAULT_ALLOW, set_ranges, RANGE_NMSRS, bm_zeros);

	if (busy) {
		stop = addr_gva2hva(vm, (gva_t)&g_stop);
		spins = addr_gva2hva(vm, (gva_t)&g_spins[0]);
		*stop = 0;
	}
	for (i = 0; i < busy; i++) {
		spins[i] = 0;
		vcpu_args_set(vcpus[i], 1, (u64)i);
		pthread_create(&threads[i], NULL, busy_thread, vcpus[i]);
	}
	/* Wait until every vCPU runs its loop (slow under TCG). */
	deadline = now_ns() + 60e9;
	for (i = 0; i < busy; i++)
		while (spins[i] < 20) {
			TEST_ASSERT(now_ns() < deadline, "vCPU %d does not run", i);
			usleep(1000);
		}
	/* Warm up: the first sets allocate and fault things in. */
	for (r = 0; r < 3; r++) {
		struct kvm_msr_filter *f = r & 1 ? &fa : &fb;

		vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, f);
	}
	for (i = 0; i < busy; i++)
		before[i] = spins[i];
	waits = dump_value(vm, "waits", NULL, 0);
	if (set_fifo)
		set_policy(SCHED_FIFO, 1);
	for (r = 0; r < set_reps; r++) {
		struct kvm_msr_filter *f = r & 1 ? &fa : &fb;

		/*
		 * Space the sets out like a VMM reacting to events does (-g,
		 * default 20 ms), or not at all, like a VMM building up its
		 * policy: the same for both implementations.
		 */
		if (gap_ms)
			usleep(gap_ms * 1000);
		for (loops0 = 0, i = 0; i < busy; i++)
			loops0 += spins[i];
		cs = nivcsw();
		t0 = now_ns();
		vm_ioctl(vm, KVM_X86_SET_MSR_FILTER, f);
		out[r] = (now_ns() - t0) / 1000;
		pre[r] = nivcsw() != cs;
		preempted += pre[r];
		for (loops[r] = -loops0, i = 0; i < busy; i++)
			loops[r] += spins[i];
	}
	if (set_fifo)
		set_policy(SCHED_OTHER, 0);
	printf("# preempted %s %s %d of %d sets\n", metric, impl, preempted, set_reps);
	printf("# slowest %s %s", metric, impl);
	for (k = 0; k < 3 && k < set_reps; k++) {
		int m = -1;

		/* The k-th slowest: the slowest not shown yet. */
		for (r = 0; r < set_reps; r++)
			if (!shown[r] && (m < 0 || out[r] > out[m]))
				m = r;
		printf("%s %.0f us (%s, %llu busy loops)", k ? ";" : ":", out[m],
		       pre[m] ? "preempted" : "not preempted",
		       (unsigned long long)loops[m]);
		shown[m] = true;
	}
	printf("\n");
	if (waits >= 0)
		waits = dump_value(vm, "waits", NULL, 0) - waits;
	else
		waits = set_reps;
	for (i = 0; i < busy; i++) {
		u64 loops = spins[i] - before[i];

		printf("# setlat %s %d busy: vCPU %d did %llu RDMSR loops during the sets\n",
		       impl, busy, i, (unsigned long long)loops);
		if (!loops)
			printf("# WARNING: %s setlat: vCPU %d did not run during the sets\n",
			       impl, i);
	}
	if (busy)
		*stop = 1;
	for (i = 0; i < busy; i++)
		pthread_join(threads[i], NULL);
	kvm_vm_free(vm);
	return waits;
}

static void part_setlat(void)
{
	int gaps[2] = { set_gap_ms, 0 };
	int nr_gaps = set_gap_ms ? 2 : 1;
	double v[MAX_REPS];
	char metric[64];
	int busy, i, g;

	printf("# setlat: %d-range filters, %d sets per case, busy vCPUs spin on RDMSR 0x%x%s\n",
	       set_ranges, set_reps, SPIN_MSR,
	       set_fifo ? ", the setting thread at SCHED_FIFO 1" : "");
	for (g = 0; g < nr_gaps; g++) {
		if (gaps[g])
			printf("# setlat: %d ms between sets\n", gaps[g]);
		else
			printf("# setlat: back-to-back sets\n");
		for (busy = 0; busy <= max_busy; busy++) {
			if (gaps[g])
				snprintf(metric, sizeof(metric), "setlat_%dr_%dvcpu_gap%dms",
					 set_ranges, busy, gaps[g]);
			else
				snprintf(metric, sizeof(metric), "setlat_%dr_%dvcpu_b2b",
					 set_ranges, busy);
			for (i = 0; i < nr_impls; i++) {
				long long waits = setlat_one(metric, impls[i], busy,
							     gaps[g], v);

				result(metric, impls[i], v, set_reps, "us");
				printf("# waits %s %s %lld of %d sets\n", metric,
				       impls[i], waits, set_reps);
			}
		}
	}
}

/* ------------------------------------------------------------------------ */
/* exit */

static volatile u64 g_exit_n;

static void guest_exits(void)
{
	u64 i;

	for (;;) {
		GUEST_SYNC(0);
		for (i = 0; i < g_exit_n; i++)
			rdmsr(EXIT_MSR);
	}
}

/* Exits per round of the exit part: the implementations take turns this often. */
#define EXIT_ROUND	100

static void part_exit(void)
{
	/*
	 * Each rep of exits_per_rep exits is cut into rounds of about
	 * EXIT_ROUND exits, and the implementations take turns round by
	 * round, in the other order every other round: a slow stretch of the
	 * host then falls on both.  A round's first round trip starts at the
	 * guest's GUEST_SYNC and is not counted.
	 */
	unsigned long rounds = reps * (exits_per_rep / EXIT_ROUND ?: 1);
	unsigned long per_round = exits_per_rep / (rounds / reps);
	unsigned long n = rounds * (per_round - 1), k;
	struct kvm_msr_filter f;
	struct kvm_vcpu *vcpus[2];
	struct kvm_vm *vms[2];
	struct ucall uc;
	double *v[2];
	int i, j;

	for (i = 0; i < nr_impls; i++) {
		v[i] = calloc(n, sizeof(*v[i]));
		TEST_ASSERT(v[i], "calloc(%lu doubles) failed", n);
	}
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(&f, 0, KVM_MSR_FILTER_READ, EXIT_MSR, 1, bm_zeros);
	for (i = 0; i < nr_impls; i++) {
		select_impl(impls[i]);
		vms[i] = vm_create_with_one_vcpu(&vcpus[i], guest_exits);
		check_vm_impl(vms[i], impls[i]);
		vm_enable_cap(vms[i], KVM_CAP_X86_USER_SPACE_MSR,
			      KVM_MSR_EXIT_REASON_FILTER);
		vm_ioctl(vms[i], KVM_X86_SET_MSR_FILTER, &f);
		*(volatile u64 *)addr_gva2hva(vms[i], (gva_t)&g_exit_n) = per_round;
		mf_expect_sync(vcpus[i]);
	}
	/* Round 0 of each implementation is a warm-up and is dropped. */
	for (k = 0; k <= rounds; k++) {
		for (j = 0; j < nr_impls; j++) {
			struct kvm_run *run;
			unsigned long exits = 0;
			double t, prev = 0;

			i = k & 1 ? nr_impls - 1 - j : j;
			run = vcpus[i]->run;
			for (;;) {
				int rc = ioctl(vcpus[i]->fd, KVM_RUN, NULL);

				if (rc && errno == EINTR)
					continue;
				TEST_ASSERT(!rc, KVM_IOCTL_ERROR(KVM_RUN, rc));
				if (run->exit_reason != KVM_EXIT_X86_RDMSR)
					break;
				t = now_ns();
				if (k && exits)
					v[i][(k - 1) * (per_round - 1) + exits - 1] = t - prev;
				prev = t;
				TEST_ASSERT(run->msr.index == EXIT_MSR &&
					    run->msr.reason == KVM_MSR_EXIT_REASON_FILTER,
					    "exit for MSR 0x%x reason %u",
					    run->msr.index, run->msr.reason);
				run->msr.data = exits;
				exits++;
			}
			TEST_ASSERT(run->exit_reason == KVM_EXIT_IO &&
				    get_ucall(vcpus[i], &uc) == UCALL_SYNC,
				    "%s: unexpected exit %s", impls[i],
				    exit_reason_str(run->exit_reason));
			TEST_ASSERT(exits == per_round, "%lu exits, want %lu",
				    exits, per_round);
		}
	}
	for (i = 0; i < nr_impls; i++) {
		result("exit_rt", impls[i], v[i], (int)n, "ns");
		kvm_vm_free(vms[i]);
		free(v[i]);
	}
}

/* ------------------------------------------------------------------------ */

static const char *osrelease(void)
{
	static char r[128] = "?";
	FILE *f = fopen("/proc/sys/kernel/osrelease", "r");

	if (f) {
		if (!fgets(r, sizeof(r), f))
			strcpy(r, "?");
		fclose(f);
	}
	r[strcspn(r, "\n")] = 0;
	return r;
}

static void usage(const char *prog)
{
	printf("usage: %s [-r reps] [-n lookup_iters] [-s set_reps] [-R set_ranges]\n"
	       "       [-e exits_per_rep] [-v max_busy_vcpus] [-I c,rust] [-g set_gap_ms] [-F]\n"
	       "       [lookup|setlat|exit|memory...]\n",
	       prog);
	exit(KSFT_FAIL);
}

int main(int argc, char *argv[])
{
	bool want[4] = {};
	static const char *const parts[] = { "lookup", "setlat", "exit", "memory" };
	bool any = false;
	int opt, i, p;

	while ((opt = getopt(argc, argv, "r:n:s:R:e:v:I:g:Fh")) != -1) {
		switch (opt) {
		case 'r': reps = atoi(optarg); break;
		case 'n': lookup_iters = strtoul(optarg, NULL, 0); break;
		case 's': set_reps = atoi(optarg); break;
		case 'g': set_gap_ms = atoi(optarg); break;
		case 'F': set_fifo = true; break;
		case 'R': set_ranges = atoi(optarg); break;
		case 'e': exits_per_rep = strtoul(optarg, NULL, 0); break;
		case 'v': max_busy = atoi(optarg); break;
		case 'I': impl_list = optarg; break;
		default: usage(argv[0]);
		}
	}
	if (reps < 1 || reps > MAX_REPS || set_reps < 1 || set_reps > MAX_REPS ||
	    set_ranges < 1 || set_ranges > 16 || max_busy < 0 ||
	    max_busy > MAX_BUSY || !lookup_iters || exits_per_rep < 2 ||
	    exits_per_rep > MAX_EXITS)
		usage(argv[0]);
	for (i = optind; i < argc; i++) {
		for (p = 0; p < 4; p++)
			if (!strcmp(argv[i], parts[p]))
				break;
		if (p == 4)
			usage(argv[0]);
		want[p] = any = true;
	}
	if (!any)
		want[0] = want[1] = want[2] = want[3] = true;

	setbuf(stdout, NULL);
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_USER_SPACE_MSR));
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_X86_MSR_FILTER));
	memset(bm_ones, 0xff, sizeof(bm_ones));
	save_param();
	atexit(restore_param);
	parse_impls();
	mf_host_la57_quirk();
	printf("# msr_filter_bench: kernel %s, %ld CPUs online, impls %s%s%s\n",
	       osrelease(), sysconf(_SC_NPROCESSORS_ONLN), impls[0],
	       nr_impls > 1 ? "," : "", nr_impls > 1 ? impls[1] : "");
	printf("# reps %d, lookup iters %lu, set reps %d, exits/rep %lu, max busy vCPUs %d\n",
	       reps, lookup_iters, set_reps, exits_per_rep, max_busy);

	if (want[0])
		part_lookup();
	if (want[1])
		part_setlat();
	if (want[2])
		part_exit();
	if (want[3])
		part_memory();
	printf("# done, %d failure(s)\n", failures);
	return failures ? KSFT_FAIL : KSFT_PASS;
}
