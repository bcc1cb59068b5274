-- ferry schema, version 16: a heartbeat recorded by one server-side function (issue #20).
--
-- A heartbeat of a host with four guests was 16 round trips to the database (the host, its
-- capacity, its listed domains, each domain's instance and allocation, savepoints); at 10,000
-- hosts every 10 s the round trips, not the CPU, bounded the scheduler. ferry_heartbeat does
-- the same work in one call, so the scheduler records a batch of heartbeats as BEGIN, one call
-- each, COMMIT. The rules are the ones the scheduler applied statement by statement before
-- (docs/DESIGN.md "Heartbeats"):
--   * an older heartbeat of the same agent process (by boot id and sequence number) changes
--     nothing: one row ('stale') and nothing else;
--   * the host: its facts, its capacity = totals x allocation ratio - reserved (its own
--     overrides first, else the scheduler's configured ones), the time of its domains;
--   * host_domains: what it lists, as it lists it (for the reconciler; a row is written only
--     when it is new or its state changed: its reported_at is now when that state was first
--     reported, and hosts.domains_reported_at says when the whole list was);
--   * each domain's instance, unless it is migrating or another host that still lists it
--     holds it (a report is a claim, not a fact): such a domain reported running is returned
--     ('claimed', that host) for the scheduler to log;
--   * an instance running or paused here holds an allocation here (created when missing, and
--     the host's used figures with it).
-- The domains' part is one statement, ferry_heartbeat_domains (the only copy of these rules).
-- Without isolate (the batch's way) it writes all domains at once, and a domain the database
-- refuses fails the whole call: the scheduler then records that batch again one heartbeat at a
-- time with isolate, where each domain is its own call of ferry_heartbeat_domains (a one-element
-- array) in its own subtransaction: a refused one is returned ('refused', the error) and the
-- rest of the heartbeat stands.
--
-- domains: a JSON array of {"uuid", "name", "project", "vcpus", "memory_mb", "disk_gb",
-- "vm_state" (the schema's word), "state" (libvirt's word, for host_domains), "ec2_id"}.
CREATE FUNCTION ferry_heartbeat(
    hb_host text, hb_address text, hb_vcpus int, hb_memory_mb bigint, hb_disk_gb bigint, hb_arch text,
    hb_cpu_model text, hb_cpu_xml text, hb_hypervisor text, hb_libvirt_version text, hb_qemu_version text,
    hb_postcopy boolean, hb_boot uuid, hb_seq bigint, hb_migration_address text,
    cfg_cpu_ratio real, cfg_ram_ratio real, cfg_disk_ratio real, cfg_reserved_cpus int, cfg_reserved_memory_mb bigint,
    cfg_reserved_disk_gb bigint, domains jsonb, isolate boolean,
    OUT domain uuid, OUT outcome text, OUT detail text)
    RETURNS SETOF record VOLATILE LANGUAGE plpgsql AS $$
DECLARE
    d jsonb;
    kept text;
BEGIN
    INSERT INTO hosts AS h (name, address, vcpus, memory_mb, disk_gb, arch, cpu_model, cpu_xml, hypervisor,
                            libvirt_version, qemu_version, postcopy, heartbeat_boot, heartbeat_seq, last_heartbeat,
                            migration_address, capacity_vcpus, capacity_memory_mb, capacity_disk_gb,
                            domains_reported_at)
    VALUES (hb_host, hb_address, hb_vcpus, hb_memory_mb, hb_disk_gb, hb_arch, hb_cpu_model, hb_cpu_xml, hb_hypervisor,
            hb_libvirt_version, hb_qemu_version, hb_postcopy, hb_boot, hb_seq, now(), hb_migration_address,
            greatest(0, floor(hb_vcpus * cfg_cpu_ratio) - cfg_reserved_cpus)::int,
            greatest(0, floor(hb_memory_mb * cfg_ram_ratio) - cfg_reserved_memory_mb)::bigint,
            greatest(0, floor(hb_disk_gb * cfg_disk_ratio) - cfg_reserved_disk_gb)::bigint, now())
    ON CONFLICT (name) DO UPDATE SET address = EXCLUDED.address, vcpus = EXCLUDED.vcpus,
        migration_address = EXCLUDED.migration_address,
        memory_mb = EXCLUDED.memory_mb, disk_gb = EXCLUDED.disk_gb, arch = EXCLUDED.arch,
        cpu_model = EXCLUDED.cpu_model, cpu_xml = EXCLUDED.cpu_xml, hypervisor = EXCLUDED.hypervisor,
        libvirt_version = EXCLUDED.libvirt_version, qemu_version = EXCLUDED.qemu_version,
        postcopy = EXCLUDED.postcopy, heartbeat_boot = EXCLUDED.heartbeat_boot,
        heartbeat_seq = EXCLUDED.heartbeat_seq, last_heartbeat = now(), updated_at = now(),
        capacity_vcpus = greatest(0, floor(EXCLUDED.vcpus * coalesce(h.cpu_allocation_ratio, cfg_cpu_ratio))
                                     - coalesce(h.reserved_vcpus, cfg_reserved_cpus))::int,
        capacity_memory_mb = greatest(0, floor(EXCLUDED.memory_mb * coalesce(h.ram_allocation_ratio, cfg_ram_ratio))
                                         - coalesce(h.reserved_memory_mb, cfg_reserved_memory_mb))::bigint,
        capacity_disk_gb = greatest(0, floor(EXCLUDED.disk_gb * coalesce(h.disk_allocation_ratio, cfg_disk_ratio))
                                       - coalesce(h.reserved_disk_gb, cfg_reserved_disk_gb))::bigint,
        domains_reported_at = now()
    WHERE (EXCLUDED.heartbeat_seq IS NULL AND h.heartbeat_seq IS NULL)
       OR (EXCLUDED.heartbeat_seq IS NOT NULL AND (h.heartbeat_seq IS NULL
           OR h.heartbeat_boot IS DISTINCT FROM EXCLUDED.heartbeat_boot OR h.heartbeat_seq < EXCLUDED.heartbeat_seq))
    RETURNING h.name INTO kept;
    IF kept IS NULL THEN
        domain := NULL; outcome := 'stale'; detail := NULL;
        RETURN NEXT;
        RETURN;
    END IF;

    DELETE FROM host_domains hd WHERE hd.host = hb_host
        AND hd.uuid NOT IN (SELECT (x ->> 'uuid')::uuid FROM jsonb_array_elements(domains) x);
    INSERT INTO host_domains (host, uuid, state)
        SELECT DISTINCT ON ((x ->> 'uuid')::uuid) hb_host, (x ->> 'uuid')::uuid, x ->> 'state'
        FROM jsonb_array_elements(domains) x
        ON CONFLICT (host, uuid) DO UPDATE SET state = EXCLUDED.state, reported_at = now()
        WHERE host_domains.state IS DISTINCT FROM EXCLUDED.state;

    IF NOT isolate THEN
        RETURN QUERY SELECT * FROM ferry_heartbeat_domains(hb_host, domains);
        RETURN;
    END IF;
    -- one domain at a time, each under its own subtransaction
    FOR d IN SELECT x FROM jsonb_array_elements(domains) x LOOP
        BEGIN
            RETURN QUERY SELECT * FROM ferry_heartbeat_domains(hb_host, jsonb_build_array(d));
        EXCEPTION WHEN OTHERS THEN
            domain := (d ->> 'uuid')::uuid; outcome := 'refused'; detail := SQLERRM;
            RETURN NEXT;
        END;
    END LOOP;
END
$$;

-- Domains of hb_host's heartbeat (ferry_heartbeat), all in one statement: their instances, the
-- allocations of those running or paused here, the host's used figures, and a row ('claimed',
-- that host) for each domain reported running that another host still holds (not moved). A
-- uuid listed twice counts once, as its last listing says.
CREATE FUNCTION ferry_heartbeat_domains(hb_host text, domains jsonb, OUT domain uuid, OUT outcome text,
                                        OUT detail text)
    RETURNS SETOF record VOLATILE LANGUAGE plpgsql AS $$
BEGIN
    -- a migrating instance is the orchestration's: the heartbeats of both hosts leave it be;
    -- an instance its host still lists (in its last heartbeat) is that host's: a report from
    -- here does not move it. It moves once its host has sent a heartbeat without it. What runs
    -- here holds an allocation here (found running without one: discovered).
    RETURN QUERY
    WITH dom AS (
        SELECT DISTINCT ON ((e.v ->> 'uuid')::uuid) (e.v ->> 'uuid')::uuid AS du, e.v ->> 'name' AS dname,
            e.v ->> 'project' AS dproject, (e.v ->> 'vcpus')::int AS dvcpus, (e.v ->> 'memory_mb')::bigint AS dmem,
            (e.v ->> 'disk_gb')::bigint AS ddisk, e.v ->> 'vm_state' AS dstate, e.v ->> 'ec2_id' AS dec2
        FROM jsonb_array_elements(domains) WITH ORDINALITY AS e(v, n)
        ORDER BY (e.v ->> 'uuid')::uuid, e.n DESC),
    up AS (
        INSERT INTO instances AS i (uuid, name, project, host, vcpus, memory_mb, disk_gb, vm_state, ec2_id,
                                    reported_at)
        SELECT du, dname, dproject, hb_host, dvcpus, dmem, ddisk, dstate, dec2, now() FROM dom
        ON CONFLICT (uuid) DO UPDATE SET name = EXCLUDED.name, project = EXCLUDED.project,
            host = EXCLUDED.host, vcpus = EXCLUDED.vcpus, memory_mb = EXCLUDED.memory_mb,
            disk_gb = EXCLUDED.disk_gb, vm_state = EXCLUDED.vm_state, reported_at = now(), updated_at = now()
        WHERE i.task_state IS NULL AND (EXCLUDED.vm_state IN ('running', 'paused') OR i.host = EXCLUDED.host)
          AND (i.host IS NOT DISTINCT FROM EXCLUDED.host OR i.host IS NULL OR EXISTS (SELECT 1 FROM hosts h
               WHERE h.name = i.host AND h.last_heartbeat > coalesce(i.reported_at, '-infinity')))
        RETURNING i.uuid AS uu, i.vm_state AS st, i.vcpus AS v, i.memory_mb AS m, i.disk_gb AS g),
    a AS (
        INSERT INTO allocations (consumer_type, consumer_id, instance_uuid, host, vcpus, memory_mb, disk_gb)
        SELECT 'instance', uu::text, uu, hb_host, v, m, g FROM up WHERE st IN ('running', 'paused')
        ON CONFLICT (consumer_type, consumer_id) DO NOTHING
        RETURNING vcpus AS av, memory_mb AS am, disk_gb AS ag),
    used AS (
        UPDATE hosts h SET used_vcpus = h.used_vcpus + t.v, used_memory_mb = h.used_memory_mb + t.m,
            used_disk_gb = h.used_disk_gb + t.g
        FROM (SELECT sum(av) AS v, sum(am) AS m, sum(ag) AS g, count(*) AS c FROM a) t
        WHERE h.name = hb_host AND t.c > 0)
    SELECT dom.du, 'claimed'::text, i.host FROM dom JOIN instances i ON i.uuid = dom.du
    WHERE dom.dstate = 'running' AND dom.du NOT IN (SELECT uu FROM up) AND i.host IS DISTINCT FROM hb_host
      AND i.task_state IS NULL;
END
$$;
