/* config_load: the ini file loader over libinih (line numbers in every error, unknown
 * sections and keys refused, the cross-option rules checked at the end). */
#include "config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <string.h>

#include "config_priv.h"

/* ---- loading a file -------------------------------------------------------------------- */

typedef struct load_ctx {
    ferry_config *c;
    const char *path;
    FILE *f;
    char *line; /* getline buffer */
    size_t cap;
    int lineno;    /* lines read so far = the line inih is working on */
    int *set_line; /* line each option was set on, 0 = not set (N_OPTIONS) */
    char *err;     /* first error, with path and line */
    int err_line;
    int read_errno; /* reading the file failed */
} load_ctx;

static void ctx_fail(load_ctx *x, const char *fmt, ...) FERRY_PRINTF(2, 3);
static void ctx_fail(load_ctx *x, const char *fmt, ...)
{
    if (x->err)
        return;
    va_list ap;
    va_start(ap, fmt);
    _cleanup_free_ char *msg = xvasprintf(fmt, ap);
    va_end(ap);
    x->err = xasprintf("%s:%d: %s", x->path, x->lineno, msg);
    x->err_line = x->lineno;
}

/* fgets-like reader for ini_parse_stream: hands inih one physical line per call (so inih's
 * line numbers and ours agree), counts lines, drops leading blanks (so an indented line is
 * never taken as a continuation of the previous value), refuses lines that would not fit
 * inih's buffer instead of letting them be split, and catches unknown [section] headers,
 * which inih does not report when the section has no keys. Returns NULL to stop. */
static char *ctx_reader(char *str, int num, void *stream)
{
    load_ctx *x = stream;

    if (x->err || x->read_errno)
        return NULL;
    errno = 0;
    ssize_t n = getline(&x->line, &x->cap, x->f);
    if (n < 0) {
        if (ferror(x->f))
            x->read_errno = errno ? errno : EIO;
        return NULL;
    }
    x->lineno++;
    if (memchr(x->line, 0, (size_t)n)) {
        ctx_fail(x, "line contains a NUL byte");
        return NULL;
    }

    const char *s = x->line;
    if (x->lineno == 1 && strncmp(s, "\xEF\xBB\xBF", 3) == 0)
        s += 3;
    while (*s == ' ' || *s == '\t')
        s++;

    size_t len = strlen(s);
    size_t content = len;
    while (content && (s[content - 1] == '\n' || s[content - 1] == '\r'))
        content--;
    if (num < 4 || content > (size_t)num - 3) {
        ctx_fail(x, "line is too long (more than %d characters)", num - 3);
        return NULL;
    }

    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (end) {
            _cleanup_free_ char *name = xstrndup(s + 1, (size_t)(end - s - 1));
            if (!cfg_section_known(name) && !cfg_policy_section(name)) {
                ctx_fail(x, "unknown section [%s]", name);
                return NULL;
            }
        }
    }

    /* the content and one newline: a run of line ends (\r\r\r...\n) must not overflow
     * inih's buffer (found by fuzzing) */
    memcpy(str, s, content);
    str[content] = '\n';
    str[content + 1] = 0;
    return str;
}

/* A key of a [policy NAME] section: one a policy has, once per policy; kept as written. */
static int policy_kv(load_ctx *x, const char *section, const char *policy, const char *key, const char *value)
{
    int known = 0;
    for (const char *const *k = cfg_policy_keys; *k && !known; k++)
        known = strcmp(*k, key) == 0;
    if (!known) {
        ctx_fail(x, "[%s] unknown key '%s'", section, key);
        return 0;
    }
    ferry_config *c = x->c;
    for (size_t i = 0; i < c->n_policy_kv; i++)
        if (strcmp(c->policy_kv[i].policy, policy) == 0 && strcmp(c->policy_kv[i].key, key) == 0) {
            ctx_fail(x, "[%s] %s: duplicate key, first set on line %d", section, key, c->policy_kv[i].line);
            return 0;
        }
    c->policy_kv = xrealloc(c->policy_kv, (c->n_policy_kv + 1) * sizeof(*c->policy_kv));
    c->policy_kv[c->n_policy_kv++] = (cfg_policy_kv){
        .policy = xstrdup(policy), .key = xstrdup(key), .value = xstrdup(value ? value : ""), .line = x->lineno};
    return 1;
}

