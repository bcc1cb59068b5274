-- ferry schema, version 10: a request's objectives and the migration's receipt (issue #18).
-- objective_*: what the request asked ferry to hold to (NULL: not asked); objective_plan: what
-- ferry decided from the forecast it took before the claim (the mode chosen, or that no
-- forecast could be taken); receipt: written when the migration ends, each objective with the
-- measured figure and whether it was met, and the plan.
ALTER TABLE migrations
    ADD COLUMN objective_max_downtime_ms integer CHECK (objective_max_downtime_ms BETWEEN 1 AND 600000),
    ADD COLUMN objective_deadline_s integer CHECK (objective_deadline_s BETWEEN 1 AND 604800),
    ADD COLUMN objective_plan text,
    ADD COLUMN receipt json;
