/* msg_field: the reasons of the message checks (untrusted text made printable) and the typed
 * access to a JSON object's fields that every message reader uses. */
#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#include "msg_priv.h"

/* ---- reasons ------------------------------------------------------------------------- */

void msg_set_err(char **err, const char *fmt, ...)
{
    if (!err)
        return;
    va_list ap;
    va_start(ap, fmt);
    *err = xvasprintf(fmt, ap);
    va_end(ap);
}

/* "prefix.key: <fmt>", or "key: <fmt>" when prefix is empty. */
void msg_field_err(char **err, const char *prefix, const char *key, const char *fmt, ...)
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
char *msg_printable(const char *s, size_t len)
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

char *msg_printable_str(const char *s)
{
    return msg_printable(s, strlen(s));
}

/* The JSON type of o in the words of a reason (o NULL is JSON null). */
const char *msg_jtype_name(json_object *o)
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
int msg_check_keys(json_object *obj, const char *prefix, const char *const *allowed, char **err)
{
    json_object_object_foreach(obj, key, val)
    {
        (void)val;
        bool known = false;
        for (const char *const *a = allowed; *a; a++) {
            if (strcmp(key, *a) == 0) {
                known = true;
                break;
            }
        }
        if (!known) {
            _cleanup_free_ char *k = msg_printable_str(key);
            msg_field_err(err, prefix, k, "unknown field");
            return -1;
        }
    }
    return 0;
}

/* Looks key up in obj: 0 with *found and *val (borrowed; NULL for JSON null), or -1 when it
 * is required and missing. */
int msg_get_field(json_object *obj, const char *prefix, const char *key, bool required, json_object **val, bool *found,
                  char **err)
{
    json_object *v = NULL;
    if (!json_object_object_get_ex(obj, key, &v)) {
        if (required) {
            msg_field_err(err, prefix, key, "missing required field");
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
int msg_get_bool(json_object *obj, const char *prefix, const char *key, bool required, bool *out, bool *found_out,
                 char **err)
{
    json_object *v;
    bool found;
    if (msg_get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found) {
        if (!json_object_is_type(v, json_type_boolean)) {
            msg_field_err(err, prefix, key, "expected boolean, got %s", msg_jtype_name(v));
            return -1;
        }
        *out = json_object_get_boolean(v);
    }
    if (found_out)
        *found_out = found;
    return 0;
}

/* A JSON integer within [min,max]; *out untouched when the optional key is absent. */
int msg_get_int(json_object *obj, const char *prefix, const char *key, bool required, int64_t min, int64_t max,
                int64_t *out, bool *found_out, char **err)
{
    json_object *v;
    bool found;
    if (msg_get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found) {
        if (!json_object_is_type(v, json_type_int)) {
            msg_field_err(err, prefix, key, "expected integer, got %s", msg_jtype_name(v));
            return -1;
        }
        /* json-c keeps integers above INT64_MAX as uint64 (get_int64 clamps them) and
         * integers below INT64_MIN as INT64_MIN. */
        int64_t x = json_object_get_int64(v);
        bool above = x == INT64_MAX && json_object_get_uint64(v) > (uint64_t)INT64_MAX;
        if (x < min || x > max || above) {
            msg_field_err(err, prefix, key, "%s is out of range %" PRId64 "..%" PRId64,
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
int msg_get_string(json_object *obj, const char *prefix, const char *key, bool required, bool null_ok, const char **out,
                   size_t *len_out, bool *found_out, char **err)
{
    json_object *v;
    bool found;
    if (msg_get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    *out = NULL;
    *len_out = 0;
    if (found && !(null_ok && v == NULL)) {
        if (!json_object_is_type(v, json_type_string)) {
            msg_field_err(err, prefix, key, "expected %s, got %s", null_ok ? "string or null" : "string",
                          msg_jtype_name(v));
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
int msg_get_object(json_object *obj, const char *prefix, const char *key, bool required, json_object **out, char **err)
{
    json_object *v;
    bool found;
    if (msg_get_field(obj, prefix, key, required, &v, &found, err) < 0)
        return -1;
    if (found && !json_object_is_type(v, json_type_object)) {
        msg_field_err(err, prefix, key, "expected object, got %s", msg_jtype_name(v));
        return -1;
    }
    *out = found ? v : NULL;
    return 0;
}

bool msg_is_json_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Returns the offset of the first byte that does not start a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or len when all of
 * s is UTF-8. json-c's own check lets those three through. */
size_t msg_utf8_invalid_at(const char *str, size_t len)
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
