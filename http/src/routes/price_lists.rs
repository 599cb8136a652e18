//! Price lists: `/v1/tenants/{tenant}/price-lists`, their rows per item
//! (`…/{price_list_id}/items/{item_id}`, created or replaced by `PUT`), the CMS DMEPOS fee-schedule
//! import (`…/fee-schedule-import`) and the percentage adjustment (`…/adjust`).
//!
//! The import takes the file either inside a JSON body (`{"csv": …, "state": "TX", …}`, bounded
//! by the app's body limit, `http.body_limit_bytes`, 256 KiB by default: enough for a cut-down
//! file) or as the raw file with `Content-Type: text/csv` and the options as query parameters
//! (`?state=TX&rural=false&dry_run=true`), bounded by
//! [`FEE_SCHEDULE_MAX_BYTES`] (16 MiB) on this route only: the public all-states file is a few
//! megabytes.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{self, bool_param, keyed_ok, with_etag};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{FromRequest as _, HttpRequest, HttpResponse, web};
use aries_actors::ops::price_lists::{
    AdjustPriceList, CreatePriceList, DeletePriceListItem, GetPriceList, GetPriceListItem,
    ImportFeeSchedule, ListPriceListItems, ListPriceLists, PatchPriceList, PutPriceListItem,
};
use aries_tenants::dme::codes::Hcpcs;
use aries_tenants::ids::{ItemId, PriceListId};
use aries_tenants::price_lists::{
    AdjustInput, Adjustment, FEE_SCHEDULE_MAX_BYTES, FeeScheduleImport, FeeScheduleImportInput,
    ItemFilter, PriceList, PriceListFilter, PriceListInput, PriceListItem, PriceListItemInput,
    PutOutcome,
};
use futures::StreamExt as _;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

/// Create a price list.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/price-lists", tag = "price-lists", request_body = PriceListInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = PriceList), (status = 409, description = "price_list_name_taken"), (status = 422, description = "validation_failed")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<PriceListInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        CreatePriceList { input: body.value },
        |v| format!("/v1/tenants/{slug}/price-lists/{}", v.id),
        |v| v.version,
    )
    .await
}

/// Filters of the list of price lists.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PriceListQuery {
    /// Substring of the name.
    pub q: Option<String>,
    /// `true` or `false`.
    pub active: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List price lists.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/price-lists", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PriceListQuery),
    responses((status = 200, description = "`{data: [PriceList], next_cursor?}`")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PriceListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let filter = PriceListFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        active: bool_param("active", q.active.as_deref())?,
    };
    let op = ListPriceLists { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |l| l.id.as_uuid()).await
}

fn list_id(path: web::Path<(String, String)>) -> Result<PriceListId, ApiError> {
    path_id("price_list_id", &path.into_inner().1)
}

fn row_ids(path: web::Path<(String, String, String)>) -> Result<(PriceListId, ItemId), ApiError> {
    let (_, list, item) = path.into_inner();
    Ok((path_id("price_list_id", &list)?, path_id("item_id", &item)?))
}

/// One price list.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PriceList), (status = 404, description = "not_found")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = list_id(path)?;
    common::cached_show(&caller, &req, &state, GetPriceList { id }, |l| l.version).await
}

/// Update a price list with a JSON merge patch; `If-Match` makes it conditional (412 when stale).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = PriceList), (status = 409, description = "price_list_name_taken"), (status = 412, description = "version_mismatch")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = list_id(path)?;
    let op = |patch, if_match| PatchPriceList {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |l| l.version).await
}

/// Filters of a list's rows.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ItemQuery {
    /// Rows with this HCPCS code.
    pub hcpcs: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// A price list's rows, in item-id order.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/items", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid), ItemQuery),
    responses((status = 200, description = "`{data: [PriceListItem], next_cursor?}`"), (status = 404, description = "not_found")))]
