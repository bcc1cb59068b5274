/* msg_request: the migration request (defaults, options, instance and host references, parse
 * and build) and the replies to it (accepted, refused). */
#include "msg.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "msg_priv.h"

/* ---- the migration request -------------------------------------------------------------- */

void msg_request_defaults_init(msg_request_defaults *defs)
{
    defs->auto_converge = false;
    defs->postcopy_after_iterations = 1;
    defs->bandwidth_mib_s = 0;
    defs->max_downtime_ms = 300;
    defs->completion_timeout_s = 0;
    defs->completion_action = MSG_COMPLETION_ABORT;
    defs->parallel_connections = 1;
    defs->xbzrle_cache_mib = 0;
}

const char *const msg_option_keys[] = {"auto_converge",        "postcopy_after_iterations", "bandwidth_mib_s",
                                       "max_downtime_ms",      "completion_timeout_s",      "completion_action",
                                       "parallel_connections", "xbzrle_cache_mib",          NULL};

static const char *const completion_words[] = {"abort", "postcopy", "pause"};

const char *msg_completion_action_str(int a)
{
    return a >= 0 && a < (int)ARRAY_SIZE(completion_words) ? completion_words[a] : "abort";
}

int msg_completion_action_of(const char *s)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(completion_words); i++)
        if (strcmp(s, completion_words[i]) == 0)
            return (int)i;
    return -1;
}

static int check_range(const char *prefix, const char *key, int x, int min, int max, char **err)
{
    if (x < min || x > max) {
        msg_field_err(err, prefix, key, "%d is out of range %d..%d", x, min, max);
        return -1;
    }
    return 0;
}

int msg_options_check(const msg_options *opts, const char *prefix, char **err)
{
    if (!prefix)
        prefix = "";
    if (check_range(prefix, "postcopy_after_iterations", opts->postcopy_after_iterations, MSG_OPT_POSTCOPY_AFTER_MIN,
                    MSG_OPT_POSTCOPY_AFTER_MAX, err) < 0 ||
        check_range(prefix, "bandwidth_mib_s", opts->bandwidth_mib_s, 0, MSG_OPT_BANDWIDTH_MAX, err) < 0 ||
        check_range(prefix, "max_downtime_ms", opts->max_downtime_ms, MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, err) <
            0 ||
        check_range(prefix, "completion_timeout_s", opts->completion_timeout_s, 0, MSG_OPT_COMPLETION_TIMEOUT_MAX,
                    err) < 0 ||
        check_range(prefix, "completion_action", opts->completion_action, MSG_COMPLETION_ABORT, MSG_COMPLETION_PAUSE,
                    err) < 0 ||
        check_range(prefix, "parallel_connections", opts->parallel_connections, 1, MSG_OPT_PARALLEL_MAX, err) < 0 ||
        check_range(prefix, "xbzrle_cache_mib", opts->xbzrle_cache_mib, 0, MSG_OPT_XBZRLE_CACHE_MAX, err) < 0)
        return -1;
    return msg_options_transport_check(opts, prefix, err);
}

int msg_options_transport_check(const msg_options *opts, const char *prefix, char **err)
{
    if (!prefix)
        prefix = "";
    int c = opts->xbzrle_cache_mib;
    if (c > 0 && (c & (c - 1)) != 0) {
        msg_field_err(err, prefix, "xbzrle_cache_mib", "%d is not a power of two (QEMU's xbzrle cache)", c);
        return -1;
    }
    if (c > 0 && opts->parallel_connections > 1) {
        msg_field_err(err, prefix, "xbzrle_cache_mib",
                      "xbzrle compresses a single stream: not with parallel_connections %d",
                      opts->parallel_connections);
        return -1;
    }
    return 0;
}

msg_instance_kind msg_instance_classify(const char *ref)
{
    if (!ref)
        return MSG_INSTANCE_NAME;
    if (uuid_valid(ref))
        return MSG_INSTANCE_UUID;
    if (ref[0] == 'i' && ref[1] == '-') {
        size_t n = strlen(ref + 2);
        if (n >= 1 && n <= 16 && strspn(ref + 2, "0123456789abcdefABCDEF") == n)
            return MSG_INSTANCE_EC2;
    }
    return MSG_INSTANCE_NAME;
}

const char *msg_instance_kind_name(msg_instance_kind kind)
{
    switch (kind) {
    case MSG_INSTANCE_UUID:
        return "uuid";
    case MSG_INSTANCE_EC2:
        return "ec2";
    case MSG_INSTANCE_NAME:
        break;
    }
    return "name";
}

const char *msg_block_mode_name(msg_block_mode mode)
{
    switch (mode) {
    case MSG_BLOCK_YES:
        return "true";
    case MSG_BLOCK_AUTO:
        return "auto";
    case MSG_BLOCK_NO:
        break;
    }
    return "false";
}

