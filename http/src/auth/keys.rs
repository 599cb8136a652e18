//! Access tokens are JWTs signed with Ed25519 (`EdDSA`). Keys live in the catalog so every instance
//! signs and verifies with the same ones; the newest signs, superseded keys stay published in the
//! JWKS until every token they signed has expired, so a rotation never breaks a live token.

use aries_shards::signing_keys::{self, StoredKey};
use aries_tenants::audit::AuditActor;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// The audience of every access token this platform issues.
pub const AUDIENCE: &str = "aries-api";
/// How often each instance re-reads the keys (rotations made elsewhere show up within this).
pub const RELOAD_EVERY: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp`/`iat`.
const LEEWAY_SECS: u64 = 30;

/// Claims of an access token (API.md "Auth").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer (configuration `auth.issuer`).
    pub iss: String,
    /// The user's id or the client's id.
    pub sub: String,
    /// `user` or `client`: what `sub` names.
    pub sub_type: String,
    /// Always [`AUDIENCE`].
    pub aud: String,
    /// Expiry (Unix seconds).
    pub exp: u64,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Unique token id.
    pub jti: String,
    /// Tenant id.
    pub tid: String,
    /// Tenant slug: a token is only good on this tenant's URLs.
    pub tenant: String,
    /// Role names at issue time (informational: permissions come from the current roles).
    pub roles: Vec<String>,
    /// Space-separated scopes.
    pub scope: String,
}

/// Why a token was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("malformed or unverifiable token: {0}")]
    Invalid(String),
    #[error("no published key has id {0}")]
    UnknownKey(String),
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
}

struct LoadedKey {
    /// JWT `kid`.
    kid: String,
    /// For signing (only the newest key signs).
    encoding: EncodingKey,
    /// For verifying.
    decoding: DecodingKey,
    /// Public key, JWK `x`.
    x: String,
    /// Whether a newer key took over signing.
    superseded: bool,
}

struct Ring {
    /// Published keys, oldest first.
    keys: Vec<LoadedKey>,
    /// When they were read.
    loaded_at: Instant,
}

/// The keys of this instance, refreshed from the catalog.
pub struct KeyRing {
    /// The catalog (app role).
    pool: PgPool,
    /// `iss` of issued tokens, checked on verification.
    issuer: String,
    /// Access-token lifetime; a superseded key stays published this long (plus skew).
    ttl: Duration,
    /// The keys as last read.
    ring: RwLock<Ring>,
}

fn load_key(k: &StoredKey) -> Result<LoadedKey, TokenError> {
    Ok(LoadedKey {
        kid: k.kid.clone(),
        encoding: EncodingKey::from_ed_der(&k.private_der),
        decoding: DecodingKey::from_ed_components(&k.public_x)
            .map_err(|e| TokenError::Invalid(e.to_string()))?,
        x: k.public_x.clone(),
        superseded: k.superseded_at.is_some(),
    })
}

/// A fresh Ed25519 key: (kid, PKCS#8 DER, JWK x).
fn generate() -> Result<(String, Vec<u8>, String), TokenError> {
    let seed: [u8; 32] = rand::random();
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let der = key
        .to_pkcs8_der()
        .map_err(|e| TokenError::Invalid(e.to_string()))?
        .as_bytes()
        .to_vec();
    let x = URL_SAFE_NO_PAD.encode(key.verifying_key().to_bytes());
    let kid = format!("k{}", uuid::Uuid::now_v7().simple());
    Ok((kid, der, x))
}

impl KeyRing {
    /// Reads the keys, creating the first one when the catalog has none.
    pub async fn start(pool: PgPool, issuer: String, ttl: Duration) -> Result<KeyRing, TokenError> {
        let ring = KeyRing {
            pool,
            issuer,
            ttl,
            ring: RwLock::new(Ring {
                keys: Vec::new(),
                loaded_at: Instant::now(),
            }),
        };
        let (kid, der, x) = generate()?;
        let system = AuditActor {
            actor: "system".into(),
            ..Default::default()
        };
        signing_keys::rotate(&ring.pool, &kid, &der, &x, ring.grace(), true, &system).await?;
        ring.reload().await?;
        Ok(ring)
    }

    fn grace(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.ttl + Duration::from_secs(2 * LEEWAY_SECS))
            .unwrap_or(chrono::Duration::hours(1))
    }

    /// Re-reads the published keys.
    pub async fn reload(&self) -> Result<(), TokenError> {
        let stored = signing_keys::published(&self.pool).await?;
        let keys = stored.iter().map(load_key).collect::<Result<Vec<_>, _>>()?;
        if let Ok(mut ring) = self.ring.write() {
            *ring = Ring {
                keys,
                loaded_at: Instant::now(),
            };
        }
        Ok(())
    }

    /// Makes a new signing key; the previous one keeps verifying until its tokens have expired.
    pub async fn rotate(&self, by: &AuditActor) -> Result<String, TokenError> {
        let (kid, der, x) = generate()?;
        signing_keys::rotate(&self.pool, &kid, &der, &x, self.grace(), false, by).await?;
        self.reload().await?;
        Ok(kid)
    }

    /// Rotates when the signing key is older than `age` (a scheduled rotation; safe to call from
    /// every instance: at most one rotates). Returns whether this call rotated.
    pub async fn rotate_if_older(&self, age: Duration) -> Result<bool, TokenError> {
        let (kid, der, x) = generate()?;
        let age = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::days(30));
        let system = AuditActor {
            actor: "system".into(),
            ..Default::default()
        };
        let rotated = signing_keys::rotate_when(
            &self.pool,
            &kid,
            &der,
            &x,
            self.grace(),
            false,
            Some(age),
            &system,
        )
        .await?;
        if rotated {
            self.reload().await?;
        }
        Ok(rotated)
    }

    /// The access-token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Signs `claims` with the current key.
    pub fn sign(&self, claims: &Claims) -> Result<String, TokenError> {
        let ring = self
            .ring
            .read()
            .map_err(|_| TokenError::Invalid("key ring poisoned".into()))?;
        let key = ring
            .keys
            .iter()
            .rev()
            .find(|k| !k.superseded)
            .ok_or_else(|| TokenError::UnknownKey("no signing key".into()))?;
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    fn decoding_key(&self, kid: &str) -> Option<DecodingKey> {
        let ring = self.ring.read().ok()?;
        ring.keys
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.decoding.clone())
    }

    fn stale(&self) -> bool {
        self.ring
            .read()
            .map(|r| r.loaded_at.elapsed() > Duration::from_secs(1))
            .unwrap_or(true)
    }

    /// Verifies signature, `exp`, `iss` and `aud`. An unknown `kid` triggers one reload (at most
    /// once a second), for a rotation made by another instance.
    pub async fn verify(&self, token: &str) -> Result<Claims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Invalid("unexpected algorithm".into()));
        }
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid".into()))?;
        let key = match self.decoding_key(&kid) {
            Some(k) => k,
            None if self.stale() => {
                self.reload().await?;
                self.decoding_key(&kid)
                    .ok_or_else(|| TokenError::UnknownKey(kid.clone()))?
            }
            None => return Err(TokenError::UnknownKey(kid)),
        };
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// The JWKS document: every published key.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .ring
            .read()
            .map(|r| {
                r.keys
                    .iter()
                    .map(|k| {
                        serde_json::json!({
                            "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": k.kid, "x": k.x
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        serde_json::json!({ "keys": keys })
    }
}