pub async fn list_items(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ItemQuery>,
) -> Result<HttpResponse, ApiError> {
    let list = list_id(path)?;
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let hcpcs = q
        .hcpcs
        .as_deref()
        .map(|h| Hcpcs::parse(h).map_err(|m| query_error("hcpcs", "invalid_format", &m)))
        .transpose()?;
    let op = ListPriceListItems {
        list,
        page,
        filter: ItemFilter { hcpcs },
    };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |r| {
        r.item_id.as_uuid()
    })
    .await
}

/// One row of a price list.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/items/{item_id}", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid),
           ("item_id" = String, Path, format = Uuid)),
    responses((status = 200, body = PriceListItem), (status = 404, description = "not_found")))]
pub async fn show_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (list, item) = row_ids(path)?;
    common::cached_show(
        &caller,
        &req,
        &state,
        GetPriceListItem { list, item },
        |r| r.version,
    )
    .await
}

/// Create (201) or replace (200) the row of an item in a price list. `If-Match` makes a
/// replacement conditional (412 when stale, or when the row does not exist yet).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/items/{item_id}", tag = "price-lists",
    request_body = PriceListItemInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid),
           ("item_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the row being replaced")),
    responses((status = 201, body = PriceListItem, description = "created"), (status = 200, body = PriceListItem, description = "replaced"),
              (status = 404, description = "not_found: the list or the item"), (status = 412, description = "version_mismatch"),
              (status = 422, description = "validation_failed")))]
pub async fn put_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
    body: JsonBody<PriceListItemInput>,
) -> Result<HttpResponse, ApiError> {
    let (list, item) = row_ids(path)?;
    let if_match = if_match(&req)?;
    let op = PutPriceListItem {
        list,
        item,
        input: body.value,
        if_match,
    };
    let (row, outcome) = common::exec(&caller, &state, op).await?;
    let res = if outcome == PutOutcome::Created {
        HttpResponse::Created()
            .insert_header((
                header::LOCATION,
                format!(
                    "/v1/tenants/{}/price-lists/{list}/items/{item}",
                    caller.slug
                ),
            ))
            .json(&row)
    } else {
        HttpResponse::Ok().json(&row)
    };
    Ok(with_etag(res, row.version))
}

/// Remove an item's row from a price list (`If-Match` honoured).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/items/{item_id}", tag = "price-lists", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid),
           ("item_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the row being deleted")),
    responses((status = 204, description = "deleted"), (status = 404, description = "not_found"), (status = 412, description = "version_mismatch")))]
pub async fn delete_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (list, item) = row_ids(path)?;
    let if_match = if_match(&req)?;
    let op = DeletePriceListItem {
        list,
        item,
        if_match,
    };
    common::exec(&caller, &state, op).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Options of a `text/csv` import, as query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    /// With a `text/csv` body: the state whose column is read (`TX`).
    pub state: Option<String>,
    /// With a `text/csv` body: `true` reads the rural column.
    pub rural: Option<String>,
    /// With a `text/csv` body: `true` returns the diff without writing.
    pub dry_run: Option<String>,
    /// With a `text/csv` body: `true` also re-prices the list's new order lines.
    pub cascade_to_open_lines: Option<String>,
}

