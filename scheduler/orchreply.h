/* orchreply: what an agent's reply to an RPC of the orchestration says, and what the stats of
 * its migration events say, read strictly before the scheduler acts on any of it. A compute
 * host may be compromised: its replies are claims, like its heartbeats (agentmsg.h).
 *
 * Each reader turns a body into a C struct with every field the orchestration uses checked:
 * strings are JSON strings of bounded length without control bytes (an error text, which
 * libvirt may write on several lines, is copied with its control bytes as spaces and cut),
 * booleans are booleans, numbers are integers within bounds (never negative), a job state the
 * scheduler does not know is JOB_STATE_COUNT. A field the orchestration does not use is not
 * read (agents may add fields). A missing field takes the default its comment documents, or
 * refuses the body when no default is safe; a JSON null or a wrong type always refuses. A
 * refused body fails its call like an error reply, with the reason (orchcall.c). Pure: json-c
 * only, no I/O; tests/fuzz/fuzz_orchreply.c drives it with hostile bodies. */
#ifndef FERRY_ORCHREPLY_H
#define FERRY_ORCHREPLY_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "proto.h"
#include "util.h"

/* The bounds of what is believed. */
#define ORCHREPLY_MAX_TEXT 2048                /* an error text is cut after this many bytes (then "...") */
#define ORCHREPLY_MAX_WORD 32                  /* a state, code, action or format word */
#define ORCHREPLY_MAX_XML 65536                /* check_source's domain_xml (a message is at most 64 KiB) */
#define ORCHREPLY_MAX_PATH 4096                /* a disk's path */
#define ORCHREPLY_MAX_NAME 255                 /* a host name or address */
#define ORCHREPLY_MAX_DISKS 64                 /* check_source's disks (pre_live_migration takes 64) */
#define ORCHREPLY_MAX_MEMORY_MB (1 << 30)      /* check_source's memory_mb (check_destination's bound) */
#define ORCHREPLY_MAX_BYTES (INT64_C(1) << 56) /* a byte count (memory, a disk's size): 64 PiB */
#define ORCHREPLY_MAX_COUNT INT32_MAX          /* iteration, downtime_ms (integer columns) */

/* The agent methods the orchestration calls (compute-agent/RPC.md "Methods"). */
typedef enum orchreply_method {
    ORCHREPLY_CHECK_SOURCE = 0,
    ORCHREPLY_CHECK_DESTINATION,
    ORCHREPLY_PRE_LIVE_MIGRATION,
    ORCHREPLY_LIVE_MIGRATION,
    ORCHREPLY_JOB_STATUS,
    ORCHREPLY_ABORT,
    ORCHREPLY_FORCE_COMPLETE,
    ORCHREPLY_POST_LIVE_MIGRATION,
    ORCHREPLY_ROLLBACK,
    ORCHREPLY_RESUME_POSTCOPY,
    ORCHREPLY_PAUSE_POSTCOPY,
    ORCHREPLY_DIRTY_RATE, /* not the orchestration's: a forecast's input (forecastop.c) */
    ORCHREPLY_SET_BANDWIDTH,
    ORCHREPLY_METHOD_COUNT
} orchreply_method;

/* What force_complete did on the source. */
typedef enum orchreply_fc_action {
    ORCHREPLY_FC_POSTCOPY = 0, /* "postcopy": switched to post-copy */
    ORCHREPLY_FC_PAUSED,       /* "paused": the guest paused so pre-copy finishes */
} orchreply_fc_action;

/* What the destination's post_live_migration says of the guest's announce (RPC.md). */
typedef enum orchreply_announce {
    ORCHREPLY_ANN_NOT_REPORTED = 0, /* no announce field (an older agent) */
    ORCHREPLY_ANN_SEEN,             /* "seen": the guest's MAC learned on its own tap */
    ORCHREPLY_ANN_NOT_SEEN,         /* "not_seen" */
    ORCHREPLY_ANN_UNKNOWN,          /* "unknown": no interface on a Linux bridge */
} orchreply_announce;

/* Returns the announce state's word ("seen", ...; "not_reported"); a static string. */
const char *orchreply_announce_str(orchreply_announce a);

