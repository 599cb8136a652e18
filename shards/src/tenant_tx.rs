//! Tenant transactions: the only way tenant data is touched.
//!
//! Two doors:
//! - [`enter_tenant_tx`], for everything that serves a tenant: binds row-level security to the
//!   tenant and passes the move fence (`aries_enter`, migration `…09_tenant_moves.sql`): the shard
//!   must serve the tenant under the placement epoch the caller routed by. A write holds the
//!   tenant's move-fence advisory lock shared to its end, so a tenant move's freeze (the same lock,
//!   exclusive) waits for writes in flight and holds new ones; a read only looks (a read must not write tenant
//!   data: the one write a read makes is an API key's once-a-minute last-used stamp, which a
//!   move's freeze may drop).
//! - [`begin_tenant_tx`], unfenced, for the few callers that work on a tenant the shard does not
//!   serve (yet): provisioning writes the anchor row itself, a move copies rows to its target.

use aries_tenants::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

/// The SQLSTATE `aries_enter` raises when the shard does not serve the tenant under the caller's
/// placement epoch (moved away, frozen by a move, or never placed here).
pub const PLACEMENT_CHANGED: &str = "AR001";
/// The SQLSTATE `aries_enter` raises for a write on a shard an operator marked read-only.
pub const SHARD_READ_ONLY: &str = "AR002";

/// What the caller is about to do, and under which placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// Reads: the shard must serve the tenant under `epoch` when the transaction starts; no lock.
    Read { epoch: Option<i64> },
    /// May write: holds the tenant's move-fence lock shared until the transaction ends.
    /// `epoch` is `None` for shard-local workers (the outbox relay) that follow whatever placement
    /// the shard serves.
    Write { epoch: Option<i64> },
}

/// Why a fenced transaction did not open.
#[derive(Debug, thiserror::Error)]
pub enum EnterError {
    /// The shard does not serve the tenant under this epoch: re-read the placement and retry.
    #[error("the tenant's placement changed")]
    PlacementChanged,
    /// A write on a read-only shard.
    #[error("the shard is read-only")]
    ShardReadOnly,
    /// Anything else, the shard being unreachable included.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl EnterError {
    /// Sorts a database error raised by `aries_enter` (or by a statement run later in the same
    /// transaction, which cannot raise these codes) into the variants above.
    pub fn classify(e: sqlx::Error) -> Self {
        match e.as_database_error().and_then(|d| d.code()) {
            Some(code) if code == PLACEMENT_CHANGED => Self::PlacementChanged,
            Some(code) if code == SHARD_READ_ONLY => Self::ShardReadOnly,
            _ => Self::Database(e),
        }
    }
}

/// Opens a fenced tenant transaction (see the module's map). One round trip: the fence runs as
/// the first statement of the message and `BEGIN` follows it, which turns the message's implicit
/// transaction into the open one (the setting and the row lock carry over). If the fence fails,
/// the implicit transaction ends with the message, so the pooled connection goes back clean.
///
/// The id and epoch are formatted into the SQL text: a typed UUID's text is hex digits and
/// hyphens and an epoch is an integer, so nothing a client sends can reach this string.
#[tracing::instrument(name = "tenant_tx.enter", skip(pool), fields(tenant_id = %tenant))]
pub async fn enter_tenant_tx(
    pool: &PgPool,
    tenant: TenantId,
    fence: Fence,
) -> Result<Transaction<'static, Postgres>, EnterError> {
    let (epoch, write, begin) = match fence {
        Fence::Read { epoch } => (epoch, false, "begin"),
        Fence::Write { epoch } => (epoch, true, "begin"),
    };
    let epoch = epoch.map_or_else(|| "null".to_owned(), |e| e.to_string());
    let sql = format!(
        "select aries_enter('{}', {epoch}, {write}); {begin}",
        tenant.as_uuid().hyphenated()
    );
    pool.begin_with(sqlx::AssertSqlSafe(sql))
        .await
        .map_err(EnterError::classify)
}

/// Begins an unfenced transaction bound to `tenant` (provisioning and tenant moves only; see the
/// module's map): `set_config('aries.tenant_id', …, true)` is the transaction-local form of `SET`,
/// so the setting ends with the transaction and a pooled connection never carries it into its
/// next use. Row-level security then limits every statement of the transaction to this tenant's
/// rows, even one that forgets its `where tenant_id`.
#[tracing::instrument(name = "tenant_tx.begin", skip(pool), fields(tenant_id = %tenant))]
pub async fn begin_tenant_tx(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let sql = format!(
        "begin; select set_config('aries.tenant_id', '{}', true)",
        tenant.as_uuid().hyphenated()
    );
    pool.begin_with(sqlx::AssertSqlSafe(sql)).await
}
