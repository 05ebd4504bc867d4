#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: install what is missing, run the host-side Rust tests,
# build the patched kernel and the KVM selftests, boot the kernel under
# QEMU (AMD SVM) and run every test in it, boot the default flavour's
# kernel and initramfs again under Bochs (Intel VMX) and run every test
# there (the "vmx" group), build the documentation, then run the
# pipeline's own broken-case checks.  Ends with one line "N passed, M failed".
#
# Environment: FLAVOURS (default "default module": KVM built in, and KVM as
# modules; add "debug" for the debug kernel), KDIR, COLD=1 (from nothing,
# see below; KEEP=1 keeps its directory), VMX=0 to leave out the Bochs
# group (VMX_BOOT_TIMEOUT, default 3600 s, its whole boot),
# PIPELINE_SELFTEST=0 to skip the broken-case checks,
# STRESS_ITERS (filter replacements of the stress test, given to it by
# tools/testing/selftests/kvm/build.sh; default 10000), BOOT_TIMEOUT (the
# QEMU boot of each flavour, default 2400 s), DEBUG_BOOT_TIMEOUT (that of
# the debug flavour, default 5400 s).
set -uo pipefail
LOG_TAG=check

# COLD=1: the full cold rehearsal.  Everything an earlier run left is out of
# reach: the cache, bindgen (TOOLS_DIR) and cargo's registry cache
# (CARGO_HOME) go into a new temporary directory, removed at the end unless
# KEEP=1.  Only the apt packages already installed are reused.
if [ "${COLD:-0}" = 1 ]; then
	cold=$(mktemp -d "${TMPDIR:-/var/tmp}/kvm-msr-cold-check.XXXXXX") || exit 1
	export KVM_MSR_CACHE=$cold/cache TOOLS_DIR=$cold/cache/tools CARGO_HOME=$cold/cargo COLD=0
	if [ "${KEEP:-0}" = 1 ]; then
		echo "[check] COLD=1: everything in $cold (kept: KEEP=1)" >&2
	else
		echo "[check] COLD=1: everything in $cold (removed at the end; KEEP=1 keeps it)" >&2
		trap 'rm -rf "$cold"' EXIT
	fi
	start_cold=$(date +%s)
fi
. "$(dirname "$0")/lib.sh"

FLAVOURS=${FLAVOURS:-default module}
# shellcheck source=tools/pipeline/guest.sh
. "$TOP/tools/pipeline/guest.sh"
mkdir_or_die "$RESULTS"

bash "$TOP/tools/pipeline/setup-host.sh" || die "host setup failed"

# 1. Host-side Rust tests.
# shellcheck source=tools/pipeline/host-tests.sh
. "$TOP/tools/pipeline/host-tests.sh"
run_host_tests

# 2-5. Kernel, selftests, boot, per flavour.
vmx_boot=()
for flavour in $FLAVOURS; do
	prepare_guest "$flavour" "$CACHE/selftests/$flavour"
	case $? in
	1) count "kernel build ($flavour)" 0 1 0; continue ;;
	2) count "selftest build ($flavour)" 0 1 0; continue ;;
	3) count "module build ($flavour)" 0 1 0; continue ;;
	esac
	# The sample VMM's demo, recorded on this host's KVM, replayed in the
	# guest against both implementations.
	S=$(sample_dir)
	rm -f "$T/sample_demo.expected"
	if [ -x "$S/msr-vmm" ] && [ -c /dev/kvm ] && [ -w /dev/kvm ]; then
		"$S/msr-vmm" --demo 2>/dev/null > "$T/sample_demo.expected" ||
			rm -f "$T/sample_demo.expected"
	fi
	if [ -x "$S/msr-vmm" ]; then
		install -m 755 "$TOP/tools/pipeline/sample-demo-test.sh" "$T/sample_demo_test.sh"
		grep -q '^sample_demo ' "$T/tests.list" ||
			echo "sample_demo sample_demo_test.sh" >> "$T/tests.list"
	fi
	printf 'MODE=check\nTEST_TIMEOUT=%s\n' "${TEST_TIMEOUT:-900}" > "$T/run.conf"
	pack_guest "$T/initramfs.cpio.gz" "$T/run.conf" "$T" "$S" ||
		{ count "initramfs ($flavour)" 0 1 0; continue; }
	log "booting the $flavour kernel and running $(grep -c '^[^#]' "$T/tests.list") test binaries"
	# This boot (and only this one) runs the KUnit suites built in: the
	# Rust doctests, whose every case is a result line.
	kunit=()
	grep -qx 'CONFIG_RUST_KERNEL_DOCTESTS=y' "$B/.config" &&
		kunit=(--expect-kunit rust_doctests_kernel)
	# The debug kernel (KASAN, lockdep, kmemleak, fault injection) takes
	# about 2600 s for the suite under TCG, over boot.sh's default bound
	# (measured: each implementation's half about 1300 s, the faults
	# tests 260-275 s each): its bound is DEBUG_BOOT_TIMEOUT.
	bt=${BOOT_TIMEOUT:-2400}
	[ "$flavour" != debug ] || bt=${DEBUG_BOOT_TIMEOUT:-5400}
	BOOT_ON=qemu KUNIT=1 BOOT_TIMEOUT=$bt boot_and_report "$BZIMAGE" "$T/initramfs.cpio.gz" "$flavour" "${kunit[@]}"
	sed "s/^/[$flavour] /" "$RESULTS/report-$flavour.txt"
	[ "$GUEST_PROBLEMS" = 0 ] || GUEST_FAIL=$((GUEST_FAIL + 1))
	note_failures "$RESULTS/report-$flavour.txt"
	count "guest tests ($flavour)" "$GUEST_PASS" "$GUEST_FAIL" "$GUEST_SKIP"
	[ "$flavour" != default ] || vmx_boot=("$BZIMAGE" "$T/initramfs.cpio.gz")
