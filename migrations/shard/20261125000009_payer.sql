-- Payers (insurers and programs a provider bills). The default price list joins when price lists exist.
create table payer (
    tenant_id     uuid not null references tenant (tenant_id),
    payer_id      uuid not null,
    name          text not null,
    -- medicare, medicaid, commercial, managed_care, workers_comp, self_pay, other
    payer_type    text not null,
    phone         text,
    -- How claims reach the payer (legacy ECSFormat: Region A–D, Availity, Office Ally…).
    claim_channel text,
    -- Whether expected payment is computed from the billable or the allowable price.
    basis         text not null default 'allowed' check (basis in ('bill', 'allowed')),
    -- Participating (in-network) provider with this payer.
    participating boolean not null default true,
    active        boolean not null default true,
    version       bigint not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, payer_id),
    constraint payer_name_key unique (tenant_id, name)
);

alter table payer enable row level security;
alter table payer force row level security;
create policy tenant_isolation on payer
    using (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid);
grant select, insert, update, delete on payer to aries_app;
