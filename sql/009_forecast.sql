-- ferry schema, version 9: a migration's forecast (issue #18), taken before it moves: the
-- mode the migration runs in, whether the model says it ends on its own, its duration (from
-- the checks to the end), the guest's pause and the bytes sent, from the dirty rate its source
-- sampled (dirty_rate) and the bandwidth assumed. NULL when no forecast was taken (the sample
-- failed, or [scheduler] forecast_sample_s = 0). The forecast's error is read against
-- duration (started_at .. finished_at) and downtime_ms once the migration completed.
ALTER TABLE migrations
    ADD COLUMN forecast_mode text CHECK (forecast_mode IN ('pre-copy', 'auto-converge', 'post-copy')),
    ADD COLUMN forecast_converges boolean,
    ADD COLUMN forecast_duration_ms bigint CHECK (forecast_duration_ms >= 0),
    ADD COLUMN forecast_downtime_ms bigint CHECK (forecast_downtime_ms >= 0),
    ADD COLUMN forecast_bytes bigint CHECK (forecast_bytes >= 0),
    ADD COLUMN forecast_dirty_mib_s bigint CHECK (forecast_dirty_mib_s >= 0),
    ADD COLUMN forecast_bandwidth_mib_s bigint CHECK (forecast_bandwidth_mib_s >= 0);
