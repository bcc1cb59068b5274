/* forecast: a live migration's duration, pause and bytes, pass by pass (see forecast.h). */
#include "forecast.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *forecast_mode_str(forecast_mode m)
{
    switch (m) {
    case FORECAST_PRECOPY:
        return "pre-copy";
    case FORECAST_AUTO_CONVERGE:
        return "auto-converge";
    case FORECAST_POSTCOPY:
        return "post-copy";
    default:
        return "unknown";
    }
}

forecast_in forecast_in_for(const cfg_scheduler *cs, int64_t memory_mib, int64_t nonzero_mib, int64_t dirty_mib_s,
                            int64_t bw_mib_s, int64_t downtime_limit_ms, int64_t postcopy_after)
{
    forecast_in in = {
        .memory_bytes = (uint64_t)(memory_mib > 0 ? memory_mib : 0) << 20,
        .nonzero_bytes = (uint64_t)(nonzero_mib > 0 && nonzero_mib < memory_mib ? nonzero_mib : 0) << 20,
        .dirty_bytes_s = (uint64_t)(dirty_mib_s > 0 ? dirty_mib_s : 0) << 20,
        .bandwidth_bytes_s = (uint64_t)(bw_mib_s > 0 ? bw_mib_s : 1) << 20,
        .max_downtime_ms = (uint64_t)(downtime_limit_ms > 0 ? downtime_limit_ms : 1),
        .setup_ms = (uint64_t)(cs->forecast_setup_ms + cs->forecast_sample_s * 1000),
        .switch_ms = (uint64_t)cs->forecast_switch_ms,
        .postcopy_after_passes = postcopy_after > 0 ? (int)postcopy_after : 1,
        .max_passes = FORECAST_MAX_PASSES,
    };
    return in;
}

int64_t forecast_limit_for(const cfg_scheduler *cs, int64_t pause_ms)
{
    if (pause_ms <= 0)
        return cs->max_downtime_ms;
    return pause_ms > cs->forecast_switch_ms ? pause_ms - cs->forecast_switch_ms : 1;
}

static uint64_t to_ms(double secs)
{
    if (!(secs > 0))
        return 0;
    double ms = ceil(secs * 1000.0);
    return ms >= 1e18 ? (uint64_t)1e18 : (uint64_t)ms;
}

/* QEMU throttles after two passes in a row that dirtied more than half of what they sent */
#define AC_FIRST_PCT 20
#define AC_STEP_PCT 10
#define AC_MAX_PCT 99

void forecast_run(const forecast_in *in, forecast_mode m, forecast_out *out)
{
    memset(out, 0, sizeof(*out));
    double bw = in->bandwidth_bytes_s ? (double)in->bandwidth_bytes_s : 1.0;
    double mem = (double)in->memory_bytes;
    /* the first pass: what is not zero pages, when known */
    double first = in->nonzero_bytes && in->nonzero_bytes < in->memory_bytes ? (double)in->nonzero_bytes : mem;
    double ws =
        in->working_set_bytes && in->working_set_bytes < in->memory_bytes ? (double)in->working_set_bytes : first;
    double rate = (double)in->dirty_bytes_s;
    /* what fits in the allowed pause */
    double fits = bw * (double)in->max_downtime_ms / 1000.0;
    int max_passes = in->max_passes > 0 ? in->max_passes : 1;
    int pc_after = in->postcopy_after_passes > 0 ? in->postcopy_after_passes : 1;
    int throttle = 0, high = 0;
    double send = first, secs = 0, bytes = 0;
    for (int pass = 1;; pass++) {
        double t = send / bw;
        secs += t;
        bytes += send;
        double dirtied = fmin(rate * (double)(100 - throttle) / 100.0 * t, ws);
        out->passes = pass;
        if (dirtied <= fits) {
            /* stop-and-copy: the rest goes while the guest is paused */
            double pause = dirtied / bw;
            bytes += dirtied;
            out->converges = true;
            out->downtime_ms = to_ms(pause) + in->switch_ms;
            out->duration_ms = in->setup_ms + to_ms(secs + pause) + in->switch_ms;
            break;
        }
        if (m == FORECAST_POSTCOPY && pass >= pc_after) {
            /* the switch: the vCPUs go over, the rest follows on demand */
            bytes += dirtied;
            out->converges = true;
            out->downtime_ms = in->switch_ms;
            out->duration_ms = in->setup_ms + to_ms(secs + dirtied / bw) + in->switch_ms;
            break;
        }
        if (pass >= max_passes) {
            out->converges = false;
            out->downtime_ms = to_ms(dirtied / bw) + in->switch_ms;
            out->duration_ms = in->setup_ms + to_ms(secs);
            break;
        }
        if (m == FORECAST_AUTO_CONVERGE && dirtied > send / 2 && ++high >= 2) {
            high = 0;
            throttle = throttle ? throttle + AC_STEP_PCT : AC_FIRST_PCT;
            if (throttle > AC_MAX_PCT)
                throttle = AC_MAX_PCT;
        }
        send = dirtied;
    }
    out->bytes = bytes >= 1.8e19 ? UINT64_MAX : (uint64_t)bytes;
    out->throttle_pct = throttle;
}

bool forecast_meets(const forecast_out *f, const forecast_objectives *obj)
{
    if (!f->converges)
        return false;
    if (obj->max_downtime_ms && f->downtime_ms > obj->max_downtime_ms)
        return false;
    if (obj->deadline_ms && f->duration_ms > obj->deadline_ms)
        return false;
    return true;
}

int forecast_choose(const forecast_in *in, const forecast_objectives *obj, const bool allowed[FORECAST_MODES],
                    forecast_mode *mode, forecast_out *out, char **why)
{
    char *seen = NULL;
    for (int m = 0; m < FORECAST_MODES; m++) {
        if (!allowed[m])
            continue;
        forecast_out f;
        forecast_run(in, (forecast_mode)m, &f);
        if (forecast_meets(&f, obj)) {
            free(seen);
            *mode = (forecast_mode)m;
            *out = f;
            return 0;
        }
        char *one = f.converges
                        ? xasprintf("%s %.1f s with a %llu ms pause", forecast_mode_str((forecast_mode)m),
                                    (double)f.duration_ms / 1000.0, (unsigned long long)f.downtime_ms)
                        : xasprintf("%s does not converge (%d passes, %llu ms left for the pause)",
                                    forecast_mode_str((forecast_mode)m), f.passes, (unsigned long long)f.downtime_ms);
        char *both = seen ? xasprintf("%s; %s", seen, one) : xstrdup(one);
        free(one);
        free(seen);
        seen = both;
    }
    _cleanup_free_ char *goals = NULL;
    if (obj->max_downtime_ms && obj->deadline_ms)
        goals = xasprintf("max_downtime_ms %llu and deadline_s %.0f", (unsigned long long)obj->max_downtime_ms,
                          (double)obj->deadline_ms / 1000.0);
    else if (obj->max_downtime_ms)
        goals = xasprintf("max_downtime_ms %llu", (unsigned long long)obj->max_downtime_ms);
    else if (obj->deadline_ms)
        goals = xasprintf("deadline_s %.0f", (double)obj->deadline_ms / 1000.0);
    else
        goals = xstrdup("its end");
    *why = xasprintf("no allowed mode meets %s: %s", goals, seen ? seen : "no mode is allowed");
    free(seen);
    return -1;
}
