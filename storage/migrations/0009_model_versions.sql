-- 0009: the generator's model lifecycle. Each trained generator is a version of its
-- generator name (the default one is ''), trained on data released before its cutoff;
-- rollouts are an append-only log of promotions and rollbacks (the latest row is the
-- promoted version). A generation request records the version it used.
CREATE TABLE core.model_versions (
    generator     text NOT NULL,                       -- '' the default generator
    version       integer NOT NULL CHECK (version >= 1),
    cutoff        timestamptz NOT NULL,                -- trained on data released before
    trained_until timestamptz NOT NULL CHECK (trained_until <= cutoff),
    strategy_id   text NOT NULL CHECK (strategy_id <> ''),  -- whose data trained it
    checkpoint    text NOT NULL CHECK (checkpoint <> ''),
    served_model  text NOT NULL CHECK (served_model <> ''),
    training      jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    ready_at      timestamptz,                         -- exported and served: usable
    withdrawn_at  timestamptz,                         -- rolled back: never chosen again
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (generator, version),
    CONSTRAINT model_versions_cutoff_key UNIQUE (generator, cutoff)
);

CREATE TABLE core.model_rollouts (
    rollout_id  bigserial PRIMARY KEY,
    generator   text NOT NULL,
    version     integer NOT NULL,
    action      text NOT NULL CHECK (action IN ('promote', 'rollback')),
    reason      text NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (generator, version) REFERENCES core.model_versions
);
CREATE INDEX model_rollouts_latest ON core.model_rollouts (generator, rollout_id DESC);

ALTER TABLE core.generation_requests ADD COLUMN model_generator text;
ALTER TABLE core.generation_requests ADD COLUMN model_version integer;

GRANT SELECT, INSERT, UPDATE ON core.model_versions, core.model_rollouts TO {app_role};
GRANT USAGE ON SEQUENCE core.model_rollouts_rollout_id_seq TO {app_role};
