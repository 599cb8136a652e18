-- Webhooks (issue 6): endpoints a tenant registers, one delivery row per (endpoint, event) and the
-- log of every HTTP attempt. The dispatcher (a RabbitMQ consumer) claims a delivery row before it
-- POSTs, so two instances handling the same event (a message published twice) never both send;
-- a delivered row is never sent again. Deleting an endpoint deletes its deliveries and log.
create table webhook_endpoint (
    tenant_id   uuid not null references tenant (tenant_id),
    endpoint_id uuid not null,
    -- Absolute http(s) URL, at most 2048 characters, no credentials in it.
    url         text not null check (char_length(url) <= 2048),
    description text,
    -- Exact types (`order.approved`), a whole aggregate (`order.*`) or everything (`*`).
    event_types text[] not null check (cardinality(event_types) > 0),
    -- `whsec_…`: the HMAC key of the signatures. Kept in clear (it signs), never returned after
    -- the create or a rotation, never in an event, an audit row or a log.
    secret      text not null,
    -- An inactive endpoint is kept but receives nothing.
    active      boolean not null default true,
    version     bigint not null default 1,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (tenant_id, endpoint_id)
);

create table webhook_delivery (
    tenant_id        uuid not null references tenant (tenant_id),
    endpoint_id      uuid not null,
    -- The event's id (the envelope's `id`, the broker's message_id): what receivers dedupe by.
    event_id         uuid not null,
    event_type       text not null,
    -- pending: claimed or waiting for a retry; delivered: a 2xx came back; failed: the last
    -- attempt the broker allows failed (a replay of the dead letter may still deliver it).
    status           text not null default 'pending'
        check (status in ('pending', 'delivered', 'failed')),
    -- HTTP attempts made so far (the next one is attempts + 1).
    attempts         integer not null default 0,
    last_status_code integer,
    last_error       text,
    -- While in the future, one dispatcher is sending this delivery; others keep off.
    claimed_until    timestamptz,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    delivered_at     timestamptz,
    primary key (tenant_id, endpoint_id, event_id),
    foreign key (tenant_id, endpoint_id) references webhook_endpoint (tenant_id, endpoint_id)
        on delete cascade
);
-- An endpoint's deliveries filtered by status (the list pages by event id within it).
create index webhook_delivery_status_idx on webhook_delivery (tenant_id, endpoint_id, status, event_id);

create table webhook_attempt (
    tenant_id    uuid not null references tenant (tenant_id),
    endpoint_id  uuid not null,
    event_id     uuid not null,
    -- 1, 2, … per delivery (the `Aries-Delivery-Attempt` header sent with it).
    attempt      integer not null check (attempt > 0),
    -- The receiver's status; null when no answer came (timeout, refused connection, bad address).
    status_code  integer,
    -- Why the attempt failed (a transport error, or the start of a non-2xx answer's body).
    error        text,
    duration_ms  integer not null check (duration_ms >= 0),
    -- The start of the answer's body (at most the configured number of bytes), for diagnosis.
    response_excerpt text,
    attempted_at timestamptz not null default now(),
    primary key (tenant_id, endpoint_id, event_id, attempt),
    foreign key (tenant_id, endpoint_id, event_id)
        references webhook_delivery (tenant_id, endpoint_id, event_id) on delete cascade
);

do $$
declare t text;
begin
    foreach t in array array['webhook_endpoint', 'webhook_delivery', 'webhook_attempt'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on webhook_endpoint, webhook_delivery, webhook_attempt to aries_app;
