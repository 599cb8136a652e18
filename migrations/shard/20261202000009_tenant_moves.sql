-- Online tenant moves (issue 8): the fence every tenant transaction passes, change capture for the
-- catch-up, and what lets a moved tenant's rows be removed.

-- The fence. A tenant's anchor row carries the placement epoch it serves under and whether this
-- shard serves it at all. Every writer holds the tenant's transaction-level advisory lock SHARED
-- (key: `hashtextextended(tenant_id::text, 0)`) for its whole transaction; a move freezes the
-- tenant by taking it EXCLUSIVE, which waits for writers in flight while new ones queue behind it
-- (heavyweight locks are granted in order, so a busy tenant cannot starve the freeze, which row
-- locks would allow), then sets `serving = false`; the catalog's placement then moves on to the
-- next epoch. The row stays behind on the old shard as a tombstone.
alter table tenant add column epoch bigint not null default 1;
alter table tenant add column serving boolean not null default true;

-- Shard-wide state an operator sets: `read_only` refuses every write on the shard (code AR002).
create table aries_shard_state (
    singleton boolean primary key default true check (singleton),
    read_only boolean not null default false
);
insert into aries_shard_state default values;
grant select on aries_shard_state to aries_app;

-- Opens a tenant transaction: binds row-level security to the tenant (transaction-local), then
-- checks the fence. `p_epoch` is the placement epoch the caller routed by (null: any epoch, for
-- shard-local workers such as the outbox relay). A write takes the tenant's advisory lock shared
-- until its transaction ends (writers never block each other; a mover's exclusive lock waits for
-- them), then checks the anchor row with a fresh snapshot; a read only checks. Errors: AR001 the
-- tenant is not served here under that epoch (moved, frozen, or never here): reload the placement
-- and retry; AR002 the shard is read-only.
create function aries_enter(p_tenant uuid, p_epoch bigint, p_write boolean) returns void
language plpgsql as $$
begin
    perform set_config('aries.tenant_id', p_tenant::text, true);
    if p_write then
        if exists (select 1 from aries_shard_state where read_only) then
            raise exception 'the shard is read-only' using errcode = 'AR002';
        end if;
        perform pg_advisory_xact_lock_shared(hashtextextended(p_tenant::text, 0));
        perform 1 from tenant
          where tenant_id = p_tenant and serving and (p_epoch is null or epoch = p_epoch);
    else
        perform 1 from tenant
          where tenant_id = p_tenant and serving and (p_epoch is null or epoch = p_epoch);
    end if;
    if not found then
        raise exception 'the tenant is not served by this shard under placement epoch %', p_epoch
            using errcode = 'AR001';
    end if;
end $$;

-- Change capture while a tenant moves off this shard. A mover inserts the tenant into
-- `aries_move_capture` and installs the trigger below on every tenant table (only while a move
-- runs: the trigger costs writers nothing otherwise); the trigger logs the primary key of every
-- row of a captured tenant that is inserted, updated or deleted. The catch-up re-reads those keys
-- and copies their current state (or their absence) to the target.
create table aries_move_capture (
    tenant_id  uuid primary key,
    started_at timestamptz not null default now()
);
create table aries_move_change (
    change_id  bigint generated always as identity primary key,
    tenant_id  uuid not null,
    table_name text not null,
    -- The row's primary key as {column: value}; the trigger's arguments name the columns.
    pk         jsonb not null
);
create index aries_move_change_tenant_idx on aries_move_change (tenant_id, change_id);

-- Runs as the owner (security definer): the application role has no grant on the capture tables.
create function aries_move_capture() returns trigger
language plpgsql security definer set search_path = public, pg_catalog as $$
declare
    r   record;
    k   jsonb;
    old_k jsonb;
begin
    if TG_OP = 'DELETE' then r := OLD; else r := NEW; end if;
    if not exists (select 1 from aries_move_capture c where c.tenant_id = r.tenant_id) then
        return null;
    end if;
    select jsonb_object_agg(a, to_jsonb(r) -> a) into k from unnest(TG_ARGV) a;
    insert into aries_move_change (tenant_id, table_name, pk) values (r.tenant_id, TG_TABLE_NAME, k);
    if TG_OP = 'UPDATE' then
        select jsonb_object_agg(a, to_jsonb(OLD) -> a) into old_k from unnest(TG_ARGV) a;
        if old_k is distinct from k then
            insert into aries_move_change (tenant_id, table_name, pk)
                values (OLD.tenant_id, TG_TABLE_NAME, old_k);
        end if;
    end if;
    return null;
end $$;

-- Removing a tenant's rows (the source after a move, a target after a move rolled back): the
-- owner lists the tenant here for the length of the removal, which is the only way past the audit
-- trail's append-only rule. The application role can read the list, never write it.
create table aries_tenant_purge (
    tenant_id uuid primary key
);
grant select on aries_tenant_purge to aries_app;

create or replace function audit_event_append_only() returns trigger language plpgsql as $$
begin
    if TG_OP = 'DELETE' and exists (select 1 from aries_tenant_purge p where p.tenant_id = OLD.tenant_id) then
        return OLD;
    end if;
    raise exception 'the audit trail is append-only';
end $$;

-- The catch-up applies a batch of changes in one transaction: deletes first (children before
-- parents), then upserts (parents before children). A row whose parent changes within the batch
-- may be checked only at commit, so every foreign key becomes deferrable. It stays initially
-- immediate: nothing changes for the application, which never defers.
do $$
declare c record;
begin
    for c in select conrelid::regclass as tbl, conname from pg_constraint
              where contype = 'f' and connamespace = 'public'::regnamespace and not condeferrable loop
        execute format('alter table %s alter constraint %I deferrable initially immediate', c.tbl, c.conname);
    end loop;
end $$;
