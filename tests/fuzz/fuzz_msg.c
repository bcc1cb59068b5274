/* libFuzzer target: the message parser (common/msg.c, msg_request.c, msg_field.c) on any bytes
 * — the envelope, then the request contract, the reply and the operator requests, and a round
 * trip of every request that parses (built again, it must parse to the same values). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse((const char *)data, size, &env, &err) < 0) {
        if (!err || !*err)
            abort(); /* a refusal always says why */
        free(err);
        return 0;
    }
    if (msg_check_message_id(env, "6f1b2c3d-0000-4000-8000-000000000000", &err) < 0)
        free(err);
    msg_request rq = {0};
    if (msg_request_parse(env, NULL, &rq, &err) == 0) {
        char *json = NULL;
        if (msg_build_request(&rq, &json, &err) < 0)
            abort(); /* what parsed must build */
        msg_envelope *env2 = NULL;
        msg_request rq2 = {0};
        if (msg_parse(json, strlen(json), &env2, NULL) < 0 || msg_request_parse(env2, NULL, &rq2, NULL) < 0)
            abort(); /* and parse again */
        if (strcmp(rq.id, rq2.id) != 0 || strcmp(rq.instance, rq2.instance) != 0 || (!rq.host) != (!rq2.host) ||
            (rq.host && strcmp(rq.host, rq2.host) != 0) || rq.block_migration != rq2.block_migration ||
            rq.post_copy != rq2.post_copy || rq.disk_over_commit != rq2.disk_over_commit ||
            rq.options.auto_converge != rq2.options.auto_converge ||
            rq.options.postcopy_after_iterations != rq2.options.postcopy_after_iterations ||
            rq.options.bandwidth_mib_s != rq2.options.bandwidth_mib_s ||
            rq.options.max_downtime_ms != rq2.options.max_downtime_ms ||
            rq.options.completion_timeout_s != rq2.options.completion_timeout_s ||
            rq.objectives.max_downtime_ms != rq2.objectives.max_downtime_ms ||
            rq.objectives.deadline_s != rq2.objectives.deadline_s)
            abort(); /* to the same values */
        msg_request_free(&rq2);
        msg_envelope_free(env2);
        free(json);
        msg_request_free(&rq);
    } else {
        free(err);
    }
    msg_reply rep = {0};
    if (msg_reply_parse(env, &rep, &err) == 0)
        msg_reply_free(&rep);
    else
        free(err);
    msg_envelope_free(env);
    return 0;
}
