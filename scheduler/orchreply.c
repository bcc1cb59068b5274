/* orchreply: agents' RPC replies and migration events' stats, read strictly (orchreply.h). */
#include "orchreply.h"

#include <stdlib.h>
#include <string.h>

#include "agentmsg.h"
#include "msg.h"

static const char *const method_words[ORCHREPLY_METHOD_COUNT] = {
    [ORCHREPLY_CHECK_SOURCE] = "check_source",
    [ORCHREPLY_CHECK_DESTINATION] = "check_destination",
    [ORCHREPLY_PRE_LIVE_MIGRATION] = "pre_live_migration",
    [ORCHREPLY_LIVE_MIGRATION] = "live_migration",
    [ORCHREPLY_JOB_STATUS] = "job_status",
    [ORCHREPLY_ABORT] = "abort",
    [ORCHREPLY_FORCE_COMPLETE] = "force_complete",
    [ORCHREPLY_POST_LIVE_MIGRATION] = "post_live_migration",
    [ORCHREPLY_ROLLBACK] = "rollback",
    [ORCHREPLY_RESUME_POSTCOPY] = "resume_postcopy",
    [ORCHREPLY_PAUSE_POSTCOPY] = "pause_postcopy",
    [ORCHREPLY_DIRTY_RATE] = "dirty_rate",
    [ORCHREPLY_SET_BANDWIDTH] = "set_bandwidth",
};

const char *orchreply_method_str(orchreply_method m)
{
    if ((unsigned)m >= ORCHREPLY_METHOD_COUNT)
        return "?";
    return method_words[m];
}

/* ---- the field readers ---------------------------------------------------------------------- */

/* Looks key up in o with type t: 1 with *v, 0 when absent and not required, -1 with *why. */
static int field(json_object *o, const char *where, const char *key, json_type t, int required, json_object **v,
                 char **why)
{
    if (!json_object_object_get_ex(o, key, v)) {
        if (!required)
            return 0;
        *why = xasprintf("%s%s: missing", where, key);
        return -1;
    }
    if (!*v || !json_object_is_type(*v, t)) {
        const char *expected = t == json_type_string    ? "string"
                               : t == json_type_int     ? "integer"
                               : t == json_type_boolean ? "boolean"
                               : t == json_type_array   ? "array"
                                                        : "object";
        *why = xasprintf("%s%s: expected %s, got %s", where, key, expected, msg_jtype_name(*v));
        return -1;
    }
    return 1;
}

/* orchreply_get_text, where multiline also lets tabs and line ends through (an XML document). */
static int get_text(json_object *o, const char *where, const char *key, int required, size_t max, int multiline,
                    const char **out, char **why)
{
    json_object *v;
    int rc = field(o, where, key, json_type_string, required, &v, why);
    if (rc <= 0)
        return rc;
    const char *s = json_object_get_string(v);
    size_t n = (size_t)json_object_get_string_len(v);
    if (n > max) {
        *why = xasprintf("%s%s: %zu bytes, at most %zu", where, key, n, max);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c < 0x20 && !(multiline && (c == '\n' || c == '\r' || c == '\t'))) || c == 0x7f) {
            *why = xasprintf("%s%s: holds a control byte (0x%02x at %zu)", where, key, c, i);
            return -1;
        }
    }
    *out = s;
    return 0;
}

int orchreply_get_text(json_object *o, const char *where, const char *key, int required, size_t max, const char **out,
                       char **why)
{
    return get_text(o, where, key, required, max, 0, out, why);
}

int orchreply_get_int(json_object *o, const char *where, const char *key, int required, int64_t min, int64_t max,
                      int64_t *out, char **why)
{
    json_object *v;
    int rc = field(o, where, key, json_type_int, required, &v, why);
    if (rc <= 0)
        return rc;
    /* json-c keeps an integer above INT64_MAX as a uint64 (get_int64 clamps it) */
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max || (x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX)) {
        *why = xasprintf("%s%s: %s is outside %lld..%lld", where, key,
                         json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), (long long)min, (long long)max);
        return -1;
    }
    *out = x;
    return 0;
}

