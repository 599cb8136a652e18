-- Price lists (legacy tbl_pricecode) and their rows per inventory item (tbl_pricecode_item): the
-- HCPCS billing code, up to four modifiers, rent and sale prices (billable = usual and customary,
-- allowable = what the payer allows), and the defaults an order line takes. A payer may name its
-- default price list (legacy PriceCodeID). Fee-schedule imports and percentage adjustments are
-- recorded in the audit trail (who, when, state, rural, counts), not in a table of their own.
create table price_list (
    tenant_id     uuid not null references tenant (tenant_id),
    price_list_id uuid not null,
    name          text not null,
    description   text,
    -- Inactive lists keep their rows but should not be chosen for new orders.
    active        boolean not null default true,
    version       bigint not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, price_list_id),
    constraint price_list_name_key unique (tenant_id, name)
);

create table price_list_item (
    tenant_id          uuid not null references tenant (tenant_id),
    price_list_id      uuid not null,
    item_id            uuid not null,
    -- HCPCS Level II billing code (there is no HCPCS on the item: it sits here, per list).
    hcpcs              text not null check (hcpcs ~ '^[A-V][0-9]{4}$'),
    -- Up to four two-character pricing modifiers, in claim order.
    modifiers          text[] not null default '{}'
        check (cardinality(modifiers) <= 4 and array_position(modifiers, null) is null),
    -- Prices; null where the row is not priced that way.
    rent_billable      numeric(12, 2) check (rent_billable >= 0),
    rent_allowable     numeric(12, 2) check (rent_allowable >= 0),
    sale_billable      numeric(12, 2) check (sale_billable >= 0),
    sale_allowable     numeric(12, 2) check (sale_allowable >= 0),
    -- Defaults for a new order line (OrderType, SaleRentType, BillingFrequency, BillItemOn names).
    default_order_type text not null default 'sale' check (default_order_type in ('sale', 'rental')),
    rental_type        text not null default 'monthly_rental' check (rental_type in (
        'one_time_sale', 'reoccurring_sale', 'one_time_rental', 'monthly_rental', 'capped_rental',
        'parental_capped_rental', 'rent_to_purchase', 'medicare_oxygen_rental')),
    billing_frequency  text not null default 'monthly' check (billing_frequency in (
        'one_time', 'daily', 'weekly', 'monthly', 'calendar_monthly', 'quarterly', 'semi_annually',
        'annually')),
    bill_item_on       text not null default 'day_of_delivery' check (bill_item_on in (
        'day_of_delivery', 'last_day_of_month', 'last_day_of_period', 'day_of_pickup')),
    taxable            boolean not null default false,
    -- A flat-rate row bills its price as is, whatever the quantity.
    flat_rate          boolean not null default false,
    version            bigint not null default 1,
    created_at         timestamptz not null default now(),
    updated_at         timestamptz not null default now(),
    primary key (tenant_id, price_list_id, item_id),
    foreign key (tenant_id, price_list_id) references price_list (tenant_id, price_list_id),
    foreign key (tenant_id, item_id) references inventory_item (tenant_id, item_id)
);
-- The fee-schedule import and the adjustment select a list's rows by code.
create index price_list_item_hcpcs_idx on price_list_item (tenant_id, price_list_id, hcpcs);
-- The lists an item is priced in (and the foreign key's lookups).
create index price_list_item_item_idx on price_list_item (tenant_id, item_id);

do $$
declare t text;
begin
    foreach t in array array['price_list', 'price_list_item'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on price_list, price_list_item to aries_app;

-- The payer's default price list (legacy PriceCodeID).
alter table payer add column default_price_list_id uuid;
alter table payer add constraint payer_default_price_list_fkey
    foreign key (tenant_id, default_price_list_id) references price_list (tenant_id, price_list_id);
create index payer_default_price_list_idx on payer (tenant_id, default_price_list_id);
