#include "trust.h"

#include <stdlib.h>
#include <string.h>

int trust_user_in_list(const char *list, const char *user)
{
    if (!list || !user)
        return 0;
    if (strcmp(list, "*") == 0)
        return 1;
    size_t ul = strlen(user);
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == ul && memcmp(p, user, len) == 0)
            return 1;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

/* the host names add-agent-user accepts: a letter or digit, then letters, digits, . _ - */
static int host_name_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 255)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = h[i];
        int alnum = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!alnum && (i == 0 || (ch != '.' && ch != '_' && ch != '-')))
            return 0;
    }
    return 1;
}

trust_role trust_role_of(const cfg_trust *t, const char *user, char *host, size_t hostlen)
{
    if (!user || !*user)
        return TRUST_NOBODY;
    /* "*" in scheduler_users is refused by the config check: a scheduler is always named */
    if (strcmp(t->scheduler_users, "*") != 0 && trust_user_in_list(t->scheduler_users, user))
        return TRUST_SCHEDULER;
    size_t pl = strlen(t->agent_user_prefix);
    if (pl > 0 && strncmp(user, t->agent_user_prefix, pl) == 0) {
        const char *h = user + pl;
        if (!host_name_ok(h))
            return TRUST_OTHER;
        if (host) {
            if (strlen(h) >= hostlen)
                return TRUST_OTHER;
            memcpy(host, h, strlen(h) + 1);
        }
        return TRUST_AGENT;
    }
    if (trust_user_in_list(t->operator_users, user))
        return TRUST_OPERATOR;
    return TRUST_OTHER;
}

const char *trust_role_name(trust_role r)
{
    switch (r) {
    case TRUST_NOBODY:
        return "nobody";
    case TRUST_SCHEDULER:
        return "scheduler";
    case TRUST_AGENT:
        return "agent";
    case TRUST_OPERATOR:
        return "operator";
    case TRUST_OTHER:
        break;
    }
    return "unknown user";
}

char *trust_agent_user(const cfg_trust *t, const char *host)
{
    return xasprintf("%s%s", t->agent_user_prefix, host);
}

char **trust_scheduler_users(const cfg_trust *t)
{
    size_t n = 1;
    for (const char *p = t->scheduler_users; *p; p++)
        n += *p == ',';
    char **out = xcalloc(n + 1, sizeof(char *));
    size_t i = 0;
    for (const char *p = t->scheduler_users; *p && i < n;) {
        size_t len = strcspn(p, ",");
        if (len > 0)
            out[i++] = xstrndup(p, len);
        p += len;
        if (*p == ',')
            p++;
    }
    return out;
}

char **trust_answer_senders(const cfg_trust *t, const char *host)
{
    char **sched = trust_scheduler_users(t);
    if (!host)
        return sched;
    size_t n = 0;
    while (sched[n])
        n++;
    char **out = xcalloc(n + 2, sizeof(char *));
    out[0] = trust_agent_user(t, host);
    memcpy(out + 1, sched, n * sizeof(char *));
    free(sched); /* its strings now belong to out */
    return out;
}

void trust_list_free(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

/* "user X (agent of c1)" or "a message without user_id" for the reasons */
static char *who(const cfg_trust *t, const char *user)
{
    char host[256];
    trust_role r = trust_role_of(t, user, host, sizeof(host));
    if (r == TRUST_NOBODY)
        return xstrdup("a message without user_id (sender unknown)");
    if (r == TRUST_AGENT)
        return xasprintf("user %s (the agent of %s)", user, host);
    return xasprintf("user %s (%s)", user, trust_role_name(r));
}

int trust_may_request(const cfg_trust *t, const char *user, char **why)
{
    trust_role r = trust_role_of(t, user, NULL, 0);
    if (r == TRUST_SCHEDULER || r == TRUST_OPERATOR || (r == TRUST_NOBODY && t->anonymous_requests))
        return 1;
    _cleanup_free_ char *w = who(t, user);
    *why = xasprintf("%s may not send requests: only operators ([trust] operator_users) and schedulers may", w);
    return 0;
}

int trust_may_call_agent(const cfg_trust *t, const char *user, const char *method, char **why)
{
    trust_role r = trust_role_of(t, user, NULL, 0);
    if (r == TRUST_SCHEDULER || (r == TRUST_OPERATOR && method && strcmp(method, "ping") == 0))
        return 1;
    _cleanup_free_ char *w = who(t, user);
    *why = xasprintf("%s may not call %s: only the schedulers ([trust] scheduler_users) drive agents%s", w,
                     method ? method : "an agent", r == TRUST_OPERATOR ? " (operators may ping)" : "");
    return 0;
}

int trust_may_speak_for_host(const cfg_trust *t, const char *user, const char *host, char **why)
{
    char h[256];
    trust_role r = trust_role_of(t, user, h, sizeof(h));
    if (r == TRUST_SCHEDULER || (r == TRUST_AGENT && strcmp(h, host) == 0))
        return 1;
    _cleanup_free_ char *w = who(t, user);
    *why = xasprintf("%s may not speak for host %s: only its own agent may", w, host);
    return 0;
}

int trust_may_speak_for_migration(const cfg_trust *t, const char *user, const char *source, const char *dest,
                                  char **why)
{
    char h[256];
    trust_role r = trust_role_of(t, user, h, sizeof(h));
    if (r == TRUST_SCHEDULER ||
        (r == TRUST_AGENT && ((source && strcmp(h, source) == 0) || (dest && strcmp(h, dest) == 0))))
        return 1;
    _cleanup_free_ char *w = who(t, user);
    if (!source && !dest)
        *why = xasprintf("%s may not speak for a migration this cluster does not know", w);
    else
        *why = xasprintf("%s may not speak for a migration from %s to %s: only their agents may", w,
                         source ? source : "?", dest ? dest : "?");
    return 0;
}
