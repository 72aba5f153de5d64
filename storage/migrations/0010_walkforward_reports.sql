-- 0010: walk-forward reports. `alphafactory walkforward` stores each report it writes
-- (report.json's object) with the monthly out-of-sample returns its plots draw, so the
-- dashboard shows the latest one. Append-only: a re-run adds a row, the newest is shown.
-- The dashboard's viewer role reads it through the owner's default privileges
-- (storage/admin.py), as every table.
CREATE TABLE core.walkforward_reports (
    report_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    strategy_id text NOT NULL CHECK (strategy_id <> ''),
    first_month text NOT NULL CHECK (first_month ~ '^\d{{4}}-\d{{2}}$'),
    last_month  text NOT NULL CHECK (last_month ~ '^\d{{4}}-\d{{2}}$'),
    report      jsonb NOT NULL CHECK (jsonb_typeof(report) = 'object'),
    -- per plotted series: its dates (YYYY-MM-DD) and returns (null where none)
    series      jsonb NOT NULL DEFAULT '{{}}'::jsonb CHECK (jsonb_typeof(series) = 'object'),
    created_at  timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT ON core.walkforward_reports TO {app_role};
