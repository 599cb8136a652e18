-- Online tenant moves (issue 8). One row per move; at most one unfinished move per tenant.
create table tenant_move (
    move_id        uuid primary key,
    tenant_id      uuid not null references tenant (tenant_id),
    from_shard     uuid not null references shard (shard_id),
    to_shard       uuid not null references shard (shard_id),
    -- pending → copying → catching_up → frozen → flipped → done, or rolled_back from any state
    -- before flipped (the source serves again, the target's copy is removed).
    state          text not null default 'pending'
                   check (state in ('pending', 'copying', 'catching_up', 'frozen', 'flipped', 'done', 'rolled_back')),
    -- The placement epoch the tenant had when the move started; the flip moves it to epoch + 1.
    from_epoch     bigint not null,
    -- Progress: rows in the bulk copy's snapshot, rows copied so far, catch-up rounds and the
    -- changes they applied.
    rows_total     bigint not null default 0,
    rows_copied    bigint not null default 0,
    catch_up_rounds integer not null default 0,
    changes_applied bigint not null default 0,
    -- The verification: per table, rows and checksum on each side.
    verification   jsonb,
    -- How long the tenant's writes were frozen (freeze to flip), in milliseconds.
    pause_ms       bigint,
    -- Why the move was rolled back (null when it was cancelled, or has not failed).
    error          text,
    -- Who asked (`operator:<id>`, `drain:<shard>`, `rebalance`), for the trail and the console.
    requested_by   text not null,
    -- The highest fencing token of a runner that worked on the move: a runner whose Redis lease
    -- expired (and was taken over) holds a smaller one and every update it tries is refused.
    fence_token    bigint not null default 0,
    -- The instance running it now, for operators.
    runner         text,
    created_at     timestamptz not null default now(),
    updated_at     timestamptz not null default now(),
    frozen_at      timestamptz,
    flipped_at     timestamptz,
    finished_at    timestamptz
);
create unique index tenant_move_unfinished_key on tenant_move (tenant_id)
    where state not in ('done', 'rolled_back');
create index tenant_move_created_idx on tenant_move (created_at desc, move_id);

grant select, insert, update, delete on tenant_move to aries_app;
