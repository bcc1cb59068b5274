/* verbs: ferryctl's scheduler verbs. Reads go to the scheduler's read RPCs
 * (ferry.scheduler.rpc, any replica answers); migrations, aborts and force-completes are
 * published as the request contract on ferry.scheduler; `--wait` follows ferry.events. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "trust.h"
#include "util.h"

/* ---- arguments ------------------------------------------------------------------------------ */

typedef struct opt {
    const char *name; /* "--wait" */
    int takes_value;
    const char *value; /* set when given (flags: "1") */
} opt;

/* Splits argv[1..] into the options of opts and positional arguments (at most max_pos).
 * Returns the number of positionals, or -1 after printing what is wrong. */
static int parse_args(const char *verbname, int argc, char **argv, opt *opts, size_t nopts, char **pos, int max_pos)
{
    int npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) == 0 && a[2]) {
            const char *eq = strchr(a, '=');
            size_t k = eq ? (size_t)(eq - a) : strlen(a);
            opt *o = NULL;
            for (size_t j = 0; j < nopts; j++)
                if (strlen(opts[j].name) == k && strncmp(opts[j].name, a, k) == 0)
                    o = &opts[j];
            if (!o) {
                fprintf(stderr, PROG ": %s: unknown option '%.*s'\nTry '" PROG " %s --help'.\n", verbname, (int)k, a,
                        verbname);
                return -1;
            }
            if (!o->takes_value) {
                if (eq) {
                    fprintf(stderr, PROG ": %s: %s takes no value\n", verbname, o->name);
                    return -1;
                }
                o->value = "1";
            } else if (eq) {
                o->value = eq + 1;
            } else if (i + 1 < argc) {
                o->value = argv[++i];
            } else {
                fprintf(stderr, PROG ": %s: %s needs a value\n", verbname, o->name);
                return -1;
            }
            continue;
        }
        if (npos == max_pos) {
            fprintf(stderr, PROG ": %s: unexpected argument '%s'\nTry '" PROG " %s --help'.\n", verbname, a, verbname);
            return -1;
        }
        pos[npos++] = argv[i];
    }
    return npos;
}

