#include "orchset.h"

#include <stdlib.h>

#include "util.h"

typedef struct entry {
    struct entry *next;  /* in live or retired */
    struct entry *hnext; /* in its bucket (live only) */
    int64_t id;
    void *obj;
} entry;

struct orchset {
    struct event_base *base;
    orchset_free_fn free_fn;
    entry *live;     /* driven */
    entry **buckets; /* the live ones by id (a replica may drive thousands: found in O(1)) */
    size_t nbuckets; /* a power of two */
    size_t n;        /* live ones */
    entry *retired;  /* given up, freed by `reaper` on the next loop turn */
    struct event *reaper;
};

static size_t bucket_of(const orchset *set, int64_t id)
{
    uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ULL; /* Fibonacci hashing */
    return (size_t)(h >> 32) & (set->nbuckets - 1);
}

/* Doubles the buckets when they hold more than one entry each on average. */
static void grow(orchset *set)
{
    if (set->n <= set->nbuckets)
        return;
    size_t nb = set->nbuckets * 2;
    entry **b = xcalloc(nb, sizeof(*b));
    for (size_t i = 0; i < set->nbuckets; i++)
        while (set->buckets[i]) {
            entry *e = set->buckets[i];
            set->buckets[i] = e->hnext;
            uint64_t h = (uint64_t)e->id * 0x9E3779B97F4A7C15ULL;
            size_t k = (size_t)(h >> 32) & (nb - 1);
            e->hnext = b[k];
            b[k] = e;
        }
    free(set->buckets);
    set->buckets = b;
    set->nbuckets = nb;
}

static void reap(evutil_socket_t fd, short what, void *arg);

orchset *orchset_new(struct event_base *base, orchset_free_fn free_fn)
{
    orchset *set = xcalloc(1, sizeof(*set));
    set->base = base;
    set->free_fn = free_fn;
    set->reaper = event_new(base, -1, 0, reap, set);
    set->nbuckets = 64;
    set->buckets = xcalloc(set->nbuckets, sizeof(*set->buckets));
    return set;
}

/* frees what was given up (on the loop, outside every callback of those objects) */
static void reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    orchset *set = arg;
    while (set->retired) {
        entry *e = set->retired;
        set->retired = e->next;
        set->free_fn(e->obj);
        free(e);
    }
}

void orchset_free(orchset *set)
{
    if (!set)
        return;
    event_free(set->reaper);
    reap(-1, 0, set);
    while (set->live) {
        entry *e = set->live;
        set->live = e->next;
        set->free_fn(e->obj);
        free(e);
    }
    free(set->buckets);
    free(set);
}

void orchset_add(orchset *set, int64_t id, void *obj)
{
    entry *e = xcalloc(1, sizeof(*e));
    e->id = id;
    e->obj = obj;
    e->next = set->live;
    set->live = e;
    size_t k = bucket_of(set, id);
    e->hnext = set->buckets[k];
    set->buckets[k] = e;
    set->n++;
    grow(set);
}

void *orchset_find(const orchset *set, int64_t id)
{
    for (entry *e = set->buckets[bucket_of(set, id)]; e; e = e->hnext)
        if (e->id == id)
            return e->obj;
    return NULL;
}

int orchset_count(const orchset *set)
{
    return (int)set->n;
}

int64_t *orchset_ids(const orchset *set, int *n)
{
    *n = orchset_count(set);
    if (*n == 0)
        return NULL;
    int64_t *ids = xcalloc((size_t)*n, sizeof(*ids));
    int i = 0;
    for (entry *e = set->live; e; e = e->next)
        ids[i++] = e->id;
    return ids;
}

void orchset_retire(orchset *set, void *obj)
{
    /* out of the set at once: a second retire (a reply and the tick in one loop pass) finds
     * nothing to do, and no later callback finds the object */
    for (entry **pp = &set->live; *pp; pp = &(*pp)->next)
        if ((*pp)->obj == obj) {
            entry *e = *pp;
            *pp = e->next;
            for (entry **hp = &set->buckets[bucket_of(set, e->id)]; *hp; hp = &(*hp)->hnext)
                if (*hp == e) {
                    *hp = e->hnext;
                    break;
                }
            set->n--;
            e->next = set->retired;
            set->retired = e;
            event_active(set->reaper, EV_TIMEOUT, 1);
            return;
        }
}
