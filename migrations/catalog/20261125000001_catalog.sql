-- The control plane: which tenants exist, which shards exist, and where each tenant lives.

create table shard (
    shard_id   uuid primary key,
    -- Operator-facing name, unique (`shard-0`).
    name       text not null unique check (name ~ '^[a-z][a-z0-9-]{1,62}$'),
    -- Where the shard is: host, port and database only. Credentials come from the instance's
    -- configuration (the app and owner roles), so no secret is stored in the catalog.
    dsn        text not null,
    -- active: takes new tenants; draining: keeps its tenants, takes no new ones; read_only: no writes.
    status     text not null default 'active' check (status in ('active', 'draining', 'read_only')),
    -- Relative capacity; placement fills shards in proportion to it.
    weight     integer not null default 100 check (weight > 0),
    created_at timestamptz not null default now()
);

create table tenant (
    tenant_id  uuid primary key,
    slug       text not null unique check (slug ~ '^[a-z][a-z0-9-]{2,62}$'),
    name       text not null,
    status     text not null default 'provisioning'
               check (status in ('provisioning', 'active', 'suspended', 'archived')),
    plan       text not null check (plan in ('starter', 'standard', 'enterprise')),
    version    bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index tenant_status_idx on tenant (status, tenant_id);

-- One row per tenant: its current shard. `epoch` increases on every move, so a writer holding an
-- old placement can be fenced off.
create table placement (
    tenant_id  uuid primary key references tenant (tenant_id),
    shard_id   uuid not null references shard (shard_id),
    epoch      bigint not null default 1,
    placed_at  timestamptz not null default now()
);
create index placement_shard_idx on placement (shard_id);

-- Operator credentials (bearer tokens); only a SHA-256 of the token is kept.
create table operator_credential (
    operator_credential_id uuid primary key,
    name         text not null,
    token_sha256 bytea not null unique,
    created_at   timestamptz not null default now(),
    revoked_at   timestamptz
);

grant select, insert, update, delete on shard, tenant, placement, operator_credential to aries_app;
alter default privileges in schema public grant select, insert, update, delete on tables to aries_app;
