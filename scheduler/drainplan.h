/* drainplan: the plan of a host drain (issue #18; docs/DESIGN.md "Drain"): how many guests move
 * at a time, in which order, and in which mode each, so that the drain finishes earliest and, when
 * it has a deadline, by then. Pure: the figures come from the database (drain.c, drainop.c).
 *
 * The drain shares one link (its bandwidth budget, else the link the forecast assumes) among the
 * migrations running at once, k of them each at link / k. Each guest's duration at that
 * bandwidth is forecast (forecast.c) in the mode that slows it least and still ends: pre-copy,
 * else auto-converge, else post-copy where its host allows it. The guests are ordered longest
 * first and given to whichever of the k slots frees first (LPT list scheduling: the last to
 * finish is never far from the best possible); the predicted finish is the last slot's end.
 * k = 1..max is tried and the earliest finish taken (the smaller k on a tie): more at once hides
 * each migration's fixed costs (checks, the dirty-rate sample, the switch-over) behind the
 * others' transfers, fewer gives a dirtying guest the bandwidth it needs to converge. With a
 * deadline the plan does not meet, guests are moved to their fastest mode (post-copy, where
 * allowed), largest gain first, until it does or nothing is left to change. */
#ifndef FERRY_DRAINPLAN_H
#define FERRY_DRAINPLAN_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "forecast.h"

/* One guest of the drain. */
typedef struct drainplan_item {
    int64_t memory_mib;  /* its RAM */
    int64_t dirty_mib_s; /* its last sampled dirty rate; < 0 when never sampled (taken as 0) */
    int64_t nonzero_mib; /* of its RAM, what its last sample found not zero pages; 0: unknown (all) */
    bool postcopy_ok;    /* its host allows post-copy */
    /* the plan */
    forecast_mode mode;   /* how it moves */
    int64_t predicted_ms; /* its migration's forecast duration in that mode */
    int64_t start_ms;     /* when it starts, from now */
    int position;         /* 0-based: the order in which it is requested */
} drainplan_item;

/* What the plan starts from. */
typedef struct drainplan_in {
    const cfg_scheduler *cs; /* the forecast's fixed costs, QEMU's downtime limit */
    int64_t link_mib_s;      /* the bandwidth the drain shares (> 0) */
    int max_parallel;        /* k is tried from 1 to this (>= 1) */
    int64_t deadline_ms;     /* time left to the drain's deadline; 0 = none */
    const int64_t *busy_ms;  /* migrations of the drain already running: time each still needs */
    int n_busy;              /* (they hold slots: k is at least n_busy) */
} drainplan_in;

/* The plan. */
typedef struct drainplan_out {
    int parallel;        /* k chosen */
    int64_t per_mib_s;   /* each migration's share of the link */
    int64_t finish_ms;   /* predicted end of the last migration, from now */
    bool meets_deadline; /* with a deadline: finish_ms <= deadline_ms (true without one) */
    int upgraded;        /* guests moved to a faster mode for the deadline */
} drainplan_out;

/* Plans items[0..n) (n may be 0): fills each item's mode, predicted_ms, start_ms and position,
 * and *out. */
void drainplan_make(const drainplan_in *in, drainplan_item *items, size_t n, drainplan_out *out);

/* The plan in words, for the operator (newly allocated, caller frees). */
char *drainplan_describe(const drainplan_in *in, const drainplan_item *items, size_t n, const drainplan_out *out);

#endif
