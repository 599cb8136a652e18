-- Tenant users, roles, API keys, OAuth clients and refresh tokens: tenant-owned, so they live on the
-- tenant's shard under the same row-level security as everything else.

-- Custom roles a tenant defines, as lists of `resource:action` permissions (built-in roles are code).
create table custom_role (
    tenant_id   uuid not null references tenant (tenant_id),
    role_id     uuid not null,
    -- Referenced from users' and keys' role lists; unique per tenant, distinct from built-in names.
    name        text not null,
    permissions text[] not null,
    created_at  timestamptz not null default now(),
    primary key (tenant_id, role_id),
    constraint custom_role_name_key unique (tenant_id, name)
);

create table app_user (
    tenant_id     uuid not null references tenant (tenant_id),
    user_id       uuid not null,
    -- The login name, stored lower-case.
    email         text not null,
    display_name  text not null,
    -- Argon2id PHC string; null until the user has set a password.
    password_hash text,
    -- active | disabled
    status        text not null default 'active' check (status in ('active', 'disabled')),
    roles         text[] not null,
    -- Locations the user may act in; null means every location.
    location_ids  uuid[],
    version       bigint not null default 1,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    primary key (tenant_id, user_id),
    constraint app_user_email_key unique (tenant_id, email)
);

create table api_key (
    tenant_id    uuid not null references tenant (tenant_id),
    api_key_id   uuid not null,
    name         text not null,
    -- The visible start of the key (`ak_` + 8 characters), shown in lists so a user can tell keys apart.
    prefix       text not null,
    -- SHA-256 of the whole key; the key itself is shown once and never stored.
    key_sha256   bytea not null,
    roles        text[] not null,
    created_by   text,
    created_at   timestamptz not null default now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    primary key (tenant_id, api_key_id),
    constraint api_key_hash_key unique (tenant_id, key_sha256)
);

-- Integration clients for the client_credentials grant.
create table oauth_client (
    tenant_id     uuid not null references tenant (tenant_id),
    client_id     text not null,
    name          text not null,
    secret_sha256 bytea not null,
    roles         text[] not null,
    created_at    timestamptz not null default now(),
    revoked_at    timestamptz,
    primary key (tenant_id, client_id)
);

-- Refresh tokens: rotated on every use; presenting a rotated one again revokes its whole family.
create table refresh_token (
    tenant_id    uuid not null references tenant (tenant_id),
    token_sha256 bytea not null,
    family_id    uuid not null,
    user_id      uuid not null,
    issued_at    timestamptz not null default now(),
    expires_at   timestamptz not null,
    rotated_at   timestamptz,
    revoked_at   timestamptz,
    primary key (tenant_id, token_sha256)
);
create index refresh_token_family_idx on refresh_token (tenant_id, family_id);

do $$
declare t text;
begin
    foreach t in array array['custom_role', 'app_user', 'api_key', 'oauth_client', 'refresh_token'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format(
            'create policy tenant_isolation on %I using (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid) '
            'with check (tenant_id = nullif(current_setting(''aries.tenant_id'', true), '''')::uuid)', t);
    end loop;
end $$;

grant select, insert, update, delete on custom_role, app_user, api_key, oauth_client, refresh_token to aries_app;
