#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0
#
# boot-bochs.sh BZIMAGE INITRD LOG [CMDLINE...]: boot under Bochs (an
# emulated Skylake-X with VMX: EPT, VPID, unrestricted guest, so kvm_intel
# runs nested), console on ttyS0 written to LOG and shown filtered on
# stderr, the way boot.sh does it for QEMU and kvm_amd.  Environment:
# BOOT_TIMEOUT (seconds, default 2400), SMP (default 2), MEM (MiB, default
# 1024), QUIET=1 (show nothing while running), BOCHS_LOG (a file to keep
# Bochs' own log in; by default it is thrown away).
#
# Bochs boots from a disk only: the kernel and the initramfs go on a FAT16
# image that syslinux boots.  Bochs does not stop when the guest reboots or
# panics, so the serial log is watched and Bochs is ended once it shows
# @@DONE or a kernel panic.
#
# The command line works around Bochs' CPU model: clearcpuid=xsavec,xsaves
# (its compacted XSAVE size is wrong, fpstate_reset panics), ht (topology
# warning), clocksource=hpet (its TSC ticks at "ips", not at the frequency
# CPUID claims; tsc_early_khz tells the kernel the real rate, so that printk
# times agree with the HPET's).  kunit.enable=0: a kernel built with KUnit
# does not run its boot-time suites here.
#
# Packages: bochs bochs-term bochsbios vgabios syslinux mtools dosfstools.
# Exit status: 0 when the guest reached @@DONE, 124 on timeout, otherwise
# non-zero.
set -uo pipefail
LOG_TAG=boot-bochs
. "$(dirname "$0")/lib.sh"

