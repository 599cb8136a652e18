//! Tenant transactions: the only way tenant data is touched.

use aries_tenants::TenantId;
use sqlx::{PgPool, Postgres, Transaction};

/// Begins a transaction bound to `tenant`: `set_config('aries.tenant_id', …, true)` is the
/// parameterised form of `SET LOCAL`, so the setting ends with the transaction and a pooled
/// connection never carries it into its next use. Row-level security then limits every statement
/// of the transaction to this tenant's rows, even one that forgets its `where tenant_id`.
#[tracing::instrument(name = "tenant_tx.begin", skip(pool), fields(tenant_id = %tenant))]
pub async fn begin_tenant_tx(
    pool: &PgPool,
    tenant: TenantId,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("select set_config('aries.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}
