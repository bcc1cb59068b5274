/* dbq: the scheduler's database worker. One thread owns one db_conn (opened, and reopened
 * after a loss, by the worker itself with the options given) and runs the jobs submitted to it
 * one at a time, in submission order; each job's continuation then runs on the loop's thread
 * through evq, in the same order. So the loop never waits on PostgreSQL: it submits and goes
 * on, and whatever the answer touches (the scheduler's state, AMQP) is touched in the
 * continuation, on the loop. dbq also keeps what /healthz says of the database without asking
 * it: connected or not, and how long the job at the head has been running (a stall).
 * Requires evthread_use_pthreads() before the event_base is made. */
#ifndef FERRY_DBQ_H
#define FERRY_DBQ_H

#include <stdint.h>

#include <event2/event.h>

#include "db.h"
#include "util.h"

typedef struct dbq dbq;

/* The work, on the worker thread: db is the worker's connection (borrowed), connected when
 * the work starts (when it cannot connect, the work is not run and done gets -1 with why).
 * Returns 0 or -1 with *err (caller-allocated text, passed to done) for the reason. It must not
 * touch anything the loop's thread uses: it has arg. */
typedef int (*dbq_work_fn)(db_conn *db, void *arg, char **err);
/* The continuation, on the loop's thread, with the work's rc and err (NULL when none; done
 * owns it and frees it). arg is the submitter's, as given to dbq_submit. */
typedef void (*dbq_done_fn)(void *arg, int rc, char *err);

/* What dbq knows of the database, without asking it. */
typedef struct dbq_health {
    int connected;      /* the worker's connection was usable after its last job or attempt */
    int tried;          /* a job ran (or tried to connect): connected and error say something */
    int stalled;        /* the running job has been running longer than the threshold */
    int64_t running_ms; /* how long the running job has been running; 0 when idle */
    int queued;         /* jobs submitted and not started */
    char error[256];    /* the last connection failure, "" when connected */
} dbq_health;

/* Starts the worker for loop base (borrowed; must outlive the dbq) with the connection
 * options o (copied) and the stall threshold stall_ms. The connection is opened by the
 * worker on its first job. Caller frees with dbq_free. */
dbq *dbq_new(struct event_base *base, const db_options *o, int64_t stall_ms);
/* Stops taking jobs, lets the running one finish (after grace_ms its socket is shut down, so a
 * stalled server cannot hold the stop: the job fails as on a lost connection), runs done(arg,
 * -1, "stopping") for each job never started, runs every continuation already posted, joins
 * the worker and frees everything. Call on the loop's thread, with the loop no longer
 * dispatching. NULL is accepted. */
void dbq_free(dbq *q, int grace_ms);
/* Queues work(db, arg) for the worker and done(arg, rc, err) after it on the loop's thread.
 * work may be NULL (done then runs after every job before it, with rc 0). Callable from the
 * loop's thread; after dbq_free began, done runs at once with -1. arg stays the caller's. */
void dbq_submit(dbq *q, dbq_work_fn work, dbq_done_fn done, void *arg);
/* Fills *h with the database's health as the worker last saw it. Any thread. */
void dbq_get_health(dbq *q, dbq_health *h);
/* 1 when the worker's connection was usable after its last job (the loop's cheap look). */
int dbq_connected(dbq *q);

#endif
