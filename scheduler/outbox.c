/* outbox: the migration.<id>.<status> events, written in the transaction of each transition
 * (ledger_record), published from here. A replica claims rows for a while (SKIP LOCKED, so
 * replicas never publish the same row at once), publishes them with their fixed message id,
 * and deletes each when the broker confirms it. A refused publish frees its claim; a claim of
 * a replica that died expires and another publishes the row. A crash between the confirm and
 * the delete publishes the row once more, with the same message id. */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "sched.h"

#define OUTBOX_CLAIM_S "10"
#define OUTBOX_BATCH "200"

/* The log fields of an outbox row's event: migration= from a migration.<id>.<status> key
 * (buf holds it), none for another key. */
static log_fields key_fields(const char *key, char buf[24])
{
    log_fields f = {0};
    long long id;
    int n = 0;
    if (sscanf(key, "migration.%lld.%n", &id, &n) == 1 && n > 0) {
        snprintf(buf, 24, "%lld", id);
        f.migration = buf;
    }
    return f;
}

/* One row's statement after its publish, on the database worker: deleted (not JSON) or its
 * claim freed (refused or not published), logged on the loop if it failed. The confirmed ones
 * are deleted together (del_flush). */
typedef enum row_op { ROW_DROP_BAD, ROW_FREE_UNCONFIRMED, ROW_FREE_UNPUBLISHED } row_op;

typedef struct row_job {
    row_op op;
    char id[24];
    char key[160];
} row_job;

