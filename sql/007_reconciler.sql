-- ferry schema, version 7: what the reconciler needs (issue #17). Each heartbeat's domains, per host, so a guest
-- listed by two hosts is seen (instances.host keeps only one of them); and the leases of jobs
-- only one replica runs at a time (the reconciler), taken like a migration's lease: an owner, an
-- expiry renewed by the holder, an epoch raised by every change of hands.
CREATE TABLE host_domains (
    host         text NOT NULL REFERENCES hosts (name) ON DELETE CASCADE,
    uuid         uuid NOT NULL,
    state        text NOT NULL,
    reported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host, uuid)
);
CREATE INDEX host_domains_uuid ON host_domains (uuid);

CREATE TABLE replica_leases (
    job               text PRIMARY KEY CHECK (job IN ('reconciler')),
    owner             text NOT NULL,
    epoch             bigint NOT NULL DEFAULT 1,
    lease_expires_at  timestamptz NOT NULL
);

-- when the host's last heartbeat recorded its domains (host_domains): a host whose agent has not
-- reported them since, or not for longer than heartbeat_max_age_s, proves nothing about them
ALTER TABLE hosts ADD COLUMN domains_reported_at timestamptz;
