#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# selftest-pipeline.sh BZIMAGE: the pipeline's own tests.  Boots the real
# kernel with deliberately broken cases (under QEMU, and under Bochs when
# it is installed) and checks that report.py catches each one with a
# readable reason, then runs the cold paths in an empty
# cache (selftest-cold.sh).  Prints PASS/FAIL/SKIP lines.
set -uo pipefail
LOG_TAG=pipeline-selftest
. "$(dirname "$0")/lib.sh"

kernel=$1
w=$(mktemp -d)
trap 'rm -rf "$w"' EXIT
RESULTS=$w
. "$TOP/tools/pipeline/guest.sh"
# QEMU unless a boot below says BOOT_ON=vmx.
unset BOOT_ON

expect() { # expect NAME FILE PATTERN: FILE must contain PATTERN
	if grep -qE -- "$3" "$2"; then
		echo "PASS $1"
	else
		echo "FAIL $1 (no line matching '$3' in the report:)"
		sed 's/^/    /' "$2" | head -40
	fi
}

# Boot 1: a passing test, a failing TAP test, a hung test, a guest WARN.
mkdir -p "$w/t1"
cat > "$w/t1/pass.sh" <<'S'
#!/bin/sh
printf 'TAP version 13\n1..1\nok 1 trivially passing\n'
S
cat > "$w/t1/fail.sh" <<'S'
#!/bin/sh
printf 'TAP version 13\n1..1\nnot ok 1 deliberately failing\n'
exit 1
S
cat > "$w/t1/hang.sh" <<'S'
#!/bin/sh
sleep 600
S
cat > "$w/t1/warn.sh" <<'S'
#!/bin/sh
echo WARNING > /sys/kernel/debug/provoke-crash/DIRECT
S
chmod +x "$w/t1"/*.sh
printf 'pass pass.sh\nfail fail.sh\nhang hang.sh\nwarn warn.sh\n' > "$w/t1/tests.list"
printf 'MODE=check\nTEST_TIMEOUT=10\nIMPLS=default\n' > "$w/conf1"
pack_guest "$w/i1.gz" "$w/conf1" "$w/t1"
QUIET=1 BOOT_TIMEOUT=300 boot_and_report "$kernel" "$w/i1.gz" 1 2>/dev/null
rc=$?
if [ "$rc" != 0 ]; then echo "PASS broken run exits non-zero"; else echo "FAIL broken run exited 0"; fi
expect "a passing test is reported as passed" "$w/report-1.txt" '^PASS [^ ]*/pass: trivially passing'
expect "a failing TAP test is reported as failed" "$w/report-1.txt" '^FAIL [^ ]*/fail: deliberately failing'
expect "a hung test is stopped and failed" "$w/report-1.txt" '^FAIL [^ ]*/hang.*timed out'
expect "a guest WARN_ON is caught" "$w/report-1.txt" '^PROBLEM kernel WARNING: .*lkdtm'
expect "the summary counts them" "$w/report-1.txt" '^guest: 2 passed, 2 failed'

# Boot 1b, 2b: the same under Bochs (BOOT_ON=vmx, boot-bochs.sh): a failing
# test fails with its reason, results named vmx/...; a boot panic, which
# does not stop Bochs, ends the run and is caught.
if command -v bochs > /dev/null 2>&1; then
	mkdir -p "$w/t1b"
	cp "$w/t1/pass.sh" "$w/t1/fail.sh" "$w/t1b/"
	printf 'pass pass.sh\nfail fail.sh\n' > "$w/t1b/tests.list"
	pack_guest "$w/i1b.gz" "$w/conf1" "$w/t1b"
	BOOT_ON=vmx QUIET=1 BOOT_TIMEOUT=600 boot_and_report "$kernel" "$w/i1b.gz" 1b 2>/dev/null
	rc=$?
	if [ "$rc" != 0 ]; then echo "PASS broken run under Bochs exits non-zero"; else echo "FAIL broken run under Bochs exited 0"; fi
	expect "a passing test under Bochs is reported as passed" "$w/report-1b.txt" '^PASS vmx/[^ ]*/pass: trivially passing'
	expect "a failing test under Bochs is reported as failed" "$w/report-1b.txt" '^FAIL vmx/[^ ]*/fail: deliberately failing'
	expect "the summary under Bochs counts them" "$w/report-1b.txt" '^guest: 1 passed, 1 failed'
	printf 'MODE=check\n' > "$w/conf2b"
	pack_guest "$w/i2b.gz" "$w/conf2b"
	BOOT_ON=vmx QUIET=1 BOOT_TIMEOUT=600 BOOT_ARGS=rdinit=/does-not-exist boot_and_report "$kernel" "$w/i2b.gz" 2b 2>/dev/null
	rc=$?
	if [ "$rc" != 0 ]; then echo "PASS panicking boot under Bochs exits non-zero"; else echo "FAIL panicking boot under Bochs exited 0"; fi
	expect "a boot panic under Bochs is caught" "$w/report-2b.txt" '^PROBLEM kernel panic: .*Kernel panic'
