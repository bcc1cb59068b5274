/* intake: one migration request, one transaction (docs/DESIGN.md "Flows" 1-2). The request id is
 * recorded so a redelivered or re-published request has one effect; the instance is resolved
 * and locked; the destination is chosen (or the named one checked) and claimed with a
 * conditional update that cannot over-commit; the message is acked only after the commit. */
#include <stdlib.h>
#include <string.h>

#include "drain.h"
#include "forecast.h"
#include "ledger.h"
#include "limits.h"
#include "sched.h"

typedef struct intake {
    sched *s;          /* the worker reads only name (fixed) through it */
    cfg_scheduler cfg; /* a copy: the worker never reads the loop's config */
    const msg_request *req;
    const char *reply_to;
    const char *pre_refusal; /* the plan of the request's objectives refuses it (NULL: not) */
    const char *plan;        /* what the plan decided, kept with the migration (NULL: no objectives) */
    int planned;             /* the request went through its plan (no second one for a policy's objectives) */
    msg_request eff;         /* the request as it runs: *req with its policy's defaults (strings borrowed) */
    /* results */
    char *policy;   /* the policy that applied (NULL: none) */
    int needs_plan; /* the policy gives objectives the request has not been planned for:
                     * nothing was written; plan them (eff says how) and try again */
    int duplicate;
    int accepted;
    int queued;
    int64_t migration;
    char *dest;
    char *reason;
    char *instance_uuid;
    char *ec2_id;
    char *source;
} intake;

static void intake_clear(intake *in)
{
    free(in->policy);
    in->policy = NULL;
    in->needs_plan = 0;
    free(in->dest);
    free(in->reason);
    free(in->instance_uuid);
    free(in->ec2_id);
    free(in->source);
    in->dest = in->reason = in->instance_uuid = in->ec2_id = in->source = NULL;
    in->duplicate = in->accepted = in->queued = 0;
    in->migration = 0;
}

/* A refusal: recorded with its reason in the same transaction. */
static int refuse(db_conn *db, intake *in, const char *fmt, ...) FERRY_PRINTF(3, 4);

static int refuse(db_conn *db, intake *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    free(in->reason);
    in->reason = xvasprintf(fmt, ap);
    va_end(ap);
    const char *p[] = {in->req->id, in->reason, in->req->instance, in->s->name};
    if (db_exec(db, NULL,
                "INSERT INTO processed_requests (request_id, outcome, reason) VALUES ($1::uuid, 'refused', $2)", 2,
                p) < 0)
        return -1;
    /* and an event, so whoever published the request without a reply queue hears of it too */
    return db_exec(db, NULL,
                   "INSERT INTO outbox (routing_key, body) SELECT 'request.' || $1 || '.refused', json_build_object("
                   " 'request', $1::text, 'instance', $3::text, 'reason', $2::text, 'origin', 'scheduler',"
                   " 'scheduler', $4::text, 'at', now())::text",
                   4, p);
}

/* Why host's QEMU (qemu: its heartbeat's version) cannot combine parallel connections
 * (multifd) with post-copy, or NULL when it can: from 10.1 on. The caller frees. */
static char *multifd_postcopy_refusal(const char *host, const char *qemu, int parallel)
{
    long major = -1, minor = -1;
    if (qemu[0] >= '0' && qemu[0] <= '9') {
        char *end = NULL;
        major = strtol(qemu, &end, 10);
        if (end[0] == '.' && end[1] >= '0' && end[1] <= '9')
            minor = strtol(end + 1, NULL, 10);
    }
    if (minor >= 0 && (major > 10 || (major == 10 && minor >= 1)))
        return NULL;
    return xasprintf("options.parallel_connections %d cannot be combined with post-copy before QEMU 10.1 (host %s "
                     "has QEMU %s): ask one or the other",
                     parallel, host, *qemu ? qemu : "of an unknown version");
}

/* What ferry_claim (sql/018) answered: a typed code the scheduler words. */
typedef enum claim_outcome {
    CLAIM_DUPLICATE,
    CLAIM_NO_INSTANCE,
    CLAIM_AMBIGUOUS,
    CLAIM_NO_HOST,
    CLAIM_MIGRATING,
    CLAIM_NOT_RUNNING,
    CLAIM_SOURCE_UNKNOWN,
    CLAIM_NEEDS_PLAN,
    CLAIM_NO_DESTINATION,
    CLAIM_CLAIMED,
} claim_outcome;

static int claim_outcome_of(const char *s, claim_outcome *o)
{
    static const char *const names[] = {"duplicate",   "no_instance",    "ambiguous",  "no_host",        "migrating",
                                        "not_running", "source_unknown", "needs_plan", "no_destination", "claimed"};
    for (size_t i = 0; i < ARRAY_SIZE(names); i++)
        if (strcmp(s, names[i]) == 0) {
            *o = (claim_outcome)i;
            return 0;
        }
    return -1;
}

/* The value of ferry_claim's column name in its one row ("" when NULL or missing). */
static const char *claim_col(const PGresult *r, const char *name)
{
    int c = PQfnumber(r, name);
    return c < 0 ? "" : PQgetvalue(r, 0, c);
}

/* An earlier delivery of the request decided it: its outcome, migration and reason from row 0
 * of r (columns co, cm, cr), answered as then. */
static int seen_before(intake *in, const PGresult *r, int co, int cm, int cr)
{
    in->duplicate = 1;
    in->accepted = strcmp(PQgetvalue(r, 0, co), "accepted") == 0;
    in->migration = in->accepted ? atoll(PQgetvalue(r, 0, cm)) : 0;
    in->reason = xstrdup(PQgetvalue(r, 0, cr));
    return 0;
}

