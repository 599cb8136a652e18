//! The catalog: tenants, shards and placements. Everything the platform knows about where a
//! tenant lives goes through here.

use crate::placement::{ShardLoad, choose_shard};
use aries_tenants::audit::{self, AuditActor, AuditEvent, AuditFilter, Trail, Verification};
use aries_tenants::ids::{ShardId, TenantId};
use aries_tenants::page::PageRequest;
use aries_tenants::tenant::StatusAction;
use aries_tenants::{Plan, TenantSlug, TenantStatus};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use std::str::FromStr;

/// Catalog failures the caller can act on; anything else is `Database`.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// No tenant with this slug.
    #[error("no tenant {0}")]
    TenantNotFound(String),
    /// No shard with this name or id (whichever the caller looked it up by).
    #[error("no shard {0}")]
    ShardNotFound(String),
    /// Another tenant uses this slug, and it is not a half-finished creation to resume.
    #[error("the slug {0} is taken")]
    SlugTaken(String),
    /// A shard with this name is already registered.
    #[error("a shard named {0} exists")]
    ShardNameTaken(String),
    /// The tenant's current status does not allow the action (see `TenantStatus::apply`).
    #[error("a tenant that is {from} cannot be {action}")]
    InvalidTransition {
        from: TenantStatus,
        action: &'static str,
    },
    /// No shard is `active`, so a new tenant has nowhere to go.
    #[error("no active shard can take a new tenant")]
    NoShardAvailable,
    /// An operator idempotency key came back with a different request (method, path or body).
    /// Another operator account has this e-mail.
    #[error("an operator with e-mail {0} exists")]
    OperatorEmailTaken(String),
    #[error("the idempotency key was used with a different request")]
    IdempotencyKeyReused,
    /// The shard's schema is not at this build's latest shard migration (or was never migrated):
    /// run its migration first. The string names the shard.
    #[error("shard {0} is not migrated to the current schema")]
    ShardNotMigrated(String),
    /// The shard's status does not allow the action (drain a registered shard, drain the last
    /// active shard…); the string says why.
    #[error("{0}")]
    InvalidShardTransition(String),
    /// A drain or rebalance job is running (one at a time on the platform); its id.
    #[error("shard job {0} is running")]
    ShardJobInProgress(uuid::Uuid),
    /// No shard job with this id.
    #[error("no shard job {0}")]
    ShardJobNotFound(uuid::Uuid),
    /// A value that does not fit this build's types, mostly a catalog row it cannot parse (an
    /// unknown status, a bad slug); the string names it.
    #[error("the catalog holds a value this build does not know: {0}")]
    Corrupt(String),
    /// Any other database failure, the catalog being unreachable included.
    #[error("catalog database error")]
    Database(#[from] sqlx::Error),
}

/// The status of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ShardStatus {
    /// Recorded only: its schema may not be migrated and its server need not be up; takes no
    /// tenants until it is migrated and activated.
    Registered,
    /// Takes new tenants.
    Active,
    /// Keeps its tenants until a drain job has moved them away; takes no new ones.
    Draining,
    /// Takes no new tenants and no writes: the shard's own `aries_shard_state.read_only` flag
    /// makes every tenant write fail (`shard_read_only`); reads still work.
    ReadOnly,
}

impl ShardStatus {
    /// The catalog's (and the API's) spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registered => "registered",
            Self::Active => "active",
            Self::Draining => "draining",
            Self::ReadOnly => "read_only",
        }
    }
}

impl std::fmt::Display for ShardStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ShardStatus {
    type Err = CatalogError;
    fn from_str(s: &str) -> Result<Self, CatalogError> {
        match s {
            "registered" => Ok(Self::Registered),
            "active" => Ok(Self::Active),
            "draining" => Ok(Self::Draining),
            "read_only" => Ok(Self::ReadOnly),
            other => Err(CatalogError::Corrupt(format!("shard status {other}"))),
        }
    }
}

