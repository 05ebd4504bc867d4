#!/bin/sh
# SPDX-License-Identifier: GPL-2.0-only
#
# Build the kvm-msr-rs MSR filter selftests (plus upstream's
# x86/userspace_msr_exit_test and x86/msrs_test) as static binaries against
# a Linux 7.3 tree.
#
# Usage: build.sh KDIR OUTDIR
#
#   KDIR    a (possibly patched, possibly built in-tree) Linux 7.3 source tree.
#           It is only read: nothing is written below KDIR.
#   OUTDIR  where everything is built.  On success it contains:
#             OUTDIR/tests.list  one line per test, in run order:
#                                "<name> <binary path relative to OUTDIR> [args...]"
#             OUTDIR/bench.list  the same for benchmarks (not tests; run
#                                by tools/pipeline/bench.sh)
#             OUTDIR/files.list  other files the tests read (the QEMU
#                                client's guest), relative to OUTDIR
#             OUTDIR/host-tools.list  programs of the build machine the
#                                tests run in the guest (qemu-system-x86_64,
#                                packed by tools/pipeline/mkinitramfs.sh)
#             OUTDIR/kvm/x86/*   the binaries (all static, no libc needed;
#                                msr_filter_qemu_test.sh is a script that
#                                needs qemu-system-x86_64 in the guest)
#
# Environment:
#   JOBS          make parallelism (default 2, never more than 2 is advised)
#   STRESS_ITERS  if set, passed to msr_filter_stress_test in tests.list
#   CC            compiler (default gcc; must support -m32 for the compat and
#                 faults tests)
#
# The selftest library does not build for i386, so the compat test is a
# standalone program built twice: -m32 (issues the compat ioctl 0x4104AEC6)
# and native (issues 0x4188AEC6), from the same source.  So is the fault
# injection test (msr_filter_faults_test_32 and _64).

set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 KDIR OUTDIR" >&2
	exit 2
fi

KDIR=$(cd "$1" && pwd)
mkdir -p "$2"
OUT=$(cd "$2" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)
JOBS=${JOBS:-2}
CC=${CC:-gcc}

# Upstream's tests, built unchanged; they run first.
UPSTREAM_TESTS="userspace_msr_exit_test msrs_test"
# Our tests, in run order.
OUR_TESTS="msr_filter_abi_test msr_filter_one_reg_test msr_filter_exit_test msr_filter_nested_test
msr_filter_vmx_test msr_filter_stress_test msr_filter_obs_test msr_filter_module_test"
# Benchmarks: built like the tests, listed in bench.list, not tests.list.
OUR_BENCHES="msr_filter_bench"

SRC=$OUT/src
HDR=$SRC/usr

log() { echo "build.sh: $*" >&2; }

# ---------------------------------------------------------------------------
# 1. A private copy of the parts of the tree the selftests need.
# ---------------------------------------------------------------------------
log "copying tools/ from $KDIR"
rm -rf "$SRC"
mkdir -p "$SRC/scripts"
cp -a "$KDIR/tools" "$SRC/tools"
cp -a "$KDIR/scripts/subarch.include" "$SRC/scripts/"
# Drop stale build products a built tree might carry.
find "$SRC/tools/testing/selftests/kvm" \( -name '*.o' -o -name '*.d' \) \
	-delete 2>/dev/null || true