/* Why the named host cannot take the instance (for the refusal), or NULL when it can. */
static char *why_not(db_conn *db, const char *host, const char *src, const char *arch, const char *hv, int postcopy,
                     const char *vcpus, const char *mem, const char *disk, int doc, const char *age)
{
    const char *p[] = {host};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(
            db, &r,
            "SELECT state, coalesce(extract(epoch FROM now() - last_heartbeat)::bigint, -1), arch, hypervisor, postcopy,"
            " capacity_vcpus - used_vcpus, capacity_memory_mb - used_memory_mb, capacity_disk_gb - used_disk_gb"
            " FROM hosts WHERE name = $1",
            1, p) < 0)
        return xasprintf("could not read host %s: %s", host, db_error(db));
    if (PQntuples(r) == 0)
        return xasprintf("no host named %s", host);
    if (strcmp(host, src) == 0)
        return xasprintf("%s is the instance's own host", host);
    if (strcmp(PQgetvalue(r, 0, 0), "enabled") != 0)
        return xasprintf("host %s is %s", host, PQgetvalue(r, 0, 0));
    long long hb = atoll(PQgetvalue(r, 0, 1));
    if (hb < 0 || hb > atoll(age))
        return hb < 0 ? xasprintf("host %s has never sent a heartbeat", host)
                      : xasprintf("host %s is down: its last heartbeat is %lld s old", host, hb);
    if (strcmp(PQgetvalue(r, 0, 2), arch) != 0 || strcmp(PQgetvalue(r, 0, 3), hv) != 0)
        return xasprintf("host %s is %s/%s, the instance runs on %s/%s", host, PQgetvalue(r, 0, 2), PQgetvalue(r, 0, 3),
                         arch, hv);
    if (postcopy && strcmp(PQgetvalue(r, 0, 4), "t") != 0)
        return xasprintf("host %s cannot do post-copy", host);
    if (atoll(PQgetvalue(r, 0, 5)) < atoll(vcpus))
        return xasprintf("host %s is full: %s vCPUs needed, %s free", host, vcpus, PQgetvalue(r, 0, 5));
    if (atoll(PQgetvalue(r, 0, 6)) < atoll(mem))
        return xasprintf("host %s is full: %s MiB of memory needed, %s MiB free", host, mem, PQgetvalue(r, 0, 6));
    if (!doc && atoll(PQgetvalue(r, 0, 7)) < atoll(disk))
        return xasprintf("host %s is full: %s GiB of disk needed, %s GiB free (disk_over_commit not asked)", host, disk,
                         PQgetvalue(r, 0, 7));
    return NULL;
}

/* The policy that matched the instance (ferry_claim's pol_* columns of r, from c0 on; none when
 * its name is NULL): its defaults go into in->eff for what the request left out; in->policy
 * names it; its objectives for a request that has none (ferry_claim says when they still need
 * their plan). */
static void apply_policy(intake *in, const PGresult *r, int c0)
{
    if (PQgetisnull(r, 0, c0))
        return;
    msg_request *e = &in->eff;
    in->policy = xstrdup(PQgetvalue(r, 0, c0));
    if (!e->post_copy_given && !PQgetisnull(r, 0, c0 + 1))
        e->post_copy = strcmp(PQgetvalue(r, 0, c0 + 1), "true") == 0;
    if (!(e->options_given & MSG_OPT_AUTO_CONVERGE) && !PQgetisnull(r, 0, c0 + 2))
        e->options.auto_converge = strcmp(PQgetvalue(r, 0, c0 + 2), "true") == 0;
    static const struct {
        int col;
        unsigned bit;
        size_t off;
    } ints[] = {
        {3, MSG_OPT_POSTCOPY_AFTER, offsetof(msg_options, postcopy_after_iterations)},
        {4, MSG_OPT_BANDWIDTH, offsetof(msg_options, bandwidth_mib_s)},
        {5, MSG_OPT_MAX_DOWNTIME, offsetof(msg_options, max_downtime_ms)},
        {6, MSG_OPT_COMPLETION_TIMEOUT, offsetof(msg_options, completion_timeout_s)},
        {10, MSG_OPT_PARALLEL, offsetof(msg_options, parallel_connections)},
        {11, MSG_OPT_XBZRLE_CACHE, offsetof(msg_options, xbzrle_cache_mib)},
    };
    for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
        if (!(e->options_given & ints[i].bit) && !PQgetisnull(r, 0, c0 + ints[i].col))
            *(int *)((char *)&e->options + ints[i].off) = atoi(PQgetvalue(r, 0, c0 + ints[i].col));
    if (!(e->options_given & MSG_OPT_COMPLETION_ACTION) && !PQgetisnull(r, 0, c0 + 9)) {
        int a = msg_completion_action_of(PQgetvalue(r, 0, c0 + 9));
        if (a >= 0)
            e->options.completion_action = a;
    }
    int has_obj = e->objectives.max_downtime_ms || e->objectives.deadline_s;
    if (!has_obj && (!PQgetisnull(r, 0, c0 + 7) || !PQgetisnull(r, 0, c0 + 8))) {
        e->objectives.max_downtime_ms = PQgetisnull(r, 0, c0 + 7) ? 0 : atoi(PQgetvalue(r, 0, c0 + 7));
        e->objectives.deadline_s = PQgetisnull(r, 0, c0 + 8) ? 0 : atoi(PQgetvalue(r, 0, c0 + 8));
    }
}

