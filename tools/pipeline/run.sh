#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run [CMD='...'] [SHARE=dir]`: build what is needed, boot the patched
# kernel and run CMD in it (default: the sample VMM's demo), then power off.
# SHARE (default: the directory make was started from) is mounted at /host
# over virtio-9p and CMD runs there, so `make run CMD=./my-static-vmm` runs
# a binary of yours.  The project's test binaries are in /tests and the
# sample VMM in /samples, both on PATH.  Exits with CMD's status.
set -uo pipefail
LOG_TAG=run
. "$(dirname "$0")/lib.sh"
. "$TOP/tools/pipeline/host-tests.sh"

bash "$TOP/tools/pipeline/setup-host.sh" >&2 || die "host setup failed"
B=$("$TOP/tools/pipeline/build-kernel.sh" "${FLAVOUR:-default}") || die "kernel build failed"
KO=$("$TOP/tools/pipeline/build-module.sh" "$B") || die "module build failed"
# build-kernel.sh prepared the tree; kbuild links it from the build dir.
SRC=$(readlink -f "$B/source")
T=$CACHE/selftests/${FLAVOUR:-default}
bash "$TOP/tools/testing/selftests/kvm/build.sh" "$SRC" "$T" > "$CACHE/results/selftests-build.log" 2>&1 ||
	log "warning: selftests did not build (see $CACHE/results/selftests-build.log)"
S=$(sample_dir)

if [ -z "${CMD:-}" ]; then
	if [ -x "$S/msr-vmm" ]; then
		CMD='msr-vmm --demo'
	else
		CMD='userspace_msr_exit_test'
	fi
fi
conf=$(mktemp)
trap 'rm -f "$conf"' EXIT
printf 'MODE=run\nCMD=%q\nIMPL=%q\n' "$CMD" "${IMPL:-rust}" > "$conf"
mkdir -p "$CACHE/results"
MODULE_KO=$KO KBUILD_DIR=$B \
	"$TOP/tools/pipeline/mkinitramfs.sh" "$CACHE/run-initramfs.cpio.gz" "$conf" "$T" "$S"
log "running in the patched kernel: $CMD"
QUIET=1 SHARE=${SHARE:-$PWD} "$TOP/tools/pipeline/boot.sh" "$B/arch/x86/boot/bzImage" \
	"$CACHE/run-initramfs.cpio.gz" "$CACHE/results/console-run.log" &
pid=$!
# Show the command's output (the console between the CMD markers) live.
sleep 1
tail -n +1 -f "$CACHE/results/console-run.log" --pid=$pid 2>/dev/null |
	sed -u -n '/^@@CMD-BEGIN/,/^@@CMD-END/{/^@@/d;p}'
wait $pid
qs=$?
# Kernel problems (oops, WARNING, KASAN, ...) and timeouts, if any.
python3 "$TOP/tools/pipeline/report.py" --qemu-status $qs --summary-only \
	"$CACHE/results/console-run.log" | grep -v '^guest:' >&2
rc=$(sed -n 's/^@@CMD-END rc=\([0-9]*\).*/\1/p' "$CACHE/results/console-run.log" | tail -1)
[ "$qs" = 124 ] && die "the guest timed out"
[ -n "$rc" ] || die "the command did not finish (console: $CACHE/results/console-run.log)"
[ "$rc" = 0 ] || log "the command exited with status $rc"
exit "$rc"
