/* measure: what a forecast needs to know of a guest before it moves (issue #18): its memory
 * (how much of it is not zero pages, sampled) and its dirty rate, sampled by QEMU (virDomainStartDirtyRateCalc, page sampling, works under
 * TCG too) — the agent's `dirty_rate` RPC, called by the schedulers. */
#ifndef FERRY_MEASURE_H
#define FERRY_MEASURE_H

#include "rpcmig.h"

/* dirty_rate: body {instance, seconds}; answers dirty_rate_mib_s, memory_mib, nonzero_mib (the
 * memory that is not zero pages, estimated from sampled pages; absent when unreadable), seconds,
 * mode.
 * Runs on the RPC worker: it waits for the sample (seconds, and up to 5 s more). */
int measure_dirty_rate(rpcmig_call *c, json_object *out, char **err, rpc_code *code) FERRY_WUR;

#endif
