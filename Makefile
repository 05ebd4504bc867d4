# SPDX-License-Identifier: GPL-2.0
#
# kvm-msr-rs: KVM x86 userspace MSR filtering in Rust, on a patched Linux 7.3.
#
#   make check   install what is missing, build and boot the patched kernel,
#                run every test (host Rust tests, KVM selftests in the guest,
#                the pipeline's own checks); ends with "N passed, M failed"
#   make run     boot the patched kernel and run CMD in it (default: the
#                sample VMM's demo); see README.md
#
# Variables: KDIR=/path/to/linux-7.3 (use your tree), FLAVOURS="default debug"
# (check), FLAVOUR=debug (run, kernel), CMD='...', SHARE=dir (run), JOBS=N.

PIPE := tools/pipeline

.PHONY: all check run kernel kernel-debug host-test pipeline-selftest setup help

all: help

help:
	@sed -n '3,14p' Makefile | sed 's/^# \{0,1\}//'

setup:
	bash $(PIPE)/setup-host.sh

check:
	bash $(PIPE)/check.sh

run:
	bash $(PIPE)/run.sh

kernel:
	bash $(PIPE)/build-kernel.sh $(or $(FLAVOUR),default)

kernel-debug:
	bash $(PIPE)/build-kernel.sh debug

host-test:
	bash -c '. $(PIPE)/lib.sh; count() { :; }; . $(PIPE)/host-tests.sh; run_host_tests'

pipeline-selftest:
	bash $(PIPE)/selftest-pipeline.sh $$(bash $(PIPE)/build-kernel.sh default)/arch/x86/boot/bzImage
