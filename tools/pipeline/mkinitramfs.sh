#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# mkinitramfs.sh OUT.cpio.gz RUNCONF [TESTS_DIR] [EXTRA_DIR]
# Pack busybox-static, the guest /init, the run configuration, the test
# binaries (those TESTS_DIR/tests.list and bench.list name, the files
# TESTS_DIR/files.list names, and the files beside the lists; all of
# TESTS_DIR if it has no list) and extra files (into /samples).
#
# Environment: MODULE_KO, the kvm_msr_rs.ko to put at
# /lib/modules/kvm_msr_rs.ko; KBUILD_DIR, the kernel build directory: when
# its KVM is modular, kvm.ko and the vendor modules (and irqbypass.ko) go to
# /lib/modules/kvm/, with the order the guest's init loads them in.
# TESTS_DIR/host-tools.list names programs of this machine the tests run
# in the guest; the one supported is qemu-system-x86_64 (for
# msr_filter_qemu_test.sh): it is packed at /usr/bin/qemu-system-x86_64
# with the shared libraries ldd finds for it, its loader, and the firmware
# its -kernel boot reads (SeaBIOS, the Multiboot option ROM, kvmvapic).
# QEMU_CLIENT: the QEMU binary to pack (default: the one on PATH).
set -euo pipefail
LOG_TAG=initramfs
. "$(dirname "$0")/lib.sh"

out=$1 conf=$2 tests=${3:-} extra=${4:-}
need busybox:busybox-static cpio:cpio gzip:gzip file:file
bb=$(command -v busybox)
file -L "$bb" | grep -q 'statically linked' || die "$bb is not static (install busybox-static)"
mkdir_or_die "$(dirname "$out")"
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root"/{bin,dev,etc/kvm-msr,proc,sys,tmp,tests,samples}
cp "$bb" "$root/bin/busybox"
install -m 755 "$TOP/tools/pipeline/guest-init.sh" "$root/init"
cp "$conf" "$root/etc/kvm-msr/run.conf"
if [ -n "$tests" ] && { [ -f "$tests/tests.list" ] || [ -f "$tests/bench.list" ]; }; then
	# Only what the guest runs: the binaries the lists name and the files
	# beside the lists (scripts, expected outputs); not the rest of a
	# selftest build directory (its copy of the kernel's tools/, objects,
	# headers) nor an initramfs packed there earlier.
	(cd "$tests" && {
		find . -maxdepth 1 -type f ! -name '*.cpio.gz'
		{ cat tests.list bench.list 2>/dev/null || true; } | awk '$1 !~ /^#/ && NF >= 2 { print "./" $2 }'
		{ cat files.list 2>/dev/null || true; } | awk '$1 !~ /^#/ && NF >= 1 { print "./" $1 }'
	} | sort -u | cpio -pdm --quiet "$root/tests") || die "copying the tests from $tests failed"
elif [ -n "$tests" ]; then
	cp -a "$tests"/. "$root/tests/"
fi
touch "$root/tests/tests.list"
if [ -n "$extra" ] && [ -d "$extra" ]; then
	cp -a "$extra"/. "$root/samples/"
fi
mkdir -p "$root/lib/modules"
if [ -n "${MODULE_KO:-}" ]; then
	install -m 644 "$MODULE_KO" "$root/lib/modules/kvm_msr_rs.ko"
fi
if [ -n "${KBUILD_DIR:-}" ] && grep -q '^CONFIG_KVM=m' "$KBUILD_DIR/.config"; then
	mkdir -p "$root/lib/modules/kvm"
	for m in virt/lib/irqbypass.ko arch/x86/kvm/kvm.ko arch/x86/kvm/kvm-amd.ko \
		 arch/x86/kvm/kvm-intel.ko; do
		[ -f "$KBUILD_DIR/$m" ] || continue
		install -m 644 "$KBUILD_DIR/$m" "$root/lib/modules/kvm/"
		basename "$m" >> "$root/lib/modules/kvm/order"
	done
	grep -q '^kvm.ko$' "$root/lib/modules/kvm/order" ||
		die "CONFIG_KVM=m but no kvm.ko in $KBUILD_DIR (was 'make modules' run?)"
fi
host_tools=
[ -z "$tests" ] || [ ! -f "$tests/host-tools.list" ] ||
	host_tools=$(grep -v '^#' "$tests/host-tools.list" || true)
for t in $host_tools; do
	[ "$t" = qemu-system-x86_64 ] || die "$tests/host-tools.list: cannot pack $t"
done
if [ -n "$host_tools" ]; then
	need qemu-system-x86_64:qemu-system-x86 ldd:libc-bin
	QEMU_CLIENT=${QEMU_CLIENT:-$(command -v qemu-system-x86_64)}
	[ -x "$QEMU_CLIENT" ] || die "QEMU_CLIENT=$QEMU_CLIENT is not an executable"
	qshare=$(dirname "$(readlink -f "$QEMU_CLIENT")")/../share/qemu
	mkdir -p "$root/usr/bin" "$root/usr/share/qemu"
	install -m 755 "$QEMU_CLIENT" "$root/usr/bin/qemu-system-x86_64"
	# "lib.so => /path (addr)" and the loader's "/path (addr)".
	ldd "$QEMU_CLIENT" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' |
		while read -r lib; do
			cp -L --parents "$lib" "$root/" || exit 1
		done || die "copying the libraries of $QEMU_CLIENT failed"
	# Debian's QEMU looks for firmware in share/qemu and share/seabios;
	# the packed copy has it all in share/qemu.
	for f in bios-256k.bin multiboot_dma.bin kvmvapic.bin; do
		for d in "$qshare" "$qshare/../seabios" ""; do
			[ -n "$d" ] || die "$QEMU_CLIENT needs $f, not in $qshare or $qshare/../seabios (packages qemu-system-data, seabios)"
			[ -f "$d/$f" ] || continue
			cp -L "$d/$f" "$root/usr/share/qemu/"
			break
		done
	done
fi
(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$out"
