// SPDX-License-Identifier: GPL-2.0-only
/*
 * The lifetime of the Rust MSR filter module, kvm_msr_rs.ko: a VM latches
 * the implementation registered when it is created and holds the module
 * until it is destroyed.
 *
 *   - rmmod_busy: with a VM using the module, delete_module() fails with
 *     EWOULDBLOCK (what rmmod reports as "in use") and the VM keeps
 *     working; once the VM is gone the module unloads, new VMs use C, and
 *     after a reload Rust again.
 *   - vm_keeps_impl: VMs of both implementations coexist, each keeps the
 *     one it latched (its debugfs msr_filter file says which).
 *   - load_unload_loop: one thread loads and unloads the module in a loop
 *     while another creates VMs (up to 60, for up to 20 s), installs a
 *     filter and runs a guest access through it; every VM behaves the same,
 *     whichever implementation it got.  The debug flavour checks this for
 *     KASAN, lockdep and kmemleak.
 *
 * Each test leaves the module loaded or not as it found it.  Needs the
 * module file at MF_MODULE_PATH (the test initramfs has it); SKIP without.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "kvm_test_harness.h"
#include "test_util.h"
#include "kvm_util.h"
#include "processor.h"
#include "msr_filter_util.h"

#define DENIED_MSR	MSR_IA32_POWER_CTL
#define MARK		0x5a5a5a5a12345678ull

static void guest_read_denied(void)
{
	GUEST_SYNC(rdmsr(DENIED_MSR));
	GUEST_DONE();
}

/* The implementation a VM's debugfs msr_filter file names, or "?". */
static void vm_impl(struct kvm_vm *vm, char *impl, size_t len)
{
	char path[128], line[64];
	FILE *f;

	snprintf(impl, len, "?");
	snprintf(path, sizeof(path), "/sys/kernel/debug/kvm/%d-%d/msr_filter",
		 getpid(), vm->fd);
	f = fopen(path, "r");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f))
		sscanf(line, "impl: %15s", impl);
	fclose(f);
}

static void expect_impl(struct kvm_vm *vm, const char *want)
{
	char impl[16];

	vm_impl(vm, impl, sizeof(impl));
	TEST_ASSERT(!strcmp(impl, want), "VM implementation %s, want %s",
		    impl, want);
}

/*
 * Denies reads of DENIED_MSR with a FILTER exit, answers it with MARK and
 * checks that the guest read MARK: the VM's filter, exit and completion
 * work.
 */
static void check_vm_works(struct kvm_vcpu *vcpu)
{
	struct kvm_run *run;
	u64 got;

	MF_ASSERT_ERRNO(mf_set_mask(vcpu->vm, KVM_MSR_EXIT_REASON_FILTER), 0);
	mf_deny_one(vcpu->vm, DENIED_MSR, KVM_MSR_FILTER_READ);
	run = mf_expect_msr_exit(vcpu, KVM_EXIT_X86_RDMSR, DENIED_MSR,
				 KVM_MSR_EXIT_REASON_FILTER);
	run->msr.data = MARK;
	got = mf_expect_sync(vcpu);
	TEST_ASSERT(got == MARK, "guest read 0x%lx, want 0x%llx", got, MARK);
	mf_expect_done(vcpu);
}

FIXTURE(module)
{
	bool was_loaded;
};

FIXTURE_SETUP(module)
{
	if (!mf_rust_available())
		SKIP(return, "no %s", MF_MODULE_PATH);
	self->was_loaded = mf_rust_loaded();
}

FIXTURE_TEARDOWN(module)
{
	if (!mf_rust_available())
		return;
	TEST_ASSERT(mf_select_impl(self->was_loaded ? "rust" : "c"),
		    "cannot restore the module state");
}

