-- 0005: bulk market data in columnar blocks. A loaded file's observations of one (asset,
-- field) are one row of parallel arrays, written with binary COPY: a row per observation
-- (core.market_observations, where market.data events still land) costs an index entry
-- each, which caps a bulk load near 100,000 observations/s; a block costs one. Readers
-- resolve vintages over both tables (storage.market); core.market_observations_all shows
-- them as one relation for SQL.
CREATE TABLE core.market_blocks (
    block_id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    asset              text NOT NULL CHECK (asset <> ''),
    field              text NOT NULL CHECK (field <> ''),
    dates              date[] NOT NULL,
    observed_values    double precision[] NOT NULL,
    available_at       timestamptz[] NOT NULL,
    -- bounds of the arrays, so a read skips blocks outside its dates or its as-of time
    first_date         date NOT NULL,
    last_date          date NOT NULL,
    first_available_at timestamptz NOT NULL,
    n_values           integer NOT NULL CHECK (n_values > 0),
    -- SHA-256 of the block as the load presented it: the same block loaded again is
    -- recognised without reading the arrays back
    content_sha256     bytea NOT NULL CHECK (length(content_sha256) = 32),
    ingested_at        timestamptz NOT NULL DEFAULT now(),
    CHECK (first_date <= last_date),
    CHECK (cardinality(dates) = n_values AND cardinality(observed_values) = n_values
           AND cardinality(available_at) = n_values)
);
CREATE INDEX market_blocks_lookup ON core.market_blocks (field, asset, first_available_at);
-- Floats of prices do not compress: skip the attempt, it costs more than it saves.
ALTER TABLE core.market_blocks
    ALTER COLUMN dates SET STORAGE EXTERNAL,
    ALTER COLUMN observed_values SET STORAGE EXTERNAL,
    ALTER COLUMN available_at SET STORAGE EXTERNAL;

CREATE VIEW core.market_observations_all AS
SELECT asset, date, field, value, available_at, ingested_at
FROM core.market_observations
UNION ALL
SELECT b.asset, o.date, b.field, o.value, o.available_at, b.ingested_at
FROM core.market_blocks AS b,
     unnest(b.dates, b.observed_values, b.available_at) AS o(date, value, available_at);

GRANT SELECT, INSERT ON core.market_blocks TO {app_role};
GRANT SELECT ON core.market_observations_all TO {app_role};
