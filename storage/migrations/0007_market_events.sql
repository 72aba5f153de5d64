-- market.data events, one row each: (asset, date, available_at) with every field of the
-- event as parallel arrays. A row per field cost an index entry per observation, most of
-- the market-data handler's time (benchmarks/DATA.md); an event carries its fields
-- together, so they are stored together. Readers unnest the arrays
-- (storage.market_reads.read_observations); core.market_observations keeps the rows
-- written before this migration and the row-per-observation path.
CREATE TABLE core.market_events (
    event_row_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset text NOT NULL CHECK (asset <> ''),
    date date NOT NULL,
    available_at timestamptz NOT NULL,
    fields text[] NOT NULL,
    observed_values float8[] NOT NULL,
    ingested_at timestamptz NOT NULL DEFAULT now(),
    CHECK (cardinality(fields) > 0 AND cardinality(fields) = cardinality(observed_values))
);
-- one index for both lookups: a batch's keys (the contradiction check) and a period's
-- reports (every asset on one date)
CREATE INDEX market_events_by_date ON core.market_events (date, asset, available_at);

CREATE OR REPLACE VIEW core.market_observations_all AS
SELECT asset, date, field, value, available_at, ingested_at
FROM core.market_observations
UNION ALL
SELECT b.asset, o.date, b.field, o.value, o.available_at, b.ingested_at
FROM core.market_blocks AS b,
     unnest(b.dates, b.observed_values, b.available_at) AS o(date, value, available_at)
UNION ALL
SELECT e.asset, e.date, f.field, f.value, e.available_at, e.ingested_at
FROM core.market_events AS e,
     unnest(e.fields, e.observed_values) AS f(field, value);

GRANT SELECT, INSERT ON core.market_events TO {app_role};
GRANT SELECT ON core.market_observations_all TO {app_role};
