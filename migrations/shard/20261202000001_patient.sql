-- Patients (the legacy "customer") and their insurance policies, ranked 1–4 (the order in which
-- payers are billed). Account numbers come from a per-tenant counter when the client gives none.

-- The last account number handed out per tenant (`P000123`); taken with a row lock in the write's
-- transaction, so two concurrent creates never get the same number.
create table patient_account_counter (
    tenant_id  uuid not null references tenant (tenant_id),
    last_value bigint not null default 0,
    primary key (tenant_id)
);

create table patient (
    tenant_id               uuid not null references tenant (tenant_id),
    patient_id              uuid not null,
    -- The provider's own reference for the patient, unique within the tenant.
    account_number          text not null,
    first_name              text not null,
    middle_name             text,
    last_name               text not null,
    date_of_birth           date not null check (date_of_birth >= date '1900-01-01'),
    -- female, male, other, unknown
    gender                  text not null default 'unknown'
                            check (gender in ('female', 'male', 'other', 'unknown')),
    phone                   text,
    email                   text,
    -- Address blocks, validated by the application: {name?, line1, line2?, city, state, postal_code}.
    -- Home address; bill-to and ship-to when they differ from it (legacy kept all three).
    address                 jsonb check (address is null or jsonb_typeof(address) = 'object'),
    bill_to                 jsonb check (bill_to is null or jsonb_typeof(bill_to) = 'object'),
    ship_to                 jsonb check (ship_to is null or jsonb_typeof(ship_to) = 'object'),
    delivery_directions     text,
    -- The branch serving the patient; deleting the branch detaches its patients.
    location_id             uuid,
    primary_prescriber_id   uuid,
    secondary_prescriber_id uuid,
    -- ICD-10-CM codes in the order they are pointed to from claims (at most 12, no duplicates).
    diagnosis_codes         text[] not null default '{}' check (cardinality(diagnosis_codes) <= 12),
    -- Financial hardship: balances may be written off (legacy Hardship).
    hardship                boolean not null default false,
    -- A signed assignment-of-benefits / release is on file (legacy SignatureOnFile).
    signature_on_file       boolean not null default false,
    inactive_date           date,
    deceased_date           date,
    version                 bigint not null default 1,
    created_at              timestamptz not null default now(),
    updated_at              timestamptz not null default now(),
    primary key (tenant_id, patient_id),
    constraint patient_account_number_key unique (tenant_id, account_number),
    constraint patient_location_fkey foreign key (tenant_id, location_id)
        references location (tenant_id, location_id) on delete set null (location_id),
    constraint patient_primary_prescriber_fkey foreign key (tenant_id, primary_prescriber_id)
        references prescriber (tenant_id, prescriber_id),
    constraint patient_secondary_prescriber_fkey foreign key (tenant_id, secondary_prescriber_id)
        references prescriber (tenant_id, prescriber_id)
);
create index patient_name_idx on patient (tenant_id, lower(last_name), lower(first_name));
create index patient_dob_idx on patient (tenant_id, date_of_birth);

create table patient_policy (
    tenant_id             uuid not null references tenant (tenant_id),
    policy_id             uuid not null,
    patient_id            uuid not null,
    payer_id              uuid not null,
    -- Billing order: 1 is billed first. Contiguous 1..n per patient, n <= 4.
    rank                  smallint not null check (rank between 1 and 4),
    policy_number         text not null,
    group_number          text,
    -- The patient's relationship to the insured: self, spouse, child, other.
    relationship          text not null default 'self'
                          check (relationship in ('self', 'spouse', 'child', 'other')),
    -- The insured's demographics when the patient is not the insured.
    insured_first_name    text,
    insured_last_name     text,
    insured_date_of_birth date,
    -- Share of the allowed amount this payer is expected to pay.
    payment_percent       numeric(5, 2) check (payment_percent between 0 and 100),
    effective_date        date,
    inactive_date         date,
    version               bigint not null default 1,
    created_at            timestamptz not null default now(),
    updated_at            timestamptz not null default now(),
    primary key (tenant_id, policy_id),
    constraint patient_policy_patient_fkey foreign key (tenant_id, patient_id)
        references patient (tenant_id, patient_id),
    constraint patient_policy_payer_fkey foreign key (tenant_id, payer_id)
        references payer (tenant_id, payer_id),
    -- Deferrable so a re-ranking can swap ranks inside one transaction.
    constraint patient_policy_rank_key unique (tenant_id, patient_id, rank)
        deferrable initially immediate,
    constraint patient_policy_insured_check check (
        relationship = 'self'
        or (insured_first_name is not null and insured_last_name is not null
            and insured_date_of_birth is not null))
);
create index patient_policy_payer_idx on patient_policy (tenant_id, payer_id);

do $$
declare t text;
begin
    foreach t in array array['patient_account_counter', 'patient', 'patient_policy'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on patient_account_counter, patient, patient_policy to aries_app;
