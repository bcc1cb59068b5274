/* measure: a guest's memory and dirty rate for a forecast (see measure.h). */
#include "measure.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "lv.h"
#include "rpcin.h"

/* The last dirty-rate sample libvirt has of dom: its status, start time, rate and mode.
 * Returns 0, or -1 when libvirt gives no record. */
static int read_sample(virDomainPtr dom, int *status, long long *start, long long *mib_s, char *mode, size_t modesz)
{
    virDomainPtr doms[2] = {dom, NULL};
    virDomainStatsRecordPtr *recs = NULL;
    if (virDomainListGetStats(doms, VIR_DOMAIN_STATS_DIRTYRATE, &recs, 0) < 1 || !recs || !recs[0]) {
        virDomainStatsRecordListFree(recs);
        return -1;
    }
    *status = -1;
    *start = -1;
    *mib_s = -1;
    mode[0] = '\0';
    for (int i = 0; i < recs[0]->nparams; i++) {
        virTypedParameterPtr p = &recs[0]->params[i];
        if (strcmp(p->field, "dirtyrate.calc_status") == 0 && p->type == VIR_TYPED_PARAM_INT)
            *status = p->value.i;
        else if (strcmp(p->field, "dirtyrate.calc_start_time") == 0 && p->type == VIR_TYPED_PARAM_LLONG)
            *start = p->value.l;
        else if (strcmp(p->field, "dirtyrate.megabytes_per_second") == 0 && p->type == VIR_TYPED_PARAM_LLONG)
            *mib_s = p->value.l;
        else if (strcmp(p->field, "dirtyrate.calc_mode") == 0 && p->type == VIR_TYPED_PARAM_STRING)
            snprintf(mode, modesz, "%s", p->value.s);
    }
    virDomainStatsRecordListFree(recs);
    return 0;
}

/* How much of a guest's memory is not zero pages, the pages a migration's first pass sends
 * (QEMU sends a zero page as a flag, not its 4 KiB): MEASURE_CHUNKS chunks of 64 KiB (the
 * largest virDomainMemoryPeek reads) at random page-aligned guest-physical addresses below
 * min(memory, 2 GiB) — RAM there is one range on x86's pc and q35 machines; above, the split
 * depends on the machine type, so a larger guest is judged by its first 2 GiB — and each 4 KiB
 * page counted zero or not. Nothing read leaves this function. Returns the estimate in bytes,
 * or -1 when libvirt cannot read the memory (the forecast then counts all of it). */
#define MEASURE_CHUNKS 64
#define MEASURE_CHUNK (64 * 1024)
static int64_t nonzero_bytes(rpcmig_call *c, virDomainPtr dom, unsigned long long mem_bytes)
{
    unsigned long long span = mem_bytes < (2ULL << 30) ? mem_bytes : (2ULL << 30);
    if (span < MEASURE_CHUNK)
        return -1;
    unsigned long long slots = span / MEASURE_CHUNK;
    static _Thread_local unsigned long long x;
    if (!x)
        x = (unsigned long long)mono_ms() * 2654435761ULL + 88172645463325252ULL;
    unsigned char *buf = xmalloc(MEASURE_CHUNK);
    int pages = 0, nonzero = 0;
    int64_t t0 = mono_ms();
    for (int i = 0; i < MEASURE_CHUNKS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned long long at = (x % slots) * MEASURE_CHUNK;
        if (virDomainMemoryPeek(dom, at, MEASURE_CHUNK, buf, VIR_MEMORY_PHYSICAL) < 0) {
            log_warn(&c->lf, "cannot read %s's memory to count its zero pages: %s (the forecast counts all of it)",
                     virDomainGetName(dom), lv_errmsg());
            free(buf);
            return -1;
        }
        for (size_t pg = 0; pg < MEASURE_CHUNK; pg += 4096) {
            const unsigned long long *w = (const unsigned long long *)(buf + pg);
            size_t k = 0;
            while (k < 4096 / sizeof(*w) && w[k] == 0)
                k++;
            pages++;
            nonzero += k < 4096 / sizeof(*w);
        }
    }
    free(buf);
    int64_t est = (int64_t)((double)mem_bytes * nonzero / pages);
    log_info(&c->lf, "memory of %s: %d of %d sampled pages not zero (%lld MiB of %llu estimated), read in %lld ms",
             virDomainGetName(dom), nonzero, pages, (long long)(est >> 20), mem_bytes >> 20,
             (long long)(mono_ms() - t0));
    return est;
}

