-- Idempotency keys for operator POSTs (tenant creation). A tenant's creation spans the catalog and
-- a shard, so the key cannot share one transaction with it; instead the key is taken first (unique),
-- creation is itself resumable, and a retry with the key finishes or replays the same creation.
create table operator_idempotency_key (
    idempotency_key text primary key,
    -- SHA-256 of method, path and body.
    request_sha256  bytea not null,
    created_at      timestamptz not null default now()
);

grant select, insert, update, delete on operator_idempotency_key to aries_app;
