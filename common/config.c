/* config: ferry.conf's values: parsing and checking one value, the defaults, cfg_set, cfg_get_text,
 * the cross-option rules, cfg_free. The options themselves: config_table.c; the file loader:
 * config_load.c; the example file: config_example.c. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include <strings.h>

#include "config_priv.h"

/* ---- parsing one value ----------------------------------------------------------------- */

static const struct {
    const char *word;
    bool value;
} bool_words[] = {
    {"true", true}, {"false", false}, {"yes", true}, {"no", false},
    {"on", true},   {"off", false},   {"1", true},   {"0", false},
};

/* [+-]digits, nothing else (parse_i64 alone would not tell "abc" from out of range). */
static bool looks_like_int(const char *s)
{
    if (*s == '+' || *s == '-')
        s++;
    if (!*s)
        return false;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return false;
    return true;
}

/* Decimal or exponent notation only: no hex, inf or nan. */
static bool looks_like_number(const char *s)
{
    bool digit = false;
    for (const char *p = s; *p; p++) {
        if (*p >= '0' && *p <= '9')
            digit = true;
        else if (!strchr("+-.eE", *p))
            return false;
    }
    return digit;
}

static char *enum_words_text(const char *const *words)
{
    char *out = xstrdup("");
    for (size_t i = 0; words[i]; i++) {
        char *next = xasprintf("%s%s%s", out, i ? ", " : "", words[i]);
        free(out);
        out = next;
    }
    return out;
}

static void *field_ptr(ferry_config *c, const cfg_option *o)
{
    return (char *)c + o->offset;
}

static const void *field_cptr(const ferry_config *c, const cfg_option *o)
{
    return (const char *)c + o->offset;
}

/* Parses text as a value of option o and stores it in *c. On error *c is unchanged and
 * *reason receives the cause (caller frees). */
int cfg_apply_value(ferry_config *c, const cfg_option *o, const char *text, char **reason)
{
    void *p = field_ptr(c, o);

    switch (o->type) {
    case CFG_STRING: {
        if (o->check && o->check(text, reason) < 0)
            return -1;
        char **sp = p;
        free(*sp);
        *sp = xstrdup(text);
        return 0;
    }
    case CFG_INT: {
        int64_t v;
        if (!*text) {
            *reason = xasprintf("empty value, expected an integer in %" PRId64 "..%" PRId64, o->min, o->max);
            return -1;
        }
        if (!looks_like_int(text)) {
            *reason = xasprintf("'%s' is not an integer", text);
            return -1;
        }
        if (parse_i64(text, o->min, o->max, &v) < 0) {
            *reason = xasprintf("value %s is out of range %" PRId64 "..%" PRId64, text, o->min, o->max);
            return -1;
        }
        *(int64_t *)p = v;
        return 0;
    }
    case CFG_BOOL:
        for (size_t i = 0; i < ARRAY_SIZE(bool_words); i++) {
            if (strcasecmp(text, bool_words[i].word) == 0) {
                *(bool *)p = bool_words[i].value;
                return 0;
            }
        }
        *reason = xasprintf("'%s' is not a boolean (expected true, false, yes, no, on, off, 1 "
                            "or 0)",
                            text);
        return -1;
    case CFG_DOUBLE: {
        if (!*text) {
            *reason = xasprintf("empty value, expected a number in %g..%g", o->dmin, o->dmax);
            return -1;
        }
        char *end = NULL;
        errno = 0;
        double v = looks_like_number(text) ? strtod(text, &end) : 0;
        if (!end || end == text || *end) {
            *reason = xasprintf("'%s' is not a number", text);
            return -1;
        }
        if (errno == ERANGE || !isfinite(v) || v < o->dmin || v > o->dmax) {
            *reason = xasprintf("value %s is out of range %g..%g", text, o->dmin, o->dmax);
            return -1;
        }
        *(double *)p = v;
        return 0;
    }
    case CFG_ENUM: {
        for (int i = 0; o->words[i]; i++) {
            if (strcasecmp(text, o->words[i]) == 0) {
                *(int *)p = i;
                return 0;
            }
        }
        _cleanup_free_ char *allowed = enum_words_text(o->words);
        *reason = xasprintf("'%s' is not one of %s", text, allowed);
        return -1;
    }
    }
    *reason = xstrdup("unknown option type");
    return -1;
}

void cfg_set_err(char **err, char *msg)
{
    if (err)
        *err = msg;
    else
        free(msg);
}

/* ---- public: defaults, set, get, check, free ------------------------------------------- */

void cfg_defaults(ferry_config *c)
{
    memset(c, 0, sizeof(*c));
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char *reason = NULL;
        if (cfg_apply_value(c, &cfg_table[i], cfg_table[i].def, &reason) < 0) {
            /* A bad built-in default is a programming error; the unit test catches it. */
            fprintf(stderr, "ferry: built-in default of [%s] %s is invalid: %s\n", cfg_table[i].section,
                    cfg_table[i].key, reason);
            abort();
        }
    }
}

