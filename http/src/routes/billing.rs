//! Billing and AR: `/v1/tenants/{tenant}/billing/…`, `/invoices`, `/invoice-lines/…/transactions`
//! and `/ar/remittances`.
//!
//! A billing run holds the tenant's Redis lease (`billing:<tenant>`) for its whole life: a second
//! start while it runs is 409 `billing_run_in_progress`, on any instance; with Redis down the run
//! does not start (503 `service_unavailable`). The lease's fencing token goes with every batch, and
//! the database refuses a token older than the last one seen (`billing_run_superseded`).

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ActionBody, JsonBody, PageQuery, path_id, query_error};
use crate::routes::common::{bool_param, mark_replayed, run_keyed};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::locks::{Lease, LockError};
use aries_actors::ops::billing::{
    BillBatch, FinishBillingRun, GetBillingRun, GetInvoice, GetWorklist, ListBillingRuns,
    ListInvoices, ListTransactions, PostRemittance, PostTransaction, StartBillingRun,
};
use aries_tenants::billing_runs::{BatchOutcome, BillingRun, Worklist};
use aries_tenants::ids::{BillingRunId, InvoiceId, InvoiceLineId, OrderId, PatientId};
use aries_tenants::invoices::{BatchInput, Invoice, InvoiceFilter, Posted, TransactionInput};
use chrono::{NaiveDate, Utc};
use serde::Deserialize;
use std::time::Duration;

/// How long the billing lease lasts without renewal (renewed every third of it while running).
pub const LEASE_TTL: Duration = Duration::from_secs(30);

fn date_param(field: &str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(|s| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| query_error(field, "invalid_date", "a date as YYYY-MM-DD"))
    })
    .transpose()
}

fn id_param<T: std::str::FromStr>(field: &str, raw: Option<&str>) -> Result<Option<T>, ApiError> {
    raw.map(|s| {
        s.parse::<T>()
            .map_err(|_| query_error(field, "invalid_id", "a UUID"))
    })
    .transpose()
}

/// Query of the worklist.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WorklistQuery {
    /// Bill date (YYYY-MM-DD); default today (UTC).
    pub as_of: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// What would invoice as of a date: each due line with its charges; lines whose order lacks
/// information are listed under `excluded` with why.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/worklist", tag = "billing", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), WorklistQuery),
    responses((status = 200, body = Worklist)))]
pub async fn worklist(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<WorklistQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let as_of = date_param("as_of", q.as_of.as_deref())?.unwrap_or_else(|| Utc::now().date_naive());
    let w = state
        .directory
        .exec_as(&caller.slug, caller.call(), GetWorklist { as_of, page })
        .await?;
    Ok(HttpResponse::Ok().json(w))
}

/// Body of "start a billing run".
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunInput {
    /// Bills every charge dated on or before it; default today (UTC).
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
}

async fn run_batches(
    caller: &TenantCaller,
    state: &AppState,
    as_of: NaiveDate,
    lease: &Lease,
) -> Result<BillingRun, ApiError> {
    let run = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            StartBillingRun {
                as_of,
                token: lease.token,
            },
        )
        .await?;
    let mut totals = BatchOutcome::default();
    let mut invoices = 0i32;
    let mut after: Option<OrderId> = None;
    let mut failure: Option<(String, Option<ApiError>)> = None;
    loop {
        if lease.is_lost() {
            failure = Some(("the billing lease was lost".into(), None));
            break;
        }
        let out = state
            .directory
            .exec_as(
                &caller.slug,
                caller.call(),
                BillBatch {
                    run: run.id,
                    as_of,
                    token: lease.token,
                    after,
                },
            )
            .await;
        match out {
            Ok(b) => {
                totals.lines_billed += b.lines_billed;
                totals.lines_closed += b.lines_closed;
                totals.orders_skipped += b.orders_skipped;
                invoices += i32::try_from(b.invoices.len()).unwrap_or(i32::MAX);
                after = b.last_order;
                if b.done {
                    break;
                }
            }
            Err(e) => {
                let e = ApiError::from(e);
                failure = Some((e.detail.clone(), Some(e)));
                break;
            }
        }
    }
    let (error, cause) = match failure {
        Some((why, cause)) => (Some(why), cause),
        None => (None, None),
    };
    let run = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            FinishBillingRun {
                run: run.id,
                totals,
                invoices_created: invoices,
                error,
            },
        )
        .await?;
    match cause {
        Some(e) => Err(e),
        None => Ok(run),
    }
}

/// Start a billing run and wait for it: bills every due (line, month) once, grouped into
/// invoices per (order, month, flags); 201 with the finished run. One run per tenant at a time.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/billing/runs", tag = "billing", request_body(content = Option<RunInput>),
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, body = BillingRun), (status = 409, description = "billing_run_in_progress or billing_run_superseded"),
        (status = 503, description = "service_unavailable (Redis, which holds the run's lease, is down)")))]
