/* statefile: the agent's records in its state dir (statefile.h). */
#include "statefile.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const kind_prefix[] = {
    [SF_JOB] = "job",
    [SF_DEST] = "dest",
    [SF_EPOCH] = "epoch",
};

char *sf_name(sf_kind kind, int64_t migration)
{
    return xasprintf("%s-%lld", kind_prefix[kind], (long long)migration);
}

/* The migration id of a record name "<kind>-<id>" (any kind), or 0 when it has none. */
static int64_t name_migration(const char *name)
{
    for (size_t k = 0; k < ARRAY_SIZE(kind_prefix); k++) {
        size_t pl = strlen(kind_prefix[k]);
        long long id;
        char end;
        if (strncmp(name, kind_prefix[k], pl) == 0 && name[pl] == '-' &&
            sscanf(name + pl + 1, "%lld%c", &id, &end) == 1)
            return id;
    }
    return 0;
}

static char *state_path(const char *dir, const char *name)
{
    return xasprintf("%s/%s.json", dir, name);
}

static int mkdir_p(const char *path)
{
    _cleanup_free_ char *p = xstrdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s == '/') {
            *s = '\0';
            if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -1;
            *s = '/';
        }
    }
    if (mkdir(p, 0755) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

int sf_write(const char *dir, const char *name, json_object *obj, const log_fields *lf)
{
    /* the record's migration goes into the log line's fields, not only into the path */
    log_fields f = lf ? *lf : (log_fields){0};
    char mig_s[24];
    int64_t mig = name_migration(name);
    if (!f.migration && mig) {
        snprintf(mig_s, sizeof(mig_s), "%lld", (long long)mig);
        f.migration = mig_s;
    }
    if (mkdir_p(dir) < 0) {
        log_error(&f, "could not create state dir %s: %s", dir, strerror(errno));
        return -1;
    }
    _cleanup_free_ char *path = state_path(dir, name);
    _cleanup_free_ char *tmp = xasprintf("%s.tmp", path);
    const char *text = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        log_error(&f, "could not write %s: %s", tmp, strerror(errno));
        return -1;
    }
    size_t len = strlen(text);
    ssize_t w = write(fd, text, len);
    int ok = w == (ssize_t)len && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) < 0) {
        log_error(&f, "could not write %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

json_object *sf_read(const char *dir, const char *name)
{
    _cleanup_free_ char *path = state_path(dir, name);
    json_object *o = json_object_from_file(path);
    if (o && !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return NULL;
    }
    return o;
}

void sf_remove(const char *dir, const char *name)
{
    _cleanup_free_ char *path = state_path(dir, name);
    unlink(path);
}

void sf_each(const char *dir, sf_kind kind, sf_visit fn, void *arg)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    const char *prefix = kind_prefix[kind];
    size_t pl = strlen(prefix);
    int stop = 0;
    struct dirent *e;
    while (!stop && (e = readdir(d))) {
        long long id;
        char tail[8];
        /* "<kind>-<id>.json" and nothing else ("<kind>-<id>.json.tmp" is a write cut short) */
        if (strncmp(e->d_name, prefix, pl) != 0 || e->d_name[pl] != '-' ||
            sscanf(e->d_name + pl + 1, "%lld.%7s", &id, tail) != 2 || strcmp(tail, "json") != 0)
            continue;
        _cleanup_free_ char *name = sf_name(kind, id);
        json_object *o = sf_read(dir, name);
        if (!o)
            continue;
        stop = fn(arg, id, o);
        json_object_put(o);
    }
    closedir(d);
}

int sf_job_write(const char *dir, const sf_job *r, const log_fields *lf)
{
    json_object *o = json_object_new_object();
    json_object_object_add(o, "migration", json_object_new_int64(r->migration));
    json_object_object_add(o, "instance", json_object_new_string(r->instance));
    json_object_object_add(o, "name", json_object_new_string(r->name ? r->name : ""));
    if (r->instance_id)
        json_object_object_add(o, "instance_id", json_object_new_string(r->instance_id));
    json_object_object_add(o, "dest", json_object_new_string(r->dest ? r->dest : ""));
    json_object_object_add(o, "uri", json_object_new_string(r->uri ? r->uri : ""));
    if (r->data_address)
        json_object_object_add(o, "data_address", json_object_new_string(r->data_address));
    if (r->tls_name)
        json_object_object_add(o, "tls_name", json_object_new_string(r->tls_name));
    json_object_object_add(o, "state", json_object_new_string(r->state));
    json_object_object_add(o, "post_copy", json_object_new_boolean(r->post_copy));
    json_object_object_add(o, "postcopy_active", json_object_new_boolean(r->postcopy_active));
    if (r->error)
        json_object_object_add(o, "error", json_object_new_string(r->error));
    if (r->stats)
        json_object_object_add(o, "stats", json_object_get(r->stats));
    _cleanup_free_ char *name = sf_name(SF_JOB, r->migration);
    int rc = sf_write(dir, name, o, lf);
    json_object_put(o);
    return rc;
}

static const char *get_str(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

static int get_bool(json_object *o, const char *key)
{
    json_object *v;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_boolean(v) : 0;
}

typedef struct job_visit {
    sf_job_visit fn;
    void *arg;
} job_visit;

static int visit_job(void *arg, int64_t migration, json_object *o)
{
    job_visit *jv = arg;
    json_object *stats = NULL;
    json_object_object_get_ex(o, "stats", &stats);
    sf_job r = {
        .migration = migration,
        .instance = get_str(o, "instance"),
        .name = get_str(o, "name"),
        .instance_id = get_str(o, "instance_id"),
        .dest = get_str(o, "dest"),
        .uri = get_str(o, "uri"),
        .data_address = get_str(o, "data_address"),
        .tls_name = get_str(o, "tls_name"),
        .state = get_str(o, "state"),
        .post_copy = get_bool(o, "post_copy"),
        .postcopy_active = get_bool(o, "postcopy_active"),
        .error = get_str(o, "error"),
        .stats = stats,
    };
    return jv->fn(jv->arg, &r);
}

void sf_job_each(const char *dir, sf_job_visit fn, void *arg)
{
    job_visit jv = {.fn = fn, .arg = arg};
    sf_each(dir, SF_JOB, visit_job, &jv);
}

typedef struct dest_search {
    const char *uuid;
    char *instance_id;
    size_t n;
    int64_t found;
} dest_search;

static int dest_match(void *arg, int64_t migration, json_object *rec)
{
    dest_search *s = arg;
    json_object *v;
    if (!json_object_object_get_ex(rec, "instance", &v) || strcmp(json_object_get_string(v), s->uuid) != 0)
        return 0;
    s->found = migration;
    if (s->n && json_object_object_get_ex(rec, "instance_id", &v))
        strlcpy_f(s->instance_id, json_object_get_string(v), s->n);
    return s->found != 0;
}

int64_t sf_dest_find(const char *dir, const char *uuid, char *instance_id, size_t n)
{
    if (n)
        *instance_id = 0;
    dest_search s = {.uuid = uuid, .instance_id = instance_id, .n = n};
    sf_each(dir, SF_DEST, dest_match, &s);
    return s.found;
}
