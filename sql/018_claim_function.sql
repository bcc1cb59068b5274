-- ferry schema, version 18: a claim's reads and its claim in one server-side call (issue #20).
--
-- An accepted request was BEGIN + 4 statements + COMMIT (the request's lock, the instance, the
-- claim, then one statement writing the migration and everything with it). ferry_claim does the
-- first three, so an accepted request is BEGIN, ferry_claim, the write, COMMIT: the decision
-- against the concurrency limits stays in the scheduler, between the two (docs/DESIGN.md
-- "Flows" 2).

-- Whether host h can take an instance of vcpus/memory_mb/disk_gb from src now: enabled, alive
-- (a heartbeat within max_age_s), not the source, the same architecture and hypervisor,
-- post-copy when asked, and room (disk only without disk_over_commit). A SQL function the
-- planner inlines: the candidates' filter in one place.
CREATE FUNCTION ferry_host_fits(h hosts, src text, arch text, hypervisor text, postcopy boolean, vcpus int,
                                memory_mb bigint, disk_gb bigint, disk_over_commit boolean, max_age_s int)
    RETURNS boolean STABLE LANGUAGE sql AS $$
    SELECT h.state = 'enabled' AND h.last_heartbeat > now() - make_interval(secs => max_age_s)
       AND h.name <> src AND h.arch = arch AND h.hypervisor = hypervisor AND (NOT postcopy OR h.postcopy)
       AND h.used_vcpus + vcpus <= h.capacity_vcpus AND h.used_memory_mb + memory_mb <= h.capacity_memory_mb
       AND (disk_over_commit OR h.used_disk_gb + disk_gb <= h.capacity_disk_gb)
$$;

-- ferry_claim's rules are the ones the scheduler applied statement by statement before:
--   * one request at a time per request id, across replicas (ferry_request_begin): a request
--     decided before is answered as it was ('duplicate' and that outcome);
--   * the instance by uuid, ec2 id or name (rq_kind), not deleted; none or several: nothing
--     else is read ('no_instance', 'ambiguous' with their count);
--   * the instance and its host (the source) locked, in the order a heartbeat of that host
--     takes them (host, then instance: the two never wait on each other; claims lock hosts in
--     one order, source then destination, so the migrations' counting trigger never waits on a
--     claim that waits on it), with the policy that matches the instance (highest priority
--     first) and the source's limit counters. Rows are locked FOR NO KEY UPDATE, what an UPDATE
--     takes: it does not block (nor is it skipped for) the key-share locks of foreign-key
--     checks, e.g. another claim's rows that name the host;
--   * not claimed, with a code the scheduler words: 'no_host', 'migrating', 'not_running',
--     'source_unknown', and 'needs_plan' when the policy gives objectives to a request that
--     has none and was not planned (nothing is written: the scheduler plans and asks again);
--   * the claim: the destination's resources taken by a conditional update (the check: racing
--     replicas get one winner), among the enabled, alive, compatible hosts with room, best
--     first (free memory, then fewest active migrations): with cfg_subset > 1 first one at
--     random among that many best no other claim holds, then the best no other claim holds
--     (SKIP LOCKED), then the best one waited for; a named destination (rq_host) only waited
--     for. 'claimed' with the destination's counters, else 'no_destination'. Two claims whose
--     sources are each other's only candidates can wait on each other: PostgreSQL finds the
--     deadlock and the scheduler retries the transaction it aborted (40P01);
--   * with cfg_max_cluster > 0, the cluster's active migrations counted under the cluster's
--     lock (ferry_cluster_active_locked, taken last: after the host rows).
-- Post-copy as the request and its policy leave it (rq_post_copy_given: the request said so)
-- filters the destinations; the scheduler applies the rest of the policy. Over a limit, a
-- refusal after the claim, or a database error: the scheduler's transaction decides what stands.
CREATE FUNCTION ferry_claim(
    rq_id text, rq_instance text, rq_kind text, rq_host text, rq_post_copy boolean, rq_post_copy_given boolean,
    rq_disk_over_commit boolean, rq_has_objectives boolean, rq_planned boolean,
    cfg_heartbeat_max_age_s int, cfg_subset int, cfg_max_cluster int,
    OUT claim_outcome text, OUT matches int, OUT dup_outcome text, OUT dup_migration bigint, OUT dup_reason text,
    OUT inst_uuid text, OUT inst_ec2_id text, OUT src_host text, OUT inst_vm_state text, OUT inst_vcpus int,
    OUT inst_memory_mb bigint, OUT inst_disk_gb bigint, OUT src_arch text, OUT src_hypervisor text,
    OUT src_qemu text, OUT src_out int, OUT src_queued int,
    OUT pol_name text, OUT pol_post_copy text, OUT pol_auto_converge text, OUT pol_postcopy_after int,
    OUT pol_bandwidth int, OUT pol_max_downtime int, OUT pol_completion_timeout int,
    OUT pol_objective_max_downtime int, OUT pol_objective_deadline int, OUT pol_completion_action text,
    OUT pol_parallel int, OUT pol_xbzrle int,
    OUT dest_host text, OUT dest_in int, OUT dest_queued int, OUT dest_qemu text, OUT cluster_total bigint)
    VOLATILE LANGUAGE plpgsql AS $$