pub async fn start_run(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: ActionBody<RunInput>,
) -> Result<HttpResponse, ApiError> {
    let as_of = body
        .0
        .value
        .as_of
        .unwrap_or_else(|| Utc::now().date_naive());
    let name = format!("billing:{}", caller.slug);
    let lease = match state.locks.acquire(&name, LEASE_TTL).await {
        Ok(l) => l,
        Err(LockError::Held(_)) => {
            return Err(ApiError::new(
                ErrorCode::BillingRunInProgress,
                "a billing run of this tenant is already running",
            ));
        }
        Err(LockError::Unavailable(why)) => {
            tracing::warn!(%why, "billing lease unavailable");
            return Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the billing lock service is not answering; no run was started",
            )
            .retry_after(Duration::from_secs(5)));
        }
    };
    let keep_alive = state.locks.keep_alive(&lease);
    let result = run_batches(&caller, &state, as_of, &lease).await;
    drop(keep_alive);
    if let Err(e) = state.locks.release(lease).await {
        tracing::warn!(error = %e, "billing lease not released; it expires by itself");
    }
    let run = result?;
    Ok(HttpResponse::Created()
        .insert_header((
            header::LOCATION,
            format!("/v1/tenants/{}/billing/runs/{}", caller.slug, run.id),
        ))
        .json(run))
}

/// Query of the run list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RunQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Billing runs, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/runs", tag = "billing", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), RunQuery),
    responses((status = 200, description = "`{data: [BillingRun], next_cursor?}`")))]
pub async fn list_runs(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<RunQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    crate::routes::common::cached_list_page(
        &caller,
        &req,
        &state,
        ListBillingRuns { page },
        page.limit,
        |r| r.id.as_uuid(),
    )
    .await
}

/// One billing run.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/billing/runs/{run_id}", tag = "billing", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("run_id" = String, Path, format = Uuid)),
    responses((status = 200, body = BillingRun), (status = 404, description = "not_found")))]
pub async fn show_run(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: BillingRunId = path_id("run_id", &path.into_inner().1)?;
    crate::routes::common::cached_ok(&caller, &req, &state, GetBillingRun { id }).await
}

/// Filters of the invoice list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct InvoiceQuery {
    pub patient_id: Option<String>,
    pub order_id: Option<String>,
    /// Invoice date from (inclusive).
    pub from: Option<String>,
    /// Invoice date to (inclusive).
    pub to: Option<String>,
    /// `true`: only invoices with a balance; `false`: only settled ones.
    pub open: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Invoices (each with its lines and their derived AR), in id order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/invoices", tag = "billing", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), InvoiceQuery),
    responses((status = 200, description = "`{data: [Invoice], next_cursor?}`")))]
pub async fn list_invoices(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<InvoiceQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let filter = InvoiceFilter {
        patient_id: id_param::<PatientId>("patient_id", q.patient_id.as_deref())?,
        order_id: id_param::<OrderId>("order_id", q.order_id.as_deref())?,
        from: date_param("from", q.from.as_deref())?,
        to: date_param("to", q.to.as_deref())?,
        open: bool_param("open", q.open.as_deref())?,
    };
    crate::routes::common::cached_list_page(
        &caller,
        &req,
        &state,
        ListInvoices { page, filter },
        page.limit,
        |i| i.id.as_uuid(),
    )
    .await
}

/// One invoice with its lines and each line's derived AR (balance, current payer, status).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/invoices/{invoice_id}", tag = "billing", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("invoice_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Invoice), (status = 404, description = "not_found")))]
pub async fn show_invoice(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id: InvoiceId = path_id("invoice_id", &path.into_inner().1)?;
    crate::routes::common::cached_ok(&caller, &req, &state, GetInvoice { id }).await
}

/// Query of a line's transactions.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TransactionQuery {
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// An invoice line's AR transactions, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/invoice-lines/{invoice_line_id}/transactions", tag = "billing",
    security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("invoice_line_id" = String, Path, format = Uuid), TransactionQuery),
    responses((status = 200, description = "`{data: [ArTransaction], next_cursor?}`"), (status = 404, description = "not_found")))]
pub async fn list_transactions(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<TransactionQuery>,
) -> Result<HttpResponse, ApiError> {
    let line: InvoiceLineId = path_id("invoice_line_id", &path.into_inner().1)?;
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    crate::routes::common::cached_list_page(
        &caller,
        &req,
        &state,
        ListTransactions { line, page },
        page.limit,
        |t| t.id.as_uuid(),
    )
    .await
}

/// Post an AR transaction on a line (submission, payment, denial, write-off). The payer defaults
/// to the line's current one; refusals are 409 naming the rule.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/invoice-lines/{invoice_line_id}/transactions", tag = "billing",
    request_body = TransactionInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("invoice_line_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Posted),
        (status = 409, description = "ar_payer_not_current, ar_overpayment, ar_line_settled, ar_payer_not_on_invoice"),
        (status = 422, description = "validation_failed")))]
pub async fn post_transaction(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<TransactionInput>,
) -> Result<HttpResponse, ApiError> {
    let line: InvoiceLineId = path_id("invoice_line_id", &path.into_inner().1)?;
    let op = PostTransaction {
        line,
        input: body.value,
    };
    let (posted, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    let mut res = HttpResponse::Created();
    mark_replayed(&mut res, replayed);
    Ok(res.json(posted))
}

/// Post a remittance: several transactions (on one or more lines) in one call, all or nothing.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/ar/remittances", tag = "billing",
    request_body = BatchInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, description = "`[Posted]` in the order given"),
        (status = 409, description = "an AR rule refused an entry (`detail` names it); nothing was posted"),
        (status = 422, description = "validation_failed")))]
pub async fn post_remittance(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<BatchInput>,
) -> Result<HttpResponse, ApiError> {
    let op = PostRemittance { input: body.value };
    let (posted, replayed): (Vec<Posted>, bool) =
        run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    let mut res = HttpResponse::Created();
    mark_replayed(&mut res, replayed);
    Ok(res.json(posted))
}
