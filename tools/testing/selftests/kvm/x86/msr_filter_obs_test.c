// SPDX-License-Identifier: GPL-2.0-only
/*
 * Observability of the MSR filter (patches/0007 of kvm-msr-rs): the per-VM
 * binary statistics kept by the Rust implementation, the per-VM debugfs
 * files msr_filter and msr_filter_bench, and the bound on replaced filters
 * that wait for their SRCU grace period.
 *
 * Each test decides for itself whether it can run:
 *
 *   - the six MSR statistics exist only with CONFIG_KVM_MSR_FILTER_OPS
 *     (looked up by name in the VM's binary stats; absent -> SKIP);
 *   - the debugfs files exist only with the same option and a mounted
 *     debugfs (/sys/kernel/debug/kvm/<pid>-<vm fd>/...; absent -> SKIP);
 *   - the implementation of a VM is what its msr_filter file says
 *     ("impl: rust" or "impl: c"); without debugfs, a VM that has the
 *     statistics is Rust iff kvm_msr_rs was loaded at its creation.
 *
 * The replacement bound and teardown tests only use standard ioctls and run
 * on any kernel with KVM_CAP_X86_MSR_FILTER (they pass trivially for the C
 * implementation, which waits for a grace period on every set).
 */
#include <fcntl.h>
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

#define MARK(msr)		(0x5a5a000000000000ull | (msr))

enum mf_impl { IMPL_UNKNOWN, IMPL_C, IMPL_RUST };

static const char *impl_name(enum mf_impl impl)
{
	return impl == IMPL_RUST ? "rust" : impl == IMPL_C ? "c" : "unknown";
}

/*
 * Like vm_get_stat(), but returns false instead of failing when the VM has
 * no statistic called @name.
 */
static bool vm_stat(struct kvm_vm *vm, const char *name, u64 *val)
{
	struct kvm_binary_stats *stats = &vm->stats;
	struct kvm_stats_desc *desc;
	int i;

	if (stats->fd < 0)
		return false;
	if (!stats->desc) {
		read_stats_header(stats->fd, &stats->header);
		stats->desc = read_stats_descriptors(stats->fd, &stats->header);
	}
	for (i = 0; i < stats->header.num_desc; i++) {
		desc = get_stats_descriptor(stats->desc, i, &stats->header);
		if (strcmp(desc->name, name))
			continue;
		read_stat_data(stats->fd, &stats->header, desc, val, 1);
		return true;
	}
	return false;
}

static const char *const stat_names[] = {
	"msr_exits_inval",
	"msr_exits_unknown",
	"msr_exits_filter",
	"msr_filter_denied_reads",
	"msr_filter_denied_writes",
	"msr_filter_updates",
};

enum {
	ST_INVAL,
	ST_UNKNOWN,
	ST_FILTER,
	ST_DENIED_RD,
	ST_DENIED_WR,
	ST_UPDATES,
	NR_STATS,
};

static bool vm_has_msr_stats(struct kvm_vm *vm)
{
	u64 v;

	return vm_stat(vm, stat_names[ST_UPDATES], &v);
}

static u64 msr_stat(struct kvm_vm *vm, int which)
{
	u64 v;

	TEST_ASSERT(vm_stat(vm, stat_names[which], &v), "stat %s vanished",
		    stat_names[which]);
	return v;
}

static void debugfs_path(struct kvm_vm *vm, const char *file, char *buf,
			 size_t len)
{
	snprintf(buf, len, "/sys/kernel/debug/kvm/%d-%d/%s", getpid(), vm->fd,
		 file);
}

/* Reads a whole debugfs file of @vm; NULL if it does not exist. */
static char *debugfs_read(struct kvm_vm *vm, const char *file)
{
	char path[128], *buf;
	size_t len = 0, cap = 4096;
	ssize_t n;
	int fd;

	debugfs_path(vm, file, path, sizeof(path));
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return NULL;
	buf = malloc(cap);
	TEST_ASSERT(buf, "malloc");
	for (;;) {
		if (cap - len < 512) {
			cap *= 2;
			buf = realloc(buf, cap);
			TEST_ASSERT(buf, "realloc");
		}
		n = read(fd, buf + len, cap - len - 1);
		TEST_ASSERT(n >= 0, "read %s: %s", path, strerror(errno));
		if (!n)
			break;
		len += n;
	}
	close(fd);
	buf[len] = '\0';
	return buf;
}

struct dump_range {
	u32 flags, base, nmsrs;
};

/* A parsed msr_filter file. */
struct dump {
	enum mf_impl impl;
	long long generation;	/* -1 if not shown (C) */
	long long pending;	/* -1 if not shown (C) */
	long long waits;	/* -1 if not shown (C, no filter) */
	char def[8];		/* allow, deny or none */
	long long bytes;	/* -1 if not shown (no filter) */
	/*
	 * Rust's lookup shapes: "scan" and the ranges scanned, "bucket" and
	 * log2 of the bucket size, or "search" and its probes.
	 */
	char shape_rd[8], shape_wr[8];
	int lookup_rd, lookup_wr; /* -1 if not shown (C, no filter) */
	int nranges;
	struct dump_range r[KVM_MSR_FILTER_MAX_RANGES];
	char *text;
};

