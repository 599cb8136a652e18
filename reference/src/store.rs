//! SQL over the catalog's reference tables: idempotent upserts and run records for the sync
//! (owner role, command line only), and the reads behind the tenant read API (app role).
//!
//! Upserts write a row only when it is new or its content differs, so a rerun of the same data
//! reports zero rows upserted and leaves `synced_at` alone.

use crate::mapping::{DatasetKind, FeeRow, HcpcsRow};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use std::str::FromStr;
use uuid::Uuid;

/// A HCPCS code as the read API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct HcpcsCode {
    /// HCPCS Level II code (`E0601`).
    pub code: String,
    /// CMS short description.
    pub short_description: String,
    /// Long description, when the source had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub long_description: Option<String>,
    /// First day the code is valid, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub effective_date: Option<NaiveDate>,
    /// Day the code ended, when it has.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_date: Option<NaiveDate>,
    /// `socrata` or `cms`: which connector wrote it.
    pub source: String,
    /// The source's dataset id.
    pub dataset: String,
    /// When this row's content last changed.
    pub synced_at: DateTime<Utc>,
}

/// A fee-schedule amount as the read API returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FeeScheduleEntry {
    /// Calendar year of the schedule.
    pub year: i16,
    /// Quarter, 1 to 4.
    pub quarter: i16,
    /// HCPCS code.
    pub hcpcs: String,
    /// Pricing modifier (`RR`, `NU`…); absent when blank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modifier: Option<String>,
    /// Second modifier; absent when blank.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modifier2: Option<String>,
    /// Two-letter state.
    pub state: String,
    /// The rural (`R`) fee rather than the non-rural (`NR`) one.
    pub rural: bool,
    /// The fee as a decimal string with two places (`"80.10"`).
    #[schema(value_type = String, example = "80.10")]
    pub amount: Decimal,
    /// CMS payment category (`CR`, `OX`…), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// `socrata` or `cms`.
    pub source: String,
    /// When this row's content last changed.
    pub synced_at: DateTime<Utc>,
}

/// One sync run, as `aries reference status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SyncRun {
    /// The run's id (UUIDv7, so in start order).
    pub sync_id: Uuid,
    /// `hcpcs` or `fee_schedule`.
    pub dataset_kind: String,
    /// `socrata` or `cms`.
    pub source: String,
    /// The API the data came from.
    pub base_url: String,
    /// The source's dataset id.
    pub dataset: String,
    /// When the run began.
    pub started_at: DateTime<Utc>,
    /// When it ended; `None` while running (or when it died without recording its end).
    pub finished_at: Option<DateTime<Utc>>,
    /// Records received.
    pub rows_fetched: i64,
    /// Rows new or changed.
    pub rows_upserted: i64,
    /// Rows that failed validation.
    pub rows_rejected: i64,
    /// A sample of rejections: `[{"record": n, "reason": "…"}]`.
    pub rejections: serde_json::Value,
    /// `running`, `succeeded` or `failed`.
    pub status: String,
    /// Why a failed run failed.
    pub error: Option<String>,
}

/// Opens a run row (`running`).
pub async fn start_run(
    pool: &PgPool,
    kind: DatasetKind,
    source: &str,
    base_url: &str,
    dataset: &str,
) -> Result<Uuid, sqlx::Error> {
    let id = Uuid::now_v7();
    sqlx::query(
        "insert into reference_sync (sync_id, dataset_kind, source, base_url, dataset) values ($1, $2, $3, $4, $5)",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(source)
    .bind(base_url)
    .bind(dataset)
    .execute(pool)
    .await?;
    Ok(id)
}

/// Adds a page's counts to the run (in the page's transaction) and stores the rejection sample.
pub async fn record_page(
    conn: &mut PgConnection,
    id: Uuid,
    fetched: u64,
    upserted: u64,
    rejected: u64,
    sample: &serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update reference_sync set rows_fetched = rows_fetched + $2, rows_upserted = rows_upserted + $3, \
         rows_rejected = rows_rejected + $4, rejections = $5 where sync_id = $1",
    )
    .bind(id)
    .bind(i64::try_from(fetched).unwrap_or(i64::MAX))
    .bind(i64::try_from(upserted).unwrap_or(i64::MAX))
    .bind(i64::try_from(rejected).unwrap_or(i64::MAX))
    .bind(sample)
    .execute(conn)
    .await?;
    Ok(())
}

