/*
 * ferry-guest: a tiny multiboot kernel for the ferry lab.
 *
 * Prints a boot line and then one heartbeat line per guest second on COM1, and
 * either halts between timer ticks (idle) or keeps rewriting N MiB of memory
 * (dirty=N, optionally held to rate=R MiB/s). The heartbeat counter lives in guest
 * memory: if it keeps counting in the console log after a live migration, the
 * guest moved alive with its memory. See README.md for the command line and the
 * console format.
 *
 * No paging: flat 4 GiB segments, physical addresses used directly.
 */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;

#define MB_BOOT_MAGIC 0x2BADB002u
#define MB_INFO_MEM (1u << 0)
#define MB_INFO_CMDLINE (1u << 2)

#define COM1 0x3F8
#define PIC1_CMD 0x20
#define PIC1_DATA 0x21
#define PIC2_CMD 0xA0
#define PIC2_DATA 0xA1
#define PIT_HZ 100
#define PIT_DIVISOR 11932 /* 1193182 Hz / 100, rounded */
#define IRQ_BASE 32       /* PIC vectors 32..47 */
#define NVECTORS 48
#define KCODE 0x08

#define DIRTY_BASE 0x400000u /* the dirty buffer starts at 4 MiB */
#define DIRTY_MARGIN_MIB 1   /* left untouched below the top of RAM (ACPI tables) */
#define PAGES_PER_MIB 256
#define NUM_MAX 1000000u /* numbers on the command line saturate here */

struct mb_info {
    u32 flags;
    u32 mem_lower;
    u32 mem_upper; /* KiB above 1 MiB */
    u32 boot_device;
    u32 cmdline;
};

/* Laid out by isr_common in boot.S: pusha, then the stub's pushes, then the CPU's. */
struct isr_frame {
    u32 edi, esi, ebp, esp, ebx, edx, ecx, eax;
    u32 vector, err;
    u32 eip, cs, eflags;
};

struct idt_entry {
    u16 off_lo;
    u16 sel;
    u8 zero;
    u8 type;
    u16 off_hi;
} __attribute__((packed));

struct idt_ptr {
    u16 limit;
    u32 base;
} __attribute__((packed));

void kmain(u32 magic, const struct mb_info *mbi);
void isr_dispatch(struct isr_frame *f);
extern char isr_stubs[];

static struct idt_entry idt[NVECTORS];
static volatile u32 ticks;

/* Configuration from the command line. */
static char cfg_name[64] = "-";
static u32 cfg_dirty_mib;
static u32 cfg_rate_mib; /* 0 = as fast as possible */
static char cfg_ignored[128];
static u32 cfg_ignored_len;

/* State reported by the heartbeat. */
static u32 hb_sent;
static u32 dirtied_mib;
static u32 dirtied_pages; /* pages into the current MiB, 0..255 */

static inline void outb(u16 port, u8 v)
{
    __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
    u8 v;
    __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
    return v;
}

/* ---- serial console: COM1, 115200 8N1, polled ---- */

static void serial_init(void)
{
    outb(COM1 + 1, 0x00); /* no UART interrupts */
    outb(COM1 + 3, 0x80); /* DLAB */
    outb(COM1 + 0, 0x01); /* divisor 1: 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03); /* 8N1 */
    outb(COM1 + 2, 0xC7); /* FIFO on, cleared */
    outb(COM1 + 4, 0x03); /* DTR, RTS; OUT2 off: no IRQ */
}

static char serial_last = '\n';

static void serial_putc(char c)
{
    serial_last = c;
    /* An absent UART reads 0xFF: bit 5 set, so this never hangs. */
    while (!(inb(COM1 + 5) & 0x20))
        ;
    outb(COM1, (u8)c);
}

static void serial_puts(const char *s)
{
    while (*s)
        serial_putc(*s++);
}