TEST_F(module, rmmod_busy)
{
	struct kvm_vcpu *vcpu;
	struct kvm_vm *vm;
	int r;

	TEST_ASSERT(mf_select_impl("rust"), "cannot load %s", MF_MODULE_PATH);
	vm = vm_create_with_one_vcpu(&vcpu, guest_read_denied);
	expect_impl(vm, "rust");

	r = mf_unload_rust();
	TEST_ASSERT(r == -EWOULDBLOCK,
		    "delete_module with a live VM: %d (%s), want EWOULDBLOCK",
		    r, strerror(-r));
	TEST_ASSERT(mf_rust_loaded(), "module gone while a VM uses it");
	check_vm_works(vcpu);
	kvm_vm_free(vm);

	r = mf_unload_rust();
	TEST_ASSERT(!r, "delete_module after the VM is gone: %s", strerror(-r));
	TEST_ASSERT(!mf_rust_loaded(), "module still loaded");

	vm = vm_create_with_one_vcpu(&vcpu, guest_read_denied);
	expect_impl(vm, "c");
	check_vm_works(vcpu);
	kvm_vm_free(vm);

	TEST_ASSERT(!mf_load_rust(), "reload failed");
	vm = vm_create_with_one_vcpu(&vcpu, guest_read_denied);
	expect_impl(vm, "rust");
	check_vm_works(vcpu);
	kvm_vm_free(vm);
}

TEST_F(module, vm_keeps_impl)
{
	struct kvm_vcpu *vcpu_c, *vcpu_rs;
	struct kvm_vm *vm_c, *vm_rs;

	TEST_ASSERT(mf_select_impl("c"), "cannot unload the module");
	vm_c = vm_create_with_one_vcpu(&vcpu_c, guest_read_denied);
	TEST_ASSERT(mf_select_impl("rust"), "cannot load the module");
	vm_rs = vm_create_with_one_vcpu(&vcpu_rs, guest_read_denied);

	expect_impl(vm_c, "c");
	expect_impl(vm_rs, "rust");
	check_vm_works(vcpu_c);
	check_vm_works(vcpu_rs);
	kvm_vm_free(vm_rs);
	kvm_vm_free(vm_c);
}

static atomic_bool loop_stop;
static atomic_int loads, unloads, busy;

static void *load_unload(void *arg)
{
	while (!atomic_load(&loop_stop)) {
		int r;

		if (mf_rust_loaded()) {
			r = mf_unload_rust();
			if (!r)
				atomic_fetch_add(&unloads, 1);
			else if (r == -EWOULDBLOCK)
				atomic_fetch_add(&busy, 1);
			else
				TEST_ASSERT(r == -EBUSY || r == -ENOENT,
					    "delete_module: %s", strerror(-r));
		} else {
			r = mf_load_rust();
			if (!r)
				atomic_fetch_add(&loads, 1);
			else
				TEST_ASSERT(r == -EEXIST || r == -EBUSY,
					    "finit_module: %s", strerror(-r));
		}
		usleep(1000);
	}
	return NULL;
}

/*
 * At most LOOP_VMS VMs, and no more once LOOP_SECONDS have passed (the
 * debug flavour's KASAN kernel under TCG is slow): the loop ends within
 * the test's timeout either way.
 */
#define LOOP_VMS	60
#define LOOP_SECONDS	20

TEST_F_TIMEOUT(module, load_unload_loop, 180)
{
	int i, n, impl_rust = 0;
	time_t start = time(NULL);
	pthread_t t;

	atomic_store(&loop_stop, false);
	pthread_create(&t, NULL, load_unload, NULL);
	for (i = 0; i < LOOP_VMS && (i < 2 || time(NULL) - start < LOOP_SECONDS); i++) {
		struct kvm_vcpu *vcpu;
		struct kvm_vm *vm;
		char impl[16];

		vm = vm_create_with_one_vcpu(&vcpu, guest_read_denied);
		vm_impl(vm, impl, sizeof(impl));
		TEST_ASSERT(!strcmp(impl, "c") || !strcmp(impl, "rust"),
			    "VM %d: implementation '%s'", i, impl);
		impl_rust += !strcmp(impl, "rust");
		check_vm_works(vcpu);
		kvm_vm_free(vm);
	}
	n = i;
	atomic_store(&loop_stop, true);
	pthread_join(t, NULL);
	ksft_print_msg("%d VMs (%d Rust) in %lds, %d loads, %d unloads, %d busy unloads\n",
		       n, impl_rust, (long)(time(NULL) - start), atomic_load(&loads),
		       atomic_load(&unloads), atomic_load(&busy));
	TEST_ASSERT(atomic_load(&loads) > 0 && atomic_load(&unloads) > 0,
		    "the module was never loaded and unloaded during the loop");
}

int main(int argc, char *argv[])
{
	return mf_test_main(argc, argv);
}
