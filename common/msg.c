#include "msg.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

struct msg_envelope {
    json_object *root; /* owned; type, sent_at and body point into it */
    const char *type;
    const char *sent_at;
    json_object *body;
    char id[37]; /* lower case */
};

/* ---- reasons ------------------------------------------------------------------------- */

static void set_err(char **err, const char *fmt, ...) FERRY_PRINTF(2, 3);
static void set_err(char **err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    *err = xvasprintf(fmt, ap);
    va_end(ap);
}

/* "prefix.key: <fmt>", or "key: <fmt>" when prefix is empty. */
static void field_err(char **err, const char *prefix, const char *key, const char *fmt, ...)
    FERRY_PRINTF(4, 5);
static void field_err(char **err, const char *prefix, const char *key, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *what = xvasprintf(fmt, ap);
    va_end(ap);
    *err = xasprintf("%s%s%s: %s", prefix, *prefix ? "." : "", key, what);
}

/* Returns untrusted text fit to quote in a reason: printable ASCII kept, anything else as
 * \xNN, cut after 64 bytes. Caller frees. */
static char *printable(const char *s, size_t len)
{
    const size_t max = 64;
    size_t n = len < max ? len : max;
    char *out = xmalloc(n * 4 + 4);
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            *p++ = (char)c;
        else
            p += sprintf(p, "\\x%02x", c);
    }
    if (len > max)
        p += sprintf(p, "...");
    *p = '\0';
    return out;
}

static char *printable_str(const char *s)
{
    return printable(s, strlen(s));
}

/* The JSON type of o in the words of a reason (o NULL is JSON null). */
static const char *jtype_name(json_object *o)
{
    switch (json_object_get_type(o)) {
    case json_type_null:
        return "null";
    case json_type_boolean:
        return "boolean";
    case json_type_double:
        return "float";
    case json_type_int:
        return "integer";
    case json_type_object:
        return "object";
    case json_type_array:
        return "array";
    case json_type_string:
        return "string";
    }
    return "unknown";
}

/* ---- typed field access ---------------------------------------------------------------- */

/* Rejects any key of obj not in allowed (NULL-terminated), naming it. */
static int check_keys(json_object *obj, const char *prefix, const char *const *allowed, char **err)
{
    json_object_object_foreach (obj, key, val) {
        (void)val;
        bool known = false;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(key, *a) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            _cleanup_free_ char *k = printable_str(key);
            field_err(err, prefix, k, "unknown field");
            return -1;
        }
    }
    return 0;
}

/* Looks key up in obj: 0 with *found and *val (borrowed; NULL for JSON null), or -1 when it
 * is required and missing. */
static int get_field(json_object *obj, const char *prefix, const char *key, bool required,
                     json_object **val, bool *found, char **err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) {
        if (required) {
            field_err(err, prefix, key, "missing required field");
            return -1;
        }
        *found = false;
        *val = NULL;
        return 0;
    }
    *found = true;
    *val = v;
    return 0;
}

/* A JSON boolean; *out untouched when the optional key is absent. */
static int get_bool(json_object *obj, const char *prefix, const char *key, bool required, bool *out,
                    bool *found_out, char **err)
{
    json_object *v;
    bool found;
    if (get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found) {
        if (!json_object_is_type(v, json_type_boolean)) {
            field_err(err, prefix, key, "expected boolean, got %s", jtype_name(v));
            return -1;
        }
        *out = json_object_get_boolean(v);
    }
    if (found_out)
        *found_out = found;
    return 0;
}

/* A JSON integer within [min,max]; *out untouched when the optional key is absent. */
static int get_int(json_object *obj, const char *prefix, const char *key, bool required,
                   int64_t min, int64_t max, int64_t *out, bool *found_out, char **err)
{
    json_object *v;
    bool found;
    if (get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found) {
        if (!json_object_is_type(v, json_type_int)) {
            field_err(err, prefix, key, "expected integer, got %s", jtype_name(v));
            return -1;
        }
        /* json-c keeps integers above INT64_MAX as uint64 (get_int64 clamps them) and
         * integers below INT64_MIN as INT64_MIN. */
        int64_t x = json_object_get_int64(v);
        bool above = x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX;
        if (x < min || x > max || above) {
            field_err(err, prefix, key, "%s is out of range %" PRId64 "..%" PRId64,
                      json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN), min, max);
            return -1;
        }
        *out = x;
    }
    if (found_out)
        *found_out = found;
    return 0;
}

