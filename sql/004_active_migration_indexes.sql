-- ferry schema, version 4: the unfinished migrations by host, for placement (fewest active
-- migrations first), the concurrency limits and the hosts' reads. Partial: finished
-- migrations, which pile up, are never in them.
CREATE INDEX migrations_active_source ON migrations (source_host) WHERE finished_at IS NULL;
CREATE INDEX migrations_active_dest ON migrations (dest_host) WHERE finished_at IS NULL;
