#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# lint-rust.sh [FLAVOUR]: the kernel's own checks of the project's kernel
# Rust, as upstream runs them; prints PASS/FAIL lines (make check counts
# them).
#
#  1. `make rustfmtcheck` over the patched tree (it checks every Rust file
#     of the tree, the project's patched ones among them), and rustfmt
#     with the tree's .rustfmt.toml over the module's files (rust/*.rs,
#     rust/msr_filter/*.rs), which kbuild's target does not cover for an
#     external module.
#  2. `make CLIPPY=1` of the objects that hold the Rust files the patches
#     add or change (rust/kernel/ files are the kernel crate,
#     rust/kernel.o), and a CLIPPY=1 build of kvm_msr_rs.ko (M=, output in
#     its own MO= directory).  Any clippy or rustc warning about one of the
#     project's files is an error.
#
# Clippy runs in a build directory of its own, $CACHE/build/<kernel>-
# <flavour>-clippy, configured like the flavour's, so the kernel build
# directory is never touched by it (its objects would be rebuilt without
# CLIPPY afterwards).  The linted objects are deleted first so that clippy
# sees them again; the rest of that directory is reused, and a clean result
# is not redone while the tree, configuration and toolchain are unchanged.
#
# Sourced (by selftest-pipeline.sh), it only defines rust_fmt_check and
# rust_clippy, which the pipeline's self-test runs on broken copies.
LOG_TAG=lint
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# fmt_findings: the files a failed rustfmt check in $LINT_LOG would change
# (or, without a diff, the log's tail); returns 1.
fmt_findings() {
	grep -oE '^Diff in [^ ]+' "$LINT_LOG" | sed 's/^Diff in /    misformatted: /; s/:[0-9]*:\?$//' | sort -u
	grep -q '^Diff in ' "$LINT_LOG" || tail -20 "$LINT_LOG" | sed 's/^/    /'
	return 1
}

# rust_fmt_check SRC BUILD: `make rustfmtcheck`; on failure print the
# files rustfmt would change.  Output in $LINT_LOG.
rust_fmt_check() {
	local src=$1 b=$2
	mkdir_or_die "$b"
	make -C "$src" O="$b" "${KMAKE_VARS[@]}" rustfmtcheck > "$LINT_LOG" 2>&1 && return 0
	fmt_findings
}

# rust_clippy SRC BUILD FILES_RE MAKE_ARGS...: make CLIPPY=1 MAKE_ARGS in
# BUILD; fails if make fails or if any warning or error points at a file
# whose path matches the extended regex FILES_RE.  Findings about other
# files are shown as notes.  Output in $LINT_LOG.
rust_clippy() {
	local src=$1 b=$2 re=$3
	shift 3
	make -C "$src" O="$b" "${KMAKE_VARS[@]}" CLIPPY=1 -j"$JOBS" "$@" > "$LINT_LOG" 2>&1
	clippy_verdict $? "$re"
}

# module_clippy BUILD MO FILES_RE: make CLIPPY=1 of kvm_msr_rs.ko against
# the kernel build directory BUILD, output in MO; judged as rust_clippy.
module_clippy() {
	local b=$1 mo=$2 re=$3
	mkdir_or_die "$mo"
	rm -f "$mo/rust/kvm_msr_rs.o"
	make -C "$b" "${KMAKE_VARS[@]}" M="$TOP" MO="$mo" CLIPPY=1 -j"$JOBS" modules > "$LINT_LOG" 2>&1
	clippy_verdict $? "$re"
}

# clippy_verdict MAKE_STATUS FILES_RE: the findings in $LINT_LOG.
clippy_verdict() {
	local rc=$1 re=$2
	# "warning: <what>" / "error: <what>", then "  --> <file>:<line>:<col>".
	awk -v re="$re" '
		/^(warning|error)(\[[^]]*\])?: / { what = $0; next }
		what != "" && /^ *--> / {
			loc = $2
			if (loc ~ re) print "    finding: " loc ": " what
			else print "    note (not a project file): " loc ": " what
			what = ""
			next
		}
		{ what = "" }' "$LINT_LOG" | sort -u > "$LINT_LOG.findings"
	cat "$LINT_LOG.findings"
	if [ "$rc" != 0 ]; then
		grep -q '^    finding' "$LINT_LOG.findings" || tail -20 "$LINT_LOG" | sed 's/^/    /'
		return 1
	fi
	! grep -q '^    finding' "$LINT_LOG.findings"
}

