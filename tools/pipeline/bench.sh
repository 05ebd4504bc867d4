#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# `make bench`: Rust/C comparison of the MSR filter, measured side by side.
#
#  1. On the host: the core crate's lookup against upstream's loop compiled
#     from C with clang at the kernel's -O2 (rust/msr_filter/benches/c, built
#     by build.rs), in the same process (cargo bench --bench lookup_table).
#  2. In one boot of the patched kernel under QEMU: msr_filter_bench (the
#     KVM selftest in tools/testing/selftests/kvm/x86) measures both
#     implementations, loading and unloading kvm_msr_rs.ko between VM
#     creations:
#     in-kernel lookup cost, KVM_X86_SET_MSR_FILTER latency with busy vCPUs,
#     userspace exit round trip, memory per installed filter.
#  3. One table: every figure is the median of repeated runs with (min-max);
#     the last column is C/Rust, the factor by which Rust's figure is lower
#     (every metric here is lower-is-better), checked against the goals:
#     `make bench` exits 0 only if every goal is met.
#
# Environment:
#   QUICK=1          fewer repetitions (a smoke run, a few minutes)
#   BENCH_ARGS='..'  arguments for msr_filter_bench in the guest (replace
#                    the defaults; see the usage line in its source)
#   HOST_BENCH=0     skip the host lookup benchmark
#   BENCH_DOC=0      do not write the run into the design document (a full
#                    run writes it between its ".. bench-begin/end" lines)
#   CRITERION=1      also run the criterion benchmark (cargo bench --bench
#                    lookup -- --quick) and show its estimates
#   ICOUNT_BENCH=0   skip the deterministic (-icount) boot
#   ICOUNT_ARGS='..' msr_filter_bench arguments of that boot (before the
#                    parts "lookup exit"); ICOUNT_SMP (default 1) its vCPUs
#   HOST_KVM=1       also run msr_filter_bench on this host's /dev/kvm (its
#                    own, usually upstream, KVM: a C-only reference)
#   SMP, MEM, BOOT_TIMEOUT, FLAVOUR, KDIR   as for make run
#
# bench.sh --table FILE...  only prints the table for files of RESULT lines
# ("RESULT <metric> <c|rust> <median> <min> <max> <unit>", "# " comments).
set -uo pipefail
LOG_TAG=bench
. "$(dirname "$0")/lib.sh"

RESULTS=$CACHE/results
BENCH_TARGET=$CACHE/target/msr_filter-bench

print_table() {
	python3 "$TOP/tools/pipeline/benchtable.py" "$@"
}

if [ "${1:-}" = --table ]; then
	shift
	print_table "$@"
	exit $?
fi

mkdir -p "$RESULTS"
host_out=$RESULTS/bench-host.txt
guest_out=$RESULTS/bench-guest.txt
hostkvm_out=$RESULTS/bench-host-kvm.txt
: > "$host_out"
: > "$guest_out"
: > "$hostkvm_out"

if [ "${QUICK:-0}" = 1 ]; then
	HOST_ARGS=(--quick)
	GUEST_ARGS=${BENCH_ARGS:-"-r 5 -n 100000 -s 9 -e 300 -v 2"}
else
	HOST_ARGS=()
	GUEST_ARGS=${BENCH_ARGS:-"-r 9 -n 300000 -s 25 -e 1000 -v 2"}
fi
# Instruction counts need few repetitions: they do not vary.
ICOUNT_ARGS=${ICOUNT_ARGS:-"-r 3 -n 20000 -e 200"}

bash "$TOP/tools/pipeline/setup-host.sh" >&2 || die "host setup failed"

# 1. Host lookup benchmark, before QEMU runs so that the two do not compete.
if [ "${HOST_BENCH:-1}" = 1 ]; then
	log "host: cargo bench --bench lookup_table ${HOST_ARGS[*]}"
	(cd "$TOP/rust/msr_filter" && CARGO_TARGET_DIR=$BENCH_TARGET \
		cargo bench --locked -j1 --quiet --bench lookup_table -- "${HOST_ARGS[@]}") \
		> "$host_out" 2> "$RESULTS/bench-host.log" ||
		{ tail -20 "$RESULTS/bench-host.log" >&2; log "warning: host benchmark failed"; }
	if [ "${CRITERION:-0}" = 1 ]; then
		log "host: cargo bench --bench lookup -- --quick (criterion)"
		(cd "$TOP/rust/msr_filter" && CARGO_TARGET_DIR=$BENCH_TARGET \
			cargo bench --locked -j1 --quiet --bench lookup -- --quick) 2>&1 |
			grep -oE 'lookup/[a-z_]+/[0-9a-z_]+|time: +\[[^]]*\]' |
			awk '/^lookup/ { n = $0; next } { $1 = $1; print n, $0 }' > "$RESULTS/bench-criterion.txt"
	fi