/// Closes a run: `succeeded`, or `failed` with its error.
pub async fn finish_run(pool: &PgPool, id: Uuid, error: Option<&str>) -> Result<(), sqlx::Error> {
    sqlx::query(
        "update reference_sync set finished_at = now(), status = $2, error = $3 where sync_id = $1",
    )
    .bind(id)
    .bind(if error.is_some() {
        "failed"
    } else {
        "succeeded"
    })
    .bind(error)
    .execute(pool)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct RunRow {
    sync_id: Uuid,
    dataset_kind: String,
    source: String,
    base_url: String,
    dataset: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    rows_fetched: i64,
    rows_upserted: i64,
    rows_rejected: i64,
    rejections: serde_json::Value,
    status: String,
    error: Option<String>,
}

/// The latest `limit` runs, newest first.
pub async fn recent_runs(pool: &PgPool, limit: i64) -> Result<Vec<SyncRun>, sqlx::Error> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "select sync_id, dataset_kind, source, base_url, dataset, started_at, finished_at, rows_fetched, \
         rows_upserted, rows_rejected, rejections, status, error from reference_sync \
         order by started_at desc, sync_id desc limit $1",
    )
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| SyncRun {
            sync_id: r.sync_id,
            dataset_kind: r.dataset_kind,
            source: r.source,
            base_url: r.base_url,
            dataset: r.dataset,
            started_at: r.started_at,
            finished_at: r.finished_at,
            rows_fetched: r.rows_fetched,
            rows_upserted: r.rows_upserted,
            rows_rejected: r.rows_rejected,
            rejections: r.rejections,
            status: r.status,
            error: r.error,
        })
        .collect())
}

/// Upserts HCPCS rows (keys unique within `rows`); returns how many were new or changed.
pub async fn upsert_hcpcs(
    conn: &mut PgConnection,
    rows: &[HcpcsRow],
    source: &str,
    dataset: &str,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let date = |d: &Option<NaiveDate>| d.map(|d| d.format("%Y-%m-%d").to_string());
    let codes: Vec<String> = rows.iter().map(|r| r.code.to_string()).collect();
    let short: Vec<String> = rows.iter().map(|r| r.short_description.clone()).collect();
    let long: Vec<Option<String>> = rows.iter().map(|r| r.long_description.clone()).collect();
    let eff: Vec<Option<String>> = rows.iter().map(|r| date(&r.effective_date)).collect();
    let term: Vec<Option<String>> = rows.iter().map(|r| date(&r.termination_date)).collect();
    let (n,): (i64,) = sqlx::query_as(
        "with up as ( \
           insert into hcpcs_code as h (code, short_description, long_description, effective_date, termination_date, source, dataset) \
           select t.code, t.short_description, t.long_description, t.eff::date, t.term::date, $6, $7 \
             from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[]) \
               as t(code, short_description, long_description, eff, term) \
           on conflict (code) do update set short_description = excluded.short_description, \
             long_description = excluded.long_description, effective_date = excluded.effective_date, \
             termination_date = excluded.termination_date, source = excluded.source, dataset = excluded.dataset, \
             synced_at = now() \
           where (h.short_description, h.long_description, h.effective_date, h.termination_date) \
             is distinct from (excluded.short_description, excluded.long_description, excluded.effective_date, excluded.termination_date) \
           returning 1) \
         select count(*) from up",
    )
    .bind(codes)
    .bind(short)
    .bind(long)
    .bind(eff)
    .bind(term)
    .bind(source)
    .bind(dataset)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

/// Upserts fee rows (keys unique within `rows`); returns how many were new or changed.
pub async fn upsert_fees(
    conn: &mut PgConnection,
    rows: &[FeeRow],
    source: &str,
    dataset: &str,
) -> Result<u64, sqlx::Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let years: Vec<i16> = rows.iter().map(|r| r.year).collect();
    let quarters: Vec<i16> = rows.iter().map(|r| r.quarter).collect();
    let codes: Vec<String> = rows.iter().map(|r| r.hcpcs.to_string()).collect();
    let mods: Vec<String> = rows.iter().map(|r| r.modifier.clone()).collect();
    let mods2: Vec<String> = rows.iter().map(|r| r.modifier2.clone()).collect();
    let states: Vec<String> = rows.iter().map(|r| r.state.clone()).collect();
    let rural: Vec<bool> = rows.iter().map(|r| r.rural).collect();
    let amounts: Vec<String> = rows.iter().map(|r| r.amount.to_string()).collect();
    let cats: Vec<Option<String>> = rows.iter().map(|r| r.category.clone()).collect();
    let (n,): (i64,) = sqlx::query_as(
        "with up as ( \
           insert into fee_schedule_entry as f (year, quarter, hcpcs, modifier, modifier2, state, rural, amount, category, source, dataset) \
           select t.year, t.quarter, t.hcpcs, t.modifier, t.modifier2, t.state, t.rural, t.amount::numeric(12,2), t.category, $10, $11 \
             from unnest($1::int2[], $2::int2[], $3::text[], $4::text[], $5::text[], $6::text[], $7::bool[], $8::text[], $9::text[]) \
               as t(year, quarter, hcpcs, modifier, modifier2, state, rural, amount, category) \
           on conflict (year, quarter, hcpcs, modifier, modifier2, state, rural) do update set \
             amount = excluded.amount, category = excluded.category, source = excluded.source, \
             dataset = excluded.dataset, synced_at = now() \
           where (f.amount, f.category) is distinct from (excluded.amount, excluded.category) \
           returning 1) \
         select count(*) from up",
    )
    .bind(years)
    .bind(quarters)
    .bind(codes)
    .bind(mods)
    .bind(mods2)
    .bind(states)
    .bind(rural)
    .bind(amounts)
    .bind(cats)
    .bind(source)
    .bind(dataset)
    .fetch_one(conn)
    .await?;
    Ok(u64::try_from(n).unwrap_or_default())
}