int orchreply_get_bool(json_object *o, const char *where, const char *key, int required, int *out, char **why)
{
    json_object *v;
    int rc = field(o, where, key, json_type_boolean, required, &v, why);
    if (rc <= 0)
        return rc;
    *out = json_object_get_boolean(v) ? 1 : 0;
    return 0;
}

char *orchreply_printable(const char *s, size_t len, size_t max)
{
    size_t n = len;
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
            n--; /* not inside a UTF-8 sequence */
    }
    char *out = xmalloc(n + 4);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        out[i] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
    }
    strcpy(out + n, n < len ? "..." : "");
    return out;
}

/* Reads optional text field key of o, any length, into a printable copy (*out owned, NULL when
 * absent); -1 with *why when null or not a string. */
static int get_message(json_object *o, const char *where, const char *key, char **out, char **why)
{
    json_object *v;
    *out = NULL;
    int rc = field(o, where, key, json_type_string, 0, &v, why);
    if (rc <= 0)
        return rc;
    *out = orchreply_printable(json_object_get_string(v), (size_t)json_object_get_string_len(v), ORCHREPLY_MAX_TEXT);
    return 0;
}

/* Reads field key of o as a word (1..ORCHREPLY_MAX_WORD lowercase letters, digits, _) into
 * word (ORCHREPLY_MAX_WORD + 1 bytes); absent: 0 with word "" unless required. */
static int get_word(json_object *o, const char *where, const char *key, int required, char *word, char **why)
{
    const char *s = NULL;
    word[0] = 0;
    if (orchreply_get_text(o, where, key, required, ORCHREPLY_MAX_WORD, &s, why) < 0)
        return -1;
    if (!s)
        return 0;
    size_t n = strlen(s);
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            n = 0;
    if (n == 0) {
        _cleanup_free_ char *p = orchreply_printable(s, strlen(s), ORCHREPLY_MAX_WORD);
        *why = xasprintf("%s%s: '%s' is not a word of lowercase letters, digits and _", where, key, p);
        return -1;
    }
    memcpy(word, s, n + 1);
    return 0;
}

/* ---- the replies ---------------------------------------------------------------------------- */

/* One disk of check_source's disks, checked and copied into a new object. */
static json_object *read_disk(json_object *d, size_t i, char **why)
{
    _cleanup_free_ char *where = xasprintf("body.disks[%zu].", i);
    if (!json_object_is_type(d, json_type_object)) {
        *why = xasprintf("body.disks[%zu]: expected object, got %s", i, msg_jtype_name(d));
        return NULL;
    }
    const char *path = NULL, *format = NULL, *target = NULL;
    int64_t vsize = -1;
    int shared = 0, has_shared = 0;
    if (orchreply_get_text(d, where, "path", 1, ORCHREPLY_MAX_PATH, &path, why) < 0 ||
        orchreply_get_text(d, where, "format", 0, ORCHREPLY_MAX_WORD, &format, why) < 0 ||
        orchreply_get_text(d, where, "target", 0, ORCHREPLY_MAX_WORD, &target, why) < 0 ||
        orchreply_get_int(d, where, "virtual_size", 0, 0, ORCHREPLY_MAX_BYTES, &vsize, why) < 0 ||
        orchreply_get_bool(d, where, "shared", 0, &shared, why) < 0)
        return NULL;
    if (!*path) {
        *why = xasprintf("%spath: empty", where);
        return NULL;
    }
    has_shared = json_object_object_get_ex(d, "shared", NULL);
    json_object *o = json_object_new_object();
    json_object_object_add(o, "path", json_object_new_string(path));
    if (format)
        json_object_object_add(o, "format", json_object_new_string(format));
    if (target)
        json_object_object_add(o, "target", json_object_new_string(target));
    if (has_shared)
        json_object_object_add(o, "shared", json_object_new_boolean(shared));
    if (vsize >= 0)
        json_object_object_add(o, "virtual_size", json_object_new_int64(vsize));
    return o;
}