fi

# 2. Kernel, selftests (with the benchmark), one boot.
. "$TOP/tools/pipeline/guest.sh"
prepare_guest "${FLAVOUR:-default}" "$CACHE/selftests/bench-${FLAVOUR:-default}"
case $? in
1) die "kernel build failed" ;;
2) die "selftest build failed" ;;
3) die "kvm_msr_rs.ko did not build" ;;
esac
bin=$(awk '$1 == "msr_filter_bench" { print $2 }' "$T/bench.list" 2>/dev/null)
[ -n "$bin" ] && [ -x "$T/$bin" ] || die "msr_filter_bench missing from $T/bench.list"

if [ "${HOST_KVM:-0}" = 1 ]; then
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		log "host KVM ($(uname -r)): $bin $GUEST_ARGS"
		# shellcheck disable=SC2086
		"$T/$bin" $GUEST_ARGS > "$hostkvm_out" 2>&1 || log "warning: host KVM run failed"
	else
		log "HOST_KVM=1 but /dev/kvm is not usable"
	fi
fi

# Only the benchmark goes into the initramfs (the selftest build directory
# also holds a copy of the kernel's tools/).
conf=$(mktemp)
stage=$(mktemp -d)
trap 'rm -rf "$conf" "$stage"' EXIT
install -D -m 755 "$T/$bin" "$stage/$bin"

# run_guest NAME OUT ARGS: one boot running msr_filter_bench ARGS; its
# output (RESULT lines and comments) in OUT, QEMU's status in qs, the
# benchmark's in rc.
run_guest() {
	local name=$1 out=$2 args=$3 start
	CMD="echo \"# guest: \$(nproc) vCPUs, \$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)\"; /tests/$bin $args"
	printf 'MODE=cmd\nCMD=%q\n' "$CMD" > "$conf"
	pack_guest "$RESULTS/$name-initramfs.cpio.gz" "$conf" "$stage" || die "initramfs packing failed"
	log "$name: booting the ${FLAVOUR:-default} kernel (QEMU TCG, ${SMP:-2} CPUs${ICOUNT:+, -icount shift=$ICOUNT}): $bin $args"
	start=$(date +%s)
	QUIET=1 BOOT_TIMEOUT=${BOOT_TIMEOUT:-2400} boot_and_report "$BZIMAGE" \
		"$RESULTS/$name-initramfs.cpio.gz" "$name" --expect-cmd --summary-only
	qs=$GUEST_QS
	rc=$GUEST_RC
	log "$name: guest finished in $(( $(date +%s) - start ))s (QEMU status $qs)"
	sed -n '/^@@CMD-BEGIN/,/^@@CMD-END/{/^@@/d;p}' "$RESULTS/console-$name.log" | tr -d '\r' > "$out"
	grep -v '^guest:' "$RESULTS/report-$name.txt" >&2
	[ "$qs" != 124 ] || die "$name: the guest timed out"
	grep -q '^RESULT ' "$out" || die "$name: the guest produced no RESULT lines (see $RESULTS/console-$name.log)"
}

run_guest bench "$guest_out" "$GUEST_ARGS"
wall_rc=${rc:-1}

# 2b. The deterministic figures: the lookup and exit parts again, under
# -icount shift=0,sleep=off, where guest time advances by 1 ns per
# instruction, so that each figure is an instruction count (the metrics
# get the prefix icount_, the unit insn).
icount_out=$RESULTS/bench-icount.txt
: > "$icount_out"
if [ "${ICOUNT_BENCH:-1}" = 1 ]; then
	ICOUNT=0 SMP=${ICOUNT_SMP:-1} run_guest bench-icount "$icount_out.raw" "$ICOUNT_ARGS lookup exit"
	icount_rc=${rc:-1}
	# Whole instructions: the fractions are interrupts and timer ticks
	# spread over the iterations, which is what varies from run to run.
	awk '$1 == "RESULT" && $7 == "ns" {
		printf "RESULT icount_%s %s %.0f %.0f %.0f insn\n", $2, $3, $4, $5, $6; next }
		!/^# (mean|p99) /' "$icount_out.raw" > "$icount_out"
else
	icount_rc=0
fi