static int intake_tx(db_conn *db, void *arg, char **err)
{
    intake *in = arg;
    intake_clear(in);
    in->eff = *in->req;
    const msg_request *rq = &in->eff;
    /* one request at a time per request id, across replicas: a request refused before its
     * transaction (its objectives' plan) is recorded once */
    if (in->pre_refusal) {
        const char *idp[] = {rq->id};
        _cleanup_pq_ PGresult *dup = NULL;
        if (db_exec(db, &dup, "SELECT * FROM ferry_request_begin($1)", 1, idp) < 0)
            return -1;
        if (PQntuples(dup) == 1)
            return seen_before(in, dup, 0, 1, 2);
        return refuse(db, in, "%s", in->pre_refusal);
    }
    /* the request's lock, its instance with the source and the policy that matches it, and the
     * destination's claim: one server-side call (sql/018 says how and in which order it locks) */
    char age[24], subset[24], maxc[24];
    snprintf(age, sizeof(age), "%lld", (long long)in->cfg.heartbeat_max_age_s);
    snprintf(subset, sizeof(subset), "%lld", (long long)in->cfg.host_subset_size);
    snprintf(maxc, sizeof(maxc), "%lld", (long long)in->cfg.max_cluster);
    int doc = rq->disk_over_commit;
    const char *cp[] = {rq->id,
                        rq->instance,
                        msg_instance_kind_name(rq->instance_kind),
                        rq->host,
                        rq->post_copy ? "true" : "false",
                        rq->post_copy_given ? "true" : "false",
                        doc ? "true" : "false",
                        rq->objectives.max_downtime_ms || rq->objectives.deadline_s ? "true" : "false",
                        in->planned ? "true" : "false",
                        age,
                        subset,
                        maxc};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT * FROM ferry_claim(rq_id => $1, rq_instance => $2, rq_kind => $3, rq_host => $4,"
                " rq_post_copy => $5::boolean, rq_post_copy_given => $6::boolean, rq_disk_over_commit => $7::boolean,"
                " rq_has_objectives => $8::boolean, rq_planned => $9::boolean, cfg_heartbeat_max_age_s => $10::int,"
                " cfg_subset => $11::int, cfg_max_cluster => $12::int)",
                12, cp) < 0)
        return -1;
    claim_outcome co;
    if (PQntuples(r) != 1 || claim_outcome_of(PQgetvalue(r, 0, 0), &co) < 0) {
        *err = xasprintf("ferry_claim answered %d rows, outcome '%s'", PQntuples(r),
                         PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
        return -1;
    }
#define COL(name) claim_col(r, name)
    if (co == CLAIM_DUPLICATE)
        return seen_before(in, r, PQfnumber(r, "dup_outcome"), PQfnumber(r, "dup_migration"),
                           PQfnumber(r, "dup_reason"));
    if (co == CLAIM_NO_INSTANCE)
        return refuse(db, in, "no instance %s", rq->instance);
    if (co == CLAIM_AMBIGUOUS)
        return refuse(db, in, "instance name %s is ambiguous (%s instances): use its uuid or i-xxxxxxxx id",
                      rq->instance, COL("matches"));
    in->instance_uuid = xstrdup(COL("inst_uuid"));
    in->ec2_id = xstrdup(COL("inst_ec2_id"));
    in->source = xstrdup(COL("src_host"));
    const char *vcpus = COL("inst_vcpus"), *mem = COL("inst_memory_mb"), *disk = COL("inst_disk_gb");
    switch (co) {
    case CLAIM_NO_HOST:
        return refuse(db, in, "instance %s has no host", in->ec2_id);
    case CLAIM_MIGRATING:
        return refuse(db, in, "instance %s is already migrating", in->ec2_id);
    case CLAIM_NOT_RUNNING:
        return refuse(db, in, "instance %s is %s, not running", in->ec2_id, COL("inst_vm_state"));
    case CLAIM_SOURCE_UNKNOWN: /* hosts.name is a foreign key: not seen yet */
        return refuse(db, in, "the source host %s is unknown", in->source);
    default:
        break;
    }
    const char *arch = COL("src_arch"), *hv = COL("src_hypervisor");
    apply_policy(in, r, PQfnumber(r, "pol_name"));
    if (co == CLAIM_NEEDS_PLAN) {
        in->needs_plan = 1;
        return 0; /* nothing written: planned first, then taken again */
    }
    if (co == CLAIM_CLAIMED)
        in->dest = xstrdup(COL("dest_host"));
    /* the request as its policy completes it: what it cannot be is refused, and a destination
     * already claimed is given back first */
    _cleanup_free_ char *why = NULL;
    /* a post-copy switch the request itself asks at its timeout needs post-copy allowed; one
     * from a policy or the configuration falls back to an abort (the agent's rule) */
    if ((rq->options_given & MSG_OPT_COMPLETION_ACTION) && rq->options.completion_action == MSG_COMPLETION_POSTCOPY &&
        !rq->post_copy)
        why = xstrdup("options.completion_action postcopy needs post-copy: the request (or its policy) does not "
                      "allow post_copy");
    /* the transport settings as the request and its policy left them must combine */
    else if (msg_options_transport_check(&rq->options, "options", &why) == 0) {
        if (rq->options.xbzrle_cache_mib > 0 && (int64_t)rq->options.xbzrle_cache_mib >= atoll(mem))
            why = xasprintf("options.xbzrle_cache_mib %d: the cache must be smaller than %s's memory (%s MiB)",
                            rq->options.xbzrle_cache_mib, in->ec2_id, mem);
        else if (rq->options.parallel_connections > 1 && rq->post_copy)
            why = multifd_postcopy_refusal(in->source, COL("src_qemu"), rq->options.parallel_connections);
    }
    if (!why && !in->dest) {
        if (rq->host) {
            _cleanup_free_ char *no =
                why_not(db, rq->host, in->source, arch, hv, rq->post_copy, vcpus, mem, disk, doc, age);
            return refuse(db, in, "cannot migrate %s to %s: %s", in->ec2_id, rq->host,
                          no ? no : "it was claimed by another request");
        }
        return refuse(db, in,
                      "no host can take %s (%s vCPUs, %s MiB, %s GiB%s): none is enabled, alive, compatible and "
                      "free enough",
                      in->ec2_id, vcpus, mem, disk, rq->post_copy ? ", post-copy" : "");
    }
    /* the destination's QEMU too */
    if (!why && rq->options.parallel_connections > 1 && rq->post_copy)
        why = multifd_postcopy_refusal(in->dest, COL("dest_qemu"), rq->options.parallel_connections);
    if (why) {
        if (in->dest) {
            const char *up[] = {in->dest, vcpus, mem, disk};
            if (db_exec(
                    db, NULL,
                    "UPDATE hosts SET used_vcpus = used_vcpus - $2::int, used_memory_mb = used_memory_mb - $3::bigint,"
                    " used_disk_gb = used_disk_gb - $4::bigint WHERE name = $1",
                    4, up) < 0)
                return -1;
            free(in->dest);
            in->dest = NULL;
        }
        return refuse(db, in, "%s", why);
    }
    /* the concurrency limits: the source's counts read with the instance, the destination's
     * with its claim (both rows locked to the commit), the cluster's under its lock when
     * max_cluster is set. Over a limit the request is accepted, claimed, and waits in
     * `queued`, owned by nobody. */
    limits_view lv = {.out = atoll(COL("src_out")),
                      .in = atoll(COL("dest_in")),
                      .queued = atoll(COL("src_queued")) + atoll(COL("dest_queued")),
                      .total = atoll(COL("cluster_total"))};
#undef COL
    _cleanup_free_ char *wait_why = NULL;
    in->queued = !limits_fit(&in->cfg, &lv, in->source, in->dest, &wait_why);
    char after[16], bw[16], down[16], tmo[16];
    snprintf(after, sizeof(after), "%d", rq->options.postcopy_after_iterations);
    snprintf(bw, sizeof(bw), "%d", rq->options.bandwidth_mib_s);
    snprintf(down, sizeof(down), "%d", rq->options.max_downtime_ms);
    snprintf(tmo, sizeof(tmo), "%d", rq->options.completion_timeout_s);
    char lease[16], dl[24], odown[16], odead[16], par[16], xbz[16];
    snprintf(par, sizeof(par), "%d", rq->options.parallel_connections);
    snprintf(xbz, sizeof(xbz), "%d", rq->options.xbzrle_cache_mib);
    snprintf(odown, sizeof(odown), "%d", rq->objectives.max_downtime_ms);
    snprintf(odead, sizeof(odead), "%d", rq->objectives.deadline_s);
    snprintf(lease, sizeof(lease), "%lld", (long long)in->cfg.lease_s);
    mig_status st = in->queued ? MIG_QUEUED : MIG_SCHEDULED;
    snprintf(dl, sizeof(dl), "%lld", (long long)ledger_deadline_cfg(&in->cfg, st));
    _cleanup_free_ char *msg =
        xasprintf("%s from %s to %s%s%s%s%s%s", in->ec2_id, in->source, in->dest,
                  rq->host ? " (destination named)" : " (destination chosen)", in->policy ? "; policy " : "",
                  in->policy ? in->policy : "", in->queued ? "; waits: " : "", in->queued ? wait_why : "");
    const char *block = rq->block_migration == MSG_BLOCK_YES    ? "yes"
                        : rq->block_migration == MSG_BLOCK_AUTO ? "auto"
                                                                : "no";
    const char *mp[] = {rq->id,
                        in->instance_uuid,
                        in->source,
                        in->dest,
                        rq->host,
                        block,
                        doc ? "true" : "false",
                        rq->post_copy ? "true" : "false",
                        rq->options.auto_converge ? "true" : "false",
                        after,
                        bw,
                        down,
                        tmo,
                        in->s->name,
                        lease,
                        dl,
                        vcpus,
                        mem,
                        disk,
                        rq->objectives.max_downtime_ms ? odown : NULL,
                        rq->objectives.deadline_s ? odead : NULL,
                        in->plan,
                        in->policy,
                        msg_completion_action_str(rq->options.completion_action),
                        par,
                        xbz,
                        mig_status_str(st),
                        in->ec2_id,
                        msg};
    /* one statement: the migration row, scheduled under this replica or queued; both hosts hold
     * an allocation, the source's moved under the migration and the destination's new one under
     * the instance (inserted after the move: it reads the move's result, so the instance never
     * holds two at once); the instance marked migrating; the request recorded as accepted; the
     * status's event and its outbox row for ferry.events (as ledger_record writes them) */
    _cleanup_pq_ PGresult *mr = NULL;
    if (db_exec(
            db, &mr,
            "WITH m AS ("
            "  INSERT INTO migrations (request_id, instance_uuid, source_host, dest_host, dest_requested, block_migration,"
            "   disk_over_commit, post_copy, auto_converge, postcopy_after_iterations, bandwidth_mib_s, max_downtime_ms,"
            "   completion_timeout_s, status, owner, lease_expires_at, epoch, started_at, deadline_at,"
            "   objective_max_downtime_ms, objective_deadline_s, objective_plan, policy, completion_action,"
            "   parallel_connections, xbzrle_cache_mib)"
            "  SELECT $1::uuid, $2::uuid, $3, $4, $5, $6, $7::boolean, $8::boolean, $9::boolean, $10::int, $11::int,"
            "   $12::int, $13::int, $27, q.owner, q.lease, q.epoch, now(),"
            "   now() + make_interval(secs => $16::int), $20::int, $21::int, $22, $23, $24, $25::int, $26::int"
            "  FROM (SELECT CASE WHEN $27 = 'queued' THEN NULL ELSE $14 END AS owner,"
            "   CASE WHEN $27 = 'queued' THEN NULL ELSE now() + make_interval(secs => $15::int) END AS lease,"
            "   CASE WHEN $27 = 'queued' THEN 0 ELSE 1 END AS epoch) q"
            "  RETURNING id, request_id),"
            " src AS ("
            "  UPDATE allocations a SET consumer_type = 'migration', consumer_id = m.id::text, migration_id = m.id FROM m"
            "  WHERE a.consumer_type = 'instance' AND a.consumer_id = $2::text RETURNING a.id),"
            " dst AS ("
            "  INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)"
            "  SELECT 'instance', $2::text, $2::uuid, $4, $17::int, $18::bigint, $19::bigint"
            "  FROM (SELECT count(*) FROM src) moved RETURNING id),"
            " ins AS (UPDATE instances SET task_state = 'migrating', updated_at = now() WHERE uuid = $2::uuid RETURNING uuid),"
            " req AS (INSERT INTO processed_requests (request_id, outcome, migration_id) SELECT $1::uuid, 'accepted', id FROM m"
            "  RETURNING request_id),"
            " e AS (INSERT INTO migration_events (migration_id, origin, status, kind, message)"
            "  SELECT id, 'scheduler', $27, 'status', $29 FROM m RETURNING id, at),"
            " o AS (INSERT INTO outbox (routing_key, body)"
            "  SELECT 'migration.' || m.id || '.' || $27, json_strip_nulls(json_build_object("
            "   'migration', m.id, 'status', $27::text, 'request', m.request_id, 'instance', $2::uuid,"
            "   'instance_id', $28::text, 'source', $3::text, 'dest', $4::text, 'message', nullif($29, ''),"
            "   'origin', 'scheduler', 'scheduler', $14::text, 'event', e.id, 'at', e.at))::text"
            "  FROM m, e RETURNING id)"
            " SELECT m.id, (SELECT count(*) FROM dst), (SELECT count(*) FROM ins), (SELECT count(*) FROM req),"
            "  (SELECT count(*) FROM o) FROM m",
            29, mp) < 0)
        return -1;
    if (PQntuples(mr) != 1 || strcmp(PQgetvalue(mr, 0, 1), "1") != 0 || strcmp(PQgetvalue(mr, 0, 2), "1") != 0 ||
        strcmp(PQgetvalue(mr, 0, 3), "1") != 0 || strcmp(PQgetvalue(mr, 0, 4), "1") != 0) {
        *err = xasprintf(
            "the claim of %s wrote %s rows (migration, destination allocation, instance, request, event): expected one "
            "each",
            in->ec2_id, PQntuples(mr) == 1 ? "too few" : "no");
        return -1;
    }
    in->migration = atoll(PQgetvalue(mr, 0, 0));
    in->accepted = 1;
    return 0;
}