static int read_check_source(json_object *b, orchreply *r, char **why)
{
    const char *w = "body.";
    json_object *disks;
    if (get_text(b, w, "domain_xml", 1, ORCHREPLY_MAX_XML, 1, &r->src.domain_xml, why) < 0 ||
        orchreply_get_int(b, w, "memory_mb", 1, 0, ORCHREPLY_MAX_MEMORY_MB, &r->src.memory_mb, why) < 0 ||
        orchreply_get_text(b, w, "shared_probe", 0, 64, &r->src.shared_probe, why) < 0 ||
        field(b, w, "disks", json_type_array, 0, &disks, why) < 0)
        return -1;
    if (!*r->src.domain_xml) {
        *why = xstrdup("body.domain_xml: empty");
        return -1;
    }
    if (!json_object_object_get_ex(b, "disks", NULL))
        return 0;
    size_t n = json_object_array_length(disks);
    if (n > ORCHREPLY_MAX_DISKS) {
        *why = xasprintf("body.disks: %zu disks, at most %d", n, ORCHREPLY_MAX_DISKS);
        return -1;
    }
    r->src.disks = json_object_new_array();
    for (size_t i = 0; i < n; i++) {
        json_object *d = read_disk(json_object_array_get_idx(disks, i), i, why);
        if (!d)
            return -1;
        json_object_array_add(r->src.disks, d);
    }
    return 0;
}

static int read_check_destination(json_object *b, orchreply *r, char **why)
{
    if (orchreply_get_bool(b, "body.", "shared_storage", 1, &r->dst.shared_storage, why) < 0 ||
        orchreply_get_text(b, "body.", "address", 0, ORCHREPLY_MAX_NAME, &r->dst.address, why) < 0)
        return -1;
    if (r->dst.address && !agentmsg_address_ok(r->dst.address)) {
        _cleanup_free_ char *p = orchreply_printable(r->dst.address, strlen(r->dst.address), 64);
        *why = xasprintf("body.address: '%s' is not a host name or IP address with an optional port", p);
        return -1;
    }
    return 0;
}

static int read_job_status(json_object *b, orchreply *r, char **why)
{
    const char *w = "body.";
    json_object *d;
    if (get_word(b, w, "state", 1, r->job.word, why) < 0 ||
        orchreply_get_bool(b, w, "postcopy", 0, &r->job.postcopy, why) < 0 ||
        get_message(b, w, "error", &r->job.error, why) < 0 || field(b, w, "domain", json_type_object, 0, &d, why) < 0)
        return -1;
    if (job_state_from_str(r->job.word, &r->job.state) < 0)
        r->job.state = JOB_STATE_COUNT; /* a word this build does not know: the job ended, failed */
    if (!json_object_object_get_ex(b, "domain", NULL))
        return 0;
    char state[ORCHREPLY_MAX_WORD + 1], pc[ORCHREPLY_MAX_WORD + 1] = "";
    if (orchreply_get_bool(d, "body.domain.", "exists", 0, &r->job.dom_exists, why) < 0 ||
        get_word(d, "body.domain.", "state", 0, state, why) < 0 ||
        orchreply_get_bool(d, "body.domain.", "persistent", 0, &r->job.dom_persistent, why) < 0 ||
        get_word(d, "body.domain.", "postcopy", 0, pc, why) < 0)
        return -1;
    if (strcmp(pc, "active") == 0)
        r->job.dom_postcopy = ORCHREPLY_DOM_POSTCOPY_ACTIVE;
    else if (strcmp(pc, "failed") == 0)
        r->job.dom_postcopy = ORCHREPLY_DOM_POSTCOPY_FAILED;
    else if (*pc) {
        *why = xasprintf("body.domain.postcopy: '%s' is neither active nor failed", pc);
        return -1;
    }
    r->job.dom_running = r->job.dom_exists && strcmp(state, "running") == 0;
    return 0;
}

