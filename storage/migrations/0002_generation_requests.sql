-- 0002: generation requests and their candidates, the event pipeline's bookkeeping.
--
-- A request is registered once per (strategy, triggering event); its candidates are the
-- new formulas the generator wrote for it, each marked evaluated in the same transaction
-- as its evaluation row. The request is complete when its candidate count is known and
-- none is pending; the allocator acts only then.

CREATE TABLE core.generation_requests (
    request_id       text PRIMARY KEY CHECK (request_id <> ''),
    strategy_id      text NOT NULL CHECK (strategy_id <> ''),
    as_of            date NOT NULL,
    decision_time    timestamptz NOT NULL,
    trigger_event_id text NOT NULL CHECK (trigger_event_id <> ''),
    trigger          text NOT NULL CHECK (trigger IN ('release', 'schedule', 'manual')),
    requested_at     timestamptz NOT NULL,
    n_candidates     integer CHECK (n_candidates >= 0),  -- null until generation finished
    generated_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT generation_requests_trigger_key UNIQUE (strategy_id, trigger_event_id)
);

CREATE TABLE core.request_candidates (
    request_id   text NOT NULL REFERENCES core.generation_requests ON DELETE CASCADE,
    formula_hash text NOT NULL REFERENCES core.factors,
    evaluated_at timestamptz,  -- null until the evaluation is stored
    PRIMARY KEY (request_id, formula_hash)
);
CREATE INDEX request_candidates_pending_idx
    ON core.request_candidates (request_id) WHERE evaluated_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON core.generation_requests, core.request_candidates
    TO {app_role};
