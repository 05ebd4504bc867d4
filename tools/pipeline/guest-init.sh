#!/bin/busybox sh
# SPDX-License-Identifier: GPL-2.0
#
# /init of the test initramfs.  Reads /etc/kvm-msr/run.conf (MODE=check,
# run or cmd) and reports through "@@" marker lines on the console, which
# tools/pipeline/report.py reads.  Always powers off at the end.

/bin/busybox mkdir -p /proc /sys /dev /tmp /host /usr/bin /usr/sbin /sbin
/bin/busybox --install -s
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tmpfs tmpfs /tmp
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/tests:/samples HOME=/tmp TMPDIR=/tmp

MODE=check
TEST_TIMEOUT=600
. /etc/kvm-msr/run.conf

echo "@@BOOT-OK $(uname -r) mode=$MODE"
[ -c /dev/kvm ] || echo "@@NOTE no /dev/kvm: KVM did not initialise"

# The implementations to run every test against: the kvm.msr_filter_rust
# parameter exists when the Rust implementation is built in; it is latched
# per VM at creation, so one boot tests both.
impl_param=/sys/module/kvm/parameters/msr_filter_rust
if [ -w "$impl_param" ]; then
	IMPLS=${IMPLS:-"c rust"}
else
	IMPLS=default
fi

set_impl() {
	case "$1" in
	c) echo N > "$impl_param" ;;
	rust) echo Y > "$impl_param" ;;
	esac
}

run_tests() {
	for impl in $IMPLS; do
		set_impl "$impl" || { echo "@@NOTE cannot select $impl"; continue; }
		while read -r name bin args; do
			case "$name" in ''|'#'*) continue ;; esac
			echo "@@TEST-BEGIN $impl/$name"
			(cd /tests && timeout "$TEST_TIMEOUT" "./$bin" $args)
			rc=$?
			echo "@@TEST-END $impl/$name rc=$rc"
		done < /tests/tests.list
	done
}

# KUnit suites that ran at boot (the Rust doctests): their KTAP, from
# debugfs (none when booted with kunit.enable=0).
report_kunit() {
	for r in /sys/kernel/debug/kunit/*/results; do
		[ -r "$r" ] || continue
		echo "@@KTAP-BEGIN ${r%/results}"
		cat "$r"
		echo "@@KTAP-END"
	done
}

case "$MODE" in
check)
	report_kunit
	run_tests
	;;
run|cmd)
	if mount -t 9p -o trans=virtio,version=9p2000.L host /host 2>/dev/null; then
		cd /host
	else
		cd /tmp
	fi
	echo "@@CMD-BEGIN"
	sh -c "$CMD"
	echo "@@CMD-END rc=$?"
	cd /
	;;
esac

if [ -w /sys/kernel/debug/kmemleak ]; then
	echo scan > /sys/kernel/debug/kmemleak
	sleep 6
	echo scan > /sys/kernel/debug/kmemleak
	echo "@@KMEMLEAK-BEGIN"
	cat /sys/kernel/debug/kmemleak
	echo "@@KMEMLEAK-END"
fi
echo "@@DMESG-BEGIN"
dmesg
echo "@@DMESG-END"
echo "@@DONE"
sync
# No ACPI in the test kernel: reboot, which QEMU (-no-reboot) turns into an exit.
reboot -f
