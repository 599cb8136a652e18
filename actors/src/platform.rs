//! Operator actions that span the catalog and the shards.

use crate::directory::Directory;
use crate::shard::{ShardHealth, ShardRegistry};
use aries_shards::catalog::{TenantFilter, TenantRecord};
use aries_shards::connect::{Role, options, validate_dsn};
use aries_shards::lifecycle::ShardAction;
use aries_shards::migrate::{latest_shard_version, migrate_shard};
use aries_shards::provision::{ProvisionError, provision_on_shard};
use aries_shards::shard_jobs::ShardJob;
use aries_shards::{Catalog, CatalogError, ShardRecord};
use aries_tenants::audit::AuditActor;
use aries_tenants::page::PageRequest;
use aries_tenants::tenant::StatusAction;
use aries_tenants::{Plan, TenantSlug};
use sqlx::{ConnectOptions, Connection};
use std::time::Duration;

/// How long an operator action waits for a shard's server to accept a connection.
const SHARD_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// `Retry-After` when a shard cannot be reached or migrated for an operator action.
const SHARD_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Largest relative capacity a shard may have (weights are ratios; this keeps them meaningful).
pub const MAX_SHARD_WEIGHT: u32 = 10_000;

/// Why an operator action failed.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The catalog refused the action or failed (not found, taken, not allowed, database).
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The shard cannot be reached or migrated now: `reason` is logged, `retry_after` becomes
    /// `Retry-After`.
    #[error("shard {shard} is unavailable: {reason}")]
    ShardUnavailable {
        shard: String,
        reason: String,
        retry_after: Duration,
    },
    /// A new shard's DSN breaks a rule of `validate_dsn`; the string says which.
    /// A shard weight outside 1..=MAX_SHARD_WEIGHT.
    #[error("a shard weight is 1 to {MAX_SHARD_WEIGHT}")]
    InvalidWeight,
    #[error("invalid shard DSN: {0}")]
    InvalidDsn(String),
    /// Setting the tenant up on its shard failed with a database error (a failed migration is
    /// `ShardUnavailable` instead).
    #[error(transparent)]
    Provision(#[from] ProvisionError),
}

/// A shard with this instance's view of its health.
#[derive(Debug, Clone)]
pub struct ShardOverview {
    /// The catalog's view of the shard, tenant count included.
    pub record: ShardRecord,
    /// `None` when this instance has no actor for it yet.
    pub health: Option<ShardHealth>,
}

#[derive(Clone)]
pub struct Platform {
    /// The only state: it reaches the catalog and the shard registry, and lets a status change
    /// reload this instance's actor for the tenant at once.
    directory: Directory,
}

impl Platform {
    pub fn new(directory: Directory) -> Self {
        Self { directory }
    }

    fn catalog(&self) -> &Catalog {
        self.directory.catalog()
    }

    fn shards(&self) -> &ShardRegistry {
        self.directory.shards()
    }

