/* verbs_migration: ferryctl migrate and the migration verbs (list, show, events, abort,
 * force-complete, resolve). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "log.h"
#include "util.h"
#include "verbs_priv.h"

/* ---- migrate ------------------------------------------------------------------------------------ */

static int forecast_ask(ctl *c, const char *vn, const char *instance, const char *dest, int bw, int down, int deadline,
                        int sample);

int cmd_migrate(ctl *c, int argc, char **argv)
{
    int seed = strcmp(argv[0], "live_migration") == 0;
    const char *vn = seed ? "instances live_migration" : "migrate";
    char *pos[2];
    opt o[] = {{"--block-migrate", 0, NULL},
               {"--postcopy", 0, NULL},
               {"--auto-converge", 0, NULL},
               {"--bandwidth", 1, NULL},
               {"--max-downtime", 1, NULL},
               {"--postcopy-after", 1, NULL},
               {"--completion-timeout", 1, NULL},
               {"--wait", 0, NULL},
               {"--disk-over-commit", 0, NULL},
               {"--block-migrate-auto", 0, NULL},
               {"--objective-downtime", 1, NULL},
               {"--objective-deadline", 1, NULL},
               {"--dry-run", 0, NULL},
               {"--completion-action", 1, NULL},
               {"--parallel", 1, NULL},
               {"--xbzrle", 1, NULL}};
    int n = verbs_parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 2);
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
        if (verbs_int_arg(vn, "--bandwidth", o[3].value, 0, MSG_OPT_BANDWIDTH_MAX, &rq.options.bandwidth_mib_s) < 0)
            return 2;
        rq.options_given |= MSG_OPT_BANDWIDTH;
    }
    if (o[4].value) {
        if (verbs_int_arg(vn, "--max-downtime", o[4].value, MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX,
                          &rq.options.max_downtime_ms) < 0)
            return 2;
        rq.options_given |= MSG_OPT_MAX_DOWNTIME;
    }
    if (o[5].value) {
        if (verbs_int_arg(vn, "--postcopy-after", o[5].value, MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
                          &rq.options.postcopy_after_iterations) < 0)
            return 2;
        rq.options_given |= MSG_OPT_POSTCOPY_AFTER;
    }
    if (o[6].value) {
        if (verbs_int_arg(vn, "--completion-timeout", o[6].value, 0, MSG_OPT_COMPLETION_TIMEOUT_MAX,
                          &rq.options.completion_timeout_s) < 0)
            return 2;
        rq.options_given |= MSG_OPT_COMPLETION_TIMEOUT;
    }
    if (o[13].value) {
        rq.options.completion_action = msg_completion_action_of(o[13].value);
        if (rq.options.completion_action < 0) {
            fprintf(stderr, PROG ": %s: --completion-action takes abort, postcopy or pause, not '%s'\n", vn,
                    o[13].value);
            return 2;
        }
        rq.options_given |= MSG_OPT_COMPLETION_ACTION;
    }
    if (o[14].value) {
        if (verbs_int_arg(vn, "--parallel", o[14].value, 1, MSG_OPT_PARALLEL_MAX, &rq.options.parallel_connections) < 0)
            return 2;
        rq.options_given |= MSG_OPT_PARALLEL;
    }
    if (o[15].value) {
        if (verbs_int_arg(vn, "--xbzrle", o[15].value, 0, MSG_OPT_XBZRLE_CACHE_MAX, &rq.options.xbzrle_cache_mib) < 0)
            return 2;
        rq.options_given |= MSG_OPT_XBZRLE_CACHE;
    }
    if (o[10].value && verbs_int_arg(vn, "--objective-downtime", o[10].value, MSG_OPT_DOWNTIME_MIN,
                                     MSG_OPT_DOWNTIME_MAX, &rq.objectives.max_downtime_ms) < 0)
        return 2;
    if (o[11].value &&
        verbs_int_arg(vn, "--objective-deadline", o[11].value, 1, MSG_OBJ_DEADLINE_MAX, &rq.objectives.deadline_s) < 0)
        return 2;
    if (o[12].value) {
        /* the forecast the plan would take (the allowed pause: the objective, else --max-downtime);
         * nothing is requested */
        if (o[7].value) {
            fprintf(stderr, PROG ": %s: --dry-run and --wait exclude each other\n", vn);
            return 2;
        }
        int down = rq.objectives.max_downtime_ms               ? rq.objectives.max_downtime_ms
                   : (rq.options_given & MSG_OPT_MAX_DOWNTIME) ? rq.options.max_downtime_ms
                                                               : 0;
        int rc =
            forecast_ask(c, vn, rq.instance, rq.host, rq.options.bandwidth_mib_s, down, rq.objectives.deadline_s, 1);
        if (!c->json)
            printf("dry run: nothing was requested%s\n",
                   rq.post_copy ? "" : " (post-copy is allowed only with --postcopy)");
        return rc;
    }
    /* objectives: the scheduler samples the guest's dirty rate before it answers */
    if (rq.objectives.max_downtime_ms || rq.objectives.deadline_s)
        c->timeout_ms += 20000;
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
        verbs_watch_events(c, &f); /* bound before the request goes out: no event is missed */
    msg_envelope *env = verbs_sched_request(c, text);
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
            verbs_print_json(j);
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
        verbs_print_json(j);
        json_object_put(j);
    } else if (!c->json) {
        printf("migration %lld accepted: %s to %s (request %s)\n", (long long)r.migration, pos[0],
               r.dest ? r.dest : "?", id);
    }
    int rc = 0;
    if (wait) {
        f.id = r.migration;
        verbs_catch_sigint();
        rc = verbs_follow_migration(c, &f);
    }
    msg_reply_free(&r);
    return rc;
}