static int int_arg(const char *verbname, const char *what, const char *v, int64_t lo, int64_t hi, int *out)
{
    int64_t x;
    if (parse_i64(v, lo, hi, &x) < 0) {
        fprintf(stderr, PROG ": %s: %s must be a number in %lld..%lld, not '%s'\n", verbname, what, (long long)lo,
                (long long)hi, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int migration_id_arg(const char *verbname, const char *v, int64_t *out)
{
    if (parse_i64(v, 1, INT64_MAX, out) < 0) {
        fprintf(stderr, PROG ": %s: '%s' is not a migration id (a positive integer)\n", verbname, v);
        return -1;
    }
    return 0;
}

/* ---- JSON helpers ---------------------------------------------------------------------------- */

static const char *js(json_object *o, const char *k)
{
    json_object *v;
    if (o && json_object_object_get_ex(o, k, &v) && v && !json_object_is_type(v, json_type_null))
        return json_object_get_string(v);
    return NULL;
}

static const char *jsd(json_object *o, const char *k, const char *def)
{
    const char *s = js(o, k);
    return s ? s : def;
}

static int64_t ji(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : 0;
}

static int jb(json_object *o, const char *k)
{
    json_object *v;
    return o && json_object_object_get_ex(o, k, &v) && v && json_object_get_boolean(v);
}

static void print_json(json_object *o)
{
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* Calls read RPC method of the scheduler; the reply body without "ok" (caller puts), or NULL
 * after printing the scheduler's reason (*notfound = 1 when it said not_found). */
static json_object *sched_read(ctl *c, const char *method, json_object *body, int *notfound)
{
    if (notfound)
        *notfound = 0;
    _cleanup_free_ char *type = xasprintf("rpc.%s", method);
    msg_envelope *env = ctl_call(c, "scheduler.rpc", type, body, "the scheduler (is a ferry-scheduler running?)");
    if (!env)
        return NULL;
    json_object *b = msg_envelope_body(env);
    if (!jb(b, "ok")) {
        fprintf(stderr, PROG ": %s\n", jsd(b, "error", "the scheduler refused without a reason"));
        if (notfound)
            *notfound = strcmp(jsd(b, "code", ""), "not_found") == 0;
        msg_envelope_free(env);
        return NULL;
    }
    json_object *out = json_object_get(b);
    json_object_object_del(out, "ok");
    msg_envelope_free(env);
    return out;
}

/* Calls read RPC method with body (taken). With -o json it prints the answer and returns NULL
 * with *rc = 0; otherwise it returns the answer (caller puts) with *list its array `key`. NULL
 * with *rc = 1 when the call failed (printed). */
static json_object *read_list(ctl *c, const char *method, json_object *body, const char *key, json_object **list, int *rc)
{
    *rc = 1;
    *list = NULL;
    json_object *r = sched_read(c, method, body, NULL);
    if (!r)
        return NULL;
    if (c->json) {
        print_json(r);
        json_object_put(r);
        *rc = 0;
        return NULL;
    }
    json_object_object_get_ex(r, key, list);
    return r;
}

#define WHO_SCHED "the scheduler (is a ferry-scheduler running?)"

/* Publishes text (a message of the request contract) on ferry.scheduler and waits for the
 * scheduler's answer; returns the answer envelope or NULL (printed). */
static msg_envelope *sched_request(ctl *c, const char *text)
{
    return ctl_call_raw(c, MQ_SCHEDULER_KEY, text, WHO_SCHED);
}

/* ---- host ------------------------------------------------------------------------------------- */

static void used_cap(char *buf, size_t n, int64_t used, int64_t cap)
{
    snprintf(buf, n, "%lld/%lld", (long long)used, (long long)cap);
}

int cmd_host_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (parse_args("host list", argc, argv, NULL, 0, pos, 0) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *hosts = NULL;
    int rc;
    json_object *r = read_list(c, "host_list", json_object_new_object(), "hosts", &hosts, &rc);
    if (!r)
        return rc;
    printf("%-16s%-13s%-7s%-11s%-18s%-14s%-10s%s\n", "HOST", "STATE", "ALIVE", "cpu", "mem(mb)", "disk(gb)", "INSTANCES",
           "MIGRATIONS");
    for (size_t i = 0; hosts && i < json_object_array_length(hosts); i++) {
        json_object *h = json_object_array_get_idx(hosts, i);
        char cpu[32], mem[40], disk[40];
        used_cap(cpu, sizeof(cpu), ji(h, "used_vcpus"), ji(h, "capacity_vcpus"));
        used_cap(mem, sizeof(mem), ji(h, "used_memory_mb"), ji(h, "capacity_memory_mb"));
        used_cap(disk, sizeof(disk), ji(h, "used_disk_gb"), ji(h, "capacity_disk_gb"));
        printf("%-16s%-13s%-7s%-11s%-18s%-14s%-10lld%lld\n", jsd(h, "name", "?"), jsd(h, "state", "?"),
               jb(h, "alive") ? "yes" : "no", cpu, mem, disk, (long long)ji(h, "instances"),
               (long long)ji(h, "active_migrations"));
    }
    json_object_put(r);
    return 0;
}

int cmd_host_show(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (parse_args("host show", argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": host show needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(pos[0]));
    json_object *h = sched_read(c, "host_show", b, NULL);
    if (!h)
        return 1;
    if (c->json) {
        print_json(h);
        json_object_put(h);
        return 0;
    }
    /* the seed's table: the host's totals, then the usage of each project */
    printf("%-16s%-16s%-8s%-8s%s\n", "HOST", "PROJECT", "cpu", "mem(mb)", "disk(gb)");
    const char *name = jsd(h, "name", pos[0]);
    printf("%-16s%-16s%-8lld%-8lld%lld\n", name, "", (long long)ji(h, "vcpus"), (long long)ji(h, "memory_mb"),
           (long long)ji(h, "disk_gb"));
    json_object *projects = NULL;
    json_object_object_get_ex(h, "projects", &projects);
    for (size_t i = 0; projects && i < json_object_array_length(projects); i++) {
        json_object *p = json_object_array_get_idx(projects, i);
        printf("%-16s%-16s%-8lld%-8lld%lld\n", name, jsd(p, "project", ""), (long long)ji(p, "vcpus"),
               (long long)ji(p, "memory_mb"), (long long)ji(p, "disk_gb"));
    }
    json_object_put(h);
    return 0;
}

static int set_state(ctl *c, const char *host, const char *state, const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(host));
    json_object_object_add(b, "state", json_object_new_string(state));
    if (reason)
        json_object_object_add(b, "reason", json_object_new_string(reason));
    json_object *h = sched_read(c, "host_set_state", b, NULL);
    if (!h)
        return 1;
    if (c->json)
        print_json(h);
    else
        printf("%s: %s%s%s\n", jsd(h, "name", host), jsd(h, "state", state), js(h, "state_reason") ? " (" : "",
               js(h, "state_reason") ? js(h, "state_reason") : "");
    if (js(h, "state_reason") && !c->json)
        printf(")\n");
    json_object_put(h);
    return 0;
}

int cmd_host_disable(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--reason", 1, NULL}};
    if (parse_args("host disable", argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": host disable needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    return set_state(c, pos[0], "disabled", o[0].value ? o[0].value : "disabled by the operator");
}

int cmd_host_enable(ctl *c, int argc, char **argv)
{
    char *pos[1];
    if (parse_args("host enable", argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": host enable needs exactly one HOST\n");
        return 2;
    }
    if (ctl_connect(c) < 0)
        return 1;
    return set_state(c, pos[0], "enabled", NULL);
}

/* ---- instance --------------------------------------------------------------------------------- */

int cmd_instance_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--host", 1, NULL}};
    if (parse_args("instance list", argc, argv, o, ARRAY_SIZE(o), pos, 0) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    if (o[0].value)
        json_object_object_add(b, "host", json_object_new_string(o[0].value));
    json_object *list = NULL;
    int rc;
    json_object *r = read_list(c, "instance_list", b, "instances", &list, &rc);
    if (!r)
        return rc;
    /* euca-describe-instances' shape: one INSTANCE line each, the task state where it has one */
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *x = json_object_array_get_idx(list, i);
        printf("INSTANCE\t%s\t%s\t%s\t%s\t%s\t%s\n", jsd(x, "id", "?"), jsd(x, "name", "?"), jsd(x, "project", "-"),
               jsd(x, "vm_state", "?"), jsd(x, "task_state", "-"), jsd(x, "host", "-"));
    }
    json_object_put(r);
    return 0;
}

/* ---- following a migration --------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

typedef struct follow {
    ctl *c;
    int64_t id;
    int tty;
    char status[16];
    char *error;
    int postcopy;
    int64_t total, processed, remaining, iteration;
    int64_t last_print_ms;
    int done;
    int line_open; /* a progress line without its newline (tty) */
} follow;

static int terminal(const char *st)
{
    return !strcmp(st, "completed") || !strcmp(st, "failed") || !strcmp(st, "error") || !strcmp(st, "cancelled");
}

static void end_line(follow *f)
{
    if (f->line_open) {
        fputc('\n', stdout);
        f->line_open = 0;
    }
}

static void show_progress(follow *f, int force)
{
    int64_t now = mono_ms();
    if (!force && now - f->last_print_ms < (f->tty ? 200 : 2000))
        return;
    f->last_print_ms = now;
    int pct = f->total > 0 ? (int)(100 * (f->total - f->remaining) / f->total) : 0;
    if (pct < 0)
        pct = 0;
    if (pct > 100)
        pct = 100;
    if (f->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        printf("\r  [%s] %3d%%  %lld MiB of %lld MiB left  iteration %lld%s   ", bar, pct,
               (long long)(f->remaining >> 20), (long long)(f->total >> 20), (long long)f->iteration,
               f->postcopy ? "  post-copy" : "");
        f->line_open = 1;
    } else {
        printf("migration %lld: %d%%, %lld MiB of %lld MiB left, iteration %lld%s\n", (long long)f->id, pct,
               (long long)(f->remaining >> 20), (long long)(f->total >> 20), (long long)f->iteration,
               f->postcopy ? ", post-copy" : "");
    }
    fflush(stdout);
}

static void set_status(follow *f, const char *st, const char *message)
{
    if (!st || strcmp(st, f->status) == 0)
        return;
    strlcpy_f(f->status, st, sizeof(f->status));
    end_line(f);
    if (!f->c->json)
        printf("migration %lld: %s%s%s\n", (long long)f->id, st, message && *message ? ": " : "", message ? message : "");
    fflush(stdout);
    if (terminal(st)) {
        f->done = 1;
        if (message && strcmp(st, "completed") != 0) {
            free(f->error);
            f->error = xstrdup(message);
        }
    }
}

static void on_event(mq_conn *m, mq_delivery *d, void *arg)
{
    follow *f = arg;
    const mq_message *msg = mq_delivery_message(d);
    long long id = 0;
    char what[32] = "";
    if (sscanf(msg->routing_key, "migration.%lld.%31s", &id, what) == 2 && id == f->id && !f->done) {
        msg_envelope *env = NULL;
        if (msg_parse(msg->body, msg->len, &env, NULL) == 0) {
            json_object *b = msg_envelope_body(env), *st = NULL;
            trust_role role = trust_role_of(&f->c->cfg.trust, msg->user_id, NULL, 0);
            if (role != TRUST_SCHEDULER && role != TRUST_AGENT) {
                /* a status only a scheduler may tell, progress only an agent: anyone else lies */
                _cleanup_free_ char *u = log_escape(msg->user_id ? msg->user_id : "(no user_id)");
                fprintf(stderr, PROG ": ignored an event of migration %lld from %s: not a scheduler's or an agent's\n",
                        (long long)f->id, u);
            } else if (strcmp(jsd(b, "origin", ""), "scheduler") == 0) {
                if (role == TRUST_SCHEDULER) {
                    set_status(f, js(b, "status"), js(b, "message"));
                } else {
                    _cleanup_free_ char *u = log_escape(msg->user_id);
                    fprintf(stderr, PROG ": ignored a status of migration %lld from %s: only a scheduler tells a status\n",
                            (long long)f->id, u);
                }
            } else if (strcmp(what, "progress") == 0 && json_object_object_get_ex(b, "stats", &st)) {
                f->total = ji(st, "memory_total");
                f->processed = ji(st, "memory_processed");
                f->remaining = ji(st, "memory_remaining");
                f->iteration = ji(st, "iteration");
                if (jb(st, "postcopy"))
                    f->postcopy = 1;
                if (!f->c->json)
                    show_progress(f, 0);
            } else if (strcmp(what, "postcopy") == 0) {
                f->postcopy = 1;
                end_line(f);
                if (!f->c->json)
                    printf("migration %lld: switched to post-copy\n", (long long)f->id);
            }
            msg_envelope_free(env);
        }
    }
    mq_ack(m, d);
}

/* Reads migration f->id and takes its status (catches what happened before the events were
 * bound, or while the broker was away). */
static json_object *poll_migration(follow *f)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(f->id));
    json_object *m = sched_read(f->c, "migration_show", b, NULL);
    if (m) {
        set_status(f, js(m, "status"), js(m, "error"));
        if (jb(m, "postcopy_active"))
            f->postcopy = 1;
    }
    return m;
}

/* Follows migration id to its end: 0 completed, 1 otherwise. */
static int follow_migration(ctl *c, follow *f)
{
    f->tty = isatty(STDOUT_FILENO) && !c->json;
    json_object *m = poll_migration(f);
    json_object_put(m);
    int64_t next_poll = mono_ms() + 5000;
    while (!f->done) {
        if (interrupted) {
            end_line(f);
            fprintf(stderr, PROG ": stopped following migration %lld; it goes on (" PROG " migration abort %lld stops it)\n",
                    (long long)f->id, (long long)f->id);
            return 130;
        }
        struct timeval tv = {0, 200000};
        event_base_loopexit(c->base, &tv);
        event_base_dispatch(c->base);
        if (mono_ms() >= next_poll) {
            json_object_put(poll_migration(f));
            next_poll = mono_ms() + 5000;
        }
    }
    end_line(f);
    m = poll_migration(f);
    int ok = strcmp(f->status, "completed") == 0;
    if (c->json && m)
        print_json(m);
    else if (ok && m)
        printf("%s now runs on %s (%s, downtime %s ms)\n", jsd(m, "instance_id", "?"), jsd(m, "dest", "?"),
               jb(m, "postcopy_active") ? "post-copy" : "pre-copy", jsd(m, "downtime_ms", "?"));
    if (!ok)
        fprintf(stderr, PROG ": migration %lld %s: %s\n", (long long)f->id, f->status, f->error ? f->error : "no reason given");
    json_object_put(m);
    free(f->error);
    return ok ? 0 : 1;
}

/* Declares this process's event queue (before connecting): the migration events. */
static void watch_events(ctl *c, follow *f)
{
    _cleanup_free_ char *q = xasprintf("ferryctl.%d.%lld", (int)getpid(), (long long)wall_ms());
    mq_declare_queue(c->mq, q, MQ_Q_TRANSIENT);
    mq_bind(c->mq, q, MQ_EVENTS_EXCHANGE, "migration.#");
    mq_consume(c->mq, q, on_event, f);
}

/* ---- migrate ------------------------------------------------------------------------------------ */

int cmd_migrate(ctl *c, int argc, char **argv)
{
    int seed = strcmp(argv[0], "live_migration") == 0;
    const char *vn = seed ? "instances live_migration" : "migrate";
    char *pos[2];
    opt o[] = {{"--block-migrate", 0, NULL}, {"--postcopy", 0, NULL},      {"--auto-converge", 0, NULL},
               {"--bandwidth", 1, NULL},     {"--max-downtime", 1, NULL},  {"--postcopy-after", 1, NULL},
               {"--completion-timeout", 1, NULL}, {"--wait", 0, NULL}, {"--disk-over-commit", 0, NULL},
               {"--block-migrate-auto", 0, NULL}};
    int n = parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 2);
    if (n < 1 || (seed && n != 2)) {
        fprintf(stderr, PROG ": %s needs INSTANCE%s\n", vn, seed ? " and DEST" : " [DEST]");
        return 2;
    }
    msg_request rq = {0};
    char id[37];
    uuid_new(id);
    rq.id = id;
    rq.instance = pos[0];
    rq.host = n == 2 ? pos[1] : NULL;
    rq.block_migration = o[9].value ? MSG_BLOCK_AUTO : o[0].value ? MSG_BLOCK_YES : MSG_BLOCK_NO;
    rq.disk_over_commit = o[8].value != NULL;
    rq.post_copy = o[1].value != NULL;
    msg_request_defaults_init(&rq.options);
    if (o[2].value) {
        rq.options.auto_converge = true;
        rq.options_given |= MSG_OPT_AUTO_CONVERGE;
    }
    if (o[3].value) {
        if (int_arg(vn, "--bandwidth", o[3].value, 0, MSG_OPT_BANDWIDTH_MAX, &rq.options.bandwidth_mib_s) < 0)
            return 2;
        rq.options_given |= MSG_OPT_BANDWIDTH;
    }
    if (o[4].value) {
        if (int_arg(vn, "--max-downtime", o[4].value, MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &rq.options.max_downtime_ms) < 0)
            return 2;
        rq.options_given |= MSG_OPT_MAX_DOWNTIME;
    }
    if (o[5].value) {
        if (int_arg(vn, "--postcopy-after", o[5].value, MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
                    &rq.options.postcopy_after_iterations) < 0)
            return 2;
        rq.options_given |= MSG_OPT_POSTCOPY_AFTER;
    }
    if (o[6].value) {
        if (int_arg(vn, "--completion-timeout", o[6].value, 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, &rq.options.completion_timeout_s) < 0)
            return 2;
        rq.options_given |= MSG_OPT_COMPLETION_TIMEOUT;
    }
    char *err = NULL;
    _cleanup_free_ char *text = NULL;
    if (msg_build_request(&rq, &text, &err) < 0) {
        fprintf(stderr, PROG ": %s: %s\n", vn, err);
        free(err);
        return 2;
    }
    int wait = o[7].value != NULL;
    follow f = {.c = c};
    if (ctl_connect(c) < 0)
        return 1;
    if (wait)
        watch_events(c, &f); /* bound before the request goes out: no event is missed */
    msg_envelope *env = sched_request(c, text);
    if (!env)
        return 1;
    msg_reply r = {0};
    if (msg_reply_parse(env, &r, &err) < 0) {
        fprintf(stderr, PROG ": the scheduler's answer is not valid: %s\n", err);
        free(err);
        msg_envelope_free(env);
        return 1;
    }
    msg_envelope_free(env);
    if (!r.accepted) {
        if (c->json) {
            json_object *j = json_object_new_object();
            json_object_object_add(j, "request", json_object_new_string(id));
            json_object_object_add(j, "accepted", json_object_new_boolean(0));
            json_object_object_add(j, "reason", json_object_new_string(r.reason));
            print_json(j);
            json_object_put(j);
        }
        fprintf(stderr, PROG ": refused: %s\n", r.reason);
        msg_reply_free(&r);
        return 1;
    }
    if (c->json && !wait) {
        json_object *j = json_object_new_object();
        json_object_object_add(j, "request", json_object_new_string(id));
        json_object_object_add(j, "accepted", json_object_new_boolean(1));
        json_object_object_add(j, "migration", json_object_new_int64(r.migration));
        json_object_object_add(j, "dest", r.dest ? json_object_new_string(r.dest) : NULL);
        print_json(j);
        json_object_put(j);
    } else if (!c->json) {
        printf("migration %lld accepted: %s to %s (request %s)\n", (long long)r.migration, pos[0], r.dest ? r.dest : "?", id);
    }
    int rc = 0;
    if (wait) {
        f.id = r.migration;
        signal(SIGINT, on_sigint);
        rc = follow_migration(c, &f);
    }
    msg_reply_free(&r);
    return rc;
}

/* ---- migration ---------------------------------------------------------------------------------- */

int cmd_migration_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--status", 1, NULL}, {"--limit", 1, NULL}};
    if (parse_args("migration list", argc, argv, o, ARRAY_SIZE(o), pos, 0) < 0)
        return 2;
    int limit = 50;
    if (o[1].value && int_arg("migration list", "--limit", o[1].value, 1, 10000, &limit) < 0)
        return 2;
    static const char *const st[] = {"queued", "scheduled", "preparing", "running", "completing",
                                     "completed", "failed", "error", "cancelled"};
    if (o[0].value) {
        int known = 0;
        for (size_t i = 0; i < ARRAY_SIZE(st); i++)
            known |= strcmp(st[i], o[0].value) == 0;
        if (!known) {
            fprintf(stderr, PROG ": migration list: --status must be one of queued, scheduled, preparing, running, "
                            "completing, completed, failed, error, cancelled\n");
            return 2;
        }
    }
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    if (o[0].value)
        json_object_object_add(b, "status", json_object_new_string(o[0].value));
    json_object_object_add(b, "limit", json_object_new_int(limit));
    json_object *list = NULL;
    int rc;
    json_object *r = read_list(c, "migration_list", b, "migrations", &list, &rc);
    if (!r)
        return rc;
    printf("%-6s%-12s%-13s%-16s%-14s%-14s%-10s%s\n", "ID", "STATUS", "INSTANCE", "NAME", "SOURCE", "DEST", "TIME", "ERROR");
    for (size_t i = 0; list && i < json_object_array_length(list); i++) {
        json_object *m = json_object_array_get_idx(list, i);
        char t[24] = "-";
        if (js(m, "duration_ms"))
            snprintf(t, sizeof(t), "%.1f s", (double)ji(m, "duration_ms") / 1000.0);
        printf("%-6lld%-12s%-13s%-16s%-14s%-14s%-10s%s\n", (long long)ji(m, "id"), jsd(m, "status", "?"),
               jsd(m, "instance_id", "?"), jsd(m, "name", "?"), jsd(m, "source", "?"), jsd(m, "dest", "-"), t,
               jsd(m, "error", ""));
    }
    json_object_put(r);
    return 0;
}

/* bytes as MiB for people: one decimal below 10 MiB, so a small transfer does not read as 0;
 * writes into buf (32 bytes) and returns it */
static const char *mib_text(int64_t bytes, char buf[32])
{
    if (bytes > 0 && bytes < (10LL << 20))
        snprintf(buf, 32, "%.1f MiB", (double)bytes / (1 << 20));
    else
        snprintf(buf, 32, "%lld MiB", (long long)(bytes >> 20));
    return buf;
}

/* Reads the migration named by argv; NULL with *rc = 2 (bad usage) or 1 (printed). */
static json_object *read_migration(ctl *c, const char *vn, int argc, char **argv, int *rc)
{
    char *pos[1];
    int64_t id;
    *rc = 2;
    if (parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one migration ID\n", vn);
        return NULL;
    }
    if (migration_id_arg(vn, pos[0], &id) < 0)
        return NULL;
    *rc = 1;
    if (ctl_connect(c) < 0)
        return NULL;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    return sched_read(c, "migration_show", b, NULL);
}

int cmd_migration_show(ctl *c, int argc, char **argv)
{
    int rc;
    json_object *m = read_migration(c, "migration show", argc, argv, &rc);
    if (!m)
        return rc;
    if (c->json) {
        json_object_object_del(m, "events");
        print_json(m);
        json_object_put(m);
        return 0;
    }
    printf("migration %lld: %s\n", (long long)ji(m, "id"), jsd(m, "status", "?"));
    printf("  instance   %s (%s, %s)\n", jsd(m, "instance_id", "?"), jsd(m, "name", "?"), jsd(m, "instance", "?"));
    printf("  from       %s\n  to         %s\n", jsd(m, "source", "?"), jsd(m, "dest", "-"));
    printf("  request    %s\n", jsd(m, "request", "?"));
    char bw[32] = "unlimited";
    if (ji(m, "bandwidth_mib_s"))
        snprintf(bw, sizeof(bw), "%lld MiB/s", (long long)ji(m, "bandwidth_mib_s"));
    printf("  options    post-copy %s%s, auto-converge %s, block migration %s, bandwidth %s\n",
           jb(m, "post_copy") ? "allowed" : "no", jb(m, "postcopy_active") ? " (switched)" : "",
           jb(m, "auto_converge") ? "yes" : "no", jsd(m, "block_migration", "?"), bw);
    char sent[32], total[32], left[32];
    printf("  memory     %s sent of %s, %s left, iteration %lld\n", mib_text(ji(m, "memory_processed_bytes"), sent),
           mib_text(ji(m, "memory_total_bytes"), total), mib_text(ji(m, "memory_remaining_bytes"), left),
           (long long)ji(m, "iteration"));
    printf("  downtime   %s ms\n", jsd(m, "downtime_ms", "-"));
    printf("  created    %s\n  finished   %s\n", jsd(m, "created_at", "-"), jsd(m, "finished_at", "-"));
    printf("  owner      %s\n", jsd(m, "owner", "-"));
    if (js(m, "error"))
        printf("  error      %s\n", js(m, "error"));
    json_object_put(m);
    return 0;
}

int cmd_migration_events(ctl *c, int argc, char **argv)
{
    int rc;
    json_object *m = read_migration(c, "migration events", argc, argv, &rc);
    if (!m)
        return rc;
    json_object *ev = NULL;
    json_object_object_get_ex(m, "events", &ev);
    if (c->json) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "migration", json_object_new_int64(ji(m, "id")));
        json_object_object_add(o, "events", json_object_get(ev));
        print_json(o);
        json_object_put(o);
        json_object_put(m);
        return 0;
    }
    printf("%-34s%-12s%-12s%-12s%-16s%s\n", "AT", "ORIGIN", "HOST", "STATUS", "KIND", "MESSAGE");
    for (size_t i = 0; ev && i < json_object_array_length(ev); i++) {
        json_object *e = json_object_array_get_idx(ev, i);
        printf("%-34s%-12s%-12s%-12s%-16s%s\n", jsd(e, "at", "?"), jsd(e, "origin", "?"), jsd(e, "host", "-"),
               jsd(e, "status", "-"), jsd(e, "kind", "?"), jsd(e, "message", ""));
    }
    json_object_put(m);
    return 0;
}