# The deterministic rows of this run against those of the previous one:
# their medians, by metric and implementation.  The minimum and maximum
# are not compared: the slowest exit is the one a timer tick lands in,
# and what that tick does depends on the boot.  The tree each run was of
# is kept beside the rows, so that a change of code is told apart from a
# figure that moved.
icount_same=
icount_rev=$(git -C "$TOP" describe --always --dirty 2>/dev/null || echo unknown)
icount_medians() {
	awk '$1 == "RESULT" { print $2, $3, $4 }' "$1"
}
if [ -s "$icount_out" ]; then
	rows=$(grep -c '^RESULT' "$icount_out")
	if [ -s "$RESULTS/bench-icount.prev" ]; then
		prev_rev=$(cat "$RESULTS/bench-icount.prev.rev" 2>/dev/null || echo unknown)
		if diff <(icount_medians "$RESULTS/bench-icount.prev") <(icount_medians "$icount_out") > "$RESULTS/bench-icount.diff"; then
			icount_same="icount medians: identical to the previous make bench ($rows rows; that run of $prev_rev, this one of $icount_rev)"
		else
			icount_same="icount medians: $(grep -c '^>' "$RESULTS/bench-icount.diff") of $rows differ from the previous make bench (that run of $prev_rev, this one of $icount_rev; see $RESULTS/bench-icount.diff)"
		fi
	else
		icount_same="icount medians: no previous make bench to compare with"
	fi
	cp "$icount_out" "$RESULTS/bench-icount.prev"
	echo "$icount_rev" > "$RESULTS/bench-icount.prev.rev"
fi

# 3. The table, once: its exit status says whether every goal is met.
print_table "$host_out" "$guest_out" "$icount_out" > "$RESULTS/bench-table.txt"
goals_rc=$?
{
	echo "== make bench: MSR filter, Rust vs C =="
	echo "machine: host $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) CPUs, kernel $(uname -r)"
	echo "machine: guest = patched $KVER kernel under QEMU TCG (-cpu max, ${SMP:-2} vCPUs on ${TCG_THREAD:-single}-threaded TCG, ${MEM:-2G}); nested KVM is SVM on TCG, so absolute figures are slow, ratios are what counts"
	grep -h '^# \(guest\|msr_filter_bench\)' "$guest_out" | sed 's/^# /machine: /'
	echo "method: host_lookup_* = cargo bench --bench lookup_table ${HOST_ARGS[*]} (c = upstream's loop compiled by clang -O2 with the kernel's code generation flags, rust = msr_filter::Filter::allowed); median of batches, ns/lookup"
	echo "method: guest: msr_filter_bench $GUEST_ARGS; both implementations in the same boot (kvm_msr_rs.ko loaded and unloaded between VM creations), interleaved where the VMs can coexist"
	echo "method: icount_* = lookup and exit again in a second boot under -icount shift=0,sleep=off (${ICOUNT_SMP:-1} vCPU, $ICOUNT_ARGS): guest time advances 1 ns per instruction, so these are instructions per lookup or exit, the same from run to run; they count every instruction the vCPU runs (the calls, C's SRCU section, the loop around the call), not memory stalls, cache or TLB misses, branch mispredictions, nor what a barrier or atomic costs beyond its one instruction"
	echo "method: lookup_* = in-kernel loop of the MSR exit handlers' lookup, inside kvm->srcu as under KVM_RUN, via debugfs msr_filter_bench (ns/lookup); setlat_<R>r_<N>vcpu = KVM_X86_SET_MSR_FILTER wall time with N vCPUs spinning in KVM_RUN (us); exit_rt = RDMSR -> FILTER exit -> userspace -> guest, each round trip timed on its own, median of all of them (ns); mem_* = debugfs 'bytes:' per installed filter"
	echo
	cat "$RESULTS/bench-table.txt"
	[ -z "$icount_same" ] || echo "$icount_same"
	if [ -s "$hostkvm_out" ]; then
		echo
		echo "host KVM reference ($(uname -r), C only; not the patched kernel):"
		print_table "$hostkvm_out" || true
	fi
	if [ -s "$RESULTS/bench-criterion.txt" ]; then
		echo
		echo "criterion (host, --quick):"
		cat "$RESULTS/bench-criterion.txt"
	fi
} | tee "$RESULTS/bench.txt"
log "raw results: $host_out $guest_out; console: $RESULTS/console-bench.log"

# The performance section of the design document shows this run (a full
# one only: not QUICK=1, not with BENCH_ARGS).
if [ "${QUICK:-0}" != 1 ] && [ -z "${BENCH_ARGS:-}" ] && [ "${BENCH_DOC:-1}" = 1 ]; then
	python3 "$TOP/tools/pipeline/benchdoc.py" \
		"$TOP/Documentation/virt/kvm/x86/msr-filter-design.rst" "$RESULTS/bench.txt" &&
		log "wrote this run into Documentation/virt/kvm/x86/msr-filter-design.rst (Performance)"
fi
[ "$wall_rc" = 0 ] || exit "$wall_rc"
[ "$icount_rc" = 0 ] || exit "$icount_rc"
[ "$goals_rc" = 0 ] || die "goals missed (the rows marked MISSED above)"
