/* msg_priv: what the parts of the msg module share (msg_field.c: reasons and typed field
 * access; msg.c: the envelope; msg_request.c: the migration request and its replies). Internal
 * to common/msg*.c. */
#ifndef FERRY_MSG_PRIV_H
#define FERRY_MSG_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "msg.h"

struct msg_envelope {
    json_object *root; /* owned; type, sent_at and body point into it */
    const char *type;
    const char *sent_at;
    json_object *body;
    char id[37]; /* lower case */
};

/* msg_field.c */
/* Sets *err (when err is not NULL) to the reason made from fmt. */
void msg_set_err(char **err, const char *fmt, ...) FERRY_PRINTF(2, 3);
/* "prefix.key: <fmt>", or "key: <fmt>" when prefix is empty. */
void msg_field_err(char **err, const char *prefix, const char *key, const char *fmt, ...) FERRY_PRINTF(4, 5);
/* Returns untrusted text fit to quote in a reason: printable ASCII kept, anything else as
 * \xNN, cut after 64 bytes. Caller frees. */
char *msg_printable(const char *s, size_t len);
/* msg_printable() of a NUL-terminated s. Caller frees. */
char *msg_printable_str(const char *s);
/* Rejects any key of obj not in allowed (NULL-terminated), naming it. */
int msg_check_keys(json_object *obj, const char *prefix, const char *const *allowed, char **err);
/* Looks key up in obj: 0 with *found and *val (borrowed; NULL for JSON null), or -1 when it
 * is required and missing. */
int msg_get_field(json_object *obj, const char *prefix, const char *key, bool required, json_object **val, bool *found,
                  char **err);
/* A JSON boolean; *out untouched when the optional key is absent. */
int msg_get_bool(json_object *obj, const char *prefix, const char *key, bool required, bool *out, bool *found_out,
                 char **err);
/* A JSON integer within [min,max]; *out untouched when the optional key is absent. */
int msg_get_int(json_object *obj, const char *prefix, const char *key, bool required, int64_t min, int64_t max,
                int64_t *out, bool *found_out, char **err);
/* A JSON string (borrowed, with its length); *out is NULL when the optional key is absent;
 * a JSON null is accepted only when null_ok (then *out is NULL and *found true). */
int msg_get_string(json_object *obj, const char *prefix, const char *key, bool required, bool null_ok, const char **out,
                   size_t *len_out, bool *found_out, char **err);
/* A JSON object (borrowed); *out is NULL when the optional key is absent. */
int msg_get_object(json_object *obj, const char *prefix, const char *key, bool required, json_object **out, char **err);
/* Returns true for the whitespace JSON allows between tokens. */
bool msg_is_json_ws(char c);
/* Returns the offset of the first byte that does not start a well-formed UTF-8 sequence
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or len when all of
 * s is UTF-8. json-c's own check lets those three through. */
size_t msg_utf8_invalid_at(const char *str, size_t len);

#endif