/// A shard as registered in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardRecord {
    /// Key of the shard: placements and this instance's shard registry refer to it.
    pub id: ShardId,
    /// Unique operator-facing name (`shard-0`), used in logs, metric labels and the APIs.
    pub name: String,
    /// Host, port and database; no credentials.
    pub dsn: String,
    /// Whether the shard takes new tenants (only `active` ones do).
    pub status: ShardStatus,
    /// Relative capacity: placement fills shards in proportion to it.
    pub weight: u32,
    /// When the shard was registered.
    pub created_at: DateTime<Utc>,
    /// Tenants placed on it now.
    pub tenant_count: u64,
    /// The highest shard migration applied, as last recorded; activation requires this build's
    /// latest. `None` until a migration run was recorded.
    pub schema_version: Option<i64>,
    /// When that migration run was recorded.
    pub migrated_at: Option<DateTime<Utc>>,
    /// When the shard row last changed (status, migration).
    pub updated_at: DateTime<Utc>,
}

/// Where a tenant lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Placement {
    /// The shard holding the tenant's rows.
    pub shard_id: ShardId,
    /// Increases on every move; a holder of an older epoch must not write.
    pub epoch: i64,
}

/// A tenant as the catalog knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    /// Key of the tenant: binds tenant transactions (`aries.tenant_id`) and keys its rows on the shard.
    pub id: TenantId,
    /// Immutable URL name; the directory keys tenant actors by it.
    pub slug: TenantSlug,
    /// The provider company's display name.
    pub name: String,
    /// Where the tenant is in its life; tenant actors serve only `active` tenants.
    pub status: TenantStatus,
    /// Commercial plan (later issues hang limits on it).
    pub plan: Plan,
    /// Bumped on every change to the tenant row (activation, status changes); sent as the `ETag`.
    pub version: i64,
    /// When the tenant was inserted (as `provisioning`).
    pub created_at: DateTime<Utc>,
    /// When the tenant row last changed (activation, a status change).
    pub updated_at: DateTime<Utc>,
    /// `None` only if the tenant has no placement row. Creation writes both in one transaction, so
    /// callers treat `None` as not found (directory) or corrupt (platform).
    pub placement: Option<Placement>,
    /// Name of the shard holding it, for operators.
    pub shard_name: Option<String>,
}

#[derive(sqlx::FromRow)]
struct TenantRow {
    /// `sqlx::Type` decodes it straight into the typed id.
    tenant_id: TenantId,
    /// Text as stored; parsed into a `TenantSlug` by `try_from`, a bad one being `Corrupt`.
    slug: String,
    /// Used as is.
    name: String,
    /// Text as stored; parsed into `TenantStatus` (an unknown value is `Corrupt`).
    status: String,
    /// Text as stored; parsed into `Plan` (an unknown value is `Corrupt`).
    plan: String,
    /// Bumped by every change to the tenant row.
    version: i64,
    /// Insert time, from the column default.
    created_at: DateTime<Utc>,
    /// Time of the last change to the tenant row.
    updated_at: DateTime<Utc>,
    /// From the left-joined `placement`: `NULL` when the tenant has no placement row.
    shard_id: Option<ShardId>,
    /// `NULL` exactly when `shard_id` is; the two are zipped into a `Placement`.
    epoch: Option<i64>,
    /// Name of the placement's shard, joined in for operators; `NULL` without a placement.
    shard_name: Option<String>,
}

impl TryFrom<TenantRow> for TenantRecord {
    type Error = CatalogError;
    fn try_from(r: TenantRow) -> Result<Self, CatalogError> {
        Ok(TenantRecord {
            id: r.tenant_id,
            slug: TenantSlug::parse(&r.slug)
                .map_err(|_| CatalogError::Corrupt(format!("slug {}", r.slug)))?,
            name: r.name,
            status: r.status.parse().map_err(CatalogError::Corrupt)?,
            plan: r.plan.parse().map_err(CatalogError::Corrupt)?,
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            placement: r
                .shard_id
                .zip(r.epoch)
                .map(|(shard_id, epoch)| Placement { shard_id, epoch }),
            shard_name: r.shard_name,
        })
    }
}

const TENANT_SELECT: &str = "select t.tenant_id, t.slug, t.name, t.status, t.plan, t.version, t.created_at, \
     t.updated_at, p.shard_id, p.epoch, s.name as shard_name \
     from tenant t left join placement p using (tenant_id) left join shard s using (shard_id)";

