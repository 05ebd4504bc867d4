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
export PATH=/bin:/sbin:/usr/bin:/usr/sbin:/tests/bin:/tests:/samples HOME=/tmp TMPDIR=/tmp

# The test binaries by their names on PATH. A KVM selftest reads its guest
# code from its own ELF file through argv[0], so each name is a script that
# runs the binary by its full path, with the arguments tests.list gives it.
mkdir -p /tests/bin
while read -r name bin args; do
	case "$name" in ''|'#'*) continue ;; esac
	[ -f "/tests/$bin" ] && [ ! -e "/tests/bin/$name" ] || continue
	printf '#!/bin/sh\nexec /tests/%s %s "$@"\n' "$bin" "$args" > "/tests/bin/$name"
	chmod 755 "/tests/bin/$name"
done < /tests/tests.list

MODE=check
TEST_TIMEOUT=600
. /etc/kvm-msr/run.conf

echo "@@BOOT-OK $(uname -r) mode=$MODE"

# KVM built as modules (the module flavour): load it as the flavour's
# kernel command line would have configured it built in.
if [ -f /lib/modules/kvm/order ]; then
	while read -r m; do
		case "$m" in
		kvm.ko) insmod /lib/modules/kvm/kvm.ko force_emulation_prefix=1 ;;
		kvm-amd.ko|kvm-intel.ko)
			# Only the one for this CPU's vendor loads.
			insmod "/lib/modules/kvm/$m" 2>/dev/null || true ;;
		*) insmod "/lib/modules/kvm/$m" ;;
		esac || echo "@@NOTE cannot load $m"
	done < /lib/modules/kvm/order
	echo "@@NOTE KVM modules: $(lsmod | awk '$1 ~ /^kvm/ {printf "%s ", $1}')"
fi
[ -c /dev/kvm ] || echo "@@NOTE no /dev/kvm: KVM did not initialise"

# The implementations to run every test against: KVM's own C (kvm_msr_rs
# not loaded) and Rust (loaded). Each VM latches the implementation when it
# is created, so one boot tests both.
RS_KO=/lib/modules/kvm_msr_rs.ko
if [ -f "$RS_KO" ]; then
	IMPLS=${IMPLS:-"c rust"}
else
	IMPLS=default
fi

set_impl() {
	case "$1" in
	c) ! [ -d /sys/module/kvm_msr_rs ] || rmmod kvm_msr_rs ;;
	rust) [ -d /sys/module/kvm_msr_rs ] || insmod "$RS_KO" ;;
	esac
}

run_tests() {
	for impl in $IMPLS; do
		set_impl "$impl" || { echo "@@PROBLEM cannot select $impl"; continue; }
		while read -r name bin args; do
			case "$name" in ''|'#'*) continue ;; esac
			echo "@@TEST-BEGIN $impl/$name"
			read -r t0 _ < /proc/uptime
			(cd /tests && timeout "$TEST_TIMEOUT" "./$bin" $args)
			rc=$?
			read -r t1 _ < /proc/uptime
			# Whole seconds of guest uptime: when the test ended and
			# how long it took (a guest that times out names where).
			echo "@@TEST-END $impl/$name up=${t1%.*} secs=$((${t1%.*} - ${t0%.*})) rc=$rc"
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
	# The Rust implementation unless IMPL=c; a command of the user's can
	# switch with rmmod kvm_msr_rs / insmod /lib/modules/kvm_msr_rs.ko.
	if [ -f "$RS_KO" ]; then
		set_impl "${IMPL:-rust}" || echo "@@NOTE cannot select ${IMPL:-rust}"
		if [ -d /sys/module/kvm_msr_rs ]; then
			echo "@@NOTE MSR filter: rust (kvm_msr_rs loaded; rmmod kvm_msr_rs for C)"
		else
			echo "@@NOTE MSR filter: c (insmod $RS_KO for Rust)"
		fi
	else
		echo "@@NOTE MSR filter: c (this kernel has no Rust implementation)"
	fi
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
