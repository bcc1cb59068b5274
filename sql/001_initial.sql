-- ferry schema, version 1: hosts, instances, allocations, migrations, their timeline and
-- the request ids already processed. Invariants are enforced here, not only in code:
--   * a request id is processed once (processed_requests.request_id, migrations.request_id unique)
--   * an instance has at most one active migration (partial unique index)
--   * capacity and usage are never negative; vCPU and RAM usage never exceed capacity
--     (disk may, when an operator asks disk_over_commit)

CREATE TABLE hosts (
    name                  text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$'),
    address               text NOT NULL DEFAULT '',
    -- totals reported by the agent
    vcpus                 integer NOT NULL DEFAULT 0 CHECK (vcpus >= 0),
    memory_mb             bigint  NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    disk_gb               bigint  NOT NULL DEFAULT 0 CHECK (disk_gb >= 0),
    -- per-host overrides; NULL = the scheduler's configured default
    cpu_allocation_ratio  real CHECK (cpu_allocation_ratio > 0),
    ram_allocation_ratio  real CHECK (ram_allocation_ratio > 0),
    disk_allocation_ratio real CHECK (disk_allocation_ratio > 0),
    reserved_vcpus        integer CHECK (reserved_vcpus >= 0),
    reserved_memory_mb    bigint  CHECK (reserved_memory_mb >= 0),
    reserved_disk_gb      bigint  CHECK (reserved_disk_gb >= 0),
    -- effective capacity = totals x ratio - reserved, kept by the scheduler
    capacity_vcpus        integer NOT NULL DEFAULT 0 CHECK (capacity_vcpus >= 0),
    capacity_memory_mb    bigint  NOT NULL DEFAULT 0 CHECK (capacity_memory_mb >= 0),
    capacity_disk_gb      bigint  NOT NULL DEFAULT 0 CHECK (capacity_disk_gb >= 0),
    -- usage = sum of allocations on this host, kept in the same transaction as they change
    used_vcpus            integer NOT NULL DEFAULT 0 CHECK (used_vcpus >= 0),
    used_memory_mb        bigint  NOT NULL DEFAULT 0 CHECK (used_memory_mb >= 0),
    used_disk_gb          bigint  NOT NULL DEFAULT 0 CHECK (used_disk_gb >= 0),
    state                 text NOT NULL DEFAULT 'enabled'
                          CHECK (state IN ('enabled', 'disabled', 'maintenance')),
    state_reason          text,
    last_heartbeat        timestamptz,
    hypervisor            text NOT NULL DEFAULT 'qemu',
    arch                  text NOT NULL DEFAULT '',
    cpu_model             text NOT NULL DEFAULT '',
    cpu_xml               text NOT NULL DEFAULT '',
    libvirt_version       text NOT NULL DEFAULT '',
    qemu_version          text NOT NULL DEFAULT '',
    postcopy              boolean NOT NULL DEFAULT false,
    features              jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT hosts_vcpus_fit  CHECK (used_vcpus <= capacity_vcpus),
    CONSTRAINT hosts_memory_fit CHECK (used_memory_mb <= capacity_memory_mb)
);

