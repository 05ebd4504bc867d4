// SPDX-License-Identifier: GPL-2.0-only
/*
 * x86 KVM_GET_ONE_REG / KVM_SET_ONE_REG / KVM_GET_REG_LIST: the register
 * id checks, the errno order of the copies and the access, REG_LIST, and
 * ONE_REG agreeing with KVM_GET/SET_MSRS on every MSR KVM lists.
 *
 * Rule ids refer to abi-rules.md section 1.4 of the kvm-msr-rs project
 * (I1, I2); the same rules are tested on the host against the Rust core
 * (rust/msr_filter/tests/one_reg.rs).
 */
#include <sys/mman.h>
#include <unistd.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_util.h"

#define BAD_PTR		((void *)0x10)
/* An MSR no KVM implements (upstream's userspace_msr_exit_test uses it). */
#define MSR_UNKNOWN	0xdeadbeef

KVM_ONE_VCPU_TEST_SUITE(one_reg);

static int get_reg(struct kvm_vcpu *vcpu, u64 id, void *addr)
{
	return __vcpu_get_reg(vcpu, id, addr) ? -errno : 0;
}

static int set_reg_at(struct kvm_vcpu *vcpu, u64 id, void *addr)
{
	struct kvm_one_reg reg = { .id = id, .addr = (u64)addr };

	return __vcpu_ioctl(vcpu, KVM_SET_ONE_REG, &reg) ? -errno : 0;
}

static int set_reg(struct kvm_vcpu *vcpu, u64 id, u64 val)
{
	return set_reg_at(vcpu, id, &val);
}

/* The vCPU ioctl @cmd with any @arg (__vcpu_ioctl() checks its size). */
static int raw_ioctl(struct kvm_vcpu *vcpu, unsigned long cmd, void *arg)
{
	return ioctl(vcpu->fd, cmd, arg) ? -errno : 0;
}

static int reg_list(struct kvm_vcpu *vcpu, void *list)
{
	return raw_ioctl(vcpu, KVM_GET_REG_LIST, list);
}

/* KVM_GET_MSRS of one MSR: the number of MSRs read, 0 or 1. */
static int get_msrs_one(struct kvm_vcpu *vcpu, u32 index, u64 *data)
{
	struct {
		struct kvm_msrs header;
		struct kvm_msr_entry entry;
	} buf = { .header.nmsrs = 1, .entry.index = index };
	int r = __vcpu_ioctl(vcpu, KVM_GET_MSRS, &buf.header);

	*data = buf.entry.data;
	return r;
}

/* Does this vCPU have the KVM-defined register KVM_REG_GUEST_SSP? */
static bool has_guest_ssp(struct kvm_vcpu *vcpu)
{
	return vcpu_cpuid_has(vcpu, X86_FEATURE_SHSTK);
}

/* Both ioctls on @id: they must give @want. */
static void assert_get_set(struct kvm_vcpu *vcpu, u64 id, int want)
{
	u64 v = 0;

	TEST_ASSERT(get_reg(vcpu, id, &v) == want,
		    "GET_ONE_REG id 0x%llx: got %s, want %s", (unsigned long long)id,
		    strerror(errno), want ? strerror(-want) : "ok");
	TEST_ASSERT(set_reg(vcpu, id, v) == want,
		    "SET_ONE_REG id 0x%llx: got %s, want %s", (unsigned long long)id,
		    strerror(errno), want ? strerror(-want) : "ok");
}

/* I1: the architecture field must be KVM_REG_X86. */
KVM_ONE_VCPU_TEST(one_reg, arch_field, NULL)
{
	u64 id = KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS) & ~KVM_REG_ARCH_MASK;
	static const u64 arch[] = { 0, 0x10, 0x21, 0x30, 0x40, 0x60, 0xff };
	int i;

	for (i = 0; i < ARRAY_SIZE(arch); i++)
		assert_get_set(vcpu, id | arch[i] << 56, -EINVAL);
	assert_get_set(vcpu, id | KVM_REG_X86, 0);
}

/* I1: both reserved fields (bits 40-47 and 48-51) must be zero. */
KVM_ONE_VCPU_TEST(one_reg, reserved_fields, NULL)
{
	int bit;

	for (bit = 40; bit < 52; bit++) {
		assert_get_set(vcpu, KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS) | BIT_ULL(bit),
			       -EINVAL);
		assert_get_set(vcpu, KVM_X86_REG_KVM(KVM_REG_GUEST_SSP) | BIT_ULL(bit),
			       -EINVAL);
	}
}

/* I1: any type but MSR (2) and KVM (3) is invalid. */
KVM_ONE_VCPU_TEST(one_reg, type_field, NULL)
{
	u64 base = KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS) & ~(0xffull << 32);
	u64 ty;

	for (ty = 0; ty < 256; ty++) {
		if (ty == KVM_X86_REG_TYPE_MSR || ty == KVM_X86_REG_TYPE_KVM)
			continue;
		assert_get_set(vcpu, base | ty << 32, -EINVAL);
	}
}

