-- The scheduler's state: the last tick it enqueued per strategy. Kept in Postgres (the
-- system of record) and written in the same transaction as the requests' outbox rows, so
-- a tick is enqueued exactly once whatever crashes, and a scheduler on another machine
-- picks up where the last one stopped.
CREATE TABLE core.schedule_ticks (
    strategy_id text PRIMARY KEY CHECK (strategy_id <> ''),
    last_tick   timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- The relay deletes published outbox rows older than its retention setting.
CREATE INDEX outbox_sent_idx ON core.outbox (sent_at) WHERE sent_at IS NOT NULL;

GRANT SELECT, INSERT, UPDATE ON core.schedule_ticks TO {app_role};