done

# 5b. The same default kernel and initramfs under Bochs: Intel VMX, where
# kvm_intel runs nested (nested VMX, the VMCS MSR lists, the WRMSR
# fastpath); every test for both implementations, results named vmx/...,
# the tests that need SVM skip.  No KUnit in this boot.
if [ "${VMX:-1}" != 1 ]; then
	log "VMX=0: no Bochs (VMX) group"
elif [ -z "${vmx_boot[0]:-}" ]; then
	log "no default flavour in FLAVOURS=\"$FLAVOURS\": no Bochs (VMX) group"
else
	log "booting the default kernel under Bochs (Intel VMX) and running every test again"
	vmx_start=$SECONDS
	BOOT_ON=vmx BOOT_TIMEOUT=${VMX_BOOT_TIMEOUT:-3600} boot_and_report "${vmx_boot[@]}" vmx
	sed "s/^/[vmx] /" "$RESULTS/report-vmx.txt"
	log "the VMX group took $((SECONDS - vmx_start)) s"
	[ "$GUEST_PROBLEMS" = 0 ] || GUEST_FAIL=$((GUEST_FAIL + 1))
	note_failures "$RESULTS/report-vmx.txt"
	count "guest tests (vmx)" "$GUEST_PASS" "$GUEST_FAIL" "$GUEST_SKIP"
fi

# 6. The project's kernel Rust passes the kernel's own checks: make
# rustfmtcheck and make CLIPPY=1 (warnings are errors).
log "checking the kernel Rust (rustfmtcheck, clippy)"
out=$(bash "$TOP/tools/pipeline/lint-rust.sh" default)
echo "$out"
count "kernel Rust lint" "$(echo "$out" | grep -c '^PASS')" "$(echo "$out" | grep -c '^FAIL')" 0
[ -n "$out" ] || count "kernel Rust lint" 0 1 0

# 7. The documentation builds with the kernel's Sphinx setup, no warnings.
log "building the documentation"
if bash "$TOP/tools/pipeline/docs.sh" > "$RESULTS/docs.log" 2>&1; then
	echo "PASS docs: Documentation/virt/kvm/x86 builds without warnings"
	count docs 1 0 0
else
	tail -20 "$RESULTS/docs.log" >&2
	echo "FAIL docs: see $RESULTS/docs.log"
	count docs 0 1 0
fi

# 8. The pipeline's own tests: deliberately broken runs must be caught.
if [ "${PIPELINE_SELFTEST:-1}" = 1 ]; then
	B=$CACHE/build/$KVER-default
	[ -n "${KDIR:-}" ] && B=$("$TOP/tools/pipeline/build-kernel.sh" default 2>/dev/null)
	if [ -f "$B/arch/x86/boot/bzImage" ]; then
		out=$(bash "$TOP/tools/pipeline/selftest-pipeline.sh" "$B/arch/x86/boot/bzImage")
		echo "$out" | sed 's/^/[pipeline] /'
		p=$(echo "$out" | grep -c '^PASS')
		f=$(echo "$out" | grep -c '^FAIL')
		s=$(echo "$out" | grep -c '^SKIP')
		count "pipeline self-tests" "$p" "$f" "$s"
	fi
fi

[ -z "${start_cold:-}" ] || log "COLD=1: the whole run took $(( ($(date +%s) - start_cold) / 60 )) minutes"
summary