static int row_work(db_conn *db, void *arg, char **err)
{
    row_job *j = arg;
    const char *p[] = {j->id};
    int del = j->op == ROW_DROP_BAD;
    if (db_exec(db, NULL,
                del ? "DELETE FROM outbox WHERE id = $1::bigint"
                    : "UPDATE outbox SET claimed_until = NULL WHERE id = $1::bigint",
                1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void row_done(void *arg, int rc, char *err)
{
    row_job *j = arg;
    char mid[24];
    log_fields f = key_fields(j->key, mid);
    if (rc < 0) {
        switch (j->op) {
        case ROW_DROP_BAD:
            log_warn(&f, "could not drop it: %s", err);
            break;
        case ROW_FREE_UNCONFIRMED:
            log_warn(&f, "could not free the outbox row of %s: %s", j->key, err);
            break;
        case ROW_FREE_UNPUBLISHED:
            log_warn(&f, "could not free the outbox row: %s", err);
            break;
        }
    }
    free(err);
    free(j);
}

static void row_submit(sched *s, row_op op, const char *id, const char *key)
{
    row_job *j = xcalloc(1, sizeof(*j));
    j->op = op;
    strlcpy_f(j->id, id, sizeof(j->id));
    strlcpy_f(j->key, key, sizeof(j->key));
    dbq_submit(s->dbq, row_work, row_done, j);
}

/* The confirmed rows' deletion: the ids confirmed while one deletion is with the database
 * worker go in the next one (one statement for all of them, not one job per event). */
typedef struct del_job {
    sched *s;
    char *ids; /* an array literal, "{1,2,3}" */
    size_t n;
} del_job;

static int del_work(db_conn *db, void *arg, char **err)
{
    del_job *j = arg;
    const char *p[] = {j->ids};
    if (db_exec(db, NULL, "DELETE FROM outbox WHERE id = ANY($1::bigint[])", 1, p) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void del_flush(sched *s);

static void del_done(void *arg, int rc, char *err)
{
    del_job *j = arg;
    sched *s = j->s;
    if (rc < 0)
        log_warn(NULL,
                 "%zu events published, but their outbox rows stay (%s): they will be published again with "
                 "the same ids",
                 j->n, err);
    free(err);
    free(j->ids);
    free(j);
    s->outbox_deleting = 0;
    if (!s->stopping)
        del_flush(s);
}

/* The confirmed ids waiting, to the database worker as one deletion (none, or one on its way:
 * nothing now). */
static void del_flush(sched *s)
{
    if (s->outbox_deleting || s->outbox_ndel == 0)
        return;
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, "{", 1);
    for (size_t i = 0; i < s->outbox_ndel; i++)
        evbuffer_add_printf(b, "%s%lld", i ? "," : "", (long long)s->outbox_del[i]);
    evbuffer_add(b, "}", 2); /* with the terminating NUL */
    del_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    j->n = s->outbox_ndel;
    j->ids = xstrdup((const char *)evbuffer_pullup(b, -1));
    evbuffer_free(b);
    s->outbox_ndel = 0;
    s->outbox_deleting = 1;
    dbq_submit(s->dbq, del_work, del_done, j);
}

typedef struct sent {
    sched *s;
    char id[24];
    char key[160];
} sent;

static void on_confirm(mq_conn *c, int ok, const char *err, void *arg)
{
    (void)c;
    _cleanup_free_ sent *x = arg;
    sched *s = x->s;
    s->outbox_busy--;
    char mid[24];
    log_fields f = key_fields(x->key, mid);
    if (!ok) {
        log_warn(&f, "event %s not confirmed by the broker (%s): it stays in the outbox", x->key, err);
        row_submit(s, ROW_FREE_UNCONFIRMED, x->id, x->key);
        return;
    }
    if (s->outbox_ndel == s->outbox_capdel) {
        s->outbox_capdel = s->outbox_capdel ? s->outbox_capdel * 2 : 64;
        s->outbox_del = xrealloc(s->outbox_del, s->outbox_capdel * sizeof(*s->outbox_del));
    }
    s->outbox_del[s->outbox_ndel++] = atoll(x->id);
    del_flush(s);
}

/* Publishes the claimed rows r (borrowed), each deleted when the broker confirms it. */
static void publish_rows(sched *s, PGresult *r)
{
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *mid = PQgetvalue(r, i, 1), *key = PQgetvalue(r, i, 2);
        char mig[24];
        log_fields f = key_fields(key, mig);
        json_object *body = json_tokener_parse(PQgetvalue(r, i, 3));
        if (!body) {
            /* written by ledger_record's json_build_object: cannot happen; never loop on it */
            log_error(&f, "outbox row %s (%s) is not JSON: dropped", id, key);
            row_submit(s, ROW_DROP_BAD, id, key);
            continue;
        }
        _cleanup_free_ char *text = msg_build(key, mid, body);
        sent *x = xcalloc(1, sizeof(*x));
        x->s = s;
        strlcpy_f(x->id, id, sizeof(x->id));
        strlcpy_f(x->key, key, sizeof(x->key));
        mq_props p = {.type = key, .message_id = mid};
        char *err = NULL;
        if (mq_publish(s->mq, MQ_EVENTS_EXCHANGE, key, &p, text, strlen(text), on_confirm, x, &err) < 0) {
            log_warn(&f, "event %s not published (%s): it stays in the outbox", key, err);
            free(err);
            free(x);
            row_submit(s, ROW_FREE_UNPUBLISHED, id, key);
            continue;
        }
        s->outbox_busy++;
    }
}

/* The rows a claim read (on the worker) for the loop to publish. */
typedef struct claim_job {
    sched *s;
    PGresult *rows;
} claim_job;

static int claim_work(db_conn *db, void *arg, char **err)
{
    claim_job *j = arg;
    if (db_exec(db, &j->rows,
                "WITH c AS (UPDATE outbox SET claimed_until = now() + interval '" OUTBOX_CLAIM_S " s'"
                "   WHERE id IN (SELECT id FROM outbox WHERE claimed_until IS NULL OR claimed_until < now()"
                "                ORDER BY id LIMIT " OUTBOX_BATCH " FOR UPDATE SKIP LOCKED)"
                "   RETURNING id, message_id::text, routing_key, body)"
                " SELECT * FROM c ORDER BY id",
                0, NULL) < 0) {
        *err = xstrdup(db_error(db));
        return -1;
    }
    return 0;
}

static void claim_done(void *arg, int rc, char *err)
{
    claim_job *j = arg;
    sched *s = j->s;
    _cleanup_pq_ PGresult *r = j->rows;
    free(j);
    s->outbox_claiming = 0;
    if (rc < 0) {
        log_warn(NULL, "could not read the events outbox: %s", err);
        free(err);
    } else {
        free(err);
        publish_rows(s, r);
    }
    if (s->outbox_again && !s->stopping) {
        s->outbox_again = 0;
        outbox_flush(s);
    }
}

void outbox_flush(sched *s)
{
    if (!s->db_ready || !s->mq || !mq_is_up(s->mq))
        return;
    if (s->outbox_claiming) {
        /* the claim on its way may have run before what asks now was committed */
        s->outbox_again = 1;
        return;
    }
    s->outbox_claiming = 1;
    claim_job *j = xcalloc(1, sizeof(*j));
    j->s = s;
    dbq_submit(s->dbq, claim_work, claim_done, j);
}
