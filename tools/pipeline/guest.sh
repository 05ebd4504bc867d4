# SPDX-License-Identifier: GPL-2.0
# The one way to build, boot and read a result, shared by check.sh, run.sh,
# bench.sh and selftest-pipeline.sh.  Sourced after lib.sh.
#
#   prepare_guest FLAVOUR TESTDIR
#       build (or reuse) the FLAVOUR kernel, build kvm_msr_rs.ko against it
#       (build-module.sh; none for a kernel without the hook) and build the
#       KVM selftests into TESTDIR (tools/testing/selftests/kvm/build.sh,
#       log in $RESULTS/selftests-build-<TESTDIR name>.log).  Sets B (the
#       build directory), SRC (the source tree it was built from), BZIMAGE
#       and KO (the module, or empty).  Returns 1 if the kernel did not
#       build, 2 if the selftests did not, 3 if the module did not.
#   pack_guest OUT RUNCONF [TESTDIR [EXTRA]]
#       the initramfs: busybox, the guest /init, RUNCONF, the tests, the
#       module KO and, when B's KVM is modular, KVM's modules.
#   boot_and_report BZIMAGE INITRD NAME [report.py options...]
#       boot under QEMU (BOOT_ON=qemu, the default: AMD SVM, boot.sh) or
#       Bochs (BOOT_ON=vmx: Intel VMX, boot-bochs.sh, whose results are
#       named vmx/...), console into $RESULTS/console-NAME.log, the report
#       into $RESULTS/report-NAME.txt.  Sets GUEST_QS (the emulator's
#       status, 124 on timeout), GUEST_RC (the command's status from the
#       @@CMD-END marker, empty if it did not finish), GUEST_PASS,
#       GUEST_FAIL, GUEST_SKIP (the report's counts) and GUEST_PROBLEMS
#       (its PROBLEM lines).  Returns
#       report.py's status.  BOOT_ARGS adds to the kernel command line;
#       LIVE=1 shows the command's output (between the CMD markers) while
#       the guest runs; boot.sh's variables (BOOT_TIMEOUT, SMP, MEM, SHARE,
#       QUIET, ...) apply, and boot-bochs.sh's (no SHARE: Bochs has no
#       virtio-9p).

RESULTS=${RESULTS:-$CACHE/results}
PIPE_DIR=$TOP/tools/pipeline

prepare_guest() {
	local flavour=$1
	T=$2
	mkdir_or_die "$RESULTS" "$T"
	B=$("$PIPE_DIR/build-kernel.sh" "$flavour") || return 1
	SRC=$(cat "$B/.kvm-msr-src" 2>/dev/null)
	[ -d "$SRC" ] || { log "no source tree recorded for $B"; return 1; }
	BZIMAGE=$B/arch/x86/boot/bzImage
	KO=$("$PIPE_DIR/build-module.sh" "$B") || return 3
	local blog=$RESULTS/selftests-build-${T##*/}.log
	log "building KVM selftests from $SRC into $T"
	if ! bash "$TOP/tools/testing/selftests/kvm/build.sh" "$SRC" "$T" > "$blog" 2>&1; then
		tail -40 "$blog" >&2
		log "selftest build failed (full log: $blog)"
		return 2
	fi
}

pack_guest() {
	MODULE_KO=${KO:-} KBUILD_DIR=${B:-} "$PIPE_DIR/mkinitramfs.sh" "$@"
}

# The boot script of BOOT_ON (qemu or vmx).
boot_script() {
	case ${BOOT_ON:-qemu} in
	qemu) echo "$PIPE_DIR/boot.sh" ;;
	vmx) echo "$PIPE_DIR/boot-bochs.sh" ;;
	*) log "unknown BOOT_ON=$BOOT_ON (qemu or vmx)"; return 1 ;;
	esac
}

boot_and_report() {
	local kernel=$1 initrd=$2 name=$3
	shift 3
	local con=$RESULTS/console-$name.log rep=$RESULTS/report-$name.txt pid rs boot
	local prefix=()
	mkdir_or_die "$RESULTS"
	boot=$(boot_script) || return 1
	[ "${BOOT_ON:-qemu}" = qemu ] || prefix=(--prefix "$BOOT_ON/")
	# shellcheck disable=SC2086
	if [ "${LIVE:-0}" = 1 ]; then
		: > "$con"
		QUIET=1 "$boot" "$kernel" "$initrd" "$con" ${BOOT_ARGS:-} &
		pid=$!
		tail -n +1 -f "$con" --pid=$pid 2>/dev/null |
			sed -u -n '/^@@CMD-BEGIN/,/^@@CMD-END/{/^@@/d;p}'
		wait $pid
		GUEST_QS=$?
	else
		"$boot" "$kernel" "$initrd" "$con" ${BOOT_ARGS:-}
		GUEST_QS=$?
	fi
	python3 "$PIPE_DIR/report.py" --qemu-status "$GUEST_QS" "${prefix[@]}" "$@" "$con" > "$rep"
	rs=$?
	GUEST_RC=$(sed -n 's/^@@CMD-END rc=\([0-9]*\).*/\1/p' "$con" | tail -1)
	read -r GUEST_PASS GUEST_FAIL GUEST_SKIP < <(sed -n \
		's/^guest: \([0-9]*\) passed, \([0-9]*\) failed\(, \([0-9]*\) skipped\)\?$/\1 \2 \4/p' "$rep")
	GUEST_PASS=${GUEST_PASS:-0} GUEST_FAIL=${GUEST_FAIL:-1} GUEST_SKIP=${GUEST_SKIP:-0}
	GUEST_PROBLEMS=$(grep -c '^PROBLEM' "$rep")
	return $rs
}
