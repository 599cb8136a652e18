-- Second factor for tenant users' console sessions: a TOTP secret per user (confirmed before it is
-- required), the last accepted time step (a code is accepted once), and single-use recovery codes.
alter table app_user add column totp_secret text;
alter table app_user add column totp_enabled boolean not null default false;
alter table app_user add column totp_last_step bigint not null default 0;

create table user_recovery_code (
    tenant_id   uuid not null references tenant (tenant_id),
    user_id     uuid not null,
    code_sha256 bytea not null,
    used_at     timestamptz,
    primary key (tenant_id, user_id, code_sha256),
    foreign key (tenant_id, user_id) references app_user (tenant_id, user_id)
);

alter table user_recovery_code enable row level security;
alter table user_recovery_code force row level security;
create policy tenant_isolation on user_recovery_code
    using (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid)
    with check (tenant_id = nullif(current_setting('aries.tenant_id', true), '')::uuid);
grant select, insert, update, delete on user_recovery_code to aries_app;