static bool expect_shapes(const struct dump *d, const char *rd, int nrd,
			  const char *wr, int nwr)
{
	return !strcmp(d->shape_rd, rd) && d->lookup_rd == nrd &&
	       !strcmp(d->shape_wr, wr) && d->lookup_wr == nwr;
}

static bool dump_read(struct kvm_vm *vm, struct dump *d)
{
	char *line, *save = NULL, impl[8];

	memset(d, 0, sizeof(*d));
	d->generation = -1;
	d->pending = -1;
	d->waits = -1;
	d->bytes = -1;
	d->lookup_rd = d->lookup_wr = -1;
	d->text = debugfs_read(vm, "msr_filter");
	if (!d->text)
		return false;

	/* strtok_r on a copy: keep the text intact for error messages. */
	line = strdup(d->text);
	TEST_ASSERT(line, "strdup");
	for (char *l = strtok_r(line, "\n", &save); l;
	     l = strtok_r(NULL, "\n", &save)) {
		struct dump_range r;

		if (sscanf(l, "impl: %7s", impl) == 1) {
			TEST_ASSERT(d->impl == IMPL_UNKNOWN, "two impl lines:\n%s", d->text);
			TEST_ASSERT(!strcmp(impl, "rust") || !strcmp(impl, "c"),
				    "bad impl line '%s'", l);
			d->impl = impl[0] == 'r' ? IMPL_RUST : IMPL_C;
		} else if (sscanf(l, "generation: %lld", &d->generation) == 1) {
		} else if (sscanf(l, "pending: %lld", &d->pending) == 1) {
		} else if (sscanf(l, "waits: %lld", &d->waits) == 1) {
		} else if (sscanf(l, "default: %7s", d->def) == 1) {
		} else if (sscanf(l, "bytes: %lld", &d->bytes) == 1) {
		} else if (sscanf(l, "lookup: read=%7[a-z]:%d write=%7[a-z]:%d",
				  d->shape_rd, &d->lookup_rd, d->shape_wr,
				  &d->lookup_wr) == 4) {
		} else if (sscanf(l, "range: flags=%x base=%x nmsrs=%u",
				  &r.flags, &r.base, &r.nmsrs) == 3) {
			TEST_ASSERT(d->nranges < KVM_MSR_FILTER_MAX_RANGES,
				    "too many ranges:\n%s", d->text);
			d->r[d->nranges++] = r;
		} else {
			TEST_FAIL("unexpected line '%s' in msr_filter:\n%s", l, d->text);
		}
	}
	free(line);
	TEST_ASSERT(d->impl != IMPL_UNKNOWN, "no impl line:\n%s", d->text);
	TEST_ASSERT(d->def[0], "no default line:\n%s", d->text);
	return true;
}

static void dump_free(struct dump *d)
{
	free(d->text);
	d->text = NULL;
}

/*
 * Which implementation @vm uses: its debugfs file if there is one, else
 * (statistics present) whether kvm_msr_rs is loaded, assuming it was when
 * the VM latched its implementation at creation; IMPL_UNKNOWN on a kernel
 * without either.
 */
static enum mf_impl vm_impl(struct kvm_vm *vm)
{
	enum mf_impl impl;
	struct dump d;

	if (dump_read(vm, &d)) {
		impl = d.impl;
		dump_free(&d);
		return impl;
	}
	if (!vm_has_msr_stats(vm))
		return IMPL_UNKNOWN;
	return mf_rust_loaded() ? IMPL_RUST : IMPL_C;
}

/* ---------------------------------------------------------------------
 * stats_count_exits
 * ---------------------------------------------------------------------
 */
#define MSR_DENY_RD	MSR_SYSCALL_MASK	/* reads denied */
#define MSR_DENY_WR	MSR_STAR		/* writes denied */
#define K_READS		5
#define L_WRITES	3
#define M_UNKNOWN	4

static void guest_stats(void)
{
	u64 v;
	u8 vec;
	int i;

	/* K FILTER exits (the FILTER bit is set). */
	for (i = 0; i < K_READS; i++) {
		v = rdmsr(MSR_DENY_RD);
		GUEST_ASSERT_EQ(v, MARK(MSR_DENY_RD));
	}
	GUEST_SYNC(1);	/* the host clears the FILTER bit */
	/* L denials without an exit: #GP. */
	for (i = 0; i < L_WRITES; i++) {
		vec = wrmsr_safe(MSR_DENY_WR, i);
		GUEST_ASSERT_EQ(vec, GP_VECTOR);
	}
	/* M UNKNOWN exits. */
	for (i = 0; i < M_UNKNOWN; i++) {
		v = rdmsr(MSR_NONEXIST);
		GUEST_ASSERT_EQ(v, MARK(MSR_NONEXIST));
	}
	/* One INVAL exit: EFER bit 63 is reserved. */
	v = rdmsr(MSR_EFER);
	vec = wrmsr_safe(MSR_EFER, v | BIT_ULL(63));
	GUEST_ASSERT_EQ(vec, 0);
	GUEST_DONE();
}