    /// Creates a tenant: insert and place it in the catalog, migrate its shard and write its anchor
    /// row there, then mark it active. Safe to repeat after a failure part-way: the same call picks
    /// up a tenant left `provisioning` and finishes it.
    #[tracing::instrument(name = "platform.create_tenant", skip(self))]
    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        name: &str,
        plan: Plan,
        by: &AuditActor,
    ) -> Result<TenantRecord, PlatformError> {
        let tenant = self.catalog().create_tenant(slug, name, plan, by).await?;
        let placement = tenant
            .placement
            .ok_or_else(|| CatalogError::Corrupt("tenant without placement".into()))?;
        let shard = self.shards().get(placement.shard_id).await?;
        if let Err(r) = shard.breaker.check() {
            return Err(PlatformError::ShardUnavailable {
                shard: shard.name.clone(),
                reason: "circuit open".into(),
                retry_after: r.retry_after,
            });
        }
        provision_on_shard(
            &shard.pool,
            &shard.dsn,
            self.shards().settings(),
            tenant.id,
            slug,
        )
        .await
        .map_err(|e| match e {
            ProvisionError::Database(db) if crate::breaker::is_unavailability(&db) => {
                shard.breaker.record_failure();
                PlatformError::ShardUnavailable {
                    shard: shard.name.clone(),
                    reason: db.to_string(),
                    retry_after: Duration::from_secs(1),
                }
            }
            ProvisionError::Migration(m) => PlatformError::ShardUnavailable {
                shard: shard.name.clone(),
                reason: m.to_string(),
                retry_after: Duration::from_secs(5),
            },
            other => PlatformError::Provision(other),
        })?;
        let tenant = self.catalog().mark_active(slug).await?;
        // An actor activated while the tenant was still provisioning holds that status; refresh it.
        self.directory.reload(slug).await;
        Ok(tenant)
    }

    pub async fn tenant(&self, slug: &TenantSlug) -> Result<TenantRecord, PlatformError> {
        Ok(self.catalog().tenant_by_slug(slug).await?)
    }

    pub async fn tenants(
        &self,
        filter: &TenantFilter,
        page: PageRequest,
    ) -> Result<Vec<TenantRecord>, PlatformError> {
        Ok(self.catalog().tenants(filter, page).await?)
    }

    /// Suspends, resumes or archives; the tenant's actor on this instance sees it at once, actors on
    /// other instances at their next profile refresh.
    pub async fn change_status(
        &self,
        slug: &TenantSlug,
        action: StatusAction,
        by: &AuditActor,
    ) -> Result<TenantRecord, PlatformError> {
        let tenant = self.catalog().change_status(slug, action, by).await?;
        self.directory.reload(slug).await;
        Ok(tenant)
    }

    /// Registers a shard: checks the DSN, migrates the database (proving it is reachable), records
    /// it in the catalog and starts its actor.
    pub async fn add_shard(
        &self,
        name: &str,
        dsn: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        if !(1..=MAX_SHARD_WEIGHT).contains(&weight) {
            return Err(PlatformError::InvalidWeight);
        }
        validate_dsn(dsn).map_err(PlatformError::InvalidDsn)?;
        migrate_shard(dsn, self.shards().settings())
            .await
            .map_err(|e| PlatformError::ShardUnavailable {
                shard: name.to_owned(),
                reason: e.to_string(),
                retry_after: Duration::from_secs(5),
            })?;
        let record = self.catalog().add_shard(name, dsn, weight, by).await?;
        self.shards().sync().await?;
        Ok(record)
    }

    /// Records a shard as `registered`: the DSN and weight are checked, nothing is done on its
    /// server (which need not be up yet). Migrate it, then activate it.
    #[tracing::instrument(name = "platform.register_shard", skip(self, by))]
    pub async fn register_shard(
        &self,
        name: &str,
        dsn: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        if !(1..=MAX_SHARD_WEIGHT).contains(&weight) {
            return Err(PlatformError::InvalidWeight);
        }
        validate_dsn(dsn).map_err(PlatformError::InvalidDsn)?;
        Ok(self.catalog().register_shard(name, dsn, weight, by).await?)
    }

    /// Runs the shard migrations on the shard (as the owner role) and records the version.
    /// Idempotent; a shard whose server cannot be reached is `ShardUnavailable`.
    #[tracing::instrument(name = "platform.migrate_shard", skip(self, by))]
    pub async fn migrate_shard(
        &self,
        name: &str,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        let shard = self.catalog().shard_by_name(name).await?;
        tokio::time::timeout(
            SHARD_CONNECT_TIMEOUT * 6,
            migrate_shard(&shard.dsn, self.shards().settings()),
        )
        .await
        .map_err(|_| "the migration did not finish in time".to_owned())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|reason| PlatformError::ShardUnavailable {
            shard: name.to_owned(),
            reason,
            retry_after: SHARD_RETRY_AFTER,
        })?;
        Ok(self
            .catalog()
            .record_shard_migrated(name, latest_shard_version(), Some(by))
            .await?)
    }

    /// Makes the shard take tenants and writes: only a shard migrated to this build's schema.
    /// The shard's own read-only flag is cleared first (whatever the status, so a flag left
    /// behind by an interrupted action heals), then the catalog changes.
    #[tracing::instrument(name = "platform.activate_shard", skip(self, by))]
    pub async fn activate_shard(
        &self,
        name: &str,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        let (shard, _) = self
            .catalog()
            .check_shard_action(name, ShardAction::Activate)
            .await
            .map_err(|e| match e {
                CatalogError::ShardNotMigrated(_) => CatalogError::ShardNotMigrated(name.into()),
                other => other,
            })?;
        self.set_read_only_flag(&shard, false).await?;
        let record = self
            .catalog()
            .change_shard_status(name, ShardAction::Activate, by)
            .await?;
        self.shards().sync().await?;
        Ok(record)
    }

    /// Closes the shard to writes and new tenants: the flag on the shard's database first (every
    /// tenant write there fails with `shard_read_only` from then on), then the catalog. Both
    /// steps are idempotent, so a retry after a failure in between finishes the job.
    #[tracing::instrument(name = "platform.mark_shard_read_only", skip(self, by))]
    pub async fn mark_shard_read_only(
        &self,
        name: &str,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        let (shard, _) = self
            .catalog()
            .check_shard_action(name, ShardAction::MarkReadOnly)
            .await?;
        self.set_read_only_flag(&shard, true).await?;
        Ok(self
            .catalog()
            .change_shard_status(name, ShardAction::MarkReadOnly, by)
            .await?)
    }

    /// Changes the shard's relative capacity (1 to `MAX_SHARD_WEIGHT`).
    #[tracing::instrument(name = "platform.set_shard_weight", skip(self, by))]
    pub async fn set_shard_weight(
        &self,
        name: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, PlatformError> {
        if !(1..=MAX_SHARD_WEIGHT).contains(&weight) {
            return Err(PlatformError::InvalidWeight);
        }
        Ok(self.catalog().set_shard_weight(name, weight, by).await?)
    }

    /// Marks the shard `draining` and records its drain job (run by `runner`); the caller runs
    /// the job when `true` (created now) comes back.
    #[tracing::instrument(name = "platform.drain_shard", skip(self, by))]
    pub async fn drain_shard(
        &self,
        name: &str,
        by: &AuditActor,
        runner: &str,
    ) -> Result<(ShardRecord, ShardJob, bool), PlatformError> {
        Ok(self.catalog().start_drain(name, by, runner).await?)
    }

    /// Sets `aries_shard_state.read_only` on the shard's database, as the owner role.
    async fn set_read_only_flag(&self, shard: &ShardRecord, on: bool) -> Result<(), PlatformError> {
        let result: Result<(), String> = async {
            let opts = options(&shard.dsn, Role::Owner, self.shards().settings())
                .map_err(|e| e.to_string())?;
            let mut conn = tokio::time::timeout(SHARD_CONNECT_TIMEOUT, opts.connect())
                .await
                .map_err(|_| "no connection in time".to_owned())?
                .map_err(|e| e.to_string())?;
            let updated = sqlx::query("update aries_shard_state set read_only = $1")
                .bind(on)
                .execute(&mut conn)
                .await;
            let _ = conn.close().await;
            updated.map(|_| ()).map_err(|e| e.to_string())
        }
        .await;
        result.map_err(|reason| PlatformError::ShardUnavailable {
            shard: shard.name.clone(),
            reason,
            retry_after: SHARD_RETRY_AFTER,
        })
    }

    /// Every shard with its tenant count and health.
    pub async fn shard_overview(&self) -> Result<Vec<ShardOverview>, PlatformError> {
        let records = self.catalog().shards().await?;
        let handles = self.shards().handles();
        Ok(records
            .into_iter()
            .map(|record| {
                let health = handles
                    .iter()
                    .find(|h| h.id == record.id)
                    .map(|h| h.health());
                ShardOverview { record, health }
            })
            .collect())
    }

    /// One shard, by name, with this instance's view of its health.
    pub async fn shard(&self, name: &str) -> Result<ShardOverview, PlatformError> {
        let record = self.catalog().shard_by_name(name).await?;
        let health = self
            .shards()
            .handles()
            .iter()
            .find(|h| h.id == record.id)
            .map(|h| h.health());
        Ok(ShardOverview { record, health })
    }
}
