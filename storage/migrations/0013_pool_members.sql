-- 0013: the persistent pool (alphafactory/pool.py). A member is an alpha a strategy (or
-- variant) admitted at a decision and kept at later ones until it retires: entered_at is
-- the decision it entered at, sign the direction it was admitted with (-1: reversed),
-- retired_at the decision it left at, with the reason. A formula that retired may enter
-- again later: a new row. The pool as of a decision: the rows entered before it and not
-- retired by then. Written with the allocation, in its transaction.
CREATE TABLE core.pool_members (
    strategy_id   text NOT NULL CHECK (strategy_id <> ''),
    formula_hash  text NOT NULL REFERENCES core.factors,
    entered_at    timestamptz NOT NULL,
    sign          double precision NOT NULL CHECK (sign IN (-1, 1)),
    retired_at    timestamptz CHECK (retired_at IS NULL OR retired_at >= entered_at),
    retire_reason text,
    -- the out-of-sample record when it retired (alphafactory.pool.Record)
    oos_periods   integer,
    oos_ic        double precision,
    PRIMARY KEY (strategy_id, formula_hash, entered_at)
);
CREATE INDEX pool_members_active_idx ON core.pool_members (strategy_id, entered_at)
    WHERE retired_at IS NULL;

GRANT SELECT, INSERT, UPDATE ON core.pool_members TO {app_role};
