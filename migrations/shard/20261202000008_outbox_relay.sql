-- The outbox relay (issue 6): events are published per tenant in commit order.
--
-- `outbox_cursor` holds, per tenant, the last sequence number handed to an event and the last one
-- the broker confirmed. Recording an event increments `last_seq` with an upsert, which takes the
-- row's lock until the writing transaction ends: a later transaction of the same tenant gets a
-- higher number only after the earlier one committed (or rolled back, taking its number with it),
-- so sequence order is commit order and a committed sequence has no gaps.
--
-- The relay finds work with `last_seq > published_seq`, one indexed scan across tenants. This
-- table has no row-level security on purpose: it holds tenant ids and counters only, never tenant
-- data, and it is what lets one relay serve every tenant of the shard with the app role (the
-- events themselves stay behind the tenant policy and are read in a tenant transaction).
create table outbox_cursor (
    tenant_id     uuid primary key references tenant (tenant_id),
    last_seq      bigint not null default 0,
    published_seq bigint not null default 0
);
create index outbox_cursor_pending_idx on outbox_cursor (tenant_id) where last_seq > published_seq;

alter table outbox_event add column seq bigint;
update outbox_event e set seq = n.rn
  from (select tenant_id, event_id, row_number() over (partition by tenant_id order by event_id) rn
          from outbox_event) n
 where e.tenant_id = n.tenant_id and e.event_id = n.event_id;
insert into outbox_cursor (tenant_id, last_seq)
select tenant_id, max(seq) from outbox_event group by tenant_id;
alter table outbox_event alter column seq set not null;
create unique index outbox_event_seq_key on outbox_event (tenant_id, seq);
drop index outbox_event_unpublished_idx;
create index outbox_event_unpublished_idx on outbox_event (tenant_id, seq) where published_at is null;

-- Wakes the relay (it LISTENs on the shard database) as soon as a transaction that recorded
-- events commits; notifications of one transaction are folded into one by Postgres.
create function outbox_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('aries_outbox', '');
    return null;
end $$;
create trigger outbox_event_notify after insert on outbox_event
    for each statement execute function outbox_notify();

grant select, insert, update on outbox_cursor to aries_app;