#[derive(sqlx::FromRow)]
struct HcpcsDbRow {
    code: String,
    short_description: String,
    long_description: Option<String>,
    effective_date: Option<NaiveDate>,
    termination_date: Option<NaiveDate>,
    source: String,
    dataset: String,
    synced_at: DateTime<Utc>,
}

impl From<HcpcsDbRow> for HcpcsCode {
    fn from(r: HcpcsDbRow) -> Self {
        HcpcsCode {
            code: r.code,
            short_description: r.short_description,
            long_description: r.long_description,
            effective_date: r.effective_date,
            termination_date: r.termination_date,
            source: r.source,
            dataset: r.dataset,
            synced_at: r.synced_at,
        }
    }
}

const HCPCS_COLUMNS: &str = "code, short_description, long_description, effective_date, termination_date, source, dataset, synced_at";

/// One code.
pub async fn get_hcpcs(pool: &PgPool, code: &str) -> Result<Option<HcpcsCode>, sqlx::Error> {
    let row: Option<HcpcsDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {HCPCS_COLUMNS} from hcpcs_code where code = $1"
    )))
    .bind(code)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(Into::into))
}

/// The cursor is not one this API returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the cursor is not one this API returned")]
pub struct InvalidCursor;

/// An opaque cursor over a key.
fn encode<T: Serialize>(key: &T) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(key).unwrap_or_default())
}

fn decode<T: serde::de::DeserializeOwned>(cursor: &str) -> Result<T, InvalidCursor> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor).map_err(|_| InvalidCursor)?;
    serde_json::from_slice(&bytes).map_err(|_| InvalidCursor)
}

/// A page of a reference list: `{"data": [...], "next_cursor": "…"}` like every list.
#[derive(Debug, Clone, Serialize)]
pub struct RefPage<T> {
    /// This page's rows.
    pub data: Vec<T>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

fn page_of<T, K: Serialize>(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> K) -> RefPage<T> {
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next_cursor = if more {
        rows.last().map(|r| encode(&key(r)))
    } else {
        None
    };
    RefPage {
        data: rows,
        next_cursor,
    }
}

/// Decodes a HCPCS list cursor.
pub fn hcpcs_cursor(cursor: &str) -> Result<String, InvalidCursor> {
    decode(cursor)
}

/// Codes in code order; `q` matches the code or either description (case-insensitive substring).
pub async fn list_hcpcs(
    pool: &PgPool,
    q: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<RefPage<HcpcsCode>, sqlx::Error> {
    let pattern = q.map(|q| {
        format!(
            "%{}%",
            q.replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        )
    });
    let rows: Vec<HcpcsDbRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {HCPCS_COLUMNS} from hcpcs_code \
         where ($1::text is null or code ilike $1 or short_description ilike $1 or long_description ilike $1) \
           and ($2::text is null or code > $2) \
         order by code limit $3"
    )))
    .bind(pattern)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    let rows: Vec<HcpcsCode> = rows.into_iter().map(Into::into).collect();
    Ok(page_of(rows, limit, |r| r.code.clone()))
}

/// Filters of the fee-schedule list (each optional).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeFilter {
    /// Only this (normalised) HCPCS code.
    pub hcpcs: Option<String>,
    /// Only this two-letter state.
    pub state: Option<String>,
    /// Only this modifier; `Some("")` asks for blank-modifier rows.
    pub modifier: Option<String>,
    /// Only rural (`true`) or non-rural (`false`) fees.
    pub rural: Option<bool>,
    /// Only this year.
    pub year: Option<i16>,
    /// Only this quarter.
    pub quarter: Option<i16>,
}