static int read_force_complete(json_object *b, orchreply *r, char **why)
{
    char action[ORCHREPLY_MAX_WORD + 1];
    if (get_word(b, "body.", "action", 1, action, why) < 0)
        return -1;
    if (strcmp(action, "postcopy") == 0) {
        r->fc_action = ORCHREPLY_FC_POSTCOPY;
    } else if (strcmp(action, "paused") == 0) {
        r->fc_action = ORCHREPLY_FC_PAUSED;
    } else {
        *why = xasprintf("body.action: '%s' is neither postcopy nor paused", action);
        return -1;
    }
    return 0;
}

static const char *const announce_words[] = {
    [ORCHREPLY_ANN_NOT_REPORTED] = "not_reported",
    [ORCHREPLY_ANN_SEEN] = "seen",
    [ORCHREPLY_ANN_NOT_SEEN] = "not_seen",
    [ORCHREPLY_ANN_UNKNOWN] = "unknown",
};

const char *orchreply_announce_str(orchreply_announce a)
{
    return (unsigned)a < sizeof(announce_words) / sizeof(announce_words[0]) ? announce_words[a] : "?";
}

static int read_stats(json_object *s, orchreply_stats *st, char **why);
/* every figure absent */
static const orchreply_stats no_stats = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1};

static int read_post_live_migration(json_object *b, orchreply *r, char **why)
{
    json_object *a, *s = NULL;
    char word[ORCHREPLY_MAX_WORD + 1];
    r->dest_stats = no_stats;
    if (field(b, "body.", "stats", json_type_object, 0, &s, why) < 0)
        return -1;
    r->has_dest_stats = json_object_object_get_ex(b, "stats", NULL);
    if (r->has_dest_stats && read_stats(s, &r->dest_stats, why) < 0)
        return -1;
    int rc = field(b, "body.", "announce", json_type_object, 0, &a, why);
    if (rc <= 0)
        return rc; /* absent: not reported */
    if (get_word(a, "body.announce.", "state", 1, word, why) < 0 ||
        get_message(a, "body.announce.", "detail", &r->ann.detail, why) < 0)
        return -1;
    for (size_t i = ORCHREPLY_ANN_SEEN; i < sizeof(announce_words) / sizeof(announce_words[0]); i++)
        if (strcmp(word, announce_words[i]) == 0) {
            r->ann.state = (orchreply_announce)i;
            return 0;
        }
    *why = xasprintf("body.announce.state: '%s' is none of seen, not_seen, unknown", word);
    return -1;
}

static int read_resume_postcopy(json_object *b, orchreply *r, char **why)
{
    static const char *const words[] = {
        [ORCHREPLY_RESUME_STARTED] = "started",
        [ORCHREPLY_RESUME_UNDER_WAY] = "under_way",
        [ORCHREPLY_RESUME_COMPLETED] = "completed",
    };
    char word[ORCHREPLY_MAX_WORD + 1];
    if (get_word(b, "body.", "resume", 1, word, why) < 0)
        return -1;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (strcmp(word, words[i]) == 0) {
            r->resume = (orchreply_resume)i;
            return 0;
        }
    *why = xasprintf("body.resume: '%s' is none of started, under_way, completed", word);
    return -1;
}

