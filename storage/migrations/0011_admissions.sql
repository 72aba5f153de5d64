-- 0011: admission that accounts for the search (alphafactory/admission.py). Each request's
-- allocation counts the candidates it scored (its trials), those that met the strategy's
-- alpha definition, and those admitted: meeting it AND surviving the multiple-testing
-- control over all the trials. One row per request, written with its allocation (a retry
-- writes the same numbers); an evaluation's `admitted` says whether that candidate was
-- admitted at its decision (null until the decision is allocated).
ALTER TABLE core.evaluations ADD COLUMN admitted boolean;

CREATE TABLE core.admissions (
    request_id    text PRIMARY KEY REFERENCES core.generation_requests ON DELETE CASCADE,
    strategy_id   text NOT NULL CHECK (strategy_id <> ''),
    decision_time timestamptz NOT NULL,
    control       text NOT NULL CHECK (control IN ('by', 'bh', 'holm', 'bonferroni', 'none')),
    level         double precision NOT NULL CHECK (level > 0 AND level < 1),
    trials        integer NOT NULL CHECK (trials >= 0),
    qualified     integer NOT NULL CHECK (qualified >= 0 AND qualified <= trials),
    admitted      integer NOT NULL CHECK (admitted >= 0 AND admitted <= qualified),
    decided_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admissions_strategy_idx ON core.admissions (strategy_id, decision_time);

GRANT SELECT, INSERT, UPDATE ON core.admissions TO {app_role};
