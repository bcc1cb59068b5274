/* novaview: ferry's reads (api.c's JSON: INSTANCE, MIGRATION, HOST of scheduler/API.md) in
 * the shapes of Nova's compute API v2.1 at a given microversion. Pure: json-c only. */
#ifndef FERRY_NOVAVIEW_H
#define FERRY_NOVAVIEW_H

#include <json-c/json.h>

/* A server of Nova's (detail: the full body, else id, name and links) from an INSTANCE of
 * api.c at microversion 2.minor. Caller puts the result; inst is borrowed. */
json_object *novaview_server(json_object *inst, int minor, int detail);
/* An os-migrations entry (server_view: the /servers/{id}/migrations form, with the memory and
 * disk figures) from a MIGRATION of api.c. Caller puts the result; m is borrowed. */
json_object *novaview_migration(json_object *m, int minor, int server_view);
/* A hypervisor (detail: with its figures and service) from a HOST of api.c; index is its
 * 1-based place in the name-ordered host list (the id before 2.53). Caller puts. */
json_object *novaview_hypervisor(json_object *h, int index, int minor, int detail);
/* A nova-compute service from a HOST of api.c, as novaview_hypervisor. Caller puts. */
json_object *novaview_service(json_object *h, int index, int minor);
/* The id Nova's API gives host h (name borrowed) at 2.minor into buf (at least 40 bytes): its
 * index before 2.53, else a uuid derived from its name (stable across replicas). Returns buf. */
const char *novaview_host_id(const char *name, int index, int minor, char *buf);
/* The version document of v2.1 (min 2.1, max 2.93) with base the URL prefix the client used
 * (borrowed). Caller puts. */
json_object *novaview_version(const char *base);

#endif
