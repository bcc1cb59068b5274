/* outbox: the migration.<id>.<status> events, written in the transaction of each transition
 * (ledger_record), published from here. A replica claims rows for a while (SKIP LOCKED, so
 * replicas never publish the same row at once), publishes them with their fixed message id,
 * and deletes each when the broker confirms it. A refused publish frees its claim; a claim of
 * a replica that died expires and another publishes the row. A crash between the confirm and
 * the delete publishes the row once more, with the same message id. */
#include <stdlib.h>
#include <string.h>

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
    const char *p[] = {x->id};
    char mid[24];
    log_fields f = key_fields(x->key, mid);
    if (!ok) {
        log_warn(&f, "event %s not confirmed by the broker (%s): it stays in the outbox", x->key, err);
        if (db_exec(s->db, NULL, "UPDATE outbox SET claimed_until = NULL WHERE id = $1::bigint", 1, p) < 0)
            log_warn(&f, "could not free the outbox row of %s: %s", x->key, db_error(s->db));
        return;
    }
    if (db_exec(s->db, NULL, "DELETE FROM outbox WHERE id = $1::bigint", 1, p) < 0)
        log_warn(&f, "event %s published, but its outbox row stays (%s): it will be published again with the same id",
                 x->key, db_error(s->db));
}

void outbox_flush(sched *s)
{
    if (!s->db || !s->mq || !mq_is_up(s->mq))
        return;
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(s->db, &r,
                "WITH c AS (UPDATE outbox SET claimed_until = now() + interval '" OUTBOX_CLAIM_S " s'"
                "   WHERE id IN (SELECT id FROM outbox WHERE claimed_until IS NULL OR claimed_until < now()"
                "                ORDER BY id LIMIT " OUTBOX_BATCH " FOR UPDATE SKIP LOCKED)"
                "   RETURNING id, message_id::text, routing_key, body)"
                " SELECT * FROM c ORDER BY id",
                0, NULL) < 0) {
        log_warn(NULL, "could not read the events outbox: %s", db_error(s->db));
        return;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        const char *id = PQgetvalue(r, i, 0), *mid = PQgetvalue(r, i, 1), *key = PQgetvalue(r, i, 2);
        char mig[24];
        log_fields f = key_fields(key, mig);
        json_object *body = json_tokener_parse(PQgetvalue(r, i, 3));
        if (!body) {
            /* written by ledger_record's json_build_object: cannot happen; never loop on it */
            log_error(&f, "outbox row %s (%s) is not JSON: dropped", id, key);
            const char *p[] = {id};
            if (db_exec(s->db, NULL, "DELETE FROM outbox WHERE id = $1::bigint", 1, p) < 0)
                log_warn(&f, "could not drop it: %s", db_error(s->db));
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
            const char *q[] = {id};
            if (db_exec(s->db, NULL, "UPDATE outbox SET claimed_until = NULL WHERE id = $1::bigint", 1, q) < 0)
                log_warn(&f, "could not free the outbox row: %s", db_error(s->db));
            continue;
        }
        s->outbox_busy++;
    }
}
