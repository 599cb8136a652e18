//! Reports: `/v1/tenants/{tenant}/reports` (the catalogue) and `/reports/{report}` (one report,
//! JSON or CSV), plus the operator's `/v1/platform/reports/tenants`.
//!
//! JSON answers one page: `{"data": [...], "next_cursor"?, "parameters": {...}}` (`parameters`
//! echoes every parameter as resolved, defaults included). CSV (`format=csv`, or
//! `Accept: text/csv` without `format`) answers EVERY row from `cursor` (or the start) to the end:
//! RFC 4180 with a header row and CRLF line ends, streamed page by page (500 rows per tenant
//! transaction, each page read after the previous one is sent), so an export needs no client-side
//! paging; `limit` is refused with CSV (422 `invalid_query`). Pages after the first are separate
//! transactions: the keyset order guarantees no row is repeated or skipped whose key did not
//! change meanwhile. An error after the first page cuts the response short (the chunked body
//! never completes), so a truncated export cannot pass for a whole one.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{OperatorAuth, query_error};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::TenantError;
use aries_actors::auth::Call;
use aries_actors::directory::Directory;
use aries_actors::ops::reports::{CanViewReports, RunReport};
use aries_actors::platform_report::{ShardOutcome, TenantReportRow, tenant_report};
use aries_shards::operators::OperatorRole;
use aries_tenants::reports::{
    self, CATALOGUE, MAX_LIMIT, PrepareError, ReportPage, ReportRequest, ReportSpec,
};
use aries_tenants::{DomainError, TenantSlug};
use chrono::{Datelike, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The catalogue's answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Catalogue {
    /// Every report with its parameters and columns.
    pub data: &'static [ReportSpec],
}

/// Every report this tenant can run, with its description, parameters (type, default, whether
/// required) and columns (the CSV order). Needs `reports:view`.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = Catalogue), (status = 403, description = "forbidden")))]
pub async fn catalogue(
    caller: TenantCaller,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    state
        .directory
        .exec_as(&caller.slug, caller.call(), CanViewReports {})
        .await?;
    Ok(HttpResponse::Ok().json(Catalogue { data: CATALOGUE }))
}

/// One page of a report, as JSON.
#[derive(Serialize)]
struct ReportAnswer {
    /// The rows; each object's fields are the report's columns.
    data: Vec<serde_json::Value>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next_cursor: Option<String>,
    /// Every parameter as resolved (defaults included), as strings.
    parameters: std::collections::BTreeMap<&'static str, String>,
}

/// A report op's error: a bad cursor found while running is a query problem, like any other.
fn report_error(e: TenantError) -> ApiError {
    match e {
        TenantError::Domain(DomainError::Validation(errs)) => {
            ApiError::with_errors(ErrorCode::InvalidQuery, errs.to_string(), errs.0)
        }
        other => other.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
}

fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|m| {
            m.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("text/csv")
        })
}

/// Run a report. Parameters are the report's (see the catalogue) plus `limit` (JSON only, 1 to
/// 500, default 50), `cursor` and `format` (`json` or `csv`). An unknown, repeated or malformed
/// parameter is 422 `invalid_query` naming it; an unknown report 404.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/reports/{report}", tag = "reports", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"),
           ("report" = String, Path, description = "a report name from the catalogue, e.g. `rentals-due`"),
           ("format" = Option<String>, Query, description = "`json` (default) or `csv` (every row, streamed)"),
           ("limit" = Option<String>, Query, description = "JSON page size, 1 to 500, default 50"),
           ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "`{data: [row], next_cursor?, parameters}`, or `text/csv` with a header row"),
              (status = 404, description = "not_found (no such report)"), (status = 422, description = "invalid_query")))]
pub async fn run(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<Vec<(String, String)>>,
) -> Result<HttpResponse, ApiError> {
    let name = path.into_inner().1;
    let mut pairs = query.into_inner();
    let mut format = None;
    if let Some(pos) = pairs.iter().position(|(k, _)| k == "format") {
        let (_, v) = pairs.remove(pos);
        if pairs.iter().any(|(k, _)| k == "format") {
            return Err(query_error("format", "repeated", "given more than once"));
        }
        format = Some(match v.as_str() {
            "json" => Format::Json,
            "csv" => Format::Csv,
            _ => return Err(query_error("format", "invalid_value", "json or csv")),
        });
    }
    let format = format.unwrap_or(if wants_csv(&req) {
        Format::Csv
    } else {
        Format::Json
    });
    if format == Format::Csv && pairs.iter().any(|(k, _)| k == "limit") {
        return Err(query_error(
            "limit",
            "not_with_csv",
            "a CSV export has every row; limit applies to JSON pages",
        ));
    }
    let mut request =
        reports::prepare(&name, &pairs, Utc::now().date_naive()).map_err(|e| match e {
            PrepareError::UnknownReport => ApiError::not_found("report"),
            PrepareError::Invalid(errs) => {
                ApiError::with_errors(ErrorCode::InvalidQuery, errs.to_string(), errs.0)
            }
        })?;
    let parameters = request.parameters();
    if format == Format::Json {
        let page = state
            .directory
            .exec_as(
                &caller.slug,
                caller.call(),
                RunReport {
                    request: request.clone(),
                },
            )
            .await
            .map_err(report_error)?;
        return Ok(HttpResponse::Ok().json(ReportAnswer {
            data: page.data,
            next_cursor: page.next_cursor,
            parameters,
        }));
    }
    // CSV: the first page is read before answering, so a refusal (permission, shard down) is still
    // a problem response; the rest streams.
    request.limit = MAX_LIMIT;
    let first = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            RunReport {
                request: request.clone(),
            },
        )
        .await
        .map_err(report_error)?;
    let spec = request.spec;
    let stream = csv_stream(
        state.directory.clone(),
        caller.slug.clone(),
        caller.call(),
        request,
        first,
    );
    let filename = format!("{}-{}.csv", spec.name, Utc::now().format("%Y%m%d"));
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/csv; charset=utf-8; header=present",
        ))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{filename}\""),
        ))
        .streaming(stream))
}

