-- ferry schema, version 6: heartbeats are ordered. Each agent process numbers its heartbeats
-- (boot = the process's UUID, seq = 1, 2, ...); the scheduler records the last pair it took
-- and ignores an older heartbeat of the same process (a redelivery or a reorder at the
-- broker), so a host's report never goes back in time. NULL for hosts whose agent sends no
-- numbers (agents before this version).
ALTER TABLE hosts ADD COLUMN heartbeat_boot uuid;
ALTER TABLE hosts ADD COLUMN heartbeat_seq bigint CHECK (heartbeat_seq >= 0);
