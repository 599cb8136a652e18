//! OAuth clients: integrations that get access tokens with the client-credentials grant. The
//! client id is public (`cl_…`); the secret (`cs_…`) is shown once and stored as its SHA-256.

use crate::auth::secrets;
use crate::error::DomainError;
use crate::ids::TenantId;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;

/// A registered client (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct OauthClient {
    /// Public identifier, sent as the client id.
    pub client_id: String,
    /// What the integration is.
    pub name: String,
    /// Roles its tokens carry.
    pub roles: Vec<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it was revoked (absent: live).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

type Row = (
    String,
    String,
    Vec<String>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

fn from_row((client_id, name, roles, created_at, revoked_at): Row) -> OauthClient {
    OauthClient {
        client_id,
        name,
        roles,
        created_at,
        revoked_at,
    }
}

/// Registers a client; returns it with its secret (shown once).
pub async fn create(
    conn: &mut PgConnection,
    tenant: TenantId,
    name: &str,
    roles: &[String],
) -> Result<(OauthClient, String), DomainError> {
    let client_id = secrets::generate("cl_")
        .chars()
        .take(24)
        .collect::<String>();
    let secret = secrets::generate("cs_");
    let row: Row = sqlx::query_as(
        "insert into oauth_client (tenant_id, client_id, name, secret_sha256, roles) values ($1, $2, $3, $4, $5) \
         returning client_id, name, roles, created_at, revoked_at",
    )
    .bind(tenant)
    .bind(&client_id)
    .bind(name)
    .bind(&secrets::sha256(&secret)[..])
    .bind(roles)
    .fetch_one(conn)
    .await?;
    Ok((from_row(row), secret))
}

/// All clients of the tenant, by id.
pub async fn list(
    conn: &mut PgConnection,
    tenant: TenantId,
) -> Result<Vec<OauthClient>, DomainError> {
    let rows: Vec<Row> = sqlx::query_as(
        "select client_id, name, roles, created_at, revoked_at from oauth_client where tenant_id = $1 order by client_id",
    )
    .bind(tenant)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(from_row).collect())
}

/// Revokes a client (idempotent).
pub async fn revoke(
    conn: &mut PgConnection,
    tenant: TenantId,
    client_id: &str,
) -> Result<OauthClient, DomainError> {
    let row: Option<Row> = sqlx::query_as(
        "update oauth_client set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and client_id = $2 \
         returning client_id, name, roles, created_at, revoked_at",
    )
    .bind(tenant)
    .bind(client_id)
    .fetch_optional(conn)
    .await?;
    row.map(from_row)
        .ok_or(DomainError::NotFound("oauth client"))
}

/// The live client if `secret` is its secret.
pub async fn authenticate(
    conn: &mut PgConnection,
    tenant: TenantId,
    client_id: &str,
    secret: &str,
) -> Result<Option<OauthClient>, DomainError> {
    let row: Option<Row> = sqlx::query_as(
        "select client_id, name, roles, created_at, revoked_at from oauth_client \
         where tenant_id = $1 and client_id = $2 and secret_sha256 = $3 and revoked_at is null",
    )
    .bind(tenant)
    .bind(client_id)
    .bind(&secrets::sha256(secret)[..])
    .fetch_optional(conn)
    .await?;
    Ok(row.map(from_row))
}

/// Whether the client is still live (for checking its access tokens).
pub async fn is_live(
    conn: &mut PgConnection,
    tenant: TenantId,
    client_id: &str,
) -> Result<Option<Vec<String>>, DomainError> {
    let row: Option<(Vec<String>,)> =
        sqlx::query_as("select roles from oauth_client where tenant_id = $1 and client_id = $2 and revoked_at is null")
            .bind(tenant)
            .bind(client_id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|r| r.0))
}