int orchreply_read(orchreply_method m, json_object *body, orchreply *out, char **why)
{
    memset(out, 0, sizeof(*out));
    out->method = m;
    out->job.state = JOB_STATE_COUNT;
    if ((unsigned)m >= ORCHREPLY_METHOD_COUNT) {
        *why = xasprintf("no reply is known for method %d", (int)m);
        return -1;
    }
    if (!body || !json_object_is_type(body, json_type_object)) {
        *why = xasprintf("body: expected object, got %s", msg_jtype_name(body));
        return -1;
    }
    int rc = orchreply_get_bool(body, "body.", "ok", 1, &out->ok, why);
    if (rc == 0 && !out->ok) {
        char code[ORCHREPLY_MAX_WORD + 1];
        rc = get_word(body, "body.", "code", 0, code, why);
        if (rc == 0)
            rc = get_message(body, "body.", "error", &out->error, why);
        if (rc == 0) {
            out->code = rpc_code_from_str(code); /* absent ("") or unknown: RPC_UNKNOWN */
            if (!out->error)
                out->error = xstrdup("failed");
            return 0;
        }
    } else if (rc == 0) {
        switch (m) {
        case ORCHREPLY_CHECK_SOURCE:
            rc = read_check_source(body, out, why);
            break;
        case ORCHREPLY_CHECK_DESTINATION:
            rc = read_check_destination(body, out, why);
            break;
        case ORCHREPLY_JOB_STATUS:
            rc = read_job_status(body, out, why);
            break;
        case ORCHREPLY_FORCE_COMPLETE:
            rc = read_force_complete(body, out, why);
            break;
        case ORCHREPLY_POST_LIVE_MIGRATION:
            rc = read_post_live_migration(body, out, why);
            break;
        case ORCHREPLY_RESUME_POSTCOPY:
            rc = read_resume_postcopy(body, out, why);
            break;
        case ORCHREPLY_DIRTY_RATE:
            rc = orchreply_get_int(body, "body.", "dirty_rate_mib_s", 1, 0, ORCHREPLY_MAX_MEMORY_MB, &out->dirty.mib_s,
                                   why) < 0 ||
                         orchreply_get_int(body, "body.", "memory_mib", 1, 1, ORCHREPLY_MAX_MEMORY_MB,
                                           &out->dirty.memory_mib, why) < 0 ||
                         orchreply_get_int(body, "body.", "nonzero_mib", 0, 1, ORCHREPLY_MAX_MEMORY_MB,
                                           &out->dirty.nonzero_mib, why) < 0
                     ? -1
                     : 0;
            break;
        default:
            break; /* success is all the orchestration reads */
        }
    }
    if (rc < 0) {
        orchreply_clear(out);
        memset(out, 0, sizeof(*out));
        out->method = m;
        out->job.state = JOB_STATE_COUNT;
    }
    return rc;
}

void orchreply_clear(orchreply *r)
{
    free(r->error);
    r->error = NULL;
    free(r->job.error);
    r->job.error = NULL;
    free(r->ann.detail);
    r->ann.detail = NULL;
    json_object_put(r->src.disks);
    r->src.disks = NULL;
}

/* ---- migration events ----------------------------------------------------------------------- */

/* Reads the figures of stats s; the progress's and the final ones are the same keys. */
static int read_stats(json_object *s, orchreply_stats *st, char **why)
{
    const char *w = "body.stats.";
    return orchreply_get_int(s, w, "memory_total", 0, 0, ORCHREPLY_MAX_BYTES, &st->memory_total, why) < 0 ||
                   orchreply_get_int(s, w, "memory_processed", 0, 0, ORCHREPLY_MAX_BYTES, &st->memory_processed, why) <
                       0 ||
                   orchreply_get_int(s, w, "memory_remaining", 0, 0, ORCHREPLY_MAX_BYTES, &st->memory_remaining, why) <
                       0 ||
                   orchreply_get_int(s, w, "iteration", 0, 0, ORCHREPLY_MAX_COUNT, &st->iteration, why) < 0 ||
                   orchreply_get_int(s, w, "downtime_ms", 0, 0, ORCHREPLY_MAX_COUNT, &st->downtime_ms, why) < 0 ||
                   orchreply_get_int(s, w, "memory_bps", 0, 0, ORCHREPLY_MAX_BYTES, &st->memory_bps, why) < 0 ||
                   orchreply_get_int(s, w, "dirty_rate", 0, 0, ORCHREPLY_MAX_BYTES / 4096, &st->dirty_pages_s, why) <
                       0 ||
                   orchreply_get_int(s, w, "disk_total", 0, 0, ORCHREPLY_MAX_BYTES, &st->disk_total, why) < 0 ||
                   orchreply_get_int(s, w, "disk_processed", 0, 0, ORCHREPLY_MAX_BYTES, &st->disk_processed, why) < 0 ||
                   orchreply_get_int(s, w, "disk_remaining", 0, 0, ORCHREPLY_MAX_BYTES, &st->disk_remaining, why) < 0 ||
                   orchreply_get_int(s, w, "auto_converge_throttle", 0, 0, 100, &st->throttle_pct, why) < 0
               ? -1
               : 0;
}

