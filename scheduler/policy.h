/* policy: a migration policy as an operator's policy.set gives it (issue #18), checked field by
 * field with bounded readers: its name, priority and selectors (project, instance name glob,
 * source host glob) and the defaults it gives a request that leaves them out (post-copy,
 * auto-converge, the options, the objectives). Pure; policyop.c stores it, intake.c applies
 * the one that matches (docs/DESIGN.md "Forecast"). */
#ifndef FERRY_POLICY_H
#define FERRY_POLICY_H

#include <json-c/json.h>

#include "util.h"

/* One policy. Strings borrowed from the body they were read from; an integer default of -1 and
 * a boolean of -1 mean "not set" (the scheduler's own default applies). */
typedef struct policy {
    const char *name; /* [a-z0-9][a-z0-9._-]{0,62} */
    int priority;     /* -1000..1000, default 0 */
    const char *project, *instance_glob, *host_glob; /* NULL: any; at most 255 bytes each */
    int post_copy, auto_converge;                    /* -1, 0, 1 */
    int postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms, completion_timeout_s;
    int objective_max_downtime_ms, objective_deadline_s;
} policy;

/* Reads body (borrowed; strings in *out point into it) as a policy.set body: {"name", and
 * optional "priority", "project", "instance", "host", "post_copy", "options": {as a request's},
 * "objectives": {as a request's}}; no other key. Returns 0, or -1 with *why (caller frees)
 * naming the field. */
int policy_read(json_object *body, policy *out, char **why) FERRY_WUR;
/* Checks a policy name; 0, or -1 with *why (caller frees). */
int policy_name_check(const char *name, char **why) FERRY_WUR;

#endif
