/* events: what the agent publishes on ferry.events (events.h). */
#include "events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"
#include "inventory.h"
#include "msg.h"
#include "statefile.h"

static void publish(agent *a, const log_fields *lf, const char *key, json_object *body)
{
    char at[40];
    rfc3339_ms(wall_ms(), at, sizeof(at));
    json_object_object_add(body, "at", json_object_new_string(at));
    json_object_object_add(body, "host", json_object_new_string(a->host));
    json_object_object_add(body, "origin", json_object_new_string("agent"));
    /* the envelope type is the routing key, so a consumer of several keys tells them apart */
    _cleanup_free_ char *text = msg_build(key, NULL, body);
    char *err = NULL;
    mq_props p = {.type = key};
    if (mq_publish(a->mq, MQ_EVENTS_EXCHANGE, key, &p, text, strlen(text), NULL, NULL, &err) < 0) {
        log_debug(lf, "event %s not published: %s", key, err);
        free(err);
    }
}

void events_publish(agent *a, const char *key, json_object *body)
{
    publish(a, NULL, key, body);
}

void events_heartbeat(agent *a)
{
    if (!a->lv_up || !mq_is_up(a->mq))
        return;
    virConnectPtr conn = lv_ref(a->lv, NULL);
    if (!conn)
        return;
    char *err = NULL;
    json_object *b =
        inv_build(conn, a->host, a->address, a->cfg->agent.instances_path, a->cfg->agent.memory_limit_mb, &err);
    virConnectClose(conn);
    if (!b) {
        log_warn(NULL, "could not build the host inventory: %s", err);
        free(err);
        return;
    }
    /* the scheduler ignores a heartbeat older than one it recorded (a redelivery, a reorder) */
    json_object_object_add(b, "boot", json_object_new_string(a->boot));
    if (*a->cfg->agent.migration_address)
        json_object_object_add(b, "migration_address", json_object_new_string(a->cfg->agent.migration_address));
    json_object_object_add(b, "seq", json_object_new_int64(++a->hb_seq));
    _cleanup_free_ char *key = xasprintf("host.%s.heartbeat", a->host);
    publish(a, NULL, key, b);
}

void events_lifecycle(agent *a, const lv_lifecycle *ev)
{
    log_fields f = {.instance = ev->uuid, .host = a->host};
    log_info(&f, "domain %s %s (%s)", ev->name, ev->event_name, ev->detail_name);
    json_object *b = json_object_new_object();
    json_object_object_add(b, "instance", json_object_new_string(ev->uuid));
    json_object_object_add(b, "name", json_object_new_string(ev->name));
    json_object_object_add(b, "event", json_object_new_string(ev->event_name));
    json_object_object_add(b, "detail", json_object_new_string(ev->detail_name));
    _cleanup_free_ char *key = xasprintf("instance.%s.%s", ev->uuid, ev->event_name);
    publish(a, &f, key, b);
    /* the guest resumed here after an incoming migration: it runs on this host now */
    if (ev->event == VIR_DOMAIN_EVENT_RESUMED &&
        (ev->detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED || ev->detail == VIR_DOMAIN_EVENT_RESUMED_POSTCOPY)) {
        char iid[64];
        int64_t mig = sf_dest_find(a->cfg->agent.state_dir, ev->uuid, iid, sizeof(iid));
        char mig_s[24];
        snprintf(mig_s, sizeof(mig_s), "%lld", (long long)mig);
        log_fields g = {.instance = *iid ? iid : ev->uuid, .host = a->host, .migration = mig ? mig_s : NULL};
        log_info(&g, "domain %s resumed here after its migration (%s)", ev->name, ev->detail_name);
        json_object *r = json_object_new_object();
        json_object_object_add(r, "instance", json_object_new_string(ev->uuid));
        json_object_object_add(r, "name", json_object_new_string(ev->name));
        if (mig)
            json_object_object_add(r, "migration", json_object_new_int64(mig));
        json_object_object_add(r, "detail", json_object_new_string(ev->detail_name));
        _cleanup_free_ char *rk = xasprintf("instance.%s.running", ev->uuid);
        publish(a, &g, rk, r);
    }
}

void events_migration_started(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *dest)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "dest", json_object_new_string(dest));
    _cleanup_free_ char *key = xasprintf("instance.%s.migrating", uuid);
    publish(a, lf, key, b);
}

void events_migration_progress(agent *a, const log_fields *lf, int64_t migration, const char *uuid, json_object *stats)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "stats", json_object_get(stats));
    _cleanup_free_ char *key = xasprintf("migration.%lld.progress", (long long)migration);
    publish(a, lf, key, b);
}

void events_migration_postcopy(agent *a, const log_fields *lf, int64_t migration, const char *uuid, int iteration,
                               const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "iteration", json_object_new_int(iteration));
    json_object_object_add(b, "reason", json_object_new_string(reason));
    _cleanup_free_ char *key = xasprintf("migration.%lld.postcopy", (long long)migration);
    publish(a, lf, key, b);
}

void events_migration_note(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *what,
                           const char *reason)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "reason", json_object_new_string(reason));
    _cleanup_free_ char *key = xasprintf("migration.%lld.%s", (long long)migration, what);
    publish(a, lf, key, b);
}

void events_migration_ended(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *state,
                            const char *dest, int postcopy, const char *error, json_object *stats)
{
    json_object *b = json_object_new_object();
    json_object_object_add(b, "migration", json_object_new_int64(migration));
    json_object_object_add(b, "instance", json_object_new_string(uuid));
    json_object_object_add(b, "dest", json_object_new_string(dest ? dest : ""));
    json_object_object_add(b, "postcopy", json_object_new_boolean(postcopy));
    if (error)
        json_object_object_add(b, "error", json_object_new_string(error));
    if (stats)
        json_object_object_add(b, "stats", json_object_get(stats));
    _cleanup_free_ char *key = xasprintf("migration.%lld.%s", (long long)migration, state);
    publish(a, lf, key, b);
}
