/* workq: one worker thread that runs blocking work in order, off a libevent loop.
 *
 * The loop submits (work, done, arg); the worker thread runs work(arg), then done(arg, 0) is
 * posted back to the loop's thread through evq, so done may touch what only the loop touches
 * (the AMQP connection, the agent's jobs). Work runs one at a time in submission order: a
 * caller that submits A then B sees B's work start after A's has ended. work must not touch
 * loop-only state; the arg belongs to the queue from workq_submit until done returns. */
#ifndef FERRY_WORKQ_H
#define FERRY_WORKQ_H

#include "evq.h"

typedef struct workq workq;
/* Runs on the worker thread. */
typedef void (*workq_work_fn)(void *arg);
/* Runs on the loop's thread after work (cancelled = 0), or instead of it when the queue was
 * stopped before work started (cancelled = 1, on the thread calling workq_free). Owns arg. */
typedef void (*workq_done_fn)(void *arg, int cancelled);

/* Starts a worker thread named name (at most 15 bytes are kept) posting to q (borrowed; must
 * outlive the queue). Caller frees with workq_free. */
workq *workq_new(evq *q, const char *name);
/* Queues work(arg) then done(arg, 0); callable from the loop's thread only. */
void workq_submit(workq *w, workq_work_fn work, workq_done_fn done, void *arg);
/* How many submitted items have not had their done posted yet (queued and running). */
int workq_pending(workq *w);
/* Whether the worker is inside a work function at this moment. */
int workq_busy(workq *w);
/* Stops the queue: the items not started get done(arg, 1) here; when the worker is inside a
 * work function, waits for it at most wait_ms. Returns 0 and frees everything (the running
 * item's done is posted to the evq, which the caller runs after), or -1 when the work is
 * still running after wait_ms: the thread is then left to finish on its own (its done is
 * still posted) and the queue is not freed, so the evq must not be freed either. NULL: 0. */
int workq_free(workq *w, int wait_ms);

#endif