typedef struct later {
    sched *s;
    mq_conn *c;
    mq_delivery *d;
    int hold; /* kept here and taken again, not put back in the queue */
} later;

static void requeue_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    later *l = arg;
    if (l->hold)
        intake_on_request(l->c, l->d, l->s);
    else
        mq_reject(l->c, l->d, 1);
    free(l);
}

/* A request whose transaction failed for a reason that may pass (connected: whether the
 * database worker's connection was usable after it), taken again in 1 s (not at
 * once: a database that refuses now would spin). While the database cannot be reached the
 * delivery is kept and retried here: every return to the queue counts against its
 * delivery-limit policy, and an outage must not send good requests to ferry.dead. Any other
 * retryable failure (serialization, deadlock past tx_retries, resources) returns it to the
 * queue, where another replica may take it. */
static void retry_later(sched *s, mq_conn *c, mq_delivery *d, int connected)
{
    later *l = xcalloc(1, sizeof(*l));
    l->s = s;
    l->c = c;
    l->d = d;
    l->hold = !connected;
    struct timeval tv = {1, 0};
    event_base_once(s->base, -1, EV_TIMEOUT, requeue_later, l, &tv);
}

static void reply(sched *s, const char *reply_to, const char *corr, const char *text)
{
    if (!reply_to || !*reply_to)
        return;
    mq_props p = {.correlation_id = corr, .transient = 1};
    char *err = NULL;
    if (mq_publish(s->mq, "", reply_to, &p, text, strlen(text), NULL, NULL, &err) < 0) {
        log_warn(NULL, "could not reply to %s: %s", reply_to, err);
        free(err);
    }
}

