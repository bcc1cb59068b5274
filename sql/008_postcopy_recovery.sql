-- ferry schema, version 8: post-copy recovery (issue #17). A `running` migration whose post-copy
-- stream broke after the switch is in the sub-state `recovering`: the guest's vCPUs and the pages
-- it received are on the destination, the rest of its memory on the source, and the scheduler
-- resumes the migration (resume_postcopy) until it completes or [scheduler] postcopy_recovery_s
-- passes (then `error`). recovering_since: when the current recovery began; NULL when the
-- migration is not recovering (never was, recovered, or ended).
ALTER TABLE migrations ADD COLUMN recovering_since timestamptz;
