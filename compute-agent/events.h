/* events: what the agent publishes on ferry.events — the host's heartbeat (its inventory),
 * every domain lifecycle change (instance.<uuid>.<event>, and instance.<uuid>.running when a
 * guest resumes here after its migration), and the events of its outgoing migrations
 * (instance.<uuid>.migrating, migration.<id>.progress|postcopy|<final state>).
 *
 * The routing keys and the bodies are written here and only here. Events are informative: one
 * the broker does not take is logged and dropped (the scheduler asks job_status). Loop thread
 * only. */
#ifndef FERRY_EVENTS_H
#define FERRY_EVENTS_H

#include <stdint.h>

#include <json-c/json.h>

#include "log.h"
#include "lv.h"

typedef struct agent agent;

/* Publishes body (taken) on ferry.events with routing key key (also the envelope's type);
 * adds "at", "host" and "origin". Logs and drops it when the broker is away. */
void events_publish(agent *a, const char *key, json_object *body);

/* Publishes host.<host>.heartbeat: the inventory of the host (read from libvirt now), with the
 * process's boot id and the next heartbeat number. Nothing while libvirt or the broker is away. */
void events_heartbeat(agent *a);

/* Logs and publishes a domain lifecycle event (ev borrowed); when a guest resumed here after
 * an incoming migration, also instance.<uuid>.running with the migration this host prepared
 * for it (its dest record in the state dir). */
void events_lifecycle(agent *a, const lv_lifecycle *ev);

/* instance.<uuid>.migrating: migration of domain uuid to host dest started here. lf (borrowed)
 * are the job's log fields. */
void events_migration_started(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *dest);
/* migration.<id>.progress with the job's latest statistics (stats borrowed). */
void events_migration_progress(agent *a, const log_fields *lf, int64_t migration, const char *uuid, json_object *stats);
/* migration.<id>.postcopy: the job switched to post-copy during memory iteration `iteration`
 * for `reason` ("iterations", "completion timeout", "force-complete"). */
void events_migration_postcopy(agent *a, const log_fields *lf, int64_t migration, const char *uuid, int iteration,
                               const char *reason);
/* What a job did or found, to record as the migration's event: migration.<id>.<what> with
 * `reason`. what is one of the words the scheduler reads (a typed code, not text):
 * "guest_paused" (the job paused the guest so that the migration completes, reason e.g.
 * "completion timeout of 600 s") or "settings_verified" (what libvirt applied, read back). */
void events_migration_note(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *what,
                           const char *reason);
/* migration.<id>.<state>: the job ended (state "completed", "failed" or "cancelled") or paused
 * after the post-copy switch ("postcopy_paused": kept, resumable); dest,
 * error and stats (all borrowed) may be NULL. */
void events_migration_ended(agent *a, const log_fields *lf, int64_t migration, const char *uuid, const char *state,
                            const char *dest, int postcopy, const char *error, json_object *stats);

#endif
