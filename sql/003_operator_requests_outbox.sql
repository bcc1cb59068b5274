-- ferry schema, version 3: operator requests on a running migration, and the outbox of events.
--  * abort / force-complete are recorded on the migration; its owning replica acts on them
--  * every status transition writes its migration.<id>.<status> event into `outbox` in the
--    same transaction; a publisher drains it (publish, broker confirm, delete), so a crash
--    between the commit and the publish loses nothing. The message id is fixed at insert:
--    a row published again after a crash between the confirm and the delete carries the same
--    id, and consumers drop what they have seen.
ALTER TABLE migrations
    ADD COLUMN abort_requested          boolean NOT NULL DEFAULT false,
    ADD COLUMN force_complete_requested boolean NOT NULL DEFAULT false;

CREATE TABLE outbox (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id     uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    routing_key    text NOT NULL,
    body           text NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- a replica publishing the row holds it until then; an expired claim is anyone's
    claimed_until  timestamptz
);

CREATE INDEX migrations_queued ON migrations (id) WHERE status = 'queued';