static void stats_filter(struct kvm_msr_filter *f)
{
	memset(f, 0, sizeof(*f));
	f->flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(f, 0, KVM_MSR_FILTER_READ, MSR_DENY_RD, 1, &mf_zero_bits);
	mf_range(f, 1, KVM_MSR_FILTER_WRITE, MSR_DENY_WR, 1, &mf_zero_bits);
}

static void expect_stats(struct kvm_vm *vm, const u64 *want)
{
	int i;

	for (i = 0; i < NR_STATS; i++) {
		u64 got = msr_stat(vm, i);

		TEST_ASSERT(got == want[i], "%s = %lu, want %lu", stat_names[i],
			    (unsigned long)got, (unsigned long)want[i]);
	}
}

TEST(stats_count_exits)
{
	u64 want[NR_STATS] = {}, zero[NR_STATS] = {};
	int seen[3] = {};	/* host-observed exits: INVAL, UNKNOWN, FILTER */
	struct kvm_msr_filter f, bad;
	struct kvm_vcpu *vcpu;
	struct kvm_run *run;
	enum mf_impl impl;
	struct kvm_vm *vm;
	struct ucall uc;
	bool rust;

	vm = vm_create_with_one_vcpu(&vcpu, guest_stats);
	if (!vm_has_msr_stats(vm)) {
		kvm_vm_free(vm);
		SKIP(return, "no MSR filter statistics (kernel without CONFIG_KVM_MSR_FILTER_OPS)");
	}
	impl = vm_impl(vm);
	if (impl == IMPL_UNKNOWN) {
		kvm_vm_free(vm);
		SKIP(return, "statistics present but the VM's implementation is unknown");
	}
	rust = impl == IMPL_RUST;
	ksft_print_msg("VM implementation: %s\n", impl_name(impl));
	mf_install_gp_handler(vm);
	run = vcpu->run;

	expect_stats(vm, zero);
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, ALL_REASONS);
	stats_filter(&f);
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);
	want[ST_UPDATES] = rust;
	expect_stats(vm, rust ? want : zero);

	/* Failing sets, at every stage of validation, do not count. */
	bad = f;
	bad.flags = 0x80;
	MF_ASSERT_ERRNO(mf_set(vm, &bad), -EINVAL);
	bad = f;
	bad.ranges[1].nmsrs = 0x3001;
	MF_ASSERT_ERRNO(mf_set(vm, &bad), -EINVAL);
	bad = f;
	bad.ranges[1].bitmap = (void *)8;
	MF_ASSERT_ERRNO(mf_set(vm, &bad), -EFAULT);
	memset(&bad, 0, sizeof(bad));
	bad.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	MF_ASSERT_ERRNO(mf_set(vm, &bad), -EINVAL);
	expect_stats(vm, rust ? want : zero);

	/* A second successful set of the same filter counts. */
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);
	want[ST_UPDATES] = 2 * rust;
	expect_stats(vm, rust ? want : zero);

	for (;;) {
		mf_run(vcpu);
		if (run->exit_reason == KVM_EXIT_X86_RDMSR ||
		    run->exit_reason == KVM_EXIT_X86_WRMSR) {
			TEST_ASSERT(run->msr.reason == KVM_MSR_EXIT_REASON_INVAL ||
				    run->msr.reason == KVM_MSR_EXIT_REASON_UNKNOWN ||
				    run->msr.reason == KVM_MSR_EXIT_REASON_FILTER,
				    "bad reason %u", run->msr.reason);
			seen[__builtin_ctz(run->msr.reason)]++;
			if (run->exit_reason == KVM_EXIT_X86_RDMSR)
				run->msr.data = MARK(run->msr.index);
			run->msr.error = 0;
			continue;
		}
		TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
		switch (get_ucall(vcpu, &uc)) {
		case UCALL_SYNC:
			/* After the K reads: no more FILTER exits. */
			want[ST_FILTER] = want[ST_DENIED_RD] = K_READS;
			expect_stats(vm, rust ? want : zero);
			vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR,
				      KVM_MSR_EXIT_REASON_INVAL |
				      KVM_MSR_EXIT_REASON_UNKNOWN);
			continue;
		case UCALL_DONE:
			break;
		default:
			TEST_FAIL("unexpected ucall %lu", uc.cmd);
		}
		break;
	}
	/* The exits userspace saw are the same for both implementations. */
	TEST_ASSERT(seen[2] == K_READS && seen[1] == M_UNKNOWN && seen[0] == 1,
		    "exits seen: FILTER %d UNKNOWN %d INVAL %d, want %d %d 1",
		    seen[2], seen[1], seen[0], K_READS, M_UNKNOWN);

	want[ST_INVAL] = 1;
	want[ST_UNKNOWN] = M_UNKNOWN;
	want[ST_FILTER] = K_READS;
	want[ST_DENIED_RD] = K_READS;
	want[ST_DENIED_WR] = L_WRITES;
	want[ST_UPDATES] = 2;
	expect_stats(vm, rust ? want : zero);

	/* The debugfs generation is the update counter. */
	if (rust) {
		struct dump d;

		if (dump_read(vm, &d)) {
			TEST_ASSERT(d.generation == 2, "generation %lld, want 2:\n%s",
				    d.generation, d.text);
			dump_free(&d);
		}
	}
	kvm_vm_free(vm);
}