[ $# -ge 3 ] || die "usage: $0 BZIMAGE INITRD LOG [CMDLINE...]"
kernel=$1 initrd=$2 logf=$3
shift 3
[ -f "$kernel" ] || die "no kernel image $kernel"
[ -f "$initrd" ] || die "no initramfs $initrd"
for t in bochs syslinux mkfs.fat mcopy; do
	command -v "$t" > /dev/null ||
		die "$t not found (apt-get install bochs bochs-term bochsbios vgabios syslinux mtools dosfstools)"
done

smp=${SMP:-2}
mem=${MEM:-1024}
timeout_s=${BOOT_TIMEOUT:-2400}
# Emulated instructions per second of each CPU; the TSC ticks at this rate.
ips=50000000
cmdline="console=ttyS0,115200 panic=-1 loglevel=5 nokaslr mitigations=off tsc=reliable no_timer_check clearcpuid=xsavec,xsaves,ht clocksource=hpet tsc_early_khz=$((ips / 1000)) kvm.force_emulation_prefix=1 kunit.enable=0 $*"

w=$(mktemp -d)
bochs_pid=
cleanup() {
	if [ -n "$bochs_pid" ] && kill -0 "$bochs_pid" 2> /dev/null; then
		kill -KILL "$bochs_pid" 2> /dev/null
		wait "$bochs_pid" 2> /dev/null
	fi
	if [ -n "${BOCHS_LOG:-}" ] && [ -f "$w/bochs.log" ]; then
		cp "$w/bochs.log" "$BOCHS_LOG"
	fi
	rm -rf "$w"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Bochs' UART sends at the emulated 115200 baud, and the guest's final
# "reboot -f" resets the machine before the tty has sent its last few KiB:
# the end of the dmesg dump and @@DONE.  So the guest /init gets a reboot
# that waits first: an archive appended to the initramfs replaces its
# run.conf (which /init sources) with the same settings plus a reboot
# function.  Nothing else in the initramfs changes.
boot_initrd=$initrd
if conf=$(gzip -dc "$initrd" 2> /dev/null |
	  cpio -i --quiet --to-stdout '*etc/kvm-msr/run.conf' 2> /dev/null) && [ -n "$conf" ]; then
	mkdir -p "$w/overlay/etc/kvm-msr"
	{
		printf '%s\n' "$conf"
		printf '\n# boot-bochs.sh: let the serial console drain before the reset.\n'
		printf 'reboot() { sleep 2; busybox reboot "$@"; }\n'
	} > "$w/overlay/etc/kvm-msr/run.conf"
	(cd "$w/overlay" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$w/overlay.gz" &&
		cat "$initrd" "$w/overlay.gz" > "$w/initrd.gz" ||
		die "cannot extend the initramfs"
	boot_initrd=$w/initrd.gz
else
	log "warning: no /etc/kvm-msr/run.conf in $initrd: the end of the console may be lost at reboot"
fi

# The boot disk: an unpartitioned FAT16 image with syslinux in its boot
# sector, sized for the two files and a whole number of 16x63 cylinders.
printf 'DEFAULT linux\nPROMPT 0\nTIMEOUT 0\nLABEL linux\n  KERNEL vmlinuz\n  INITRD initrd.gz\n  APPEND %s\n' \
	"$cmdline" > "$w/syslinux.cfg"
cyl_bytes=$((16 * 63 * 512))
need=$(($(stat -c %s "$kernel") + $(stat -c %s "$boot_initrd") + 16 * 1024 * 1024))
[ "$need" -ge $((32 * 1024 * 1024)) ] || need=$((32 * 1024 * 1024))
cyls=$(((need + cyl_bytes - 1) / cyl_bytes))
img=$w/boot.img
truncate -s $((cyls * cyl_bytes)) "$img" &&
	mkfs.fat -F 16 -n KVMMSR "$img" > /dev/null &&
	syslinux --install "$img" &&
	mcopy -i "$img" "$w/syslinux.cfg" ::/syslinux.cfg &&
	mcopy -i "$img" "$kernel" ::/vmlinuz &&
	mcopy -i "$img" "$boot_initrd" ::/initrd.gz ||
	die "cannot make the boot image"

ignore_cpus=
for ((i = 0; i < smp; i++)); do
	ignore_cpus+=", cpu$i=ignore"
done
cat > "$w/bochsrc" <<EOF
cpu: model=corei7_skylake_x, count=$smp, ips=$ips, reset_on_triple_fault=0, ignore_bad_msrs=1
memory: guest=$mem, host=$mem
clock: sync=none, time0=local
romimage: file=/usr/share/bochs/BIOS-bochs-latest, options=fastboot
vgaromimage: file=/usr/share/vgabios/vgabios.bin
pci: enabled=1, chipset=i440fx
display_library: term
boot: disk
ata0: enabled=1, ioaddr1=0x1f0, ioaddr2=0x3f0, irq=14
ata0-master: type=disk, path="$img", mode=flat, cylinders=$cyls, heads=16, spt=63
com1: enabled=1, mode=file, dev="$w/serial"
port_e9_hack: enabled=1
log: $w/bochs.log
panic: action=fatal
error: action=report$ignore_cpus
info: action=ignore
debug: action=ignore
EOF
# Without a debugger command Bochs waits at its debugger prompt.
echo c > "$w/cont.rc"
: > "$w/serial"
: > "$logf" || die "cannot write $logf"

log "booting ($smp CPUs, $mem MiB): $cmdline"
# The term display needs a terminal type but never a terminal: its
# output goes to a scratch file, and it reads no keys from /dev/null.
TERM=vt100 bochs -q -unlock -f "$w/bochsrc" -rc "$w/cont.rc" < /dev/null > "$w/bochs.out" 2>&1 &
bochs_pid=$!

tail -c +1 -f --pid="$bochs_pid" "$w/serial" 2> /dev/null | tee "$logf" |
	if [ "${QUIET:-0}" = 1 ]; then cat > /dev/null; else
		grep --line-buffered -E '^@@(BOOT-OK|TEST-END|NOTE)|Kernel panic' | sed -u 's/^/  [guest] /' >&2
	fi &
show_pid=$!

rc=
deadline=$((SECONDS + timeout_s))
while :; do
	alive=0
	! kill -0 "$bochs_pid" 2> /dev/null || alive=1
	if grep -qE '^@@DONE' "$w/serial"; then
		rc=0
	elif grep -q 'Kernel panic' "$w/serial"; then
		rc=1
	elif [ "$alive" = 0 ]; then
		# Bochs ended by itself (an emulator panic, ACPI power off)
		# without the guest finishing.
		wait "$bochs_pid"
		rc=$?
		[ "$rc" != 0 ] || rc=1
		bochs_pid=
		log "Bochs exited (status $rc) before the guest finished"
		[ -s "$w/bochs.log" ] && tail -n 5 "$w/bochs.log" | sed 's/^/  [bochs] /' >&2
	elif [ "$SECONDS" -ge "$deadline" ]; then
		rc=124
		log "timed out after ${timeout_s}s"
	fi
	[ -z "$rc" ] || break
	sleep 1
done

if [ -n "$bochs_pid" ]; then
	kill -TERM "$bochs_pid" 2> /dev/null
	for ((i = 0; i < 10; i++)); do
		kill -0 "$bochs_pid" 2> /dev/null || break
		sleep 0.5
	done
	kill -KILL "$bochs_pid" 2> /dev/null
	wait "$bochs_pid" 2> /dev/null
	bochs_pid=
fi
wait "$show_pid"
# tail may stop before its last read: LOG gets the whole console.  The
# missing end is appended, not the file rewritten, so that a reader
# following LOG (guest.sh's LIVE=1) sees each line once.
have=$(stat -c %s "$logf" 2> /dev/null || echo 0)
if [ "$(stat -c %s "$w/serial")" -gt "$have" ] &&
	cmp -s -n "$have" "$w/serial" "$logf"; then
	tail -c +$((have + 1)) "$w/serial" >> "$logf"
elif ! cmp -s "$w/serial" "$logf"; then
	cp "$w/serial" "$logf"
fi
exit "$rc"