/// The list's order and cursor: (hcpcs, year, quarter, state, rural, modifier, modifier2).
type FeeKey = (String, i16, i16, String, bool, String, String);

/// Decodes a fee-schedule list cursor.
pub fn fee_cursor(cursor: &str) -> Result<FeeKeyCursor, InvalidCursor> {
    decode::<FeeKey>(cursor).map(FeeKeyCursor)
}

/// A decoded fee-schedule cursor (opaque to callers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeKeyCursor(FeeKey);

#[derive(sqlx::FromRow)]
struct FeeDbRow {
    year: i16,
    quarter: i16,
    hcpcs: String,
    modifier: String,
    modifier2: String,
    state: String,
    rural: bool,
    amount: String,
    category: Option<String>,
    source: String,
    synced_at: DateTime<Utc>,
}

/// Fees in (code, year, quarter, state, rural, modifier, modifier2) order.
pub async fn list_fees(
    pool: &PgPool,
    filter: &FeeFilter,
    after: Option<&FeeKeyCursor>,
    limit: u32,
) -> Result<RefPage<FeeScheduleEntry>, sqlx::Error> {
    let k = after.map(|c| &c.0);
    let rows: Vec<FeeDbRow> = sqlx::query_as(
        "select year, quarter, hcpcs, modifier, modifier2, state, rural, amount::text as amount, category, source, synced_at \
         from fee_schedule_entry \
         where ($1::text is null or hcpcs = $1) and ($2::text is null or state = $2) \
           and ($3::text is null or modifier = $3) and ($4::bool is null or rural = $4) \
           and ($5::int2 is null or year = $5) and ($6::int2 is null or quarter = $6) \
           and ($7::text is null or (hcpcs, year, quarter, state, rural, modifier, modifier2) > ($7, $8, $9, $10, $11, $12, $13)) \
         order by hcpcs, year, quarter, state, rural, modifier, modifier2 limit $14",
    )
    .bind(&filter.hcpcs)
    .bind(&filter.state)
    .bind(&filter.modifier)
    .bind(filter.rural)
    .bind(filter.year)
    .bind(filter.quarter)
    .bind(k.map(|k| k.0.clone()))
    .bind(k.map(|k| k.1).unwrap_or_default())
    .bind(k.map(|k| k.2).unwrap_or_default())
    .bind(k.map(|k| k.3.clone()).unwrap_or_default())
    .bind(k.map(|k| k.4).unwrap_or_default())
    .bind(k.map(|k| k.5.clone()).unwrap_or_default())
    .bind(k.map(|k| k.6.clone()).unwrap_or_default())
    .bind(i64::from(limit) + 1)
    .fetch_all(pool)
    .await?;
    let rows: Vec<FeeScheduleEntry> = rows
        .into_iter()
        .map(|r| FeeScheduleEntry {
            year: r.year,
            quarter: r.quarter,
            hcpcs: r.hcpcs,
            modifier: Some(r.modifier).filter(|m| !m.is_empty()),
            modifier2: Some(r.modifier2).filter(|m| !m.is_empty()),
            state: r.state,
            rural: r.rural,
            amount: Decimal::from_str(&r.amount).unwrap_or_default(),
            category: r.category,
            source: r.source,
            synced_at: r.synced_at,
        })
        .collect();
    Ok(page_of(rows, limit, |r| -> FeeKey {
        (
            r.hcpcs.clone(),
            r.year,
            r.quarter,
            r.state.clone(),
            r.rural,
            r.modifier.clone().unwrap_or_default(),
            r.modifier2.clone().unwrap_or_default(),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let key: FeeKey = (
            "E0601".into(),
            2026,
            1,
            "TX".into(),
            false,
            "RR".into(),
            String::new(),
        );
        assert_eq!(fee_cursor(&encode(&key)), Ok(FeeKeyCursor(key)));
        assert_eq!(hcpcs_cursor(&encode(&"E0601")), Ok("E0601".to_owned()));
        assert_eq!(hcpcs_cursor("!!"), Err(InvalidCursor));
        assert_eq!(fee_cursor(&encode(&"E0601")), Err(InvalidCursor));
    }

    #[test]
    fn pages_carry_a_cursor_only_when_more_rows_exist() {
        let p = page_of(vec![1, 2, 3], 2, |n| *n);
        assert_eq!(p.data, vec![1, 2]);
        assert_eq!(p.next_cursor, Some(encode(&2)));
        let p = page_of(vec![1, 2], 2, |n| *n);
        assert_eq!(p.next_cursor, None);
    }
}
