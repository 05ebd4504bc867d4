#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# kernel-tree.sh [save]: the developers' kernel tree.
#
# Without argument: (re)create $CACHE/dev, a git worktree of the pristine
# 7.3.4 source with patches/*.patch applied by `git am` on branch "dev",
# and print its path. Edit there and commit (fixups, new patches), then:
#
# save: regenerate patches/ from the dev branch (git format-patch).
#
# The Rust module (rust/, built out of tree by build-module.sh) and the
# documents are kept in this repository, not in patches/; prepare-tree.sh
# adds the documents to the build.  The dev tree builds as it is.
set -euo pipefail
LOG_TAG=kernel-tree
. "$(dirname "$0")/lib.sh"

src=$("$(dirname "$0")/fetch-kernel.sh")
dev=$CACHE/dev
case "${1:-}" in
save)
	[ -d "$dev" ] || die "no developers' tree at $dev: run without 'save' first"
	[ -z "$(git -C "$dev" status --porcelain --untracked-files=no)" ] ||
		die "$dev has uncommitted changes"
	rm -f "$TOP"/patches/*.patch
	git -C "$dev" format-patch -q -o "$TOP/patches" pristine..dev
	log "wrote $(ls "$TOP"/patches/*.patch | wc -l) patches to patches/"
	;;
"")
	if [ -d "$dev" ]; then
		[ -z "$(git -C "$dev" status --porcelain --untracked-files=no)" ] ||
			die "$dev has uncommitted changes: commit or discard them first"
	else
		git -C "$src" worktree add -q --detach "$dev" pristine
	fi
	git -C "$dev" config user.name "${GIT_AUTHOR_NAME:-kvm-msr-rs developers}"
	git -C "$dev" config user.email "${GIT_AUTHOR_EMAIL:-kvm-msr-rs@localhost}"
	git -C "$dev" checkout -q -B dev pristine
	git -C "$dev" am -q "$TOP"/patches/*.patch
	log "patches applied on branch dev in $dev"
	echo "$dev"
	;;
*)
	die "usage: kernel-tree.sh [save]"
	;;
esac
