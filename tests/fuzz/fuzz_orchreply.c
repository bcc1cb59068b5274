/* libFuzzer target: what the scheduler reads from an agent's RPC replies and migration events
 * before it acts (scheduler/orchreply.c). The input's first byte, counted from '0' (modulo 19),
 * chooses the reader (modulo 20): the replies to check_source .. pause_postcopy ('0'..':'), the
 * event kinds (';' progress, '<' postcopy, '=' completed, '>' failed, '?' cancelled, '@' and
 * 'A' kinds not read, 'B' postcopy_paused), then the reply to dirty_rate ('C'). The rest is the
 * message:
 * it goes through the envelope parser (common/msg.c) as in orchcall.c and hoststate.c, and its
 * body through the reader. Every result is then checked: a refusal says why and leaves nothing
 * believed; every accepted value is within the bounds orchreply.h promises (abort() else). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentmsg.h"
#include "msg.h"
#include "orchreply.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const event_kinds[] = {"progress", "postcopy",        "completed",
                                          "failed",   "cancelled",       "guest_paused",
                                          "x",        "postcopy_paused", "settings_verified"};

static void check(int ok)
{
    if (!ok)
        abort();
}

/* A text of at most max bytes without control bytes (multiline: but tabs and line ends). */
static int text_ok(const char *s, size_t max, int multiline)
{
    if (!s)
        return 0;
    size_t n = strlen(s);
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f)
            return 0;
    }
    return 1;
}

/* A printable copy of an error text: no control byte, cut at ORCHREPLY_MAX_TEXT plus "...". */
static int message_ok(const char *s)
{
    return text_ok(s, ORCHREPLY_MAX_TEXT + 3, 0);
}

static int word_ok(const char *w)
{
    size_t n = strlen(w);
    if (n == 0 || n > ORCHREPLY_MAX_WORD)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((w[i] >= 'a' && w[i] <= 'z') || (w[i] >= '0' && w[i] <= '9') || w[i] == '_'))
            return 0;
    return 1;
}

static int in(int64_t v, int64_t lo, int64_t hi)
{
    return v >= lo && v <= hi;
}

static void check_disks(json_object *disks)
{
    if (!disks)
        return;
    check(json_object_is_type(disks, json_type_array));
    size_t n = json_object_array_length(disks);
    check(n <= ORCHREPLY_MAX_DISKS);
    for (size_t i = 0; i < n; i++) {
        json_object *d = json_object_array_get_idx(disks, i), *v;
        check(json_object_is_type(d, json_type_object));
        check(json_object_object_get_ex(d, "path", &v) && json_object_is_type(v, json_type_string));
        check(text_ok(json_object_get_string(v), ORCHREPLY_MAX_PATH, 0) && *json_object_get_string(v));
        check((size_t)json_object_get_string_len(v) == strlen(json_object_get_string(v)));
        json_object_object_foreach(d, key, val)
        {
            if (strcmp(key, "format") == 0 || strcmp(key, "target") == 0)
                check(json_object_is_type(val, json_type_string) &&
                      text_ok(json_object_get_string(val), ORCHREPLY_MAX_WORD, 0));
            else if (strcmp(key, "shared") == 0)
                check(json_object_is_type(val, json_type_boolean));
            else if (strcmp(key, "virtual_size") == 0)
                check(json_object_is_type(val, json_type_int) &&
                      in(json_object_get_int64(val), 0, ORCHREPLY_MAX_BYTES));
            else
                check(strcmp(key, "path") == 0); /* nothing else is passed on */
        }
    }
}

