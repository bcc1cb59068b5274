-- ferry schema, version 14: the figures of a migration's progress the scheduler used to drop, and
-- the transport settings (parallel connections, xbzrle)
-- (issue #19), stored from the source's progress events like the memory figures.
--
-- disk_*: a block migration's disks (libvirt's disk_total / processed / remaining; 0 with
-- shared storage). dirty_rate_bytes_s: the guest's dirty rate as QEMU measures it during the
-- job (libvirt's pages/s times 4 KiB target pages). transfer_bytes_s: the stream's rate.
-- cpu_throttle_pct: how much auto-converge throttles the guest's vCPUs (NULL: not throttled
-- or not reported). settings_verified: what the source read back from libvirt after its job
-- started (the agent fails the migration when it differs from what was asked), as text.
ALTER TABLE migrations
    ADD COLUMN disk_processed_bytes bigint NOT NULL DEFAULT 0 CHECK (disk_processed_bytes >= 0),
    ADD COLUMN dirty_rate_bytes_s bigint CHECK (dirty_rate_bytes_s >= 0),
    ADD COLUMN transfer_bytes_s bigint CHECK (transfer_bytes_s >= 0),
    ADD COLUMN cpu_throttle_pct integer CHECK (cpu_throttle_pct BETWEEN 0 AND 100),
    ADD COLUMN settings_verified text;

-- the transport (issue #19): memory over this many parallel connections (libvirt's
-- VIR_MIGRATE_PARALLEL, QEMU's multifd; 1 = one stream) and xbzrle compression with a cache of
-- this many MiB (0 = off), per migration and as a policy's defaults.
ALTER TABLE migrations
    ADD COLUMN parallel_connections integer NOT NULL DEFAULT 1 CHECK (parallel_connections BETWEEN 1 AND 32),
    ADD COLUMN xbzrle_cache_mib integer NOT NULL DEFAULT 0 CHECK (xbzrle_cache_mib BETWEEN 0 AND 65536);
ALTER TABLE migration_policies
    ADD COLUMN parallel_connections integer CHECK (parallel_connections BETWEEN 1 AND 32),
    ADD COLUMN xbzrle_cache_mib integer CHECK (xbzrle_cache_mib BETWEEN 0 AND 65536);

-- a host's address on a dedicated migration network ([agent] migration_address, from its
-- heartbeat; '' = none): migration streams to the host go there.
ALTER TABLE hosts ADD COLUMN migration_address text NOT NULL DEFAULT '';