/* A JSON string (borrowed, with its length); *out is NULL when the optional key is absent;
 * a JSON null is accepted only when null_ok (then *out is NULL and *found true). */
static int get_string(json_object *obj, const char *prefix, const char *key, bool required,
                      bool null_ok, const char **out, size_t *len_out, bool *found_out, char **err)
{
    json_object *v;
    bool found;
    if (get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    *out = NULL;
    *len_out = 0;
    if (found && !(null_ok && v == NULL)) {
        if (!json_object_is_type(v, json_type_string)) {
            field_err(err, prefix, key, "expected %s, got %s",
                      null_ok ? "string or null" : "string", jtype_name(v));
            return -1;
        }
        *out = json_object_get_string(v);
        *len_out = (size_t)json_object_get_string_len(v);
    }
    if (found_out)
        *found_out = found;
    return 0;
}

/* A JSON object (borrowed); *out is NULL when the optional key is absent. */
static int get_object(json_object *obj, const char *prefix, const char *key, bool required,
                      json_object **out, char **err)
{
    json_object *v;
    bool found;
    if (get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found && !json_object_is_type(v, json_type_object)) {
        field_err(err, prefix, key, "expected object, got %s", jtype_name(v));
        return -1;
    }
    *out = found ? v : NULL;
    return 0;
}

static bool is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the offset of the first byte that does not start a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or len when all of
 * s is UTF-8. json-c's own check lets those three through. */
static size_t utf8_invalid_at(const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned char lo = 0x80, hi = 0xbf; /* range of the second byte */
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return i;
        }
        if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return i;
        }
        i += n + 1;
    }
    return len;
}

/* ---- envelope -------------------------------------------------------------------------- */

