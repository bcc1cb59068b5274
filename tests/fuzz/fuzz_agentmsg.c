/* libFuzzer target: what the scheduler reads from an agent's event before believing anything
 * (scheduler/agentmsg.c). The input is a routing key, a newline, then the message: the key is
 * parsed (host.<name>.heartbeat, migration.<id>.<what>), the message goes through the envelope
 * parser (common/msg.c) and its body through the heartbeat reader, whose results are then
 * checked: every refusal says why, every accepted value is within the limits, and every
 * domain accepted is well formed and listed once. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agentmsg.h"
#include "msg.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const agentmsg_limits lim = {.max_vcpus = 4096, .max_memory_mb = 16777216, .max_disk_gb = 1048576};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t kl = nl ? (size_t)(nl - data) : size;
    char *key = xstrndup((const char *)data, kl);
    char host[AGENTMSG_MAX_NAME + 1], what[32];
    int64_t mig = 0;
    agentmsg_key_kind k = agentmsg_parse_key(key, host, sizeof(host), &mig, what, sizeof(what));
    if (k == AGENTMSG_KEY_HEARTBEAT && !agentmsg_host_name_ok(host))
        abort();
    if (k == AGENTMSG_KEY_MIGRATION && (mig < 1 || !*what))
        abort();
    free(key);
    if (!nl)
        return 0;
    msg_envelope *env = NULL;
    char *err = NULL;
    if (msg_parse((const char *)nl + 1, size - kl - 1, &env, &err) < 0) {
        free(err);
        return 0;
    }
    agentmsg_heartbeat hb;
    if (agentmsg_heartbeat_parse(msg_envelope_body(env), &lim, &hb, &err) < 0) {
        if (!err || !*err)
            abort(); /* a refusal always says why */
        free(err);
    } else {
        if (hb.vcpus < 0 || hb.vcpus > lim.max_vcpus || hb.memory_mb < 0 || hb.memory_mb > lim.max_memory_mb ||
            hb.disk_gb < 0 || hb.disk_gb > lim.max_disk_gb || hb.seq < -1)
            abort();
        if (hb.address && *hb.address && !agentmsg_address_ok(hb.address))
            abort();
        /* the migration network's address goes into tcp://ADDR: never empty, never a port */
        const char *ma = hb.migration_address;
        if (ma && (!*ma || !agentmsg_address_ok(ma) || (ma[0] == '[' ? ma[strlen(ma) - 1] != ']' : !!strchr(ma, ':'))))
            abort();
        if (hb.n_domains > AGENTMSG_MAX_DOMAINS)
            abort();
        for (size_t i = 0; i < hb.n_domains; i++) {
            const agentmsg_domain *d = &hb.domains[i];
            if (d->bad)
                continue;
            if (!d->uuid || !uuid_valid(d->uuid) || !d->name || !*d->name || d->vcpus < 0 || d->memory_mb < 0 ||
                d->memory_mb > lim.max_memory_mb)
                abort();
            for (size_t j = 0; j < i; j++)
                if (!hb.domains[j].bad && strcmp(hb.domains[j].uuid, d->uuid) == 0)
                    abort(); /* listed once */
        }
        agentmsg_heartbeat_clear(&hb);
    }
    msg_envelope_free(env);
    return 0;
}
