//! The operator's cross-shard report (DESIGN.md §3 "cross-shard queries"): per tenant, the rentals
//! out now, what was billed in a month and the open accounts receivable. It scatters to every shard
//! of the catalog at once and gathers with a deadline per shard; a shard that fails, is refused by
//! its breaker or does not answer in time is named in `missing_shards` and makes the answer
//! `partial`, so the report is never silently incomplete.
//!
//! How a shard is read across its tenants: with no privilege beyond the application's. Row-level
//! security is forced on every tenant table and the app role has no BYPASSRLS, and that stays so:
//! instead of a role that may read every tenant's rows, each shard runs ONE read-only transaction
//! on one connection, and for each tenant the catalog places on it sets `aries.tenant_id`
//! (`set_config(…, true)`, transaction-local) and runs the tenant's aggregate statement. Both go in
//! one simple-protocol message per batch of tenants, so a shard costs a round trip per batch, not
//! per tenant. Every figure is computed under its own tenant's setting, exactly as a tenant request
//! would be, and a bug in the statement cannot mix tenants.

use crate::directory::Directory;
use crate::shard::ShardHandle;
use aries_shards::catalog::{TenantFilter, TenantRecord};
use aries_shards::{CatalogError, ShardId};
use aries_tenants::TenantStatus;
use aries_tenants::page::PageRequest;
use aries_tenants::reports::{TenantFigures, parse_figures, platform_tenant_sql};
use chrono::NaiveDate;
use futures::future::join_all;
use serde::Serialize;
use sqlx::Row as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Tenants per simple-query message.
const BATCH: usize = 100;

/// How one shard answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ShardAnswer {
    /// Every tenant's figures are in the report.
    Ok,
    /// No answer within the deadline.
    TimedOut,
    /// The query failed (connection refused, error), or the shard's breaker is open.
    Failed,
}

/// One shard's part in the report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShardOutcome {
    /// The shard's name.
    pub shard: String,
    /// How it answered.
    pub answer: ShardAnswer,
    /// Tenants the catalog places on it (their rows are missing unless `answer` is `ok`).
    pub tenants: usize,
    /// Time it took (or the deadline, when it timed out).
    pub elapsed_ms: u64,
    /// Why it failed, for operators (never credentials: the DSN carries none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One tenant's row.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TenantReportRow {
    /// The tenant's slug.
    pub slug: String,
    /// The provider company's name.
    pub name: String,
    /// Its lifecycle status (suspended and archived tenants still hold data).
    pub status: TenantStatus,
    /// The shard holding it.
    pub shard: String,
    /// Its figures.
    #[serde(flatten)]
    pub figures: TenantFigures,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
pub struct PlatformReport {
    /// True when a shard did not answer: its tenants are absent from `data`.
    pub partial: bool,
    /// The shards that did not answer, by name.
    pub missing_shards: Vec<String>,
    /// Every shard's outcome, by name.
    pub shards: Vec<ShardOutcome>,
    /// The tenants of the shards that answered, by slug.
    pub data: Vec<TenantReportRow>,
}

/// Every tenant the catalog places somewhere, except those still being provisioned (their anchor
/// row may not exist yet).
async fn placed_tenants(directory: &Directory) -> Result<Vec<TenantRecord>, CatalogError> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        limit: 500,
        after: None,
    };
    loop {
        let mut rows = directory
            .catalog()
            .tenants(&TenantFilter::default(), page)
            .await?;
        let more = rows.len() > page.limit as usize;
        rows.truncate(page.limit as usize);
        page.after = rows.last().map(|t| t.id.as_uuid());
        all.extend(
            rows.into_iter()
                .filter(|t| t.placement.is_some() && t.status != TenantStatus::Provisioning),
        );
        if !more {
            return Ok(all);
        }
    }
}

