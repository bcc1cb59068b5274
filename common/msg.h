/* msg: ferry's message envelope and the migration request contract (docs/DESIGN.md "Messages",
 * "The request contract").
 *
 * Every message is one JSON object:
 *     {"v":1,"type":"...","id":"<uuid>","sent_at":"<RFC 3339>","body":{...}}
 * msg_parse() checks the envelope once; msg_request_parse() checks a "migration.request"
 * body once, for every consumer (scheduler intake, HTTP API, ferryctl). A rejected message
 * gets one reason naming the field by its path, e.g.
 *     body.os-migrateLive.post_copy: expected boolean, got string
 * which is what goes into the dead-letter header and the refusal.
 *
 * Parsing is strict about structure and types (unknown keys are rejected by name, integers
 * must be JSON integers, booleans JSON booleans; the whole input must be well-formed UTF-8
 * per RFC 3629, no overlong forms or surrogates) with one deliberate leniency: a trailing
 * comma before `}` or `]` is accepted, because the ORBIT API body (the seed) is written that
 * way (`"post_copy": false,\n }`). This uses json-c's non-strict tokener, which also lets a
 * few other non-JSON spellings through at the syntax level: 'single-quoted' strings,
 * comments, NaN/Infinity, leading zeros, TRUE/False in any case, raw control characters
 * inside strings. The field checks below still apply to whatever such input produces
 * (NaN is a float, so it is never an integer option; control characters are refused in
 * the instance and host). A key given twice keeps its last value (json-c behaviour). */
#ifndef FERRY_MSG_H
#define FERRY_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util.h"

/* Largest message accepted, in bytes; anything longer is refused before it is parsed. */
#define MSG_MAX_BYTES 65536
/* Current (and only) envelope version. */
#define MSG_VERSION 1

#define MSG_TYPE_REQUEST "migration.request"
#define MSG_TYPE_ACCEPTED "migration.accepted"
#define MSG_TYPE_REFUSED "migration.refused"

/* Longest instance reference and host name, in bytes. */
#define MSG_NAME_MAX 255

/* ---- envelope ---------------------------------------------------------------------- */

typedef struct msg_envelope msg_envelope;

/* Parses and checks one envelope from data[0..len) (need not be NUL-terminated; AMQP bodies
 * are not). On success *out gets a new envelope (caller frees with msg_envelope_free); on
 * failure returns -1 and, if err is not NULL, *err gets a new reason string (caller frees).
 * The envelope id is returned in lower case (UUIDs compare case-insensitively). */
int msg_parse(const char *data, size_t len, msg_envelope **out, char **err) FERRY_WUR;
/* Frees env and the JSON it owns; NULL is a no-op. */
void msg_envelope_free(msg_envelope *env);
/* For _cleanup_(msg_envelope_freep). */
void msg_envelope_freep(msg_envelope **envp);
/* Returns the message type (non-empty), borrowed from env. */
const char *msg_envelope_type(const msg_envelope *env);
/* Returns the message id (a lower-case UUID), borrowed from env. */
const char *msg_envelope_id(const msg_envelope *env);
/* Returns sent_at as the sender wrote it, or NULL when absent; borrowed from env. */
const char *msg_envelope_sent_at(const msg_envelope *env);
/* Returns the body object, borrowed from env (json_object_get it to keep it longer). */
json_object *msg_envelope_body(const msg_envelope *env);

/* Returns the JSON type of o in the words of a reason ("null" for NULL, a JSON null; "integer",
 * "float", "string", ...); a static string. */
const char *msg_jtype_name(json_object *o);

/* Builds an envelope of the given type around body, with v=1, id (a new UUID when id is
 * NULL) and sent_at now. Takes the caller's reference to body (NULL means {}). Returns a
 * new compact JSON string; caller frees. */
char *msg_build(const char *type, const char *id, json_object *body);

/* Checks the AMQP message_id rule: when amqp_message_id is present (not NULL, not empty) it
 * must equal the envelope id (as a UUID, case-insensitively). Returns 0 when it holds; -1
 * with a new reason in *err (if err is not NULL; caller frees) when it does not. */
int msg_check_message_id(const msg_envelope *env, const char *amqp_message_id, char **err) FERRY_WUR;

/* ---- the migration request ----------------------------------------------------------- */

typedef enum {
    MSG_BLOCK_NO = 0,   /* "block_migration": false (shared storage) */
    MSG_BLOCK_YES = 1,  /* "block_migration": true (copy the disks) */
    MSG_BLOCK_AUTO = 2, /* "block_migration": "auto" (copy unless storage is shared) */
} msg_block_mode;