/* ---- migration ---------------------------------------------------------------------------------- */

int cmd_migration_list(ctl *c, int argc, char **argv)
{
    char *pos[1];
    opt o[] = {{"--status", 1, NULL}, {"--limit", 1, NULL}};
    if (verbs_parse_args("migration list", argc, argv, o, ARRAY_SIZE(o), pos, 0) < 0)
        return 2;
    int limit = 50;
    if (o[1].value && verbs_int_arg("migration list", "--limit", o[1].value, 1, 10000, &limit) < 0)
        return 2;
    static const char *const st[] = {"queued",    "scheduled", "preparing", "running",  "completing",
                                     "completed", "failed",    "error",     "cancelled"};
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
    json_object *r = verbs_read_list(c, "migration_list", b, "migrations", &list, &rc);
    if (!r)
        return rc;
    printf("%-6s%-12s%-13s%-16s%-14s%-14s%-10s%s\n", "ID", "STATUS", "INSTANCE", "NAME", "SOURCE", "DEST", "TIME",
           "ERROR");
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
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one migration ID\n", vn);
        return NULL;
    }
    if (verbs_migration_id_arg(vn, pos[0], &id) < 0)
        return NULL;
    *rc = 1;
    if (ctl_connect(c) < 0)
        return NULL;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    return verbs_sched_read(c, "migration_show", b, NULL);
}