void intake_reply(sched *s, mq_delivery *d, const char *type, const char *id, json_object *body)
{
    const mq_message *m = mq_delivery_message(d);
    _cleanup_free_ char *text = msg_build(type, id, body); /* takes body */
    reply(s, m->reply_to, m->correlation_id, text);
}

void intake_refuse_body(sched *s, mq_conn *c, mq_delivery *d, const msg_envelope *env, const char *sender,
                        const char *why)
{
    const char *type = msg_envelope_type(env);
    log_fields f = {.req = msg_envelope_id(env)};
    log_warn(&f, "%s from %s refused: %s", type, sender, why);
    json_object *rb = json_object_new_object();
    json_object_object_add(rb, "reason", json_object_new_string(why));
    _cleanup_free_ char *rt = xasprintf("%s.refused", type);
    intake_reply(s, d, rt, msg_envelope_id(env), rb);
    mq_dead_letter(c, d, why);
}

/* A request with the database worker: its delivery is finished in intake_done. */
typedef struct intake_job {
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    msg_request rq;
    intake in;
    int64_t us;    /* how long the transaction took */
    int retryable; /* after a failure: db_failure_retryable */
    int connected; /* the connection was usable after it */
    char *plan;    /* the objectives' plan (forecastop_plan_request), NULL without objectives */
} intake_job;

static int intake_work(db_conn *db, void *arg, char **err)
{
    intake_job *j = arg;
    int64_t t0 = mono_us();
    int rc = db_tx(db, "READ COMMITTED", intake_tx, &j->in, NULL, err);
    j->us = mono_us() - t0;
    j->retryable = rc < 0 && db_failure_retryable(db);
    j->connected = db_pg(db) && PQstatus(db_pg(db)) == CONNECTION_OK;
    return rc;
}

