-- Recurring billing, invoices (claims) and accounts receivable (DOMAIN.md §3.2, §3.3).
--
-- A billing run turns each due order line's next period(s) into invoice lines, grouped into one
-- invoice per (order, billing month, flags). `invoice_line_once` makes it impossible to bill a
-- line twice for a month, whatever runs at the same time; `billing_fence` refuses the writes of a
-- run whose Redis lease was taken over (its fencing token is older than the last one seen).
-- Balances and the payer cursor are never stored: they are folds of `ar_transaction`.

-- Billing runs see a sales tax rate per branch (legacy tbl_location.TaxRate, a percentage).
alter table location add column tax_rate numeric(7, 4) not null default 0
    check (tax_rate >= 0 and tax_rate < 100);

-- What billing needs on a line beyond the order's cursor: the frequency its quantity is ordered
-- in (2 a day, billed monthly = 2 × days), and why and when it closed.
alter table order_line add column ordered_frequency text check (ordered_frequency in (
    'one_time', 'daily', 'weekly', 'monthly', 'calendar_monthly', 'quarterly', 'semi_annually',
    'annually'));
alter table order_line add column closed_on date;
alter table order_line add column close_reason text;

-- The highest fencing token a billing run of the tenant has written with.
create table billing_fence (
    tenant_id  uuid not null references tenant (tenant_id),
    last_token bigint not null default 0,
    primary key (tenant_id)
);

create table billing_run (
    tenant_id        uuid not null references tenant (tenant_id),
    billing_run_id   uuid not null,
    -- Bills every period whose invoice date is on or before this day.
    as_of            date not null,
    -- The Redis lease's fencing token the run wrote under.
    fencing_token    bigint not null,
    status           text not null default 'running' check (status in ('running', 'completed', 'failed')),
    lines_billed     integer not null default 0,
    invoices_created integer not null default 0,
    lines_closed     integer not null default 0,
    -- Why it failed (for people; details are in the logs).
    error            text,
    started_by       text not null,
    started_at       timestamptz not null default now(),
    finished_at      timestamptz,
    primary key (tenant_id, billing_run_id)
);

create table invoice_number_counter (
    tenant_id  uuid not null references tenant (tenant_id),
    last_value bigint not null default 0,
    primary key (tenant_id)
);

create table invoice (
    tenant_id         uuid not null references tenant (tenant_id),
    invoice_id        uuid not null,
    -- `I000123`, unique per tenant.
    invoice_number    text not null,
    order_id          uuid not null,
    patient_id        uuid not null,
    billing_month     integer not null check (billing_month >= 1),
    -- Grouping flags (legacy bitmask): Ins1=1, Ins2=2, Ins3=4, Ins4=8, accept assignment=16,
    -- the lines have an end date=32.
    flags             smallint not null check (flags between 0 and 63),
    invoice_date      date not null,
    -- The policies billed, in rank order, as they were when the invoice was made.
    policy_ids        uuid[] not null default '{}' check (cardinality(policy_ids) <= 4),
    prescriber_id     uuid,
    place_of_service  text not null,
    diagnosis_codes   text[] not null default '{}',
    accept_assignment boolean not null,
    -- The branch's rate (percent) the taxes were computed with.
    tax_rate          numeric(7, 4) not null default 0,
    billing_run_id    uuid not null,
    created_at        timestamptz not null default now(),
    primary key (tenant_id, invoice_id),
    constraint invoice_number_key unique (tenant_id, invoice_number),
    foreign key (tenant_id, order_id) references patient_order (tenant_id, order_id),
    foreign key (tenant_id, patient_id) references patient (tenant_id, patient_id),
    foreign key (tenant_id, billing_run_id) references billing_run (tenant_id, billing_run_id)
);
create index invoice_order_idx on invoice (tenant_id, order_id, billing_month);
create index invoice_patient_idx on invoice (tenant_id, patient_id, invoice_id);
create index invoice_date_idx on invoice (tenant_id, invoice_date);

create table invoice_line (
    tenant_id       uuid not null references tenant (tenant_id),
    invoice_line_id uuid not null,
    invoice_id      uuid not null,
    order_line_id   uuid not null,
    billing_month   integer not null check (billing_month >= 1),
    dos_from        date not null,
    dos_to          date not null check (dos_to >= dos_from),
    hcpcs           text not null,
    modifiers       text[] not null default '{}' check (cardinality(modifiers) <= 4),
    quantity        numeric(12, 2) not null check (quantity > 0),
    billable        numeric(12, 2) not null check (billable >= 0),
    allowable       numeric(12, 2) not null check (allowable >= 0),
    tax             numeric(12, 2) not null default 0 check (tax >= 0),
    -- The billing rule set that priced the line (rules are versioned by date of service).
    rule_version    text not null,
    created_at      timestamptz not null default now(),
    primary key (tenant_id, invoice_line_id),
    -- A line is billed once per month, whatever runs concurrently.
    constraint invoice_line_once unique (tenant_id, order_line_id, billing_month),
    foreign key (tenant_id, invoice_id) references invoice (tenant_id, invoice_id),
    foreign key (tenant_id, order_line_id) references order_line (tenant_id, order_line_id)
);
create index invoice_line_invoice_idx on invoice_line (tenant_id, invoice_id);

-- Accounts-receivable transactions, append-only (legacy tbl_invoice_transaction). The balance,
-- the submission status and the payer cursor (ins1 → ins2 → … → patient → settled) of an invoice
-- line are folds of its transactions in order.
create table ar_transaction (
    tenant_id         uuid not null references tenant (tenant_id),
    ar_transaction_id uuid not null,
    invoice_line_id   uuid not null,
    -- submit, auto_submit, pending_submission, voided_submission, payment, denial,
    -- contractual_writeoff, hardship_writeoff, balance_writeoff, sequestration_writeoff.
    kind              text not null check (kind in ('submit', 'auto_submit', 'pending_submission',
                          'voided_submission', 'payment', 'denial', 'contractual_writeoff',
                          'hardship_writeoff', 'balance_writeoff', 'sequestration_writeoff')),
    -- Whom it concerns: ins1..ins4 (the invoice's policies by rank) or the patient.
    payer             text not null check (payer in ('ins1', 'ins2', 'ins3', 'ins4', 'patient')),
    -- Money paid or written off (0 for submissions and denials).
    amount            numeric(12, 2) not null default 0 check (amount >= 0),
    -- What the payer allowed, and the deductible it applied (payments).
    allowed           numeric(12, 2) check (allowed >= 0),
    deductible        numeric(12, 2) check (deductible >= 0),
    posted_on         date not null,
    -- Remittance batch / check number.
    batch             text,
    comment           text,
    created_by        text not null,
    created_at        timestamptz not null default now(),
    primary key (tenant_id, ar_transaction_id),
    foreign key (tenant_id, invoice_line_id) references invoice_line (tenant_id, invoice_line_id)
);
create index ar_transaction_line_idx on ar_transaction (tenant_id, invoice_line_id, ar_transaction_id);

do $$
declare t text;
begin
    foreach t in array array['billing_fence', 'billing_run', 'invoice_number_counter', 'invoice',
                             'invoice_line', 'ar_transaction'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update on billing_fence, billing_run, invoice_number_counter to aries_app;
-- Invoices and their lines are facts once written; AR transactions are an append-only ledger.
grant select, insert on invoice, invoice_line, ar_transaction to aries_app;
