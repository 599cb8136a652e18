//! Tenant load per shard, and the rebalance plan over it.
//!
//! A tenant's load is the rows it holds on its shard: the sum over every tenant table (every
//! table of schema `public` with a `tenant_id` column, except the platform's own `aries_…`
//! tables). It is measured without privilege, as `platform_report` reads a shard: one read-only
//! transaction per shard on the application role's pool, and for each tenant the catalog places
//! there `set_config('aries.tenant_id', …, true)` followed by one statement summing `count(*)`
//! over the tables, in batches of tenants per message. Row-level security restricts every count
//! to the tenant set just before it, so no statement can count another tenant's rows.
//!
//! The plan itself is the pure `aries_shards::rebalance::plan`; this module feeds it (shards that
//! cannot be measured in time take part as frozen and make the answer `partial`) and names the
//! shards and tenants for operators.

use crate::directory::Directory;
use crate::shard::ShardHandle;
use aries_shards::rebalance::{self, PlanSettings, ShardInput, ShardRole, TenantLoad};
use aries_shards::{CatalogError, ShardRecord, ShardStatus};
use aries_tenants::TenantId;
use futures::future::join_all;
use serde::Serialize;
use sqlx::Row as _;
use std::collections::HashMap;
use std::time::Duration;

/// Tenants per simple-query message.
const BATCH: usize = 100;

/// One planned move, by name.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PlannedMoveView {
    /// The tenant's slug.
    pub tenant: String,
    /// The shard it leaves.
    pub from_shard: String,
    /// The shard it goes to.
    pub to_shard: String,
    /// Its load: rows it holds.
    pub load: u64,
}

/// One shard's load before and after the plan.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShardBalanceView {
    /// The shard's name.
    pub shard: String,
    /// Its catalog status.
    pub status: String,
    /// What it may do in this plan (`frozen`: neither gives nor takes).
    pub role: ShardRole,
    /// Its relative capacity.
    pub weight: u32,
    /// Tenants placed on it now.
    pub tenants: usize,
    /// Rows of its tenants now.
    pub load_before: u64,
    /// Rows once the plan has run.
    pub load_after: u64,
    /// Its fair share of the load (active shards only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fair_share: Option<u64>,
    /// Why it could not be measured (it then takes part as frozen).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The dry run of a rebalance.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RebalancePlan {
    /// The moves, in the order a rebalance job runs them (one at a time).
    pub moves: Vec<PlannedMoveView>,
    /// Every shard's load before and after, by name.
    pub shards: Vec<ShardBalanceView>,
    /// Tenants of draining shards that no active shard can take.
    pub unplaced: Vec<String>,
    /// The threshold used: the most loaded shard may exceed its fair share by this many percent.
    pub threshold_pct: u32,
    /// True when a shard could not be measured: it neither gave nor took tenants in this plan.
    pub partial: bool,
    /// The shards that could not be measured.
    pub missing_shards: Vec<String>,
}

/// The tables holding tenant rows on a shard, as the app role sees them.
async fn tenant_tables(conn: &mut sqlx::PgConnection) -> Result<Vec<String>, sqlx::Error> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "select c.table_name::text from information_schema.columns c \
         join information_schema.tables t using (table_schema, table_name) \
         where c.table_schema = 'public' and c.column_name = 'tenant_id' \
         and t.table_type = 'BASE TABLE' and c.table_name not like 'aries\\_%' \
         order by 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Rows per tenant on one shard (tenants absent from the answer hold none there).
pub async fn measure_shard(
    handle: &ShardHandle,
    tenants: &[TenantId],
) -> Result<HashMap<TenantId, u64>, String> {
    handle
        .breaker
        .check()
        .map_err(|_| "the shard's circuit breaker is open".to_owned())?;
    let result: Result<HashMap<TenantId, u64>, sqlx::Error> = async {
        let mut tx = handle
            .pool
            .begin_with("begin transaction isolation level repeatable read read only")
            .await?;
        let tables = tenant_tables(&mut tx).await?;
        let mut out = HashMap::with_capacity(tenants.len());
        if tables.is_empty() {
            tx.rollback().await?;
            return Ok(out);
        }
        let sum = tables
            .iter()
            .map(|t| format!("(select count(*) from {})", quote_ident(t)))
            .collect::<Vec<_>>()
            .join(" + ");
        for batch in tenants.chunks(BATCH) {
            let sql: String = batch
                .iter()
                .map(|t| {
                    let id = t.as_uuid().hyphenated();
                    format!(
                        "select set_config('aries.tenant_id', '{id}', true); \
                         select '{id}'::uuid as tenant_id, ({sum})::bigint as load;\n"
                    )
                })
                .collect();
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?;
            for row in rows.iter().filter(|r| r.len() == 2) {
                let id: uuid::Uuid = row.try_get(0)?;
                let load: i64 = row.try_get(1)?;
                out.insert(TenantId(id), u64::try_from(load).unwrap_or(0));
            }
        }
        tx.rollback().await?;
        Ok(out)
    }
    .await;
    handle.report(&result);
    result.map_err(|e| e.to_string())
}