/* ---------------------------------------------------------------------
 * debugfs_dump
 * ---------------------------------------------------------------------
 */
static void expect_range(struct dump *d, int i, u32 flags, u32 base, u32 nmsrs)
{
	TEST_ASSERT(i < d->nranges, "range %d missing:\n%s", i, d->text);
	TEST_ASSERT(d->r[i].flags == flags && d->r[i].base == base &&
		    d->r[i].nmsrs == nmsrs,
		    "range %d: flags=0x%x base=0x%x nmsrs=%u, want 0x%x 0x%x %u:\n%s",
		    i, d->r[i].flags, d->r[i].base, d->r[i].nmsrs, flags, base,
		    nmsrs, d->text);
}

TEST(debugfs_dump)
{
	static u8 bm[KVM_MSR_FILTER_MAX_BITMAP_SIZE];
	const u32 rw = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	struct kvm_msr_filter f;
	enum mf_impl want_impl;
	struct kvm_vm *vm;
	struct dump d;
	int p;

	vm = vm_create_barebones();
	if (!dump_read(vm, &d)) {
		kvm_vm_free(vm);
		SKIP(return, "no debugfs msr_filter file for the VM");
	}
	p = mf_rust_loaded();
	want_impl = p ? IMPL_RUST : IMPL_C;
	ksft_print_msg("VM implementation: %s (%s %s)\n", impl_name(d.impl),
		       MF_MODULE, p ? "loaded" : "not loaded");
	TEST_ASSERT(d.impl == want_impl, "impl %s, but %s is %sloaded:\n%s",
		    impl_name(d.impl), MF_MODULE, p ? "" : "not ", d.text);

	/* Before any set: no filter. */
	TEST_ASSERT(!strcmp(d.def, "none") && !d.nranges && d.bytes < 0 &&
		    d.lookup_rd < 0 && d.lookup_wr < 0,
		    "before any set:\n%s", d.text);
	if (d.impl == IMPL_RUST)
		TEST_ASSERT(d.generation == 0 && d.pending == 0,
			    "generation or pending before any set:\n%s", d.text);
	else
		TEST_ASSERT(d.generation < 0 && d.pending < 0,
			    "generation or pending shown for C:\n%s", d.text);
	dump_free(&d);

	/* DEFAULT_DENY, ranges in slots 0, 2 and 5; 1 is empty with garbage. */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_DENY;
	mf_range(&f, 0, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1, bm);
	mf_range(&f, 1, 0xdead, 0x1234, 0, (void *)1);
	mf_range(&f, 2, KVM_MSR_FILTER_WRITE, 0x40000000, 0x100, bm);
	mf_range(&f, 5, rw, 0xc0010000, 0x3000, bm);
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);

	TEST_ASSERT(dump_read(vm, &d), "msr_filter vanished");
	TEST_ASSERT(!strcmp(d.def, "deny"), "default '%s':\n%s", d.def, d.text);
	TEST_ASSERT(d.bytes > 0, "bytes %lld:\n%s", d.bytes, d.text);
	TEST_ASSERT(d.nranges == 3, "%d ranges, want 3:\n%s", d.nranges, d.text);
	expect_range(&d, 0, KVM_MSR_FILTER_READ, MSR_SYSCALL_MASK, 1);
	expect_range(&d, 1, KVM_MSR_FILTER_WRITE, 0x40000000, 0x100);
	expect_range(&d, 2, rw, 0xc0010000, 0x3000);
	/*
	 * Rust's lookup shapes: two read ranges (slots 0 and 5) and two write
	 * ranges (slots 2 and 5), so both access types scan 2 ranges. C has no
	 * such choice.
	 */
	if (d.impl == IMPL_RUST) {
		TEST_ASSERT(d.generation == 1, "generation:\n%s", d.text);
		/* The first set replaced nothing, so it cannot have waited. */
		TEST_ASSERT(d.waits == 0, "waits %lld after one set:\n%s", d.waits, d.text);
		TEST_ASSERT(expect_shapes(&d, "scan", 2, "scan", 2),
			    "lookup %s:%d/%s:%d, want scan:2/scan:2:\n%s",
			    d.shape_rd, d.lookup_rd, d.shape_wr, d.lookup_wr, d.text);
	} else {
		TEST_ASSERT(d.lookup_rd < 0 && d.lookup_wr < 0 && d.waits < 0,
			    "lookup or waits shown for C:\n%s", d.text);
	}
	/* The filter holds at least its 1 + 32 + 1536 bytes of bitmap. */
	TEST_ASSERT(d.bytes >= 8 + 32 + 1536, "bytes %lld:\n%s", d.bytes, d.text);
	dump_free(&d);

	/* A failing set changes nothing, not even the generation. */
	f.ranges[3].nmsrs = 0x3001;
	f.ranges[3].flags = KVM_MSR_FILTER_READ;
	f.ranges[3].bitmap = bm;
	MF_ASSERT_ERRNO(mf_set(vm, &f), -EINVAL);
	TEST_ASSERT(dump_read(vm, &d), "msr_filter vanished");
	TEST_ASSERT(!strcmp(d.def, "deny") && d.nranges == 3, "after failing set:\n%s",
		    d.text);
	expect_range(&d, 2, rw, 0xc0010000, 0x3000);
	if (d.impl == IMPL_RUST)
		TEST_ASSERT(d.generation == 1, "generation after failing set:\n%s", d.text);
	dump_free(&d);

	/* Replace: DEFAULT_ALLOW, one range in the last slot. */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	mf_range(&f, KVM_MSR_FILTER_MAX_RANGES - 1, KVM_MSR_FILTER_WRITE,
		 MSR_STAR, 64, bm);
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);
	TEST_ASSERT(dump_read(vm, &d), "msr_filter vanished");
	TEST_ASSERT(!strcmp(d.def, "allow"), "default '%s':\n%s", d.def, d.text);
	TEST_ASSERT(d.nranges == 1 && d.bytes > 0, "after replace:\n%s", d.text);
	expect_range(&d, 0, KVM_MSR_FILTER_WRITE, MSR_STAR, 64);
	if (d.impl == IMPL_RUST) {
		u64 updates;

		TEST_ASSERT(d.generation == 2, "generation after replace:\n%s", d.text);
		/* One write range to scan, no read range. */
		TEST_ASSERT(expect_shapes(&d, "scan", 0, "scan", 1),
			    "lookup %s:%d/%s:%d after replace, want scan:0/scan:1:\n%s",
			    d.shape_rd, d.lookup_rd, d.shape_wr, d.lookup_wr, d.text);
		TEST_ASSERT(vm_stat(vm, "msr_filter_updates", &updates) && updates == 2,
			    "msr_filter_updates != generation 2");
	}
	dump_free(&d);

	/*
	 * 16 disjoint ranges: more than Rust scans.  The 33 intervals they
	 * make start every 0x100 indices or one after such a start, so 16
	 * buckets of 0x100 indices from the second one (0x10000000) hold one
	 * interval start each besides their first index: a bucket table with
	 * shift 8, where 0x80 would leave ranges 8 to 15 in the last bucket.
	 */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	for (int i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		mf_range(&f, i, rw, 0x10000000 + i * 0x100, 1, bm);
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);
	TEST_ASSERT(dump_read(vm, &d), "msr_filter vanished");
	TEST_ASSERT(d.nranges == KVM_MSR_FILTER_MAX_RANGES, "16 ranges:\n%s", d.text);
	if (d.impl == IMPL_RUST)
		TEST_ASSERT(expect_shapes(&d, "bucket", 8, "bucket", 8),
			    "lookup %s:%d/%s:%d with 16 ranges, want bucket:8/bucket:8:\n%s",
			    d.shape_rd, d.lookup_rd, d.shape_wr, d.lookup_wr, d.text);
	else
		TEST_ASSERT(d.lookup_rd < 0 && d.lookup_wr < 0,
			    "lookup shown for C:\n%s", d.text);
	dump_free(&d);
	kvm_vm_free(vm);
}

