-- The audit trail: append-only and hash-chained per tenant. Each row carries the previous row's
-- hash and its own (SHA-256 over the previous hash and the row's fields), so altering, removing or
-- inserting a row breaks the chain at that point, which GET …/audit/verify finds.
create table audit_event (
    tenant_id   uuid not null references tenant (tenant_id),
    -- 1, 2, 3… per tenant, without gaps.
    seq         bigint not null,
    occurred_at timestamptz not null,
    -- `user:<id>`, `api_key:<id>`, `client:<id>`, `operator`, or `anonymous` (failed logins).
    actor       text not null,
    -- `<resource>.<verb>`, e.g. `location.created`, `user.disabled`, `auth.login_failed`.
    action      text not null,
    target_type text not null,
    target_id   text not null,
    request_id  text,
    source_ip   text,
    details     jsonb not null,
    prev_hash   bytea not null,
    hash        bytea not null,
    primary key (tenant_id, seq)
);
create index audit_event_action_idx on audit_event (tenant_id, action, seq);

-- The chain's head per tenant: updating it serialises appends, so two concurrent writes never
-- take the same sequence number or the same previous hash.
create table audit_head (
    tenant_id uuid primary key references tenant (tenant_id),
    seq       bigint not null,
    hash      bytea not null
);

create function audit_event_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'the audit trail is append-only';
end $$;
create trigger audit_event_append_only before update or delete on audit_event
    for each row execute function audit_event_append_only();

do $$
declare t text;
begin
    foreach t in array array['audit_event', 'audit_head'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

-- The application may read and append, never change or remove.
revoke update, delete on audit_event from aries_app;
grant select, insert on audit_event to aries_app;
grant select, insert, update on audit_head to aries_app;
