//! Stored signing keys for access tokens (see the `signing_key` catalog migration). The catalog is
//! where every instance finds the same keys; generating and using them is `aries-http`'s business.

use aries_tenants::audit::{self, AuditActor, Trail};
use chrono::{DateTime, Duration, Utc};
use sqlx::PgPool;

/// A key as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredKey {
    /// The JWT `kid`.
    pub kid: String,
    /// PKCS#8 DER of the private key (Ed25519).
    pub private_der: Vec<u8>,
    /// The public key as the JWK `x` member.
    pub public_x: String,
    /// When it was made; the newest unsuperseded key signs.
    pub created_at: DateTime<Utc>,
    /// When a newer key took over signing.
    pub superseded_at: Option<DateTime<Utc>>,
    /// Until when tokens signed with it are honoured (absent: it still signs).
    pub retire_after: Option<DateTime<Utc>>,
}

/// Keys still published: those that sign, and superseded ones until they retire.
pub async fn published(pool: &PgPool) -> Result<Vec<StoredKey>, sqlx::Error> {
    sqlx::query_as(
        "select kid, private_der, public_x, created_at, superseded_at, retire_after from signing_key \
         where retire_after is null or retire_after > now() order by created_at",
    )
    .fetch_all(pool)
    .await
}

/// When to rotate on a schedule: `Some(age)` rotates only if the signing key is older than `age`.
pub type RotateIfOlder = Option<Duration>;

/// Adds `kid` as the signing key and supersedes the others, which stay published for `grace`
/// (the access-token lifetime plus clock skew), all in one transaction. With `only_if_none`, does
/// nothing when a signing key exists already (start-up of several instances at once).
pub async fn rotate(
    pool: &PgPool,
    kid: &str,
    private_der: &[u8],
    public_x: &str,
    grace: Duration,
    only_if_none: bool,
    by: &AuditActor,
) -> Result<bool, sqlx::Error> {
    rotate_when(
        pool,
        kid,
        private_der,
        public_x,
        grace,
        only_if_none,
        None,
        by,
    )
    .await
}

/// [`rotate`], and with `older_than` only when the current signing key is older than that (a
/// scheduled rotation that several instances may attempt at once: one does it).
#[allow(clippy::too_many_arguments)]
pub async fn rotate_when(
    pool: &PgPool,
    kid: &str,
    private_der: &[u8],
    public_x: &str,
    grace: Duration,
    only_if_none: bool,
    older_than: RotateIfOlder,
    by: &AuditActor,
) -> Result<bool, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Serialises rotations across instances.
    sqlx::query("select pg_advisory_xact_lock(hashtext('aries.signing_key'))")
        .execute(&mut *tx)
        .await?;
    if let Some(age) = older_than {
        let (fresh,): (i64,) = sqlx::query_as(
            "select count(*) from signing_key where superseded_at is null and created_at > now() - $1",
        )
        .bind(age)
        .fetch_one(&mut *tx)
        .await?;
        if fresh > 0 {
            tx.commit().await?;
            return Ok(false);
        }
    }
    if only_if_none {
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from signing_key where superseded_at is null")
                .fetch_one(&mut *tx)
                .await?;
        if n > 0 {
            tx.commit().await?;
            return Ok(false);
        }
    }
    sqlx::query(
        "update signing_key set superseded_at = now(), retire_after = now() + $1 where superseded_at is null",
    )
    .bind(grace)
    .execute(&mut *tx)
    .await?;
    sqlx::query("insert into signing_key (kid, algorithm, private_der, public_x) values ($1, 'EdDSA', $2, $3)")
        .bind(kid)
        .bind(private_der)
        .bind(public_x)
        .execute(&mut *tx)
        .await?;
    let event = by.event(
        "signing_key.rotated",
        "signing_key",
        kid,
        serde_json::json!({}),
        None,
    );
    audit::append(&mut tx, Trail::Platform, &event)
        .await
        .map_err(|e| match e {
            aries_tenants::DomainError::Database(db) => db,
            other => sqlx::Error::Protocol(other.to_string()),
        })?;
    tx.commit().await?;
    Ok(true)
}