static void serial_putu(u32 v)
{
    char buf[11];
    int i = 0;

    do {
        buf[i++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (i)
        serial_putc(buf[--i]);
}

static void serial_putx(u32 v)
{
    int i;

    serial_puts("0x");
    for (i = 28; i >= 0; i -= 4)
        serial_putc("0123456789abcdef"[(v >> i) & 0xF]);
}

/* ---- interrupts ---- */

static void idt_init(void)
{
    struct idt_ptr p;
    u32 i;

    for (i = 0; i < NVECTORS; i++) {
        u32 addr = (u32)isr_stubs + 16 * i;
        idt[i].off_lo = (u16)addr;
        idt[i].sel = KCODE;
        idt[i].zero = 0;
        idt[i].type = 0x8E; /* present, ring 0, 32-bit interrupt gate */
        idt[i].off_hi = (u16)(addr >> 16);
    }
    /* Vectors past 47 are outside the limit: raising one is a #GP (13). */
    p.limit = sizeof(idt) - 1;
    p.base = (u32)idt;
    __asm__ volatile("lidt %0" : : "m"(p));
}

static void pic_init(void)
{
    outb(PIC1_CMD, 0x11); /* ICW1: init, ICW4 follows */
    outb(PIC2_CMD, 0x11);
    outb(PIC1_DATA, IRQ_BASE);     /* ICW2: IRQ 0..7 -> 32..39 */
    outb(PIC2_DATA, IRQ_BASE + 8); /* IRQ 8..15 -> 40..47 */
    outb(PIC1_DATA, 0x04);         /* ICW3: slave on IRQ2 */
    outb(PIC2_DATA, 0x02);
    outb(PIC1_DATA, 0x01); /* ICW4: 8086 mode */
    outb(PIC2_DATA, 0x01);
    outb(PIC1_DATA, 0xFE); /* only IRQ0 (PIT) */
    outb(PIC2_DATA, 0xFF);
}

static void pit_init(void)
{
    outb(0x43, 0x34); /* channel 0, lo/hi byte, mode 2 (rate generator) */
    outb(0x40, PIT_DIVISOR & 0xFF);
    outb(0x40, PIT_DIVISOR >> 8);
}

static u8 pic_isr(u16 cmd_port)
{
    outb(cmd_port, 0x0B); /* OCW3: read the in-service register */
    return inb(cmd_port);
}

void isr_dispatch(struct isr_frame *f)
{
    u32 v = f->vector;

    if (v == IRQ_BASE) {
        ticks++;
        outb(PIC1_CMD, 0x20);
        return;
    }
    if (v > IRQ_BASE) {
        /* Masked lines: only spurious IRQ 7 / 15 can show up here. */
        if (v == IRQ_BASE + 7 && !(pic_isr(PIC1_CMD) & 0x80))
            return;
        if (v == IRQ_BASE + 15 && !(pic_isr(PIC2_CMD) & 0x80)) {
            outb(PIC1_CMD, 0x20);
            return;
        }
        if (v >= IRQ_BASE + 8)
            outb(PIC2_CMD, 0x20);
        outb(PIC1_CMD, 0x20);
        return;
    }
    if (serial_last != '\n') /* interrupted mid-line */
        serial_putc('\n');
    serial_puts("ferry-guest: exception ");
    serial_putu(v);
    serial_puts(" err=");
    serial_putx(f->err);
    serial_puts(" eip=");
    serial_putx(f->eip);
    serial_puts("\n");
    for (;;)
        __asm__ volatile("cli; hlt");
}

/* ---- command line ---- */

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void cfg_ignore(const char *key, u32 len)
{
    static int full;

    if (len > 32)
        len = 32;
    if (full)
        return;
    if (cfg_ignored_len + len + 6 > sizeof(cfg_ignored)) { /* ",", key, ",...", NUL */
        const char *dots = ",...";
        while (*dots)
            cfg_ignored[cfg_ignored_len++] = *dots++;
        full = 1;
        return;
    }
    if (cfg_ignored_len)
        cfg_ignored[cfg_ignored_len++] = ',';
    while (len--) {
        char c = *key++;
        /* Keep the boot line one parseable line. */
        cfg_ignored[cfg_ignored_len++] = (c > ' ' && c < 127 && c != ',') ? c : '?';
    }
}

static int key_is(const char *key, u32 len, const char *want)
{
    u32 i;

    for (i = 0; i < len; i++)
        if (want[i] != key[i])
            return 0;
    return want[len] == '\0';
}

/* Decimal, saturating at NUM_MAX; 0 on success, -1 if empty or not a number. */
static int parse_u32(const char *s, u32 len, u32 *out)
{
    u32 v = 0, i;

    if (len == 0)
        return -1;
    for (i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (u32)(s[i] - '0');
        if (v > NUM_MAX)
            v = NUM_MAX;
    }
    *out = v;
    return 0;
}

static void cfg_parse(const char *p)
{
    int first = 1;

    while (*p) {
        const char *tok, *eq = 0;
        u32 len, klen, vlen;

        while (is_space(*p))
            p++;
        if (!*p)
            break;
        tok = p;
        while (*p && !is_space(*p)) {
            if (*p == '=' && !eq)
                eq = p;
            p++;
        }
        len = (u32)(p - tok);
        if (!eq) {
            /* Loaders (QEMU, GRUB) put the image path first: skip it. */
            if (!first)
                cfg_ignore(tok, len);
            first = 0;
            continue;
        }
        first = 0;
        klen = (u32)(eq - tok);
        vlen = len - klen - 1;
        if (key_is(tok, klen, "name")) {
            u32 i, n = vlen < sizeof(cfg_name) - 1 ? vlen : sizeof(cfg_name) - 1;
            for (i = 0; i < n; i++) {
                char c = eq[1 + i];
                cfg_name[i] = (c > ' ' && c < 127) ? c : '?';
            }
            cfg_name[n] = '\0';
        } else if (key_is(tok, klen, "dirty")) {
            if (parse_u32(eq + 1, vlen, &cfg_dirty_mib) < 0)
                cfg_ignore(tok, klen);
        } else if (key_is(tok, klen, "rate")) {
            if (parse_u32(eq + 1, vlen, &cfg_rate_mib) < 0)
                cfg_ignore(tok, klen);
        } else {
            cfg_ignore(tok, klen);
        }
    }
}

/* ---- main loop ---- */

static void heartbeat(u32 t)
{
    while (hb_sent < t / PIT_HZ) {
        hb_sent++;
        serial_puts("ferry-guest: hb ");
        serial_putu(hb_sent);
        serial_puts(" ticks=");
        serial_putu(t);
        serial_puts(" dirtied=");
        serial_putu(dirtied_mib);
        serial_puts("\n");
    }
}

/* Sleep until the next interrupt unless a tick came since `seen` (no lost wake-up:
 * sti takes effect after hlt has started). */
static void wait_tick(u32 seen)
{
    __asm__ volatile("cli");
    if (ticks == seen)
        __asm__ volatile("sti; hlt" : : : "memory");
    else
        __asm__ volatile("sti" : : : "memory");
}

static void run(void)
{
    volatile u32 *base = (volatile u32 *)DIRTY_BASE;
    u32 npages = cfg_dirty_mib * PAGES_PER_MIB;
    u32 per_sec = cfg_rate_mib * PAGES_PER_MIB; /* pages; <= 256e6 */
    u32 whole = per_sec / PIT_HZ, rem = per_sec % PIT_HZ;
    u32 cap = 2 * whole + 2; /* bank at most ~2 ticks: no catch-up bursts */
    u32 budget = 0, credit = 0, page = 0, pass = 1;
    u32 last = ticks;

    for (;;) {
        u32 t = ticks;

        if (t != last) {
            u32 elapsed = t - last;
            last = t;
            if (elapsed > PIT_HZ)
                elapsed = PIT_HZ;
            if (per_sec) {
                /* Pages per tick = per_sec / 100, remainder carried over. */
                budget += elapsed * whole;
                credit += elapsed * rem;
                budget += credit / PIT_HZ;
                credit %= PIT_HZ;
                if (budget > cap)
                    budget = cap;
            }
            heartbeat(t);
        }
        if (npages == 0 || (per_sec && budget == 0)) {
            wait_tick(last);
            continue;
        }
        /* One word per 4 KiB page: every page is dirtied, with content that
         * changes on every pass. */
        base[page * 1024] = pass;
        if (++page == npages) {
            page = 0;
            pass++;
        }
        if (per_sec)
            budget--;
        if (++dirtied_pages == PAGES_PER_MIB) {
            dirtied_pages = 0;
            dirtied_mib++;
        }
    }
}

void kmain(u32 magic, const struct mb_info *mbi)
{
    u32 mem_kib = 0, max_dirty = 0, asked = 0;

    serial_init();
    if (magic != MB_BOOT_MAGIC) {
        serial_puts("ferry-guest: not booted by a multiboot loader, no command line\n");
        mbi = 0;
    }
    if (mbi && (mbi->flags & MB_INFO_CMDLINE) && mbi->cmdline)
        cfg_parse((const char *)mbi->cmdline);
    if (mbi && (mbi->flags & MB_INFO_MEM)) {
        mem_kib = mbi->mem_upper + 1024; /* contiguous RAM from 0, in KiB */
        if (mem_kib / 1024 > DIRTY_BASE / 0x100000 + DIRTY_MARGIN_MIB)
            max_dirty = mem_kib / 1024 - DIRTY_BASE / 0x100000 - DIRTY_MARGIN_MIB;
    }
    if (cfg_dirty_mib > max_dirty) {
        asked = cfg_dirty_mib;
        cfg_dirty_mib = max_dirty;
    }

    idt_init();
    pic_init();
    pit_init();

    serial_puts("ferry-guest: boot name=");
    serial_puts(cfg_name);
    serial_puts(" mem=");
    serial_putu(mem_kib);
    serial_puts(" dirty=");
    serial_putu(cfg_dirty_mib);
    serial_puts(" rate=");
    if (cfg_rate_mib)
        serial_putu(cfg_rate_mib);
    else
        serial_puts("max");
    if (cfg_ignored_len) {
        serial_puts(" ignored=");
        serial_puts(cfg_ignored);
    }
    serial_puts("\n");
    if (asked) {
        serial_puts("ferry-guest: dirty=");
        serial_putu(asked);
        serial_puts(" clamped to ");
        serial_putu(cfg_dirty_mib);
        serial_puts(" MiB (mem=");
        serial_putu(mem_kib);
        serial_puts(" KiB, buffer at 4 MiB, 1 MiB margin)\n");
    }

    __asm__ volatile("sti");
    run();
}