static void intake_job_free(intake_job *j)
{
    intake_clear(&j->in);
    free(j->plan);
    msg_request_free(&j->rq);
    msg_envelope_free(j->env);
    free(j);
}

static void intake_planned(void *arg, forecastop_plan *p);

/* On the loop, after the request's transaction: the answer, then the ack (after the commit). */
static void intake_done(void *arg, int txrc, char *err)
{
    intake_job *j = arg;
    sched *s = j->in.s;
    mq_conn *c = j->c;
    mq_delivery *d = j->d;
    const mq_message *m = mq_delivery_message(d);
    msg_request *rq = &j->rq;
    intake *in = &j->in;
    log_fields f = {.req = rq->id};
    s->claims++;
    s->claim_us += j->us;
    if (txrc < 0 && !j->retryable) {
        /* the database refuses this request (a constraint, a trigger, bad data): it would refuse
         * it on every try, so it is kept in ferry.dead with the reason instead of requeued */
        _cleanup_free_ char *why = xasprintf("cannot take request for %s: %s", rq->instance, err);
        log_error(&f, "%s; not retryable: dead-lettered", why);
        free(err);
        s->refused++;
        _cleanup_free_ char *r = msg_build_refused(rq->id, why);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, why);
        intake_job_free(j);
        return;
    }
    if (txrc < 0) {
        /* the database could not answer now (connection, serialization, shutdown): the request
         * goes back for another try (the broker's delivery-limit policy ends a request that
         * never gets through in ferry.dead) */
        log_error(&f, "could not take request for %s: %s; it will be retried in 1 s", rq->instance, err);
        free(err);
        retry_later(s, c, d, j->connected);
        intake_job_free(j);
        return;
    }
    free(err);
    if (in->needs_plan && s->stopping) {
        mq_reject(c, d, 1); /* nothing was written: another replica takes it */
        intake_job_free(j);
        return;
    }
    if (in->needs_plan) {
        /* the instance's policy gives objectives: planned as the request's own would be, with
         * the policy's options, then taken again */
        log_info(&f, "request for %s: policy %s gives objectives: planning them", rq->instance, in->policy);
        rq->objectives = in->eff.objectives;
        rq->options = in->eff.options;
        rq->post_copy = in->eff.post_copy;
        forecastop_plan_request(s, rq, intake_planned, j);
        return;
    }
    char mig_s[24];
    snprintf(mig_s, sizeof(mig_s), "%lld", (long long)in->migration);
    log_fields g = {.req = rq->id, .migration = in->migration ? mig_s : NULL, .instance = in->ec2_id};
    _cleanup_free_ char *r =
        in->accepted ? msg_build_accepted(rq->id, in->migration, in->dest) : msg_build_refused(rq->id, in->reason);
    if (!in->duplicate)
        *(in->accepted ? &s->accepted : &s->refused) += 1;
    if (in->duplicate)
        log_info(&g, "request %s seen before (%s): one effect only", rq->id, in->accepted ? "accepted" : "refused");
    else if (in->accepted)
        log_info(&g, "migration %lld of %s: %s -> %s %s", (long long)in->migration, in->ec2_id, in->source, in->dest,
                 in->queued ? "queued (a concurrency limit is reached)" : "scheduled");
    else
        log_warn(&g, "request for %s refused: %s", rq->instance, in->reason);
    reply(s, m->reply_to, m->correlation_id, r); /* m belongs to d: before the ack frees it */
    mq_ack(c, d);                                /* after the commit */
    if (!in->duplicate)
        outbox_flush(s);
    if (in->accepted && !in->duplicate && !s->stopping) {
        if (!in->queued)
            orch_start(s, in->migration);
    }
    intake_job_free(j);
}

/* The request's objectives are planned (forecastop_plan_request): its mode set by the plan, or
 * its refusal, then its transaction as any request's. */
static void intake_planned(void *arg, forecastop_plan *p)
{
    intake_job *j = arg;
    msg_request *rq = &j->rq;
    log_fields f = {.req = rq->id};
    free(j->plan);
    j->plan = TAKE_PTR(p->note);
    j->in.planned = 1;
    if (p->cancelled) {
        mq_reject(j->c, j->d, 1); /* another replica takes it */
        intake_job_free(j);
        return;
    }
    if (p->taken && !p->feasible) {
        j->in.pre_refusal = j->plan;
    } else if (p->taken) {
        /* the chosen mode; QEMU's downtime limit as the forecast assumed it */
        /* decided now: a policy's defaults do not undo them */
        if (p->mode == FORECAST_AUTO_CONVERGE) {
            rq->options.auto_converge = true;
            rq->options_given |= MSG_OPT_AUTO_CONVERGE;
        }
        if (p->mode == FORECAST_POSTCOPY) {
            rq->post_copy = true;
            rq->post_copy_given = true;
        }
        if (!(rq->options_given & MSG_OPT_MAX_DOWNTIME) && rq->objectives.max_downtime_ms) {
            rq->options.max_downtime_ms = (int)p->limit_ms;
            rq->options_given |= MSG_OPT_MAX_DOWNTIME;
        }
        j->in.plan = j->plan;
    } else {
        j->in.plan = j->plan; /* no forecast: the request as it asked, and why */
    }
    log_info(&f, "request for %s with objectives: %s", rq->instance, j->plan);
    dbq_submit(j->in.s->claims_dbq, intake_work, intake_done, j);
}