int cmd_migration_show(ctl *c, int argc, char **argv)
{
    int rc;
    json_object *m = read_migration(c, "migration show", argc, argv, &rc);
    if (!m)
        return rc;
    if (c->json) {
        json_object_object_del(m, "events");
        verbs_print_json(m);
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
    if (ji(m, "parallel_connections") > 1 || ji(m, "xbzrle_cache_mib") > 0) {
        printf("  transport ");
        if (ji(m, "parallel_connections") > 1)
            printf(" %lld parallel connections", (long long)ji(m, "parallel_connections"));
        if (ji(m, "xbzrle_cache_mib") > 0)
            printf(" xbzrle compression, %lld MiB cache", (long long)ji(m, "xbzrle_cache_mib"));
        printf("\n");
    }
    if (ji(m, "completion_timeout_s"))
        printf("  timeout    %lld s, then %s\n", (long long)ji(m, "completion_timeout_s"),
               jsd(m, "completion_action", "abort"));
    if (js(m, "policy"))
        printf("  policy     %s\n", js(m, "policy"));
    char sent[32], total[32], left[32];
    printf("  memory     %s sent of %s, %s left, iteration %lld\n", mib_text(ji(m, "memory_processed_bytes"), sent),
           mib_text(ji(m, "memory_total_bytes"), total), mib_text(ji(m, "memory_remaining_bytes"), left),
           (long long)ji(m, "iteration"));
    if (ji(m, "disk_total_bytes"))
        printf("  disks      %s copied of %s, %s left\n", mib_text(ji(m, "disk_processed_bytes"), sent),
               mib_text(ji(m, "disk_total_bytes"), total), mib_text(ji(m, "disk_remaining_bytes"), left));
    if (js(m, "transfer_bytes_s") || js(m, "dirty_rate_bytes_s") || js(m, "cpu_throttle_pct")) {
        printf("  rates      sent at %s/s, guest dirtied %s/s", mib_text(ji(m, "transfer_bytes_s"), sent),
               mib_text(ji(m, "dirty_rate_bytes_s"), left));
        if (js(m, "cpu_throttle_pct"))
            printf(", vCPUs throttled %lld %%", (long long)ji(m, "cpu_throttle_pct"));
        printf(" (last progress)\n");
    }
    if (js(m, "settings_verified"))
        printf("  verified   %s\n", js(m, "settings_verified"));
    printf("  downtime   %s ms\n", jsd(m, "downtime_ms", "-"));
    if (js(m, "forecast_mode")) {
        char fdur[32] = "does not converge";
        if (jb(m, "forecast_converges"))
            snprintf(fdur, sizeof(fdur), "%.1f s", (double)ji(m, "forecast_duration_ms") / 1000.0);
        printf("  forecast   %s %s, pause %lld ms (dirty rate %lld MiB/s, link %lld MiB/s)", js(m, "forecast_mode"),
               fdur, (long long)ji(m, "forecast_downtime_ms"), (long long)ji(m, "forecast_dirty_mib_s"),
               (long long)ji(m, "forecast_bandwidth_mib_s"));
        if (js(m, "forecast_error_pct"))
            printf("; took %.1f s: %s%s %%", (double)ji(m, "duration_ms") / 1000.0,
                   js(m, "forecast_error_pct")[0] == '-' ? "" : "+", js(m, "forecast_error_pct"));
        printf("\n");
    }
    if (ji(m, "objective_max_downtime_ms") || ji(m, "objective_deadline_s")) {
        printf("  objectives");
        if (ji(m, "objective_max_downtime_ms"))
            printf(" max downtime %lld ms", (long long)ji(m, "objective_max_downtime_ms"));
        if (ji(m, "objective_deadline_s"))
            printf("%s deadline %lld s", ji(m, "objective_max_downtime_ms") ? "," : "",
                   (long long)ji(m, "objective_deadline_s"));
        printf("\n  plan       %s\n", jsd(m, "objective_plan", "-"));
        json_object *rcpt = NULL, *x = NULL;
        if (json_object_object_get_ex(m, "receipt", &rcpt) && json_object_is_type(rcpt, json_type_object)) {
            printf("  receipt   ");
            if (json_object_object_get_ex(rcpt, "max_downtime_ms", &x))
                printf(" max downtime %s (paused %s ms)",
                       !js(x, "met")  ? "not known yet"
                       : jb(x, "met") ? "met"
                                      : "MISSED",
                       jsd(x, "measured_ms", "?"));
            if (json_object_object_get_ex(rcpt, "deadline_s", &x))
                printf(" deadline %s (took %.1f s)", jb(x, "met") ? "met" : "MISSED",
                       (double)ji(x, "measured_ms") / 1000.0);
            printf("\n");
        }
    }
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
        verbs_print_json(o);
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

/* Sends operator request text to the schedulers and waits for the answer: 0 accepted, 1
 * refused (the reason printed) or no answer; *env the answer (caller frees; NULL without one),
 * printed as JSON with --json. */
static int ask(ctl *c, const char *vn, const char *text, msg_envelope **env)
{
    *env = verbs_sched_request(c, text);
    if (!*env)
        return 1;
    const char *rt = msg_envelope_type(*env);
    json_object *rb = msg_envelope_body(*env);
    int refused = strlen(rt) > 8 && strcmp(rt + strlen(rt) - 8, ".refused") == 0;
    if (c->json)
        verbs_print_json(rb);
    if (refused)
        fprintf(stderr, PROG ": %s refused: %s\n", vn, jsd(rb, "reason", "no reason given"));
    return refused ? 1 : 0;
}

static int operator_request(ctl *c, const char *vn, const char *type, int argc, char **argv)
{
    char *pos[1];
    int64_t id;
    if (verbs_parse_args(vn, argc, argv, NULL, 0, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one migration ID\n", vn);
        return 2;
    }
    if (verbs_migration_id_arg(vn, pos[0], &id) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    _cleanup_free_ char *text = msg_build(type, NULL, b);
    msg_envelope *env;
    int rc = ask(c, vn, text, &env);
    if (rc == 0 && !c->json)
        printf("migration %lld: %s requested (it was %s)\n", (long long)id,
               strcmp(type, "migration.abort") == 0 ? "abort" : "force-complete",
               jsd(msg_envelope_body(env), "status", "?"));
    msg_envelope_free(env);
    return rc;
}

int cmd_migration_abort(ctl *c, int argc, char **argv)
{
    return operator_request(c, "migration abort", "migration.abort", argc, argv);
}

int cmd_migration_force_complete(ctl *c, int argc, char **argv)
{
    return operator_request(c, "migration force-complete", "migration.force_complete", argc, argv);
}

int cmd_migration_resolve(ctl *c, int argc, char **argv)
{
    const char *vn = "migration resolve";
    opt o[] = {{"--to", 1, NULL}};
    char *pos[1];
    int64_t id;
    if (verbs_parse_args(vn, argc, argv, o, 1, pos, 1) != 1) {
        fprintf(stderr, PROG ": %s needs exactly one migration ID\n", vn);
        return 2;
    }
    if (!o[0].value || (strcmp(o[0].value, "source") != 0 && strcmp(o[0].value, "destination") != 0)) {
        fprintf(stderr, PROG ": %s: --to must be source or destination (where the guest runs)\n", vn);
        return 2;
    }
    if (verbs_migration_id_arg(vn, pos[0], &id) < 0)
        return 2;
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(id));
    json_object_object_add(b, "to", json_object_new_string(o[0].value));
    _cleanup_free_ char *text = msg_build("migration.resolve", NULL, b);
    /* the scheduler asks both hosts first (each within its rpc_timeout_ms): wait for that too */
    c->timeout_ms = c->timeout_ms * 2 + 2000;
    msg_envelope *env;
    int rc = ask(c, vn, text, &env);
    if (rc == 0 && !c->json)
        printf("migration %lld: resolved, %s (the guest runs on %s)\n", (long long)id,
               jsd(msg_envelope_body(env), "status", "?"), jsd(msg_envelope_body(env), "host", "?"));
    msg_envelope_free(env);
    return rc;
}

/* "12.3 s", "850 ms" */
static void fmt_ms(char *buf, size_t n, int64_t ms)
{
    if (ms >= 10000)
        snprintf(buf, n, "%.1f s", (double)ms / 1000.0);
    else
        snprintf(buf, n, "%lld ms", (long long)ms);
}

/* Asks the schedulers for instance's forecast (bandwidth, downtime and deadline 0: not given)
 * and prints it; 0, 1 (refused or no answer). */
static int forecast_ask(ctl *c, const char *vn, const char *instance, const char *dest, int bw, int down, int deadline,
                        int sample)
{
    if (ctl_connect(c) < 0)
        return 1;
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(instance));
    if (dest)
        json_object_object_add(b, "dest", json_object_new_string(dest));
    if (bw)
        json_object_object_add(b, "bandwidth_mib_s", json_object_new_int(bw));
    if (down)
        json_object_object_add(b, "max_downtime_ms", json_object_new_int(down));
    if (deadline)
        json_object_object_add(b, "deadline_s", json_object_new_int(deadline));
    json_object_object_add(b, "seconds", json_object_new_int(sample));
    _cleanup_free_ char *text = msg_build("instance.forecast", NULL, b);
    /* the scheduler waits for the host's sample (seconds, and up to 5 s more) */
    c->timeout_ms = c->timeout_ms * 2 + sample * 1000 + 5000;
    msg_envelope *env;
    int rc = ask(c, vn, text, &env);
    if (rc == 0 && !c->json) {
        json_object *r = msg_envelope_body(env), *modes = NULL;
        printf("forecast for %s (%s) on %s: %lld MiB of memory, dirtied at %lld MiB/s; link %lld MiB/s (%s); "
               "pause allowed %lld ms",
               jsd(r, "instance", "?"), jsd(r, "uuid", "?"), jsd(r, "host", "?"), (long long)ji(r, "memory_mib"),
               (long long)ji(r, "dirty_rate_mib_s"), (long long)ji(r, "bandwidth_mib_s"), jsd(r, "bandwidth_from", "?"),
               (long long)ji(r, "max_downtime_ms"));
        if (ji(r, "deadline_s") > 0)
            printf(", deadline %lld s", (long long)ji(r, "deadline_s"));
        if (ji(r, "nonzero_mib") > 0)
            printf("\n  %lld MiB of the memory is not zero pages (sampled): what a first pass sends",
                   (long long)ji(r, "nonzero_mib"));
        printf("\n%-14s %-5s %-9s %-9s %-9s %-6s %-8s %s\n", "MODE", "ENDS", "DURATION", "PAUSE", "SENT", "PASSES",
               "THROTTLE", "MEETS");
        if (json_object_object_get_ex(r, "modes", &modes) && json_object_is_type(modes, json_type_array)) {
            for (size_t i = 0; i < json_object_array_length(modes); i++) {
                json_object *m = json_object_array_get_idx(modes, i);
                char dur[32], pause[32], sent[32], thr[16];
                int ends = jb(m, "converges");
                if (ends)
                    fmt_ms(dur, sizeof(dur), ji(m, "duration_ms"));
                else
                    snprintf(dur, sizeof(dur), "-");
                fmt_ms(pause, sizeof(pause), ji(m, "downtime_ms"));
                snprintf(sent, sizeof(sent), "%lld MiB", (long long)(ji(m, "bytes") >> 20));
                if (ji(m, "throttle_pct") > 0)
                    snprintf(thr, sizeof(thr), "%lld %%", (long long)ji(m, "throttle_pct"));
                else
                    snprintf(thr, sizeof(thr), "-");
                printf("%-14s %-5s %-9s %-9s %-9s %-6lld %-8s %s\n", jsd(m, "mode", "?"), ends ? "yes" : "no", dur,
                       ends ? pause : "-", sent, (long long)ji(m, "passes"), thr, jb(m, "meets") ? "yes" : "no");
            }
        }
        if (js(r, "choice"))
            printf("choice: %s\n", js(r, "choice"));
        else
            printf("choice: none: %s\n", jsd(r, "reason", "no mode meets the objectives"));
    }
    msg_envelope_free(env);
    return rc;
}

int cmd_forecast(ctl *c, int argc, char **argv)
{
    const char *vn = "forecast";
    opt o[] = {{"--bandwidth", 1, NULL}, {"--max-downtime", 1, NULL}, {"--deadline", 1, NULL}, {"--sample", 1, NULL}};
    char *pos[2];
    int n = verbs_parse_args(vn, argc, argv, o, ARRAY_SIZE(o), pos, 2);
    if (n < 1) {
        fprintf(stderr, PROG ": %s needs INSTANCE (name, uuid or i-xxxxxxxx) [DEST]\n", vn);
        return 2;
    }
    int bw = 0, down = 0, deadline = 0, sample = 1;
    if ((o[0].value && verbs_int_arg(vn, "--bandwidth", o[0].value, 1, MSG_OPT_BANDWIDTH_MAX, &bw) < 0) ||
        (o[1].value &&
         verbs_int_arg(vn, "--max-downtime", o[1].value, MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &down) < 0) ||
        (o[2].value && verbs_int_arg(vn, "--deadline", o[2].value, 1, MSG_OBJ_DEADLINE_MAX, &deadline) < 0) ||
        (o[3].value && verbs_int_arg(vn, "--sample", o[3].value, 1, 10, &sample) < 0))
        return 2;
    return forecast_ask(c, vn, pos[0], n == 2 ? pos[1] : NULL, bw, down, deadline, sample);
}
