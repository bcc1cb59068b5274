/* trust: who sent a message, as the broker vouches for it, and whether that sender may say it.
 *
 * RabbitMQ refuses a message whose user_id property differs from the user the publishing
 * connection logged in as, so a user_id that arrives is a fact; a message without one names
 * no sender. ferry's own publishers always set it (mq_publish.c). The roles come from [trust]:
 * scheduler replicas (scheduler_users: trusted with everything, they hold the database),
 * the agent of host H (<agent_user_prefix>H: may speak for H only), operators
 * (operator_users, "*" = any other user). Every check returns 1 (allowed) or 0 with *why
 * (caller frees) in words an operator can act on. Pure functions: no I/O. */
#ifndef FERRY_TRUST_H
#define FERRY_TRUST_H

#include <stddef.h>

#include "config.h"
#include "util.h"

typedef enum trust_role {
    TRUST_NOBODY = 0, /* no user_id: the sender is not known */
    TRUST_SCHEDULER,
    TRUST_AGENT,
    TRUST_OPERATOR,
    TRUST_OTHER, /* a user none of the roles names */
} trust_role;

/* Returns the role of broker user `user` (NULL = no user_id); for TRUST_AGENT writes the host
 * name into host (hostlen bytes, may be NULL) when it fits, else the role is TRUST_OTHER. */
trust_role trust_role_of(const cfg_trust *t, const char *user, char *host, size_t hostlen);
/* Returns the role's name ("scheduler", "agent", "operator", ...); a static string. */
const char *trust_role_name(trust_role r);
/* Returns 1 when user is one of the comma-separated names of list ("*" matches anyone). */
int trust_user_in_list(const char *list, const char *user);
/* Returns the broker user of host's agent (caller frees). */
char *trust_agent_user(const cfg_trust *t, const char *host);
/* Returns a NULL-terminated array of the scheduler users (caller frees with trust_list_free). */
char **trust_scheduler_users(const cfg_trust *t);
/* Returns the users whose answer to a call to host's agent counts: that agent's user and the
 * scheduler users (trusted with everything); host NULL = the scheduler users only.
 * NULL-terminated; caller frees with trust_list_free. */
char **trust_answer_senders(const cfg_trust *t, const char *host);
/* Frees an array of trust_scheduler_users or trust_answer_senders; NULL is accepted. */
void trust_list_free(char **list);

/* May `user` send a migration request or an operator call (ferry.scheduler, the read RPCs)? */
int trust_may_request(const cfg_trust *t, const char *user, char **why) FERRY_WUR;
/* May `user` call `method` on the agent of a host? Schedulers may call anything; operators
 * only the read-only ping. */
int trust_may_call_agent(const cfg_trust *t, const char *user, const char *method, char **why) FERRY_WUR;
/* May `user` publish host.<host>.* (heartbeats)? Host's own agent, or a scheduler. */
int trust_may_speak_for_host(const cfg_trust *t, const char *user, const char *host, char **why) FERRY_WUR;
/* May `user` publish events of a migration from source to dest (either may be NULL when the
 * migration is unknown)? The agent of source or dest, or a scheduler. */
int trust_may_speak_for_migration(const cfg_trust *t, const char *user, const char *source, const char *dest,
                                  char **why) FERRY_WUR;

#endif
