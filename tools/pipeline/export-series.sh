#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# export-series.sh OUTDIR: write the whole kernel change as one
# `git format-patch` series that applies with `git am` to v7.3 (Debian's
# 7.3.4 tree, tag "pristine") and builds at every patch.
#
# patches/*.patch are the changes to upstream files; the files this
# repository keeps elsewhere are folded into the series: the Rust module
# (rust/Kbuild, rust/*.rs and the no_std core rust/msr_filter/*.rs) into
# the patch that builds arch/x86/kvm/msr_rs/ (CONFIG_KVM_MSR_FILTER_RUST),
# at that path, and the new files under Documentation/ into the first
# patch touching Documentation/.
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

module_done=0
folded=
# The module's files, relative to rust/: kbuild file, crate root and
# modules, and the core's modules (not its host crate root, tests or
# benchmarks).
module_files() {
	(cd "$TOP/rust" && ls Kbuild ./*.rs msr_filter/*.rs) | sed 's|^\./||' |
		grep -v '^msr_filter/lib\.rs$'
}
add_module() {
	local f
	module_files | while read -r f; do
		install -D -m 644 "$TOP/rust/$f" "arch/x86/kvm/msr_rs/$f"
	done
	git add -f arch/x86/kvm/msr_rs
	git commit -q --amend --no-edit
	module_done=1
}

for p in "$TOP"/patches/*.patch; do
	git am -q --keep-cr "$p" || die "git am failed on ${p##*/}"
	# The module's files go into the patch that builds their directory.
	if [ "$module_done" = 0 ] && grep -q '^+obj-$(CONFIG_KVM_MSR_FILTER_RUST) += msr_rs/' "$p"; then
		add_module
	fi
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
[ "$module_done" = 1 ] || die "no patch builds arch/x86/kvm/msr_rs/ (CONFIG_KVM_MSR_FILTER_RUST)"
rm -f "$out"/*.patch
git format-patch -q -o "$out" pristine..HEAD
log "wrote $(ls "$out"/*.patch | wc -l) patches to $out"
