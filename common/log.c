#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

/* The logger is one of the process-wide globals docs/CONVENTIONS.md "Shape" allows. */
static struct {
    const char *proc;
    log_level level;
    log_format format;
    char *host;
    FILE *file;     /* owned when opened by log_open */
    FILE *borrowed; /* set by log_set_stream */
    pthread_mutex_t lock;
} L = {
    .proc = "ferry",
    .level = LOG_LVL_INFO,
    .format = LOG_FMT_TEXT,
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};

const char *log_level_name(log_level lvl)
{
    return lvl >= LOG_LVL_ERROR && lvl <= LOG_LVL_DEBUG ? level_names[lvl] : "?";
}

void log_set_proc(const char *proc)
{
    L.proc = proc ? proc : "ferry";
}

void log_set_level(log_level lvl)
{
    L.level = lvl;
}

log_level log_get_level(void)
{
    return L.level;
}

void log_set_format(log_format fmt)
{
    L.format = fmt;
}

void log_set_host(const char *host)
{
    pthread_mutex_lock(&L.lock);
    free(L.host);
    L.host = host && *host ? xstrdup(host) : NULL;
    pthread_mutex_unlock(&L.lock);
}

int log_open(const char *path)
{
    if (!path || !*path || strcmp(path, "-") == 0) {
        log_close();
        return 0;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "%s: could not open log file %s: %s\n", L.proc, path, strerror(errno));
        return -1;
    }
    FILE *f = fdopen(fd, "a");
    if (!f) {
        fprintf(stderr, "%s: could not open log file %s: %s\n", L.proc, path, strerror(errno));
        close(fd);
        return -1;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    pthread_mutex_lock(&L.lock);
    if (L.file)
        fclose(L.file);
    L.file = f;
    pthread_mutex_unlock(&L.lock);
    return 0;
}

void log_close(void)
{
    pthread_mutex_lock(&L.lock);
    if (L.file)
        fclose(L.file);
    L.file = NULL;
    free(L.host);
    L.host = NULL;
    pthread_mutex_unlock(&L.lock);
}

void log_set_stream(void *file)
{
    L.borrowed = file;
}

int log_level_parse(const char *s, log_level *out)
{
    for (size_t i = 0; s && i < ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (log_level)i;
            return 0;
        }
    }
    return -1;
}

int log_format_parse(const char *s, log_format *out)
{
    if (s && strcmp(s, "text") == 0) {
        *out = LOG_FMT_TEXT;
        return 0;
    }
    if (s && strcmp(s, "json") == 0) {
        *out = LOG_FMT_JSON;
        return 0;
    }
    if (s && strcmp(s, "journal") == 0) {
        *out = LOG_FMT_JOURNAL;
        return 0;
    }
    return -1;
}

/* A growable string buffer local to this file. */
typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_putn(sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        while (b->len + n + 1 > b->cap)
            b->cap = b->cap ? b->cap * 2 : 256;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_putn(b, s, strlen(s));
}

/* Escapes s: " \ and bytes < 0x20 or 0x7f. json selects \u00XX instead of \xNN. */
static void sb_escaped(sbuf *b, const char *s, int json)
{
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char tmp[8];
        switch (*c) {
        case '"':
            sb_puts(b, "\\\"");
            break;
        case '\\':
            sb_puts(b, "\\\\");
            break;
        case '\n':
            sb_puts(b, "\\n");
            break;
        case '\r':
            sb_puts(b, "\\r");
            break;
        case '\t':
            sb_puts(b, "\\t");
            break;
        default:
            if (*c < 0x20 || *c == 0x7f) {
                snprintf(tmp, sizeof(tmp), json ? "\\u%04x" : "\\x%02x", *c);
                sb_puts(b, tmp);
            } else {
                sb_putn(b, (const char *)c, 1);
            }
        }
    }
}

char *log_escape(const char *s)
{
    sbuf b = {0};
    sb_puts(&b, "");
    sb_escaped(&b, s ? s : "", 0);
    return b.p;
}

/* A logfmt value needs quotes when empty or when it holds a space, quote, '=' or control byte. */
static int needs_quotes(const char *s)
{
    if (!*s)
        return 1;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++)
        if (*c <= ' ' || *c == '"' || *c == '=' || *c == '\\' || *c == 0x7f)
            return 1;
    return 0;
}

