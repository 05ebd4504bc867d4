/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The kvm_msr_rs module for the MSR filter selftests: the helpers that
 * need no selftest library (msr_filter_faults_test is built without it).
 */
#ifndef SELFTEST_KVM_MSR_FILTER_MODULE_H
#define SELFTEST_KVM_MSR_FILTER_MODULE_H

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * The Rust implementation is the module kvm_msr_rs.ko: VMs created while it
 * is loaded use it, the others KVM's C.  The test initramfs keeps the
 * module file at MF_MODULE_PATH.
 */
#define MF_MODULE		"kvm_msr_rs"
#define MF_MODULE_PATH		"/lib/modules/kvm_msr_rs.ko"

/* Is kvm_msr_rs loaded (and so the implementation of new VMs)? */
static inline bool mf_rust_loaded(void)
{
	char buf[16] = "";
	FILE *f = fopen("/sys/module/" MF_MODULE "/initstate", "r");

	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return !strncmp(buf, "live", 4);
}

/* Is there a kvm_msr_rs.ko to load? */
static inline bool mf_rust_available(void)
{
	return access(MF_MODULE_PATH, R_OK) == 0;
}

/* Loads kvm_msr_rs.ko: 0 or -errno (-EEXIST if it is loaded). */
static inline int mf_load_rust(void)
{
	int fd = open(MF_MODULE_PATH, O_RDONLY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	r = syscall(__NR_finit_module, fd, "", 0) ? -errno : 0;
	close(fd);
	return r;
}

/*
 * Unloads kvm_msr_rs without waiting: 0 or -errno (-EWOULDBLOCK while a VM
 * holds it, -ENOENT if it is not loaded).
 */
static inline int mf_unload_rust(void)
{
	return syscall(__NR_delete_module, MF_MODULE, O_NONBLOCK) ? -errno : 0;
}

#endif /* SELFTEST_KVM_MSR_FILTER_MODULE_H */
