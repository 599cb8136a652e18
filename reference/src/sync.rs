//! One sync run: open a run row, fetch pages until a short one, map each record (rejecting the
//! bad ones with a reason), upsert each page's rows and add its counts to the run in one
//! transaction, then close the run as `succeeded`, or `failed` with the error. Pages already
//! written stay written (a rerun is idempotent, so finishing the job is running it again).

use crate::mapping::{FeeRow, HcpcsRow, Mapped, Mapping};
use crate::source::{PageSpec, Query, ReferenceSource, SourceError};
use crate::store;
use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

/// At most this many rejections are kept with the run (the count covers them all).
pub const REJECTION_SAMPLE: usize = 20;

/// What to sync.
#[derive(Debug, Clone)]
pub struct SyncPlan {
    /// The dataset's kind and columns.
    pub mapping: Mapping,
    /// Dataset id and conditions (`$select` is filled from the mapping).
    pub query: Query,
    /// Rows per request.
    pub page_size: u32,
    /// Recorded with the run, for the operator to see where the data came from.
    pub base_url: String,
}

/// A record that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    /// Position of the record in the whole result (1-based).
    pub record: u64,
    /// What was wrong.
    pub reason: String,
}

/// The outcome of a run (complete, or as far as it got).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// The `reference_sync` row (nil before it was created).
    pub sync_id: Uuid,
    /// Requests answered.
    pub pages: u32,
    /// Records received.
    pub fetched: u64,
    /// Rows new or changed.
    pub upserted: u64,
    /// Rows that failed validation.
    pub rejected: u64,
    /// The first [`REJECTION_SAMPLE`] rejections.
    pub rejections: Vec<Rejection>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The configuration cannot work (caught before any request).
    #[error("{0}")]
    Config(String),
    /// The source failed; the run is recorded as failed.
    #[error("sync {} failed after {} records: {error}", report.sync_id, report.fetched)]
    Source {
        report: Box<SyncReport>,
        error: SourceError,
    },
    /// The catalog failed.
    #[error("catalog: {0}")]
    Database(#[from] sqlx::Error),
}

/// Runs `plan` against `source`, writing through `pool` (the owner role: the app role only reads).
pub async fn run<S: ReferenceSource>(
    pool: &PgPool,
    source: &S,
    plan: &SyncPlan,
) -> Result<SyncReport, SyncError> {
    plan.mapping.check().map_err(SyncError::Config)?;
    if plan.page_size == 0 || plan.page_size > source.max_page_size() {
        return Err(SyncError::Config(format!(
            "the page size must be 1 to {} for {}",
            source.max_page_size(),
            source.name()
        )));
    }
    let mut query = plan.query.clone();
    query.select = plan.mapping.select();
    source
        .check(&query, PageSpec::first(plan.page_size))
        .map_err(|e| SyncError::Config(e.to_string()))?;
    let kind = plan.mapping.kind();
    let mut report = SyncReport {
        sync_id: store::start_run(pool, kind, source.name(), &plan.base_url, &query.dataset)
            .await?,
        ..Default::default()
    };
    tracing::info!(sync_id = %report.sync_id, source = source.name(), dataset = %query.dataset, kind = kind.as_str(), "reference sync started");
    match pages(pool, source, plan, &query, &mut report).await {
        Ok(()) => {
            store::finish_run(pool, report.sync_id, None).await?;
            tracing::info!(sync_id = %report.sync_id, fetched = report.fetched, upserted = report.upserted, rejected = report.rejected, "reference sync finished");
            Ok(report)
        }
        Err(e) => {
            let text = e.to_string();
            tracing::warn!(sync_id = %report.sync_id, error = %text, "reference sync failed");
            // Best effort: when the catalog itself failed, this may fail too (the run then stays
            // `running`, which `aries reference status` shows).
            if let Err(close) = store::finish_run(pool, report.sync_id, Some(&text)).await {
                tracing::error!(sync_id = %report.sync_id, error = %close, "could not record the failed run");
            }
            Err(match e {
                PageError::Source(error) => SyncError::Source {
                    report: Box::new(report),
                    error,
                },
                PageError::Database(db) => SyncError::Database(db),
            })
        }
    }
}

/// What stopped the page loop.
#[derive(Debug, thiserror::Error)]
enum PageError {
    #[error("{0}")]
    Source(SourceError),
    #[error("catalog: {0}")]
    Database(#[from] sqlx::Error),
}

async fn pages<S: ReferenceSource>(
    pool: &PgPool,
    source: &S,
    plan: &SyncPlan,
    query: &Query,
    report: &mut SyncReport,
) -> Result<(), PageError> {
    let mut page = Some(PageSpec::first(plan.page_size));
    while let Some(spec) = page {
        let records = source
            .fetch_page(query, spec)
            .await
            .map_err(PageError::Source)?;
        report.pages += 1;
        let mut hcpcs: HashMap<String, HcpcsRow> = HashMap::new();
        let mut fees: HashMap<String, FeeRow> = HashMap::new();
        let mut rejected = 0u64;
        for (i, record) in records.iter().enumerate() {
            for mapped in plan.mapping.map(record) {
                match mapped {
                    // A key seen twice in one page: the later row wins (one statement cannot
                    // write a row twice).
                    Ok(Mapped::Hcpcs(row)) => {
                        hcpcs.insert(row.code.to_string(), row);
                    }
                    Ok(Mapped::Fee(row)) => {
                        fees.insert(format!("{:?}", row.key()), row);
                    }
                    Err(reason) => {
                        rejected += 1;
                        if report.rejections.len() < REJECTION_SAMPLE {
                            report.rejections.push(Rejection {
                                record: spec.offset + i as u64 + 1,
                                reason,
                            });
                        }
                    }
                }
            }
        }
        let hcpcs: Vec<HcpcsRow> = hcpcs.into_values().collect();
        let fees: Vec<FeeRow> = fees.into_values().collect();
        let mut tx = pool.begin().await?;
        let upserted = store::upsert_hcpcs(&mut tx, &hcpcs, source.name(), &query.dataset).await?
            + store::upsert_fees(&mut tx, &fees, source.name(), &query.dataset).await?;
        let sample = serde_json::to_value(&report.rejections).unwrap_or_default();
        store::record_page(
            &mut tx,
            report.sync_id,
            records.len() as u64,
            upserted,
            rejected,
            &sample,
        )
        .await?;
        tx.commit().await?;
        report.fetched += records.len() as u64;
        report.upserted += upserted;
        report.rejected += rejected;
        page = spec.next(records.len());
    }
    Ok(())
}
