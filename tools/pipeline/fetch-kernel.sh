#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Obtain the pristine Linux 7.3 source as a git repository (one commit,
# tagged "pristine") at $CACHE/src/linux-$KVER and print its path.
# Downloads Debian's linux-source-7.3 with `apt-get download` (never
# installs it), or takes it from KSRC_DEB=/path/to.deb, and checks its
# sha256 against the pin in lib.sh either way.
set -euo pipefail
LOG_TAG=fetch
. "$(dirname "$0")/lib.sh"

SRC=$CACHE/src/linux-$KVER
if git -C "$SRC" rev-parse -q --verify refs/tags/pristine >/dev/null 2>&1; then
	echo "$SRC"
	exit 0
fi

need dpkg-deb:dpkg tar:tar xz:xz-utils git:git sha256sum:coreutils
if [ -n "${KSRC_DEB:-}" ]; then
	DEB=$KSRC_DEB
	[ -f "$DEB" ] || die "KSRC_DEB=$DEB: no such file"
	log "using $DEB (KSRC_DEB)"
else
	DL=$CACHE/dl
	mkdir_or_die "$DL"
	DEB=$DL/linux-source-7.3_${KSRC_DEB_VERSION/:/%3a}_all.deb
fi
if [ ! -f "$DEB" ]; then
	need apt-get:apt
	log "downloading linux-source-7.3=$KSRC_DEB_VERSION (~167 MB, apt-get download)"
	(cd "$DL" && apt-get download -q "linux-source-7.3=$KSRC_DEB_VERSION" 2>&1 |
		grep -v 'unsandboxed' >&2 || true)
fi
[ -f "$DEB" ] || die "download failed: is trixie-backports configured? (run tools/pipeline/setup-host.sh)"
echo "$KSRC_DEB_SHA256  $DEB" | sha256sum -c --quiet - >&2 ||
	die "sha256 mismatch for $DEB (expected $KSRC_DEB_SHA256)"

mkdir_or_die "$CACHE/src"
log "unpacking into $SRC (~1 minute)"
tmp=$(mktemp -d "$CACHE/src/.unpack.XXXXXX") || die "cannot create a directory in $CACHE/src"
trap 'rm -rf "$tmp"' EXIT
dpkg-deb --fsys-tarfile "$DEB" | tar -x -C "$tmp" ./usr/src/linux-source-7.3.tar.xz
tar -xf "$tmp/usr/src/linux-source-7.3.tar.xz" -C "$tmp"
rm -rf "$SRC"
mv "$tmp/linux-source-7.3" "$SRC"
grep -q "^SUBLEVEL = ${KVER##*.}\$" "$SRC/Makefile" || die "unexpected kernel version in $SRC"

log "recording the pristine tree in git (~1 minute)"
git -C "$SRC" init -q
git -C "$SRC" config user.name kvm-msr-rs
git -C "$SRC" config user.email kvm-msr-rs@localhost
git -C "$SRC" config core.autocrlf false
# No automatic repack of the ~90000 loose objects in the background.
git -C "$SRC" config gc.auto 0
git -C "$SRC" add -A -f
git -C "$SRC" commit -q -m "Linux $KVER (Debian linux-source-7.3 $KSRC_DEB_VERSION)"
git -C "$SRC" tag pristine
echo "$SRC"