else
	echo "SKIP the Bochs (VMX) boots: bochs is not installed"
fi

# Boot 2: the kernel panics at boot (no init to run).
printf 'MODE=check\n' > "$w/conf2"
pack_guest "$w/i2.gz" "$w/conf2"
QUIET=1 BOOT_TIMEOUT=300 BOOT_ARGS=rdinit=/does-not-exist boot_and_report "$kernel" "$w/i2.gz" 2 2>/dev/null
rc=$?
if [ "$rc" != 0 ]; then echo "PASS panicking boot exits non-zero"; else echo "FAIL panicking boot exited 0"; fi
expect "a boot panic is caught" "$w/report-2.txt" '^PROBLEM kernel panic: .*Kernel panic'
expect "a boot panic says init was not reached" "$w/report-2.txt" '^PROBLEM the kernel did not reach /init'

# No boot: the report must flag a test whose outcome differs between the
# two implementations, even when each run looks fine on its own.
{
	echo "@@BOOT-OK synthetic"
	for impl in c rust; do
		echo "@@TEST-BEGIN $impl/t"
		echo "TAP version 13"
		echo "1..1"
		if [ "$impl" = c ]; then echo "ok 1 x"; else echo "ok 1 x # SKIP synthetic"; fi
		echo "@@TEST-END $impl/t rc=0"
	done
	echo "@@DONE"
} > "$w/log3"
python3 "$(dirname "$0")/report.py" "$w/log3" > "$w/r3"
rc=$?
if [ "$rc" != 0 ]; then echo "PASS differing implementations exit non-zero"; else echo "FAIL differing implementations exited 0"; fi
expect "differing implementations are named" "$w/r3" '^PROBLEM implementations differ on t: x: c pass, rust skip'

# No boot: the KUnit KTAP of the Rust doctests, as the guest prints it
# (tools/pipeline/guest-init.sh, from debugfs), with one failing doctest:
# every case is a result, the failing one fails the run; a suite that
# make check expects but that did not report is a problem.
{
	echo "@@BOOT-OK synthetic"
	echo "@@KTAP-BEGIN /sys/kernel/debug/kunit/rust_doctests_kernel"
	echo "KTAP version 1"
	echo "1..1"
	echo "    KTAP version 1"
	echo "    # Subtest: rust_doctests_kernel"
	echo "    1..2"
	echo "    ok 1 rust_doctest_kernel_sync_srcu_rs_0"
	echo "    # rust_doctest_kernel_sync_srcu_rs_1: ASSERTION FAILED at rust/kernel/sync/srcu.rs:120"
	echo "    Expected p.is_null() to be true, but is false"
	echo "    not ok 2 rust_doctest_kernel_sync_srcu_rs_1"
	echo "# rust_doctests_kernel: pass:1 fail:1 skip:0 total:2"
	echo "not ok 1 rust_doctests_kernel"
	echo "@@KTAP-END"
	echo "@@DONE"
} > "$w/log4"
python3 "$(dirname "$0")/report.py" --expect-kunit rust_doctests_kernel "$w/log4" > "$w/r4"
rc=$?
if [ "$rc" != 0 ]; then echo "PASS a failing doctest exits non-zero"; else echo "FAIL a failing doctest exited 0"; fi
expect "a passing doctest is a result" "$w/r4" '^PASS kunit/rust_doctests_kernel: rust_doctest_kernel_sync_srcu_rs_0$'
expect "a failing doctest is a failed result" "$w/r4" '^FAIL kunit/rust_doctests_kernel: rust_doctest_kernel_sync_srcu_rs_1$'
expect "a failing doctest shows its assertion" "$w/r4" 'ASSERTION FAILED at rust/kernel/sync/srcu.rs'
expect "the doctests are counted" "$w/r4" '^guest: 1 passed, 1 failed'
sed -i '/^@@KTAP-/,/^@@KTAP-END/d' "$w/log4"
python3 "$(dirname "$0")/report.py" --expect-kunit rust_doctests_kernel "$w/log4" > "$w/r5"
expect "doctests that did not run are a problem" "$w/r5" '^PROBLEM KUnit suite rust_doctests_kernel did not report'