/// One shard's figures: one read-only transaction, one message per batch of tenants.
async fn shard_figures(
    handle: &ShardHandle,
    tenants: &[TenantRecord],
    month_start: NaiveDate,
) -> Result<Vec<TenantFigures>, String> {
    handle
        .breaker
        .check()
        .map_err(|_| "the shard's circuit breaker is open".to_owned())?;
    let result: Result<Vec<TenantFigures>, sqlx::Error> = async {
        let mut tx = handle
            .pool
            .begin_with("begin transaction isolation level repeatable read read only")
            .await?;
        let mut out = Vec::with_capacity(tenants.len());
        for batch in tenants.chunks(BATCH) {
            let sql: String = batch
                .iter()
                .map(|t| {
                    format!(
                        "select set_config('aries.tenant_id', '{}', true); {};\n",
                        t.id.as_uuid().hyphenated(),
                        platform_tenant_sql(t.id, month_start)
                    )
                })
                .collect();
            let rows = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                .fetch_all(&mut *tx)
                .await?;
            for row in rows.iter().filter(|r| r.len() == 4) {
                let cols: [String; 4] = [
                    row.try_get(0)?,
                    row.try_get(1)?,
                    row.try_get(2)?,
                    row.try_get(3)?,
                ];
                let figures = parse_figures([&cols[0], &cols[1], &cols[2], &cols[3]])
                    .ok_or_else(|| sqlx::Error::Protocol("unreadable platform figures".into()))?;
                out.push(figures);
            }
        }
        tx.rollback().await?;
        Ok(out)
    }
    .await;
    handle.report(&result);
    result.map_err(|e| e.to_string())
}

/// Runs the report for the month starting `month_start` on every shard at once, each within
/// `deadline`. Fails only when the catalog does (it says which shards and tenants exist).
pub async fn tenant_report(
    directory: &Directory,
    month_start: NaiveDate,
    deadline: Duration,
) -> Result<PlatformReport, CatalogError> {
    let shards = directory.catalog().shards().await?;
    let tenants = placed_tenants(directory).await?;
    let mut by_shard: HashMap<ShardId, Vec<TenantRecord>> = HashMap::new();
    for t in tenants {
        if let Some(p) = t.placement {
            by_shard.entry(p.shard_id).or_default().push(t);
        }
    }
    // A registered shard holds no tenants and has no actor yet: it is not part of the report.
    let shards = shards
        .into_iter()
        .filter(|s| s.status != aries_shards::ShardStatus::Registered);
    let work = shards.map(|shard| {
        let tenants = by_shard.remove(&shard.id).unwrap_or_default();
        async move {
            let started = Instant::now();
            let handle: Result<Arc<ShardHandle>, String> = directory
                .shards()
                .get(shard.id)
                .await
                .map_err(|e| e.to_string());
            let answer = match handle {
                Ok(h) => {
                    tokio::time::timeout(deadline, shard_figures(&h, &tenants, month_start)).await
                }
                Err(e) => Ok(Err(e)),
            };
            let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let (answer, error, figures) = match answer {
                Ok(Ok(f)) => (ShardAnswer::Ok, None, f),
                Ok(Err(e)) => (ShardAnswer::Failed, Some(e), Vec::new()),
                Err(_) => (
                    ShardAnswer::TimedOut,
                    Some(format!("no answer within {} ms", deadline.as_millis())),
                    Vec::new(),
                ),
            };
            if let Some(e) = &error {
                tracing::warn!(shard = %shard.name, error = %e, "platform report: shard missing");
            }
            let outcome = ShardOutcome {
                shard: shard.name.clone(),
                answer,
                tenants: tenants.len(),
                elapsed_ms,
                error,
            };
            let rows: Vec<TenantReportRow> = tenants
                .into_iter()
                .filter_map(|t| {
                    let f = figures.iter().find(|f| f.tenant_id == t.id)?.clone();
                    Some(TenantReportRow {
                        slug: t.slug.to_string(),
                        name: t.name,
                        status: t.status,
                        shard: shard.name.clone(),
                        figures: f,
                    })
                })
                .collect();
            (outcome, rows)
        }
    });
    let gathered = join_all(work).await;
    let mut shards = Vec::new();
    let mut data = Vec::new();
    for (outcome, rows) in gathered {
        shards.push(outcome);
        data.extend(rows);
    }
    shards.sort_by(|a, b| a.shard.cmp(&b.shard));
    data.sort_by(|a, b| a.slug.cmp(&b.slug));
    let missing_shards: Vec<String> = shards
        .iter()
        .filter(|s| s.answer != ShardAnswer::Ok)
        .map(|s| s.shard.clone())
        .collect();
    Ok(PlatformReport {
        partial: !missing_shards.is_empty(),
        missing_shards,
        shards,
        data,
    })
}
