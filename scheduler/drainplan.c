/* drainplan: a host drain's plan (see drainplan.h for the model). */
#include "drainplan.h"

#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The forecast of item it moving in mode m at bw MiB/s. */
static forecast_out run(const cfg_scheduler *cs, const drainplan_item *it, int64_t bw, forecast_mode m)
{
    forecast_in in = forecast_in_for(cs, it->memory_mib, it->nonzero_mib, it->dirty_mib_s < 0 ? 0 : it->dirty_mib_s, bw,
                                     cs->max_downtime_ms, cs->postcopy_after_iterations);
    forecast_out o;
    forecast_run(&in, m, &o);
    return o;
}

/* The mode that slows the guest least and still ends (pre-copy, auto-converge, post-copy); when
 * none is forecast to end, auto-converge (its throttle only grows). */
static void cheapest(const cfg_scheduler *cs, drainplan_item *it, int64_t bw)
{
    for (int m = 0; m < FORECAST_MODES; m++) {
        if (m == FORECAST_POSTCOPY && !it->postcopy_ok)
            continue;
        forecast_out o = run(cs, it, bw, (forecast_mode)m);
        if (o.converges) {
            it->mode = (forecast_mode)m;
            it->predicted_ms = (int64_t)o.duration_ms;
            return;
        }
    }
    forecast_out o = run(cs, it, bw, FORECAST_AUTO_CONVERGE);
    it->mode = FORECAST_AUTO_CONVERGE;
    it->predicted_ms = (int64_t)o.duration_ms;
}

/* The allowed mode that ends soonest. */
static void fastest(const cfg_scheduler *cs, const drainplan_item *it, int64_t bw, forecast_mode *mode, int64_t *ms)
{
    *mode = it->mode;
    *ms = it->predicted_ms;
    for (int m = 0; m < FORECAST_MODES; m++) {
        if (m == FORECAST_POSTCOPY && !it->postcopy_ok)
            continue;
        forecast_out o = run(cs, it, bw, (forecast_mode)m);
        if (o.converges && (int64_t)o.duration_ms < *ms) {
            *mode = (forecast_mode)m;
            *ms = (int64_t)o.duration_ms;
        }
    }
}

/* longest first; then the larger guest; then the order given */
static int before(const drainplan_item *items, size_t a, size_t b)
{
    const drainplan_item *x = &items[a], *y = &items[b];
    if (x->predicted_ms != y->predicted_ms)
        return x->predicted_ms > y->predicted_ms;
    if (x->memory_mib != y->memory_mib)
        return x->memory_mib > y->memory_mib;
    return a < b;
}

/* LPT list scheduling of items on k slots (the drain's running migrations hold the first of
 * them): positions and starts filled; returns the finish. */
static int64_t schedule(const drainplan_in *in, drainplan_item *items, size_t n, int k, size_t *order)
{
    for (size_t i = 0; i < n; i++)
        order[i] = i;
    for (size_t i = 1; i < n; i++) /* insertion sort: a host's guests are few */
        for (size_t j = i; j > 0 && before(items, order[j], order[j - 1]); j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    int64_t *end = xcalloc((size_t)k, sizeof(*end));
    for (int b = 0; b < in->n_busy && b < k; b++)
        end[b] = in->busy_ms[b] > 0 ? in->busy_ms[b] : 0;
    for (size_t p = 0; p < n; p++) {
        int s = 0;
        for (int j = 1; j < k; j++)
            if (end[j] < end[s])
                s = j;
        drainplan_item *it = &items[order[p]];
        it->position = (int)p;
        it->start_ms = end[s];
        end[s] += it->predicted_ms;
    }
    int64_t finish = 0;
    for (int j = 0; j < k; j++)
        if (end[j] > finish)
            finish = end[j];
    free(end);
    return finish;
}

void drainplan_make(const drainplan_in *in, drainplan_item *items, size_t n, drainplan_out *out)
{
    memset(out, 0, sizeof(*out));
    int lo = in->n_busy > 1 ? in->n_busy : 1;
    int hi = in->max_parallel > lo ? in->max_parallel : lo;
    if ((size_t)hi > n + (size_t)in->n_busy)
        hi = (int)n + in->n_busy > lo ? (int)n + in->n_busy : lo;
    size_t *order = xcalloc(n + 1, sizeof(*order));
    int best = lo;
    int64_t best_finish = -1;
    for (int k = lo; k <= hi; k++) {
        int64_t bw = in->link_mib_s / k > 0 ? in->link_mib_s / k : 1;
        for (size_t i = 0; i < n; i++)
            cheapest(in->cs, &items[i], bw);
        int64_t f = schedule(in, items, n, k, order);
        if (best_finish < 0 || f < best_finish) {
            best_finish = f;
            best = k;
        }
    }
    out->parallel = best;
    out->per_mib_s = in->link_mib_s / best > 0 ? in->link_mib_s / best : 1;
    for (size_t i = 0; i < n; i++)
        cheapest(in->cs, &items[i], out->per_mib_s);
    out->finish_ms = schedule(in, items, n, best, order);
    /* a deadline the plan misses: the largest gain first, each guest to its fastest mode */
    while (in->deadline_ms > 0 && out->finish_ms > in->deadline_ms) {
        size_t pick = n;
        int64_t gain = 0, pick_ms = 0;
        forecast_mode pick_mode = FORECAST_PRECOPY;
        for (size_t i = 0; i < n; i++) {
            forecast_mode m;
            int64_t ms;
            fastest(in->cs, &items[i], out->per_mib_s, &m, &ms);
            if (items[i].predicted_ms - ms > gain) {
                gain = items[i].predicted_ms - ms;
                pick = i;
                pick_mode = m;
                pick_ms = ms;
            }
        }
        if (pick == n)
            break;
        items[pick].mode = pick_mode;
        items[pick].predicted_ms = pick_ms;
        out->upgraded++;
        out->finish_ms = schedule(in, items, n, best, order);
    }
    out->meets_deadline = in->deadline_ms <= 0 || out->finish_ms <= in->deadline_ms;
    free(order);
}

char *drainplan_describe(const drainplan_in *in, const drainplan_item *items, size_t n, const drainplan_out *out)
{
    int64_t mem = 0;
    int modes[FORECAST_MODES] = {0};
    for (size_t i = 0; i < n; i++) {
        mem += items[i].memory_mib;
        modes[items[i].mode]++;
    }
    _cleanup_free_ char *dl =
        in->deadline_ms <= 0 ? xstrdup("no deadline")
        : out->meets_deadline
            ? xasprintf("the deadline (%.0f s left) holds", (double)in->deadline_ms / 1000.0)
            : xasprintf("the deadline (%.0f s left) cannot hold even with every guest in its fastest mode",
                        (double)in->deadline_ms / 1000.0);
    _cleanup_free_ char *up =
        out->upgraded ? xasprintf(", %d moved to a faster mode for the deadline", out->upgraded) : xstrdup("");
    return xasprintf("%zu guest%s (%lld MiB) longest first, %d at a time at %lld MiB/s each of %lld MiB/s"
                     "%s; modes: %d pre-copy, %d auto-converge, %d post-copy%s; predicted finish in %.1f s; %s",
                     n, n == 1 ? "" : "s", (long long)mem, out->parallel, (long long)out->per_mib_s,
                     (long long)in->link_mib_s, in->n_busy ? " (with the migrations already running)" : "",
                     modes[FORECAST_PRECOPY], modes[FORECAST_AUTO_CONVERGE], modes[FORECAST_POSTCOPY], up,
                     (double)out->finish_ms / 1000.0, dl);
}
