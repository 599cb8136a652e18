-- Orders (legacy tbl_order) and their lines (tbl_orderdetails): a patient's equipment, sold or
-- rented, from intake through approval, delivery and pickup. Billing (issue 5) advances the
-- billing cursor kept on each line (billing_month, dos_from, dos_to, next_bill_date).

-- The last order number handed out per tenant (`O000123`), taken with a row lock in the
-- creating transaction so concurrent creates never share a number.
create table order_number_counter (
    tenant_id  uuid not null references tenant (tenant_id),
    last_value bigint not null default 0,
    primary key (tenant_id)
);

create table patient_order (
    tenant_id         uuid not null references tenant (tenant_id),
    order_id          uuid not null,
    -- The provider's reference for the order, unique within the tenant.
    order_number      text not null,
    patient_id        uuid not null,
    -- new, approved, closed, canceled (tenants::dme::orders::OrderState).
    state             text not null default 'new'
                      check (state in ('new', 'approved', 'closed', 'canceled')),
    order_date        date not null,
    -- The ordering prescriber (defaults to the patient's primary prescriber).
    prescriber_id     uuid,
    -- The branch taking the order.
    location_id       uuid,
    -- Where the equipment is delivered from (stock is committed there at approval).
    warehouse_id      uuid,
    -- ICD-10-CM codes, in claim order; lines point into this list (at most 12).
    diagnosis_codes   text[] not null default '{}' check (cardinality(diagnosis_codes) <= 12),
    -- CMS place-of-service code; 12 = home.
    place_of_service  text not null default '12' check (place_of_service ~ '^[0-9]{2}$'),
    -- The provider accepts the payer's allowed amount as payment in full (Medicare assignment).
    accept_assignment boolean not null default true,
    -- Billed to the patient only: needs no policy nor signature on file.
    self_pay          boolean not null default false,
    notes             text,
    -- Set by the first delivery: the first date of service and the date billing starts from.
    delivery_date     date,
    bill_date         date,
    approved_at       timestamptz,
    canceled_at       timestamptz,
    cancel_reason     text,
    version           bigint not null default 1,
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    primary key (tenant_id, order_id),
    constraint patient_order_number_key unique (tenant_id, order_number),
    foreign key (tenant_id, patient_id) references patient (tenant_id, patient_id),
    foreign key (tenant_id, prescriber_id) references prescriber (tenant_id, prescriber_id),
    foreign key (tenant_id, location_id) references location (tenant_id, location_id)
        on delete set null (location_id),
    foreign key (tenant_id, warehouse_id) references warehouse (tenant_id, warehouse_id)
);
create index patient_order_patient_idx on patient_order (tenant_id, patient_id, order_id);
create index patient_order_state_idx on patient_order (tenant_id, state, order_id);

-- The policies an order bills, in billing order (legacy CustomerInsurance1–4): a snapshot taken
-- when the order is created, so re-ranking the patient's policies later does not re-route claims
-- already under way.
create table order_policy (
    tenant_id uuid not null references tenant (tenant_id),
    order_id  uuid not null,
    rank      smallint not null check (rank between 1 and 4),
    policy_id uuid not null,
    primary key (tenant_id, order_id, rank),
    constraint order_policy_once unique (tenant_id, order_id, policy_id),
    foreign key (tenant_id, order_id) references patient_order (tenant_id, order_id) on delete cascade,
    constraint order_policy_policy_fkey foreign key (tenant_id, policy_id)
        references patient_policy (tenant_id, policy_id)
);
create index order_policy_policy_idx on order_policy (tenant_id, policy_id);

create table order_line (
    tenant_id             uuid not null references tenant (tenant_id),
    order_line_id         uuid not null,
    order_id              uuid not null,
    -- 1, 2, 3… within the order, for people and claims.
    line_number           integer not null,
    item_id               uuid not null,
    -- The list the defaults and prices came from (a fee-schedule import may re-price new lines).
    price_list_id         uuid not null,
    -- new, approved, delivered, pickup, closed, canceled (tenants::dme::orders::LineState).
    state                 text not null default 'new' check (state in
                          ('new', 'approved', 'delivered', 'pickup', 'closed', 'canceled')),
    sale_rent_type        text not null check (sale_rent_type in (
        'one_time_sale', 'reoccurring_sale', 'one_time_rental', 'monthly_rental', 'capped_rental',
        'parental_capped_rental', 'rent_to_purchase', 'medicare_oxygen_rental')),
    billing_frequency     text not null check (billing_frequency in (
        'one_time', 'daily', 'weekly', 'monthly', 'calendar_monthly', 'quarterly', 'semi_annually',
        'annually')),
    bill_item_on          text not null check (bill_item_on in (
        'day_of_delivery', 'last_day_of_month', 'last_day_of_period', 'day_of_pickup')),
    hcpcs                 text not null check (hcpcs ~ '^[A-V][0-9]{4}$'),
    modifiers             text[] not null default '{}' check (cardinality(modifiers) <= 4),
    -- Units billed per period (and delivered, for items without serial numbers).
    quantity              integer not null check (quantity between 1 and 100000),
    -- Per-unit prices of this line's kind (rent for rentals, sale for sales); null = not priced.
    billable_price        numeric(12, 2) check (billable_price >= 0),
    allowable_price       numeric(12, 2) check (allowable_price >= 0),
    -- The purchase prices, which rent to purchase needs for its last month.
    sale_billable_price   numeric(12, 2) check (sale_billable_price >= 0),
    sale_allowable_price  numeric(12, 2) check (sale_allowable_price >= 0),
    taxable               boolean not null default false,
    flat_rate             boolean not null default false,
    -- 1-based pointers into the order's diagnosis codes (claims carry up to four).
    dx_pointers           smallint[] not null default '{1}' check (cardinality(dx_pointers) between 0 and 4),
    authorization_number  text,
    authorization_expires date,
    -- The certificate of medical necessity (or DIF) on file: a reference and its end date.
    cmn_reference         text,
    cmn_expires           date,
    -- Set by delivery: the unit handed over (serialized items) and the dates billing starts from.
    serial_id             uuid,
    delivery_date         date,
    -- The billing cursor (advanced by billing runs): months billed so far, the next period.
    billing_month         integer not null default 0 check (billing_month >= 0),
    dos_from              date,
    dos_to                date,
    next_bill_date        date,
    -- Set by pickup: when the equipment came back, into which warehouse; end_date ends billing.
    pickup_date           date,
    return_warehouse_id   uuid,
    end_date              date,
    version               bigint not null default 1,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    primary key (tenant_id, order_line_id),
    constraint order_line_number_key unique (tenant_id, order_id, line_number),
    foreign key (tenant_id, order_id) references patient_order (tenant_id, order_id),
    foreign key (tenant_id, item_id) references inventory_item (tenant_id, item_id),
    foreign key (tenant_id, price_list_id) references price_list (tenant_id, price_list_id),
    foreign key (tenant_id, serial_id) references serial (tenant_id, serial_id),
    foreign key (tenant_id, return_warehouse_id) references warehouse (tenant_id, warehouse_id)
);
create index order_line_order_idx on order_line (tenant_id, order_id, line_number);
-- A fee-schedule import re-prices the new lines of a list by code.
create index order_line_price_list_idx on order_line (tenant_id, price_list_id, state);
-- A serial is with at most one open line at a time.
create unique index order_line_open_serial_idx on order_line (tenant_id, serial_id)
    where serial_id is not null and state = 'delivered';

do $$
declare t text;
begin
    foreach t in array array['order_number_counter', 'patient_order', 'order_policy', 'order_line'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on order_number_counter, patient_order, order_policy, order_line to aries_app;
