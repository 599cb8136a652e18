-- Idempotency keys for tenant POSTs (API.md, "Writes"): the first successful response is stored in
-- the same transaction as the change it made, so a retry with the same key and body gets that
-- response again, and a concurrent duplicate waits on the key's row lock instead of acting twice.
create table idempotency_key (
    tenant_id       uuid not null references tenant (tenant_id),
    idempotency_key text not null,
    -- SHA-256 of method, path and body: the same key with another request is refused.
    request_sha256  bytea not null,
    response_body   jsonb not null,
    created_at      timestamptz not null default now(),
    primary key (tenant_id, idempotency_key)
);
create index idempotency_key_created_idx on idempotency_key (tenant_id, created_at);

alter table idempotency_key enable row level security;
alter table idempotency_key force row level security;
create policy tenant_isolation on idempotency_key
    using (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid);

grant select, insert, update, delete on idempotency_key to aries_app;