void intake_on_request(mq_conn *c, mq_delivery *d, void *arg)
{
    sched *s = arg;
    const mq_message *m = mq_delivery_message(d);
    log_fields f = {.req = m->message_id};
    msg_envelope *env = NULL;
    char *err = NULL;
    /* only operators and schedulers may ask (an agent's user cannot reach this queue through
     * the broker's permissions; this holds even where they were set wrong) */
    if (!trust_may_request(&s->cfg->trust, m->user_id, &err)) {
        log_warn(&f, "request refused: %s", err);
        s->invalid++;
        _cleanup_free_ char *r = msg_build_refused(NULL, err);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, err);
        free(err);
        return;
    }
    if (msg_parse(m->body, m->len, &env, &err) < 0 || msg_check_message_id(env, m->message_id, &err) < 0) {
        log_warn(&f, "request refused: %s", err);
        s->invalid++;
        _cleanup_free_ char *r = msg_build_refused(env ? msg_envelope_id(env) : NULL, err);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, err); /* kept, with its reason */
        msg_envelope_free(env);
        free(err);
        return;
    }
    const char *type = msg_envelope_type(env);
    if (strcmp(type, "migration.abort") == 0 || strcmp(type, "migration.force_complete") == 0) {
        intake_operator(s, c, d, env); /* takes env */
        return;
    }
    if (strcmp(type, "migration.resolve") == 0) {
        reconcile_resolve(s, c, d, env); /* takes env */
        return;
    }
    if (strcmp(type, "instance.forecast") == 0) {
        forecastop_on_request(s, c, d, env); /* takes env */
        return;
    }
    if (strcmp(type, "policy.set") == 0 || strcmp(type, "policy.delete") == 0 || strcmp(type, "policy.list") == 0) {
        policyop_on_request(s, c, d, env); /* takes env */
        return;
    }
    if (strncmp(type, "drain.", 6) == 0 && (strcmp(type + 6, "start") == 0 || strcmp(type + 6, "cancel") == 0 ||
                                            strcmp(type + 6, "list") == 0 || strcmp(type + 6, "show") == 0)) {
        drainop_on_request(s, c, d, env); /* takes env */
        return;
    }
    msg_request_defaults defs;
    msg_request_defaults_init(&defs);
    defs.postcopy_after_iterations = (int)s->cfg->scheduler.postcopy_after_iterations;
    defs.bandwidth_mib_s = (int)s->cfg->scheduler.bandwidth_mib_s;
    defs.max_downtime_ms = (int)s->cfg->scheduler.max_downtime_ms;
    defs.completion_timeout_s = (int)s->cfg->scheduler.completion_timeout_s;
    defs.completion_action = s->cfg->scheduler.completion_action;
    defs.parallel_connections = (int)s->cfg->scheduler.parallel_connections;
    defs.xbzrle_cache_mib = (int)s->cfg->scheduler.xbzrle_cache_mib;
    msg_request rq = {0};
    f.req = msg_envelope_id(env);
    if (msg_request_parse(env, &defs, &rq, &err) < 0) {
        log_warn(&f, "request refused: %s", err);
        s->invalid++;
        _cleanup_free_ char *r = msg_build_refused(msg_envelope_id(env), err);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, err);
        msg_envelope_free(env);
        free(err);
        return;
    }
    intake_job *j = xcalloc(1, sizeof(*j));
    j->c = c;
    j->d = d;
    j->env = env;
    j->rq = rq;
    j->in.s = s;
    j->in.cfg = s->cfg->scheduler;
    j->in.req = &j->rq;
    j->retryable = 1; /* as when the worker cannot connect */
    if (rq.objectives.max_downtime_ms || rq.objectives.deadline_s) {
        /* objectives: the forecast plans the mode first, or refuses the request with why */
        forecastop_plan_request(s, &j->rq, intake_planned, j);
        return;
    }
    dbq_submit(s->claims_dbq, intake_work, intake_done, j); /* acked in intake_done, after the commit */
}

/* ---- abort and force-complete ---------------------------------------------------------------- */

typedef struct opreq {
    sched *s;
    int64_t id;
    int abort; /* 1 abort, 0 force-complete */
    const char *req;
    /* results */
    char *reason; /* refused: why */
    mig_status status;
    char owner[256];
    int ended; /* a queued migration cancelled here */
} opreq;

static int operator_tx(db_conn *db, void *arg, char **err)
{
    opreq *q = arg;
    free(q->reason);
    q->reason = NULL;
    q->ended = 0;
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)q->id);
    const char *p[] = {ids};
    _cleanup_pq_ PGresult *r = NULL;
    if (db_exec(db, &r,
                "SELECT status, postcopy_active, coalesce(owner, ''), instance_uuid::text, coalesce(dest_host, '')"
                " FROM migrations WHERE id = $1::bigint FOR UPDATE",
                1, p) < 0)
        return -1;
    if (PQntuples(r) == 0) {
        q->reason = xasprintf("no migration %lld", (long long)q->id);
        return 0;
    }
    if (mig_status_from_str(PQgetvalue(r, 0, 0), &q->status) < 0) {
        *err = xasprintf("migration %lld has an unknown status '%s'", (long long)q->id, PQgetvalue(r, 0, 0));
        return -1;
    }
    strlcpy_f(q->owner, PQgetvalue(r, 0, 2), sizeof(q->owner));
    const char *st = mig_status_str(q->status);
    int postcopy = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    if (mig_status_is_final(q->status)) {
        q->reason = xasprintf("migration %lld has already ended: %s", (long long)q->id, st);
        return 0;
    }
    _cleanup_free_ char *note = xasprintf("requested by the operator (request %s)", q->req);
    if (q->abort) {
        if (q->status == MIG_COMPLETING) {
            q->reason =
                xasprintf("migration %lld is completing: the guest already runs on the destination", (long long)q->id);
            return 0;
        }
        if (postcopy) {
            q->reason =
                xasprintf("migration %lld switched to post-copy: it can only go forward (force-complete or wait)",
                          (long long)q->id);
            return 0;
        }
        if (q->status == MIG_QUEUED) {
            /* nobody drives a queued migration: cancelled here and now (the operator's request
             * recorded first, then the status) */
            if (ledger_record(db, q->s->name, q->id, "operator", NULL, MIG_QUEUED, "abort", note) < 0 ||
                ledger_cancel_queued(q->s, db, ids, PQgetvalue(r, 0, 3), PQgetvalue(r, 0, 4),
                                     "cancelled: aborted by the operator while queued") < 0)
                return -1;
            q->ended = 1;
            return 0;
        }
        if (db_exec(db, NULL, "UPDATE migrations SET abort_requested = true WHERE id = $1::bigint", 1, p) < 0)
            return -1;
        return ledger_record(db, q->s->name, q->id, "operator", NULL, q->status, "abort", note);
    }
    if (q->status != MIG_RUNNING) {
        q->reason =
            xasprintf("migration %lld is %s: force-complete applies to a running migration", (long long)q->id, st);
        return 0;
    }
    if (db_exec(db, NULL, "UPDATE migrations SET force_complete_requested = true WHERE id = $1::bigint", 1, p) < 0)
        return -1;
    return ledger_record(db, q->s->name, q->id, "operator", NULL, q->status, "force_complete", note);
}

