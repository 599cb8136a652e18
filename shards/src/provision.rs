//! The shard-side half of creating a tenant.

use crate::migrate::{MigrationError, migrate_shard};
use crate::settings::DatabaseSettings;
use crate::tenant_tx::begin_tenant_tx;
use aries_tenants::{TenantId, TenantSlug};
use sqlx::PgPool;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error(transparent)]
    Migration(#[from] MigrationError),
    #[error("writing the tenant's anchor row: {0}")]
    Database(#[from] sqlx::Error),
}

/// Makes sure the shard's schema is current, then writes the tenant's anchor row (idempotent, so
/// a creation interrupted half-way can simply be run again).
#[tracing::instrument(name = "provision.on_shard", skip(pool, settings), fields(tenant_id = %tenant))]
pub async fn provision_on_shard(
    pool: &PgPool,
    dsn: &str,
    settings: &DatabaseSettings,
    tenant: TenantId,
    slug: &TenantSlug,
) -> Result<(), ProvisionError> {
    migrate_shard(dsn, settings).await?;
    let mut tx = begin_tenant_tx(pool, tenant).await?;
    sqlx::query(
        "insert into tenant (tenant_id, slug) values ($1, $2) on conflict (tenant_id) do nothing",
    )
    .bind(tenant)
    .bind(slug.as_str())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