fn essence(req: &HttpRequest) -> String {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Reads a `text/csv` body of at most [`FEE_SCHEDULE_MAX_BYTES`]; returns the text (invalid
/// UTF-8 replaced: only codes and amounts are read) and the request's hash for idempotency.
async fn csv_body(
    req: &HttpRequest,
    payload: web::Payload,
) -> Result<(String, [u8; 32]), ApiError> {
    let too_large = || {
        ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("a fee-schedule file is at most {FEE_SCHEDULE_MAX_BYTES} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > FEE_SCHEDULE_MAX_BYTES) {
        return Err(too_large());
    }
    let mut payload = payload.into_inner();
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk
            .map_err(|e| ApiError::new(ErrorCode::BadRequest, format!("reading the body: {e}")))?;
        if body.len() + chunk.len() > FEE_SCHEDULE_MAX_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let mut digest = Sha256::new();
    digest.update(req.method().as_str().as_bytes());
    digest.update(b" ");
    digest.update(req.path().as_bytes());
    digest.update(b"?");
    digest.update(req.query_string().as_bytes());
    digest.update(b"\n");
    digest.update(&body);
    Ok((
        String::from_utf8_lossy(&body).into_owned(),
        digest.finalize().into(),
    ))
}

/// Import the CMS DMEPOS fee schedule into this list's allowables: every row whose HCPCS the file
/// prices for the state gets the file's rent and sale allowables (an allowable the file lacks is
/// left as it is; other lists are untouched). Returns the diff; `dry_run` writes nothing. A file
/// that cannot be read, or has no column for the state, is 422 `fee_schedule_invalid` with the
/// reader's message (line number, or the columns it has). Send the file in a JSON body, or as
/// `text/csv` (up to 16 MiB) with `state`, `rural` and `dry_run` as query parameters.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/fee-schedule-import", tag = "price-lists",
    request_body(content((FeeScheduleImportInput = "application/json"), (String = "text/csv"))),
    security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid), ImportQuery,
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and request returns the first response")),
    responses((status = 200, body = FeeScheduleImport), (status = 404, description = "not_found"),
              (status = 413, description = "payload_too_large"), (status = 415, description = "unsupported_media_type"),
              (status = 422, description = "fee_schedule_invalid, validation_failed")))]
pub async fn import_fee_schedule(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<ImportQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let list = list_id(path)?;
    let q = query.into_inner();
    let (input, sha) = match essence(&req).as_str() {
        "text/csv" => {
            let st = q
                .state
                .ok_or_else(|| query_error("state", "required", "the state column to read"))?;
            let rural = bool_param("rural", q.rural.as_deref())?.unwrap_or(false);
            let dry_run = bool_param("dry_run", q.dry_run.as_deref())?.unwrap_or(false);
            let cascade_to_open_lines =
                bool_param("cascade_to_open_lines", q.cascade_to_open_lines.as_deref())?
                    .unwrap_or(false);
            let (csv, sha) = csv_body(&req, payload).await?;
            (
                FeeScheduleImportInput {
                    csv,
                    state: st,
                    rural,
                    dry_run,
                    cascade_to_open_lines,
                },
                sha,
            )
        }
        ct if ct == "application/json"
            || (ct.starts_with("application/") && ct.ends_with("+json")) =>
        {
            if let Some(field) = [
                ("state", &q.state),
                ("rural", &q.rural),
                ("dry_run", &q.dry_run),
            ]
            .iter()
            .find_map(|(f, v)| v.is_some().then_some(*f))
            {
                return Err(query_error(
                    field,
                    "unexpected",
                    "with a JSON body, send the options in the body",
                ));
            }
            let body =
                JsonBody::<FeeScheduleImportInput>::from_request(&req, &mut payload.into_inner())
                    .await?;
            (body.value, body.request_sha256)
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the file as text/csv, or inside an application/json body",
            ));
        }
    };
    keyed_ok(
        &caller,
        &req,
        &state,
        sha,
        ImportFeeSchedule { list, input },
    )
    .await
}

/// Raise or lower prices of this list by a percentage (negative lowers; above -100), each rounded
/// half-up to the cent; by default both billables, optionally only the rows of one HCPCS code.
/// Returns the rows changed, before and after. Send an `Idempotency-Key` so a retry does not
/// apply the percentage twice.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/price-lists/{price_list_id}/adjust", tag = "price-lists",
    request_body = AdjustInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("price_list_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body returns the first response")),
    responses((status = 200, body = Adjustment), (status = 404, description = "not_found"), (status = 422, description = "validation_failed")))]
pub async fn adjust(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<AdjustInput>,
) -> Result<HttpResponse, ApiError> {
    let list = list_id(path)?;
    let op = AdjustPriceList {
        list,
        input: body.value,
    };
    keyed_ok(&caller, &req, &state, body.request_sha256, op).await
}
