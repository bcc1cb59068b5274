/* verbs_follow: following a migration to its end (ferryctl migrate --wait, migration events):
 * its events on ferry.events, polls of the scheduler between them, the progress line. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "log.h"
#include "trust.h"
#include "util.h"
#include "verbs_priv.h"

/* ---- following a migration --------------------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

void verbs_catch_sigint(void)
{
    signal(SIGINT, on_sigint);
}

int verbs_interrupted(void)
{
    return interrupted;
}

int verbs_terminal(const char *st)
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

/* The rates, throttle and disks of the last progress (", sent 8 MiB/s, dirtied 2 MiB/s"), or "". */
static void rates_text(const follow *f, char *buf, size_t n)
{
    size_t u = 0;
    buf[0] = 0;
    if (f->rate_bps >= 0 && u < n)
        u += (size_t)snprintf(buf + u, n - u, ", sent %lld MiB/s", (long long)(f->rate_bps >> 20));
    if (f->dirty_bps >= 0 && u < n)
        u += (size_t)snprintf(buf + u, n - u, ", dirtied %lld MiB/s", (long long)(f->dirty_bps >> 20));
    if (f->throttle_pct > 0 && u < n)
        u += (size_t)snprintf(buf + u, n - u, ", throttled %lld %%", (long long)f->throttle_pct);
    if (f->disk_total > 0 && u < n)
        snprintf(buf + u, n - u, ", disks %lld of %lld MiB left", (long long)(f->disk_remaining >> 20),
                 (long long)(f->disk_total >> 20));
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
    char rates[160];
    rates_text(f, rates, sizeof(rates));
    if (f->tty) {
        char bar[31];
        int fill = pct * 30 / 100;
        for (int i = 0; i < 30; i++)
            bar[i] = i < fill ? '#' : '-';
        bar[30] = 0;
        printf("\r  [%s] %3d%%  %lld MiB of %lld MiB left  iteration %lld%s%s   ", bar, pct,
               (long long)(f->remaining >> 20), (long long)(f->total >> 20), (long long)f->iteration,
               f->postcopy ? "  post-copy" : "", rates);
        f->line_open = 1;
    } else {
        printf("migration %lld: %d%%, %lld MiB of %lld MiB left, iteration %lld%s%s\n", (long long)f->id, pct,
               (long long)(f->remaining >> 20), (long long)(f->total >> 20), (long long)f->iteration,
               f->postcopy ? ", post-copy" : "", rates);
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
        printf("migration %lld: %s%s%s\n", (long long)f->id, st, message && *message ? ": " : "",
               message ? message : "");
    fflush(stdout);
    if (verbs_terminal(st)) {
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
                    fprintf(stderr,
                            PROG ": ignored a status of migration %lld from %s: only a scheduler tells a status\n",
                            (long long)f->id, u);
                }
            } else if (strcmp(what, "progress") == 0 && json_object_object_get_ex(b, "stats", &st)) {
                f->total = ji(st, "memory_total");
                f->processed = ji(st, "memory_processed");
                f->remaining = ji(st, "memory_remaining");
                f->iteration = ji(st, "iteration");
                f->rate_bps = json_object_object_get_ex(st, "memory_bps", NULL) ? ji(st, "memory_bps") : -1;
                /* libvirt's dirty rate is in pages/s; QEMU's target pages are 4 KiB */
                int64_t pages = json_object_object_get_ex(st, "dirty_rate", NULL) ? ji(st, "dirty_rate") : -1;
                f->dirty_bps = pages >= 0 && pages < (INT64_MAX >> 12) ? pages * 4096 : -1;
                f->throttle_pct = json_object_object_get_ex(st, "auto_converge_throttle", NULL)
                                      ? ji(st, "auto_converge_throttle")
                                      : -1;
                f->disk_total = ji(st, "disk_total");
                f->disk_remaining = ji(st, "disk_remaining");
                if (jb(st, "postcopy"))
                    f->postcopy = 1;
                if (!f->c->json)
                    show_progress(f, 0);
            } else if (strcmp(what, "settings_verified") == 0 || strcmp(what, "guest_paused") == 0) {
                end_line(f);
                if (!f->c->json) {
                    _cleanup_free_ char *r = log_escape(jsd(b, "reason", ""));
                    printf("migration %lld: %s: %s\n", (long long)f->id,
                           strcmp(what, "guest_paused") == 0 ? "guest paused" : "settings verified in libvirt", r);
                }
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
    json_object *m = verbs_sched_read(f->c, "migration_show", b, NULL);
    if (m) {
        set_status(f, js(m, "status"), js(m, "error"));
        if (jb(m, "postcopy_active"))
            f->postcopy = 1;
    }
    return m;
}

/* Follows migration id to its end: 0 completed, 1 otherwise. */
int verbs_follow_migration(ctl *c, follow *f)
{
    f->tty = isatty(STDOUT_FILENO) && !c->json;
    json_object *m = poll_migration(f);
    json_object_put(m);
    int64_t next_poll = mono_ms() + 5000;
    while (!f->done) {
        if (interrupted) {
            end_line(f);
            fprintf(stderr,
                    PROG ": stopped following migration %lld; it goes on (" PROG " migration abort %lld stops it)\n",
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
        verbs_print_json(m);
    else if (ok && m)
        printf("%s now runs on %s (%s, downtime %s ms)\n", jsd(m, "instance_id", "?"), jsd(m, "dest", "?"),
               jb(m, "postcopy_active") ? "post-copy" : "pre-copy", jsd(m, "downtime_ms", "?"));
    if (!ok)
        fprintf(stderr, PROG ": migration %lld %s: %s\n", (long long)f->id, f->status,
                f->error ? f->error : "no reason given");
    json_object_put(m);
    free(f->error);
    return ok ? 0 : 1;
}

/* Declares this process's event queue (before connecting): the migration events. */
void verbs_watch_events(ctl *c, follow *f)
{
    _cleanup_free_ char *q = xasprintf("ferryctl.%d.%lld", (int)getpid(), (long long)wall_ms());
    mq_declare_queue(c->mq, q, MQ_Q_TRANSIENT);
    mq_bind(c->mq, q, MQ_EVENTS_EXCHANGE, "migration.#");
    mq_consume(c->mq, q, on_event, f);
}
