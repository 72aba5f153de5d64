-- 0001: point-in-time stores, factors and evaluations, allocations, messaging tables,
-- the trading views and the grants.
--
-- Applied by storage/migrate.py as the owner role, in one transaction. {app_role} and
-- {trading_role} are filled in by psycopg.sql as quoted identifiers from the settings, so
-- literal braces in this file must be doubled.
--
-- Grant policy: tables in `core` are granted explicitly, table by table, in the migration
-- that creates them (append-only stores get SELECT and INSERT only, so a revision can only
-- be a new row). Schema `trading` holds views only, so default privileges grant SELECT on
-- every later view to the reader and the app without a per-migration grant.

CREATE SCHEMA IF NOT EXISTS core;
CREATE SCHEMA trading;

-- Macro releases. A revision is a new row with a later released_at; released_at is the
-- point-in-time key, event_id the idempotency key of the Kafka event that carried it.
CREATE TABLE core.macro_observations (
    observation_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id      text NOT NULL CHECK (series_id <> ''),
    period         date NOT NULL,
    value          double precision NOT NULL,
    released_at    timestamptz NOT NULL,
    event_id       text NOT NULL UNIQUE CHECK (event_id <> ''),
    ingested_at    timestamptz NOT NULL DEFAULT now()
);
-- As-of reads: per (series, period), the newest release at or before a timestamp.
CREATE INDEX macro_observations_as_of_idx
    ON core.macro_observations (series_id, period, released_at DESC, observation_id DESC);
-- Replays walk releases in time order.
CREATE INDEX macro_observations_released_idx ON core.macro_observations (released_at);

-- Market data per (asset, date, field) with the time it became available. A revision is
-- a new row with a later available_at; re-recording the same vintage changes nothing.
CREATE TABLE core.market_observations (
    observation_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset          text NOT NULL CHECK (asset <> ''),
    date           date NOT NULL,
    field          text NOT NULL CHECK (field <> ''),
    value          double precision,
    available_at   timestamptz NOT NULL,
    ingested_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT market_observations_vintage_key UNIQUE (field, asset, date, available_at)
);

-- Factors: the canonical formula's hash is the identity everywhere.
CREATE TABLE core.factors (
    formula_hash text PRIMARY KEY CHECK (formula_hash <> ''),
    formula      text NOT NULL CHECK (formula <> ''),
    origin       text NOT NULL CHECK (origin ~ '^[a-z][a-z0-9_]*$'),
    created_at   timestamptz NOT NULL DEFAULT now()
);

-- One evaluation per (factor, strategy, as-of date); the key metrics are derived from the
-- metrics document so they can never disagree with it.
CREATE TABLE core.evaluations (
    formula_hash     text NOT NULL REFERENCES core.factors,
    strategy_id      text NOT NULL CHECK (strategy_id <> ''),
    as_of            date NOT NULL,
    metrics          jsonb NOT NULL CHECK (jsonb_typeof(metrics) = 'object'),
    is_alpha         boolean,
    ic               double precision GENERATED ALWAYS AS ((metrics ->> 'ic')::float8) STORED,
    rank_ic          double precision GENERATED ALWAYS AS ((metrics ->> 'rank_ic')::float8) STORED,
    ls_sharpe        double precision
        GENERATED ALWAYS AS ((metrics ->> 'ls_sharpe')::float8) STORED,
    ls_annual_return double precision
        GENERATED ALWAYS AS ((metrics ->> 'ls_annual_return')::float8) STORED,
    ls_max_drawdown  double precision
        GENERATED ALWAYS AS ((metrics ->> 'ls_max_drawdown')::float8) STORED,
    hac_tstat        double precision
        GENERATED ALWAYS AS ((metrics ->> 'hac_tstat')::float8) STORED,
    turnover         double precision
        GENERATED ALWAYS AS ((metrics ->> 'turnover')::float8) STORED,
    evaluated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (formula_hash, strategy_id, as_of)
);
CREATE INDEX evaluations_strategy_idx ON core.evaluations (strategy_id, as_of);

-- The alphas a strategy selected on a date and their weights in the combined signal.
CREATE TABLE core.alpha_pools (
    strategy_id  text NOT NULL CHECK (strategy_id <> ''),
    as_of        date NOT NULL,
    formula_hash text NOT NULL REFERENCES core.factors,
    weight       double precision NOT NULL
        CHECK (weight > '-Infinity'::float8 AND weight < 'Infinity'::float8),
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (strategy_id, as_of, formula_hash)
);

-- Exactly one allocation per strategy and triggering event, however often it is retried.
CREATE TABLE core.allocations (
    allocation_id    text PRIMARY KEY CHECK (allocation_id <> ''),
    strategy_id      text NOT NULL CHECK (strategy_id <> ''),
    as_of            date NOT NULL,
    trigger_event_id text NOT NULL CHECK (trigger_event_id <> ''),
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT allocations_strategy_trigger_key UNIQUE (strategy_id, trigger_event_id)
);
CREATE INDEX allocations_latest_idx
    ON core.allocations (strategy_id, as_of DESC, created_at DESC, allocation_id DESC);

