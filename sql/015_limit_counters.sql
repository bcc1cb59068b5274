-- ferry schema, version 15: the concurrency limits decided from counters on the host rows a
-- claim already locks (issue #20), not from a count of the migrations under one global lock.
--
-- migrations_out / migrations_in: the host's active migrations (scheduled, preparing, running,
-- completing) from it / to it: what max_outgoing_per_source and max_incoming_per_dest
-- limit. queued_out / queued_in: its migrations waiting in `queued` (a new request does not
-- overtake them: first come, first served). Kept by the trigger that already keeps
-- migrations_active (schema 5), which now also sees a change of status between classes
-- (queued, active, ended); a change within a class (scheduled -> preparing -> running) does
-- not touch the hosts. A host's counters change only under its row lock, which a claim holds
-- for both its hosts (the source's read with the instance, the destination's with its
-- claim), so the decision reads them without any other lock.
ALTER TABLE hosts
    ADD COLUMN migrations_out integer NOT NULL DEFAULT 0 CHECK (migrations_out >= 0),
    ADD COLUMN migrations_in integer NOT NULL DEFAULT 0 CHECK (migrations_in >= 0),
    ADD COLUMN queued_out integer NOT NULL DEFAULT 0 CHECK (queued_out >= 0),
    ADD COLUMN queued_in integer NOT NULL DEFAULT 0 CHECK (queued_in >= 0);

-- 'a' active, 'q' queued, NULL ended
CREATE FUNCTION ferry_limit_class(status text) RETURNS text IMMUTABLE LANGUAGE sql AS $$
    SELECT CASE WHEN status IN ('scheduled', 'preparing', 'running', 'completing') THEN 'a'
                WHEN status = 'queued' THEN 'q' END
$$;

-- a host's counters: what the old row counted goes, what the new one counts comes ((name =
-- NULL) is NULL: coalesce makes it false)
CREATE OR REPLACE FUNCTION hosts_count_migrations() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    os text; od text; oa int := 0; ocl text := '';
    ns text; nd text; na int := 0; ncl text := '';
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        os := OLD.source_host; od := OLD.dest_host; ocl := coalesce(ferry_limit_class(OLD.status), '');
        oa := (OLD.finished_at IS NULL)::int;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        ns := NEW.source_host; nd := NEW.dest_host; ncl := coalesce(ferry_limit_class(NEW.status), '');
        na := (NEW.finished_at IS NULL)::int;
    END IF;
    -- one statement for the old and the new row's hosts
    UPDATE hosts SET
        migrations_active = migrations_active
            - oa * (coalesce(name = os, false)::int + coalesce(name = od, false)::int)
            + na * (coalesce(name = ns, false)::int + coalesce(name = nd, false)::int),
        migrations_out = migrations_out - coalesce(name = os AND ocl = 'a', false)::int
                                        + coalesce(name = ns AND ncl = 'a', false)::int,
        migrations_in = migrations_in - coalesce(name = od AND ocl = 'a', false)::int
                                      + coalesce(name = nd AND ncl = 'a', false)::int,
        queued_out = queued_out - coalesce(name = os AND ocl = 'q', false)::int
                                + coalesce(name = ns AND ncl = 'q', false)::int,
        queued_in = queued_in - coalesce(name = od AND ocl = 'q', false)::int
                              + coalesce(name = nd AND ncl = 'q', false)::int
    WHERE name IN (os, od, ns, nd);
    RETURN NULL;
END
$$;

DROP TRIGGER migrations_count_update ON migrations;
CREATE TRIGGER migrations_count_update AFTER UPDATE OF source_host, dest_host, finished_at, status ON migrations
    FOR EACH ROW
    WHEN (OLD.source_host IS DISTINCT FROM NEW.source_host OR OLD.dest_host IS DISTINCT FROM NEW.dest_host
          OR (OLD.finished_at IS NULL) <> (NEW.finished_at IS NULL)
          OR ferry_limit_class(OLD.status) IS DISTINCT FROM ferry_limit_class(NEW.status))
    EXECUTE FUNCTION hosts_count_migrations();

UPDATE hosts h SET
    migrations_out = (SELECT count(*) FROM migrations m WHERE m.source_host = h.name AND ferry_limit_class(m.status) = 'a'),
    migrations_in = (SELECT count(*) FROM migrations m WHERE m.dest_host = h.name AND ferry_limit_class(m.status) = 'a'),
    queued_out = (SELECT count(*) FROM migrations m WHERE m.source_host = h.name AND m.status = 'queued'),
    queued_in = (SELECT count(*) FROM migrations m WHERE m.dest_host = h.name AND m.status = 'queued');

-- max_cluster (when set): the cluster's active migrations, counted under the one lock every
-- such decision takes (held to the commit). A function, so the count is read after the lock
-- is granted (a statement's own snapshot is older than a lock it waited for).
CREATE FUNCTION ferry_cluster_active_locked() RETURNS bigint VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(7262, 1);
    RETURN (SELECT count(*) FROM migrations WHERE status IN ('scheduled', 'preparing', 'running', 'completing'));
END
$$;
CREATE INDEX migrations_limit_active ON migrations (id) WHERE status IN ('scheduled', 'preparing', 'running', 'completing');

-- one request at a time per request id, across replicas, and what an earlier delivery of it
-- decided (no row: none yet). A function, so the read follows the lock (see above).
CREATE FUNCTION ferry_request_begin(request text, OUT outcome text, OUT migration_id bigint, OUT reason text)
    RETURNS SETOF record VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended(request, 7262));
    RETURN QUERY SELECT p.outcome, p.migration_id, coalesce(p.reason, '') FROM processed_requests p
                 WHERE p.request_id = request::uuid;
END
$$;