/// Measures every shard at once (each within `deadline`) and plans.
pub async fn plan_rebalance(
    directory: &Directory,
    settings: PlanSettings,
    deadline: Duration,
) -> Result<RebalancePlan, CatalogError> {
    let catalog = directory.catalog();
    let shards = catalog.shards().await?;
    let mut names: HashMap<TenantId, String> = HashMap::new();
    let mut by_shard: Vec<(ShardRecord, Vec<TenantId>)> = Vec::with_capacity(shards.len());
    for shard in shards {
        let tenants = catalog.tenants_on_shard(shard.id).await?;
        let ids = tenants.iter().map(|t| t.0).collect();
        names.extend(tenants);
        by_shard.push((shard, ids));
    }
    let measured = join_all(by_shard.iter().map(|(shard, ids)| async move {
        // A registered shard holds no tenants and has no actor yet: nothing to measure.
        if shard.status == ShardStatus::Registered || ids.is_empty() {
            return Ok(HashMap::new());
        }
        let handle = directory
            .shards()
            .get(shard.id)
            .await
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(deadline, measure_shard(&handle, ids))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {} ms", deadline.as_millis())))
    }))
    .await;
    let mut inputs = Vec::with_capacity(by_shard.len());
    let mut errors: HashMap<aries_shards::ShardId, String> = HashMap::new();
    for ((shard, ids), loads) in by_shard.iter().zip(measured) {
        let (role, tenants) = match loads {
            Ok(loads) => (
                match shard.status {
                    ShardStatus::Active => ShardRole::Active,
                    ShardStatus::Draining => ShardRole::Draining,
                    ShardStatus::ReadOnly | ShardStatus::Registered => ShardRole::Frozen,
                },
                ids.iter()
                    .map(|id| TenantLoad {
                        tenant: *id,
                        load: loads.get(id).copied().unwrap_or(0),
                    })
                    .collect(),
            ),
            Err(e) => {
                tracing::warn!(shard = %shard.name, error = %e, "rebalance: shard not measured");
                errors.insert(shard.id, e);
                (ShardRole::Frozen, Vec::new())
            }
        };
        inputs.push(ShardInput {
            shard_id: shard.id,
            weight: shard.weight,
            role,
            tenants,
        });
    }
    let plan = rebalance::plan(&inputs, settings);
    let shard_name = |id| {
        by_shard
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(s, _)| s.name.clone())
            .unwrap_or_default()
    };
    let slug = |id: &TenantId| names.get(id).cloned().unwrap_or_else(|| id.to_string());
    let mut missing_shards: Vec<String> = errors.keys().map(|id| shard_name(*id)).collect();
    missing_shards.sort();
    let mut balances: Vec<ShardBalanceView> = plan
        .shards
        .iter()
        .filter_map(|b| {
            let (shard, ids) = by_shard.iter().find(|(s, _)| s.id == b.shard_id)?;
            Some(ShardBalanceView {
                shard: shard.name.clone(),
                status: shard.status.as_str().to_owned(),
                role: b.role,
                weight: b.weight,
                tenants: ids.len(),
                load_before: b.before,
                load_after: b.after,
                fair_share: b.fair_share,
                error: errors.get(&b.shard_id).cloned(),
            })
        })
        .collect();
    balances.sort_by(|a, b| a.shard.cmp(&b.shard));
    Ok(RebalancePlan {
        moves: plan
            .moves
            .iter()
            .map(|m| PlannedMoveView {
                tenant: slug(&m.tenant),
                from_shard: shard_name(m.from),
                to_shard: shard_name(m.to),
                load: m.load,
            })
            .collect(),
        shards: balances,
        unplaced: plan.unplaced.iter().map(slug).collect(),
        threshold_pct: settings.threshold_pct,
        partial: !missing_shards.is_empty(),
        missing_shards,
    })
}
