/* novaver: the pure rules of ferry's Nova compute API v2.1 (nova.c): microversion headers,
 * ferry's statuses as Nova names them, the os-migrateLive body per microversion, the name
 * filter's regular expression and a server id's form. No libevent, no database: the unit
 * test and the fuzz target link this file alone. */
#ifndef FERRY_NOVAVER_H
#define FERRY_NOVAVER_H

#include <regex.h>

#include <json-c/json.h>

#include "util.h"

/* The microversions served: 2.1 to 2.NOVAVER_MAX_MINOR. */
#define NOVAVER_MIN_MINOR 1
#define NOVAVER_MAX_MINOR 93
/* A name filter longer than this is refused (400) before it is compiled. */
#define NOVAVER_MAX_PATTERN 255
/* ... or with more repetition operators (* + ? {n,m}) than this, or an interval bound
 * beyond NOVAVER_MAX_INTERVAL: glibc's regcomp is exponential in stacked repetitions. */
#define NOVAVER_MAX_REPEATS 8
#define NOVAVER_MAX_INTERVAL 16

/* Why a microversion was not taken. */
typedef enum novaver_refusal {
    NOVAVER_OK = 0,
    NOVAVER_MALFORMED = 400,   /* not "2.N", "latest" or "compute 2.N" */
    NOVAVER_UNSUPPORTED = 406, /* well-formed, outside 2.1..2.93 */
} novaver_refusal;

/* The request's microversion from X-OpenStack-Nova-API-Version (nova_hdr) and
 * OpenStack-API-Version (os_hdr, "compute 2.N" among comma-separated services; it wins when
 * both name compute); either may be NULL. Absent: 2.1; "latest": 2.93. NOVAVER_OK with
 * *minor set, else the refusal with *err (caller frees). */
novaver_refusal novaver_parse(const char *nova_hdr, const char *os_hdr, int *minor, char **err) FERRY_WUR;

/* ferry's migration status (migrations.status) as Nova's: queued, preparing, running,
 * post-migrating, completed, failed, error, cancelled (static string; unknown → "error"). */
const char *novaver_migration_status(const char *ferry_status);
/* 1 when Nova counts a migration in ferry_status as in progress (GET
 * /servers/{id}/migrations lists only those), else 0. */
int novaver_migration_in_progress(const char *ferry_status);
/* A server's Nova status from ferry's instance vm_state and task_state (task_state may be
 * NULL): MIGRATING while a migration runs, else ACTIVE, PAUSED, SHUTOFF, BUILD, ERROR or
 * UNKNOWN (static string). */
const char *novaver_server_status(const char *vm_state, const char *task_state);
/* Nova's OS-EXT-STS:vm_state for ferry's vm_state (static string). */
const char *novaver_vm_state(const char *vm_state);

/* Checks the os-migrateLive object of a request at microversion 2.minor as Nova's schema
 * does (< 2.25: block_migration and disk_over_commit booleans required; >= 2.25:
 * block_migration a boolean or "auto", no disk_over_commit; host required, a string or null;
 * force a boolean only in 2.30..2.67) plus ferry's post_copy boolean, nothing else. 0 with
 * *contract = the os-migrateLive object of ferry's request contract (caller puts; force is
 * dropped: ferry always checks the destination), or -1 with *err (caller frees). */
int novaver_migrate_live(json_object *action, int minor, json_object **contract, char **err) FERRY_WUR;

/* Compiles a servers' name filter as Nova does (a POSIX extended regular expression, matched
 * anywhere in the name), at most NOVAVER_MAX_PATTERN bytes, no control character, bounded
 * repetitions (NOVAVER_MAX_REPEATS, NOVAVER_MAX_INTERVAL). 0 with *re (caller regfree()s),
 * or -1 with *err (caller frees). */
int novaver_name_regex(const char *pattern, regex_t *re, char **err) FERRY_WUR;

/* 1 when id has a uuid's form (8-4-4-4-12 hex digits), the only server id Nova knows; else 0
 * (a name or a number is no server id: 404). */
int novaver_is_uuid(const char *id);

#endif
