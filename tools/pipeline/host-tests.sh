# SPDX-License-Identifier: GPL-2.0
# Host-side Rust tests: `cargo test` of every host-testable crate, counted
# from cargo's "test result:" lines.  Sourced by check.sh (after lib.sh);
# run on its own (`make host-test`) it ends with the same summary line.

HOST_CRATES=(rust/msr_filter samples/msr_vmm)

sample_dir() {
	# The sample VMM as a static binary, for the initramfs (empty if absent).
	local d=$CACHE/samples
	mkdir -p "$d"
	if [ -f "$TOP/samples/msr_vmm/Cargo.toml" ]; then
		if (cd "$TOP/samples/msr_vmm" &&
		    CARGO_TARGET_DIR=$CACHE/target/msr_vmm cargo build --release --quiet \
			--target x86_64-unknown-linux-gnu >&2); then
			cp "$CACHE/target/msr_vmm/x86_64-unknown-linux-gnu/release/msr-vmm" "$d/" 2>/dev/null
		fi
	fi
	echo "$d"
}

run_host_tests() {
	local c out p f s
	for c in "${HOST_CRATES[@]}"; do
		[ -f "$TOP/$c/Cargo.toml" ] || continue
		log "cargo test in $c"
		out=$(cd "$TOP/$c" && CARGO_TARGET_DIR=$CACHE/target/${c//\//_} \
			cargo test --locked 2>&1)
		echo "$out" | grep -E '^test .* (ok|FAILED|ignored)$|^test result:|panicked|error(\[|:)' |
			sed "s|^|[host:$c] |"
		# Sum every "test result: ... N passed; M failed; K ignored" line.
		read -r p f s < <(echo "$out" | awk '/^test result:/ {
			for (i = 1; i < NF; i++) {
				if ($(i + 1) ~ /^passed;/) p += $i
				if ($(i + 1) ~ /^failed;/) f += $i
				if ($(i + 1) ~ /^ignored;/) s += $i
			}
		} END { print p + 0, f + 0, s + 0 }')
		if ! echo "$out" | grep -q '^test result:'; then
			echo "$out" | tail -30 >&2
			f=1
		fi
		count "cargo test $c" "${p:-0}" "${f:-0}" "${s:-0}"
	done
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	LOG_TAG=host-test
	. "$(dirname "$0")/lib.sh"
	run_host_tests
	summary
fi
