#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make check`: install what is missing, run the host-side Rust tests,
# build the patched kernel and the KVM selftests, boot the kernel under
# QEMU and run every test in it, build the documentation, then run the
# pipeline's own broken-case checks.  Ends with one line "N passed, M failed".
#
# Environment: FLAVOURS (default "default module": KVM built in, and KVM as
# modules; add "debug" for the debug kernel), KDIR, PIPELINE_SELFTEST=0 to skip the broken-case checks,
# STRESS_ITERS (filter replacements of the stress test, given to it by
# tools/testing/selftests/kvm/build.sh; default 10000), BOOT_TIMEOUT.
set -uo pipefail
LOG_TAG=check
. "$(dirname "$0")/lib.sh"

FLAVOURS=${FLAVOURS:-default module}
RESULTS=$CACHE/results
mkdir -p "$RESULTS"
total_pass=0
total_fail=0
total_skip=0
failures=()

count() { # count LABEL PASS FAIL SKIP
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	total_skip=$((total_skip + $4))
	[ "$3" = 0 ] || failures+=("$1")
}

bash "$TOP/tools/pipeline/setup-host.sh" || die "host setup failed"

# 1. Host-side Rust tests.
# shellcheck source=tools/pipeline/host-tests.sh
. "$TOP/tools/pipeline/host-tests.sh"
run_host_tests

# 2-5. Kernel, selftests, boot, per flavour.
for flavour in $FLAVOURS; do
	B=$("$TOP/tools/pipeline/build-kernel.sh" "$flavour") || {
		count "kernel build ($flavour)" 0 1 0
		continue
	}
	# The Rust implementation, kvm_msr_rs.ko (none for norust).
	KO=$("$TOP/tools/pipeline/build-module.sh" "$B") || {
		count "module build ($flavour)" 0 1 0
		continue
	}
	# build-kernel.sh prepared the tree; kbuild links it from the build dir.
	SRC=$(readlink -f "$B/source")
	T=$CACHE/selftests/$flavour
	log "building KVM selftests from $SRC"
	if ! bash "$TOP/tools/testing/selftests/kvm/build.sh" "$SRC" "$T" > "$RESULTS/selftests-build.log" 2>&1; then
		tail -40 "$RESULTS/selftests-build.log" >&2
		count "selftest build" 0 1 0
		continue
	fi
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
	conf=$(mktemp)
	printf 'MODE=check\nTEST_TIMEOUT=%s\n' "${TEST_TIMEOUT:-900}" > "$conf"
	MODULE_KO=$KO KBUILD_DIR=$B \
		"$TOP/tools/pipeline/mkinitramfs.sh" "$T/initramfs.cpio.gz" "$conf" "$T" "$S"
	rm -f "$conf"
	log "booting the $flavour kernel and running $(grep -c '^[^#]' "$T/tests.list") test binaries"
	"$TOP/tools/pipeline/boot.sh" "$B/arch/x86/boot/bzImage" "$T/initramfs.cpio.gz" \
		"$RESULTS/console-$flavour.log"
	qs=$?
	python3 "$TOP/tools/pipeline/report.py" --qemu-status "$qs" \
		"$RESULTS/console-$flavour.log" | tee "$RESULTS/report-$flavour.txt" | sed "s/^/[$flavour] /"
	read -r p f s < <(sed -n 's/^guest: \([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\?$/\1 \2 \4/p' \
		"$RESULTS/report-$flavour.txt")
	s=${s:-0}
	if grep -q '^PROBLEM' "$RESULTS/report-$flavour.txt"; then
		f=$((f + 1))
	fi
	count "guest tests ($flavour)" "${p:-0}" "${f:-1}" "$s"
done

# 6. The documentation builds with the kernel's Sphinx setup, no warnings.
log "building the documentation"
if bash "$TOP/tools/pipeline/docs.sh" > "$RESULTS/docs.log" 2>&1; then
	echo "PASS docs: Documentation/virt/kvm/x86 builds without warnings"
	count docs 1 0 0
else
	tail -20 "$RESULTS/docs.log" >&2
	echo "FAIL docs: see $RESULTS/docs.log"
	count docs 0 1 0
fi

# 7. The pipeline's own tests: deliberately broken runs must be caught.
if [ "${PIPELINE_SELFTEST:-1}" = 1 ]; then
	B=$CACHE/build/$KVER-default
	[ -n "${KDIR:-}" ] && B=$("$TOP/tools/pipeline/build-kernel.sh" default 2>/dev/null)
	if [ -f "$B/arch/x86/boot/bzImage" ]; then
		out=$(bash "$TOP/tools/pipeline/selftest-pipeline.sh" "$B/arch/x86/boot/bzImage")
		echo "$out" | sed 's/^/[pipeline] /'
		p=$(echo "$out" | grep -c '^PASS')
		f=$(echo "$out" | grep -c '^FAIL')
		count "pipeline self-tests" "$p" "$f" 0
	fi
fi

if [ ${#failures[@]} -gt 0 ]; then
	log "failed: ${failures[*]}"
fi
if [ "$total_skip" -gt 0 ]; then
	echo "$total_pass passed, $total_fail failed, $total_skip skipped"
else
	echo "$total_pass passed, $total_fail failed"
fi
[ "$total_fail" = 0 ]
