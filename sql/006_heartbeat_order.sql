-- ferry schema, version 6: heartbeats are ordered. Each agent process numbers its heartbeats
-- (boot = the process's UUID, seq = 1, 2, ...); the scheduler records the last pair it took
-- and ignores an older heartbeat of the same process (a redelivery or a reorder at the
-- broker), so a host's report never goes back in time. NULL for hosts whose agent sends no
-- numbers (agents before this version).
ALTER TABLE hosts ADD COLUMN heartbeat_boot uuid;
ALTER TABLE hosts ADD COLUMN heartbeat_seq bigint CHECK (heartbeat_seq >= 0);

-- When the instance's host last listed it in a heartbeat. A heartbeat of another host that
-- lists the instance running moves it only when its host no longer does (a heartbeat of the
-- holder came after reported_at without it): a report is a claim, and a compromised host
-- must not take a guest another host still runs. NULL for rows from before (or made by hand).
ALTER TABLE instances ADD COLUMN reported_at timestamptz;
