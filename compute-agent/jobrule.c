#include "jobrule.h"

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