static int measure_dom(rpcmig_call *c, virDomainPtr dom, int secs, json_object *out, char **err, rpc_code *code)
{
    int st = 0, reason = 0;
    if (virDomainGetState(dom, &st, &reason, 0) < 0 || st != VIR_DOMAIN_RUNNING) {
        *err = xasprintf("domain %s is not running on %s: there is no dirty rate to measure", virDomainGetName(dom),
                         c->a->host);
        *code = RPC_CONFLICT;
        return -1;
    }
    virDomainInfo info;
    if (virDomainGetInfo(dom, &info) < 0) {
        *err = xasprintf("cannot read domain %s's memory: %s", virDomainGetName(dom), lv_errmsg());
        *code = RPC_LIBVIRT;
        return -1;
    }
    int64_t t0 = mono_ms();
    if (virDomainStartDirtyRateCalc(dom, secs, 0) < 0) {
        _cleanup_free_ char *why = xstrdup(lv_errmsg());
        *err = xasprintf("cannot sample the dirty rate of %s: %s", virDomainGetName(dom), why);
        *code = RPC_LIBVIRT;
        return -1;
    }
    /* while QEMU samples the dirty rate: how much of the memory is not zero */
    int64_t nz = nonzero_bytes(c, dom, (unsigned long long)info.memory * 1024);
    /* the sample is ours once its period has passed and libvirt says measured */
    int status = -1;
    long long start = -1, mib_s = -1;
    char mode[32] = "";
    for (;;) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
        int64_t waited = mono_ms() - t0;
        if (waited >= (int64_t)secs * 1000 && read_sample(dom, &status, &start, &mib_s, mode, sizeof(mode)) == 0 &&
            status == VIR_DOMAIN_DIRTYRATE_MEASURED && mib_s >= 0)
            break;
        if (waited > (int64_t)secs * 1000 + 5000) {
            *err = xasprintf("the dirty-rate sample of %s did not finish within %d s (status %d)",
                             virDomainGetName(dom), secs + 5, status);
            *code = RPC_LIBVIRT;
            return -1;
        }
    }
    json_object_object_add(out, "dirty_rate_mib_s", json_object_new_int64(mib_s));
    json_object_object_add(out, "memory_mib", json_object_new_int64((int64_t)(info.memory / 1024)));
    if (nz >= 0) /* at least 1 MiB: a rounding to 0 would read as "unknown" */
        json_object_object_add(out, "nonzero_mib", json_object_new_int64(nz >> 20 ? nz >> 20 : 1));
    json_object_object_add(out, "seconds", json_object_new_int(secs));
    json_object_object_add(out, "mode", json_object_new_string(mode[0] ? mode : "unknown"));
    log_info(&c->lf, "dirty rate of %s: %lld MiB/s (%s, %d s), memory %llu MiB", virDomainGetName(dom), mib_s,
             mode[0] ? mode : "unknown", secs, (unsigned long long)(info.memory / 1024));
    return 0;
}

int measure_dirty_rate(rpcmig_call *c, json_object *out, char **err, rpc_code *code)
{
    const char *inst = NULL;
    int secs = 1;
    if (rpcin_dirty_rate(c->body, &inst, &secs, err) < 0) {
        *code = RPC_INVALID;
        return -1;
    }
    c->instance = inst;
    c->lf.instance = inst;
    const char *why = NULL;
    virConnectPtr conn = lv_ref(c->a->lv, &why);
    if (!conn) {
        *err = xasprintf("not connected to libvirtd: %s", why ? why : "unknown");
        *code = RPC_UNAVAILABLE;
        return -1;
    }
    int rc = -1;
    virDomainPtr dom = virDomainLookupByUUIDString(conn, inst);
    if (!dom) {
        virErrorPtr e = virGetLastError();
        int missing = e && e->code == VIR_ERR_NO_DOMAIN;
        *err = missing ? xasprintf("no domain %s on %s", inst, c->a->host)
                       : xasprintf("cannot look up domain %s: %s", inst, lv_errmsg());
        *code = missing ? RPC_NOT_FOUND : RPC_LIBVIRT;
    } else {
        rc = measure_dom(c, dom, secs, out, err, code);
        virDomainFree(dom);
    }
    virConnectClose(conn);
    return rc;
}
