//! Tenant transactions: the only way tenant data is touched.

use aries_tenants::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

/// Begins a transaction bound to `tenant`: `set_config('aries.tenant_id', …, true)` is the
/// transaction-local form of `SET`, so the setting ends with the transaction and a pooled
/// connection never carries it into its next use. Row-level security then limits every statement
/// of the transaction to this tenant's rows, even one that forgets its `where tenant_id`.
///
/// `BEGIN` and the setting go to the server as one simple-protocol message (one round trip instead
/// of two; `docs/BENCHMARKS.md` shows what a round trip costs). The tenant id is formatted into the
/// SQL text: it is a typed UUID, whose text form is only hex digits and hyphens, so nothing a
/// client sends can reach this string.
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
