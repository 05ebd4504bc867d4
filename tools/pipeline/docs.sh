#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the project's kernel documentation (Documentation/virt/kvm/x86/
# userspace-msr.rst and msr-filter-design.rst) as HTML with the kernel's own
# Sphinx configuration and extensions, and fail on any warning about them.
#
# How: the documentation build inputs of the pristine Linux tree
# (Documentation/, tools/docs, tools/lib/python, tools/net/ynl/pyynl,
# scripts/, Makefile, MAINTAINERS) are extracted once into a scratch tree
# under $CACHE/docs/src; each run overlays this repository's Documentation/
# files, adds our two documents to the copied virt/kvm/x86/index.rst toctree
# if absent, and runs the kernel's tools/docs/sphinx-build-wrapper (what
# `make htmldocs SPHINXDIRS=virt/kvm/x86` runs) on that directory.  The
# kernel tree itself is never modified.
#
# Installs what is missing, saying so: Debian 12's python3-sphinx (5.3.0;
# the kernel needs >= 3.4.3), python3-yaml, and graphviz (so that the
# kernel's kfigure extension does not warn about a missing dot(1)).
#
# Warnings that name one of our files are errors; any other warning would be
# an upstream one, and is printed and tolerated (with Debian 12's Sphinx
# there are none for virt/kvm/x86).  Sphinx runs with -E (no saved
# environment), so every run re-reads and re-reports every document.
# Prints the output directory on stdout.
#
# Environment:
#   KDIR=/path/to/linux   use this v7.3 tree instead of fetch-kernel.sh's
#   DOCS_OUT=dir          output directory (default: $CACHE/docs/output)
set -euo pipefail
LOG_TAG=docs
. "$(dirname "$0")/lib.sh"

OUR_DOCS=(userspace-msr msr-filter-design)
SUBDIR=virt/kvm/x86
WORK=$CACHE/docs
SCRATCH=$WORK/src
OUT=${DOCS_OUT:-$WORK/output}
WARN_LOG=$WORK/warnings.log

# --- 1. Tools -----------------------------------------------------------------
APT_PKGS=(python3-sphinx python3-yaml graphviz)
missing=()
for p in "${APT_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	SUDO=
	[ "$(id -u)" = 0 ] || SUDO=sudo
	log "installing apt packages: ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		-o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null; then
		log "apt-get install failed; running apt-get update and retrying"
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
			-o DPkg::Lock::Timeout=300 --no-install-recommends "${missing[@]}" >/dev/null
	fi
fi
# Debian's interpreter and sphinx-build, whatever python3 comes first on PATH.
PY=/usr/bin/python3
SPHINXBUILD=/usr/bin/sphinx-build
[ -x "$SPHINXBUILD" ] || die "$SPHINXBUILD missing after installing python3-sphinx"

# --- 2. Scratch copy of the kernel's documentation inputs ---------------------
KSRC=${KDIR:-$(bash "$(dirname "$0")/fetch-kernel.sh")}
[ -f "$KSRC/Documentation/conf.py" ] || die "$KSRC has no Documentation/conf.py"
INPUTS=(Makefile MAINTAINERS Documentation tools/docs tools/lib/python
	tools/net/ynl/pyynl scripts)

# Identify the source: the "pristine" tag of fetch-kernel.sh's git tree (whose
# working tree prepare-tree.sh may be changing under us), else the path and
# mtime of a user's tree.
if git -C "$KSRC" rev-parse -q --verify 'refs/tags/pristine^{tree}' >/dev/null 2>&1; then
	SRC_ID=git:$(git -C "$KSRC" rev-parse 'refs/tags/pristine^{tree}')
else
	SRC_ID=dir:$KSRC:$(stat -c %Y "$KSRC/Documentation/conf.py")
