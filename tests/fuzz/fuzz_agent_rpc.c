/* libFuzzer target: what a peer reaches in the agent before libvirt — an RPC request (the
 * envelope when the bytes are one, else a bare body) checked by every method's body reader
 * (compute-agent/rpcin.c, with guard.c and domxml.c): the migration fields and epoch,
 * check_source, check_destination (probe name, interface names), pre_live_migration (disk
 * paths confined to the trusted roots), live_migration (destination, addresses, transport). Besides not
 * crashing, what is accepted must obey the rules: a disk path inside a root with no "."/".."
 * component, an address with nothing a URI could be steered with, a probe of this migration. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "../../compute-agent/rpcin.h"
#include "msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const roots[] = {"/var/lib/ferry/instances", "/var/lib/ferry/local"};

static void check_body(json_object *body)
{
    char *err = NULL;
    rpcin_mig m = {0};
    int64_t mig = 7;
    if (rpcin_migration(body, &m, &err) == 0) {
        if (m.migration < 1 || !uuid_valid(m.instance) || m.epoch < 0)
            abort();
        mig = m.migration;
    } else {
        if (!err || !*err)
            abort(); /* a refusal always says why */
        free(err);
        err = NULL;
    }
    int block;
    if (rpcin_check_source(body, &block, &err) < 0)
        free(err), err = NULL;
    const char *dinst = NULL;
    int dsecs = 0;
    if (rpcin_dirty_rate(body, &dinst, &dsecs, &err) < 0)
        free(err), err = NULL;
    else if (!uuid_valid(dinst) || dsecs < 1 || dsecs > 10)
        abort(); /* accepted means checked */
    int bw = 0;
    if (rpcin_set_bandwidth(body, &bw, &err) < 0)
        free(err), err = NULL;
    else if (bw < 1 || bw > 100000)
        abort(); /* accepted means checked */

    rpcin_check_dest cd;
    if (rpcin_check_destination(body, mig, &cd, &err) == 0) {
        if (cd.probe && (strncmp(cd.probe, ".ferry-probe-", 13) != 0 || strchr(cd.probe, '/') || strlen(cd.probe) > 48))
            abort();
    } else {
        if (!err || !*err)
            abort();
        free(err), err = NULL;
    }

    rpcin_pre pre;
    if (rpcin_pre_live_migration(body, roots, 2, &pre, &err) == 0) {
        for (size_t i = 0; i < pre.n; i++) {
            const rpcin_disk *k = &pre.disks[i];
            size_t rl = strlen(roots[k->root]);
            if (k->root > 1 || strncmp(k->path, roots[k->root], rl) != 0 || k->path[rl] != '/' ||
                k->rel != k->path + rl + 1)
                abort(); /* outside its root */
            if (strstr(k->path, "/../") || strstr(k->path, "/./") || strstr(k->path, "//") ||
                (strlen(k->path) >= 3 && strcmp(k->path + strlen(k->path) - 3, "/..") == 0))
                abort(); /* a dot component or an empty one */
            if (k->create &&
                (k->virtual_size <= 0 || (strcmp(k->format, "qcow2") != 0 && strcmp(k->format, "raw") != 0)))
                abort();
        }
        rpcin_pre_free(&pre);
    } else {
        if (!err || !*err || pre.disks)
            abort();
        free(err), err = NULL;
    }

    rpcin_live live;
    if (rpcin_live_migration(body, "compute1", &live, &err) == 0) {
        if (strpbrk(live.dest_address, "/?&@%# \\\"'<>\n\r\t") || strpbrk(live.dest, "/?&@%#:[] ") ||
            strcmp(live.dest, "compute1") == 0)
            abort(); /* something a URI or a path could be steered with */
        /* the migration network's address: in tcp://ADDR and a listen address, so no port either */
        const char *ma = live.dest_migration_address;
        if (ma && (!*ma || strpbrk(ma, "/?&@%# \\\"'<>\n\r\t") ||
                   (ma[0] == '[' ? ma[strlen(ma) - 1] != ']' : strchr(ma, ':') != NULL)))
            abort();
        int c = live.o.xbzrle_cache_mib;
        if (live.o.parallel_connections < 1 || live.o.parallel_connections > 32 || c < 0 || (c & (c - 1)) != 0 ||
            (c > 0 && live.o.parallel_connections > 1))
            abort(); /* the transport as libvirt is given it */
    } else {
        if (!err || !*err)
            abort();
        free(err), err = NULL;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    msg_envelope *env = NULL;
    if (msg_parse((const char *)data, size, &env, NULL) == 0) {
        json_object *body = msg_envelope_body(env);
        if (body && json_object_is_type(body, json_type_object))
            check_body(body);
        msg_envelope_free(env);
        return 0;
    }
    json_tokener *tok = json_tokener_new_ex(64);
    json_object *body = json_tokener_parse_ex(tok, (const char *)data, (int)(size > 1 << 20 ? 1 << 20 : size));
    json_tokener_free(tok);
    if (body && json_object_is_type(body, json_type_object))
        check_body(body);
    json_object_put(body);
    return 0;
}
