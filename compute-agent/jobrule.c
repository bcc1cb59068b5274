#include "jobrule.h"

#include <stdio.h>
#include <string.h>

void jobrule_take_reading(jobrule_state *st, int iteration, unsigned long long remaining, int64_t now_ms)
{
    if (iteration > st->iteration)
        st->iteration = iteration;
    if (st->best_remaining == 0 || remaining < st->best_remaining) {
        st->best_remaining = remaining;
        st->best_remaining_ms = now_ms;
    }
}

int jobrule_postcopy_due(const job_opts *o, const jobrule_state *st)
{
    return o->post_copy && !st->postcopy_active && st->iteration - 1 >= o->postcopy_after_iterations;
}

jobrule_timeout jobrule_completion(const job_opts *o, const jobrule_state *st, int paused_to_finish, int64_t now_ms)
{
    if (o->completion_timeout_s <= 0 || st->postcopy_active || st->abort_requested || paused_to_finish ||
        now_ms - st->started_ms <= (int64_t)o->completion_timeout_s * 1000)
        return JOBRULE_IN_TIME;
    if (o->completion_pause)
        return JOBRULE_TIMEOUT_PAUSE;
    return o->completion_postcopy && o->post_copy ? JOBRULE_TIMEOUT_POSTCOPY : JOBRULE_TIMEOUT_ABORT;
}

int jobrule_stalled(const jobrule_state *st, int64_t now_ms, int64_t stall_s)
{
    return stall_s > 0 && !st->postcopy_active && !st->abort_requested &&
           now_ms - st->best_remaining_ms > stall_s * 1000;
}

rpc_code jobrule_may_abort(int running, const jobrule_state *st)
{
    return running && !st->postcopy_active ? RPC_OK : RPC_CONFLICT;
}

jobrule_finish jobrule_force_complete(const job_opts *o, int running, const jobrule_state *st)
{
    if (!running)
        return JOBRULE_FINISH_CONFLICT;
    if (st->postcopy_active)
        return JOBRULE_FINISH_ALREADY_POSTCOPY;
    return o->post_copy ? JOBRULE_FINISH_POSTCOPY : JOBRULE_FINISH_PAUSE;
}

jobrule_end jobrule_end_of(int ok, int libvirt_aborted, const jobrule_state *st, int agent_aborted)
{
    if (ok)
        return JOBRULE_END_COMPLETED;
    if (!libvirt_aborted && !st->abort_requested)
        return st->postcopy_active ? JOBRULE_END_POSTCOPY_PAUSED : JOBRULE_END_FAILED;
    return agent_aborted ? JOBRULE_END_AGENT_ABORT : JOBRULE_END_CANCELLED;
}

jobrule_end jobrule_postcopy_end(int paused_postcopy)
{
    return paused_postcopy ? JOBRULE_END_POSTCOPY_PAUSED : JOBRULE_END_FAILED;
}

jobrule_resume jobrule_resume_of(job_state st, int resuming)
{
    if (st == JOB_POSTCOPY_PAUSED)
        return JOBRULE_RESUME_START;
    if (st == JOB_RUNNING && resuming)
        return JOBRULE_RESUME_UNDER_WAY;
    if (st == JOB_COMPLETED)
        return JOBRULE_RESUME_COMPLETED;
    return JOBRULE_RESUME_NOT_PAUSED;
}

int jobrule_downtime_at(const job_opts *o, int64_t elapsed_ms, int *step)
{
    *step = 0;
    if (o->downtime_steps <= 0 || o->downtime_delay_ms <= 0)
        return o->max_downtime_ms;
    int64_t i = elapsed_ms > 0 ? elapsed_ms / o->downtime_delay_ms : 0;
    if (i > o->downtime_steps)
        i = o->downtime_steps;
    *step = (int)i;
    int64_t max = o->max_downtime_ms, base = max / o->downtime_steps;
    int64_t v = i == o->downtime_steps ? max : base + (max - base) * i / o->downtime_steps;
    return v < 1 ? 1 : (int)v;
}

void jobrule_settings_wanted(const job_opts *o, int *downtime, int *postcopy_bandwidth, int *cache, int *streams)
{
    *downtime = o->max_downtime_ms > 0;
    *postcopy_bandwidth = o->post_copy && o->bandwidth_mib_s > 0;
    *cache = o->xbzrle_cache_mib > 0;
    *streams = o->parallel_connections > 1;
}

