-- Notifications: each tenant picks one channel (email over SMTP, or SMS through an HTTP gateway
-- speaking the Twilio Messages API), writes rules naming the event types that notify and whom, and
-- every attempt is logged. The notification consumer reads these with the tenant's RLS in force.

-- One per tenant. `settings` holds the provider settings that may be shown (SMTP host, port, TLS
-- mode, sender, user name; gateway base URL, account sid, sender number); `secret` the one that
-- may not (SMTP password, gateway auth token): write-only, never returned by the API, never put in
-- an event or the audit trail.
create table notification_channel (
    tenant_id  uuid not null references tenant (tenant_id),
    kind       text not null check (kind in ('email', 'sms')),
    settings   jsonb not null,
    secret     text,
    -- A paused channel sends nothing (events that arrive meanwhile are not queued for later).
    active     boolean not null default true,
    version    bigint not null default 1,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    primary key (tenant_id)
);

create table notification_rule (
    tenant_id   uuid not null references tenant (tenant_id),
    rule_id     uuid not null,
    name        text not null,
    -- Exact types (`order.approved`), an aggregate's every event (`order.*`) or everything (`*`).
    event_types text[] not null check (cardinality(event_types) between 1 and 50),
    -- Email addresses or E.164 numbers (`+15125550100`), whichever the channel sends to.
    recipients  text[] not null check (cardinality(recipients) between 1 and 50),
    active      boolean not null default true,
    version     bigint not null default 1,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    primary key (tenant_id, rule_id)
);

-- One row per (event, rule, recipient): the unique key is what makes a redelivered event send
-- nothing twice. `retrying` = the last attempt failed in a way worth another try (the message
-- will come back); `failed` = permanent (the provider refused it) or the last attempt.
create table notification_log (
    tenant_id           uuid not null references tenant (tenant_id),
    -- UUIDv7 of the first attempt: the list's order and cursor.
    log_id              uuid not null,
    event_id            uuid not null,
    event_type          text not null,
    rule_id             uuid not null,
    recipient           text not null,
    channel             text not null check (channel in ('email', 'sms')),
    status              text not null check (status in ('sent', 'failed', 'retrying')),
    -- The SMTP server's reply or the gateway's message sid, to trace a message at the provider.
    provider_message_id text,
    error               text,
    attempts            integer not null default 1 check (attempts >= 1),
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now(),
    sent_at             timestamptz,
    primary key (tenant_id, log_id),
    constraint notification_log_delivery_key unique (tenant_id, event_id, rule_id, recipient)
);
-- The log's filters (status, event type) within a tenant, newest last.
create index notification_log_status_idx on notification_log (tenant_id, status, log_id);

do $$
declare t text;
begin
    foreach t in array array['notification_channel', 'notification_rule', 'notification_log'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on notification_channel, notification_rule, notification_log to aries_app;
