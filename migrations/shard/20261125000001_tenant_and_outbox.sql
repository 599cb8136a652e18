-- Tenant-owned data. Every table: `tenant_id` first in the primary key and every index, row-level
-- security enabled and forced (it binds the owner too), one policy keyed on the transaction-local
-- setting `aries.tenant_id`. With the setting unset or empty, a query sees no rows at all.

-- The tenant's anchor row on this shard, written when the tenant is placed here. Tenant-owned
-- tables reference it, so no row can exist for a tenant that was never provisioned on this shard.
create table tenant (
    tenant_id  uuid primary key,
    slug       text not null,
    created_at timestamptz not null default now()
);

create table outbox_event (
    tenant_id    uuid not null references tenant (tenant_id),
    -- UUIDv7, so ordering by it is ordering by time; the relay publishes in this order.
    event_id     uuid not null,
    aggregate_id uuid not null,
    -- `<aggregate>.<verb>`, e.g. `location.created`.
    event_type   text not null,
    payload      jsonb not null,
    occurred_at  timestamptz not null default now(),
    -- Set by the relay once the broker confirmed the message.
    published_at timestamptz,
    primary key (tenant_id, event_id)
);
create index outbox_event_unpublished_idx on outbox_event (tenant_id, event_id) where published_at is null;

create table location (
    tenant_id     uuid not null references tenant (tenant_id),
    location_id   uuid not null,
    code          text not null,
    name          text not null,
    address_line1 text not null,
    address_line2 text,
    city          text not null,
    state         text not null,
    postal_code   text not null,
    phone         text,
    npi           text,
    pos_type      text not null default '12',
    active        boolean not null default true,
    version       bigint not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, location_id),
    constraint location_code_key unique (tenant_id, code)
);

do $$
declare t text;
begin
    foreach t in array array['tenant', 'outbox_event', 'location'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on tenant, outbox_event, location to aries_app;
alter default privileges in schema public grant select, insert, update, delete on tables to aries_app;