# make bench's goals: a missed goal is marked and fails the table, met
# goals pass it; its run goes between the design document's markers.
bt=$(dirname "$0")/benchtable.py
cat > "$w/b-met" <<'B'
RESULT lookup_16r_hit c 300 300 300 ns
RESULT lookup_16r_hit rust 90 90 90 ns
RESULT mem_1r_tiny c 520 520 520 B
RESULT mem_1r_tiny rust 776 776 776 B
RESULT setlat_16r_1vcpu_b2b c 100 50 200 us
# mean setlat_16r_1vcpu_b2b c 120.0 us (n=25)
# p99 setlat_16r_1vcpu_b2b c 200.0 us (n=25)
# waits setlat_16r_1vcpu_b2b c 25 of 25 sets
RESULT setlat_16r_1vcpu_b2b rust 10 5 20 us
# mean setlat_16r_1vcpu_b2b rust 11.0 us (n=25)
# p99 setlat_16r_1vcpu_b2b rust 20.0 us (n=25)
# waits setlat_16r_1vcpu_b2b rust 0 of 25 sets
# preempted setlat_16r_1vcpu_b2b rust 1 of 25 sets
# slowest setlat_16r_1vcpu_b2b rust: 20 us (preempted, 3 busy loops); 12 us (not preempted, 0 busy loops)
B
if python3 "$bt" "$w/b-met" > "$w/bt-met"; then echo "PASS bench goals all met: exit 0"; else echo "FAIL bench goals all met, but exit $?"; fi
expect "bench goals: a met goal says met" "$w/bt-met" '^lookup_16r_hit .*>=3x: met'
expect "bench goals: C + 256 bytes is within the memory goal" "$w/bt-met" '^mem_1r_tiny .*<=C\+256B: met'
expect "bench: the preempted sets are shown" "$w/bt-met" '^preempted setlat_16r_1vcpu_b2b: rust 1 of 25 sets$'
expect "bench: the slowest sets are shown" "$w/bt-met" '^slowest setlat_16r_1vcpu_b2b rust: 20 us \(preempted, 3 busy loops\); 12 us'
for miss in "s/^RESULT lookup_16r_hit rust 90/RESULT lookup_16r_hit rust 101/" \
	"s/^RESULT mem_1r_tiny rust 776/RESULT mem_1r_tiny rust 777/" \
	"s/^# waits setlat_16r_1vcpu_b2b rust 0 /# waits setlat_16r_1vcpu_b2b rust 1 /" \
	"s/^# mean setlat_16r_1vcpu_b2b rust 11.0/# mean setlat_16r_1vcpu_b2b rust 12.1/" \
	"s/^# p99 setlat_16r_1vcpu_b2b rust 20.0/# p99 setlat_16r_1vcpu_b2b rust 200.1/"; do
	sed "$miss" "$w/b-met" > "$w/b-miss"
	if python3 "$bt" "$w/b-miss" > "$w/bt-miss"; then
		echo "FAIL bench goals: '$miss' exits 0"
	else
		expect "bench goals: '$miss' is MISSED" "$w/bt-miss" 'MISSED'
	fi
done
printf 'A\n\n.. bench-begin\n\nold\n\n.. bench-end\nB\n' > "$w/doc.rst"
printf 'row 1\n\nrow 2\n' > "$w/bench.txt"
python3 "$(dirname "$0")/benchdoc.py" "$w/doc.rst" "$w/bench.txt"
if [ "$(cat "$w/doc.rst")" = "$(printf 'A\n\n.. bench-begin\n\n::\n\n   row 1\n\n   row 2\n\n.. bench-end\nB')" ]; then
	echo "PASS benchdoc writes the run between the markers"
else
	echo "FAIL benchdoc wrote:"; sed 's/^/    /' "$w/doc.rst"
fi
printf 'no markers\n' > "$w/doc2.rst"
if python3 "$(dirname "$0")/benchdoc.py" "$w/doc2.rst" "$w/bench.txt" 2> /dev/null; then
	echo "FAIL benchdoc accepts a document without markers"
else
	echo "PASS benchdoc refuses a document without markers"
fi

# The cold paths, in an empty cache (COLD_SELFTEST=0 skips them).
if [ "${COLD_SELFTEST:-1}" = 1 ]; then
	bash "$(dirname "$0")/selftest-cold.sh" "$kernel"
fi
