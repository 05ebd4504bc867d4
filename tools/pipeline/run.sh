#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make run [CMD='...'] [SHARE=dir]`: build what is needed, boot the patched
# kernel and run CMD in it (default: the sample VMM's demo), then power off.
# SHARE (default: the directory make was started from) is mounted at /host
# over virtio-9p and CMD runs there, so `make run CMD=./my-static-vmm` runs
# a binary of yours.  The project's test binaries are in /tests and the
# sample VMM in /samples, on PATH (the tests by the names tests.list
# gives them).  Exits with CMD's status.  BOOT_ON=vmx boots under Bochs
# (Intel VMX) instead of QEMU (AMD SVM); Bochs has no virtio-9p, so there
# is no /host and CMD runs in /tmp.
set -uo pipefail
LOG_TAG=run
. "$(dirname "$0")/lib.sh"
. "$TOP/tools/pipeline/host-tests.sh"
. "$TOP/tools/pipeline/guest.sh"

bash "$TOP/tools/pipeline/setup-host.sh" >&2 || die "host setup failed"
prepare_guest "${FLAVOUR:-default}" "$CACHE/selftests/${FLAVOUR:-default}"
case $? in
1) die "kernel build failed" ;;
2) log "warning: the selftests did not build: only the sample VMM and your own binaries are in the guest" ;;
3) die "kvm_msr_rs.ko did not build" ;;
esac
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
pack_guest "$CACHE/run-initramfs.cpio.gz" "$conf" "$T" "$S" || die "initramfs packing failed"
log "running in the patched kernel${BOOT_ON:+ (BOOT_ON=$BOOT_ON)}: $CMD"
[ "${BOOT_ON:-qemu}" != vmx ] ||
	log "BOOT_ON=vmx: no /host under Bochs (no virtio-9p); the command runs in /tmp, the tests and samples are on PATH"
# The command's output is shown live; then kernel problems (oops, WARNING,
# KASAN, ...) and timeouts, if any.
LIVE=1 SHARE=${SHARE:-$PWD} boot_and_report "$BZIMAGE" "$CACHE/run-initramfs.cpio.gz" run --summary-only
grep -v '^guest:' "$RESULTS/report-run.txt" >&2
rc=$GUEST_RC
[ "$GUEST_QS" = 124 ] && die "the guest timed out"
[ -n "$rc" ] || die "the command did not finish (console: $RESULTS/console-run.log)"
[ "$rc" = 0 ] || log "the command exited with status $rc"
exit "$rc"
