-- Prescribers (ordering physicians, NPs, PAs): who signs the orders a DME provider fills.
create table prescriber (
    tenant_id        uuid not null references tenant (tenant_id),
    prescriber_id    uuid not null,
    first_name       text not null,
    last_name        text not null,
    -- National Provider Identifier, check digit validated; unique within the tenant.
    npi              text not null,
    -- MD, DO, NP, PA…
    credentials      text,
    phone            text,
    fax              text,
    license_number   text,
    license_expires  date,
    -- Medicare denies DMEPOS claims from orderers not enrolled in PECOS.
    pecos_enrolled   boolean not null default false,
    active           boolean not null default true,
    version          bigint not null default 1,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    primary key (tenant_id, prescriber_id),
    constraint prescriber_npi_key unique (tenant_id, npi)
);
create index prescriber_name_idx on prescriber (tenant_id, lower(last_name), lower(first_name));

alter table prescriber enable row level security;
alter table prescriber force row level security;
create policy tenant_isolation on prescriber
    using (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid);
grant select, insert, update, delete on prescriber to aries_app;