/* Where a post-copy migration of the domain stands on the host answering job_status
 * (body.domain.postcopy). */
typedef enum orchreply_dom_postcopy {
    ORCHREPLY_DOM_POSTCOPY_NONE = 0, /* absent: not in post-copy */
    ORCHREPLY_DOM_POSTCOPY_ACTIVE,   /* "active": post-copy runs (or its break is not seen yet) */
    ORCHREPLY_DOM_POSTCOPY_FAILED,   /* "failed": post-copy failed, ready for a resume */
} orchreply_dom_postcopy;

/* What resume_postcopy did (its body.resume). */
typedef enum orchreply_resume {
    ORCHREPLY_RESUME_STARTED = 0, /* "started": the resume call runs on the source */
    ORCHREPLY_RESUME_UNDER_WAY,   /* "under_way": one already ran */
    ORCHREPLY_RESUME_COMPLETED,   /* "completed": the job completed */
} orchreply_resume;

/* The job statistics the scheduler stores; -1 where a figure is absent. */
typedef struct orchreply_stats {
    int64_t memory_total, memory_processed, memory_remaining; /* 0..ORCHREPLY_MAX_BYTES */
    int64_t iteration, downtime_ms;                           /* 0..ORCHREPLY_MAX_COUNT */
    int64_t memory_bps,
        dirty_pages_s; /* the transfer rate (bytes/s, 0..ORCHREPLY_MAX_BYTES) and libvirt's dirty rate (pages/s,
                        * 0..ORCHREPLY_MAX_BYTES / 4096: in bytes it fits too) */
    int64_t disk_total, disk_processed, disk_remaining; /* a block migration's disks, 0..ORCHREPLY_MAX_BYTES */
    int64_t throttle_pct;                               /* auto-converge's vCPU throttle, 0..100 */
} orchreply_stats;

/* A checked reply. Strings are borrowed from the body unless said otherwise. */
typedef struct orchreply {
    orchreply_method method;
    int ok;        /* 1: the call succeeded (body.ok true); 0: an error reply */
    rpc_code code; /* !ok: body.code (absent or a word this build does not know: RPC_UNKNOWN) */
    char *error;   /* !ok: body.error made printable (owned; absent: "failed") */
    /* ok, check_source */
    struct {
        const char *domain_xml;   /* required, 1..ORCHREPLY_MAX_XML bytes (tabs and line ends allowed) */
        int64_t memory_mb;        /* required, 0..ORCHREPLY_MAX_MEMORY_MB */
        const char *shared_probe; /* NULL when absent (the source could not write it) */
        json_object *disks;       /* owned: a new array of the checked disks ({path, format, target,
                                   * virtual_size, shared}, nothing else); NULL when absent */
    } src;
    /* ok, check_destination */
    struct {
        int shared_storage;  /* required */
        const char *address; /* the destination's migration address (agentmsg_address_ok); NULL absent */
    } dst;
    /* ok, job_status */
    struct {
        job_state state;                             /* required; JOB_STATE_COUNT: a word this build does not know */
        char word[ORCHREPLY_MAX_WORD + 1];           /* the state's word as sent (lowercase letters and _) */
        int postcopy;                                /* absent: 0 */
        char *error;                                 /* the job's error made printable (owned), NULL when absent */
        int dom_exists, dom_running, dom_persistent; /* body.domain: absent fields (or no domain): 0 */
        orchreply_dom_postcopy dom_postcopy;         /* body.domain.postcopy: absent, NONE */
    } job;
    /* ok, force_complete */
    orchreply_fc_action fc_action; /* required */
    /* ok, post_live_migration: body.announce, optional; when given, state is required */
    struct {
        orchreply_announce state;
        char *detail; /* body.announce.detail made printable (owned); NULL when absent */
    } ann;
    /* ok, post_live_migration: body.stats, the destination's completed incoming job (optional) */
    int has_dest_stats;
    orchreply_stats dest_stats; /* all -1 when absent */
    /* ok, resume_postcopy: body.resume, required */
    orchreply_resume resume;
    /* ok, dirty_rate: all required */
    struct {
        int64_t mib_s;       /* 0..ORCHREPLY_MAX_MEMORY_MB per second */
        int64_t memory_mib;  /* 1..ORCHREPLY_MAX_MEMORY_MB */
        int64_t nonzero_mib; /* 0 (not given) or 1..ORCHREPLY_MAX_MEMORY_MB: what is not zero pages */
    } dirty;
} orchreply;

