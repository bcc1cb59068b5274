-- ferry schema, version 12: host drains (issue #18), and one place for a receipt's downtime entry
-- (at the end). A drain empties a host of its running guests
-- for maintenance. Its items are the guests it planned, in the order the planner chose; each is
-- moved by an ordinary migration request (intake.c: policies, objectives, limits as for any
-- request) that the drain publishes under a request id fixed in the item first, so a request
-- published again after a failover has one effect (processed_requests). The replica holding the
-- lease of the job 'drainer' (replica_leases) drives every drain; a drain is 'running' until each
-- item has ended, then 'completed' (every planned guest moved), 'failed' (some did not) or, after
-- a cancel ('cancelling' while migrations already started end), 'cancelled'. plan: the plan at the
-- start in words; replan: the last plan of what was left; receipt: written at the end (the deadline met or not, each guest's
-- outcome).
ALTER TABLE replica_leases DROP CONSTRAINT replica_leases_job_check;
ALTER TABLE replica_leases ADD CONSTRAINT replica_leases_job_check CHECK (job IN ('reconciler', 'drainer'));

CREATE TABLE drains (
    id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host                   text NOT NULL REFERENCES hosts (name),
    status                 text NOT NULL DEFAULT 'running'
                           CHECK (status IN ('running', 'cancelling', 'completed', 'failed', 'cancelled')),
    deadline_s             integer CHECK (deadline_s BETWEEN 1 AND 604800),
    bandwidth_budget_mib_s integer CHECK (bandwidth_budget_mib_s BETWEEN 1 AND 100000),
    link_mib_s             integer NOT NULL CHECK (link_mib_s >= 1),
    link_from              text NOT NULL,
    parallel               integer NOT NULL CHECK (parallel BETWEEN 1 AND 64),
    requested_by           text NOT NULL DEFAULT '',
    request_id             uuid UNIQUE,
    created_at             timestamptz NOT NULL DEFAULT now(),
    deadline_at            timestamptz,
    predicted_s            double precision,
    predicted_finish_at    timestamptz,
    cancel_requested_by    text,
    finished_at            timestamptz,
    plan                   text,
    replan                 text,
    receipt                json
);
CREATE UNIQUE INDEX drains_one_per_host ON drains (host) WHERE status IN ('running', 'cancelling');
CREATE INDEX drains_active ON drains (id) WHERE status IN ('running', 'cancelling');

CREATE TABLE drain_items (
    drain_id      bigint NOT NULL REFERENCES drains (id) ON DELETE CASCADE,
    instance_uuid uuid NOT NULL,
    name          text NOT NULL,
    ec2_id        text NOT NULL,
    position      integer NOT NULL,
    memory_mib    bigint NOT NULL CHECK (memory_mib >= 0),
    dirty_mib_s   bigint CHECK (dirty_mib_s >= 0),
    mode          text NOT NULL CHECK (mode IN ('pre-copy', 'auto-converge', 'post-copy')),
    predicted_ms  bigint NOT NULL CHECK (predicted_ms >= 0),
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'requested', 'migrating', 'moved', 'failed', 'cancelled', 'skipped')),
    attempts      integer NOT NULL DEFAULT 0,
    request_id    uuid,
    requested_at  timestamptz,
    migration_id  bigint REFERENCES migrations (id),
    reason        text,
    ended_at      timestamptz,
    PRIMARY KEY (drain_id, instance_uuid)
);
CREATE INDEX drain_items_migration ON drain_items (migration_id) WHERE migration_id IS NOT NULL;

-- A receipt's max_downtime_ms entry (issue #18; orchtx.c at a migration's end, orchevent.c when
-- the downtime comes after it): the objective, the measured pause when known, and whether it was
-- met — only a completed migration meets it; unknown (no 'met') while a completed migration's
-- downtime is not known yet. NULL without the objective.
CREATE FUNCTION ferry_receipt_downtime(objective integer, measured integer, status text) RETURNS json
    IMMUTABLE LANGUAGE sql AS $$
    SELECT CASE WHEN objective IS NOT NULL THEN json_strip_nulls(json_build_object('objective', objective,
        'measured_ms', measured,
        'met', CASE WHEN status = 'completed' AND measured IS NULL THEN NULL
                    ELSE status = 'completed' AND measured IS NOT NULL AND measured <= objective END)) END
$$;