/* I1: the size field must be U64, for MSRs and for KVM_REG_GUEST_SSP. */
KVM_ONE_VCPU_TEST(one_reg, size_field, NULL)
{
	u64 msr = KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS) & ~KVM_REG_SIZE_MASK;
	u64 ssp = KVM_X86_REG_KVM(KVM_REG_GUEST_SSP) & ~KVM_REG_SIZE_MASK;
	u64 size;

	for (size = 0; size < 16; size++) {
		if (size == KVM_REG_SIZE_U64 >> KVM_REG_SIZE_SHIFT)
			continue;
		assert_get_set(vcpu, msr | size << KVM_REG_SIZE_SHIFT, -EINVAL);
		assert_get_set(vcpu, ssp | size << KVM_REG_SIZE_SHIFT, -EINVAL);
	}
	assert_get_set(vcpu, msr | KVM_REG_SIZE_U64, 0);
}

/*
 * I1: the only KVM-type register is KVM_REG_GUEST_SSP, and only for a vCPU
 * with shadow stacks (none under this project's emulated CPUs: then it is
 * EINVAL like any other KVM index).
 */
KVM_ONE_VCPU_TEST(one_reg, kvm_type, NULL)
{
	static const u32 index[] = { 1, 2, 0x35, 0x4b564dff, 0xffffffff };
	u64 id;
	int i;

	for (i = 0; i < ARRAY_SIZE(index); i++) {
		id = KVM_REG_X86 | KVM_REG_SIZE_U64 |
		     (u64)KVM_X86_REG_TYPE_KVM << 32 | index[i];
		assert_get_set(vcpu, id, -EINVAL);
	}
	id = KVM_X86_REG_KVM(KVM_REG_GUEST_SSP);
	if (has_guest_ssp(vcpu)) {
		assert_get_set(vcpu, id, 0);
	} else {
		assert_get_set(vcpu, id, -EINVAL);
		ksft_print_msg("no SHSTK: KVM_REG_GUEST_SSP tested absent only\n");
	}
}

/*
 * I1, errno order: the struct is copied first (EFAULT), then the id is
 * checked (EINVAL, whatever the value's address); a get accesses the MSR
 * (EINVAL) before writing the value (EFAULT), a set reads the value
 * (EFAULT) before accessing the MSR (EINVAL).
 */
KVM_ONE_VCPU_TEST(one_reg, errno_order, NULL)
{
	u64 known = KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS);
	u64 unknown = KVM_X86_REG_MSR(MSR_UNKNOWN);
	long pg = getpagesize();
	struct kvm_one_reg *tail;
	u8 *p;

	MF_ASSERT_ERRNO(raw_ioctl(vcpu, KVM_GET_ONE_REG, BAD_PTR), -EFAULT);
	MF_ASSERT_ERRNO(raw_ioctl(vcpu, KVM_SET_ONE_REG, BAD_PTR), -EFAULT);

	/* A struct whose addr field is on an unmapped page. */
	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap");
	TEST_ASSERT(!munmap(p + pg, pg), "munmap");
	tail = (struct kvm_one_reg *)(p + pg - 8);
	tail->id = known;
	MF_ASSERT_ERRNO(raw_ioctl(vcpu, KVM_GET_ONE_REG, tail), -EFAULT);
	MF_ASSERT_ERRNO(raw_ioctl(vcpu, KVM_SET_ONE_REG, tail), -EFAULT);
	munmap(p, pg);

	MF_ASSERT_ERRNO(get_reg(vcpu, known | BIT_ULL(40), BAD_PTR), -EINVAL);
	MF_ASSERT_ERRNO(set_reg_at(vcpu, known | BIT_ULL(40), BAD_PTR), -EINVAL);

	MF_ASSERT_ERRNO(get_reg(vcpu, unknown, BAD_PTR), -EINVAL);
	MF_ASSERT_ERRNO(get_reg(vcpu, known, BAD_PTR), -EFAULT);
	MF_ASSERT_ERRNO(set_reg_at(vcpu, unknown, BAD_PTR), -EFAULT);
	MF_ASSERT_ERRNO(set_reg(vcpu, unknown, 0), -EINVAL);
	MF_ASSERT_ERRNO(set_reg(vcpu, known, 0x10), 0);
}

/*
 * I1: a value written with SET_ONE_REG is the MSR's (KVM_GET_MSRS reads
 * it), and one written with KVM_SET_MSRS is what GET_ONE_REG reads.
 */
KVM_ONE_VCPU_TEST(one_reg, value_both_ways, NULL)
{
	u64 id = KVM_X86_REG_MSR(MSR_IA32_SYSENTER_CS), v = 0;

	MF_ASSERT_ERRNO(set_reg(vcpu, id, 0x1234), 0);
	TEST_ASSERT_EQ(vcpu_get_msr(vcpu, MSR_IA32_SYSENTER_CS), 0x1234);
	vcpu_set_msr(vcpu, MSR_IA32_SYSENTER_CS, 0x5678);
	MF_ASSERT_ERRNO(get_reg(vcpu, id, &v), 0);
	TEST_ASSERT_EQ(v, 0x5678);
}