/// The CSV body: the header and the first page, then each further page as it is read.
fn csv_stream(
    directory: Directory,
    slug: TenantSlug,
    call: Call,
    request: ReportRequest,
    first: ReportPage,
) -> impl futures::Stream<Item = Result<web::Bytes, std::io::Error>> + 'static {
    let spec = request.spec;
    let mut head = reports::csv_header(spec);
    for row in &first.data {
        head.push_str(&reports::csv_record(spec, row));
    }
    let state = (Some(head), first.next_cursor, request);
    futures::stream::unfold(state, move |(pending, cursor, mut request)| {
        let directory = directory.clone();
        let slug = slug.clone();
        let call = call.clone();
        async move {
            if let Some(chunk) = pending {
                return Some((Ok(web::Bytes::from(chunk)), (None, cursor, request)));
            }
            let cursor = cursor?;
            if !request.with_cursor(&cursor) {
                return Some((
                    Err(std::io::Error::other("bad cursor")),
                    (None, None, request),
                ));
            }
            match directory
                .exec_as(
                    &slug,
                    call,
                    RunReport {
                        request: request.clone(),
                    },
                )
                .await
            {
                Ok(page) => {
                    let mut chunk = String::new();
                    for row in &page.data {
                        chunk.push_str(&reports::csv_record(request.spec, row));
                    }
                    Some((
                        Ok(web::Bytes::from(chunk)),
                        (None, page.next_cursor, request),
                    ))
                }
                Err(e) => {
                    tracing::warn!(error = %e, report = request.spec.name, "CSV export cut short");
                    Some((
                        Err(std::io::Error::other("report page failed")),
                        (None, None, request),
                    ))
                }
            }
        }
    })
}

// ---- the platform report ----

/// Query of the platform report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PlatformReportQuery {
    /// `YYYY-MM`, the month whose invoices count as billed; default: this month (UTC).
    pub month: Option<String>,
}

/// Totals over the tenants present.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformTotals {
    /// Tenants in `data`.
    pub tenants: usize,
    /// Σ active rentals.
    pub active_rentals: i64,
    /// Σ billed in the month.
    #[schema(value_type = String)]
    pub billed: Decimal,
    /// Σ open AR.
    #[schema(value_type = String)]
    pub open_ar: Decimal,
}

/// The platform report's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatformReportView {
    /// The month reported (`YYYY-MM`).
    pub month: String,
    /// True when a shard did not answer within the deadline or failed: its tenants are missing.
    pub partial: bool,
    /// The shards whose tenants are missing, by name.
    pub missing_shards: Vec<String>,
    /// How each shard answered.
    pub shards: Vec<ShardOutcome>,
    /// One row per tenant of the shards that answered, by slug.
    pub data: Vec<TenantReportRow>,
    /// Totals of `data`.
    pub totals: PlatformTotals,
}

fn parse_month(raw: Option<&str>) -> Result<NaiveDate, ApiError> {
    let today = Utc::now().date_naive();
    let Some(raw) = raw else {
        return Ok(today.with_day(1).unwrap_or(today));
    };
    NaiveDate::parse_from_str(&format!("{raw}-01"), "%Y-%m-%d")
        .ok()
        .filter(|d| raw.len() == 7 && (2000..=2200).contains(&d.year()))
        .ok_or_else(|| query_error("month", "invalid_value", "a month as YYYY-MM"))
}

/// Per tenant, on every shard in parallel: delivered rental lines now, the billable of invoices
/// dated in `month`, the open AR. Each shard has `[shards] report_deadline_ms` (default 2 s); a
/// shard that fails or is late is named in `missing_shards` and the answer is `partial`.
#[utoipa::path(get, path = "/v1/platform/reports/tenants", tag = "platform", security(("bearer" = [])),
    params(PlatformReportQuery),
    responses((status = 200, body = PlatformReportView), (status = 422, description = "invalid_query"),
              (status = 503, description = "service_unavailable (the catalog)")))]
pub async fn platform_tenants(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<PlatformReportQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let month = parse_month(query.month.as_deref())?;
    let report = tenant_report(&state.directory, month, state.report_deadline).await?;
    let totals = PlatformTotals {
        tenants: report.data.len(),
        active_rentals: report.data.iter().map(|r| r.figures.active_rentals).sum(),
        billed: report.data.iter().map(|r| r.figures.billed).sum(),
        open_ar: report.data.iter().map(|r| r.figures.open_ar).sum(),
    };
    Ok(HttpResponse::Ok().json(PlatformReportView {
        month: month.format("%Y-%m").to_string(),
        partial: report.partial,
        missing_shards: report.missing_shards,
        shards: report.shards,
        data: report.data,
        totals,
    }))
}