typedef enum {
    MSG_INSTANCE_NAME = 0, /* anything else: the instance name */
    MSG_INSTANCE_UUID = 1, /* 8-4-4-4-12 hex */
    MSG_INSTANCE_EC2 = 2,  /* "i-" followed by 1 to 16 hex digits, e.g. i-0000002a */
} msg_instance_kind;

/* ferry's migration options ("options" in the body). Also the type of the defaults the
 * scheduler takes from its config for options a request leaves out. */
typedef struct msg_options {
    bool auto_converge;            /* default false */
    int postcopy_after_iterations; /* 1..1000, default 1 (the ORBIT behaviour) */
    int bandwidth_mib_s;           /* 0..100000, 0 = unlimited, default 0 */
    int max_downtime_ms;           /* 1..600000, default 300 */
    int completion_timeout_s;      /* 0..86400, 0 = none, default 0 */
    int completion_action;         /* msg_completion_action: what the timeout does, default abort */
    int parallel_connections;      /* 1..MSG_OPT_PARALLEL_MAX streams of memory (multifd), default 1 */
    int xbzrle_cache_mib;          /* 0..MSG_OPT_XBZRLE_CACHE_MAX: xbzrle compression with this cache, 0 = off */
} msg_options;
typedef msg_options msg_request_defaults;

#define MSG_OPT_POSTCOPY_AFTER_MIN 1
#define MSG_OPT_POSTCOPY_AFTER_MAX 1000
#define MSG_OPT_BANDWIDTH_MAX 100000
#define MSG_OPT_DOWNTIME_MIN 1
#define MSG_OPT_DOWNTIME_MAX 600000
#define MSG_OPT_COMPLETION_TIMEOUT_MAX 86400
#define MSG_OPT_PARALLEL_MAX 32
#define MSG_OPT_XBZRLE_CACHE_MAX 65536

/* What a migration's completion timeout does (issue #19): abort it (the guest stays), switch it
 * to post-copy (needs post_copy), or pause the guest so the rest is sent and it resumes on the
 * destination (Nova's force-complete of a pre-copy). */
typedef enum msg_completion_action {
    MSG_COMPLETION_ABORT = 0,
    MSG_COMPLETION_POSTCOPY,
    MSG_COMPLETION_PAUSE,
} msg_completion_action;
/* The keys of a request's "options" (NULL-terminated, static): a policy's options are the same. */
extern const char *const msg_option_keys[];
/* The action's word: "abort", "postcopy", "pause" (static). */
const char *msg_completion_action_str(int a);
/* The action named s (NULL-safe); -1 when s names none. */
int msg_completion_action_of(const char *s);

/* Bits of msg_request.options_given: which options the request spelled out. */
enum {
    MSG_OPT_AUTO_CONVERGE = 1u << 0,
    MSG_OPT_POSTCOPY_AFTER = 1u << 1,
    MSG_OPT_BANDWIDTH = 1u << 2,
    MSG_OPT_MAX_DOWNTIME = 1u << 3,
    MSG_OPT_COMPLETION_TIMEOUT = 1u << 4,
    MSG_OPT_COMPLETION_ACTION = 1u << 5,
    MSG_OPT_PARALLEL = 1u << 6,
    MSG_OPT_XBZRLE_CACHE = 1u << 7,
};
/* Whether the options' transport settings combine (issue #19): 0, or -1 with why in *err (caller
 * frees; prefix names the options' place, e.g. "body.options", or ""). xbzrle compresses one stream:
 * not with parallel connections; its cache is a power of two (QEMU's). Post-copy with parallel
 * connections depends on the hosts' QEMU (10.1+): the scheduler's intake checks that. */
int msg_options_transport_check(const msg_options *opts, const char *prefix, char **err);

/* What a request asks ferry to hold to ("objectives" in the body, issue #18); 0 = not asked.
 * ferry plans the mode from a forecast before it claims anything, refuses the request when no
 * mode can meet them, and answers with a receipt at the end. */
typedef struct msg_objectives {
    int max_downtime_ms; /* MSG_OPT_DOWNTIME_MIN..MSG_OPT_DOWNTIME_MAX: the guest's longest pause */
    int deadline_s;      /* 1..MSG_OBJ_DEADLINE_MAX: done within this many seconds of acceptance */
} msg_objectives;

#define MSG_OBJ_DEADLINE_MAX (7 * 86400)