DECLARE
    u uuid;
    task text;
    cand text;
    want_postcopy boolean;
    pol_has_objectives boolean;
BEGIN
    SELECT b.outcome, b.migration_id, b.reason INTO dup_outcome, dup_migration, dup_reason
    FROM ferry_request_begin(rq_id) b;
    IF FOUND THEN
        claim_outcome := 'duplicate';
        RETURN;
    END IF;

    -- which instance: by its key, not yet locked (the locking read below is by uuid)
    IF rq_kind = 'uuid' THEN
        SELECT count(*), (array_agg(i.uuid))[1] INTO matches, u FROM instances i
        WHERE i.uuid = rq_instance::uuid AND i.vm_state <> 'deleted';
    ELSIF rq_kind = 'ec2' THEN
        SELECT count(*), (array_agg(i.uuid))[1] INTO matches, u FROM instances i
        WHERE i.ec2_id = rq_instance AND i.vm_state <> 'deleted';
    ELSE
        SELECT count(*), (array_agg(i.uuid))[1] INTO matches, u FROM instances i
        WHERE i.name = rq_instance AND i.vm_state <> 'deleted';
    END IF;
    IF matches <> 1 THEN
        claim_outcome := CASE WHEN matches = 0 THEN 'no_instance' ELSE 'ambiguous' END;
        RETURN;
    END IF;

    SELECT i.uuid::text, i.ec2_id, i.host, i.vm_state, i.task_state, i.vcpus, i.memory_mb, i.disk_gb,
           h.arch, h.hypervisor, h.qemu_version, h.migrations_out, h.queued_out,
           p.name, p.post_copy::text, p.auto_converge::text, p.postcopy_after_iterations, p.bandwidth_mib_s,
           p.max_downtime_ms, p.completion_timeout_s, p.objective_max_downtime_ms, p.objective_deadline_s,
           p.completion_action, p.parallel_connections, p.xbzrle_cache_mib, p.post_copy
    INTO inst_uuid, inst_ec2_id, src_host, inst_vm_state, task, inst_vcpus, inst_memory_mb, inst_disk_gb,
         src_arch, src_hypervisor, src_qemu, src_out, src_queued,
         pol_name, pol_post_copy, pol_auto_converge, pol_postcopy_after, pol_bandwidth,
         pol_max_downtime, pol_completion_timeout, pol_objective_max_downtime, pol_objective_deadline,
         pol_completion_action, pol_parallel, pol_xbzrle, want_postcopy
    FROM hosts h JOIN instances i ON i.host = h.name
    LEFT JOIN LATERAL (SELECT * FROM migration_policies p WHERE (p.project IS NULL OR p.project = i.project)
        AND (p.instance_glob IS NULL OR i.name LIKE ferry_glob_like(p.instance_glob))
        AND (p.host_glob IS NULL OR h.name LIKE ferry_glob_like(p.host_glob))
        AND (p.host_group IS NULL OR p.host_group = h.host_group)
        ORDER BY p.priority DESC, p.name LIMIT 1) p ON true
    WHERE i.uuid = u AND i.vm_state <> 'deleted'
    FOR NO KEY UPDATE OF h, i;
    IF NOT FOUND THEN
        -- without a host, or (not seen yet) its host row: the instance alone, for the refusal
        SELECT i.uuid::text, i.ec2_id, i.host, i.vm_state, i.task_state, i.vcpus, i.memory_mb, i.disk_gb
        INTO inst_uuid, inst_ec2_id, src_host, inst_vm_state, task, inst_vcpus, inst_memory_mb, inst_disk_gb
        FROM instances i WHERE i.uuid = u AND i.vm_state <> 'deleted' FOR NO KEY UPDATE;
        claim_outcome := CASE WHEN NOT FOUND THEN 'no_instance' WHEN src_host IS NULL THEN 'no_host'
                              WHEN task = 'migrating' THEN 'migrating' WHEN inst_vm_state <> 'running' THEN 'not_running'
                              ELSE 'source_unknown' END;
        matches := CASE WHEN FOUND THEN 1 ELSE 0 END;
        RETURN;
    END IF;
    IF task = 'migrating' THEN
        claim_outcome := 'migrating';
        RETURN;
    END IF;
    IF inst_vm_state <> 'running' THEN
        claim_outcome := 'not_running';
        RETURN;
    END IF;
    pol_has_objectives := pol_objective_max_downtime IS NOT NULL OR pol_objective_deadline IS NOT NULL;
    IF pol_name IS NOT NULL AND pol_has_objectives AND NOT rq_has_objectives AND NOT rq_planned THEN
        claim_outcome := 'needs_plan';
        RETURN;
    END IF;
    want_postcopy := CASE WHEN rq_post_copy_given THEN rq_post_copy ELSE coalesce(want_postcopy, rq_post_copy) END;

    -- the claim: a candidate locked (the lock rechecks that it still fits, after a wait too:
    -- one that no longer does is passed over), then its resources taken
    IF rq_host IS NULL AND cfg_subset > 1 THEN
        SELECT h.name INTO cand FROM hosts h
        WHERE h.name IN (SELECT x.name FROM hosts x
                         WHERE ferry_host_fits(x, src_host, src_arch, src_hypervisor, want_postcopy, inst_vcpus,
                                               inst_memory_mb, inst_disk_gb, rq_disk_over_commit, cfg_heartbeat_max_age_s)
                         ORDER BY x.capacity_memory_mb - x.used_memory_mb DESC, x.migrations_active, x.name
                         LIMIT cfg_subset)
          AND ferry_host_fits(h, src_host, src_arch, src_hypervisor, want_postcopy, inst_vcpus, inst_memory_mb,
                              inst_disk_gb, rq_disk_over_commit, cfg_heartbeat_max_age_s)
        ORDER BY random() LIMIT 1 FOR NO KEY UPDATE OF h SKIP LOCKED;
    END IF;
    IF cand IS NULL AND rq_host IS NULL THEN
        SELECT h.name INTO cand FROM hosts h
        WHERE ferry_host_fits(h, src_host, src_arch, src_hypervisor, want_postcopy, inst_vcpus, inst_memory_mb,
                              inst_disk_gb, rq_disk_over_commit, cfg_heartbeat_max_age_s)
        ORDER BY h.capacity_memory_mb - h.used_memory_mb DESC, h.migrations_active, h.name
        LIMIT 1 FOR NO KEY UPDATE OF h SKIP LOCKED;
    END IF;
    IF cand IS NULL THEN
        SELECT h.name INTO cand FROM hosts h
        WHERE ferry_host_fits(h, src_host, src_arch, src_hypervisor, want_postcopy, inst_vcpus, inst_memory_mb,
                              inst_disk_gb, rq_disk_over_commit, cfg_heartbeat_max_age_s)
          AND (rq_host IS NULL OR h.name = rq_host)
        ORDER BY h.capacity_memory_mb - h.used_memory_mb DESC, h.migrations_active, h.name
        LIMIT 1 FOR NO KEY UPDATE OF h;
    END IF;
    IF cand IS NOT NULL THEN
        UPDATE hosts h SET used_vcpus = h.used_vcpus + inst_vcpus, used_memory_mb = h.used_memory_mb + inst_memory_mb,
            used_disk_gb = h.used_disk_gb + inst_disk_gb
        WHERE h.name = cand AND ferry_host_fits(h, src_host, src_arch, src_hypervisor, want_postcopy, inst_vcpus,
                                                inst_memory_mb, inst_disk_gb, rq_disk_over_commit, cfg_heartbeat_max_age_s)
        RETURNING h.name, h.migrations_in, h.queued_in, h.qemu_version INTO dest_host, dest_in, dest_queued, dest_qemu;
    END IF;
    IF dest_host IS NULL THEN
        claim_outcome := 'no_destination';
        RETURN;
    END IF;
    IF cfg_max_cluster > 0 THEN
        cluster_total := ferry_cluster_active_locked();
    END IF;
    claim_outcome := 'claimed';
END
$$;
