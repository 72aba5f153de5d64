-- 0004: failures and deliveries recorded in Postgres (the system of record), what the
-- reconciler re-drove, and allocations ordered by their decision time.

-- A request that cannot be completed (poison: its data, formulas or decision are bad)
-- ends with a recorded failure instead of an allocation; one skipped by the rebalance rule
-- records why. Either way the reconciler knows it is finished.
ALTER TABLE core.generation_requests
    ADD COLUMN failed_at timestamptz,
    ADD COLUMN failure text CHECK (failure <> ''),
    ADD COLUMN skipped text CHECK (skipped <> ''),
    ADD CONSTRAINT generation_requests_failure_pair
        CHECK ((failed_at IS NULL) = (failure IS NULL));

-- Every delivery of a Celery task, counted where a killed worker cannot forget it: a task
-- started more than N times without finishing is one that kills its worker.
CREATE TABLE core.task_deliveries (
    task_id    text PRIMARY KEY CHECK (task_id <> ''),
    request_id text NOT NULL,
    started    integer NOT NULL DEFAULT 0 CHECK (started >= 0),
    finished   integer NOT NULL DEFAULT 0 CHECK (finished >= 0),
    first_at   timestamptz NOT NULL DEFAULT now(),
    last_at    timestamptz NOT NULL DEFAULT now()
);

-- "Latest" is the latest decision, not the last commit: two triggers on one date, or a
-- replay out of order, must not make an older decision the one trading systems read.
ALTER TABLE core.allocations ADD COLUMN decision_time timestamptz;
UPDATE core.allocations AS a SET decision_time = r.decision_time
FROM core.generation_requests AS r
WHERE r.strategy_id = a.strategy_id AND r.trigger_event_id = a.trigger_event_id;
UPDATE core.allocations SET decision_time = as_of::timestamptz WHERE decision_time IS NULL;
ALTER TABLE core.allocations ALTER COLUMN decision_time SET NOT NULL;
CREATE INDEX allocations_decision_idx
    ON core.allocations (strategy_id, decision_time DESC, allocation_id DESC);

CREATE OR REPLACE VIEW trading.target_positions AS
SELECT a.strategy_id,
       a.allocation_id,
       a.as_of,
       p.asset,
       p.weight,
       a.created_at,
       a.trigger_event_id,
       a.decision_time
FROM core.allocations AS a
JOIN core.positions AS p USING (allocation_id);

-- The newest decision per strategy; ties (one instant, two triggers) by allocation id.
CREATE OR REPLACE VIEW trading.latest_target_positions AS
SELECT t.strategy_id,
       t.allocation_id,
       t.as_of,
       t.asset,
       t.weight,
       t.created_at,
       t.trigger_event_id,
       t.decision_time
FROM trading.target_positions AS t
JOIN (
    SELECT DISTINCT ON (strategy_id) allocation_id
    FROM core.allocations
    ORDER BY strategy_id, decision_time DESC, allocation_id DESC
) AS latest USING (allocation_id);

-- A decision is an instant, not a date: two triggers on one New York day see different
-- data. Evaluations and alpha pools are keyed by the decision time (rows from before this
-- version, one decision per date, get the date's midnight).
ALTER TABLE core.evaluations ADD COLUMN decision_time timestamptz;
UPDATE core.evaluations SET decision_time = as_of::timestamptz;
ALTER TABLE core.evaluations ALTER COLUMN decision_time SET NOT NULL;
ALTER TABLE core.evaluations DROP CONSTRAINT evaluations_pkey;
ALTER TABLE core.evaluations ADD PRIMARY KEY (formula_hash, strategy_id, decision_time);
CREATE INDEX evaluations_decision_idx ON core.evaluations (strategy_id, decision_time);
ALTER TABLE core.alpha_pools ADD COLUMN decision_time timestamptz;
UPDATE core.alpha_pools SET decision_time = as_of::timestamptz;
ALTER TABLE core.alpha_pools ALTER COLUMN decision_time SET NOT NULL;
ALTER TABLE core.alpha_pools DROP CONSTRAINT alpha_pools_pkey;
ALTER TABLE core.alpha_pools ADD PRIMARY KEY (strategy_id, decision_time, formula_hash);

-- A broker that lost its log starts its offsets again from 0, so the coordinates alone do
-- not name a record: a dead letter is the same only if its payload is the same too.
ALTER TABLE core.dead_letters
    ADD COLUMN payload_sha256 bytea GENERATED ALWAYS AS (sha256(payload)) STORED,
    DROP CONSTRAINT dead_letters_record_key,
    ADD CONSTRAINT dead_letters_record_key UNIQUE (topic, partition, "offset", payload_sha256);

-- What the reconciler found unfinished and re-drove (operators and the fault tests read it).
CREATE TABLE core.reconciler_actions (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    action     text NOT NULL CHECK (action <> ''),
    subject    text NOT NULL CHECK (subject <> ''),
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reconciler_actions_created_idx ON core.reconciler_actions (created_at);
-- Requests a reconciler looks for: not finished (no candidates yet, or some pending).
CREATE INDEX generation_requests_open_idx ON core.generation_requests (created_at)
    WHERE failed_at IS NULL AND skipped IS NULL;

GRANT SELECT, INSERT, UPDATE ON core.task_deliveries TO {app_role};
GRANT SELECT, INSERT ON core.reconciler_actions TO {app_role};