/* A checked migration request. The strings are owned by the struct (msg_request_free). */
typedef struct msg_request {
    char *id;                        /* request id = envelope id, lower-case UUID */
    char *instance;                  /* name, uuid or i-xxxxxxxx, as sent */
    msg_instance_kind instance_kind; /* how instance is spelled */
    char *host;                      /* destination, or NULL: the scheduler picks one */
    msg_block_mode block_migration;
    bool disk_over_commit;
    bool post_copy;
    bool post_copy_given;      /* the request spelled post_copy out (a policy's default applies otherwise) */
    msg_options options;       /* every value filled in: given, else from the defaults */
    unsigned options_given;    /* MSG_OPT_* bits of the options the request spelled out */
    msg_objectives objectives; /* all 0 when the request sets none */
} msg_request;

/* Fills *defs with the built-in defaults (no auto-converge, post-copy after 1 iteration,
 * unlimited bandwidth, 300 ms max downtime, no completion timeout). */
void msg_request_defaults_init(msg_request_defaults *defs);
/* Checks that every value in *opts is in its range; prefix names the owner in the reason
 * (e.g. "options" gives "options.max_downtime_ms: 0 is out of range 1..600000"). Returns 0,
 * or -1 with a new reason in *err (if err is not NULL; caller frees). */
int msg_options_check(const msg_options *opts, const char *prefix, char **err) FERRY_WUR;

/* Checks env as a migration request and fills *out with copies (caller releases them with
 * msg_request_free). Options the body leaves out come from defs (NULL = built-in defaults;
 * defs is not itself range-checked here, see msg_options_check). On failure returns -1, *out
 * is untouched and *err (if err is not NULL) gets a new reason naming the field; caller
 * frees. env is borrowed. */
int msg_request_parse(const msg_envelope *env, const msg_request_defaults *defs, msg_request *out,
                      char **err) FERRY_WUR;
/* Frees the strings req owns and zeroes it (req itself is the caller's storage); NULL is a
 * no-op. */
void msg_request_free(msg_request *req);

/* Builds a "migration.request" message from req (borrowed): id (NULL = new UUID),
 * instance, host (NULL = scheduler picks), block_migration, disk_over_commit, post_copy, and
 * under "options" only the options whose MSG_OPT_* bit is set in req->options_given, and
 * "objectives" when one is set (instance_kind is ignored). The result is checked with msg_parse + msg_request_parse, so it
 * is exactly what the scheduler accepts. On success *out_json gets a new JSON string (caller
 * frees); on failure returns -1 with a new reason in *err (if err is not NULL; caller
 * frees). */
int msg_build_request(const msg_request *req, char **out_json, char **err) FERRY_WUR;

/* Returns how ref is spelled: a UUID, an EC2-style id ("i-" + 1..16 hex digits) or a name. */
msg_instance_kind msg_instance_classify(const char *ref);
/* Returns the lower-case name of kind ("uuid", "ec2", "name"); static string. */
const char *msg_instance_kind_name(msg_instance_kind kind);
/* Returns "false", "true" or "auto" for mode; static string. */
const char *msg_block_mode_name(msg_block_mode mode);

/* ---- replies ------------------------------------------------------------------------- */

/* Builds the "migration.accepted" reply to request req_id (its id is req_id, a UUID, borrowed):
 * body {"migration": migration_id, "dest": dest} (dest NULL gives null). Caller frees. */
char *msg_build_accepted(const char *req_id, int64_t migration_id, const char *dest);
/* Builds the "migration.refused" reply to request req_id (borrowed): body {"reason": reason}.
 * Caller frees. */
char *msg_build_refused(const char *req_id, const char *reason);

/* A checked reply to a migration request. The strings are owned (msg_reply_free). */
typedef struct msg_reply {
    char *id;          /* request id the reply answers (lower-case UUID) */
    bool accepted;     /* true: migration.accepted, false: migration.refused */
    int64_t migration; /* accepted: the migration id (>= 1) */
    char *dest;        /* accepted: destination host, or NULL when the reply had null */
    char *reason;      /* refused: why */
} msg_reply;

/* Checks env as a "migration.accepted" or "migration.refused" reply and fills *out with
 * copies (caller releases them with msg_reply_free). On failure returns -1, *out is
 * untouched and *err (if err is not NULL) gets a new reason; caller frees. */
int msg_reply_parse(const msg_envelope *env, msg_reply *out, char **err) FERRY_WUR;
/* Frees the strings reply owns and zeroes it (reply itself is the caller's storage); NULL is
 * a no-op. */
void msg_reply_free(msg_reply *reply);

#endif
