-- 0015: overfit like for like. Each allocation keeps the in-sample Sharpe ratio of the
-- position it holds: its construction (the combined signal of the alphas it traded, the
-- portfolio kind, the tilt around the decision's benchmark) applied to every row of the
-- decision's training window and held as out of sample (the execution lag included).
-- The walk-forward report's in_sample_sharpe and overfit compare it with the same
-- position's out-of-sample Sharpe. Null for the plain benchmarks and rows written before.
ALTER TABLE core.allocations ADD COLUMN in_sample_sharpe double precision;
