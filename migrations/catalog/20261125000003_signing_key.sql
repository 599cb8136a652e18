-- Keys that sign access tokens. The newest active key signs; every key not yet retired is published
-- at /.well-known/jwks.json, so tokens signed before a rotation stay valid until they expire.
create table signing_key (
    kid          text primary key,
    algorithm    text not null check (algorithm in ('EdDSA')),
    -- PKCS#8 DER of the Ed25519 private key.
    private_der  bytea not null,
    -- The public key as the JWK `x` member (base64url).
    public_x     text not null,
    created_at   timestamptz not null default now(),
    -- Set when a newer key took over signing; the key stays published until `retire_after`.
    superseded_at timestamptz,
    retire_after timestamptz
);

grant select, insert, update, delete on signing_key to aries_app;