fi
if [ "$(cat "$SCRATCH/.source-id" 2>/dev/null)" != "$SRC_ID" ]; then
	log "extracting the kernel's documentation sources into $SCRATCH"
	rm -rf "$SCRATCH" "$WORK/output" "$WORK/.doctrees"
	mkdir -p "$SCRATCH"
	if [ "${SRC_ID%%:*}" = git ]; then
		git -C "$KSRC" archive --format=tar pristine -- "${INPUTS[@]}" |
			tar -x -C "$SCRATCH"
	else
		for d in "${INPUTS[@]}"; do
			[ -e "$KSRC/$d" ] || continue
			mkdir -p "$SCRATCH/$(dirname "$d")"
			cp -a "$KSRC/$d" "$SCRATCH/$d"
		done
	fi
	# Keep the untouched index to start every run from.
	cp "$SCRATCH/Documentation/$SUBDIR/index.rst" "$SCRATCH/.index.rst.orig"
	echo "$SRC_ID" > "$SCRATCH/.source-id"
fi

# --- 3. Overlay our documents -------------------------------------------------
# Files this repository adds under Documentation/ (a previous run's overlay
# is removed first, so a deleted or renamed document does not linger).
if [ -f "$SCRATCH/.overlay" ]; then
	while IFS= read -r f; do rm -f "$SCRATCH/$f"; done < "$SCRATCH/.overlay"
fi
(cd "$TOP" && find Documentation -type f -name '*.rst' | sort) > "$SCRATCH/.overlay"
while IFS= read -r f; do
	mkdir -p "$SCRATCH/$(dirname "$f")"
	cp "$TOP/$f" "$SCRATCH/$f"
done < "$SCRATCH/.overlay"
for d in "${OUR_DOCS[@]}"; do
	[ -f "$SCRATCH/Documentation/$SUBDIR/$d.rst" ] ||
		die "Documentation/$SUBDIR/$d.rst is missing from this repository"
done

# The toctree entries the patch series adds (patches/*index-the-userspace*),
# added here to a fresh copy of upstream's index if absent.
IDX=$SCRATCH/Documentation/$SUBDIR/index.rst
cp "$SCRATCH/.index.rst.orig" "$IDX"
for d in "${OUR_DOCS[@]}"; do
	grep -qE "^[[:space:]]+$d[[:space:]]*\$" "$IDX" || printf '   %s\n' "$d" >> "$IDX"
done

# --- 4. Build -----------------------------------------------------------------
mkdir -p "$OUT"
rm -f "$WARN_LOG"
log "sphinx-build $($SPHINXBUILD --version | awk '{print $2}') (Debian), SPHINXDIRS=$SUBDIR"
start=$(date +%s)
set +e
(cd "$SCRATCH" &&
	env srctree="$SCRATCH" PYTHON3="$PY" SPHINXBUILD="$SPHINXBUILD" \
	    SPHINXOPTS="-E -w $WARN_LOG" KERNELVERSION="$KVER" KERNELRELEASE="$KVER" \
	    PYTHONDONTWRITEBYTECODE=1 \
	"$PY" tools/docs/sphinx-build-wrapper htmldocs --sphinxdirs "$SUBDIR" \
		--builddir "$OUT" -j "$JOBS") > "$WORK/build.log" 2>&1
rc=$?
set -e
log "sphinx-build finished in $(( $(date +%s) - start ))s (log: $WORK/build.log)"
if [ $rc -ne 0 ]; then
	tail -n 30 "$WORK/build.log" >&2
	die "documentation build failed (exit $rc)"
fi

# --- 5. Warnings --------------------------------------------------------------
touch "$WARN_LOG"
pat=$(printf '%s|' "${OUR_DOCS[@]}")
ours=$(grep -E "/(${pat%|})\.rst" "$WARN_LOG" || true)
others=$(grep -vE "/(${pat%|})\.rst" "$WARN_LOG" | grep -E 'WARNING|ERROR|SEVERE|CRITICAL' || true)
if [ -n "$others" ]; then
	log "tolerated upstream warnings (they do not concern our documents):"
	printf '%s\n' "$others" | sed 's/^/    /' >&2
fi
if [ -n "$ours" ]; then
	log "warnings in our documents (treated as errors):"
	printf '%s\n' "$ours" | sed 's/^/    /' >&2
	die "documentation has warnings (see above)"
fi
for d in "${OUR_DOCS[@]}"; do
	[ -s "$OUT/$SUBDIR/$d.html" ] || die "$OUT/$SUBDIR/$d.html was not produced"
done
log "ok: $(wc -l < "$WARN_LOG") warning lines, none about our documents"
echo "$OUT/$SUBDIR"