int orchreply_event_read(const char *what, json_object *body, orchreply_event *out, char **why)
{
    memset(out, 0, sizeof(*out));
    out->stats = no_stats;
    job_state ended;
    if (strcmp(what, "progress") == 0)
        out->kind = ORCHREPLY_EV_PROGRESS;
    else if (strcmp(what, "postcopy") == 0)
        out->kind = ORCHREPLY_EV_POSTCOPY;
    else if (strcmp(what, "guest_paused") == 0)
        out->kind = ORCHREPLY_EV_NOTE;
    else if (strcmp(what, "settings_verified") == 0)
        out->kind = ORCHREPLY_EV_VERIFIED;
    else if (job_state_from_str(what, &ended) == 0 &&
             (ended == JOB_COMPLETED || ended == JOB_FAILED || ended == JOB_CANCELLED)) {
        out->kind = ORCHREPLY_EV_ENDED;
        out->ended = ended;
    } else if (job_state_from_str(what, &ended) == 0 && ended == JOB_POSTCOPY_PAUSED) {
        out->kind = ORCHREPLY_EV_PAUSED;
        out->ended = ended;
    } else {
        return 0; /* ORCHREPLY_EV_OTHER: not read */
    }
    if (!body || !json_object_is_type(body, json_type_object)) {
        *why = xasprintf("body: expected object, got %s", msg_jtype_name(body));
        return -1;
    }
    json_object *s = NULL;
    if (orchreply_get_text(body, "body.", "host", 0, ORCHREPLY_MAX_NAME, &out->host, why) < 0)
        goto bad;
    if (out->host && !agentmsg_host_name_ok(out->host)) {
        _cleanup_free_ char *p = orchreply_printable(out->host, strlen(out->host), 64);
        *why = xasprintf("body.host: '%s' is not a host name", p);
        goto bad;
    }
    if ((out->kind == ORCHREPLY_EV_ENDED || out->kind == ORCHREPLY_EV_PAUSED) &&
        get_message(body, "body.", "error", &out->error, why) < 0)
        goto bad;
    if ((out->kind == ORCHREPLY_EV_NOTE || out->kind == ORCHREPLY_EV_VERIFIED) &&
        get_message(body, "body.", "reason", &out->error, why) < 0)
        goto bad;
    if (out->kind == ORCHREPLY_EV_POSTCOPY || out->kind == ORCHREPLY_EV_NOTE || out->kind == ORCHREPLY_EV_VERIFIED)
        return 0;
    if (field(body, "body.", "stats", json_type_object, 0, &s, why) < 0)
        goto bad;
    out->has_stats = json_object_object_get_ex(body, "stats", NULL);
    if (out->has_stats && read_stats(s, &out->stats, why) < 0)
        goto bad;
    return 0;
bad:
    orchreply_event_clear(out);
    return -1;
}

void orchreply_event_clear(orchreply_event *ev)
{
    free(ev->error);
    ev->error = NULL;
}
