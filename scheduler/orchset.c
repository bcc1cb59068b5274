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
    entry *live;
};

typedef struct later {
    orchset *set;
    void *obj;
} later;

orchset *orchset_new(struct event_base *base, orchset_free_fn free_fn)
{
    orchset *set = xcalloc(1, sizeof(*set));
    set->base = base;
    set->free_fn = free_fn;
    return set;
}

void orchset_free(orchset *set)
{
    if (!set)
        return;
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

static void free_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    later *l = arg;
    for (entry **pp = &l->set->live; *pp; pp = &(*pp)->next)
        if ((*pp)->obj == l->obj) {
            entry *e = *pp;
            *pp = e->next;
            free(e);
            break;
        }
    l->set->free_fn(l->obj);
    free(l);
}

void orchset_retire(orchset *set, void *obj)
{
    later *l = xcalloc(1, sizeof(*l));
    l->set = set;
    l->obj = obj;
    event_base_once(set->base, -1, EV_TIMEOUT, free_later, l, NULL);
}
