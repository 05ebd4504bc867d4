# SPDX-License-Identifier: GPL-2.0
# Shared settings for the pipeline scripts; sourced, not run.

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CACHE=${KVM_MSR_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kvm-msr-rs}
TOOLS_DIR=${TOOLS_DIR:-$CACHE/tools}

# The kernel this project patches: Debian's linux-source-7.3 from
# trixie-backports, pinned by version and content.  KSRC_DEB=/path/to.deb
# takes the package from a local file instead of downloading it (still
# checked against the sha256 below).
KVER=7.3.4
KSRC_DEB_VERSION=7.3.4-1~bpo13+1
KSRC_DEB_SHA256=703e369ddd4cce971452f5a593ee55df3a5c10c83caf0fa0df039633ed181ee3

# Debian's toolchain, named explicitly: rustup's rustc comes first on PATH
# and has no rust-src. Clang is the LLVM that rustc-web itself uses (22,
# from bookworm-security), so that the kernel can inline its C helpers into
# Rust (CONFIG_RUST_INLINE_HELPERS needs matching LLVM versions).
LLVM_MAJOR=22
KMAKE_VARS=(LLVM=-$LLVM_MAJOR RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
	    RUSTFMT=/usr/bin/rustfmt CLIPPY_DRIVER=/usr/bin/clippy-driver
	    HOSTRUSTC=/usr/bin/rustc BINDGEN="$TOOLS_DIR/bin/bindgen")
export LIBCLANG_PATH=/usr/lib/llvm-$LLVM_MAJOR/lib

JOBS=${JOBS:-$(nproc)}

log() { printf '[%s] %s\n' "${LOG_TAG:-pipeline}" "$*" >&2; }
die() { printf '[%s] error: %s\n' "${LOG_TAG:-pipeline}" "$*" >&2; exit 1; }

# need TOOL PACKAGE...: die with a readable reason unless every TOOL (a
# command on PATH) is there.  Arguments are "tool:package" pairs.
need() {
	local t missing=()
	for t in "$@"; do
		command -v "${t%%:*}" >/dev/null 2>&1 || missing+=("${t%%:*} (Debian package ${t#*:})")
	done
	[ ${#missing[@]} = 0 ] ||
		die "missing tool: ${missing[*]}; tools/pipeline/setup-host.sh installs it"
}

# mkdir_or_die DIR...: create directories, or say which one cannot be made.
mkdir_or_die() {
	local d
	for d in "$@"; do
		mkdir -p "$d" 2>/dev/null ||
			die "cannot create directory $d ($(mkdir -p "$d" 2>&1 | sed 's/^mkdir: //'))"
	done
}

# Result counting, shared by check.sh and the single-step targets:
# count LABEL PASS FAIL SKIP adds to the totals, summary prints the one
# final line "N passed, M failed[, K skipped]" and returns non-zero if
# anything failed.
total_pass=0
total_fail=0
total_skip=0
failures=()
failure_lines=()
count() {
	total_pass=$((total_pass + $2))
	total_fail=$((total_fail + $3))
	total_skip=$((total_skip + $4))
	[ "$3" = 0 ] || failures+=("$1")
}
# note_failures FILE: the FAIL and PROBLEM lines of a guest report, repeated
# by summary() next to the result line (CI shows only the end of the log).
note_failures() {
	local l
	while IFS= read -r l; do
		failure_lines+=("$l")
	done < <(grep -E '^(FAIL|PROBLEM)' "$1" 2>/dev/null | cut -c1-200 | head -n 8)
}
summary() {
	local l
	for l in "${failure_lines[@]}"; do
		log "  $l"
	done
	[ ${#failures[@]} = 0 ] || log "failed: ${failures[*]}"
	if [ "$total_skip" -gt 0 ]; then
		echo "$total_pass passed, $total_fail failed, $total_skip skipped"
	else
		echo "$total_pass passed, $total_fail failed"
	fi
	[ "$total_fail" = 0 ]
}

# Content hash of a list of files/dirs (names and contents).
content_hash() {
	local f
	for f in "$@"; do
		[ -e "$f" ] || continue
		find "$f" -type f ! -path '*/target/*' -print0 | sort -z |
			xargs -0 -r sha256sum
	done | sha256sum | cut -c1-16
}
