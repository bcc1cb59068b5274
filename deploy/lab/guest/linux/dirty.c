/* dirty: the lab Linux guest's memory dirtier.  dirty MIB [RATE]
 * Writes one 64-bit word to every 4 KiB page of a MIB MiB buffer, over and over, with
 * a value that changes on every pass, so each page is dirtied and its content really
 * changes (like the tiny guest's dirty=/rate=). RATE MiB/s: a budget of RATE*256 pages
 * a second is given out every 10 ms (remainder carried, at most 2 ticks saved up);
 * RATE 0 or absent = as fast as it can (one guest CPU). MIB is cut down to what
 * /proc/meminfo calls MemAvailable minus 16 MiB, with a line saying so.
 * Once a second it rewrites /run/ferry-dirtied with the MiB dirtied since it started;
 * the heartbeat in /init prints it. Built with gcc -static by build.sh. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define TICK_NS 10000000L /* 10 ms */

static long mem_available_mib(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[128];
    long kib = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib < 0 ? -1 : kib / 1024;
}

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dirty MIB [RATE_MIB_PER_S]\n");
        return 2;
    }
    long mib = strtol(argv[1], NULL, 10), rate = argc > 2 ? strtol(argv[2], NULL, 10) : 0;
    if (mib <= 0)
        return 0;
    if (rate < 0)
        rate = 0;
    long avail = mem_available_mib();
    if (avail >= 0 && mib > avail - 16) {
        long cut = avail - 16 > 0 ? avail - 16 : 0;
        printf("ferry-guest: dirty=%ld clamped to %ld MiB (MemAvailable %ld MiB, 16 MiB margin)\n", mib, cut, avail);
        mib = cut;
        if (mib == 0)
            return 0;
    }
    size_t pages = (size_t)mib * (1024 * 1024 / PAGE);
    volatile uint64_t *buf = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) {
        perror("dirty: mmap");
        return 1;
    }
    printf("ferry-guest: dirty=%ld MiB rate=", mib);
    if (rate)
        printf("%ld MiB/s\n", rate);
    else
        printf("max\n");
    fflush(stdout);

    int stat = open("/run/ferry-dirtied", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    uint64_t pass = 1, done = 0;               /* pages written since start */
    size_t next = 0;                           /* next page to write */
    const int64_t per_tick = rate * 256 * 100; /* pages per tick, times 10000 */
    int64_t budget = 0;                        /* pages, times 10000 */
    int64_t t = now_ns(), report = t + 1000000000;
    struct timespec ts;

    for (;;) {
        size_t n;
        if (rate) {
            budget += per_tick;
            if (budget > 2 * per_tick)
                budget = 2 * per_tick;
            n = (size_t)(budget / 10000);
            budget -= (int64_t)n * 10000;
        } else {
            n = pages;
        }
        for (size_t i = 0; i < n; i++) {
            buf[next * (PAGE / sizeof *buf)] = pass * 0x9e3779b97f4a7c15ull + next;
            if (++next == pages) {
                next = 0;
                pass++;
            }
        }
        done += n;
        int64_t now = now_ns();
        if (now >= report) {
            char s[32];
            int len = snprintf(s, sizeof s, "%llu\n", (unsigned long long)(done / 256));
            if (stat >= 0 && pwrite(stat, s, (size_t)len, 0) == len)
                (void)ftruncate(stat, len);
            report = now + 1000000000;
        }
        if (rate) {
            t += TICK_NS;
            if (t < now - 2 * TICK_NS) /* far behind (e.g. the VM was paused): resync */
                t = now;
            ts.tv_sec = t / 1000000000;
            ts.tv_nsec = t % 1000000000;
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
        }
    }
}
