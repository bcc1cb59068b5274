/* rpcin: the bodies of the agent's RPCs (compute-agent/RPC.md), read and checked before any
 * handler acts. No libvirt, no AMQP, no file system: what a peer can send is refused here, with
 * a reason naming the field ("body.disks[1].path: path /etc/passwd is outside ..."), so the
 * same code runs in the agent and in tests/fuzz/fuzz_agent_rpc.c.
 *
 * Every string out-member is borrowed from the body (valid while the caller holds it).
 * Every function returns 0, or -1 with *err (caller frees); a refusal here is code "invalid". */
#ifndef FERRY_RPCIN_H
#define FERRY_RPCIN_H

#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "util.h"

/* The options of one outgoing live migration (live_migration's body). */
typedef struct job_opts {
    int block_migration;
    int post_copy;
    int postcopy_after_iterations;
    int auto_converge;
    int auto_converge_initial;   /* 0 = libvirt's default */
    int auto_converge_increment; /* 0 = libvirt's default */
    int bandwidth_mib_s;
    int max_downtime_ms;
    int completion_timeout_s;
    int completion_postcopy; /* completion timeout switches to post-copy instead of aborting */
    int completion_pause;    /* completion timeout pauses the guest so the rest is sent */
    int downtime_steps;      /* the downtime ramp: 0 = max_downtime_ms from the start, else 1..100 steps */
    int downtime_delay_ms;   /* ... each this long (1..3600000) */
    int parallel_connections; /* 1 = one stream, 2..32: VIR_MIGRATE_PARALLEL with that many */
    int xbzrle_cache_mib;     /* 0 = off, else xbzrle (VIR_MIGRATE_COMPRESSED) with this cache (a power of two) */
} job_opts;

/* The fields every migration method carries. */
typedef struct rpcin_mig {
    int64_t migration;       /* >= 1 */
    const char *instance;    /* a UUID */
    const char *instance_id; /* NULL unless present and fit for a log field */
    int64_t epoch;           /* the owner's epoch; 0 when absent */
} rpcin_mig;

/* migration, instance, instance_id, epoch. */
int rpcin_migration(json_object *body, rpcin_mig *out, char **err) FERRY_WUR;

/* dirty_rate (no migration yet: a forecast's input): instance (a UUID) and seconds (the
 * sampling period, 1..10, default 1). */
int rpcin_dirty_rate(json_object *body, const char **instance, int *seconds, char **err) FERRY_WUR;
/* set_bandwidth's body: bandwidth_mib_s (1..100000) into *mib_s; 0, or -1 with *err (caller frees). */
int rpcin_set_bandwidth(json_object *body, int *mib_s, char **err) FERRY_WUR;

/* check_source: block_migration (0, 1, or 2 for "auto"). */
int rpcin_check_source(json_object *body, int *block, char **err) FERRY_WUR;

typedef struct rpcin_check_dest {
    const char *domain_xml;
    int64_t memory_mb;
    int post_copy;
    int block;         /* 0, 1, 2 = "auto" */
    const char *probe; /* NULL when absent; else exactly the probe name of this migration */
} rpcin_check_dest;

/* check_destination of migration. */
int rpcin_check_destination(json_object *body, int64_t migration, rpcin_check_dest *out, char **err) FERRY_WUR;

/* One disk of pre_live_migration. */
typedef struct rpcin_disk {
    const char *path;     /* absolute, inside roots[root] */
    size_t root;          /* index into the roots given */
    const char *rel;      /* path after "<root>/" (borrowed from path) */
    int create;           /* block migration: the image is made here (when not already there) */
    const char *format;   /* "qcow2" or "raw" when create */
    int64_t virtual_size; /* bytes, > 0 when create */
} rpcin_disk;

typedef struct rpcin_pre {
    int block;
    rpcin_disk *disks; /* owned: rpcin_pre_free */
    size_t n;
} rpcin_pre;

/* Most disks one pre_live_migration may name. */
#define RPCIN_MAX_DISKS 64

/* pre_live_migration: every disk path must lie inside one of the nroots trusted directories
 * (guard_path); what to create is decided here. Free out with rpcin_pre_free. */
int rpcin_pre_live_migration(json_object *body, const char *const *roots, size_t nroots, rpcin_pre *out,
                             char **err) FERRY_WUR;
/* Frees the members of p (NULL members are fine). */
void rpcin_pre_free(rpcin_pre *p);

typedef struct rpcin_live {
    const char *dest;         /* a host name (RFC 1123), not self_host */
    const char *dest_address; /* guard_address: host name, IPv4 or [IPv6], optional :port */
    const char *dest_migration_address; /* the same without a port, or NULL: the migration network's */
    job_opts o;
} rpcin_live;

/* live_migration, on the host named self_host. */
int rpcin_live_migration(json_object *body, const char *self_host, rpcin_live *out, char **err) FERRY_WUR;

/* The string field key of body (required or not): NULL when absent; refused when of another
 * type, empty when required, or holding a NUL byte. */
int rpcin_str(json_object *body, const char *key, int required, const char **out, char **err) FERRY_WUR;

#endif
