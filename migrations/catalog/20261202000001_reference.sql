-- Global reference data (DOMAIN.md §1 "SODA service", §5): the HCPCS Level II catalogue and the
-- fee schedules, filled by `aries reference sync` from public APIs, and one row per sync run.
-- Not tenant data: no tenant_id, no row-level security. Writes come only from the command line,
-- connected as the owner role; the application role reads (the catalog's default privileges
-- would give it writes too, so they are taken back below).

create table hcpcs_code (
    -- HCPCS Level II: a letter A-V and four digits.
    code              text primary key check (code ~ '^[A-V][0-9]{4}$'),
    short_description text not null,
    long_description  text,
    effective_date    date,
    termination_date  date,
    -- Where the row came from: `socrata` or `cms`, and the dataset id.
    source            text not null check (source in ('socrata', 'cms')),
    dataset           text not null,
    -- When the row's content last changed (an unchanged row is not rewritten by a rerun).
    synced_at         timestamptz not null default now()
);

-- Text search over codes and descriptions (`?q=`) scans; the table holds a few thousand rows.

create table fee_schedule_entry (
    year       smallint not null check (year between 2000 and 2100),
    quarter    smallint not null check (quarter between 1 and 4),
    hcpcs      text not null check (hcpcs ~ '^[A-V][0-9]{4}$'),
    -- Blank modifiers are '' (not null) so they can be part of the key.
    modifier   text not null default '' check (modifier ~ '^([A-Z0-9]{2})?$'),
    modifier2  text not null default '' check (modifier2 ~ '^([A-Z0-9]{2})?$'),
    state      text not null check (state ~ '^[A-Z]{2}$'),
    -- The rural (R) fee rather than the non-rural (NR) one.
    rural      boolean not null,
    amount     numeric(12,2) not null check (amount >= 0),
    -- CMS payment category (CR, OX, IN, FS, ...), when the source gives it.
    category   text,
    source     text not null check (source in ('socrata', 'cms')),
    dataset    text not null,
    synced_at  timestamptz not null default now(),
    primary key (year, quarter, hcpcs, modifier, modifier2, state, rural)
);

-- The read API looks fees up by code (and state).
create index fee_schedule_entry_hcpcs_idx on fee_schedule_entry (hcpcs, state, year, quarter);

create table reference_sync (
    sync_id       uuid primary key,
    dataset_kind  text not null check (dataset_kind in ('hcpcs', 'fee_schedule')),
    source        text not null check (source in ('socrata', 'cms')),
    base_url      text not null,
    dataset       text not null,
    started_at    timestamptz not null default now(),
    finished_at   timestamptz,
    -- Records received, rows written (new or changed), rows rejected by validation.
    rows_fetched  bigint not null default 0,
    rows_upserted bigint not null default 0,
    rows_rejected bigint not null default 0,
    -- Up to 20 rejections: [{"record": n, "reason": "..."}].
    rejections    jsonb not null default '[]',
    status        text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
    error         text
);

create index reference_sync_started_idx on reference_sync (started_at desc);

revoke insert, update, delete, truncate on hcpcs_code, fee_schedule_entry, reference_sync from aries_app;
grant select on hcpcs_code, fee_schedule_entry, reference_sync to aries_app;