/* ---------------------------------------------------------------------
 * bench_file
 * ---------------------------------------------------------------------
 */
static int bench_write(int fd, const char *s)
{
	ssize_t n = write(fd, s, strlen(s));

	if (n < 0)
		return -errno;
	TEST_ASSERT(n == (ssize_t)strlen(s), "short write of '%s': %zd", s, n);
	return 0;
}

TEST(bench_file)
{
	static u8 bm[KVM_MSR_FILTER_MAX_BITMAP_SIZE];
	unsigned long long iters, ns;
	struct kvm_msr_filter f;
	char path[128], buf[128], big[100];
	struct kvm_vm *vm;
	ssize_t n;
	int fd, i;

	vm = vm_create_barebones();
	debugfs_path(vm, "msr_filter_bench", path, sizeof(path));
	if (access(path, F_OK)) {
		kvm_vm_free(vm);
		SKIP(return, "no debugfs msr_filter_bench file for the VM");
	}
	/* Some work for the lookup: 16 ranges that do not cover 0x10. */
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	for (i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++)
		mf_range(&f, i, KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
			 0x10000000 + i * 0x3000, 0x3000, bm);
	MF_ASSERT_ERRNO(mf_set(vm, &f), 0);

	fd = open(path, O_RDWR);
	TEST_ASSERT(fd >= 0, "open %s: %s", path, strerror(errno));
	MF_ASSERT_ERRNO(bench_write(fd, "0x10 1 1000"), 0);
	n = read(fd, buf, sizeof(buf) - 1);
	TEST_ASSERT(n > 0, "read %s: %zd (%s)", path, n, strerror(errno));
	buf[n] = '\0';
	TEST_ASSERT(sscanf(buf, "%llu %llu", &iters, &ns) == 2,
		    "bench read '%s'", buf);
	TEST_ASSERT(iters == 1000, "bench iterations %llu, want 1000 ('%s')", iters, buf);
	TEST_ASSERT(ns > 0, "bench took 0 ns ('%s')", buf);
	ksft_print_msg("1000 lookups of 0x10: %llu ns\n", ns);

	/* Malformed commands. */
	MF_ASSERT_ERRNO(bench_write(fd, "hello"), -EINVAL);
	MF_ASSERT_ERRNO(bench_write(fd, "0x10 1"), -EINVAL);
	MF_ASSERT_ERRNO(bench_write(fd, "0x100000000 1 10"), -EINVAL);
	memset(big, '1', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	MF_ASSERT_ERRNO(bench_write(fd, big), -EINVAL);
	close(fd);
	kvm_vm_free(vm);
}

/* ---------------------------------------------------------------------
 * replacement_bound
 * ---------------------------------------------------------------------
 */
#define NR_BUSY		2
#define REPL_SETS	2000
#define REPL_SECONDS	150
#define SLAB_SLACK_KB	2048
/*
 * Bytes of replaced filters that may wait for their grace period
 * (MAX_PENDING_BYTES in rust/filter.rs): eight of the largest filters, the
 * node (kmalloc-512), 16 bitmaps of 0x600 bytes (kmalloc-2048), the table.
 */
#define MAX_PENDING	(8 * (512 + 16 * 2048 + 256))
#define MSR_PROBE	MSR_SYSCALL_MASK
#define PROBE_VAL	0x700ull
#define BIG_BASE(i)	((i) ? 0x10000000u + (i) * 0x3000u : 0xc0000000u)

static int g_stop;

/* In-kernel work only: RDMSR(TSC) is handled by KVM, never filtered here. */
static void guest_busy(void)
{
	while (!READ_ONCE(g_stop)) {
		rdmsr(MSR_IA32_TSC);
		asm volatile("pause");
	}
	GUEST_DONE();
}

/* One fresh access of MSR_PROBE per run. */
static void guest_probe(void)
{
	for (;;)
		GUEST_SYNC(rdmsr(MSR_PROBE));
}

static void *busy_thread(void *arg)
{
	struct kvm_vcpu *vcpu = arg;
	struct ucall uc;

	mf_run(vcpu);
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_DONE,
		    "busy vCPU %u: ucall %lu", vcpu->id, uc.cmd);
	return NULL;
}