/* An operator's request with the database worker; env (taken from the caller) is freed with it. */
typedef struct opjob {
    mq_conn *c;
    mq_delivery *d;
    msg_envelope *env;
    opreq q;
    int retryable; /* after a failure: db_failure_retryable */
    int connected; /* the connection was usable after it */
} opjob;

static int operator_work(db_conn *db, void *arg, char **err)
{
    opjob *j = arg;
    int rc = db_tx(db, "READ COMMITTED", operator_tx, &j->q, NULL, err);
    j->retryable = rc < 0 && db_failure_retryable(db);
    j->connected = db_pg(db) && PQstatus(db_pg(db)) == CONNECTION_OK;
    return rc;
}

static void opjob_free(opjob *j)
{
    free(j->q.reason);
    msg_envelope_free(j->env);
    free(j);
}

/* On the loop, after the request's transaction: the answer, the ack, then what it starts. */
static void operator_done(void *arg, int rc, char *err)
{
    opjob *j = arg;
    opreq *q = &j->q;
    sched *s = q->s;
    mq_conn *c = j->c;
    mq_delivery *d = j->d;
    msg_envelope *env = j->env;
    const mq_message *m = mq_delivery_message(d);
    const char *type = msg_envelope_type(env);
    char ids[24];
    snprintf(ids, sizeof(ids), "%lld", (long long)q->id);
    log_fields f = {.req = msg_envelope_id(env), .migration = ids};
    if (rc < 0 && !j->retryable) {
        _cleanup_free_ char *why = xasprintf("cannot take %s of migration %s: %s", type, ids, err);
        log_error(&f, "%s; not retryable: dead-lettered", why);
        free(err);
        json_object *rb = json_object_new_object();
        json_object_object_add(rb, "migration", json_object_new_int64(q->id));
        json_object_object_add(rb, "reason", json_object_new_string(why));
        _cleanup_free_ char *rt = xasprintf("%s.refused", type);
        _cleanup_free_ char *r = msg_build(rt, msg_envelope_id(env), rb);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, why);
        opjob_free(j);
        return;
    }
    if (rc < 0) {
        log_error(&f, "could not take %s of migration %s: %s; it will be retried in 1 s", type, ids, err);
        free(err);
        retry_later(s, c, d, j->connected);
        opjob_free(j);
        return;
    }
    free(err);
    json_object *body = json_object_new_object();
    json_object_object_add(body, "migration", json_object_new_int64(q->id));
    _cleanup_free_ char *rtype = xasprintf("%s.%s", type, q->reason ? "refused" : "accepted");
    if (q->reason) {
        log_warn(&f, "%s of migration %s refused: %s", type, ids, q->reason);
        json_object_object_add(body, "reason", json_object_new_string(q->reason));
    } else {
        log_info(&f, "%s of migration %s accepted (it was %s%s%s)", type, ids, mig_status_str(q->status),
                 *q->owner ? ", driven by " : "", q->owner);
        json_object_object_add(body, "status",
                               json_object_new_string(mig_status_str(q->ended ? MIG_CANCELLED : q->status)));
    }
    _cleanup_free_ char *r = msg_build(rtype, msg_envelope_id(env), body);
    reply(s, m->reply_to, m->correlation_id, r);
    mq_ack(c, d);
    if (q->ended) {
        outbox_flush(s);
        queue_dispatch_soon(s);
    } else if (!q->reason) {
        orch_poke(s, q->id); /* when this replica drives it; otherwise its owner's next tick */
    }
    opjob_free(j);
}

void intake_operator(sched *s, mq_conn *c, mq_delivery *d, msg_envelope *env)
{
    const mq_message *m = mq_delivery_message(d);
    const char *type = msg_envelope_type(env);
    json_object *b = msg_envelope_body(env), *v = NULL;
    log_fields f = {.req = msg_envelope_id(env)};
    if (!json_object_object_get_ex(b, "migration", &v) || !json_object_is_type(v, json_type_int) ||
        json_object_get_int64(v) <= 0) {
        _cleanup_free_ char *why = xasprintf("%s: body.migration must be a positive integer (the migration id)", type);
        log_warn(&f, "request refused: %s", why);
        _cleanup_free_ char *r = msg_build_refused(msg_envelope_id(env), why);
        reply(s, m->reply_to, m->correlation_id, r);
        mq_dead_letter(c, d, why);
        msg_envelope_free(env);
        return;
    }
    opjob *j = xcalloc(1, sizeof(*j));
    j->c = c;
    j->d = d;
    j->env = env;
    j->q.s = s;
    j->q.id = json_object_get_int64(v);
    j->q.abort = strcmp(type, "migration.abort") == 0;
    j->q.req = msg_envelope_id(env);
    j->retryable = 1;
    dbq_submit(s->dbq, operator_work, operator_done, j);
}
