//! Refresh tokens (`rt_…`). Each use rotates the token: the presented one is marked rotated and a
//! new one of the same family is issued. Presenting a rotated token again means it was copied:
//! the whole family is revoked, so both the thief and the user must log in again (RFC 6749 §10.4,
//! OAuth 2.0 Security BCP §4.14).

use crate::auth::secrets;
use crate::error::DomainError;
use crate::ids::{FamilyId, TenantId, UserId};
use chrono::Duration;
use sqlx::PgConnection;

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Rotation {
    /// A fresh token of the same family, for this user.
    Rotated { user: UserId, token: String },
    /// Unknown, expired or revoked.
    Invalid,
    /// Already rotated once: the family is now revoked.
    Reused,
}

/// Issues a token of `family` (a new family for a fresh login).
pub async fn issue(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
    family: FamilyId,
    lifetime: Duration,
) -> Result<String, DomainError> {
    let token = secrets::generate("rt_");
    sqlx::query(
        "insert into refresh_token (tenant_id, token_sha256, family_id, user_id, expires_at) \
         values ($1, $2, $3, $4, now() + $5)",
    )
    .bind(tenant)
    .bind(&secrets::sha256(&token)[..])
    .bind(family.0)
    .bind(user)
    .bind(lifetime)
    .execute(conn)
    .await?;
    Ok(token)
}

/// Rotates `token`. The row is locked, so two concurrent uses of one token rotate it once and the
/// second is detected as reuse.
pub async fn rotate(
    conn: &mut PgConnection,
    tenant: TenantId,
    token: &str,
    lifetime: Duration,
) -> Result<Rotation, DomainError> {
    let hash = secrets::sha256(token);
    let row: Option<(uuid::Uuid, UserId, bool, bool, bool)> = sqlx::query_as(
        "select family_id, user_id, rotated_at is not null, revoked_at is not null, expires_at < now() \
         from refresh_token where tenant_id = $1 and token_sha256 = $2 for update",
    )
    .bind(tenant)
    .bind(&hash[..])
    .fetch_optional(&mut *conn)
    .await?;
    let Some((family, user, rotated, revoked, expired)) = row else {
        return Ok(Rotation::Invalid);
    };
    if rotated {
        sqlx::query("update refresh_token set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and family_id = $2")
            .bind(tenant)
            .bind(family)
            .execute(&mut *conn)
            .await?;
        return Ok(Rotation::Reused);
    }
    if revoked || expired {
        return Ok(Rotation::Invalid);
    }
    sqlx::query(
        "update refresh_token set rotated_at = now() where tenant_id = $1 and token_sha256 = $2",
    )
    .bind(tenant)
    .bind(&hash[..])
    .execute(&mut *conn)
    .await?;
    let token = issue(conn, tenant, user, FamilyId(family), lifetime).await?;
    Ok(Rotation::Rotated { user, token })
}

/// Revokes every refresh token of a user (disabled, password reset).
pub async fn revoke_user(
    conn: &mut PgConnection,
    tenant: TenantId,
    user: UserId,
) -> Result<(), DomainError> {
    sqlx::query("update refresh_token set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and user_id = $2")
        .bind(tenant)
        .bind(user)
        .execute(conn)
        .await?;
    Ok(())
}

/// Revokes the family `token` belongs to (logout), if the token is known.
pub async fn revoke_family_of(
    conn: &mut PgConnection,
    tenant: TenantId,
    token: &str,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "update refresh_token set revoked_at = coalesce(revoked_at, now()) where tenant_id = $1 and family_id = \
         (select family_id from refresh_token where tenant_id = $1 and token_sha256 = $2)",
    )
    .bind(tenant)
    .bind(&secrets::sha256(token)[..])
    .execute(conn)
    .await?
    .rows_affected();
    Ok(done > 0)
}