static void check_reply(orchreply_method m, const orchreply *r)
{
    check(r->method == m);
    if (!r->ok) {
        check(r->code != RPC_OK && r->code <= RPC_UNKNOWN);
        check(message_ok(r->error));
        check(!r->src.disks && !r->job.error && !r->ann.detail);
        return;
    }
    check(r->ok == 1 && !r->error);
    switch (m) {
    case ORCHREPLY_CHECK_SOURCE:
        check(text_ok(r->src.domain_xml, ORCHREPLY_MAX_XML, 1) && *r->src.domain_xml);
        check(in(r->src.memory_mb, 0, ORCHREPLY_MAX_MEMORY_MB));
        check(!r->src.shared_probe || text_ok(r->src.shared_probe, 64, 0));
        check_disks(r->src.disks);
        break;
    case ORCHREPLY_CHECK_DESTINATION:
        check(r->dst.shared_storage == 0 || r->dst.shared_storage == 1);
        check(!r->dst.address ||
              (text_ok(r->dst.address, ORCHREPLY_MAX_NAME, 0) && agentmsg_address_ok(r->dst.address)));
        break;
    case ORCHREPLY_JOB_STATUS:
        check((unsigned)r->job.state <= JOB_STATE_COUNT);
        check(word_ok(r->job.word));
        if (r->job.state != JOB_STATE_COUNT)
            check(strcmp(job_state_str(r->job.state), r->job.word) == 0);
        else
            check(strcmp(r->job.word, "running") && strcmp(r->job.word, "completed") && strcmp(r->job.word, "failed") &&
                  strcmp(r->job.word, "cancelled") && strcmp(r->job.word, "none") &&
                  strcmp(r->job.word, "postcopy_paused"));
        check(r->job.postcopy == 0 || r->job.postcopy == 1);
        check(!r->job.error || message_ok(r->job.error));
        check(r->job.dom_exists == 0 || r->job.dom_exists == 1);
        check(r->job.dom_persistent == 0 || r->job.dom_persistent == 1);
        check(r->job.dom_running == 0 || (r->job.dom_running == 1 && r->job.dom_exists));
        check(r->job.dom_postcopy <= ORCHREPLY_DOM_POSTCOPY_FAILED);
        break;
    case ORCHREPLY_FORCE_COMPLETE:
        check(r->fc_action == ORCHREPLY_FC_POSTCOPY || r->fc_action == ORCHREPLY_FC_PAUSED);
        break;
    case ORCHREPLY_POST_LIVE_MIGRATION:
        check(r->ann.state <= ORCHREPLY_ANN_UNKNOWN);
        check(!r->ann.detail || (r->ann.state != ORCHREPLY_ANN_NOT_REPORTED && message_ok(r->ann.detail)));
        check(r->has_dest_stats == 0 || r->has_dest_stats == 1);
        check(in(r->dest_stats.memory_total, -1, ORCHREPLY_MAX_BYTES) &&
              in(r->dest_stats.memory_processed, -1, ORCHREPLY_MAX_BYTES) &&
              in(r->dest_stats.memory_remaining, -1, ORCHREPLY_MAX_BYTES) &&
              in(r->dest_stats.iteration, -1, ORCHREPLY_MAX_COUNT) &&
              in(r->dest_stats.downtime_ms, -1, ORCHREPLY_MAX_COUNT));
        if (!r->has_dest_stats)
            check(r->dest_stats.memory_total == -1 && r->dest_stats.downtime_ms == -1);
        break;
    case ORCHREPLY_RESUME_POSTCOPY:
        check(r->resume <= ORCHREPLY_RESUME_COMPLETED);
        check(!r->src.disks && !r->job.error && !r->ann.detail);
        break;
    case ORCHREPLY_DIRTY_RATE:
        check(in(r->dirty.mib_s, 0, ORCHREPLY_MAX_MEMORY_MB) && in(r->dirty.memory_mib, 1, ORCHREPLY_MAX_MEMORY_MB));
        check(!r->src.disks && !r->job.error && !r->ann.detail);
        break;
    default:
        check(!r->src.disks && !r->job.error && !r->ann.detail);
        break;
    }
}

