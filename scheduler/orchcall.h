/* orchcall: the orchestration's RPCs to the agents (rpc.<method> on compute.<host>): the
 * owner's epoch added to every call, a call lost in transit (or answered `unavailable`) sent
 * again for up to [scheduler] rpc_retry_s, nothing sent once the lease may be lost, a reply
 * with code `stale_epoch` ending this replica's part, and the reply, read strictly
 * (orchreply.h), handed to the step that waits for it. Below orch.c (which passes its steps
 * and its failure handler in); above orchcore, orchreply and the ledger. */
#ifndef FERRY_ORCHCALL_H
#define FERRY_ORCHCALL_H

#include "orchcore.h"
#include "orchreply.h"

/* A step: runs with the reply, read and checked (orchreply.h; borrowed), when the call
 * succeeded. */
typedef void (*orchcall_step_fn)(orch *o, const orchreply *reply);
/* A failure: why (borrowed) says which call failed on which host and why; code is the
 * agent's rpc.error code, or RPC_OK when no agent answered (transport, invalid reply) or its
 * reply was refused by orchreply_read ("the source's reply to job_status is refused: ..."). */
typedef void (*orchcall_fail_fn)(orch *o, rpc_code code, const char *why);

/* Calls method on host for o with body (taken; the migration, instance and epoch are added):
 * next runs with the reply, read by orchreply_read, on success; fail on an error reply, a
 * reply orchreply_read refuses, or no reply. Replies to calls made before o->gen changed are
 * dropped. */
void orchcall_call(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next,
                   orchcall_fail_fn fail);
/* As orchcall_call, but sent once (no retry when it is lost, nor on `unavailable`) and waited
 * for timeout_ms: for a call the migration does without when it fails (the forecast's
 * dirty_rate); fail then runs and the migration goes on from there. */
void orchcall_once(orch *o, const char *host, orchreply_method method, json_object *body, int timeout_ms,
                   orchcall_step_fn next, orchcall_fail_fn fail);
/* As orchcall_call for a request that may be refused without failing the migration (abort,
 * force_complete): its error is logged and recorded, the migration goes on, and a refused
 * abort or force-complete may be sent again by the next ticks (o->abort_sent, o->fc_sent
 * cleared, up to 30 times). Its reply counts whatever o->gen is by then. */
void orchcall_soft(orch *o, const char *host, orchreply_method method, json_object *body, orchcall_step_fn next);
/* Once the loop has ended: frees the calls still waiting to be sent again (their migrations
 * keep their status; the lease brings them back). */
void orchcall_stop(sched *s);

#endif