/* Instance reference: 1..255 bytes, no C0/C1 control characters or DEL (the tokener has
 * already checked it is UTF-8). */
static int check_instance(const char *prefix, const char *key, const char *s, size_t len, char **err)
{
    if (len == 0) {
        msg_field_err(err, prefix, key, "must not be empty");
        return -1;
    }
    if (len > MSG_NAME_MAX) {
        msg_field_err(err, prefix, key, "%zu bytes, limit %d", len, MSG_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool c1 = c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 && (unsigned char)s[i + 1] <= 0x9f;
        if (c < 0x20 || c == 0x7f || c1) {
            msg_field_err(err, prefix, key, "control character at byte %zu", i);
            return -1;
        }
    }
    return 0;
}

/* Host name: 1..255 bytes of letters, digits, '-', '.', '_'. */
static int check_host(const char *prefix, const char *key, const char *s, size_t len, char **err)
{
    if (len == 0) {
        msg_field_err(err, prefix, key, "must not be empty (null lets the scheduler choose)");
        return -1;
    }
    if (len > MSG_NAME_MAX) {
        msg_field_err(err, prefix, key, "%zu bytes, limit %d", len, MSG_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_'))) {
            msg_field_err(err, prefix, key, "invalid character at byte %zu (allowed: letters, digits, '-', '.', '_')",
                          i);
            return -1;
        }
    }
    return 0;
}

int msg_request_parse(const msg_envelope *env, const msg_request_defaults *defs, msg_request *out, char **err)
{
    if (strcmp(env->type, MSG_TYPE_REQUEST) != 0) {
        _cleanup_free_ char *t = msg_printable_str(env->type);
        msg_set_err(err, "type: expected \"%s\", got \"%s\"", MSG_TYPE_REQUEST, t);
        return -1;
    }
    msg_request_defaults builtin;
    if (!defs) {
        msg_request_defaults_init(&builtin);
        defs = &builtin;
    }
    msg_request r = {.options = *defs};

    json_object *body = env->body;
    static const char *const body_keys[] = {"instance", "os-migrateLive", "options", "objectives", NULL};
    if (msg_check_keys(body, "body", body_keys, err) < 0)
        return -1;

    const char *instance;
    size_t instance_len;
    if (msg_get_string(body, "body", "instance", true, false, &instance, &instance_len, NULL, err))
        return -1;
    if (check_instance("body", "instance", instance, instance_len, err) < 0)
        return -1;

    /* The ORBIT API body. */
    const char *const ml = "body.os-migrateLive";
    json_object *live;
    if (msg_get_object(body, "body", "os-migrateLive", true, &live, err) < 0)
        return -1;
    static const char *const live_keys[] = {"host", "block_migration", "disk_over_commit", "post_copy", NULL};
    if (msg_check_keys(live, ml, live_keys, err) < 0)
        return -1;
    const char *host;
    size_t host_len;
    if (msg_get_string(live, ml, "host", true, true, &host, &host_len, NULL, err) < 0)
        return -1;
    if (host && check_host(ml, "host", host, host_len, err) < 0)
        return -1;

    json_object *bm;
    bool found;
    if (msg_get_field(live, ml, "block_migration", false, &bm, &found, err) < 0)
        return -1;
    if (found) {
        if (json_object_is_type(bm, json_type_boolean)) {
            r.block_migration = json_object_get_boolean(bm) ? MSG_BLOCK_YES : MSG_BLOCK_NO;
        } else if (json_object_is_type(bm, json_type_string) && strcmp(json_object_get_string(bm), "auto") == 0 &&
                   json_object_get_string_len(bm) == 4) {
            r.block_migration = MSG_BLOCK_AUTO;
        } else if (json_object_is_type(bm, json_type_string)) {
            _cleanup_free_ char *p = msg_printable(json_object_get_string(bm), (size_t)json_object_get_string_len(bm));
            msg_field_err(err, ml, "block_migration", "expected boolean or \"auto\", got \"%s\"", p);
            return -1;
        } else {
            msg_field_err(err, ml, "block_migration", "expected boolean or \"auto\", got %s", msg_jtype_name(bm));
            return -1;
        }
    }
    if (msg_get_bool(live, ml, "disk_over_commit", false, &r.disk_over_commit, NULL, err) < 0 ||
        msg_get_bool(live, ml, "post_copy", false, &r.post_copy, &found, err) < 0)
        return -1;
    r.post_copy_given = found;

    /* ferry's own options. */
    const char *const op = "body.options";
    json_object *opts;
    if (msg_get_object(body, "body", "options", false, &opts, err) < 0)
        return -1;
    if (opts) {
        if (msg_check_keys(opts, op, msg_option_keys, err) < 0)
            return -1;
        static const struct {
            const char *key;
            int64_t min, max;
            unsigned bit;
            size_t off;
        } ints[] = {
            {"postcopy_after_iterations", MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
             MSG_OPT_POSTCOPY_AFTER, offsetof(msg_options, postcopy_after_iterations)},
            {"bandwidth_mib_s", 0, MSG_OPT_BANDWIDTH_MAX, MSG_OPT_BANDWIDTH, offsetof(msg_options, bandwidth_mib_s)},
            {"max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, MSG_OPT_MAX_DOWNTIME,
             offsetof(msg_options, max_downtime_ms)},
            {"completion_timeout_s", 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, MSG_OPT_COMPLETION_TIMEOUT,
             offsetof(msg_options, completion_timeout_s)},
            {"parallel_connections", 1, MSG_OPT_PARALLEL_MAX, MSG_OPT_PARALLEL,
             offsetof(msg_options, parallel_connections)},
            {"xbzrle_cache_mib", 0, MSG_OPT_XBZRLE_CACHE_MAX, MSG_OPT_XBZRLE_CACHE,
             offsetof(msg_options, xbzrle_cache_mib)},
        };
        if (msg_get_bool(opts, op, "auto_converge", false, &r.options.auto_converge, &found, err) < 0)
            return -1;
        if (found)
            r.options_given |= MSG_OPT_AUTO_CONVERGE;
        const char *action = NULL;
        size_t alen = 0;
        if (msg_get_string(opts, op, "completion_action", false, false, &action, &alen, &found, err) < 0)
            return -1;
        if (found) {
            int a = alen == strlen(action) ? msg_completion_action_of(action) : -1;
            if (a < 0) {
                msg_field_err(err, op, "completion_action", "expected \"abort\", \"postcopy\" or \"pause\"");
                return -1;
            }
            r.options.completion_action = a;
            r.options_given |= MSG_OPT_COMPLETION_ACTION;
        }
        for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
            int64_t x;
            if (msg_get_int(opts, op, ints[i].key, false, ints[i].min, ints[i].max, &x, &found, err))
                return -1;
            if (found) {
                *(int *)((char *)&r.options + ints[i].off) = (int)x;
                r.options_given |= ints[i].bit;
            }
        }
    }

    /* what the request asks ferry to hold to */
    const char *const ob = "body.objectives";
    json_object *objs;
    if (msg_get_object(body, "body", "objectives", false, &objs, err) < 0)
        return -1;
    if (objs) {
        static const char *const obj_keys[] = {"max_downtime_ms", "deadline_s", NULL};
        if (msg_check_keys(objs, ob, obj_keys, err) < 0)
            return -1;
        int64_t x;
        if (msg_get_int(objs, ob, "max_downtime_ms", false, MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, &x, &found,
                        err) < 0)
            return -1;
        r.objectives.max_downtime_ms = found ? (int)x : 0;
        if (msg_get_int(objs, ob, "deadline_s", false, 1, MSG_OBJ_DEADLINE_MAX, &x, &found, err) < 0)
            return -1;
        r.objectives.deadline_s = found ? (int)x : 0;
        if (!r.objectives.max_downtime_ms && !r.objectives.deadline_s) {
            msg_set_err(err, "%s: empty: name max_downtime_ms, deadline_s or both", ob);
            return -1;
        }
    }

    r.id = xstrdup(env->id);
    r.instance = xstrdup(instance);
    r.instance_kind = msg_instance_classify(instance);
    r.host = xstrdup(host);
    *out = r;
    return 0;
}

