-- Messages a consumer gave up on (issue 6): moved here from the broker's dead-letter queue by the
-- archiver, so the operator can list them, read why they failed and replay them once the cause is
-- fixed. One row per (queue, message): a message that dies again after a replay updates its row.
create table dead_letter (
    dead_letter_id uuid primary key,
    -- The consumer's work queue it died in (`<ns>.webhooks`); a replay goes back there only.
    queue          text not null,
    -- The broker message id (the event id for events).
    message_id     text not null,
    routing_key    text not null,
    event_type     text,
    tenant         text,
    -- The body as published, byte for byte (replayed as is).
    body           bytea not null,
    -- The message's headers as JSON (x-death and ours), for diagnosis.
    headers        jsonb not null default '{}',
    -- The handler's last error.
    error          text not null,
    -- Attempts made before it died (the last death's).
    attempts       integer not null,
    -- Times it died (a replay that fails again counts again).
    deaths         integer not null default 1,
    status         text not null default 'dead' check (status in ('dead', 'replayed')),
    first_dead_at  timestamptz not null default now(),
    last_dead_at   timestamptz not null default now(),
    replayed_at    timestamptz,
    replays        integer not null default 0,
    constraint dead_letter_message_key unique (queue, message_id)
);
create index dead_letter_status_idx on dead_letter (status, dead_letter_id);

grant select, insert, update on dead_letter to aries_app;
