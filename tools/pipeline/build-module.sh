#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-module.sh BUILD_DIR: build kvm_msr_rs.ko (the repository's top-level
# Kbuild, rust/) against the kernel build directory BUILD_DIR and print the
# module's path.  Output goes to $CACHE/module/<build dir name> (kbuild's
# MO=), so the repository stays clean.  Takes a few seconds; nothing is
# rebuilt when no Rust file changed.  Prints nothing (and succeeds) for a
# kernel without Rust or without the module hook: there is nothing to
# load there.
set -euo pipefail
LOG_TAG=module
. "$(dirname "$0")/lib.sh"

B=$(cd "$1" && pwd)
grep -q '^CONFIG_KVM_MSR_FILTER_OPS=y' "$B/.config" || exit 0
[ -f "$B/Module.symvers" ] || die "$B has no Module.symvers: build the kernel with 'make modules' first"
MO=$CACHE/module/$(basename "$B")
mkdir -p "$MO"
log "building kvm_msr_rs.ko against $B"
start=$(date +%s)
if ! make -C "$B" "${KMAKE_VARS[@]}" M="$TOP" MO="$MO" -j"$JOBS" modules > "$MO/build.log" 2>&1; then
	grep -E -B2 -A12 'error|warning' "$MO/build.log" | head -80 >&2
	die "module build failed (full log: $MO/build.log)"
fi
if grep -q 'warning:' "$MO/build.log"; then
	grep -A8 'warning:' "$MO/build.log" | head -60 >&2
	die "the module build has warnings (full log: $MO/build.log)"
fi
[ -f "$MO/rust/kvm_msr_rs.ko" ] || die "no kvm_msr_rs.ko in $MO/rust"
# No panic on any path: the module must not reference Rust's panic entry
# points (an unchecked index, an overflow check, an unwrap...).
if nm -u "$MO/rust/kvm_msr_rs.ko" | grep -q 'panicking'; then
	nm -u "$MO/rust/kvm_msr_rs.ko" | grep 'panicking' >&2
	die "kvm_msr_rs.ko has a panic path (see the symbols above)"
fi
log "built in $(( $(date +%s) - start ))s: $MO/rust/kvm_msr_rs.ko"
echo "$MO/rust/kvm_msr_rs.ko"