void msg_request_free(msg_request *req)
{
    if (!req)
        return;
    free(req->id);
    free(req->instance);
    free(req->host);
    *req = (msg_request){0};
}

int msg_build_request(const msg_request *req, char **out_json, char **err)
{
    json_object *live = json_object_new_object();
    json_object_object_add(live, "host", req->host ? json_object_new_string(req->host) : NULL);
    json_object_object_add(live, "block_migration",
                           req->block_migration == MSG_BLOCK_AUTO
                               ? json_object_new_string("auto")
                               : json_object_new_boolean(req->block_migration == MSG_BLOCK_YES));
    json_object_object_add(live, "disk_over_commit", json_object_new_boolean(req->disk_over_commit));
    json_object_object_add(live, "post_copy", json_object_new_boolean(req->post_copy));

    json_object *body = json_object_new_object();
    if (req->instance)
        json_object_object_add(body, "instance", json_object_new_string(req->instance));
    json_object_object_add(body, "os-migrateLive", live);

    const msg_options *o = &req->options;
    unsigned given = req->options_given;
    if (given) {
        json_object *opts = json_object_new_object();
        if (given & MSG_OPT_AUTO_CONVERGE)
            json_object_object_add(opts, "auto_converge", json_object_new_boolean(o->auto_converge));
        if (given & MSG_OPT_POSTCOPY_AFTER)
            json_object_object_add(opts, "postcopy_after_iterations",
                                   json_object_new_int(o->postcopy_after_iterations));
        if (given & MSG_OPT_BANDWIDTH)
            json_object_object_add(opts, "bandwidth_mib_s", json_object_new_int(o->bandwidth_mib_s));
        if (given & MSG_OPT_MAX_DOWNTIME)
            json_object_object_add(opts, "max_downtime_ms", json_object_new_int(o->max_downtime_ms));
        if (given & MSG_OPT_COMPLETION_TIMEOUT)
            json_object_object_add(opts, "completion_timeout_s", json_object_new_int(o->completion_timeout_s));
        if (given & MSG_OPT_COMPLETION_ACTION)
            json_object_object_add(opts, "completion_action",
                                   json_object_new_string(msg_completion_action_str(o->completion_action)));
        if (given & MSG_OPT_PARALLEL)
            json_object_object_add(opts, "parallel_connections", json_object_new_int(o->parallel_connections));
        if (given & MSG_OPT_XBZRLE_CACHE)
            json_object_object_add(opts, "xbzrle_cache_mib", json_object_new_int(o->xbzrle_cache_mib));
        json_object_object_add(body, "options", opts);
    }

    if (req->objectives.max_downtime_ms || req->objectives.deadline_s) {
        json_object *objs = json_object_new_object();
        if (req->objectives.max_downtime_ms)
            json_object_object_add(objs, "max_downtime_ms", json_object_new_int(req->objectives.max_downtime_ms));
        if (req->objectives.deadline_s)
            json_object_object_add(objs, "deadline_s", json_object_new_int(req->objectives.deadline_s));
        json_object_object_add(body, "objectives", objs);
    }

    _cleanup_free_ char *json = msg_build(MSG_TYPE_REQUEST, req->id, body);

    /* Check it exactly as the scheduler will. */
    _cleanup_(msg_envelope_freep) msg_envelope *env = NULL;
    msg_request check;
    if (msg_parse(json, strlen(json), &env, err) < 0 || msg_request_parse(env, NULL, &check, err) < 0)
        return -1;
    msg_request_free(&check);
    *out_json = TAKE_PTR(json);
    return 0;
}

