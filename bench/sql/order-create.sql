-- The statements of one POST /v1/tenants/{t}/orders (an order without lines, with an
-- Idempotency-Key), as the application sends them to the shard, in one transaction: captured from
-- the shard's log (log_statement = all) on 2026-12-02 and kept in step with tenants/src/orders.rs
-- (create), tenants/src/idempotency.rs, tenants/src/outbox.rs and tenants/src/audit.rs. make bench
-- checks that a pgbench transaction inserts and updates as many rows as an order created through
-- the API. Variables (-D): tid (tenant), pid (patient), prid (prescriber), lid (location),
-- polid (the patient's policy). Literals carry no ':' before a letter or digit (pgbench would read a
-- variable there): the timestamps in the JSON literals use '-' instead.
-- The application sends `select aries_enter(…); begin` as one message; pgbench cannot send a
-- compound statement in prepared mode, so it takes two round trips here (one more than the app).
\set ikey random(1, 1000000000000)
begin;
select aries_enter(:tid, 1, true);
delete from idempotency_key where tenant_id = :tid and idempotency_key = 'pgb-' || :ikey and created_at < now() - interval '24 hours';
insert into idempotency_key (tenant_id, idempotency_key, request_sha256, response_body) values (:tid, 'pgb-' || :ikey, sha256(:ikey::text::bytea), 'null') on conflict do nothing;
select date_of_birth, address, signature_on_file, inactive_date, deceased_date, primary_prescriber_id, location_id, diagnosis_codes from patient where tenant_id = :tid and patient_id = :pid;
select policy_id from patient_policy where tenant_id = :tid and patient_id = :pid and (effective_date is null or effective_date <= current_date) and (inactive_date is null or inactive_date > current_date) order by rank;
select 1 from prescriber where tenant_id = :tid and prescriber_id = :prid;
select 1 from location where tenant_id = :tid and location_id = :lid;
select patient_id from patient_policy where tenant_id = :tid and policy_id = :polid;
insert into order_number_counter (tenant_id, last_value) values (:tid, 1) on conflict (tenant_id) do update set last_value = order_number_counter.last_value + 1 returning last_value
\gset
insert into patient_order (tenant_id, order_id, order_number, patient_id, order_date, prescriber_id, location_id, warehouse_id, diagnosis_codes, place_of_service, accept_assignment, self_pay, notes) values (:tid, gen_random_uuid(), 'O' || lpad(:last_value::text, 6, '0'), :pid, current_date, :prid, :lid, null, '{G47.33}', '12', true, false, null) returning order_id
\gset
delete from order_policy where tenant_id = :tid and order_id = :order_id::uuid;
insert into order_policy (tenant_id, order_id, rank, policy_id) values (:tid, :order_id::uuid, 1, :polid);
select o.order_id, o.order_number, o.patient_id, o.state, o.order_date, o.prescriber_id, o.location_id, o.warehouse_id, o.diagnosis_codes, coalesce((select array_agg(p.policy_id order by p.rank) from order_policy p where p.tenant_id = o.tenant_id and p.order_id = o.order_id), '{}') as policy_ids, o.place_of_service, o.accept_assignment, o.self_pay, o.notes, o.version, o.created_at, o.updated_at from patient_order o where o.tenant_id = :tid and o.order_id = :order_id::uuid;
select order_line_id, line_number, item_id, price_list_id, state, quantity from order_line where tenant_id = :tid and order_id = :order_id::uuid order by line_number;
with c as (insert into outbox_cursor (tenant_id, last_seq) values (:tid, 1) on conflict (tenant_id) do update set last_seq = outbox_cursor.last_seq + 1 returning last_seq) insert into outbox_event (tenant_id, event_id, aggregate_id, event_type, payload, seq) select :tid::uuid, gen_random_uuid(), :order_id::uuid, 'order.created', '{"id": "01a237a3-39f4-722f-b633-5235c1cdd512", "lines": [], "state": "new", "version": 1, "self_pay": false, "created_at": "2026-12-02T16-42-53.761383Z", "order_date": "2026-12-02", "patient_id": "01a237a3-1110-763a-9dfd-f1718f6165e5", "policy_ids": ["01a237a3-1368-720e-9287-bb49cdb8b977"], "updated_at": "2026-12-02T16-42-53.761383Z", "location_id": "01a237a3-08a8-76af-8e6f-5b316fbe9ec2", "notes": null, "order_number": "O000003", "warehouse_id": null, "prescriber_id": "01a237a3-05f2-7198-a6e6-307b07c9bcda", "diagnosis_codes": ["G47.33"], "place_of_service": "12", "accept_assignment": true}'::jsonb, c.last_seq from c;
insert into audit_head (tenant_id, seq, hash) values (:tid, 1, '\x00') on conflict (tenant_id) do update set seq = audit_head.seq + 1 returning seq, hash
\gset
insert into audit_event (tenant_id, seq, occurred_at, actor, action, target_type, target_id, request_id, source_ip, details, prev_hash, hash) values (:tid, :seq::bigint, now(), 'api_key-pgbench', 'order.created', 'order', :order_id::text, gen_random_uuid()::text, '127.0.0.1', '{}', :hash::bytea, sha256(:hash::bytea || :order_id::text::bytea));
update audit_head set hash = sha256(:hash::bytea || :order_id::text::bytea) where tenant_id = :tid::uuid;
update idempotency_key set response_body = '{"id": "01a237a3-39f4-722f-b633-5235c1cdd512", "lines": [], "state": "new", "version": 1}' where tenant_id = :tid and idempotency_key = 'pgb-' || :ikey;
commit;