# Our sources go into the copy; KDIR's own copies (if any) are replaced.
# OUTDIR's objects outlive the copy, and make compares only mtimes: a source
# copied with an older mtime than the object of a different version (another
# checkout, a reverted edit) would not be rebuilt.  So every source whose
# content is not the one of the last successful build gets a fresh mtime.
# (No record, no trust: all of them do.)
X86=$SRC/tools/testing/selftests/kvm/x86
SUMS=$OUT/our-sources.sha256
cp -a "$HERE"/x86/*.c "$HERE"/x86/*.h "$HERE"/x86/*.S "$HERE"/x86/*.sh "$X86/"
(cd "$HERE/x86" && sha256sum -- *.c *.h *.S *.sh) > "$SUMS.new"
[ -f "$SUMS" ] || : > "$SUMS"
grep -vxF -f "$SUMS" "$SUMS.new" | while read -r _ f; do
	touch "$X86/$f"
done

# ---------------------------------------------------------------------------
# 2. UAPI headers of KDIR, installed into SRC/usr/include.
#    Preferred: the kernel's own "make headers" with O= (needs a clean
#    source tree).  Fallback for an in-tree-built KDIR: run the tree's
#    scripts/headers_install.sh on every uapi header ourselves.
# ---------------------------------------------------------------------------
install_headers_fallback() {
	tool=$OUT/hdrtool
	rm -rf "$tool" "$HDR"
	mkdir -p "$tool/scripts" "$HDR/include"
	$CC -O2 -o "$tool/scripts/unifdef" "$KDIR/scripts/unifdef.c"
	for uapi in include/uapi arch/x86/include/uapi; do
		(
			cd "$KDIR/$uapi"
			find . -name '*.h'
		) | while read -r f; do
			mkdir -p "$HDR/include/$(dirname "$f")"
			(cd "$tool" && sh "$KDIR/scripts/headers_install.sh" \
				"$KDIR/$uapi/$f" "$HDR/include/$f")
		done
	done
	# asm-generic wrappers for the mandatory asm headers x86 lacks.
	for h in $(sed -n 's/^mandatory-y += //p' \
			"$KDIR/include/uapi/asm-generic/Kbuild"); do
		[ -e "$HDR/include/asm/$h" ] && continue
		[ -e "$HDR/include/asm-generic/$h" ] || continue
		echo "#include <asm-generic/$h>" > "$HDR/include/asm/$h"
	done
	# Generated syscall tables: take them from the build host if KDIR has
	# no generated copy (only the numbers of long-existing syscalls matter).
	for h in unistd_32.h unistd_64.h unistd_x32.h; do
		[ -e "$HDR/include/asm/$h" ] && continue
		g=$KDIR/arch/x86/include/generated/uapi/asm/$h
		if [ -e "$g" ]; then
			cp "$g" "$HDR/include/asm/$h"
		else
			for d in /usr/include/x86_64-linux-gnu/asm /usr/include/asm; do
				if [ -e "$d/$h" ]; then
					cp "$d/$h" "$HDR/include/asm/$h"
					break
				fi
			done
		fi
	done
}

log "installing UAPI headers"
# ("headers" rather than "headers_install": the latter needs rsync.)
if make -s -C "$KDIR" O="$OUT/hdr-obj" -j"$JOBS" headers \
	>"$OUT/headers_install.log" 2>&1; then
	rm -rf "$HDR"
	mkdir -p "$HDR"
	cp -a "$OUT/hdr-obj/usr/include" "$HDR/include"
	find "$HDR/include" -name '.*' -type f -delete
else
	log "headers_install with O= failed (see headers_install.log), using fallback"
	install_headers_fallback
fi
test -e "$HDR/include/linux/kvm.h"

# ---------------------------------------------------------------------------
# 3. The KVM selftests, static, via the tree's own Makefile.kvm.  libvfio
#    (linked into every KVM selftest since 7.x, needs -luuid and PCI
#    headers) is not needed by these tests and is left out.
# ---------------------------------------------------------------------------
# msrs_test_svm: upstream's msrs_test without the entries whose guest-side
# checks test the CPU rather than KVM on SVM, which passes these MSRs
# through to the guest: SYSENTER_ESP/EIP (AMD truncates them to 32 bits,
# QEMU TCG's SVM does not) and the non-canonical writes to FS_BASE, GS_BASE,
# KERNEL_GS_BASE, LSTAR and CSTAR (TCG does not #GP on them).  See
# msrs_test.sh.  Generated from the tree's own source.
SVM_PASSTHROUGH='IA32_SYSENTER_E[SI]P|FS_BASE|GS_BASE|KERNEL_GS_BASE|LSTAR|CSTAR'
sed -E "/^[[:space:]]*MSR_TEST(_CANONICAL)?\(MSR_($SVM_PASSTHROUGH),/d" \
	"$X86/msrs_test.c" > "$X86/msrs_test_svm.c"
[ "$(($(wc -l < "$X86/msrs_test.c") - $(wc -l < "$X86/msrs_test_svm.c")))" = 7 ] || {
	log "ERROR: msrs_test.c does not have the 7 entries msrs_test_svm leaves out"
	exit 1
}
PROGS=x86/msrs_test_svm
for t in $UPSTREAM_TESTS $OUR_TESTS $OUR_BENCHES; do
	PROGS="$PROGS x86/$t"
done

log "building KVM selftests: $PROGS"
make -C "$SRC/tools/testing/selftests/kvm" -j"$JOBS" \
	OUTPUT="$OUT/kvm" \
	TEST_GEN_PROGS_x86="$PROGS" \
	TEST_GEN_PROGS_EXTENDED_x86= \
	TEST_PROGS_x86= \
	LIBVFIO_O= \
	LDLIBS=-ldl \
	EXTRA_CFLAGS="-static" \
	KHDR_INCLUDES="-isystem $HDR/include" \
	all

# ---------------------------------------------------------------------------
# 4. The standalone tests (compat, faults), 32-bit and 64-bit.
# ---------------------------------------------------------------------------
CFL="-O2 -g -Wall -std=gnu99 -static -fno-stack-protector -D_GNU_SOURCE
-isystem $HDR/include -I$SRC/tools/testing/selftests"
for t in msr_filter_compat_test msr_filter_faults_test; do
	log "building $t (-m32 and native)"
	for m in 32 64; do
		# shellcheck disable=SC2086
		$CC -m$m $CFL -o "$OUT/kvm/x86/${t}_$m" "$X86/$t.c"
	done
done

# ---------------------------------------------------------------------------
# 4b. The QEMU client test: a script and its Multiboot guest (32-bit ELF,
#     loaded at 1 MiB).
# ---------------------------------------------------------------------------
log "building msr_filter_qemu_guest.elf"
$CC -m32 -c -o "$OUT/kvm/x86/msr_filter_qemu_guest.o" "$X86/msr_filter_qemu_guest.S"
ld -m elf_i386 -Ttext=0x100000 -e _start --build-id=none \
	-o "$OUT/kvm/x86/msr_filter_qemu_guest.elf" "$OUT/kvm/x86/msr_filter_qemu_guest.o"
install -m 755 "$X86/msr_filter_qemu_test.sh" "$OUT/kvm/x86/"
install -m 755 "$X86/msrs_test.sh" "$OUT/kvm/x86/"
printf '%s\n' kvm/x86/msr_filter_qemu_guest.elf kvm/x86/msrs_test > "$OUT/files.list"
echo qemu-system-x86_64 > "$OUT/host-tools.list"

# ---------------------------------------------------------------------------
# 5. Sanity: everything static; tests.list.
# ---------------------------------------------------------------------------
LIST=$OUT/tests.list
: > "$LIST.tmp"
add() {
	name=$1
	bin=$2
	shift 2
	if ! file "$OUT/$bin" | grep -q 'statically linked'; then
		log "ERROR: $bin is not statically linked"
		file "$OUT/$bin" >&2
		exit 1
	fi
	echo "$name $bin${*:+ $*}" >> "$LIST.tmp"
}
# A test that is a script run by the guest's busybox sh, not a binary.
add_script() {
	if [ ! -x "$OUT/$2" ]; then
		log "ERROR: $2 is not an executable script"
		exit 1
	fi
	echo "$1 $2" >> "$LIST.tmp"
}

add userspace_msr_exit_test kvm/x86/userspace_msr_exit_test
# msrs_test.sh runs upstream's msrs_test (a binary of files.list).
add_script msrs_test kvm/x86/msrs_test.sh
add msrs_test_svm kvm/x86/msrs_test_svm
add msr_filter_abi_test kvm/x86/msr_filter_abi_test
add msr_filter_one_reg_test kvm/x86/msr_filter_one_reg_test
add msr_filter_compat_test_32 kvm/x86/msr_filter_compat_test_32
add msr_filter_compat_test_64 kvm/x86/msr_filter_compat_test_64
add msr_filter_exit_test kvm/x86/msr_filter_exit_test
add msr_filter_nested_test kvm/x86/msr_filter_nested_test
add msr_filter_vmx_test kvm/x86/msr_filter_vmx_test
if [ -n "${STRESS_ITERS:-}" ]; then
	add msr_filter_stress_test kvm/x86/msr_filter_stress_test \
		-i "$STRESS_ITERS"
else
	add msr_filter_stress_test kvm/x86/msr_filter_stress_test
fi
add msr_filter_obs_test kvm/x86/msr_filter_obs_test
# The faults test's slow operations (hundreds of fault points each, under
# KASAN) are tests of their own, each within the guest's per-test timeout.
add msr_filter_faults_test_32 kvm/x86/msr_filter_faults_test_32
add msr_filter_faults_test_64 kvm/x86/msr_filter_faults_test_64 \
	set_1_range set_4_ranges set_16_ranges set_clear enable_cap \
	exit_and_completion teardown_exit_pending
add msr_filter_faults_create_before kvm/x86/msr_filter_faults_test_64 \
	create_filter_before_vcpu
add msr_filter_faults_create_after kvm/x86/msr_filter_faults_test_64 \
	create_filter_after_vcpu
add msr_filter_faults_module kvm/x86/msr_filter_faults_test_64 \
	module_unload_load
add msr_filter_module_test kvm/x86/msr_filter_module_test
add_script msr_filter_qemu_test kvm/x86/msr_filter_qemu_test.sh
mv "$LIST.tmp" "$LIST"
log "done; $(wc -l < "$LIST") tests listed in $LIST"
LIST=$OUT/bench.list
: > "$LIST.tmp"
for b in $OUR_BENCHES; do
	add "$b" "kvm/x86/$b"
done
mv "$LIST.tmp" "$LIST"
log "$(wc -l < "$LIST") benchmark(s) listed in $LIST"
mv "$SUMS.new" "$SUMS"
