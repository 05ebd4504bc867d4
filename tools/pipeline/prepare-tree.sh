#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Produce the patched kernel source tree and print its path.
#
# The kernel side of the project is, in this repository:
#   patches/*.patch   changes to upstream files, applied in name order
#                     (a `git format-patch` series);
#   overlay roots     new files kept at their kernel path (OVERLAY below);
#                     an overlay file must not exist upstream.
#
# Default: the pristine tree from fetch-kernel.sh is a git repository; the
# patched tree is computed in a temporary index and checked out, so only
# files whose content changed get a new mtime and make rebuilds
# incrementally.
#
# KDIR=/path/to/linux: a v7.3 tree of the user's.  If it already carries the
# patches and overlay it is used as is; if it is clean they are applied in
# place (and said so); anything in between is an error.
set -euo pipefail
LOG_TAG=prepare
. "$(dirname "$0")/lib.sh"

OVERLAY=(Documentation/virt)

overlay_files() {
	local r
	for r in "${OVERLAY[@]}"; do
		[ -d "$TOP/$r" ] || continue
		(cd "$TOP" && find "$r" -type f ! -name '*.orig' ! -name '*.rej' | sort)
	done
}
patch_files() { find "$TOP/patches" -maxdepth 1 -name '*.patch' 2>/dev/null | sort; }

prepare_default() {
	local src idx tree head
	src=$("$(dirname "$0")/fetch-kernel.sh")
	cd "$src"
	idx=$(mktemp)
	trap 'rm -f "$idx"' RETURN
	export GIT_INDEX_FILE=$idx
	git read-tree pristine
	local p f blob
	while read -r p; do
		[ -n "$p" ] || continue
		git apply --cached "$p" || die "patch does not apply: ${p#$TOP/}"
	done < <(patch_files)
	while read -r f; do
		[ -n "$f" ] || continue
		if git cat-file -e "pristine:$f" 2>/dev/null; then
			die "overlay file $f exists upstream: change it with a patch instead"
		fi
		blob=$(git hash-object -w "$TOP/$f")
		git update-index --add --cacheinfo "100644,$blob,$f"
	done < <(overlay_files)
	tree=$(git write-tree)
	unset GIT_INDEX_FILE
	head=$(git rev-parse -q --verify 'HEAD^{tree}' || true)
	if [ "$tree" != "$head" ] || [ -n "$(git status --porcelain --untracked-files=no)" ]; then
		local c
		c=$(git commit-tree "$tree" -p pristine -m "kvm-msr-rs patched tree")
		git checkout -q -f -B patched "$c"
		log "source tree updated ($(git diff --stat pristine HEAD | tail -1 | sed 's/^ *//'))"
	fi
	echo "$src"
}

prepare_kdir() {
	local k=$1 p f applied=0 clean=0 total=0
	[ -f "$k/Makefile" ] && grep -q '^VERSION = 7$' "$k/Makefile" &&
		grep -q '^PATCHLEVEL = 3$' "$k/Makefile" || die "KDIR=$k is not a Linux 7.3 tree"
	while read -r p; do
		[ -n "$p" ] || continue
		total=$((total + 1))
		if (cd "$k" && patch -p1 -R --dry-run -s -f < "$p" >/dev/null 2>&1); then
			applied=$((applied + 1))
		elif (cd "$k" && patch -p1 --dry-run -s -f < "$p" >/dev/null 2>&1); then
			clean=$((clean + 1))
		else
			die "KDIR=$k: ${p#$TOP/} neither applies nor is applied"
		fi
	done < <(patch_files)
	local ov_same=0 ov_absent=0 ov_total=0
	while read -r f; do
		[ -n "$f" ] || continue
		ov_total=$((ov_total + 1))
		if [ ! -e "$k/$f" ]; then
			ov_absent=$((ov_absent + 1))
		elif cmp -s "$TOP/$f" "$k/$f"; then
			ov_same=$((ov_same + 1))
		fi
	done < <(overlay_files)
	if [ "$applied" = "$total" ] && [ "$ov_same" = "$ov_total" ]; then
		log "KDIR=$k already carries the patches"
	elif [ "$clean" = "$total" ] && [ "$ov_absent" = "$ov_total" ]; then
		log "KDIR=$k is clean: applying $total patches and $ov_total new files in place"
		while read -r p; do
			[ -n "$p" ] || continue
			(cd "$k" && patch -p1 -s -f < "$p") || die "applying ${p#$TOP/} failed"
		done < <(patch_files)
		while read -r f; do
			[ -n "$f" ] || continue
			install -D -m 644 "$TOP/$f" "$k/$f"
		done < <(overlay_files)
	else
		die "KDIR=$k is partly patched ($applied/$total patches applied, $ov_same/$ov_total new files current): use a clean v7.3 or a fully patched tree"
	fi
	echo "$k"
}

if [ -n "${KDIR:-}" ]; then
	prepare_kdir "$(cd "$KDIR" && pwd)"
else
	prepare_default
fi
