//! API keys: long-lived credentials for integrations, `Authorization: Bearer ak_…`. The key is
//! shown once at creation; only its SHA-256 is stored (it has 256 random bits, so a fast hash is
//! enough) with a visible prefix so people can tell their keys apart.

use crate::auth::secrets;
use crate::error::DomainError;
use crate::ids::{ApiKeyId, TenantId};
use crate::page::PageRequest;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// Every API key starts with this, so a bearer token's kind is known without a lookup.
pub const PREFIX: &str = "ak_";
/// Random characters kept visible after the tenant part.
const VISIBLE_RANDOM: usize = 6;

/// The tenant slug an API key names (`ak_<slug>.<secret>`), so a key presented on another tenant's
/// URL is recognised as foreign (404) without a lookup. `None` when the text is not key-shaped.
pub fn tenant_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (slug, secret) = rest.split_once('.')?;
    (secret.len() == 43).then_some(slug)
}

/// An API key as listed (never the secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ApiKey {
    /// The key's id (for revocation).
    #[schema(value_type = String, format = Uuid)]
    pub id: ApiKeyId,
    /// What the key is for ("billing export").
    pub name: String,
    /// The key's visible start, to recognise it.
    pub prefix: String,
    /// Roles the key acts with.
    pub roles: Vec<String>,
    /// Who created it (a user id or `operator`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Last successful use, to the minute (absent: never used).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was revoked (absent: live).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str =
    "api_key_id as id, name, prefix, roles, created_by, created_at, last_used_at, revoked_at";

#[derive(sqlx::FromRow)]
struct Row {
    id: ApiKeyId,
    name: String,
    prefix: String,
    roles: Vec<String>,
    created_by: Option<String>,
    created_at: DateTime<Utc>,
    last_used_at: Option<DateTime<Utc>>,
    revoked_at: Option<DateTime<Utc>>,
}

impl From<Row> for ApiKey {
    fn from(r: Row) -> Self {
        ApiKey {
            id: r.id,
            name: r.name,
            prefix: r.prefix,
            roles: r.roles,
            created_by: r.created_by,
            created_at: r.created_at,
            last_used_at: r.last_used_at,
            revoked_at: r.revoked_at,
        }
    }
}

/// Creates a key; returns it with the secret, which is never available again.
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    slug: &str,
    name: &str,
    roles: &[String],
    created_by: &str,
) -> Result<(ApiKey, String), DomainError> {
    let secret = secrets::generate(&format!("{PREFIX}{slug}."));
    let prefix: String = secret
        .chars()
        .take(PREFIX.len() + slug.len() + 1 + VISIBLE_RANDOM)
        .collect();
    let sql = format!(
        "insert into api_key (tenant_id, api_key_id, name, prefix, key_sha256, roles, created_by) \
         values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
    );
    let row: Row = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(ApiKeyId::new())
        .bind(name)
        .bind(&prefix)
        .bind(&secrets::sha256(&secret)[..])
        .bind(roles)
        .bind(created_by)
        .fetch_one(conn)
        .await?;
    Ok((row.into(), secret))
}

/// A page of keys, newest last (`limit + 1` rows).
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
    page: PageRequest,
) -> Result<Vec<ApiKey>, DomainError> {
    let sql = format!(
        "select {COLUMNS} from api_key where tenant_id = $1 and ($2::uuid is null or api_key_id > $2) \
         order by api_key_id limit $3"
    );
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(page.after)
        .bind(i64::from(page.limit) + 1)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(ApiKey::from).collect())
}

/// Revokes a key (idempotent).
pub async fn revoke(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: ApiKeyId,
) -> Result<ApiKey, DomainError> {
    let sql = format!(
        "update api_key set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and api_key_id = $2 \
         returning {COLUMNS}"
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(id)
        .fetch_optional(conn)
        .await?;
    row.map(ApiKey::from)
        .ok_or(DomainError::NotFound("api key"))
}

/// The live key with this SHA-256, recording the use at most once a minute per key: the row is
/// written only when its stamp is a minute old, so authenticating is a read the rest of the time.
pub async fn authenticate(
    conn: &mut PgConnection,
    tenant: TenantId,
    key_sha256: &[u8; 32],
) -> Result<Option<ApiKey>, DomainError> {
    let sql = format!(
        "with stamped as (update api_key set last_used_at = date_trunc('minute', now()) \
           where tenant_id = $1 and key_sha256 = $2 and revoked_at is null \
             and (last_used_at is null or last_used_at < now() - interval '1 minute') returning {COLUMNS}) \
         select * from stamped \
         union all \
         select {COLUMNS} from api_key where tenant_id = $1 and key_sha256 = $2 and revoked_at is null \
           and not exists (select 1 from stamped)"
    );
    let row: Option<Row> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(tenant)
        .bind(&key_sha256[..])
        .fetch_optional(conn)
        .await?;
    Ok(row.map(ApiKey::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_tenant() {
        let key = secrets::generate("ak_acme-med.");
        assert_eq!(tenant_of(&key), Some("acme-med"));
        assert_eq!(tenant_of("ak_acme.short"), None);
        assert_eq!(tenant_of("eyJhbGciOi.x.y"), None);
    }
}