#[derive(sqlx::FromRow)]
pub(crate) struct ShardRow {
    /// `sqlx::Type` decodes it straight into the typed id.
    shard_id: ShardId,
    /// Unique operator-facing name.
    name: String,
    /// Host, port and database; no credentials (the roles come from the configuration).
    dsn: String,
    /// Text as stored; parsed into `ShardStatus` (an unknown value is `Corrupt`).
    status: String,
    /// Postgres `integer`, hence `i32`; converted to `u32`, a negative one being `Corrupt`.
    weight: i32,
    /// When the shard was registered.
    created_at: DateTime<Utc>,
    /// Placements on the shard, counted by `SHARD_SELECT`'s subquery (`count(*)` is a `bigint`).
    tenant_count: i64,
    /// Recorded schema version; `NULL` until a migration run was recorded.
    schema_version: Option<i64>,
    /// When it was recorded.
    migrated_at: Option<DateTime<Utc>>,
    /// Last change of the row.
    updated_at: DateTime<Utc>,
}

impl TryFrom<ShardRow> for ShardRecord {
    type Error = CatalogError;
    fn try_from(r: ShardRow) -> Result<Self, CatalogError> {
        Ok(ShardRecord {
            id: r.shard_id,
            name: r.name,
            dsn: r.dsn,
            status: r.status.parse()?,
            weight: u32::try_from(r.weight)
                .map_err(|_| CatalogError::Corrupt(format!("weight {}", r.weight)))?,
            created_at: r.created_at,
            tenant_count: u64::try_from(r.tenant_count).unwrap_or(0),
            schema_version: r.schema_version,
            migrated_at: r.migrated_at,
            updated_at: r.updated_at,
        })
    }
}

pub(crate) const SHARD_SELECT: &str = "select s.shard_id, s.name, s.dsn, s.status, s.weight, s.created_at, \
     (select count(*) from placement p where p.shard_id = s.shard_id) as tenant_count, \
     s.schema_version, s.migrated_at, s.updated_at from shard s";

pub(crate) fn domain_to_catalog(e: aries_tenants::DomainError) -> CatalogError {
    match e {
        aries_tenants::DomainError::Database(db) => CatalogError::Database(db),
        other => CatalogError::Corrupt(other.to_string()),
    }
}

/// Filters of the tenant list.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    /// Only tenants in this status; `None` for every status.
    pub status: Option<TenantStatus>,
    /// Shard name.
    pub shard: Option<String>,
    /// Case-insensitive substring of slug or name.
    pub q: Option<String>,
}

/// A handle on the catalog database (app role).
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Connections as the app role. A `PgPool` is itself a shared handle, so clones of the catalog
    /// use one pool.
    pool: PgPool,
}

impl Catalog {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records a shard as `active` at once. Its schema must be migrated to this build's latest
    /// before (the caller does, and this records that version); `register_shard` is the stepwise
    /// way.
    pub async fn add_shard(
        &self,
        name: &str,
        dsn: &str,
        weight: u32,
        by: &AuditActor,
    ) -> Result<ShardRecord, CatalogError> {
        let latest = crate::migrate::latest_shard_version();
        self.insert_shard(name, dsn, weight, "active", Some(latest), "shard.added", by)
            .await
    }