/*
 * I2: KVM_GET_REG_LIST lists KVM_REG_GUEST_SSP with SHSTK, nothing
 * otherwise (MSRs are not enumerated); n is written back before E2BIG.
 */
KVM_ONE_VCPU_TEST(one_reg, reg_list, NULL)
{
	u64 nr = has_guest_ssp(vcpu) ? 1 : 0;
	static const u64 n_in[] = { 0, 1, 2, 100, ~0ull };
	struct {
		u64 n;
		u64 reg[4];
	} list;
	long pg = getpagesize();
	int i, want;
	u64 *p;

	for (i = 0; i < ARRAY_SIZE(n_in); i++) {
		memset(&list, 0xaa, sizeof(list));
		list.n = n_in[i];
		want = n_in[i] < nr ? -E2BIG : 0;
		MF_ASSERT_ERRNO(reg_list(vcpu, &list), want);
		TEST_ASSERT_EQ(list.n, nr);
		if (nr && n_in[i] >= nr)
			TEST_ASSERT_EQ(list.reg[0], KVM_X86_REG_KVM(KVM_REG_GUEST_SSP));
		else
			TEST_ASSERT_EQ(list.reg[0], 0xaaaaaaaaaaaaaaaaull);
	}
	MF_ASSERT_ERRNO(reg_list(vcpu, BAD_PTR), -EFAULT);

	/* n readable, reg[] unmapped: EFAULT only if there is an id to write. */
	p = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	TEST_ASSERT(p != MAP_FAILED, "mmap");
	TEST_ASSERT(!munmap((u8 *)p + pg, pg), "munmap");
	p = (u64 *)((u8 *)p + pg - 8);
	*p = 16;
	want = nr ? -EFAULT : 0;
	MF_ASSERT_ERRNO(reg_list(vcpu, p), want);
	TEST_ASSERT_EQ(*p, nr);
	munmap((u8 *)p + 8 - pg, pg);
	if (!nr)
		ksft_print_msg("no SHSTK: the list is empty, E2BIG not reachable\n");
}

/*
 * I1: for every MSR of KVM_GET_MSR_INDEX_LIST, ONE_REG with
 * KVM_X86_REG_MSR() succeeds or fails as KVM_GET_MSRS / KVM_SET_MSRS do,
 * and reads the same value; writing back the value read agrees too.
 */
KVM_ONE_VCPU_TEST(one_reg, agrees_with_get_set_msrs, NULL)
{
	const struct kvm_msr_list *list = kvm_get_msr_index_list();
	int i, ok_get = 0, ok_set = 0, moving = 0;
	u64 a, a2, b;

	for (i = 0; i < list->nmsrs; i++) {
		u32 index = list->indices[i];
		bool msrs_ok, reg_ok;

		a = 0;
		a2 = 0;
		b = 0;
		msrs_ok = get_msrs_one(vcpu, index, &a) == 1;
		reg_ok = !get_reg(vcpu, KVM_X86_REG_MSR(index), &b);
		TEST_ASSERT(msrs_ok == reg_ok, "MSR 0x%x: GET_MSRS %s, GET_ONE_REG %s",
			    index, msrs_ok ? "ok" : "fails", reg_ok ? "ok" : "fails");
		if (!reg_ok)
			continue;
		ok_get++;
		/*
		 * The values must match, except for MSRs that move on their
		 * own (TSC, APERF/MPERF, Hyper-V's reference counter): those
		 * that read differently twice in a row through KVM_GET_MSRS.
		 */
		TEST_ASSERT_EQ(get_msrs_one(vcpu, index, &a2), 1);
		if (a != a2)
			moving++;
		else
			TEST_ASSERT(a == b, "MSR 0x%x: GET_MSRS 0x%llx, GET_ONE_REG 0x%llx",
				    index, (unsigned long long)a, (unsigned long long)b);
		msrs_ok = _vcpu_set_msr(vcpu, index, b) == 1;
		reg_ok = !set_reg(vcpu, KVM_X86_REG_MSR(index), b);
		TEST_ASSERT(msrs_ok == reg_ok, "MSR 0x%x = 0x%llx: SET_MSRS %s, SET_ONE_REG %s",
			    index, (unsigned long long)b, msrs_ok ? "ok" : "fails",
			    reg_ok ? "ok" : "fails");
		ok_set += reg_ok;
	}
	ksft_print_msg("%u MSRs listed, %d read (%d moving) and %d written back through ONE_REG\n",
		       list->nmsrs, ok_get, moving, ok_set);
	TEST_ASSERT(ok_get > 0 && ok_set > 0, "no MSR accessible through ONE_REG");
}

int main(int argc, char *argv[])
{
	TEST_REQUIRE(kvm_has_cap(KVM_CAP_ONE_REG));
	return mf_test_main(argc, argv);
}
