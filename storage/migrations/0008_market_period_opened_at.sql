-- When a market period opened by the wall clock (first_seen_at is the data's clock): the
-- scheduler's sweep closes a period whose timeout has passed in real time with no later
-- data to close it (storage.market_periods.stale, consumers.market_data_handler).
ALTER TABLE core.market_periods ADD COLUMN opened_at timestamptz NOT NULL DEFAULT now();
