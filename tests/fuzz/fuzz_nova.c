/* libFuzzer target: the rules of ferry's Nova compute API (scheduler/novaver.c) on any bytes
 * as a Nova request: the first line is X-OpenStack-Nova-API-Version, the second
 * OpenStack-API-Version, the third a servers' name filter, the fourth a server id, the rest
 * an os-migrateLive body. Whatever the bytes: a refused microversion says why and is 400 or
 * 406, an accepted one is in 2.1..2.93; a refused body says why, an accepted one gives a
 * contract with exactly ferry's four keys of the right types; the name filter is compiled
 * only within its bound; a uuid has 36 bytes. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "novaver.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The next line of [*p, end) as a NUL-terminated copy (caller frees); *p moves past it. */
static char *next_line(const char **p, const char *end)
{
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    char *s = strndup(*p, n);
    *p += n + (nl ? 1 : 0);
    return s;
}

static void check_err(char *err)
{
    if (!err || !*err)
        abort();
    free(err);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data, *end = p + size;
    char *nova = next_line(&p, end), *os = next_line(&p, end), *pattern = next_line(&p, end);
    char *id = next_line(&p, end);
    int minor = 0;
    char *err = NULL;
    novaver_refusal r = novaver_parse(*nova ? nova : NULL, *os ? os : NULL, &minor, &err);
    if (r == NOVAVER_OK) {
        if (minor < NOVAVER_MIN_MINOR || minor > NOVAVER_MAX_MINOR || err)
            abort();
    } else {
        if (r != NOVAVER_MALFORMED && r != NOVAVER_UNSUPPORTED)
            abort();
        check_err(err);
        minor = 1 + (int)(size % NOVAVER_MAX_MINOR);
    }
    regex_t re;
    err = NULL;
    if (novaver_name_regex(pattern, &re, &err) == 0) {
        if (strlen(pattern) > NOVAVER_MAX_PATTERN)
            abort();
        (void)regexec(&re, "vm1", 0, NULL, 0);
        regfree(&re);
    } else {
        check_err(err);
    }
    if (novaver_is_uuid(id) && strlen(id) != 36)
        abort();
    char *text = strndup(p, (size_t)(end - p)); /* the body up to a NUL, as the server copies it */
    json_object *body = json_tokener_parse(*text ? text : "null");
    free(text);
    json_object *c = NULL;
    err = NULL;
    if (novaver_migrate_live(body, minor, &c, &err) == 0) {
        json_object *v;
        if (json_object_object_length(c) != 4 || !json_object_object_get_ex(c, "host", &v) ||
            (v && !json_object_is_type(v, json_type_string)) ||
            !json_object_object_get_ex(c, "block_migration", &v) ||
            !(json_object_is_type(v, json_type_boolean) ||
              (minor >= 25 && json_object_is_type(v, json_type_string) &&
               strcmp(json_object_get_string(v), "auto") == 0)) ||
            !json_object_object_get_ex(c, "disk_over_commit", &v) || !json_object_is_type(v, json_type_boolean) ||
            !json_object_object_get_ex(c, "post_copy", &v) || !json_object_is_type(v, json_type_boolean))
            abort();
        json_object_put(c);
    } else {
        check_err(err);
    }
    json_object_put(body);
    free(nova);
    free(os);
    free(pattern);
    free(id);
    return 0;
}