/* Returns the method's word ("check_source", ...); "?" out of range; a static string. */
const char *orchreply_method_str(orchreply_method m);

/* Reads body (borrowed; it must outlive *out) as the reply to method m: 0 with *out filled
 * (release with orchreply_clear), or -1 with *why (caller frees) and *out zeroed when the
 * reply cannot be believed. An error reply (ok false) is read as such: 0 with out->ok 0. */
int orchreply_read(orchreply_method m, json_object *body, orchreply *out, char **why) FERRY_WUR;
/* Frees what orchreply_read allocated; safe on a zeroed struct and twice. */
void orchreply_clear(orchreply *r);

/* ---- migration events ---- */

/* The kinds of migration event the scheduler acts on (migration.<id>.<what> from an agent). */
typedef enum orchreply_event_kind {
    ORCHREPLY_EV_OTHER = 0, /* any other what: nothing to do */
    ORCHREPLY_EV_PROGRESS,  /* progress */
    ORCHREPLY_EV_POSTCOPY,  /* postcopy: the source switched to post-copy */
    ORCHREPLY_EV_ENDED,     /* completed, failed, cancelled: the source's job ended */
    ORCHREPLY_EV_PAUSED,    /* postcopy_paused: the post-copy stream broke, the job is kept (resumable) */
    ORCHREPLY_EV_NOTE,      /* guest_paused: what the source's job did, to record (its reason in error) */
    ORCHREPLY_EV_VERIFIED,  /* settings_verified: what libvirt applied, read back (in error, as EV_NOTE) */
} orchreply_event_kind;

/* A checked migration event. */
typedef struct orchreply_event {
    orchreply_event_kind kind;
    job_state ended;       /* EV_ENDED: JOB_COMPLETED, JOB_FAILED or JOB_CANCELLED; EV_PAUSED: JOB_POSTCOPY_PAUSED */
    const char *host;      /* body.host, a host name (borrowed); NULL when absent */
    char *error;           /* EV_ENDED, EV_PAUSED: body.error made printable (owned); NULL when absent;
                            * EV_NOTE, EV_VERIFIED: body.reason, so */
    int has_stats;         /* body.stats was given (EV_PROGRESS, EV_ENDED) */
    orchreply_stats stats; /* all -1 without stats */
} orchreply_event;

/* Reads the body (borrowed; it must outlive *out) of an agent's event migration.<id>.<what>
 * (what borrowed): 0 with *out filled (release with orchreply_event_clear), or -1 with *why
 * (caller frees) when the event cannot be believed. */
int orchreply_event_read(const char *what, json_object *body, orchreply_event *out, char **why) FERRY_WUR;
/* Frees what orchreply_event_read allocated; safe on a zeroed struct and twice. */
void orchreply_event_clear(orchreply_event *ev);

/* ---- the field readers (also the read RPCs' bodies, api.c) ---- */

/* Reads field key of object o as a string of at most max bytes without NUL or control bytes
 * (borrowed into *out): 0, with *out untouched when the field is absent and not required; -1
 * with *why (caller frees) when it is required and absent, null, of another type or not such a
 * text. where prefixes the field's name in the reason ("body."). */
int orchreply_get_text(json_object *o, const char *where, const char *key, int required, size_t max, const char **out,
                       char **why) FERRY_WUR;
/* As orchreply_get_text for an integer within [min, max]. */
int orchreply_get_int(json_object *o, const char *where, const char *key, int required, int64_t min, int64_t max,
                      int64_t *out, char **why) FERRY_WUR;
/* As orchreply_get_text for a boolean (0 or 1 into *out). */
int orchreply_get_bool(json_object *o, const char *where, const char *key, int required, int *out,
                       char **why) FERRY_WUR;
/* Returns a copy of s[0..len) fit for a log line and a database text: each control byte (NUL
 * included) a space, cut after max bytes on a character's boundary with "..." added. Caller
 * frees. */
char *orchreply_printable(const char *s, size_t len, size_t max);

#endif
