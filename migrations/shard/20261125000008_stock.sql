-- Stock: a ledger of movements per (warehouse, item), and the counters it adds up to, kept in the
-- same transaction as each movement (the counters are always the ledger's replay).
create table stock_level (
    tenant_id    uuid not null references tenant (tenant_id),
    warehouse_id uuid not null,
    item_id      uuid not null,
    on_hand      bigint not null default 0,
    committed    bigint not null default 0,
    on_order     bigint not null default 0,
    rented       bigint not null default 0,
    sold         bigint not null default 0,
    unavailable  bigint not null default 0,
    -- Reorder when available falls to this.
    reorder_point bigint not null default 0,
    version      bigint not null default 1,
    updated_at   timestamptz not null default now(),
    primary key (tenant_id, warehouse_id, item_id),
    foreign key (tenant_id, warehouse_id) references warehouse (tenant_id, warehouse_id),
    foreign key (tenant_id, item_id) references inventory_item (tenant_id, item_id)
);

create table stock_movement (
    tenant_id    uuid not null references tenant (tenant_id),
    movement_id  uuid not null,
    warehouse_id uuid not null,
    item_id      uuid not null,
    -- A MovementKind (`received`, `adjustment`, `transferred_out`…).
    kind         text not null,
    quantity     bigint not null,
    -- Pairs the two halves of a transfer.
    transfer_id  uuid,
    note         text,
    created_at   timestamptz not null default now(),
    primary key (tenant_id, movement_id),
    foreign key (tenant_id, warehouse_id, item_id) references stock_level (tenant_id, warehouse_id, item_id)
);
create index stock_movement_level_idx on stock_movement (tenant_id, warehouse_id, item_id, movement_id);

do $$
declare t text;
begin
    foreach t in array array['stock_level', 'stock_movement'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on stock_level to aries_app;
revoke update, delete on stock_movement from aries_app;
grant select, insert on stock_movement to aries_app;
