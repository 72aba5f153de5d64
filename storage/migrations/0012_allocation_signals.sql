-- 0012: each allocation keeps the combined signal it was built from (asset -> the pool's
-- combined forecast on the decision row; null where no alpha was in the pool, e.g. a
-- benchmark), so the out-of-sample IC of what was traded can be measured later
-- against the returns of the period each allocation was held (the walk-forward report's
-- oos_ic and oos_ic_t).
ALTER TABLE core.allocations ADD COLUMN signal jsonb
    CHECK (signal IS NULL OR jsonb_typeof(signal) = 'object');
