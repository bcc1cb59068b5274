/* log: one line per event, logfmt (`key=value`) or JSON lines, to stderr or a file.
 *
 * Every line carries ts, level, proc (the program) and, when known, the structured ids
 * migration=, instance=, host=, req= so that one id can be grepped across the scheduler,
 * source and destination logs. The message text is escaped: untrusted input cannot forge
 * a field or a line. */
#ifndef FERRY_LOG_H
#define FERRY_LOG_H

#include <stdarg.h>

#include "util.h"

typedef enum {
    LOG_LVL_ERROR = 0,
    LOG_LVL_WARN = 1,
    LOG_LVL_INFO = 2,
    LOG_LVL_DEBUG = 3,
} log_level;

typedef enum {
    LOG_FMT_TEXT = 0,    /* logfmt: ts=... level=info proc=... msg="..." */
    LOG_FMT_JSON = 1,    /* one JSON object per line */
    LOG_FMT_JOURNAL = 2, /* systemd's journal, with fields MIGRATION_ID, INSTANCE, HOST, REQ */
} log_format;

/* The structured ids of one line; any member may be NULL (then it is left out). The
 * strings are borrowed for the duration of the call. */
typedef struct log_fields {
    const char *migration;
    const char *instance;
    const char *host;
    const char *req;
} log_fields;

/* Sets the program name shown as proc= (borrowed: must outlive the logger). */
void log_set_proc(const char *proc);
/* Sets the most verbose level written; lines above it are skipped before formatting. */
void log_set_level(log_level lvl);
/* Returns the name of level lvl ("error", "warn", "info", "debug"); a static string. */
const char *log_level_name(log_level lvl);
/* Returns the current level. */
log_level log_get_level(void);
/* Chooses text (logfmt) or JSON lines. */
void log_set_format(log_format fmt);
/* Sets the default host= field added to every line that does not name a host (copied). */
void log_set_host(const char *host);
/* Sends lines to the file at path (appended, created 0640), or to stderr when path is
 * NULL or "-". Returns 0, or -1 with the reason written to stderr. */
int log_open(const char *path) FERRY_WUR;
/* Closes the log file, if any, and goes back to stderr. */
void log_close(void);
/* Redirects the log to a caller-owned stream (tests); NULL restores stderr. */
void log_set_stream(void *file);
/* Parses "error|warn|info|debug"; 0 and *out set, or -1. */
int log_level_parse(const char *s, log_level *out) FERRY_WUR;
/* Parses "text|json"; 0 and *out set, or -1. */
int log_format_parse(const char *s, log_format *out) FERRY_WUR;
/* Routes libevent's internal messages into this log. */
void log_route_libevent(void);

/* Writes one line at lvl with the given fields (may be NULL). Use the macros below, which
 * skip the formatting when the level is disabled. */
void log_write(log_level lvl, const log_fields *f, const char *fmt, ...) FERRY_PRINTF(3, 4);
/* va_list form of log_write. */
void log_vwrite(log_level lvl, const log_fields *f, const char *fmt, va_list ap) FERRY_PRINTF(3, 0);

/* Formats one line into a newly allocated string without writing it (tests, journald).
 * Caller frees. */
char *log_format_line(log_level lvl, const log_fields *f, int64_t wall_ms_ts, const char *msg);

/* Escapes untrusted text for a logfmt value: quotes, backslashes and control bytes become
 * \" \\ \n \t \xNN. Caller frees the result. */
char *log_escape(const char *s);

#define LOG_AT(lvl, f, ...)                                                                                            \
    do {                                                                                                               \
        if ((lvl) <= log_get_level())                                                                                  \
            log_write((lvl), (f), __VA_ARGS__);                                                                        \
    } while (0)
#define log_error(f, ...) LOG_AT(LOG_LVL_ERROR, f, __VA_ARGS__)
#define log_warn(f, ...) LOG_AT(LOG_LVL_WARN, f, __VA_ARGS__)
#define log_info(f, ...) LOG_AT(LOG_LVL_INFO, f, __VA_ARGS__)
#define log_debug(f, ...) LOG_AT(LOG_LVL_DEBUG, f, __VA_ARGS__)

/* Fields literal for the common cases. */
#define LOGF_NONE ((const log_fields *)0)

#endif
