//! Idempotency keys for tenant writes. A write that carries a key runs as: take the key (a row
//! insert that blocks a concurrent duplicate until this transaction ends), do the write, store the
//! response; all in the caller's transaction. A failed write rolls the key back with it, so the
//! client may retry. Keys live 24 hours.

use crate::error::DomainError;
use crate::ids::TenantId;
use crate::validation::ValidationErrors;
use sqlx::PgConnection;

/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// A validated `Idempotency-Key` value: 1 to 255 visible ASCII characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    pub fn parse(s: &str) -> Result<Self, ValidationErrors> {
        if s.is_empty() || s.len() > MAX_KEY_LEN || !s.bytes().all(|b| b.is_ascii_graphic()) {
            let mut e = ValidationErrors::default();
            e.push(
                "Idempotency-Key",
                "invalid_format",
                "1 to 255 visible ASCII characters",
            );
            return Err(e);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What taking a key found.
#[derive(Debug)]
pub enum Claim {
    /// First use: go ahead, then [`complete`].
    Fresh,
    /// Seen with the same request: answer with this stored body.
    Replay(serde_json::Value),
}

/// Takes `key` for a request whose digest is `request_sha256`.
pub async fn claim(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &IdempotencyKey,
    request_sha256: &[u8; 32],
) -> Result<Claim, DomainError> {
    sqlx::query(
        "delete from idempotency_key where tenant_id = $1 and idempotency_key = $2 \
         and created_at < now() - interval '24 hours'",
    )
    .bind(tenant)
    .bind(key.as_str())
    .execute(&mut *conn)
    .await?;
    // Blocks while another transaction holds the same key, then sees its outcome.
    let inserted = sqlx::query(
        "insert into idempotency_key (tenant_id, idempotency_key, request_sha256, response_body) \
         values ($1, $2, $3, 'null') on conflict do nothing",
    )
    .bind(tenant)
    .bind(key.as_str())
    .bind(&request_sha256[..])
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(Claim::Fresh);
    }
    let (stored_sha, body): (Vec<u8>, serde_json::Value) = sqlx::query_as(
        "select request_sha256, response_body from idempotency_key where tenant_id = $1 and idempotency_key = $2",
    )
    .bind(tenant)
    .bind(key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    if stored_sha != request_sha256 {
        return Err(DomainError::Conflict {
            code: "idempotency_key_reused",
            detail: "this Idempotency-Key was used with a different request".into(),
        });
    }
    Ok(Claim::Replay(body))
}

/// Stores the response of the write that took `key`.
pub async fn complete(
    conn: &mut PgConnection,
    tenant: TenantId,
    key: &IdempotencyKey,
    response: &serde_json::Value,
) -> Result<(), DomainError> {
    sqlx::query("update idempotency_key set response_body = $3 where tenant_id = $1 and idempotency_key = $2")
        .bind(tenant)
        .bind(key.as_str())
        .bind(response)
        .execute(conn)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_format() {
        assert!(IdempotencyKey::parse("order-2026-11-25-0001").is_ok());
        assert!(IdempotencyKey::parse("").is_err());
        assert!(IdempotencyKey::parse("has space").is_err());
        assert!(IdempotencyKey::parse(&"k".repeat(256)).is_err());
        assert!(IdempotencyKey::parse("caf\u{e9}").is_err());
    }
}
