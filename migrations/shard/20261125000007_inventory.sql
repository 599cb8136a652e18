-- Warehouses, inventory items and serial-numbered equipment. A serial's status is the fold of its
-- events (`serial_event`, append-only); `serial` keeps that fold as a read model, rewritten in the
-- same transaction as each event.
create table warehouse (
    tenant_id    uuid not null references tenant (tenant_id),
    warehouse_id uuid not null,
    code         text not null,
    name         text not null,
    active       boolean not null default true,
    version      bigint not null default 1,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    primary key (tenant_id, warehouse_id),
    constraint warehouse_code_key unique (tenant_id, code)
);

create table inventory_item (
    tenant_id    uuid not null references tenant (tenant_id),
    item_id      uuid not null,
    code         text not null,
    name         text not null,
    -- Tracked unit by unit with serial numbers.
    serialized   boolean not null default false,
    -- An oxygen tank: returns empty, goes out for filling.
    oxygen_tank  boolean not null default false,
    manufacturer text,
    model_number text,
    active       boolean not null default true,
    version      bigint not null default 1,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    primary key (tenant_id, item_id),
    constraint inventory_item_code_key unique (tenant_id, code)
);

create table serial (
    tenant_id     uuid not null references tenant (tenant_id),
    serial_id     uuid not null,
    item_id       uuid not null,
    serial_number text not null,
    -- The fold of the events (JSON of SerialState), kept for reads and filters.
    status        text not null,
    state         jsonb not null,
    version       bigint not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, serial_id),
    constraint serial_number_key unique (tenant_id, item_id, serial_number),
    foreign key (tenant_id, item_id) references inventory_item (tenant_id, item_id)
);
create index serial_status_idx on serial (tenant_id, status, serial_id);

create table serial_event (
    tenant_id   uuid not null references tenant (tenant_id),
    serial_id   uuid not null,
    seq         integer not null,
    event       jsonb not null,
    occurred_at timestamptz not null default now(),
    primary key (tenant_id, serial_id, seq),
    foreign key (tenant_id, serial_id) references serial (tenant_id, serial_id)
);

do $$
declare t text;
begin
    foreach t in array array['warehouse', 'inventory_item', 'serial', 'serial_event'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on warehouse, inventory_item, serial to aries_app;
revoke update, delete on serial_event from aries_app;
grant select, insert on serial_event to aries_app;
