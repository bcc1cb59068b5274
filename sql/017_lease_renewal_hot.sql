-- ferry schema, version 17: a lease renewal that writes no index, and an index of an instance's
-- migrations (issue #20).
--
-- Every second each replica renews the lease of every migration it drives (one UPDATE of
-- lease_expires_at for all of them). lease_expires_at was indexed (migrations_lease), so each
-- renewal was a new row version with a new entry in every index of migrations: with 2,400
-- migrations driven by one replica (bench/footprint.sh --claims) the renewal was a third of its
-- database worker's time and the lease pass fell behind its period. Without that index, and
-- with room left in each page for the new versions (fillfactor), a renewal is a heap-only
-- update. The adoption's look for expired leases reads the active migrations through the
-- partial index of schema 15 (migrations_limit_active) and checks their lease there. (The
-- renewal statement itself finds its rows by `id = ANY(ids)` and checks each one's epoch in a
-- JSON object, not by a join with the ids: a join was planned as a nested loop over them when
-- the table's statistics were young, 1.3 s for 2,400 migrations instead of 30 ms.)
DROP INDEX migrations_lease;
ALTER TABLE migrations SET (fillfactor = 80);


-- An instance's migrations, newest first: the reconciler's pass looks up each instance's last
-- migration and whether one ended recently (40,000 instances at 10,000 hosts), the forecast
-- its instance's earlier ones; only the unfinished ones had an index (migrations_one_active).
CREATE INDEX migrations_instance ON migrations (instance_uuid, id);