static long slab_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[128];
	long kb = -1;

	TEST_ASSERT(f, "open /proc/meminfo");
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Slab: %ld kB", &kb) == 1)
			break;
	fclose(f);
	TEST_ASSERT(kb >= 0, "no Slab: line in /proc/meminfo");
	return kb;
}

/*
 * Generic KASAN keeps freed objects in a quarantine (up to 1/32 of RAM)
 * whose slab pages stay allocated, so "Slab:" then says nothing about how
 * many replaced filters are still waiting.  Detected by its symbols.
 */
static bool kernel_has_kasan_quarantine(void)
{
	FILE *f = fopen("/proc/kallsyms", "r");
	char line[256];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, " kasan_quarantine_") != NULL;
	fclose(f);
	return found;
}

/* Does a fresh RDMSR(MSR_PROBE) of @vcpu exit to userspace? */
static bool probe_denied(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	bool exited = false;
	struct ucall uc;

	mf_run(vcpu);
	if (run->exit_reason == KVM_EXIT_X86_RDMSR) {
		TEST_ASSERT(run->msr.index == MSR_PROBE &&
			    run->msr.reason == KVM_MSR_EXIT_REASON_FILTER,
			    "probe exit: MSR 0x%x reason %u", run->msr.index,
			    run->msr.reason);
		run->msr.data = MARK(MSR_PROBE);
		run->msr.error = 0;
		exited = true;
		mf_run(vcpu);
	}
	TEST_ASSERT_KVM_EXIT_REASON(vcpu, KVM_EXIT_IO);
	TEST_ASSERT(get_ucall(vcpu, &uc) == UCALL_SYNC, "probe: ucall %lu", uc.cmd);
	TEST_ASSERT_EQ(uc.args[1], exited ? MARK(MSR_PROBE) : PROBE_VAL);
	return exited;
}