-- NaN sorts above Infinity in Postgres, so the upper bound also rejects NaN.
CREATE TABLE core.positions (
    allocation_id text NOT NULL REFERENCES core.allocations ON DELETE CASCADE,
    asset         text NOT NULL CHECK (asset <> ''),
    weight        double precision NOT NULL
        CHECK (weight > '-Infinity'::float8 AND weight < 'Infinity'::float8),
    PRIMARY KEY (allocation_id, asset)
);

-- Idempotency ledger: a consumer records an event in the same transaction as its effects.
CREATE TABLE core.processed_events (
    consumer     text NOT NULL CHECK (consumer <> ''),
    event_id     text NOT NULL CHECK (event_id <> ''),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

-- Records a consumer could not process. Kafka coordinates are unique so that a record
-- redelivered after a crash is dead-lettered once; other sources leave them null.
CREATE TABLE core.dead_letters (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text NOT NULL,
    partition  integer,
    "offset"   bigint,
    key        bytea,
    payload    bytea NOT NULL,
    error      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT dead_letters_record_key UNIQUE (topic, partition, "offset")
);

-- Events that must be published only after the transaction that produced them commits.
CREATE TABLE core.outbox (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    topic      text NOT NULL CHECK (topic <> ''),
    key        text,
    payload    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    sent_at    timestamptz
);
CREATE INDEX outbox_unsent_idx ON core.outbox (topic, id) WHERE sent_at IS NULL;

-- Views for trading systems. Owned by the owner, so the reader needs no grant on core.
CREATE VIEW trading.target_positions AS
SELECT a.strategy_id,
       a.allocation_id,
       a.as_of,
       p.asset,
       p.weight,
       a.created_at,
       a.trigger_event_id
FROM core.allocations AS a
JOIN core.positions AS p USING (allocation_id);

-- The newest allocation per strategy: latest as_of, then the latest written (a revised
-- release re-allocates the same as_of date).
CREATE VIEW trading.latest_target_positions AS
SELECT t.strategy_id,
       t.allocation_id,
       t.as_of,
       t.asset,
       t.weight,
       t.created_at,
       t.trigger_event_id
FROM trading.target_positions AS t
JOIN (
    SELECT DISTINCT ON (strategy_id) allocation_id
    FROM core.allocations
    ORDER BY strategy_id, as_of DESC, created_at DESC, allocation_id DESC
) AS latest USING (allocation_id);

-- Writes to the trading views must fail with insufficient_privilege (42501). A view that is
-- not automatically updatable is rejected by the rewriter (55000) before privileges are
-- checked; an INSTEAD OF trigger makes the rewriter pass, so the privilege check answers
-- 42501 for readers, and the trigger itself refuses everyone else. Every later view in
-- `trading` gets the three triggers too.
CREATE FUNCTION core.reject_trading_view_write() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION USING
        ERRCODE = 'insufficient_privilege',
        MESSAGE = format('%I.%I is read-only', TG_TABLE_SCHEMA, TG_TABLE_NAME),
        HINT = 'allocations are written to core tables through storage.allocations';
END
$$;
REVOKE ALL ON FUNCTION core.reject_trading_view_write() FROM PUBLIC;
CREATE TRIGGER reject_insert INSTEAD OF INSERT ON trading.target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();
CREATE TRIGGER reject_update INSTEAD OF UPDATE ON trading.target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();
CREATE TRIGGER reject_delete INSTEAD OF DELETE ON trading.target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();
CREATE TRIGGER reject_insert INSTEAD OF INSERT ON trading.latest_target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();
CREATE TRIGGER reject_update INSTEAD OF UPDATE ON trading.latest_target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();
CREATE TRIGGER reject_delete INSTEAD OF DELETE ON trading.latest_target_positions
    FOR EACH ROW EXECUTE FUNCTION core.reject_trading_view_write();

-- Grants. The app only reads and writes rows; it owns nothing and creates nothing.
GRANT USAGE ON SCHEMA core TO {app_role};
GRANT SELECT, INSERT ON
    core.macro_observations, core.market_observations, core.factors,
    core.allocations, core.positions, core.processed_events
    TO {app_role};
GRANT SELECT, INSERT, UPDATE ON core.evaluations TO {app_role};
GRANT SELECT, INSERT, DELETE ON core.alpha_pools, core.dead_letters TO {app_role};
GRANT SELECT, INSERT, UPDATE, DELETE ON core.outbox TO {app_role};
ALTER DEFAULT PRIVILEGES IN SCHEMA core GRANT USAGE ON SEQUENCES TO {app_role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA core TO {app_role};

GRANT USAGE ON SCHEMA trading TO {trading_role}, {app_role};
GRANT SELECT ON ALL TABLES IN SCHEMA trading TO {trading_role}, {app_role};
ALTER DEFAULT PRIVILEGES IN SCHEMA trading GRANT SELECT ON TABLES TO {trading_role}, {app_role};
