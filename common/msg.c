/* msg: the message envelope (parse, check, build, accessors). The migration request and its
 * replies: msg_request.c; the field readers they share: msg_field.c (see msg_priv.h). */
#include "msg.h"

#include <ctype.h>
#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "msg_priv.h"

/* ---- envelope -------------------------------------------------------------------------- */

int msg_parse(const char *data, size_t len, msg_envelope **out, char **err)
{
    if (len > MSG_MAX_BYTES) {
        msg_set_err(err, "message too large: %zu bytes, limit %d", len, MSG_MAX_BYTES);
        return -1;
    }
    size_t first = 0;
    while (data && first < len && msg_is_json_ws(data[first]))
        first++;
    if (!data || first == len) {
        msg_set_err(err, "empty message");
        return -1;
    }

    size_t bad = msg_utf8_invalid_at(data, len);
    if (bad < len) {
        msg_set_err(err, "invalid UTF-8 at byte %zu", bad);
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
            msg_set_err(err, "invalid UTF-8 at byte %zu", end);
        else
            msg_set_err(err, "invalid JSON at byte %zu: %s", end, json_tokener_error_desc(jerr));
        return -1;
    }
    for (size_t i = end; i < len; i++) {
        if (!msg_is_json_ws(data[i])) {
            json_object_put(root);
            msg_set_err(err, "trailing data after JSON at byte %zu", i);
            return -1;
        }
    }

    if (!json_object_is_type(root, json_type_object)) {
        msg_set_err(err, "message: expected object, got %s", msg_jtype_name(root));
        json_object_put(root);
        return -1;
    }

    /* The version first: a newer version may have other fields. */
    int64_t v = 0;
    json_object *vobj = NULL;
    bool found;
    if (msg_get_field(root, "", "v", true, &vobj, &found, err) < 0)
        goto fail;
    if (!json_object_is_type(vobj, json_type_int)) {
        msg_set_err(err, "v: expected integer, got %s", msg_jtype_name(vobj));
        goto fail;
    }
    v = json_object_get_int64(vobj);
    if (v != MSG_VERSION) {
        msg_set_err(err, "unsupported message version %s",
                    json_object_to_json_string_ext(vobj, JSON_C_TO_STRING_PLAIN));
        goto fail;
    }

    static const char *const keys[] = {"v", "type", "id", "sent_at", "body", NULL};
    if (msg_check_keys(root, "", keys, err) < 0)
        goto fail;

    const char *type, *id, *sent_at;
    size_t type_len, id_len, sent_at_len;
    if (msg_get_string(root, "", "type", true, false, &type, &type_len, NULL, err) < 0)
        goto fail;
    if (type_len == 0) {
        msg_set_err(err, "type: must not be empty");
        goto fail;
    }
    if (msg_get_string(root, "", "id", true, false, &id, &id_len, NULL, err) < 0)
        goto fail;
    if (id_len != 36 || !uuid_valid(id)) {
        msg_set_err(err, "id: not a UUID");
        goto fail;
    }
    if (msg_get_string(root, "", "sent_at", false, false, &sent_at, &sent_at_len, NULL, err) < 0)
        goto fail;
    json_object *body;
    if (msg_get_object(root, "", "body", true, &body, err) < 0)
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
    char *s = xstrdup(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(root);
    return s;
}

int msg_check_message_id(const msg_envelope *env, const char *amqp_message_id, char **err)
{
    if (!amqp_message_id || !*amqp_message_id)
        return 0;
    if (strcasecmp(amqp_message_id, env->id) == 0)
        return 0;
    _cleanup_free_ char *p = msg_printable_str(amqp_message_id);
    msg_set_err(err, "amqp message_id \"%s\" does not match envelope id %s", p, env->id);
    return -1;
}