    /// Inserts a shard with `status` (its schema migrated to `schema_version`, if any) and
    /// records `action` in the platform trail, in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn insert_shard(
        &self,
        name: &str,
        dsn: &str,
        weight: u32,
        status: &str,
        schema_version: Option<i64>,
        action: &str,
        by: &AuditActor,
    ) -> Result<ShardRecord, CatalogError> {
        let weight =
            i32::try_from(weight).map_err(|_| CatalogError::Corrupt("weight too large".into()))?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "insert into shard (shard_id, name, dsn, weight, status, schema_version, migrated_at) \
             values ($1, $2, $3, $4, $5, $6, case when $6::bigint is null then null else now() end)",
        )
        .bind(ShardId::new())
        .bind(name)
        .bind(dsn)
        .bind(weight)
        .bind(status)
        .bind(schema_version)
        .execute(&mut *tx)
        .await
        .map_err(|e| match aries_tenants::error::unique_violation(&e) {
            Some("shard_name_key") => CatalogError::ShardNameTaken(name.to_owned()),
            _ => CatalogError::Database(e),
        })?;
        let event = by.event(
            action,
            "shard",
            name,
            serde_json::json!({"dsn": dsn, "weight": weight}),
            None,
        );
        audit::append(&mut tx, Trail::Platform, &event)
            .await
            .map_err(domain_to_catalog)?;
        tx.commit().await?;
        self.shard_by_name(name).await
    }

    pub async fn shard_by_name(&self, name: &str) -> Result<ShardRecord, CatalogError> {
        let sql = format!("{SHARD_SELECT} where s.name = $1");
        let row: Option<ShardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| CatalogError::ShardNotFound(name.to_owned()))?
            .try_into()
    }

    /// Every shard with its tenant count, by name.
    pub async fn shards(&self) -> Result<Vec<ShardRecord>, CatalogError> {
        let sql = format!("{SHARD_SELECT} order by s.name");
        let rows: Vec<ShardRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    pub async fn tenant_by_slug(&self, slug: &TenantSlug) -> Result<TenantRecord, CatalogError> {
        let sql = format!("{TENANT_SELECT} where t.slug = $1");
        let row: Option<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.ok_or_else(|| CatalogError::TenantNotFound(slug.to_string()))?
            .try_into()
    }

    /// A page of tenants in id order; `limit + 1` rows so the caller can tell whether more exist.
    pub async fn tenants(
        &self,
        filter: &TenantFilter,
        page: PageRequest,
    ) -> Result<Vec<TenantRecord>, CatalogError> {
        let sql = format!(
            "{TENANT_SELECT} where ($1::uuid is null or t.tenant_id > $1) \
             and ($2::text is null or t.status = $2) and ($3::text is null or s.name = $3) \
             and ($4::text is null or t.slug ilike '%' || $4 || '%' or t.name ilike '%' || $4 || '%') \
             order by t.tenant_id limit $5"
        );
        let q = filter.q.as_deref().map(|q| {
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        });
        let rows: Vec<TenantRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .bind(page.after)
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.shard.as_deref())
            .bind(q)
            .bind(i64::from(page.limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(TryInto::try_into).collect()
    }

    /// First half of creating a tenant: in one catalog transaction, insert it as `provisioning` and
    /// place it on the least-loaded active shard. Shard rows are locked while counting so that
    /// concurrent creations see each other's placements. Creating a slug whose earlier creation
    /// stopped half-way (still `provisioning`) returns that tenant so the caller can finish it.
    #[tracing::instrument(name = "catalog.create_tenant", skip(self))]
    pub async fn create_tenant(
        &self,
        slug: &TenantSlug,
        name: &str,
        plan: Plan,
        by: &AuditActor,
    ) -> Result<TenantRecord, CatalogError> {
        match self.tenant_by_slug(slug).await {
            Ok(existing)
                if existing.status == TenantStatus::Provisioning
                    && existing.placement.is_some() =>
            {
                return Ok(existing);
            }
            Ok(_) => return Err(CatalogError::SlugTaken(slug.to_string())),
            Err(CatalogError::TenantNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        let mut tx = self.pool.begin().await?;
        let loads: Vec<(ShardId, String, i32, i64)> = sqlx::query_as(
            "select s.shard_id, s.status, s.weight, \
             (select count(*) from placement p where p.shard_id = s.shard_id) \
             from shard s order by s.shard_id for update",
        )
        .fetch_all(&mut *tx)
        .await?;
        let loads: Vec<ShardLoad> = loads
            .into_iter()
            .map(|(shard_id, status, weight, tenants)| ShardLoad {
                shard_id,
                accepts_tenants: status == "active",
                weight: u32::try_from(weight).unwrap_or(0),
                tenants: u64::try_from(tenants).unwrap_or(0),
            })
            .collect();
        let shard_id = choose_shard(&loads).ok_or(CatalogError::NoShardAvailable)?;
        let id = TenantId::new();
        sqlx::query("insert into tenant (tenant_id, slug, name, plan) values ($1, $2, $3, $4)")
            .bind(id)
            .bind(slug.as_str())
            .bind(name)
            .bind(plan.as_str())
            .execute(&mut *tx)
            .await
            .map_err(|e| match aries_tenants::error::unique_violation(&e) {
                Some("tenant_slug_key") => CatalogError::SlugTaken(slug.to_string()),
                _ => CatalogError::Database(e),
            })?;
        sqlx::query("insert into placement (tenant_id, shard_id, epoch) values ($1, $2, 1)")
            .bind(id)
            .bind(shard_id)
            .execute(&mut *tx)
            .await?;
        let details =
            serde_json::json!({"name": name, "plan": plan.as_str(), "shard_id": shard_id});
        let event = by.event("tenant.created", "tenant", slug, details, Some(id));
        audit::append(&mut tx, Trail::Platform, &event)
            .await
            .map_err(domain_to_catalog)?;
        tx.commit().await?;
        self.tenant_by_slug(slug).await
    }

    /// Takes an operator idempotency key: `Ok(false)` on first use, `Ok(true)` when it was taken
    /// before for the same request, `IdempotencyKeyReused` for another request. Keys live 24 hours.
    pub async fn claim_idempotency_key(
        &self,
        key: &str,
        request_sha256: &[u8; 32],
    ) -> Result<bool, CatalogError> {
        sqlx::query(
            "delete from operator_idempotency_key where idempotency_key = $1 and created_at < now() - interval '24 hours'",
        )
        .bind(key)
        .execute(&self.pool)
        .await?;
        let inserted = sqlx::query(
            "insert into operator_idempotency_key (idempotency_key, request_sha256) values ($1, $2) on conflict do nothing",
        )
        .bind(key)
        .bind(&request_sha256[..])
        .execute(&self.pool)
        .await?
        .rows_affected();
        if inserted == 1 {
            return Ok(false);
        }
        let (stored,): (Vec<u8>,) = sqlx::query_as(
            "select request_sha256 from operator_idempotency_key where idempotency_key = $1",
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        if stored == request_sha256 {
            Ok(true)
        } else {
            Err(CatalogError::IdempotencyKeyReused)
        }
    }

    /// Gives a key back after the request it guarded failed, so a retry runs again.
    pub async fn release_idempotency_key(&self, key: &str) -> Result<(), CatalogError> {
        sqlx::query("delete from operator_idempotency_key where idempotency_key = $1")
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Last half of creating a tenant: it is set up on its shard and may serve.
    pub async fn mark_active(&self, slug: &TenantSlug) -> Result<TenantRecord, CatalogError> {
        sqlx::query(
            "update tenant set status = 'active', version = version + 1, updated_at = now() \
             where slug = $1 and status = 'provisioning'",
        )
        .bind(slug.as_str())
        .execute(&self.pool)
        .await?;
        self.tenant_by_slug(slug).await
    }

    /// Suspends, resumes or archives a tenant. Repeating an action that is already in effect is not
    /// an error and changes nothing.
    #[tracing::instrument(name = "catalog.change_status", skip(self))]
    pub async fn change_status(
        &self,
        slug: &TenantSlug,
        action: StatusAction,
        by: &AuditActor,
    ) -> Result<TenantRecord, CatalogError> {
        let mut tx = self.pool.begin().await?;
        let row: Option<(String, TenantId)> =
            sqlx::query_as("select status, tenant_id from tenant where slug = $1 for update")
                .bind(slug.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let (status, tenant_id) =
            row.ok_or_else(|| CatalogError::TenantNotFound(slug.to_string()))?;
        let from: TenantStatus = status.parse().map_err(CatalogError::Corrupt)?;
        let to = from.apply(action).ok_or(CatalogError::InvalidTransition {
            from,
            action: match action {
                StatusAction::Suspend => "suspended",
                StatusAction::Resume => "resumed",
                StatusAction::Archive => "archived",
            },
        })?;
        if to != from {
            sqlx::query("update tenant set status = $2, version = version + 1, updated_at = now() where slug = $1")
                .bind(slug.as_str())
                .bind(to.as_str())
                .execute(&mut *tx)
                .await?;
            let action = format!(
                "tenant.{}",
                match to {
                    TenantStatus::Suspended => "suspended",
                    TenantStatus::Active => "resumed",
                    _ => "archived",
                }
            );
            let details = serde_json::json!({"from": from.as_str(), "to": to.as_str()});
            let event = by.event(&action, "tenant", slug, details, Some(tenant_id));
            audit::append(&mut tx, Trail::Platform, &event)
                .await
                .map_err(domain_to_catalog)?;
        }
        tx.commit().await?;
        self.tenant_by_slug(slug).await
    }

    /// The operator's audit trail, filtered (`limit + 1` rows).
    pub async fn audit(
        &self,
        filter: &AuditFilter,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        audit::list(&mut conn, Trail::Platform, filter, limit)
            .await
            .map_err(domain_to_catalog)
    }

    /// Recomputes the operator trail's chain.
    pub async fn verify_audit(&self) -> Result<Verification, CatalogError> {
        let mut conn = self.pool.acquire().await?;
        audit::verify(&mut conn, Trail::Platform)
            .await
            .map_err(domain_to_catalog)
    }
}