/* Appends text to why (n bytes), after a comma when why is not empty. */
static void add_text(char *why, size_t n, const char *text)
{
    size_t used = strlen(why);
    if (used + 1 < n)
        snprintf(why + used, n - used, "%s%s", used ? ", " : "", text);
}

int jobrule_settings_check(const job_opts *o, int step, const jobrule_applied *ap, char *why, size_t n)
{
    int want_downtime, want_pc_bw, want_cache, want_streams;
    jobrule_settings_wanted(o, &want_downtime, &want_pc_bw, &want_cache, &want_streams);
    char t[200];
    why[0] = 0;
    if (want_downtime) {
        int s2, limit = jobrule_downtime_at(o, (int64_t)step * o->downtime_delay_ms, &s2);
        if (ap->downtime_ms != limit) {
            if (ap->downtime_ms < 0)
                snprintf(why, n, "max downtime could not be read back from libvirt, %d ms asked", limit);
            else
                snprintf(why, n, "max downtime is %lld ms in libvirt, %d ms asked", ap->downtime_ms, limit);
            return -1;
        }
        snprintf(t, sizeof(t), "max downtime %d ms", limit);
        add_text(why, n, t);
    }
    if (o->bandwidth_mib_s > 0 ? ap->bandwidth_mib_s != o->bandwidth_mib_s
                               : ap->bandwidth_mib_s < JOBRULE_UNLIMITED_MIB_S) {
        if (ap->bandwidth_mib_s < 0)
            snprintf(why, n, "bandwidth could not be read back from libvirt, %s asked",
                     o->bandwidth_mib_s > 0 ? "a cap" : "no cap");
        else if (o->bandwidth_mib_s > 0)
            snprintf(why, n, "bandwidth is %lld MiB/s in libvirt, %d MiB/s asked", ap->bandwidth_mib_s,
                     o->bandwidth_mib_s);
        else
            snprintf(why, n, "bandwidth is %lld MiB/s in libvirt, no cap asked", ap->bandwidth_mib_s);
        return -1;
    }
    if (o->bandwidth_mib_s > 0)
        snprintf(t, sizeof(t), "bandwidth %d MiB/s", o->bandwidth_mib_s);
    else
        snprintf(t, sizeof(t), "bandwidth unlimited");
    add_text(why, n, t);
    if (want_pc_bw) {
        if (ap->postcopy_bandwidth_mib_s != o->bandwidth_mib_s) {
            if (ap->postcopy_bandwidth_mib_s < 0)
                snprintf(why, n, "post-copy bandwidth could not be read back from libvirt, %d MiB/s asked",
                         o->bandwidth_mib_s);
            else
                snprintf(why, n, "post-copy bandwidth is %lld MiB/s in libvirt, %d MiB/s asked",
                         ap->postcopy_bandwidth_mib_s, o->bandwidth_mib_s);
            return -1;
        }
        snprintf(t, sizeof(t), "post-copy bandwidth %d MiB/s", o->bandwidth_mib_s);
        add_text(why, n, t);
    }
    if (want_cache) {
        if (ap->compression_cache_mib != o->xbzrle_cache_mib) {
            if (ap->compression_cache_mib < 0)
                snprintf(why, n, "xbzrle cache could not be read back from libvirt, %d MiB asked", o->xbzrle_cache_mib);
            else
                snprintf(why, n, "xbzrle cache is %lld MiB in libvirt, %d MiB asked", ap->compression_cache_mib,
                         o->xbzrle_cache_mib);
            return -1;
        }
        snprintf(t, sizeof(t), "xbzrle cache %d MiB", o->xbzrle_cache_mib);
        add_text(why, n, t);
    }
    if (want_streams && ap->streams < o->parallel_connections + 1) {
        if (ap->streams < 0)
            snprintf(why, n, "QEMU's connections could not be counted, %d parallel asked", o->parallel_connections);
        else
            snprintf(why, n, "QEMU holds %d connection%s to the destination, %d parallel (and the main one) asked",
                     ap->streams, ap->streams == 1 ? "" : "s", o->parallel_connections);
        return -1;
    }
    if (ap->streams > 0 && ap->stream_remote && ap->stream_local) {
        if (want_streams)
            snprintf(t, sizeof(t), "%d parallel connections (%d to %s from %s)", o->parallel_connections, ap->streams,
                     ap->stream_remote, ap->stream_local);
        else
            snprintf(t, sizeof(t), "%d connection%s to %s from %s", ap->streams, ap->streams == 1 ? "" : "s",
                     ap->stream_remote, ap->stream_local);
        add_text(why, n, t);
    }
    return 0;
}
