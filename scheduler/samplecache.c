/* samplecache: the last dirty-rate sample of each instance (samplecache.h). */
#include "samplecache.h"

#include <stdlib.h>
#include <string.h>

typedef struct slot {
    char instance[40]; /* "" = free */
    samplecache_entry e;
} slot;

struct samplecache {
    slot slots[SAMPLECACHE_MAX];
};

void samplecache_put(samplecache **c, const char *instance, const samplecache_entry *e)
{
    if (!*c)
        *c = xcalloc(1, sizeof(**c));
    slot *use = NULL, *oldest = NULL, *free_slot = NULL;
    for (size_t i = 0; i < SAMPLECACHE_MAX; i++) {
        slot *s = &(*c)->slots[i];
        if (!s->instance[0]) {
            if (!free_slot)
                free_slot = s;
            continue;
        }
        if (strcmp(s->instance, instance) == 0) {
            use = s;
            break;
        }
        if (!oldest || s->e.at_ms < oldest->e.at_ms)
            oldest = s;
    }
    if (!use)
        use = free_slot ? free_slot : oldest;
    strlcpy_f(use->instance, instance, sizeof(use->instance));
    use->e = *e;
}

int samplecache_get(const samplecache *c, const char *instance, int64_t now_ms, int64_t max_age_ms,
                    samplecache_entry *out)
{
    if (!c || !instance[0])
        return -1;
    for (size_t i = 0; i < SAMPLECACHE_MAX; i++) {
        const slot *s = &c->slots[i];
        if (strcmp(s->instance, instance) != 0)
            continue;
        if (now_ms - s->e.at_ms > max_age_ms || now_ms < s->e.at_ms)
            return -1;
        *out = s->e;
        return 0;
    }
    return -1;
}

void samplecache_free(samplecache *c)
{
    free(c);
}