/*
 * Two big filters, both DEFAULT_ALLOW with 16 ranges of 0x3000 MSRs
 * (16 x 1536 bytes of bitmap); @deny denies reads of MSR_PROBE, the other
 * allows everything.
 */
static u8 bm_ones[KVM_MSR_FILTER_MAX_BITMAP_SIZE];
static u8 bm_probe[KVM_MSR_FILTER_MAX_BITMAP_SIZE];

static void build_big(struct kvm_msr_filter *deny, struct kvm_msr_filter *allow)
{
	const u32 rw = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE;
	u32 bit = MSR_PROBE - BIG_BASE(0);
	int i;

	memset(bm_ones, 0xff, sizeof(bm_ones));
	memset(bm_probe, 0xff, sizeof(bm_probe));
	bm_probe[bit / 8] &= ~(1u << (bit % 8));

	memset(deny, 0, sizeof(*deny));
	memset(allow, 0, sizeof(*allow));
	deny->flags = allow->flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	for (i = 0; i < KVM_MSR_FILTER_MAX_RANGES; i++) {
		mf_range(deny, i, i ? rw : KVM_MSR_FILTER_READ, BIG_BASE(i), 0x3000,
			 i ? bm_ones : bm_probe);
		mf_range(allow, i, rw, BIG_BASE(i), 0x3000, bm_ones);
	}
}

FIXTURE(msr_obs) {};
FIXTURE_SETUP(msr_obs) {}
FIXTURE_TEARDOWN(msr_obs) {}

TEST_F_TIMEOUT(msr_obs, replacement_bound, REPL_SECONDS + 120)
{
	struct kvm_vcpu *busy[NR_BUSY], *probe;
	struct kvm_msr_filter f_deny, f_allow;
	long slab0, slab, slab_max, slab_end;
	pthread_t threads[NR_BUSY];
	unsigned long sets = 0, probes = 0, samples = 0;
	long long pending_max = -1;
	enum mf_impl impl;
	struct kvm_vm *vm;
	time_t deadline;
	struct dump d;
	u64 updates;
	int i, v;

	vm = vm_create(NR_BUSY + 1);
	for (v = 0; v < NR_BUSY; v++)
		busy[v] = vm_vcpu_add(vm, v, guest_busy);
	probe = vm_vcpu_add(vm, NR_BUSY, guest_probe);
	vcpu_set_msr(probe, MSR_PROBE, PROBE_VAL);
	impl = vm_impl(vm);
	ksft_print_msg("VM implementation: %s\n", impl_name(impl));
	vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR, KVM_MSR_EXIT_REASON_FILTER);
	build_big(&f_deny, &f_allow);

	/* Warm up the caches with both filters, then take the baseline. */
	MF_ASSERT_ERRNO(mf_set(vm, &f_deny), 0);
	TEST_ASSERT(probe_denied(probe), "probe not denied by the deny filter");
	MF_ASSERT_ERRNO(mf_set(vm, &f_allow), 0);
	TEST_ASSERT(!probe_denied(probe), "probe denied by the allow filter");
	sets = 2;

	for (v = 0; v < NR_BUSY; v++)
		pthread_create(&threads[v], NULL, busy_thread, busy[v]);
	/* Let them get into KVM_RUN. */
	usleep(100 * 1000);
	slab0 = slab_max = slab_kb();

	deadline = time(NULL) + REPL_SECONDS;
	for (i = 0; i < REPL_SETS; i++) {
		bool deny = !(i & 1);

		if (!(i % 64) && time(NULL) > deadline) {
			ksft_print_msg("time budget of %ds reached after %d sets\n",
				       REPL_SECONDS, i);
			break;
		}
		MF_ASSERT_ERRNO(mf_set(vm, deny ? &f_deny : &f_allow), 0);
		sets++;
		/* An access starting after the ioctl returned sees the new filter. */
		if (i % 100 < 2) {
			TEST_ASSERT(probe_denied(probe) == deny,
				    "set %d: probe %s right after installing the %s filter",
				    i, deny ? "allowed" : "denied",
				    deny ? "deny" : "allow");
			probes++;
		}
		if (!(i % 16)) {
			slab = slab_kb();
			if (slab > slab_max)
				slab_max = slab;
		}
		/* Rust shows the bytes of replaced filters waiting: never above the bound. */
		if (!(i % 4) && dump_read(vm, &d)) {
			TEST_ASSERT(d.pending <= MAX_PENDING,
				    "set %d: %lld bytes of replaced filters wait for their grace period (bound %d)",
				    i, d.pending, MAX_PENDING);
			if (d.pending > pending_max)
				pending_max = d.pending;
			samples++;
			dump_free(&d);
		}
	}
	slab = slab_kb();
	if (slab > slab_max)
		slab_max = slab;

	WRITE_ONCE(g_stop, 1);
	sync_global_to_guest(vm, g_stop);
	for (v = 0; v < NR_BUSY; v++)
		pthread_join(threads[v], NULL);
	slab_end = slab_kb();

	ksft_print_msg("%s: %lu sets, %lu probes; Slab: %ld kB before, max %ld (%+ld), end %ld (%+ld)\n",
		       impl_name(impl), sets, probes, slab0, slab_max,
		       slab_max - slab0, slab_end, slab_end - slab0);
	if (impl == IMPL_RUST && samples) {
		ksft_print_msg("rust: at most %lld of %d bytes of replaced filters pending in %lu samples\n",
			       pending_max, MAX_PENDING, samples);
	}
	if (kernel_has_kasan_quarantine())
		ksft_print_msg("KASAN quarantine present: slab growth not checked\n");
	else
		TEST_ASSERT(slab_max - slab0 <= SLAB_SLACK_KB,
			    "slab grew by %ld kB during %lu filter replacements (bound %d kB): replaced filters pile up",
			    slab_max - slab0, sets, SLAB_SLACK_KB);

	if (impl == IMPL_RUST && vm_stat(vm, "msr_filter_updates", &updates))
		TEST_ASSERT(updates == sets, "msr_filter_updates %lu, want %lu",
			    (unsigned long)updates, sets);
	if (dump_read(vm, &d)) {
		if (d.impl == IMPL_RUST) {
			TEST_ASSERT(d.generation == (long long)sets,
				    "generation %lld, want %lu", d.generation, sets);
			/*
			 * The replaced filters were freed without the ioctl
			 * waiting, but for the sets that found MAX_PENDING bytes
			 * of them still pending: those are counted, and cannot
			 * be all of them.
			 */
			ksft_print_msg("rust: %lld of %lu sets waited for a grace period\n",
				       d.waits, sets);
			TEST_ASSERT(d.waits >= 0 && d.waits < (long long)sets,
				    "%lld of %lu sets waited:\n%s", d.waits, sets, d.text);
		}
		TEST_ASSERT(d.nranges == KVM_MSR_FILTER_MAX_RANGES,
			    "installed filter has %d ranges:\n%s", d.nranges, d.text);
		dump_free(&d);
	}
	kvm_vm_free(vm);
}

