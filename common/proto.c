/* proto: RPC codes and migration statuses, enum <-> word. */
#include "proto.h"

#include <string.h>

static const char *const rpc_words[] = {
    [RPC_OK] = "",
    [RPC_INVALID] = "invalid",
    [RPC_REFUSED] = "refused",
    [RPC_LIBVIRT] = "libvirt",
    [RPC_UNAVAILABLE] = "unavailable",
    [RPC_NOT_FOUND] = "not_found",
    [RPC_CONFLICT] = "conflict",
    [RPC_STALE_EPOCH] = "stale_epoch",
    [RPC_LANDED] = "landed",
    [RPC_INTERNAL] = "internal",
    [RPC_NOT_PAUSED] = "not_paused",
    [RPC_UNKNOWN] = "unknown",
};

const char *rpc_code_str(rpc_code c)
{
    if ((unsigned)c >= sizeof(rpc_words) / sizeof(rpc_words[0]))
        return "unknown";
    return rpc_words[c];
}

rpc_code rpc_code_from_str(const char *s)
{
    if (!s || !*s)
        return RPC_UNKNOWN;
    for (unsigned i = RPC_INVALID; i < RPC_UNKNOWN; i++)
        if (strcmp(s, rpc_words[i]) == 0)
            return (rpc_code)i;
    return RPC_UNKNOWN;
}

static const char *const status_words[MIG_STATUS_COUNT] = {
    [MIG_QUEUED] = "queued",   [MIG_SCHEDULED] = "scheduled",   [MIG_PREPARING] = "preparing",
    [MIG_RUNNING] = "running", [MIG_COMPLETING] = "completing", [MIG_COMPLETED] = "completed",
    [MIG_FAILED] = "failed",   [MIG_ERROR] = "error",           [MIG_CANCELLED] = "cancelled",
};

const char *mig_status_str(mig_status st)
{
    if ((unsigned)st >= MIG_STATUS_COUNT)
        return "?";
    return status_words[st];
}

int mig_status_from_str(const char *s, mig_status *out)
{
    if (!s)
        return -1;
    for (unsigned i = 0; i < MIG_STATUS_COUNT; i++)
        if (strcmp(s, status_words[i]) == 0) {
            *out = (mig_status)i;
            return 0;
        }
    return -1;
}

int mig_status_is_final(mig_status st)
{
    return st == MIG_COMPLETED || st == MIG_FAILED || st == MIG_ERROR || st == MIG_CANCELLED;
}

static const char *const job_words[JOB_STATE_COUNT] = {
    [JOB_RUNNING] = "running",     [JOB_COMPLETED] = "completed", [JOB_FAILED] = "failed",
    [JOB_CANCELLED] = "cancelled", [JOB_NONE] = "none",          [JOB_POSTCOPY_PAUSED] = "postcopy_paused",
};

const char *job_state_str(job_state st)
{
    if ((unsigned)st >= JOB_STATE_COUNT)
        return "?";
    return job_words[st];
}

int job_state_from_str(const char *s, job_state *out)
{
    if (!s)
        return -1;
    for (unsigned i = 0; i < JOB_STATE_COUNT; i++)
        if (strcmp(s, job_words[i]) == 0) {
            *out = (job_state)i;
            return 0;
        }
    return -1;
}
