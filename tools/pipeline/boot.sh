#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# boot.sh BZIMAGE INITRD LOG [CMDLINE...]: boot under QEMU TCG (q35, -cpu
# max: SVM + NPT, so kvm_amd runs nested), console on ttyS0 written to LOG
# and shown filtered on stderr.  Environment: BOOT_TIMEOUT (seconds, default
# 2400), SHARE (a host directory exported over virtio-9p as tag "host"),
# SMP (default 2), MEM (default 2G), TCG_THREAD (default single: one host
# thread runs all vCPUs; multi: one each), QUIET=1 (show nothing while
# running), KUNIT=1 (run the built-in KUnit suites at boot; otherwise the
# command line has kunit.enable=0), ICOUNT=N (-icount shift=N,sleep=off:
# guest time counts instructions, 2^N ns each, single-threaded TCG).
#
# Single-threaded TCG by default: with QEMU 7.2's multi-threaded TCG and
# two guest CPUs, the stress test's nested guest (SVM on TCG) triple-faults
# in most runs, under the C and the Rust filter alike; with one TCG thread
# and the same two guest CPUs it passes (measured: 3 of 4 and 0 of 4 runs
# of 10000 sets failing).
# Exit status: QEMU's, or 124 on timeout.
set -uo pipefail
LOG_TAG=boot
. "$(dirname "$0")/lib.sh"

kernel=$1 initrd=$2 logf=$3
shift 3
need qemu-system-x86_64:qemu-system-x86 timeout:coreutils
[ -f "$kernel" ] || die "no kernel image at $kernel"
[ -f "$initrd" ] || die "no initramfs at $initrd"
mkdir_or_die "$(dirname "$logf")"
# Under -icount the TSC counts virtual nanoseconds: 1 GHz whatever the shift.
tsc_khz=2000000
[ -z "${ICOUNT:-}" ] || tsc_khz=1000000
cmdline="console=ttyS0 panic=-1 loglevel=5 tsc_early_khz=$tsc_khz kvm.force_emulation_prefix=1"
# KUnit suites built in (the Rust doctests) run at boot only when asked.
[ "${KUNIT:-0}" = 1 ] || cmdline+=" kunit.enable=0"
cmdline+=" $*"
args=(-accel "tcg,thread=${TCG_THREAD:-single}" -machine q35 -cpu max -m "${MEM:-2G}" -smp "${SMP:-2}"
      -display none -monitor none -serial stdio -no-reboot -nic none
      -kernel "$kernel" -initrd "$initrd" -append "$cmdline")
if [ -n "${ICOUNT:-}" ]; then
	[ "${TCG_THREAD:-single}" = single ] || die "ICOUNT needs TCG_THREAD=single"
	args+=(-icount "shift=$ICOUNT,sleep=off")
fi
if [ -n "${SHARE:-}" ]; then
	args+=(-virtfs "local,path=$SHARE,mount_tag=host,security_model=none,id=host")
fi
log "booting: $cmdline"
timeout --kill-after=10 "${BOOT_TIMEOUT:-2400}" qemu-system-x86_64 "${args[@]}" < /dev/null |
	tee "$logf" |
	if [ "${QUIET:-0}" = 1 ]; then cat > /dev/null; else
		grep --line-buffered -E '^@@(BOOT-OK|TEST-END|NOTE)|Kernel panic' | sed -u 's/^/  [guest] /' >&2
	fi
exit "${PIPESTATUS[0]}"