static void check_event(const char *what, const orchreply_event *ev)
{
    const orchreply_stats *s = &ev->stats;
    job_state st;
    if (strcmp(what, "progress") == 0)
        check(ev->kind == ORCHREPLY_EV_PROGRESS);
    else if (strcmp(what, "postcopy") == 0)
        check(ev->kind == ORCHREPLY_EV_POSTCOPY);
    else if (strcmp(what, "guest_paused") == 0)
        check(ev->kind == ORCHREPLY_EV_NOTE);
    else if (strcmp(what, "settings_verified") == 0)
        check(ev->kind == ORCHREPLY_EV_VERIFIED);
    else if (job_state_from_str(what, &st) == 0 && st == JOB_POSTCOPY_PAUSED)
        check(ev->kind == ORCHREPLY_EV_PAUSED && ev->ended == st);
    else if (job_state_from_str(what, &st) == 0 && st != JOB_RUNNING && st != JOB_NONE)
        check(ev->kind == ORCHREPLY_EV_ENDED && ev->ended == st);
    else
        check(ev->kind == ORCHREPLY_EV_OTHER);
    if (ev->kind == ORCHREPLY_EV_OTHER) {
        check(!ev->host && !ev->error && !ev->has_stats);
        return;
    }
    check(!ev->host || agentmsg_host_name_ok(ev->host));
    check(!ev->error || ((ev->kind == ORCHREPLY_EV_ENDED || ev->kind == ORCHREPLY_EV_PAUSED ||
                          ev->kind == ORCHREPLY_EV_NOTE || ev->kind == ORCHREPLY_EV_VERIFIED) &&
                         message_ok(ev->error)));
    check(ev->has_stats == 0 || ev->has_stats == 1);
    check(in(s->memory_total, -1, ORCHREPLY_MAX_BYTES) && in(s->memory_processed, -1, ORCHREPLY_MAX_BYTES) &&
          in(s->memory_remaining, -1, ORCHREPLY_MAX_BYTES) && in(s->iteration, -1, ORCHREPLY_MAX_COUNT) &&
          in(s->downtime_ms, -1, ORCHREPLY_MAX_COUNT) && in(s->memory_bps, -1, ORCHREPLY_MAX_BYTES) &&
          in(s->dirty_pages_s, -1, ORCHREPLY_MAX_BYTES / 4096) && in(s->disk_total, -1, ORCHREPLY_MAX_BYTES) &&
          in(s->disk_processed, -1, ORCHREPLY_MAX_BYTES) && in(s->disk_remaining, -1, ORCHREPLY_MAX_BYTES) &&
          in(s->throttle_pct, -1, 100));
    if (!ev->has_stats)
        check(s->memory_total == -1 && s->memory_processed == -1 && s->memory_remaining == -1 && s->iteration == -1 &&
              s->downtime_ms == -1 && s->memory_bps == -1 && s->dirty_pages_s == -1 && s->disk_total == -1 &&
              s->disk_processed == -1 && s->disk_remaining == -1 && s->throttle_pct == -1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    /* counted from '0': '0' is 48, and 48 + 15 is a multiple of 21 */
    /* set_bandwidth's reply (after dirty_rate) has no body to read: the other body-less methods
     * cover its reading */
    _Static_assert(ORCHREPLY_DIRTY_RATE + 1 + ARRAY_SIZE(event_kinds) == 21,
                   "the seeds' first bytes assume 21 readers");
    _Static_assert(ORCHREPLY_DIRTY_RATE == ORCHREPLY_PAUSE_POSTCOPY + 1, "dirty_rate is read last");
    unsigned sel = ((unsigned)data[0] + 15) % 21;
    /* the methods before dirty_rate, the events, then dirty_rate: the older seeds keep their reader */
    unsigned nev = (unsigned)ARRAY_SIZE(event_kinds);
    int is_event = sel >= ORCHREPLY_DIRTY_RATE && sel < ORCHREPLY_DIRTY_RATE + nev;
    unsigned method = sel < ORCHREPLY_DIRTY_RATE ? sel : ORCHREPLY_DIRTY_RATE;
    msg_envelope *env = NULL;
    char *why = NULL;
    if (msg_parse((const char *)data + 1, size - 1, &env, &why) < 0) {
        free(why);
        return 0;
    }
    json_object *b = msg_envelope_body(env);
    if (!is_event) {
        orchreply_method m = (orchreply_method)method;
        orchreply r;
        if (orchreply_read(m, b, &r, &why) < 0) {
            check(why && *why); /* a refusal always says why */
            check(!r.ok && !r.error && !r.job.error && !r.src.disks && !r.ann.detail);
            free(why);
        } else {
            check(!why);
            check_reply(m, &r);
            orchreply_clear(&r);
        }
    } else {
        const char *what = event_kinds[sel - ORCHREPLY_DIRTY_RATE];
        orchreply_event ev;
        if (orchreply_event_read(what, b, &ev, &why) < 0) {
            check(why && *why);
            check(!ev.error);
            free(why);
        } else {
            check(!why);
            check_event(what, &ev);
            orchreply_event_clear(&ev);
        }
    }
    msg_envelope_free(env);
    return 0;
}