static void field(sbuf *b, int json, int *first, const char *key, const char *val)
{
    if (!val)
        return;
    if (json) {
        sb_puts(b, *first ? "\"" : ",\"");
        sb_puts(b, key);
        sb_puts(b, "\":\"");
        sb_escaped(b, val, 1);
        sb_puts(b, "\"");
    } else {
        if (!*first)
            sb_puts(b, " ");
        sb_puts(b, key);
        sb_puts(b, "=");
        if (needs_quotes(val)) {
            sb_puts(b, "\"");
            sb_escaped(b, val, 0);
            sb_puts(b, "\"");
        } else {
            sb_puts(b, val);
        }
    }
    *first = 0;
}

char *log_format_line(log_level lvl, const log_fields *f, int64_t ts, const char *msg)
{
    char tsbuf[40], pidbuf[16];
    rfc3339_ms(ts, tsbuf, sizeof(tsbuf));
    snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
    int json = L.format == LOG_FMT_JSON;
    const char *host = f && f->host ? f->host : L.host;
    sbuf b = {0};
    int first = 1;
    if (json)
        sb_puts(&b, "{");
    field(&b, json, &first, "ts", tsbuf);
    field(&b, json, &first, "level", level_names[lvl <= LOG_LVL_DEBUG ? lvl : LOG_LVL_DEBUG]);
    field(&b, json, &first, "proc", L.proc);
    field(&b, json, &first, "pid", pidbuf);
    field(&b, json, &first, "host", host);
    if (f) {
        field(&b, json, &first, "migration", f->migration);
        field(&b, json, &first, "instance", f->instance);
        field(&b, json, &first, "req", f->req);
    }
    /* The message is always quoted in text mode so it reads as one field. */
    if (json) {
        field(&b, json, &first, "msg", msg ? msg : "");
        sb_puts(&b, "}");
    } else {
        sb_puts(&b, " msg=\"");
        sb_escaped(&b, msg ? msg : "", 0);
        sb_puts(&b, "\"");
    }
    sb_puts(&b, "\n");
    return b.p;
}

void log_vwrite(log_level lvl, const log_fields *f, const char *fmt, va_list ap)
{
    if (lvl > L.level)
        return;
    int saved = errno;
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    if (L.format == LOG_FMT_JOURNAL && !L.borrowed && !L.file) {
        /* one journal entry, its ids as fields (only those it has): journalctl MIGRATION_ID=17 */
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        const char *host = f && f->host ? f->host : L.host;
        char *kv[8] = {
            xasprintf("MESSAGE=%s", msg),
            xasprintf("PRIORITY=%d", prio[lvl]),
            xasprintf("SYSLOG_IDENTIFIER=%s", L.proc),
            f && f->migration ? xasprintf("MIGRATION_ID=%s", f->migration) : NULL,
            f && f->instance ? xasprintf("INSTANCE=%s", f->instance) : NULL,
            host ? xasprintf("HOST=%s", host) : NULL,
            f && f->req ? xasprintf("REQ=%s", f->req) : NULL,
        };
        struct iovec iov[8];
        int n = 0;
        for (int i = 0; i < 8; i++)
            if (kv[i])
                iov[n++] = (struct iovec){.iov_base = kv[i], .iov_len = strlen(kv[i])};
        int rc = sd_journal_sendv(iov, n);
        for (int i = 0; i < 8; i++)
            free(kv[i]);
        if (rc >= 0) {
            errno = saved;
            return;
        }
        /* no journal to talk to: the line goes to stderr as text */
    }
    pthread_mutex_lock(&L.lock);
    _cleanup_free_ char *line = log_format_line(lvl, f, wall_ms(), msg);
    FILE *out = L.borrowed ? L.borrowed : L.file ? L.file : stderr;
    fputs(line, out);
    fflush(out);
    pthread_mutex_unlock(&L.lock);
    errno = saved;
}

void log_write(log_level lvl, const log_fields *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    log_vwrite(lvl, f, fmt, ap);
    va_end(ap);
}

static void libevent_cb(int severity, const char *msg)
{
    log_level lvl;
    switch (severity) {
    case EVENT_LOG_DEBUG:
        lvl = LOG_LVL_DEBUG;
        break;
    case EVENT_LOG_MSG:
        lvl = LOG_LVL_INFO;
        break;
    case EVENT_LOG_WARN:
        lvl = LOG_LVL_WARN;
        break;
    default:
        lvl = LOG_LVL_ERROR;
        break;
    }
    log_write(lvl, NULL, "libevent: %s", msg);
}

void log_route_libevent(void)
{
    event_set_log_callback(libevent_cb);
}
