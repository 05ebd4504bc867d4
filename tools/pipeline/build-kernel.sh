#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# build-kernel.sh [default|module|debug|norust]: configure and build the patched kernel
# out of tree and print the build directory (bzImage is
# arch/x86/boot/bzImage in it, and .kvm-msr-src names the source tree).
#
# The build directory, $CACHE/build/<kernel>-<flavour>, is kept between
# runs: a stamp of (source tree, config fragments, toolchain) skips make
# entirely when nothing changed, and a changed tree is rebuilt
# incrementally.
set -euo pipefail
LOG_TAG=build
. "$(dirname "$0")/lib.sh"

FLAVOUR=${1:-default}
CFG_DIR=$TOP/tools/pipeline/configs
FRAGS=("$CFG_DIR/base.config")
case "$FLAVOUR" in
default) ;;
debug) FRAGS+=("$CFG_DIR/debug.config") ;;
module) FRAGS+=("$CFG_DIR/module.config") ;;
norust) FRAGS+=("$CFG_DIR/norust.config") ;;
*) die "unknown flavour '$FLAVOUR' (default, module, debug or norust)" ;;
esac

need make:make clang-$LLVM_MAJOR:clang-$LLVM_MAJOR ld.lld-$LLVM_MAJOR:lld-$LLVM_MAJOR \
	bison:bison flex:flex bc:bc
for t in /usr/bin/rustc /usr/bin/rustfmt /usr/bin/clippy-driver "$TOOLS_DIR/bin/bindgen"; do
	[ -x "$t" ] || die "missing tool: $t; tools/pipeline/setup-host.sh installs it"
done
SRC=$("$(dirname "$0")/prepare-tree.sh")
if [ -n "${KDIR:-}" ]; then
	B=$CACHE/build/kdir-$(printf '%s' "$SRC" | sha256sum | cut -c1-12)-$FLAVOUR
	# What prepare-tree.sh applies: the patches and the overlay roots.
	tree_id=$(content_hash "$TOP/patches" "$TOP/Documentation/virt")
else
	B=$CACHE/build/$KVER-$FLAVOUR
	tree_id=$(git -C "$SRC" rev-parse 'HEAD^{tree}')
fi
mkdir_or_die "$B"
# The source tree this build directory is built from, for the selftest
# build (kbuild's own "source" link appears only once make has run).
echo "$SRC" > "$B/.kvm-msr-src"
cfg_id=$(cat "${FRAGS[@]}" <(printf '%s\n' "${KMAKE_VARS[@]}") | sha256sum | cut -c1-16)
stamp="tree=$tree_id cfg=$cfg_id"

if [ -f "$B/arch/x86/boot/bzImage" ] && [ "$(cat "$B/.kvm-msr-stamp" 2>/dev/null)" = "$stamp" ]; then
	log "$FLAVOUR kernel is up to date ($B)"
	echo "$B"
	exit 0
fi

kmake() { make -C "$SRC" O="$B" "${KMAKE_VARS[@]}" "$@"; }

if [ ! -f "$B/.config" ] || [ "$(cat "$B/.kvm-msr-cfg" 2>/dev/null)" != "$cfg_id" ]; then
	log "configuring $FLAVOUR: tinyconfig + ${FRAGS[*]##*/}"
	kmake -s tinyconfig >/dev/null
	"$SRC/scripts/kconfig/merge_config.sh" -m -O "$B" "$B/.config" "${FRAGS[@]}" >"$B/merge.log" 2>&1 ||
		{ cat "$B/merge.log" >&2; die "merge_config failed"; }
	kmake -s olddefconfig >/dev/null
	# Every value the fragments ask for must have survived: Rust in
	# particular drops out silently when its toolchain check fails.
	# A later fragment overrides an earlier one: check the last value of
	# each symbol.
	bad=0
	declare -A wanted=()
	while IFS= read -r line; do
		case "$line" in
		CONFIG_*=*) wanted[${line%%=*}]=${line#*=} ;;
		esac
	done < <(cat "${FRAGS[@]}")
	for sym in "${!wanted[@]}"; do
		want=${wanted[$sym]}
		line="$sym=$want"
		if [ "$want" = n ]; then
			if grep -q "^$sym=" "$B/.config"; then
				log "config: $sym should be off but is $(grep "^$sym=" "$B/.config")"
				bad=1
			fi
		elif ! grep -qx "$sym=$want" "$B/.config"; then
			log "config: wanted $line, got $(grep "^$sym=\|# $sym is" "$B/.config" || echo 'nothing')"
			bad=1
		fi
	done
	if [ "$bad" = 1 ]; then
		kmake -s rustavailable >&2 || true
		die "configuration lost fragment values (see above)"
	fi
	echo "$cfg_id" > "$B/.kvm-msr-cfg"
fi

# The stamp describes a finished build: a failed or interrupted one of
# another tree must not leave it claiming this one is up to date.
rm -f "$B/.kvm-msr-stamp"
# With loadable modules: also KVM's modules (module flavour) and the
# Module.symvers that kvm_msr_rs.ko is built against.
targets=(bzImage)
grep -q '^CONFIG_MODULES=y' "$B/.config" && targets+=(modules)
log "building $FLAVOUR ${targets[*]} in $B with -j$JOBS (a full build takes 10-17 minutes)"
start=$(date +%s)
set +e
kmake -j"$JOBS" "${targets[@]}" > "$B/build.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
	sleep 30
	kill -0 "$pid" 2>/dev/null || break
	n=$(grep -c '^  [A-Z]' "$B/build.log" 2>/dev/null)
	last=$(grep '^  [A-Z]' "$B/build.log" 2>/dev/null | tail -1 | sed 's/^ *//')
	log "  $(( $(date +%s) - start ))s: $n steps, at: $last"
done
wait "$pid"
rc=$?
set -e
if [ "$rc" != 0 ]; then
	grep -E -B2 -A8 'error|Error' "$B/build.log" | head -80 >&2
	die "kernel build failed (full log: $B/build.log)"
fi
grep -E 'warning:' "$B/build.log" | sort -u | head -20 >&2 || true
log "built in $(( $(date +%s) - start ))s"
echo "$stamp" > "$B/.kvm-msr-stamp"
echo "$B"