static int operator_request(ctl *c, const char *vn, const char *type, int argc, char **argv)
{
    char *pos[1];
    int64_t id;
    if (parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one migration ID\n", vn);
        return 2;
    }
    if (migration_id_arg(vn, pos[0], &id) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    _cleanup_free_ char *text = msg_build(type, NULL, b);
    msg_envelope *env = sched_request(c, text);
    if (!env)
        return 1;
    const char *rt = msg_envelope_type(env);
    json_object *rb = msg_envelope_body(env);
    int refused = strlen(rt) > 8 && strcmp(rt + strlen(rt) - 8, ".refused") == 0;
    if (c->json)
        print_json(rb);
    if (refused)
        fprintf(stderr, PROG ": %s refused: %s\n", vn, jsd(rb, "reason", "no reason given"));
    else if (!c->json)
        printf("migration %lld: %s requested (it was %s)\n", (long long)id, strcmp(type, "migration.abort") == 0 ? "abort" : "force-complete",
               jsd(rb, "status", "?"));
    msg_envelope_free(env);
    return refused ? 1 : 0;
}

int cmd_migration_abort(ctl *c, int argc, char **argv)
{
    return operator_request(c, "migration abort", "migration.abort", argc, argv);
}

int cmd_migration_force_complete(ctl *c, int argc, char **argv)
{
    return operator_request(c, "migration force-complete", "migration.force_complete", argc, argv);
}

/* ---- host evacuate ------------------------------------------------------------------------------ */

int cmd_host_evacuate(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--dry-run", 0, NULL}, {"--wait", 0, NULL}};
    if (parse_args("host evacuate", argc, argv, o, ARRAY_SIZE(o), pos, 1) != 1) {
        fprintf(stderr, PROG ": host evacuate needs exactly one HOST\n");
        return 2;
    }
    const char *host = pos[0];
    int dry = o[0].value != NULL, wait = o[1].value != NULL;
    if (ctl_connect(c) < 0)
        return 1;
    /* the host must exist; its running instances that are not migrating yet */
    json_object *hb = json_object_new_object();
    json_object_object_add(hb, "host", json_object_new_string(host));
    json_object *h = sched_read(c, "host_show", hb, NULL);
    if (!h)
        return 1;
    json_object_put(h);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "host", json_object_new_string(host));
    json_object *r = sched_read(c, "instance_list", b, NULL);
    if (!r)
        return 1;
    json_object *list = NULL;
    json_object_object_get_ex(r, "instances", &list);
    size_t n = list ? json_object_array_length(list) : 0;
    if (!dry && set_state(c, host, "maintenance", "evacuating") != 0) {
        json_object_put(r);
        return 1;
    }
    int64_t *ids = xcalloc(n + 1, sizeof(*ids));
    size_t nids = 0, skipped = 0, refused = 0;
    /* with --wait, Ctrl-C from here on aborts what was requested (below) and requests no more */
    if (wait && !dry)
        signal(SIGINT, on_sigint);
    for (size_t i = 0; i < n; i++) {
        json_object *x = json_object_array_get_idx(list, i);
        const char *iid = jsd(x, "id", "?");
        if (interrupted) {
            printf("%s (%s): not requested (interrupted), left where it is\n", iid, jsd(x, "name", "?"));
            skipped++;
            continue;
        }
        if (strcmp(jsd(x, "vm_state", ""), "running") != 0 || js(x, "task_state")) {
            printf("%s (%s): %s%s, left where it is\n", iid, jsd(x, "name", "?"), jsd(x, "vm_state", "?"),
                   js(x, "task_state") ? ", already migrating" : "");
            skipped++;
            continue;
        }
        if (dry) {
            printf("would migrate %s (%s) away from %s, to a host the scheduler chooses\n", iid, jsd(x, "name", "?"), host);
            continue;
        }
        msg_request rq = {0};
        char id[37];
        uuid_new(id);
        rq.id = id;
        rq.instance = (char *)jsd(x, "uuid", iid);
        msg_request_defaults_init(&rq.options);
        _cleanup_free_ char *text = NULL;
        char *err = NULL;
        if (msg_build_request(&rq, &text, &err) < 0) {
            fprintf(stderr, PROG ": %s: %s\n", iid, err);
            free(err);
            refused++;
            continue;
        }
        msg_envelope *env = sched_request(c, text);
        msg_reply rep = {0};
        if (!env || msg_reply_parse(env, &rep, NULL) < 0) {
            refused++;
            msg_envelope_free(env);
            continue;
        }
        msg_envelope_free(env);
        if (rep.accepted) {
            printf("%s (%s): migration %lld to %s\n", iid, jsd(x, "name", "?"), (long long)rep.migration, rep.dest ? rep.dest : "?");
            ids[nids++] = rep.migration;
        } else {
            fprintf(stderr, PROG ": %s (%s) refused: %s\n", iid, jsd(x, "name", "?"), rep.reason);
            refused++;
        }
        msg_reply_free(&rep);
    }
    json_object_put(r);
    if (dry || !wait) {
        if (!dry)
            printf("%s: %zu migrations requested, %zu refused, %zu left in place%s\n", host, nids, refused, skipped,
                   nids ? " (" PROG " migration list to follow them)" : "");
        free(ids);
        return refused ? 1 : 0;
    }
    /* follow them all; Ctrl-C aborts the unfinished ones (and still waits for their end) */
    int aborted = 0;
    size_t ok = 0, bad = 0;
    char *state = xcalloc(nids + 1, 1); /* 1 when ended */
    for (;;) {
        size_t open = 0;
        for (size_t i = 0; i < nids; i++) {
            if (state[i])
                continue;
            json_object *mb = json_object_new_object();
            json_object_object_add(mb, "migration", json_object_new_int64(ids[i]));
            json_object *m = sched_read(c, "migration_show", mb, NULL);
            const char *st = m ? jsd(m, "status", "") : "";
            if (m && terminal(st)) {
                state[i] = 1;
                if (strcmp(st, "completed") == 0) {
                    ok++;
                    printf("migration %lld: %s now on %s\n", (long long)ids[i], jsd(m, "instance_id", "?"), jsd(m, "dest", "?"));
                } else {
                    bad++;
                    printf("migration %lld: %s %s: %s\n", (long long)ids[i], jsd(m, "instance_id", "?"), st, jsd(m, "error", ""));
                }
            } else {
                open++;
                if (interrupted && !aborted) {
                    json_object *ab = json_object_new_object();
                    json_object_object_add(ab, "migration", json_object_new_int64(ids[i]));
                    _cleanup_free_ char *text = msg_build("migration.abort", NULL, ab);
                    msg_envelope_free(sched_request(c, text));
                }
            }
            json_object_put(m);
        }
        if (interrupted && !aborted) {
            aborted = 1;
            fprintf(stderr, PROG ": interrupted: the unfinished migrations were asked to abort; waiting for their end\n");
        }
        fflush(stdout);
        if (!open)
            break;
        struct timeval tv = {1, 0};
        event_base_loopexit(c->base, &tv);
        event_base_dispatch(c->base);
    }
    printf("%s: %zu of %zu instances moved away, %zu failed or cancelled, %zu refused, %zu left in place\n", host, ok,
           nids + refused + skipped, bad, refused, skipped);
    free(state);
    free(ids);
    return bad || refused || aborted ? 1 : 0;
}
