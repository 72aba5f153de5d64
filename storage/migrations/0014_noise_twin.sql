-- 0014: what noise alone would admit (alphafactory/noise.py). Each evaluation keeps its
-- candidate's HAC t on the decision's noise twin (its panel with the market rows in a
-- random order) and whether it met the strategy's definition there; each admission keeps
-- how many of its trials met the definition on the twin and how many of those the control
-- admitted. Null where the strategy does not score the twin ([alpha] noise_twin = false)
-- and for rows written before this migration.
ALTER TABLE core.evaluations
    ADD COLUMN noise_hac_tstat double precision,
    ADD COLUMN noise_qualified boolean;

ALTER TABLE core.admissions
    ADD COLUMN noise_qualified integer CHECK (noise_qualified >= 0 AND noise_qualified <= trials),
    ADD COLUMN noise_admitted integer
        CHECK (noise_admitted >= 0 AND noise_admitted <= noise_qualified);
