/* verbs_priv: what the parts of ferryctl's scheduler verbs share (verbs.c: arguments and the
 * scheduler's read and request RPCs; verbs_follow.c: following a migration; verbs_host.c: the
 * host and instance verbs; verbs_migration.c: migrate and the migration verbs). Internal to
 * cli/verbs*.c. */
#ifndef FERRY_VERBS_PRIV_H
#define FERRY_VERBS_PRIV_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "ctl.h"

typedef struct opt {
    const char *name; /* "--wait" */
    int takes_value;
    const char *value; /* set when given (flags: "1") */
} opt;

/* Reading fields of a scheduler's answer: a string (NULL when absent or null), a string with a
 * default, an integer (0 when absent), a boolean (0 when absent). */
static inline const char *js(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && v && !json_object_is_type(v, json_type_null))
        return json_object_get_string(v);
    return NULL;
}

static inline const char *jsd(json_object *o, const char *k, const char *def)
{
    const char *s = js(o, k);
    return s ? s : def;
}

static inline int64_t ji(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : 0;
}

static inline int jb(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && v && json_object_get_boolean(v);
}

/* verbs.c */
/* Splits argv[1..] into the options of opts and positional arguments (at most max_pos).
 * Returns the number of positionals, or -1 after printing what is wrong. */
int verbs_parse_args(const char *verbname, int argc, char **argv, opt *opts, size_t nopts, char **pos, int max_pos);
/* Reads integer option `what` from v within [lo, hi] into *out. Returns 0, or -1 after printing why. */
int verbs_int_arg(const char *verbname, const char *what, const char *v, int64_t lo, int64_t hi, int *out);
/* Reads a migration id (a positive integer) from v. Returns 0, or -1 after printing why. */
int verbs_migration_id_arg(const char *verbname, const char *v, int64_t *out);
/* Prints o as one line of JSON (o stays the caller's). */
void verbs_print_json(json_object *o);
/* Calls read RPC method of the scheduler; the reply body without "ok" (caller puts), or NULL
 * after printing the scheduler's reason (*notfound = 1 when it said not_found). */
json_object *verbs_sched_read(ctl *c, const char *method, json_object *body, int *notfound);
/* Calls read RPC method with body (taken). With -o json it prints the answer and returns NULL
 * with *rc = 0; otherwise it returns the answer (caller puts) with *list its array `key`. NULL
 * with *rc = 1 when the call failed (printed). */
json_object *verbs_read_list(ctl *c, const char *method, json_object *body, const char *key, json_object **list,
                             int *rc);
/* Publishes text (a message of the request contract) on ferry.scheduler and waits for the
 * scheduler's answer; returns the answer envelope or NULL (printed). */
msg_envelope *verbs_sched_request(ctl *c, const char *text);
/* verbs_sched_request for an operator's request of verb vn: 0 and *env (caller frees) when
 * answered and not refused; 1 otherwise, the reason printed ("ferryctl: VN refused: ..."). */
int verbs_sched_ask(ctl *c, const char *vn, const char *text, msg_envelope **env);

/* verbs_follow.c */
typedef struct follow {
    ctl *c;
    int64_t id;
    int tty;
    char status[16];
    char *error;
    int postcopy;
    int64_t total, processed, remaining, iteration;
    int64_t rate_bps, dirty_bps, throttle_pct;  /* -1: not reported */
    int64_t disk_total, disk_remaining;         /* a block migration's disks (0: none) */
    int64_t last_print_ms;
    int done;
    int line_open; /* a progress line without its newline (tty) */
} follow;
/* Makes Ctrl-C set the flag verbs_interrupted() returns (the verb in progress decides what to do). */
void verbs_catch_sigint(void);
/* Returns 1 once Ctrl-C was pressed after verbs_catch_sigint. */
int verbs_interrupted(void);
/* Returns 1 when migration status st is final (completed, failed, error, cancelled). */
int verbs_terminal(const char *st);
/* Follows migration f->id until it ends, printing its progress; returns the exit status. */
int verbs_follow_migration(ctl *c, follow *f);
/* Binds a private queue to ferry.events for f's migration events and consumes it. */
void verbs_watch_events(ctl *c, follow *f);

#endif
