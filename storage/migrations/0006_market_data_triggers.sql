-- 0006: market.data events trigger strategies. A strategy with triggers.market =
-- "period_close" decides once per period (an observation date) when every asset of its
-- universe has reported, or when its timeout passes after the first report; each period's
-- state is kept here, so a redelivered event or a restarted handler never decides twice.
ALTER TABLE core.generation_requests DROP CONSTRAINT generation_requests_trigger_check;
ALTER TABLE core.generation_requests ADD CONSTRAINT generation_requests_trigger_check
    CHECK (trigger IN ('release', 'schedule', 'manual', 'market'));

CREATE TABLE core.market_periods (
    strategy_id      text NOT NULL CHECK (strategy_id <> ''),
    period           date NOT NULL,
    first_seen_at    timestamptz NOT NULL,   -- availability of the period's first observation
    closed_at        timestamptz,            -- the decision time, once decided
    closed_by        text CHECK (closed_by IN ('complete', 'timeout')),
    PRIMARY KEY (strategy_id, period),
    CHECK ((closed_at IS NULL) = (closed_by IS NULL))
);
CREATE INDEX market_periods_open ON core.market_periods (first_seen_at) WHERE closed_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON core.market_periods TO {app_role};