/* ---------------------------------------------------------------------
 * teardown_with_pending_replacement
 * ---------------------------------------------------------------------
 */
static void guest_sync_loop(void)
{
	for (;;)
		GUEST_SYNC(0);
}

/*
 * Install a filter, replace it (the Rust implementation then has one
 * replaced filter waiting for its grace period) and destroy the VM at once.
 * Variants: without vCPUs, with a vCPU that has run, and (with debugfs) with
 * the msr_filter file held open so that the VM is destroyed when the file
 * is closed.  The pipeline checks the console for KASAN/kmemleak reports.
 * Twelve VMs with 16-range filters take longer than the harness's default
 * 30 s under the debug flavour's KASAN on TCG: a fixture of its own for a
 * longer timeout.
 */
FIXTURE(teardown) {};
FIXTURE_SETUP(teardown) {}
FIXTURE_TEARDOWN(teardown) {}

TEST_F_TIMEOUT(teardown, with_pending_replacement, 240)
{
	struct kvm_msr_filter a, b;
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	char path[128], buf[256];
	int i, fd;

	build_big(&a, &b);
	for (i = 0; i < 12; i++) {
		if (i % 3 == 0) {
			vm = vm_create_barebones();
		} else {
			vm = vm_create_with_one_vcpu(&vcpu, guest_sync_loop);
			vm_enable_cap(vm, KVM_CAP_X86_USER_SPACE_MSR,
				      KVM_MSR_EXIT_REASON_FILTER);
			mf_expect_sync(vcpu);
		}
		if (!i)
			ksft_print_msg("VM implementation: %s\n", impl_name(vm_impl(vm)));
		MF_ASSERT_ERRNO(mf_set(vm, &a), 0);
		MF_ASSERT_ERRNO(mf_set(vm, &b), 0);
		if (i % 3 == 1)
			mf_expect_sync(vcpu);
		fd = -1;
		if (i % 3 == 2) {
			debugfs_path(vm, "msr_filter", path, sizeof(path));
			fd = open(path, O_RDONLY);
		}
		kvm_vm_free(vm);
		if (fd >= 0) {
			/* The open file keeps the VM (and its filter) alive. */
			TEST_ASSERT(read(fd, buf, sizeof(buf)) > 0,
				    "read msr_filter after kvm_vm_free: %s",
				    strerror(errno));
			close(fd);
		}
	}
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