/* inih handler: one key = value line. Returns 1 to go on, 0 on error. */
static int ctx_handler(void *user, const char *section, const char *key, const char *value)
{
    load_ctx *x = user;

    if (!*section) {
        ctx_fail(x, "key '%s' is outside any section", key);
        return 0;
    }
    if (!*key) {
        ctx_fail(x, "[%s] missing key before '='", section);
        return 0;
    }
    const char *policy = cfg_policy_section(section);
    if (policy)
        return policy_kv(x, section, policy, key, value);
    if (!cfg_section_known(section)) {
        ctx_fail(x, "unknown section [%s]", section);
        return 0;
    }
    const cfg_option *o = cfg_find(section, key);
    if (!o) {
        ctx_fail(x, "[%s] unknown key '%s'", section, key);
        return 0;
    }
    size_t idx = (size_t)(o - cfg_table);
    if (x->set_line[idx] && !o->repeatable) {
        ctx_fail(x, "[%s] %s: duplicate key, first set on line %d", section, key, x->set_line[idx]);
        return 0;
    }
    _cleanup_free_ char *joined = NULL;
    if (x->set_line[idx]) /* a repeatable string: this line's value goes after the earlier ones */
        joined = xasprintf("%s,%s", *(char **)((char *)x->c + o->offset), value ? value : "");
    _cleanup_free_ char *reason = NULL;
    if (cfg_apply_value(x->c, o, joined ? joined : value ? value : "", &reason) < 0) {
        ctx_fail(x, "[%s] %s: %s", section, key, reason);
        return 0;
    }
    x->set_line[idx] = x->lineno;
    return 1;
}

int cfg_load(ferry_config *c, const char *path, bool explicit_path, char **err)
{
    cfg_defaults(c);
    if (!path)
        path = CFG_DEFAULT_PATH;

    _cleanup_fclose_ FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT && !explicit_path)
            return 0;
        cfg_set_err(err, xasprintf("could not open config file %s: %s", path, strerror(errno)));
        return -1;
    }
    return cfg_load_stream(c, f, path, err);
}

int cfg_load_stream(ferry_config *c, FILE *f, const char *path, char **err)
{
    _cleanup_free_ int *set_line = xcalloc(N_OPTIONS, sizeof(int));
    load_ctx x = {.c = c, .path = path, .f = f, .set_line = set_line};
    int ret = ini_parse_stream(ctx_reader, &x, ctx_handler, &x);
    free(x.line);

    if (ret > 0 && (!x.err || ret < x.err_line)) {
        free(x.err);
        cfg_set_err(err, xasprintf("%s:%d: syntax error (expected [section] or key = value)", path, ret));
        return -1;
    }
    if (x.err) {
        cfg_set_err(err, x.err);
        return -1;
    }
    if (x.read_errno) {
        cfg_set_err(err, xasprintf("could not read config file %s: %s", path, strerror(x.read_errno)));
        return -1;
    }
    if (ret != 0) {
        cfg_set_err(err, xasprintf("could not parse config file %s", path));
        return -1;
    }

    size_t blame[2];
    char *reason = NULL;
    if (cfg_check_rules(c, blame, &reason) < 0) {
        int line = x.set_line[blame[0]] > x.set_line[blame[1]] ? x.set_line[blame[0]] : x.set_line[blame[1]];
        if (line)
            cfg_set_err(err, xasprintf("%s:%d: %s", path, line, reason));
        else
            cfg_set_err(err, xasprintf("%s: %s", path, reason));
        free(reason);
        return -1;
    }
    return 0;
}
