/* agentmsg: what an agent's event claims, read strictly before anything is believed.
 *
 * A heartbeat (host.<name>.heartbeat) is a claim by its host: every field is typed and
 * bounded (capacities by [scheduler] host_max_*), and each domain is checked on its own so
 * that one bad domain is refused alone. Pure functions over json-c: no I/O, no database; the
 * fuzz target tests/fuzz/fuzz_agentmsg.c drives them with hostile bodies. */
#ifndef FERRY_AGENTMSG_H
#define FERRY_AGENTMSG_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util.h"

/* Most domains one heartbeat may list, and the lengths of its texts. */
#define AGENTMSG_MAX_DOMAINS 4096
#define AGENTMSG_MAX_NAME 255
#define AGENTMSG_MAX_CPU_XML 65536

typedef struct agentmsg_limits {
    int64_t max_vcpus, max_memory_mb, max_disk_gb; /* a host claiming more is refused */
} agentmsg_limits;

/* One domain of a heartbeat; strings are borrowed from the JSON body. */
typedef struct agentmsg_domain {
    const char *uuid, *name, *project, *instance_id, *state;
    int64_t vcpus, memory_mb, disk_gb;
    char *bad; /* NULL, or why this domain alone is refused (owned) */
} agentmsg_domain;

/* A heartbeat's claims; strings are borrowed from the JSON body (NULL when absent). */
typedef struct agentmsg_heartbeat {
    const char *address, *arch, *cpu_model, *cpu_xml, *hypervisor, *libvirt_version, *qemu_version;
    const char *migration_address; /* NULL or an address without a port (agentmsg_address_ok) */
    const char *boot; /* the agent process's id, NULL from agents before it */
    int64_t seq;      /* its heartbeat number, -1 when absent */
    int64_t vcpus, memory_mb, disk_gb;
    int postcopy;
    agentmsg_domain *domains; /* owned */
    size_t n_domains;
} agentmsg_heartbeat;

/* Reads and checks heartbeat body b (borrowed; must outlive *out). Returns 0 with *out filled
 * (release with agentmsg_heartbeat_clear; domains may carry their own refusal), or -1 with
 * *why (caller frees) when the heartbeat as a whole cannot be believed. */
int agentmsg_heartbeat_parse(json_object *b, const agentmsg_limits *l, agentmsg_heartbeat *out, char **why) FERRY_WUR;
/* Frees what agentmsg_heartbeat_parse allocated; safe on a zeroed struct and twice. */
void agentmsg_heartbeat_clear(agentmsg_heartbeat *h);

/* Returns 1 when s is a host name ferry accepts (letters, digits, then also . _ -; 1..255). */
int agentmsg_host_name_ok(const char *s);
/* Returns 1 when s is an address other hosts may be given: a host name or IPv4 address, or a
 * bracketed IPv6 address, with an optional :port (1..65535); nothing that could change a URI. */
int agentmsg_address_ok(const char *s);

/* The kinds of routing key the scheduler's event queue receives. */
typedef enum agentmsg_key_kind {
    AGENTMSG_KEY_OTHER = 0,
    AGENTMSG_KEY_HEARTBEAT, /* host.<name>.heartbeat */
    AGENTMSG_KEY_MIGRATION, /* migration.<id>.<what> */
} agentmsg_key_kind;

/* Parses routing key key: for a heartbeat the host (into host, hostlen bytes), for a
 * migration event its id (> 0) and what (into what, whatlen bytes; lowercase letters and _).
 * A key that does not parse strictly is AGENTMSG_KEY_OTHER. */
agentmsg_key_kind agentmsg_parse_key(const char *key, char *host, size_t hostlen, int64_t *migration, char *what,
                                     size_t whatlen);

#endif
