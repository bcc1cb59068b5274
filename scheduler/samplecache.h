/* samplecache: the last dirty-rate sample of each instance that this scheduler replica's
 * migrations took (issue #18), so that a migration of an instance sampled a short while ago
 * ([scheduler] forecast_reuse_s) forecasts from that sample instead of waiting for a new one
 * (docs/DESIGN.md "Migration flow", step 3). In memory, one per replica, bounded; a restart or
 * another replica samples again. Pure: the caller passes the monotonic time. */
#ifndef FERRY_SAMPLECACHE_H
#define FERRY_SAMPLECACHE_H

#include <stdint.h>

#include "util.h"

/* How many instances the cache remembers; the oldest sample goes when a new one does not fit. */
#define SAMPLECACHE_MAX 1024

typedef struct samplecache samplecache;

/* One sample, as the source's agent answered dirty_rate. */
typedef struct samplecache_entry {
    int64_t migration;   /* the migration that took it */
    int64_t at_ms;       /* monotonic: when its answer came */
    int64_t dirty_mib_s; /* the dirty rate */
    int64_t nonzero_mib; /* the memory that is not zero pages (0: unknown) */
    char host[256];      /* the host it was taken on */
} samplecache_entry;

/* Remembers e (copied) as the latest sample of instance (copied; at most 39 bytes), replacing
 * an earlier one of it, or the oldest of another instance when full. *c is made on first use
 * (free it with samplecache_free). */
void samplecache_put(samplecache **c, const char *instance, const samplecache_entry *e);
/* Finds the latest sample of instance taken at most max_age_ms before now_ms (monotonic): 0
 * with *out set, or -1 when there is none that recent (c may be NULL). */
int samplecache_get(const samplecache *c, const char *instance, int64_t now_ms, int64_t max_age_ms,
                    samplecache_entry *out) FERRY_WUR;
/* Frees c; NULL is accepted. */
void samplecache_free(samplecache *c);

#endif
