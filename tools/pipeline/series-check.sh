#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make series-check`: export the series (export-series.sh), apply it with
# `git am` to a clean v7.3 one patch at a time and build every prefix
# (bzImage and modules, -Werror for KVM) in one incremental build directory,
# with the in-tree module as CONFIG_KVM_MSR_FILTER_RUST=m once the series
# offers it; then the whole series once more with it built in (=y), in the
# same directory. The first build is a full kernel build (10-17 minutes),
# each further one an incremental one.
set -euo pipefail
LOG_TAG=series-check
. "$(dirname "$0")/lib.sh"

series=$CACHE/series-check/series
rm -rf "$series"
"$TOP/tools/pipeline/export-series.sh" "$series" >&2
src=$("$TOP/tools/pipeline/fetch-kernel.sh")
w=$(mktemp -d)
trap 'git -C "$src" worktree remove --force "$w/t" >/dev/null 2>&1; rm -rf "$w"' EXIT
git -C "$src" worktree add -q --detach "$w/t" pristine
git -C "$w/t" config user.name "kvm-msr-rs developers"
git -C "$w/t" config user.email "kvm-msr-rs@localhost"

frag=$w/series.config
build() { # build BUILD_DIR MODULE_SETTING LABEL
	local b=$1 m=$2 label=$3
	mkdir -p "$b"
	if [ ! -f "$b/.config" ]; then
		make -C "$w/t" O="$b" "${KMAKE_VARS[@]}" -s tinyconfig >/dev/null
		cp "$TOP/tools/pipeline/configs/base.config" "$frag"
		"$w/t/scripts/kconfig/merge_config.sh" -m -O "$b" "$b/.config" "$frag" > "$b/merge.log" 2>&1
	fi
	# Set on every build: olddefconfig drops the symbol while the prefix
	# does not define it yet.
	"$w/t/scripts/config" --file "$b/.config" --set-val KVM_MSR_FILTER_RUST "$m"
	make -C "$w/t" O="$b" "${KMAKE_VARS[@]}" -s olddefconfig >/dev/null
	if ! make -C "$w/t" O="$b" "${KMAKE_VARS[@]}" -j"$JOBS" bzImage modules > "$b/build.log" 2>&1; then
		grep -E -B2 -A10 'error' "$b/build.log" | head -60 >&2
		echo "FAIL series-check: $label does not build (log: $b/build.log)"
		return 1
	fi
	echo "PASS series-check: $label builds"
}

B=$CACHE/series-check/build
n=0 fail=0
for p in "$series"/*.patch; do
	n=$((n + 1))
	git -C "$w/t" am -q "$p" || { echo "FAIL series-check: ${p##*/} does not apply"; exit 1; }
	log "patch $n: $(git -C "$w/t" log -1 --format=%s)"
	build "$B" m "prefix 1-$n (${p##*/})" || fail=1
done
if grep -q '^CONFIG_KVM_MSR_FILTER_RUST=m' "$B/.config" && [ -f "$B/arch/x86/kvm/msr_rs/kvm_msr_rs.ko" ]; then
	echo "PASS series-check: the whole series builds kvm_msr_rs.ko in the tree (=m)"
else
	echo "FAIL series-check: no in-tree kvm_msr_rs.ko with CONFIG_KVM_MSR_FILTER_RUST=m"
	fail=1
fi
build "$B" y "the whole series with CONFIG_KVM_MSR_FILTER_RUST=y" || fail=1
if ! grep -q '^CONFIG_KVM_MSR_FILTER_RUST=y' "$B/.config"; then
	echo "FAIL series-check: CONFIG_KVM_MSR_FILTER_RUST=y did not stick"
	fail=1
elif ! grep -q 'kvm_msr_rs' "$B/System.map"; then
	echo "FAIL series-check: with CONFIG_KVM_MSR_FILTER_RUST=y vmlinux has no kvm_msr_rs symbol"
	fail=1
else
	echo "PASS series-check: with CONFIG_KVM_MSR_FILTER_RUST=y the module is in vmlinux"
fi
exit "$fail"
