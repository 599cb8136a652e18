-- Operator actions, audited like tenants' (see the shard migration `audit`): one chain for the
-- platform, `tenant_id` holding the tenant acted on (or the nil UUID).
create table operator_audit_event (
    tenant_id   uuid not null,
    seq         bigint not null,
    occurred_at timestamptz not null,
    actor       text not null,
    action      text not null,
    target_type text not null,
    target_id   text not null,
    request_id  text,
    source_ip   text,
    details     jsonb not null,
    prev_hash   bytea not null,
    hash        bytea not null,
    primary key (seq)
);

create table operator_audit_head (
    -- Always the nil UUID: one chain.
    tenant_id uuid primary key,
    seq       bigint not null,
    hash      bytea not null
);

create function operator_audit_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'the audit trail is append-only';
end $$;
create trigger operator_audit_append_only before update or delete on operator_audit_event
    for each row execute function operator_audit_append_only();

revoke update, delete on operator_audit_event from aries_app;
grant select, insert on operator_audit_event to aries_app;
grant select, insert, update on operator_audit_head to aries_app;
