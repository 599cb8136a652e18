-- Operator accounts for the console and the operator API: password + TOTP, recovery codes.
create table operator_account (
    operator_id   uuid primary key,
    -- Login name, lower-case.
    email         text not null unique,
    display_name  text not null,
    -- Argon2id PHC string.
    password_hash text not null,
    -- platform_viewer (read), platform_operator (+ tenant lifecycle), platform_admin (everything).
    role          text not null check (role in ('platform_viewer', 'platform_operator', 'platform_admin')),
    status        text not null default 'active' check (status in ('active', 'disabled')),
    -- Base32 TOTP secret, set at enrolment; `totp_enabled` once a code confirmed it.
    totp_secret   text,
    totp_enabled  boolean not null default false,
    -- The last TOTP time step accepted: a code is never accepted twice (RFC 6238 §5.2).
    totp_last_step bigint not null default 0,
    created_at    timestamptz not null default now()
);

-- Single-use recovery codes (SHA-256 of each), issued when TOTP is confirmed.
create table operator_recovery_code (
    operator_id uuid not null references operator_account (operator_id),
    code_sha256 bytea not null,
    used_at     timestamptz,
    primary key (operator_id, code_sha256)
);

grant select, insert, update, delete on operator_account, operator_recovery_code to aries_app;
