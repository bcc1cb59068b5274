-- ferry schema, version 13: what a completion timeout does (issues #18, #19), host groups as
-- policy selectors, policies from the scheduler's configuration file, the forecast's non-zero
-- memory (issue #18).
--
-- migrations.completion_action: abort (the guest stays), postcopy (switch to post-copy, when
-- the migration allows it), pause (the guest paused so the rest is sent; it resumes on the
-- destination). hosts.host_group: set by an operator (ferryctl host group), never by a host's
-- own heartbeat, so a host cannot choose the policy its migrations get. A policy's source says
-- where it is kept: 'operator' (policy.set) or 'config' (a [policy NAME] section of the
-- scheduler's file, written at each start; ferryctl may not change those).
ALTER TABLE migrations ADD COLUMN completion_action text NOT NULL DEFAULT 'abort'
    CHECK (completion_action IN ('abort', 'postcopy', 'pause'));

ALTER TABLE hosts ADD COLUMN host_group text CHECK (host_group ~ '^[a-z0-9][a-z0-9._-]{0,62}$');

-- the forecast's sample of how much of the guest's memory is not zero pages (what a first pass
-- sends), kept with the migration; a drain plans each guest with its last one.
ALTER TABLE migrations ADD COLUMN forecast_nonzero_mib bigint CHECK (forecast_nonzero_mib >= 0);
ALTER TABLE drain_items ADD COLUMN nonzero_mib bigint CHECK (nonzero_mib >= 0);

-- a drain's bandwidth budget shared among its migrations under way: the cap the drainer wants
-- for this migration (NULL: none); its owner applies it (the agent's set_bandwidth) and then
-- stores it in bandwidth_mib_s.
ALTER TABLE migrations ADD COLUMN bandwidth_target integer CHECK (bandwidth_target BETWEEN 1 AND 100000);

ALTER TABLE migration_policies
    ADD COLUMN host_group text CHECK (host_group ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    ADD COLUMN completion_action text CHECK (completion_action IN ('abort', 'postcopy', 'pause')),
    ADD COLUMN source text NOT NULL DEFAULT 'operator' CHECK (source IN ('operator', 'config'));
