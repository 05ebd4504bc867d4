#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# export-series.sh OUTDIR: write the whole kernel change as one
# `git format-patch` series that applies with `git am` to v7.3 (Debian's
# 7.3.4 tree, tag "pristine") and builds at every patch.
#
# patches/*.patch are the changes to upstream files; the files this
# repository keeps at their kernel path are folded into the series: the
# core crate (rust/msr_filter/src) as a patch of its own before the first
# patch touching arch/x86/kvm, and the new files under Documentation/ into
# the first patch touching Documentation/.
set -euo pipefail
LOG_TAG=series
. "$(dirname "$0")/lib.sh"

out=$(mkdir -p "$1" && cd "$1" && pwd)
src=$("$(dirname "$0")/fetch-kernel.sh")
w=$(mktemp -d)
trap 'git -C "$src" worktree remove --force "$w/t" >/dev/null 2>&1; rm -rf "$w"' EXIT
git -C "$src" worktree add -q --detach "$w/t" pristine
cd "$w/t"
git config user.name "kvm-msr-rs developers"
git config user.email "kvm-msr-rs@localhost"

core_done=0
folded=
add_core() {
	mkdir -p rust/msr_filter
	cp -a "$TOP/rust/msr_filter/src" rust/msr_filter/
	git add -f rust/msr_filter/src
	git commit -q -m "rust: add msr_filter, the no_std core of KVM's userspace MSR filter

The logic of KVM x86 userspace MSR filtering that needs no kernel
services: parsing struct kvm_msr_filter (native and compat layouts),
validation in upstream's order with upstream's errnos, the compiled
filter whose lookup is a branchless binary search over the intervals its
ranges make (at most six steps for 16 ranges, where upstream checks up
to 16 ranges), and the exit and completion decisions of
KVM_CAP_X86_USER_SPACE_MSR.

It is safe, allocation-agnostic Rust (the caller provides the
allocator and the user copy) and is also a host crate with its own
tests; the kernel includes its modules from arch/x86/kvm/msr_filter.rs.

Signed-off-by: kvm-msr-rs developers <kvm-msr-rs@localhost>"
	core_done=1
}

for p in "$TOP"/patches/*.patch; do
	if [ "$core_done" = 0 ] && grep -q '^+++ b/arch/x86/kvm/' "$p"; then
		add_core
	fi
	git am -q --keep-cr "$p" || die "git am failed on ${p##*/}"
	# Fold the new files of a subsystem into the first patch touching it.
	for d in Documentation; do
		case " $folded " in *" $d "*) continue ;; esac
		grep -q "^+++ b/$d/" "$p" || continue
		[ -d "$TOP/$d" ] || continue
		(cd "$TOP" && find "$d" -type f) | while read -r f; do
			install -D -m 644 "$TOP/$f" "$f"
			git add -f "$f"
		done
		git commit -q --amend --no-edit
		folded="$folded $d"
	done
done
[ "$core_done" = 1 ] || add_core
rm -f "$out"/*.patch
git format-patch -q -o "$out" pristine..HEAD
log "wrote $(ls "$out"/*.patch | wc -l) patches to $out"
