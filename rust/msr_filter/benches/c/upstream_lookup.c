// SPDX-License-Identifier: GPL-2.0
/*
 * The host benchmark's reference: upstream 7.3's MSR filter lookup in C,
 * with its data layout (struct msr_bitmap_range, struct kvm_x86_msr_filter
 * of arch/x86/kvm/msrs.c) and its loop (kvm_msr_allowed_c() there: the
 * x2APIC check, then the first range that covers the index and has the
 * access type's flag decides with x86's test_bit(), a BT on the bitmap).
 * Only the SRCU read-side section and the struct kvm plumbing are left
 * out; build.rs compiles this with clang at the kernel's -O2 and code
 * generation flags, and the benchmark calls it from the same process as
 * the Rust core, on the same filters.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint8_t u8;
typedef uint32_t u32;


struct msr_bitmap_range {
	u32 flags;
	u32 nmsrs;
	u32 base;
	unsigned long *bitmap;
};

struct kvm_x86_msr_filter {
	u8 count;
	bool default_allow:1;
	struct msr_bitmap_range ranges[16];
};

/*
 * test_bit() as x86 compiles it for a variable bit number:
 * variable_test_bit() of arch/x86/include/asm/bitops.h, a BT on memory
 * (there the pointer is also volatile, which the asm volatile and the
 * memory clobber already imply for this code).
 */
static inline bool test_bit(long nr, const unsigned long *addr)
{
	bool oldbit;

	asm volatile("btq %2,%1"
		     : "=@ccc" (oldbit)
		     : "m" (*(unsigned long *)addr), "Ir" (nr) : "memory");
	return oldbit;
}

/* Out of line: Rust calls it across the object boundary, without LTO. */
bool upstream_msr_allowed(const struct kvm_x86_msr_filter *msr_filter,
			  u32 index, u32 type)
{
	const struct msr_bitmap_range *ranges;
	bool allowed;
	u32 i;

	/* x2APIC MSRs do not support filtering. */
	if (index >= 0x800 && index <= 0x8ff)
		return true;

	if (!msr_filter)
		return true;

	allowed = msr_filter->default_allow;
	ranges = msr_filter->ranges;

	for (i = 0; i < msr_filter->count; i++) {
		u32 start = ranges[i].base;
		u32 end = start + ranges[i].nmsrs;
		u32 flags = ranges[i].flags;
		unsigned long *bitmap = ranges[i].bitmap;

		if ((index >= start) && (index < end) && (flags & type)) {
			allowed = test_bit(index - start, bitmap);
			break;
		}
	}
	return allowed;
}

/* For the Rust side's layout check. */
size_t upstream_filter_size(void)
{
	return sizeof(struct kvm_x86_msr_filter);
}

size_t upstream_range_offset(unsigned int i)
{
	return offsetof(struct kvm_x86_msr_filter, ranges) +
	       i * sizeof(struct msr_bitmap_range);
}
