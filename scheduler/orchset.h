/* orchset: the migrations one scheduler replica drives, by id, and their release.
 *
 * The orchestration gives a migration up (it finished, lost its lease, or a transition lost)
 * from inside a callback of that very migration: a reply, a resend, the tick. Its object is
 * never freed there but after that callback (docs/CONVENTIONS.md "Shape": schedule it), and
 * only once however many of its callbacks give it up in one loop pass (issue 13: a reply and an
 * overdue tick both did, and it was freed twice). */
#ifndef FERRY_ORCHSET_H
#define FERRY_ORCHSET_H

#include <stdint.h>

#include <event2/event.h>

typedef struct orchset orchset;
/* Frees one object of the set (called by the set, on the loop). */
typedef void (*orchset_free_fn)(void *obj);

/* Creates an empty set bound to base (borrowed; must outlive it); free_fn frees its objects.
 * Caller frees with orchset_free. */
orchset *orchset_new(struct event_base *base, orchset_free_fn free_fn);
/* Frees the set and every object still in it or waiting to be freed; NULL is accepted. */
void orchset_free(orchset *set);
/* Adds obj (taken) under id. */
void orchset_add(orchset *set, int64_t id, void *obj);
/* Returns the object driven under id (borrowed), or NULL. */
void *orchset_find(const orchset *set, int64_t id);
/* Returns how many objects the set drives now. */
int orchset_count(const orchset *set);
/* Returns the ids the set drives now as a new array of *n elements (caller frees; NULL when
 * *n is 0): a snapshot to walk while callbacks give objects up. */
int64_t *orchset_ids(const orchset *set, int *n);
/* Gives obj up: it leaves the set at once (orchset_find no longer returns it) and is freed
 * with free_fn after the current callback, exactly once; retiring it again, or an object
 * not in the set, does nothing. */
void orchset_retire(orchset *set, void *obj);

#endif