/* ---- replies ---------------------------------------------------------------------------- */

char *msg_build_accepted(const char *req_id, int64_t migration_id, const char *dest)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "migration", json_object_new_int64(migration_id));
    json_object_object_add(body, "dest", dest ? json_object_new_string(dest) : NULL);
    return msg_build(MSG_TYPE_ACCEPTED, req_id, body);
}

char *msg_build_refused(const char *req_id, const char *reason)
{
    json_object *body = json_object_new_object();
    json_object_object_add(body, "reason", json_object_new_string(reason ? reason : ""));
    return msg_build(MSG_TYPE_REFUSED, req_id, body);
}

int msg_reply_parse(const msg_envelope *env, msg_reply *out, char **err)
{
    json_object *body = env->body;
    msg_reply r = {0};
    if (strcmp(env->type, MSG_TYPE_ACCEPTED) == 0) {
        static const char *const keys[] = {"migration", "dest", NULL};
        const char *dest;
        size_t dest_len;
        if (msg_check_keys(body, "body", keys, err) < 0 ||
            msg_get_int(body, "body", "migration", true, 1, INT64_MAX, &r.migration, NULL, err) < 0 ||
            msg_get_string(body, "body", "dest", true, true, &dest, &dest_len, NULL, err) < 0)
            return -1;
        if (dest && check_host("body", "dest", dest, dest_len, err) < 0)
            return -1;
        r.accepted = true;
        r.dest = xstrdup(dest);
    } else if (strcmp(env->type, MSG_TYPE_REFUSED) == 0) {
        static const char *const keys[] = {"reason", NULL};
        const char *reason;
        size_t reason_len;
        if (msg_check_keys(body, "body", keys, err) < 0 ||
            msg_get_string(body, "body", "reason", true, false, &reason, &reason_len, NULL, err) < 0)
            return -1;
        if (reason_len == 0) {
            msg_set_err(err, "body.reason: must not be empty");
            return -1;
        }
        r.accepted = false;
        r.reason = xstrndup(reason, reason_len);
    } else {
        _cleanup_free_ char *t = msg_printable_str(env->type);
        msg_set_err(err, "type: expected \"%s\" or \"%s\", got \"%s\"", MSG_TYPE_ACCEPTED, MSG_TYPE_REFUSED, t);
        return -1;
    }
    r.id = xstrdup(env->id);
    *out = r;
    return 0;
}

void msg_reply_free(msg_reply *reply)
{
    if (!reply)
        return;
    free(reply->id);
    free(reply->dest);
    free(reply->reason);
    *reply = (msg_reply){0};
}