# The Rust files the patches add or change, and the objects they are
# compiled into; the module's files.
patched_rust_files() {
	sed -n 's|^+++ b/\(.*\.rs\)$|\1|p' "$TOP"/patches/*.patch | sort -u
}
project_rust_objects() {
	patched_rust_files | sed -e 's|^rust/kernel/.*|rust/kernel.o|' -e 's|\.rs$|.o|' | sort -u
}
module_rust_files() {
	(cd "${1:-$TOP}" && ls rust/*.rs rust/msr_filter/*.rs) | grep -v '^rust/msr_filter/lib\.rs$'
}

# module_fmt_check DIR SRC: rustfmt --check, with the kernel tree SRC's
# .rustfmt.toml, of the module files under DIR (a checkout: DIR/rust/...);
# on failure print the files rustfmt would change.  Output in $LINT_LOG.
module_fmt_check() {
	local dir=$1 src=$2 files
	mapfile -t files < <(module_rust_files "$dir")
	(cd "$dir" && /usr/bin/rustfmt --check --edition 2021 --config-path "$src/.rustfmt.toml" \
		"${files[@]}") > "$LINT_LOG" 2>&1 && return 0
	fmt_findings
}

[ "${BASH_SOURCE[0]}" = "$0" ] || return 0

set -uo pipefail
FLAVOUR=${1:-default}
B=$("$(dirname "$0")/build-kernel.sh" "$FLAVOUR") || die "the $FLAVOUR kernel did not build"
SRC=$(cat "$B/.kvm-msr-src")
grep -qx 'CONFIG_RUST=y' "$B/.config" || { echo "SKIP rust lint: the $FLAVOUR flavour has no Rust"; exit 0; }
mkdir_or_die "$CACHE/results"
LINT_LOG=$CACHE/results/rustfmtcheck.log
log "make rustfmtcheck"
if out=$(rust_fmt_check "$SRC" "$B"); then
	echo "PASS rust: make rustfmtcheck"
else
	echo "FAIL rust: make rustfmtcheck (log: $LINT_LOG)"
	echo "$out"
fi
LINT_LOG=$CACHE/results/rustfmt-module.log
if out=$(module_fmt_check "$TOP" "$SRC"); then
	echo "PASS rust: rustfmt --check of kvm_msr_rs ($(module_rust_files | wc -l) files)"
else
	echo "FAIL rust: rustfmt --check of kvm_msr_rs (log: $LINT_LOG)"
	echo "$out"
fi
if grep -q '^CONFIG_KVM_MSR_FILTER_OPS=y' "$B/.config"; then
	LINT_LOG=$CACHE/results/clippy-module.log
	mre="($(module_rust_files | sed 's|^rust/||; s/[.]/[.]/g' | paste -sd'|'))(:|$)"
	if out=$(module_clippy "$B" "$CACHE/module/$(basename "$B")-clippy" "$mre"); then
		echo "PASS rust: make CLIPPY=1 M=. (kvm_msr_rs.ko)"
	else
		echo "FAIL rust: make CLIPPY=1 M=. (kvm_msr_rs.ko; log: $LINT_LOG)"
	fi
	[ -z "$out" ] || echo "$out"
fi

LB=$CACHE/build/$KVER-$FLAVOUR-clippy
mkdir_or_die "$LB"
cfg=$(sha256sum < "$B/.config")
if [ "$(cat "$LB/.kvm-msr-lint-cfg" 2>/dev/null)" != "$cfg" ] || [ ! -f "$LB/.config" ]; then
	cp "$B/.config" "$LB/.config"
	make -C "$SRC" O="$LB" "${KMAKE_VARS[@]}" -s olddefconfig >/dev/null 2>&1 ||
		die "cannot configure $LB"
	echo "$cfg" > "$LB/.kvm-msr-lint-cfg"
fi
mapfile -t objs < <(project_rust_objects)
files_re="($(patched_rust_files | sed 's/[.]/[.]/g' | paste -sd'|'))(:|$)"
# A clean result stands while the patched tree, the configuration and the
# toolchain are those it was obtained with (as build-kernel.sh's stamp).
stamp="tree=$(git -C "$SRC" rev-parse -q --verify 'HEAD^{tree}' 2>/dev/null ||
	content_hash "$TOP/patches") $cfg $(printf '%s\n' "${KMAKE_VARS[@]}" | sha256sum)"
if [ "$(cat "$LB/.kvm-msr-clippy-clean" 2>/dev/null)" = "$stamp" ]; then
	echo "PASS rust: make CLIPPY=1 ${objs[*]} (nothing changed since its last clean run)"
	exit 0
fi
rm -f "$LB/.kvm-msr-clippy-clean"
(cd "$LB" && rm -f "${objs[@]}")
LINT_LOG=$CACHE/results/clippy.log
log "make CLIPPY=1 ${objs[*]} in $LB"
start=$(date +%s)
if out=$(rust_clippy "$SRC" "$LB" "$files_re" "${objs[@]}"); then
	echo "PASS rust: make CLIPPY=1 ${objs[*]} ($(( $(date +%s) - start ))s)"
	echo "$stamp" > "$LB/.kvm-msr-clippy-clean"
else
	echo "FAIL rust: make CLIPPY=1 ${objs[*]} (log: $LINT_LOG)"
fi
[ -z "$out" ] || echo "$out"
