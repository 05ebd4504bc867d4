/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The guest of msr_filter_qemu_test.sh: a Multiboot kernel that QEMU
 * starts with -kernel, in 32-bit protected mode.  It reads
 * MSR_CORE_THREAD_COUNT (0x35), which QEMU's MSR filter deflects to
 * QEMU's own handler, prints EAX as 8 hex digits and a newline on COM1,
 * waits for a byte on COM1 (the host reads the VM's debugfs files
 * meanwhile), and ends QEMU through isa-debug-exit (iobase 0xf4, exit
 * status 1).
 */
#define MB_MAGIC	0x1badb002
#define MSR_CORE_THREAD_COUNT	0x35
#define COM1		0x3f8
#define COM1_LSR	(COM1 + 5)
#define DEBUG_EXIT	0xf4

	.text
	.code32
	.globl	_start
	.balign	4
	/* Multiboot header, no flags: QEMU loads the ELF as it is. */
	.long	MB_MAGIC
	.long	0
	.long	-MB_MAGIC
_start:
	/* 32-bit code: ECX[63:32] is zero, as RDMSR under TCG needs. */
	mov	$MSR_CORE_THREAD_COUNT, %ecx
	rdmsr
	mov	%eax, %ebx
	mov	$8, %ecx
	mov	$COM1, %dx
1:	rol	$4, %ebx
	mov	%bl, %al
	and	$0xf, %al
	add	$'0', %al
	cmp	$'9', %al
	jbe	2f
	add	$('a' - '9' - 1), %al
2:	out	%al, %dx
	loop	1b
	mov	$'\n', %al
	out	%al, %dx
	/* Wait for the host's byte: LSR bit 0, data ready. */
	mov	$COM1_LSR, %dx
3:	pause
	in	%dx, %al
	test	$1, %al
	jz	3b
	mov	$DEBUG_EXIT, %dx
	xor	%eax, %eax
	out	%eax, %dx
4:	cli
	hlt
	jmp	4b
	.section .note.GNU-stack, "", @progbits
