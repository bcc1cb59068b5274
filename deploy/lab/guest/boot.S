/* ferry-guest: multiboot (v1) entry, GDT, and interrupt stubs (GNU as, 32-bit). */

#define MB_MAGIC 0x1BADB002
#define MB_FLAGS 0x00000003          /* bit 0: page-align modules, bit 1: memory info */

#define KCODE 0x08
#define KDATA 0x10

/* The header must lie in the first 8 KiB of the file, 4-byte aligned: the linker
 * script puts .multiboot first. */
        .section .multiboot, "a"
        .balign 4
        .long   MB_MAGIC
        .long   MB_FLAGS
        .long   -(MB_MAGIC + MB_FLAGS)

        .text
        .globl  _start
        .type   _start, @function
_start:
        /* Multiboot: protected mode, paging off, IF=0, eax=magic, ebx=&mbi. */
        cli
        cld
        mov     %eax, %edx
        mov     %ebx, %esi
        /* Zero .bss (it also holds the stack, which is not in use yet). */
        mov     $__bss_start, %edi
        mov     $__bss_end, %ecx
        sub     %edi, %ecx
        xor     %eax, %eax
        rep stosb
        mov     $stack_top, %esp
        /* Our own flat GDT; reload every segment register. */
        lgdt    gdt_desc
        ljmp    $KCODE, $1f
1:      mov     $KDATA, %ax
        mov     %ax, %ds
        mov     %ax, %es
        mov     %ax, %fs
        mov     %ax, %gs
        mov     %ax, %ss
        push    %esi                    /* kmain(magic, mbi) */
        push    %edx
        call    kmain
2:      cli
        hlt
        jmp     2b
        .size   _start, . - _start

/* Interrupt stubs, one every 16 bytes starting at isr_stubs (vector n at
 * isr_stubs + 16 * n), for vectors 0..47. Each leaves the same frame: an error
 * code (0 when the CPU pushes none) and the vector number. */
        .macro  ISR_NOERR n
        .balign 16
        push    $0
        push    $\n
        jmp     isr_common
        .endm
        .macro  ISR_ERR n
        .balign 16
        push    $\n
        jmp     isr_common
        .endm

        .balign 16
        .globl  isr_stubs
isr_stubs:
        ISR_NOERR 0
        ISR_NOERR 1
        ISR_NOERR 2
        ISR_NOERR 3
        ISR_NOERR 4
        ISR_NOERR 5
        ISR_NOERR 6
        ISR_NOERR 7
        ISR_ERR   8
        ISR_NOERR 9
        ISR_ERR   10
        ISR_ERR   11
        ISR_ERR   12
        ISR_ERR   13
        ISR_ERR   14
        ISR_NOERR 15
        ISR_NOERR 16
        ISR_ERR   17
        ISR_NOERR 18
        ISR_NOERR 19
        ISR_NOERR 20
        ISR_ERR   21
        ISR_NOERR 22
        ISR_NOERR 23
        ISR_NOERR 24
        ISR_NOERR 25
        ISR_NOERR 26
        ISR_NOERR 27
        ISR_NOERR 28
        ISR_ERR   29
        ISR_ERR   30
        ISR_NOERR 31
        .irp    n, 32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47
        ISR_NOERR \n
        .endr

isr_common:
        pusha
        cld
        push    %esp                    /* struct isr_frame * */
        call    isr_dispatch
        add     $4, %esp
        popa
        add     $8, %esp                /* vector + error code */
        iret

        .data
        .balign 8
gdt:
        .quad   0x0000000000000000      /* null */
        .quad   0x00CF9A000000FFFF      /* 0x08: code, base 0, limit 4 GiB, ring 0 */
        .quad   0x00CF92000000FFFF      /* 0x10: data, base 0, limit 4 GiB, ring 0 */
gdt_desc:
        .word   gdt_desc - gdt - 1
        .long   gdt

        .bss
        .balign 16
        .skip   16384
stack_top:

        .section .note.GNU-stack, "", @progbits
