# SPDX-License-Identifier: GPL-2.0
#
# kvm-msr-rs: KVM x86 userspace MSR filtering in Rust, on a patched Linux 7.3.
#
#   make check   install what is missing, build and boot the patched kernel,
#                run every test (host Rust tests, KVM selftests and Rust
#                doctests in the guest, rustfmt and clippy, the pipeline's
#                own checks); ends with "N passed, M failed"
#   make check COLD=1
#                the same from nothing (a new empty cache, bindgen rebuilt):
#                the definition of done for a tools/pipeline change
#   make run     boot the patched kernel and run CMD in it (default: the
#                sample VMM's demo); BOOT_ON=vmx boots it under Bochs
#                (Intel VMX) instead of QEMU (AMD SVM); see README.md
#   make module  build kvm_msr_rs.ko (./Kbuild) against the kernel build
#   make bench   Rust/C ratios measured side by side in one boot
#   make docs    the ABI reference and design documents (Sphinx, no warnings)
#   make series  the kernel change as one git-am series, in build/series
#   make series-check  apply it to v7.3 and build every prefix of it
#   make kernel-tree / make patches
#                an editable git tree of the patched kernel (~/.cache/...)
#                / write its commits back to patches/
#
# Variables: KDIR=/path/to/linux-7.3 (use your tree), FLAVOURS="default
# module debug norust" (check), COLD=1 KEEP=1 VMX=0 (check),
# FLAVOUR=module|debug|norust (run, kernel, module), CMD='...', SHARE=dir,
# IMPL=c|rust, BOOT_ON=qemu|vmx (run),
# JOBS=N, KVM_MSR_CACHE=dir, KSRC_DEB=file.deb.

PIPE := tools/pipeline

.PHONY: all check run bench docs series series-check kernel-tree patches kernel module host-test pipeline-selftest setup help

all: help

help:
	@sed -n '3,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

setup:
	bash $(PIPE)/setup-host.sh

check:
	COLD=$(COLD) KEEP=$(KEEP) bash $(PIPE)/check.sh

run:
	bash $(PIPE)/run.sh

kernel:
	bash $(PIPE)/build-kernel.sh $(or $(FLAVOUR),default)

# kvm_msr_rs.ko from ./Kbuild, against the (patched) kernel's build directory.
module:
	bash $(PIPE)/build-module.sh "$$(bash $(PIPE)/build-kernel.sh $(or $(FLAVOUR),default))"

bench:
	bash $(PIPE)/bench.sh

docs:
	bash $(PIPE)/docs.sh

series:
	bash $(PIPE)/export-series.sh build/series

series-check:
	bash $(PIPE)/series-check.sh

kernel-tree:
	bash $(PIPE)/kernel-tree.sh

patches:
	bash $(PIPE)/kernel-tree.sh save

host-test:
	bash $(PIPE)/host-tests.sh

pipeline-selftest:
	@B=$$(bash $(PIPE)/build-kernel.sh default) && \
	bash $(PIPE)/selftest-pipeline.sh $$B/arch/x86/boot/bzImage | awk '{ print } \
		/^PASS/ { p++ } /^FAIL/ { f++ } /^SKIP/ { s++ } \
		END { printf "%d passed, %d failed%s\n", p, f, s ? ", " s " skipped" : ""; exit f > 0 }'
