#include "orchset.h"

#include <stdlib.h>

#include "util.h"

typedef struct entry {
    struct entry *next;
    int64_t id;
    void *obj;
} entry;

struct orchset {
    struct event_base *base;
    orchset_free_fn free_fn;
    entry *live;    /* driven: found by id */
    entry *retired; /* given up, freed by `reaper` on the next loop turn */
    struct event *reaper;
};

static void reap(evutil_socket_t fd, short what, void *arg);

orchset *orchset_new(struct event_base *base, orchset_free_fn free_fn)
{
    orchset *set = xcalloc(1, sizeof(*set));
    set->base = base;
    set->free_fn = free_fn;
    set->reaper = event_new(base, -1, 0, reap, set);
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
    free(set);
}

void orchset_add(orchset *set, int64_t id, void *obj)
{
    entry *e = xcalloc(1, sizeof(*e));
    e->id = id;
    e->obj = obj;
    e->next = set->live;
    set->live = e;
}

void *orchset_find(const orchset *set, int64_t id)
{
    for (entry *e = set->live; e; e = e->next)
        if (e->id == id)
            return e->obj;
    return NULL;
}

int orchset_count(const orchset *set)
{
    int n = 0;
    for (entry *e = set->live; e; e = e->next)
        n++;
    return n;
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
            e->next = set->retired;
            set->retired = e;
            event_active(set->reaper, EV_TIMEOUT, 1);
            return;
        }
}
