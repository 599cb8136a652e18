-- Shard lifecycle (issue 8): a shard is registered first (recorded, schema not migrated, takes no
-- tenants), then migrated, then activated; an operator can mark it read-only or drain it (move
-- every tenant away). Drains and rebalances run as jobs recorded here, so any instance can show
-- their progress.

-- registered: recorded only (its server need not be up yet); active: takes new tenants;
-- draining: keeps its tenants until a drain job has moved them away, takes no new ones;
-- read_only: no writes at all (the shard's own `aries_shard_state.read_only` enforces it).
-- Existing shards stay `active`.
alter table shard drop constraint shard_status_check;
alter table shard add constraint shard_status_check
    check (status in ('registered', 'active', 'draining', 'read_only'));

-- The shard schema's version (the highest `migrations/shard` version applied) and when it was
-- applied, as last recorded by a migration run; activation requires the version this build ships.
alter table shard add column schema_version bigint;
alter table shard add column migrated_at timestamptz;
-- When the shard row last changed (status, weight, migration).
alter table shard add column updated_at timestamptz not null default now();

-- A drain or a rebalance: an ordered list of tenant moves run one at a time.
create table shard_job (
    shard_job_id uuid primary key,
    kind         text not null check (kind in ('drain', 'rebalance')),
    -- The shard being drained; null for a rebalance.
    shard_id     uuid references shard (shard_id),
    -- running → done | failed | cancelled (a runner that stops heart-beating is failed by the
    -- next job that starts).
    state        text not null default 'running'
                 check (state in ('running', 'done', 'failed', 'cancelled')),
    -- The moves, in order: [{tenant, from_shard, to_shard, load, state, move_id?, error?}].
    steps        jsonb not null default '[]',
    -- Why the job failed or stopped early.
    error        text,
    -- Set by an operator: the runner stops before its next move.
    cancel_requested boolean not null default false,
    -- Who asked (`operator:<id>`, `cli:<user>`).
    requested_by text not null,
    -- The instance running it, and its last sign of life.
    runner       text not null,
    heartbeat_at timestamptz not null default now(),
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    finished_at  timestamptz
);
-- One job at a time on the platform: moves run one at a time, and two jobs would plan against
-- each other.
create unique index shard_job_running_key on shard_job ((true)) where state = 'running';
create index shard_job_created_idx on shard_job (created_at desc, shard_job_id);

grant select, insert, update, delete on shard_job to aries_app;
