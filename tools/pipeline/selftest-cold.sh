#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# selftest-cold.sh BZIMAGE: the pipeline's cold paths, run for real in an
# empty cache (KVM_MSR_CACHE in a temporary directory), as on a fresh
# machine; part of selftest-pipeline.sh.  Prints PASS/FAIL/SKIP lines.
#
#  - every stage that takes minutes at most, from nothing: fetch and unpack
#    the kernel source and record it in git (from the cache's already
#    downloaded .deb through KSRC_DEB, sha256-checked as always), prepare
#    the patched tree, build the KVM selftests, pack an initramfs, boot
#    BZIMAGE (the one stage reused from the warm cache: the long kernel
#    compile) with a trivial test and a cold-built selftest, report;
#  - what must fail, and say why: a cache where src/ cannot be created, a
#    package with the wrong sha256, PATH without cpio or busybox, no
#    bindgen;
#  - the kernel Rust checks on broken copies: make rustfmtcheck on the cold
#    tree with a misformatted file, and make CLIPPY=1 of a probe object with
#    a clippy finding against the lint build directory (lint-rust.sh), each
#    with a clean control.
#
# Takes about 3 minutes on 2 cores.  KEEP=1 keeps the temporary directory.
set -uo pipefail
LOG_TAG=cold
. "$(dirname "$0")/lib.sh"

kernel=$1
WARM_CACHE=$CACHE
WARM_DEB=$WARM_CACHE/dl/linux-source-7.3_${KSRC_DEB_VERSION/:/%3a}_all.deb
export TOOLS_DIR
C=$(mktemp -d "${TMPDIR:-/tmp}/kvm-msr-cold.XXXXXX") || die "cannot create a temporary directory"
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$C"' EXIT
P=$TOP/tools/pipeline

pass() { echo "PASS cold: $*"; }
fail() { echo "FAIL cold: $*"; }
since() { echo "$(( $(date +%s) - $1 ))s"; }
# expect_fail NAME ERRFILE PATTERN STATUS: a step that must fail readably.
expect_fail() {
	if [ "$4" != 0 ] && grep -qE -- "$3" "$2"; then
		pass "$1 ($(grep -m1 -E -- "$3" "$2" | sed 's/^\[[a-z-]*\] //'))"
	else
		fail "$1 (status $4, no line matching '$3':)"
		sed 's/^/    /' "$2" | tail -10
	fi
}

if [ -f "$WARM_DEB" ]; then
	export KSRC_DEB=$WARM_DEB
else
	log "no downloaded package in $WARM_CACHE/dl: the cold fetch downloads it"
fi

# --- 1. Every stage from an empty cache ------------------------------------
export KVM_MSR_CACHE=$C/cache
CACHE=$KVM_MSR_CACHE
t=$(date +%s)
src=$("$P/fetch-kernel.sh" 2> "$C/fetch.err")
rc=$?
if [ "$rc" = 0 ] && [ "$src" = "$CACHE/src/linux-$KVER" ] &&
   git -C "$src" rev-parse -q --verify refs/tags/pristine >/dev/null; then
	pass "fetch, unpack and record the source in an empty cache ($(since "$t"))"
else
	fail "fetch into an empty cache (status $rc):"
	tail -10 "$C/fetch.err" | sed 's/^/    /'
	echo "SKIP cold: the remaining cold stages (no source tree)"
	exit 0
fi

t=$(date +%s)
out=$("$P/prepare-tree.sh" 2> "$C/prepare.err")
rc=$?
if [ "$rc" = 0 ] && [ "$out" = "$src" ] && [ -f "$src/arch/x86/include/asm/kvm_msr_filter_ops.h" ] &&
   [ -f "$src/Documentation/virt/kvm/x86/userspace-msr.rst" ]; then
	pass "prepare the patched tree ($(since "$t"))"
else
	fail "prepare the patched tree (status $rc):"
	tail -10 "$C/prepare.err" | sed 's/^/    /'
fi