int cfg_set(ferry_config *c, const char *section, const char *key, const char *value, char **err)
{
    if (!cfg_section_known(section)) {
        cfg_set_err(err, xasprintf("unknown section [%s]", section));
        return -1;
    }
    const cfg_option *o = cfg_find(section, key);
    if (!o) {
        cfg_set_err(err, xasprintf("[%s] unknown key '%s'", section, key));
        return -1;
    }
    char *reason = NULL;
    if (cfg_apply_value(c, o, value ? value : "", &reason) < 0) {
        cfg_set_err(err, xasprintf("[%s] %s: %s", section, key, reason));
        free(reason);
        return -1;
    }
    return 0;
}

/* Index into cfg_table of an option known to exist. */
static size_t option_index(const char *section, const char *key)
{
    const cfg_option *o = cfg_find(section, key);
    if (!o)
        abort();
    return (size_t)(o - cfg_table);
}

/* The cross-option rules; on a violation *blame lists the options involved (for line
 * numbers) and *reason the cause. */
int cfg_check_rules(const ferry_config *c, size_t blame[2], char **reason)
{
    if (c->amqp.reconnect_min_ms > c->amqp.reconnect_max_ms) {
        blame[0] = option_index("amqp", "reconnect_min_ms");
        blame[1] = option_index("amqp", "reconnect_max_ms");
        *reason = xasprintf("[amqp] reconnect_min_ms: value %" PRId64 " is greater than reconnect_max_ms %" PRId64,
                            c->amqp.reconnect_min_ms, c->amqp.reconnect_max_ms);
        return -1;
    }
    if (c->libvirt.migration_port_min > c->libvirt.migration_port_max) {
        blame[0] = option_index("libvirt", "migration_port_min");
        blame[1] = option_index("libvirt", "migration_port_max");
        *reason =
            xasprintf("[libvirt] migration_port_min: value %" PRId64 " is greater than migration_port_max %" PRId64,
                      c->libvirt.migration_port_min, c->libvirt.migration_port_max);
        return -1;
    }
    /* a certificate and its key: both or neither */
    const struct {
        const char *section, *cert, *key;
    } pairs[] = {{"amqp", c->amqp.cert_file, c->amqp.key_file}, {"http", c->http.cert_file, c->http.key_file}};
    for (size_t i = 0; i < ARRAY_SIZE(pairs); i++) {
        if (!*pairs[i].cert != !*pairs[i].key) {
            blame[0] = option_index(pairs[i].section, "cert_file");
            blame[1] = option_index(pairs[i].section, "key_file");
            *reason =
                xasprintf(*pairs[i].cert ? "[%s] cert_file is set but key_file is not: a certificate needs its key"
                                         : "[%s] key_file is set but cert_file is not: a key needs its certificate",
                          pairs[i].section);
            return -1;
        }
    }
    return 0;
}

int cfg_check(const ferry_config *c, char **err)
{
    size_t blame[2];
    char *reason = NULL;
    if (cfg_check_rules(c, blame, &reason) < 0) {
        cfg_set_err(err, reason);
        return -1;
    }
    return 0;
}

static char *double_text(double v)
{
    /* Shortest of %.15g / %.17g that reads back as the same value. */
    char *s = xasprintf("%.15g", v);
    if (strtod(s, NULL) != v) {
        free(s);
        s = xasprintf("%.17g", v);
    }
    return s;
}

int cfg_get_text(const ferry_config *c, const char *section, const char *key, char **out)
{
    const cfg_option *o = cfg_find(section, key);
    if (!o)
        return -1;
    const void *p = field_cptr(c, o);
    switch (o->type) {
    case CFG_STRING: {
        const char *s = *(char *const *)p;
        *out = xstrdup(s ? s : "");
        return 0;
    }
    case CFG_INT:
        *out = xasprintf("%" PRId64, *(const int64_t *)p);
        return 0;
    case CFG_BOOL:
        *out = xstrdup(*(const bool *)p ? "true" : "false");
        return 0;
    case CFG_DOUBLE:
        *out = double_text(*(const double *)p);
        return 0;
    case CFG_ENUM: {
        int v = *(const int *)p;
        for (int i = 0; o->words[i]; i++) {
            if (i == v) {
                *out = xstrdup(o->words[i]);
                return 0;
            }
        }
        *out = xasprintf("%d", v);
        return 0;
    }
    }
    return -1;
}

const char *const cfg_policy_keys[] = {"priority",
                                       "project",
                                       "instance",
                                       "host",
                                       "host_group",
                                       "post_copy",
                                       "auto_converge",
                                       "postcopy_after_iterations",
                                       "bandwidth_mib_s",
                                       "max_downtime_ms",
                                       "completion_timeout_s",
                                       "completion_action",
                                       "objective_max_downtime_ms",
                                       "objective_deadline_s",
                                       NULL};

const char *cfg_policy_section(const char *section)
{
    if (!section || strncmp(section, "policy ", 7) != 0)
        return NULL;
    const char *name = section + 7;
    while (*name == ' ')
        name++;
    return *name ? name : NULL;
}

void cfg_free(ferry_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_policy_kv; i++) {
        free(c->policy_kv[i].policy);
        free(c->policy_kv[i].key);
        free(c->policy_kv[i].value);
    }
    free(c->policy_kv);
    c->policy_kv = NULL;
    c->n_policy_kv = 0;
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (cfg_table[i].type != CFG_STRING)
            continue;
        char **sp = field_ptr(c, &cfg_table[i]);
        free(*sp);
        *sp = NULL;
    }
}
