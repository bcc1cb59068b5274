/* libFuzzer target: policy.set bodies (scheduler/policy.c) on any bytes parsed as JSON: a
 * refusal always says why; what is accepted is within the bounds policy.h states. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int in(int v, int lo, int hi)
{
    return v == -1 || (v >= lo && v <= hi);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_tokener *t = json_tokener_new();
    json_object *o = json_tokener_parse_ex(t, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
    json_tokener_free(t);
    if (!o)
        return 0;
    policy p;
    char *why = NULL;
    if (policy_read(o, &p, &why) < 0) {
        if (!why || !*why)
            abort();
        free(why);
    } else {
        char *w2 = NULL;
        if (why || policy_name_check(p.name, &w2) < 0 || p.priority < -1000 || p.priority > 1000 ||
            (p.project && strlen(p.project) > 255) || (p.instance_glob && strlen(p.instance_glob) > 255) ||
            (p.host_glob && strlen(p.host_glob) > 255) || !in(p.post_copy, 0, 1) || !in(p.auto_converge, 0, 1) ||
            !in(p.postcopy_after_iterations, 1, 1000) || !in(p.bandwidth_mib_s, 0, 100000) ||
            !in(p.max_downtime_ms, 1, 600000) || !in(p.completion_timeout_s, 0, 86400) ||
            !in(p.objective_max_downtime_ms, 1, 600000) || !in(p.objective_deadline_s, 1, 604800))
            abort();
    }
    json_object_put(o);
    return 0;
}