t=$(date +%s)
T=$CACHE/selftests/cold
if bash "$TOP/tools/testing/selftests/kvm/build.sh" "$src" "$T" > "$C/selftests.log" 2>&1 &&
   [ -x "$T/kvm/x86/userspace_msr_exit_test" ]; then
	pass "build the KVM selftests from the cold tree ($(since "$t"))"
else
	fail "build the KVM selftests from the cold tree:"
	tail -10 "$C/selftests.log" | sed 's/^/    /'
fi

# A trivial test and one cold-built selftest, in a boot of the warm kernel.
RESULTS=$CACHE/results
. "$P/guest.sh"
g=$C/guest
mkdir -p "$g/kvm/x86"
printf '#!/bin/sh\nprintf "TAP version 13\\n1..1\\nok 1 trivially passing\\n"\n' > "$g/pass.sh"
chmod +x "$g/pass.sh"
echo "pass pass.sh" > "$g/tests.list"
if [ -x "$T/kvm/x86/userspace_msr_exit_test" ]; then
	cp "$T/kvm/x86/userspace_msr_exit_test" "$g/kvm/x86/"
	echo "userspace_msr_exit_test kvm/x86/userspace_msr_exit_test" >> "$g/tests.list"
fi
printf 'MODE=check\nTEST_TIMEOUT=300\nIMPLS=default\n' > "$C/run.conf"
t=$(date +%s)
if pack_guest "$CACHE/cold-initramfs.cpio.gz" "$C/run.conf" "$g" 2> "$C/pack.err"; then
	pass "pack the initramfs ($(since "$t"))"
else
	fail "pack the initramfs:"
	sed 's/^/    /' "$C/pack.err"
fi
t=$(date +%s)
QUIET=1 BOOT_TIMEOUT=600 boot_and_report "$kernel" "$CACHE/cold-initramfs.cpio.gz" cold 2> "$C/boot.err"
rc=$?
n=$(grep -c '^PASS' "$RESULTS/report-cold.txt")
if [ "$rc" = 0 ] && [ "$n" -ge "$(wc -l < "$g/tests.list")" ]; then
	pass "boot the warm kernel with cold-built tests and report ($n passed, $(since "$t"))"
else
	fail "boot and report (report.py status $rc):"
	sed 's/^/    /' "$RESULTS/report-cold.txt" | head -30
fi
for d in src selftests results; do
	[ -d "$CACHE/$d" ] || fail "the cold run did not create $CACHE/$d"
done

# --- 2. What must fail, and say why ----------------------------------------
# The unpack directory cannot be created: a regular file where src/ goes.
mkdir -p "$C/bad-src"
: > "$C/bad-src/src"
KVM_MSR_CACHE=$C/bad-src "$P/fetch-kernel.sh" > /dev/null 2> "$C/bad-src.err"
expect_fail "a cache where src/ cannot be created fails" "$C/bad-src.err" \
	'error: cannot create directory .*/bad-src/src' $?