CREATE TABLE instances (
    uuid        uuid PRIMARY KEY,
    seq         bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    -- the ec2-style id of the seed (i-0000002a), derived so it can never disagree
    ec2_id      text GENERATED ALWAYS AS ('i-' || lpad(to_hex(seq), 8, '0')) STORED UNIQUE,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 255),
    project     text NOT NULL DEFAULT '',
    host        text REFERENCES hosts (name),
    vcpus       integer NOT NULL DEFAULT 0 CHECK (vcpus >= 0),
    memory_mb   bigint  NOT NULL DEFAULT 0 CHECK (memory_mb >= 0),
    disk_gb     bigint  NOT NULL DEFAULT 0 CHECK (disk_gb >= 0),
    vm_state    text NOT NULL DEFAULT 'running'
                CHECK (vm_state IN ('building', 'running', 'paused', 'stopped', 'error', 'deleted', 'unknown')),
    task_state  text CHECK (task_state IN ('migrating')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX instances_host ON instances (host);
CREATE INDEX instances_name ON instances (name);

CREATE TABLE migrations (
    id                        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id                uuid NOT NULL UNIQUE,
    instance_uuid             uuid NOT NULL REFERENCES instances (uuid),
    source_host               text NOT NULL REFERENCES hosts (name),
    dest_host                 text REFERENCES hosts (name),
    dest_requested            text,
    block_migration           text NOT NULL DEFAULT 'no' CHECK (block_migration IN ('no', 'yes', 'auto')),
    disk_over_commit          boolean NOT NULL DEFAULT false,
    post_copy                 boolean NOT NULL DEFAULT false,
    auto_converge             boolean NOT NULL DEFAULT false,
    postcopy_after_iterations integer NOT NULL DEFAULT 1 CHECK (postcopy_after_iterations >= 1),
    bandwidth_mib_s           integer NOT NULL DEFAULT 0 CHECK (bandwidth_mib_s >= 0),
    max_downtime_ms           integer NOT NULL DEFAULT 300 CHECK (max_downtime_ms >= 1),
    completion_timeout_s      integer NOT NULL DEFAULT 0 CHECK (completion_timeout_s >= 0),
    status                    text NOT NULL DEFAULT 'queued'
                              CHECK (status IN ('queued', 'scheduled', 'preparing', 'running', 'completing',
                                                'completed', 'failed', 'error', 'cancelled')),
    postcopy_active           boolean NOT NULL DEFAULT false,
    -- progress counters, from the source's job statistics
    memory_total_bytes        bigint NOT NULL DEFAULT 0 CHECK (memory_total_bytes >= 0),
    memory_processed_bytes    bigint NOT NULL DEFAULT 0 CHECK (memory_processed_bytes >= 0),
    memory_remaining_bytes    bigint NOT NULL DEFAULT 0 CHECK (memory_remaining_bytes >= 0),
    disk_total_bytes          bigint NOT NULL DEFAULT 0 CHECK (disk_total_bytes >= 0),
    disk_remaining_bytes      bigint NOT NULL DEFAULT 0 CHECK (disk_remaining_bytes >= 0),
    iteration                 integer NOT NULL DEFAULT 0 CHECK (iteration >= 0),
    downtime_ms               integer CHECK (downtime_ms >= 0),
    error                     text,
    -- ownership by one scheduler replica
    owner                     text,
    lease_expires_at          timestamptz,
    epoch                     bigint NOT NULL DEFAULT 0,
    deadline_at               timestamptz,
    created_at                timestamptz NOT NULL DEFAULT now(),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    started_at                timestamptz,
    finished_at               timestamptz,
    CONSTRAINT migrations_terminal_finished
        CHECK ((status IN ('completed', 'failed', 'error', 'cancelled')) = (finished_at IS NOT NULL)),
    CONSTRAINT migrations_error_has_text
        CHECK (status NOT IN ('failed', 'error') OR coalesce(error, '') <> '')
);
-- at most one active migration per instance
CREATE UNIQUE INDEX migrations_one_active ON migrations (instance_uuid)
    WHERE status NOT IN ('completed', 'failed', 'error', 'cancelled');
CREATE INDEX migrations_status ON migrations (status);
CREATE INDEX migrations_lease ON migrations (lease_expires_at)
    WHERE status NOT IN ('completed', 'failed', 'error', 'cancelled');

CREATE TABLE allocations (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- 'instance': the instance's own; 'migration': the source side held under a migration
    consumer_type  text NOT NULL CHECK (consumer_type IN ('instance', 'migration')),
    consumer_id    text NOT NULL,
    instance_uuid  uuid NOT NULL REFERENCES instances (uuid),
    migration_id   bigint REFERENCES migrations (id),
    host           text NOT NULL REFERENCES hosts (name),
    vcpus          integer NOT NULL CHECK (vcpus >= 0),
    memory_mb      bigint  NOT NULL CHECK (memory_mb >= 0),
    disk_gb        bigint  NOT NULL CHECK (disk_gb >= 0),
    created_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (consumer_type, consumer_id),
    CHECK ((consumer_type = 'migration') = (migration_id IS NOT NULL))
);
CREATE INDEX allocations_host ON allocations (host);

CREATE TABLE migration_events (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    migration_id  bigint NOT NULL REFERENCES migrations (id),
    at            timestamptz NOT NULL DEFAULT now(),
    origin        text NOT NULL CHECK (origin IN ('scheduler', 'source', 'destination', 'operator')),
    host          text,
    status        text,
    kind          text NOT NULL,
    message       text NOT NULL DEFAULT '',
    data          jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX migration_events_migration ON migration_events (migration_id, id);

-- the timeline is append-only
CREATE FUNCTION migration_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'migration_events is append-only';
END
$$;
CREATE TRIGGER migration_events_no_change BEFORE UPDATE OR DELETE ON migration_events
    FOR EACH ROW EXECUTE FUNCTION migration_events_append_only();

CREATE TABLE processed_requests (
    request_id    uuid PRIMARY KEY,
    outcome       text NOT NULL CHECK (outcome IN ('accepted', 'refused')),
    migration_id  bigint REFERENCES migrations (id),
    reason        text,
    processed_at  timestamptz NOT NULL DEFAULT now(),
    CHECK ((outcome = 'accepted') = (migration_id IS NOT NULL))
);
