-- ferry schema, version 11: migration policies (issue #18). A policy selects migrations by the
-- instance's project, a glob of its name and a glob of its (source) host, each NULL for any;
-- the matching policy of highest priority (then name) gives the defaults of what the request
-- leaves out: post-copy, auto-converge, the options, the objectives. NULL: no default, the
-- scheduler's own applies. migrations.policy names the one that applied.
CREATE TABLE migration_policies (
    name                      text PRIMARY KEY CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,62}$'),
    priority                  integer NOT NULL DEFAULT 0 CHECK (priority BETWEEN -1000 AND 1000),
    project                   text CHECK (length(project) <= 255),
    instance_glob             text CHECK (length(instance_glob) <= 255),
    host_glob                 text CHECK (length(host_glob) <= 255),
    post_copy                 boolean,
    auto_converge             boolean,
    postcopy_after_iterations integer CHECK (postcopy_after_iterations BETWEEN 1 AND 1000),
    bandwidth_mib_s           integer CHECK (bandwidth_mib_s BETWEEN 0 AND 100000),
    max_downtime_ms           integer CHECK (max_downtime_ms BETWEEN 1 AND 600000),
    completion_timeout_s      integer CHECK (completion_timeout_s BETWEEN 0 AND 86400),
    objective_max_downtime_ms integer CHECK (objective_max_downtime_ms BETWEEN 1 AND 600000),
    objective_deadline_s      integer CHECK (objective_deadline_s BETWEEN 1 AND 604800),
    updated_at                timestamptz NOT NULL DEFAULT now(),
    updated_by                text NOT NULL DEFAULT ''
);

ALTER TABLE migrations ADD COLUMN policy text;

-- a shell glob (* any run, ? one character) as a LIKE pattern (the rest literal)
CREATE FUNCTION ferry_glob_like(g text) RETURNS text IMMUTABLE STRICT LANGUAGE sql AS $$
    SELECT replace(replace(replace(replace(replace(g, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%'), '?', '_')
$$;