# A package that is not the pinned one.
head -c 4096 /dev/urandom > "$C/bogus.deb"
KVM_MSR_CACHE=$C/bad-deb KSRC_DEB=$C/bogus.deb "$P/fetch-kernel.sh" > /dev/null 2> "$C/bad-deb.err"
expect_fail "a package with the wrong sha256 fails" "$C/bad-deb.err" 'error: sha256 mismatch' $?
# PATH without cpio, then without busybox.
for tool in cpio busybox; do
	fb=$C/path-without-$tool
	mkdir -p "$fb"
	for f in /usr/bin/* /usr/sbin/*; do
		[ "${f##*/}" = "$tool" ] || ln -sf "$f" "$fb/${f##*/}" 2>/dev/null
	done
	PATH=$fb "$P/mkinitramfs.sh" "$C/x.gz" "$C/run.conf" "$g" > /dev/null 2> "$C/no-$tool.err"
	expect_fail "PATH without $tool fails" "$C/no-$tool.err" "error: missing tool: $tool " $?
done
# No bindgen (an empty TOOLS_DIR): the kernel build stops before make.
TOOLS_DIR=$C/no-tools "$P/build-kernel.sh" default > /dev/null 2> "$C/no-bindgen.err"
expect_fail "no bindgen fails" "$C/no-bindgen.err" 'error: missing tool: .*/bindgen' $?

# --- 3. The kernel Rust checks on broken copies ----------------------------
. "$P/lint-rust.sh"
LINT_LOG=$C/lint.log
# rustfmt: the cold tree passes, then not with a misformatted function
# appended to a copy of one of the project's files.
f=rust/kernel/sync/srcu.rs
if rust_fmt_check "$src" "$C/fmt-build" > "$C/fmt0.out"; then
	pass "make rustfmtcheck passes on the cold tree"
else
	fail "make rustfmtcheck fails on the unchanged cold tree:"
	sed 's/^/    /' "$C/fmt0.out"
fi
printf '\nfn  lint_probe( )->u32{ 1 }\n' >> "$src/$f"
rust_fmt_check "$src" "$C/fmt-build" > "$C/fmt1.out"
expect_fail "make rustfmtcheck fails on a misformatted $f" "$C/fmt1.out" "misformatted: .*$f" $?

# The module's files, checked by rustfmt directly (kbuild's rustfmtcheck
# does not cover an external module): a clean copy passes, a misformatted
# one fails.
mkdir -p "$C/modfmt"
tar -C "$TOP" --exclude=target --exclude=fuzz -cf - rust | tar -C "$C/modfmt" -xf -
if module_fmt_check "$C/modfmt" "$src" > "$C/modfmt0.out"; then
	pass "rustfmt --check passes on the module's files"
else
	fail "rustfmt --check fails on an unchanged copy of the module's files:"
	sed 's/^/    /' "$C/modfmt0.out"
fi
printf '\nfn  lint_probe( )->u32{ 1 }\n' >> "$C/modfmt/rust/vm.rs"
module_fmt_check "$C/modfmt" "$src" > "$C/modfmt1.out"
expect_fail "rustfmt --check fails on a misformatted rust/vm.rs" "$C/modfmt1.out" "misformatted: .*rust/vm[.]rs" $?

# clippy: a probe object built with the lint build directory's kernel crate
# (as an external module object), clean, then with a clippy finding.
LB=$WARM_CACHE/build/$KVER-default-clippy
if [ ! -f "$LB/rust/libkernel.rmeta" ]; then
	echo "SKIP cold: clippy on a broken copy (no lint build directory $LB: run tools/pipeline/lint-rust.sh)"
	exit 0
fi
WSRC=$(cat "$WARM_CACHE/build/$KVER-default/.kvm-msr-src" 2>/dev/null)
pr=$C/clippy-probe
mkdir -p "$pr"
echo 'obj-m := lint_probe.o' > "$pr/Kbuild"
probe() {
	cat > "$pr/lint_probe.rs" <<EOF
// SPDX-License-Identifier: GPL-2.0

//! The pipeline's self-test: a Rust object for clippy.

/// Whether \`v\` is empty.
pub fn lint_probe_empty(v: &[u8]) -> bool {
    $1
}
EOF
	rm -f "$pr/lint_probe.o"
	rust_clippy "$WSRC" "$LB" 'lint_probe[.]rs' M="$pr" lint_probe.o > "$C/clippy.out"
}
probe 'v.is_empty()'
rc=$?
if [ "$rc" = 0 ] && [ -f "$pr/lint_probe.o" ]; then
	pass "make CLIPPY=1 passes on a clean probe"
else
	fail "make CLIPPY=1 on a clean probe (status $rc):"
	sed 's/^/    /' "$C/clippy.out"; tail -5 "$LINT_LOG" | sed 's/^/    /'
fi
probe 'v.len() == 0'
expect_fail "make CLIPPY=1 fails on a clippy finding" "$C/clippy.out" 'finding: .*lint_probe[.]rs.*len_zero|finding: .*lint_probe[.]rs.*length comparison' $?
