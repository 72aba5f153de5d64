-- 0016: exposures per class, for the trading desk. Beside an allocation's positions, its
-- weight, active weight (beyond what the construction holds with no information) and
-- the forecast return behind it, per class of each stored group (asset_class, sector...)
-- on the decision row (alphafactory/exposures.py). forecast_return is per period and
-- null where the allocation traded no signal. trading.class_exposures shows every
-- allocation's, trading.latest_class_exposures each strategy's newest decision's.
CREATE TABLE core.allocation_exposures (
    allocation_id   text NOT NULL REFERENCES core.allocations ON DELETE CASCADE,
    group_name      text NOT NULL CHECK (group_name <> ''),
    class_code      integer NOT NULL CHECK (class_code >= 0),
    weight          double precision NOT NULL CHECK (weight BETWEEN -1e6 AND 1e6),
    active_weight   double precision NOT NULL CHECK (active_weight BETWEEN -1e6 AND 1e6),
    forecast_return double precision CHECK (forecast_return BETWEEN -1e6 AND 1e6),
    PRIMARY KEY (allocation_id, group_name, class_code)
);
GRANT SELECT, INSERT ON core.allocation_exposures TO {app_role};

CREATE VIEW trading.class_exposures AS
SELECT a.strategy_id,
       a.allocation_id,
       a.as_of,
       a.decision_time,
       e.group_name,
       e.class_code,
       e.weight,
       e.active_weight,
       e.forecast_return
FROM core.allocations AS a
JOIN core.allocation_exposures AS e USING (allocation_id);

CREATE VIEW trading.latest_class_exposures AS
SELECT c.*
FROM trading.class_exposures AS c
JOIN (
    SELECT DISTINCT ON (strategy_id) allocation_id
    FROM core.allocations
    ORDER BY strategy_id, decision_time DESC, allocation_id DESC
) AS latest USING (allocation_id);

GRANT SELECT ON trading.class_exposures, trading.latest_class_exposures
    TO {trading_role}, {app_role};