int msg_parse(const char *data, size_t len, msg_envelope **out, char **err)
{
    if (len > MSG_MAX_BYTES) {
        set_err(err, "message too large: %zu bytes, limit %d", len, MSG_MAX_BYTES);
        return -1;
    }
    size_t first = 0;
    while (data && first < len && is_json_ws(data[first]))
        first++;
    if (!data || first == len) {
        set_err(err, "empty message");
        return -1;
    }

    size_t bad = utf8_invalid_at(data, len);
    if (bad < len) {
        set_err(err, "invalid UTF-8 at byte %zu", bad);
        return -1;
    }

    struct json_tokener *tok = json_tokener_new();
    if (!tok) {
        fprintf(stderr, "ferry: out of memory allocating a json tokener\n");
        abort();
    }
    /* Non-strict: accepts the trailing comma of the ORBIT body (see msg.h). */
    json_tokener_set_flags(tok, JSON_TOKENER_VALIDATE_UTF8);
    json_object *root = json_tokener_parse_ex(tok, data, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (jerr == json_tokener_continue) {
        /* All input used but the value may go on (a bare number): end it with a NUL. */
        root = json_tokener_parse_ex(tok, "", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    }
    json_tokener_free(tok);
    if (jerr != json_tokener_success) { /* (a JSON null succeeds with root NULL) */
        json_object_put(root);
        if (jerr == json_tokener_error_parse_utf8_string)
            set_err(err, "invalid UTF-8 at byte %zu", end);
        else
            set_err(err, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
        return -1;
    }
    for (size_t i = end; i < len; i++) {
        if (!is_json_ws(data[i])) {
            json_object_put(root);
            set_err(err, "trailing data after JSON at byte %zu", i);
            return -1;
        }
    }

    if (!json_object_is_type(root, json_type_object)) {
        set_err(err, "message: expected object, got %s", jtype_name(root));
        json_object_put(root);
        return -1;
    }

    /* The version first: a newer version may have other fields. */
    int64_t v = 0;
    json_object *vobj = NULL;
    bool found;
    if (get_field(root, "", "v", true, &vobj, &found, err) < 0)
        goto fail;
    if (!json_object_is_type(vobj, json_type_int)) {
        set_err(err, "v: expected integer, got %s", jtype_name(vobj));
        goto fail;
    }
    v = json_object_get_int64(vobj);
    if (v != MSG_VERSION) {
        set_err(err, "unsupported message version %s",
                json_object_to_json_string_ext(vobj, JSON_C_TO_STRING_PLAIN));
        goto fail;
    }

    static const char *const keys[] = {"v", "type", "id", "sent_at", "body", NULL};
    if (check_keys(root, "", keys, err) < 0)
        goto fail;

    const char *type, *id, *sent_at;
    size_t type_len, id_len, sent_at_len;
    if (get_string(root, "", "type", true, false, &type, &type_len, NULL, err) < 0)
        goto fail;
    if (type_len == 0) {
        set_err(err, "type: must not be empty");
        goto fail;
    }
    if (get_string(root, "", "id", true, false, &id, &id_len, NULL, err) < 0)
        goto fail;
    if (id_len != 36 || !uuid_valid(id)) {
        set_err(err, "id: not a UUID");
        goto fail;
    }
    if (get_string(root, "", "sent_at", false, false, &sent_at, &sent_at_len, NULL, err) < 0)
        goto fail;
    json_object *body;
    if (get_object(root, "", "body", true, &body, err) < 0)
        goto fail;

    msg_envelope *env;
    env = xcalloc(1, sizeof(*env));
    env->root = root;
    env->type = type;
    env->sent_at = sent_at;
    env->body = body;
    for (size_t i = 0; i < 36; i++)
        env->id[i] = (char)tolower((unsigned char)id[i]);
    env->id[36] = '\0';
    *out = env;
    return 0;

fail:
    json_object_put(root);
    return -1;
}

void msg_envelope_free(msg_envelope *env)
{
    if (!env)
        return;
    json_object_put(env->root);
    free(env);
}

void msg_envelope_freep(msg_envelope **envp)
{
    msg_envelope_free(*envp);
}

const char *msg_envelope_type(const msg_envelope *env)
{
    return env->type;
}

const char *msg_envelope_id(const msg_envelope *env)
{
    return env->id;
}

const char *msg_envelope_sent_at(const msg_envelope *env)
{
    return env->sent_at;
}

json_object *msg_envelope_body(const msg_envelope *env)
{
    return env->body;
}

char *msg_build(const char *type, const char *id, json_object *body)
{
    char idbuf[37];
    if (!id) {
        uuid_new(idbuf);
        id = idbuf;
    }
    char sent_at[32];
    rfc3339_ms(wall_ms(), sent_at, sizeof(sent_at));

    json_object *root = json_object_new_object();
    json_object_object_add(root, "v", json_object_new_int(MSG_VERSION));
    json_object_object_add(root, "type", json_object_new_string(type));
    json_object_object_add(root, "id", json_object_new_string(id));
    json_object_object_add(root, "sent_at", json_object_new_string(sent_at));
    json_object_object_add(root, "body", body ? body : json_object_new_object());
    char *s = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return s;
}

int msg_check_message_id(const msg_envelope *env, const char *amqp_message_id, char **err)
{
    if (!amqp_message_id || !*amqp_message_id)
        return 0;
    if (strcasecmp(amqp_message_id, env->id) == 0)
        return 0;
    _cleanup_free_ char *p = printable_str(amqp_message_id);
    set_err(err, "amqp message_id \"%s\" does not match envelope id %s", p, env->id);
    return -1;
}

/* ---- the migration request -------------------------------------------------------------- */

void msg_request_defaults_init(msg_request_defaults *defs)
{
    defs->auto_converge = false;
    defs->postcopy_after_iterations = 1;
    defs->bandwidth_mib_s = 0;
    defs->max_downtime_ms = 300;
    defs->completion_timeout_s = 0;
}

static int check_range(const char *prefix, const char *key, int x, int min, int max, char **err)
{
    if (x < min || x > max) {
        field_err(err, prefix, key, "%d is out of range %d..%d", x, min, max);
        return -1;
    }
    return 0;
}

int msg_options_check(const msg_options *opts, const char *prefix, char **err)
{
    if (!prefix)
        prefix = "";
    if (check_range(prefix, "postcopy_after_iterations", opts->postcopy_after_iterations,
                    MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX, err) < 0 ||
        check_range(prefix, "bandwidth_mib_s", opts->bandwidth_mib_s, 0, MSG_OPT_BANDWIDTH_MAX,
                    err) < 0 ||
        check_range(prefix, "max_downtime_ms", opts->max_downtime_ms, MSG_OPT_DOWNTIME_MIN,
                    MSG_OPT_DOWNTIME_MAX, err) < 0 ||
        check_range(prefix, "completion_timeout_s", opts->completion_timeout_s, 0,
                    MSG_OPT_COMPLETION_TIMEOUT_MAX, err) < 0)
        return -1;
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
static int check_instance(const char *prefix, const char *key, const char *s, size_t len,
                          char **err)
{
    if (len == 0) {
        field_err(err, prefix, key, "must not be empty");
        return -1;
    }
    if (len > MSG_NAME_MAX) {
        field_err(err, prefix, key, "%zu bytes, limit %d", len, MSG_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool c1 = c == 0xc2 && i + 1 < len && (unsigned char)s[i + 1] >= 0x80 &&
                  (unsigned char)s[i + 1] <= 0x9f;
        if (c < 0x20 || c == 0x7f || c1) {
            field_err(err, prefix, key, "control character at byte %zu", i);
            return -1;
        }
    }
    return 0;
}

/* Host name: 1..255 bytes of letters, digits, '-', '.', '_'. */
static int check_host(const char *prefix, const char *key, const char *s, size_t len, char **err)
{
    if (len == 0) {
        field_err(err, prefix, key, "must not be empty (null lets the scheduler choose)");
        return -1;
    }
    if (len > MSG_NAME_MAX) {
        field_err(err, prefix, key, "%zu bytes, limit %d", len, MSG_NAME_MAX);
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(isascii(c) && (isalnum(c) || c == '-' || c == '.' || c == '_'))) {
            field_err(err, prefix, key,
                      "invalid character at byte %zu (allowed: letters, digits, '-', '.', '_')", i);
            return -1;
        }
    }
    return 0;
}

int msg_request_parse(const msg_envelope *env, const msg_request_defaults *defs, msg_request *out,
                      char **err)
{
    if (strcmp(env->type, MSG_TYPE_REQUEST) != 0) {
        _cleanup_free_ char *t = printable_str(env->type);
        set_err(err, "type: expected \"%s\", got \"%s\"", MSG_TYPE_REQUEST, t);
        return -1;
    }
    msg_request_defaults builtin;
    if (!defs) {
        msg_request_defaults_init(&builtin);
        defs = &builtin;
    }
    msg_request r = {.options = *defs};

    json_object *body = env->body;
    static const char *const body_keys[] = {"instance", "os-migrateLive", "options", NULL};
    if (check_keys(body, "body", body_keys, err) < 0)
        return -1;

    const char *instance;
    size_t instance_len;
    if (get_string(body, "body", "instance", true, false, &instance, &instance_len, NULL, err))
        return -1;
    if (check_instance("body", "instance", instance, instance_len, err) < 0)
        return -1;

    /* The ORBIT API body. */
    const char *const ml = "body.os-migrateLive";
    json_object *live;
    if (get_object(body, "body", "os-migrateLive", true, &live, err) < 0)
        return -1;
    static const char *const live_keys[] = {"host", "block_migration", "disk_over_commit",
                                            "post_copy", NULL};
    if (check_keys(live, ml, live_keys, err) < 0)
        return -1;
    const char *host;
    size_t host_len;
    if (get_string(live, ml, "host", true, true, &host, &host_len, NULL, err) < 0)
        return -1;
    if (host && check_host(ml, "host", host, host_len, err) < 0)
        return -1;

    json_object *bm;
    bool found;
    if (get_field(live, ml, "block_migration", false, &bm, &found, err) < 0)
        return -1;
    if (found) {
        if (json_object_is_type(bm, json_type_boolean)) {
            r.block_migration = json_object_get_boolean(bm) ? MSG_BLOCK_YES : MSG_BLOCK_NO;
        } else if (json_object_is_type(bm, json_type_string) &&
                   strcmp(json_object_get_string(bm), "auto") == 0 &&
                   json_object_get_string_len(bm) == 4) {
            r.block_migration = MSG_BLOCK_AUTO;
        } else if (json_object_is_type(bm, json_type_string)) {
            _cleanup_free_ char *p =
                printable(json_object_get_string(bm), (size_t)json_object_get_string_len(bm));
            field_err(err, ml, "block_migration", "expected boolean or \"auto\", got \"%s\"", p);
            return -1;
        } else {
            field_err(err, ml, "block_migration", "expected boolean or \"auto\", got %s",
                      jtype_name(bm));
            return -1;
        }
    }
    if (get_bool(live, ml, "disk_over_commit", false, &r.disk_over_commit, NULL, err) < 0 ||
        get_bool(live, ml, "post_copy", false, &r.post_copy, NULL, err) < 0)
        return -1;

    /* ferry's own options. */
    const char *const op = "body.options";
    json_object *opts;
    if (get_object(body, "body", "options", false, &opts, err) < 0)
        return -1;
    if (opts) {
        static const char *const opt_keys[] = {"auto_converge",        "postcopy_after_iterations",
                                               "bandwidth_mib_s",      "max_downtime_ms",
                                               "completion_timeout_s", NULL};
        if (check_keys(opts, op, opt_keys, err) < 0)
            return -1;
        static const struct {
            const char *key;
            int64_t min, max;
            unsigned bit;
            size_t off;
        } ints[] = {
            {"postcopy_after_iterations", MSG_OPT_POSTCOPY_AFTER_MIN, MSG_OPT_POSTCOPY_AFTER_MAX,
             MSG_OPT_POSTCOPY_AFTER, offsetof(msg_options, postcopy_after_iterations)},
            {"bandwidth_mib_s", 0, MSG_OPT_BANDWIDTH_MAX, MSG_OPT_BANDWIDTH,
             offsetof(msg_options, bandwidth_mib_s)},
            {"max_downtime_ms", MSG_OPT_DOWNTIME_MIN, MSG_OPT_DOWNTIME_MAX, MSG_OPT_MAX_DOWNTIME,
             offsetof(msg_options, max_downtime_ms)},
            {"completion_timeout_s", 0, MSG_OPT_COMPLETION_TIMEOUT_MAX, MSG_OPT_COMPLETION_TIMEOUT,
             offsetof(msg_options, completion_timeout_s)},
        };
        if (get_bool(opts, op, "auto_converge", false, &r.options.auto_converge, &found, err) < 0)
            return -1;
        if (found)
            r.options_given |= MSG_OPT_AUTO_CONVERGE;
        for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
            int64_t x;
            if (get_int(opts, op, ints[i].key, false, ints[i].min, ints[i].max, &x, &found, err))
                return -1;
            if (found) {
                *(int *)((char *)&r.options + ints[i].off) = (int)x;
                r.options_given |= ints[i].bit;
            }
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
    json_object_object_add(live, "disk_over_commit",
                           json_object_new_boolean(req->disk_over_commit));
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
            json_object_object_add(opts, "auto_converge",
                                   json_object_new_boolean(o->auto_converge));
        if (given & MSG_OPT_POSTCOPY_AFTER)
            json_object_object_add(opts, "postcopy_after_iterations",
                                   json_object_new_int(o->postcopy_after_iterations));
        if (given & MSG_OPT_BANDWIDTH)
            json_object_object_add(opts, "bandwidth_mib_s",
                                   json_object_new_int(o->bandwidth_mib_s));
        if (given & MSG_OPT_MAX_DOWNTIME)
            json_object_object_add(opts, "max_downtime_ms",
                                   json_object_new_int(o->max_downtime_ms));
        if (given & MSG_OPT_COMPLETION_TIMEOUT)
            json_object_object_add(opts, "completion_timeout_s",
                                   json_object_new_int(o->completion_timeout_s));
        json_object_object_add(body, "options", opts);
    }

    _cleanup_free_ char *json = msg_build(MSG_TYPE_REQUEST, req->id, body);

    /* Check it exactly as the scheduler will. */
    _cleanup_(msg_envelope_freep) msg_envelope *env = NULL;
    msg_request check;
    if (msg_parse(json, strlen(json), &env, err) < 0 ||
        msg_request_parse(env, NULL, &check, err) < 0)
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
        if (check_keys(body, "body", keys, err) < 0 ||
            get_int(body, "body", "migration", true, 1, INT64_MAX, &r.migration, NULL, err) < 0 ||
            get_string(body, "body", "dest", true, true, &dest, &dest_len, NULL, err) < 0)
            return -1;
        if (dest && check_host("body", "dest", dest, dest_len, err) < 0)
            return -1;
        r.accepted = true;
        r.dest = xstrdup(dest);
    } else if (strcmp(env->type, MSG_TYPE_REFUSED) == 0) {
        static const char *const keys[] = {"reason", NULL};
        const char *reason;
        size_t reason_len;
        if (check_keys(body, "body", keys, err) < 0 ||
            get_string(body, "body", "reason", true, false, &reason, &reason_len, NULL, err) < 0)
            return -1;
        if (reason_len == 0) {
            set_err(err, "body.reason: must not be empty");
            return -1;
        }
        r.accepted = false;
        r.reason = xstrndup(reason, reason_len);
    } else {
        _cleanup_free_ char *t = printable_str(env->type);
        set_err(err, "type: expected \"%s\" or \"%s\", got \"%s\"", MSG_TYPE_ACCEPTED,
                MSG_TYPE_REFUSED, t);
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
