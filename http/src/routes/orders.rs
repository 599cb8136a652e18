//! Orders: `/v1/tenants/{tenant}/orders` and their lines. Edits while the order is new; then
//! `approve` (409 `missing_information` listing every problem), `deliver`, `…/lines/{id}/pickup`,
//! `cancel`. Every action `POST` takes an `Idempotency-Key`; `If-Match` guards the order's (or,
//! for line routes, the line's) version.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{ActionBody, JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{
    self, mark_replayed, merge_patch_preconditions, ok_with_etag, respond_versioned, run_keyed,
};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::orders::{
    AddLine, ApproveOrder, CancelOrder, CreateOrder, DeliverOrder, GetOrder, ListOrders,
    MissingInformation, PatchLine, PatchOrder, PickupLine, RemoveLine,
};
use aries_tenants::dme::orders::{MissingInfo, OrderState};
use aries_tenants::ids::{OrderId, OrderLineId, PatientId};
use aries_tenants::orders::{
    CancelInput, DeliverInput, LineInput, Order, OrderFilter, OrderInput, OrderLine, PickupInput,
};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

type OrderPath = web::Path<(String, String)>;
type LinePath = web::Path<(String, String, String)>;

fn order_id(path: OrderPath) -> Result<OrderId, ApiError> {
    path_id("order_id", &path.into_inner().1)
}

fn line_ids(path: LinePath) -> Result<(OrderId, OrderLineId), ApiError> {
    let (_, order, line) = path.into_inner();
    Ok((path_id("order_id", &order)?, path_id("line_id", &line)?))
}

fn order_response(
    mut res: actix_web::HttpResponseBuilder,
    o: &Order,
    replayed: bool,
) -> HttpResponse {
    mark_replayed(&mut res, replayed);
    respond_versioned(res, o, o.version)
}

fn line_of(o: &Order, id: OrderLineId) -> Result<&OrderLine, ApiError> {
    o.lines
        .iter()
        .find(|l| l.id == id)
        .ok_or_else(|| ApiError::not_found("order line"))
}

fn date_param(field: &str, raw: Option<&str>) -> Result<Option<NaiveDate>, ApiError> {
    raw.map(|s| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| query_error(field, "invalid_date", "a date as YYYY-MM-DD"))
    })
    .transpose()
}

/// Create an order (with its first lines, if given). Defaults: today's date, the patient's
/// prescriber, location, diagnoses and the policies in force, by rank.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders", tag = "orders", request_body = OrderInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Order), (status = 422, description = "validation_failed (an unknown patient, prescriber, policy, item or price list is named on its field)")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<OrderInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        CreateOrder { input: body.value },
        |o| format!("/v1/tenants/{slug}/orders/{}", o.id),
        |o| o.version,
    )
    .await
}

/// Filters of the order list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct OrderQuery {
    /// One patient's orders.
    pub patient_id: Option<String>,
    /// `new`, `approved`, `closed` or `canceled`.
    pub state: Option<String>,
    /// Order dates from (inclusive), `YYYY-MM-DD`.
    pub from: Option<String>,
    /// Order dates to (inclusive), `YYYY-MM-DD`.
    pub to: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List orders (each with its lines), oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/orders", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), OrderQuery),
    responses((status = 200, description = "`{data: [Order], next_cursor?}`"), (status = 422, description = "invalid_query")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<OrderQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let patient_id = q
        .patient_id
        .map(|p| {
            p.parse::<PatientId>()
                .map_err(|_| query_error("patient_id", "invalid_uuid", "a patient id"))
        })
        .transpose()?;
    let order_state = q
        .state
        .map(|s| {
            s.parse::<OrderState>().map_err(|_| {
                query_error(
                    "state",
                    "invalid_value",
                    "new, approved, closed or canceled",
                )
            })
        })
        .transpose()?;
    let filter = OrderFilter {
        patient_id,
        state: order_state,
        from: date_param("from", q.from.as_deref())?,
        to: date_param("to", q.to.as_deref())?,
    };
    let op = ListOrders { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |o| o.id.as_uuid()).await
}

/// One order with its lines.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/orders/{order_id}", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Order), (status = 404, description = "not_found")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    common::cached_show(&caller, &req, &state, GetOrder { id }, |o| o.version).await
}

/// Change a new order with a JSON merge patch (`If-Match` makes it conditional).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/orders/{order_id}", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the order being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Order), (status = 409, description = "order_state_conflict"), (status = 412, description = "version_mismatch")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let op = |patch, if_match| PatchOrder {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |o| o.version).await
}

/// `as_of` of the missing-information check.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AsOfQuery {
    /// The day to check for, `YYYY-MM-DD` (default today, UTC).
    pub as_of: Option<String>,
}

/// The list of missing information.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MissingList {
    /// Empty when the order may be approved (and its lines billed).
    pub data: Vec<MissingInfo>,
}

/// What the order lacks for approval and billing, as of a day.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/orders/{order_id}/missing-information", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid), AsOfQuery),
    responses((status = 200, body = MissingList), (status = 404, description = "not_found")))]
pub async fn missing_information(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: OrderPath,
    query: web::Query<AsOfQuery>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let as_of =
        date_param("as_of", query.as_of.as_deref())?.unwrap_or_else(|| Utc::now().date_naive());
    let data = common::exec(&caller, &state, MissingInformation { id, as_of }).await?;
    Ok(HttpResponse::Ok().json(MissingList { data }))
}

/// Add a line to a new order; its defaults come from the price-list row for (item, list).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders/{order_id}/lines", tag = "orders", request_body = LineInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = OrderLine), (status = 409, description = "order_state_conflict"),
        (status = 422, description = "validation_failed (`item_id` not_priced: the item is not on the list)")))]
pub async fn add_line(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
    body: JsonBody<LineInput>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let op = AddLine {
        id,
        input: body.value,
    };
    let ((o, line_id), replayed) =
        run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    let line = line_of(&o, line_id)?;
    let mut res = HttpResponse::Created();
    res.insert_header((
        header::LOCATION,
        format!("/v1/tenants/{}/orders/{id}/lines/{line_id}", caller.slug),
    ));
    mark_replayed(&mut res, replayed);
    Ok(respond_versioned(res, line, line.version))
}

/// One line.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/orders/{order_id}/lines/{line_id}", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid), ("line_id" = String, Path, format = Uuid)),
    responses((status = 200, body = OrderLine), (status = 404, description = "not_found")))]
pub async fn show_line(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: LinePath,
) -> Result<HttpResponse, ApiError> {
    let (id, line) = line_ids(path)?;
    common::cached(&caller, &req, &state, GetOrder { id }, |o| {
        let l = line_of(&o, line)?;
        common::entry_of(l, Some(l.version))
    })
    .await
}

/// Change a line of a new order with a JSON merge patch (`If-Match`: the line's ETag).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/orders/{order_id}/lines/{line_id}", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid), ("line_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the line being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = OrderLine), (status = 409, description = "order_state_conflict"), (status = 412, description = "version_mismatch")))]
pub async fn update_line(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: LinePath,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let (id, line) = line_ids(path)?;
    let if_match = merge_patch_preconditions(&req, &body.value)?;
    let op = PatchLine {
        id,
        line,
        patch: body.value,
        if_match,
    };
    let o = common::exec(&caller, &state, op).await?;
    let l = line_of(&o, line)?;
    Ok(ok_with_etag(l, l.version))
}

/// Remove a line of a new order (`If-Match`: the line's ETag).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/orders/{order_id}/lines/{line_id}", tag = "orders", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid), ("line_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the line")),
    responses((status = 204, description = "removed"), (status = 409, description = "order_state_conflict"), (status = 412, description = "version_mismatch")))]
pub async fn delete_line(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: LinePath,
) -> Result<HttpResponse, ApiError> {
    let (id, line) = line_ids(path)?;
    let if_match = if_match(&req)?;
    common::exec(&caller, &state, RemoveLine { id, line, if_match }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Body of "approve" (optional).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    /// The day the missing-information check is made for (default today, UTC).
    #[serde(default)]
    pub as_of: Option<NaiveDate>,
}

/// Approve a new order: nothing may be missing (409 `missing_information` with `missing: [..]`),
/// and stock is committed in the order's warehouse (409 `insufficient_stock`).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders/{order_id}/approve", tag = "orders", request_body(content = Option<ApproveInput>),
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, description = "ETag of the order"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first response")),
    responses((status = 200, body = Order), (status = 409, description = "missing_information, order_state_conflict or insufficient_stock"),
        (status = 412, description = "version_mismatch")))]
pub async fn approve(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
    body: ActionBody<ApproveInput>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let if_match = if_match(&req)?;
    let body = body.0;
    let as_of = body.value.as_of.unwrap_or_else(|| Utc::now().date_naive());
    let op = ApproveOrder {
        id,
        as_of,
        if_match,
    };
    let (o, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    Ok(order_response(HttpResponse::Ok(), &o, replayed))
}

/// Cancel an order before delivery; committed stock is released.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders/{order_id}/cancel", tag = "orders", request_body = CancelInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, description = "ETag of the order"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first response")),
    responses((status = 200, body = Order), (status = 409, description = "order_state_conflict"), (status = 412, description = "version_mismatch")))]
pub async fn cancel(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
    body: JsonBody<CancelInput>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let if_match = if_match(&req)?;
    let op = CancelOrder {
        id,
        input: body.value,
        if_match,
    };
    let (o, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    Ok(order_response(HttpResponse::Ok(), &o, replayed))
}

/// Deliver approved lines: serials rented or sold to the patient, stock moved out, billing
/// started at the delivery date.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders/{order_id}/deliver", tag = "orders", request_body(content = Option<DeliverInput>),
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, description = "ETag of the order"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first response")),
    responses((status = 200, body = Order), (status = 409, description = "order_state_conflict, serial_unavailable, illegal_transition or insufficient_stock"),
        (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed (a serialized line without `serial_id`…)")))]
pub async fn deliver(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: OrderPath,
    body: ActionBody<DeliverInput>,
) -> Result<HttpResponse, ApiError> {
    let id = order_id(path)?;
    let if_match = if_match(&req)?;
    let body = body.0;
    let op = DeliverOrder {
        id,
        input: body.value,
        if_match,
    };
    let (o, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    Ok(order_response(HttpResponse::Ok(), &o, replayed))
}

/// Pick up a delivered rental line: its serial returns into a warehouse (in maintenance) and the
/// line ends.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/orders/{order_id}/lines/{line_id}/pickup", tag = "orders", request_body(content = Option<PickupInput>),
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), ("order_id" = String, Path, format = Uuid),
        ("line_id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, description = "ETag of the line"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key returns the first response")),
    responses((status = 200, body = Order), (status = 409, description = "order_state_conflict or illegal_transition"), (status = 412, description = "version_mismatch")))]
pub async fn pickup(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: LinePath,
    body: ActionBody<PickupInput>,
) -> Result<HttpResponse, ApiError> {
    let (id, line) = line_ids(path)?;
    let if_match = if_match(&req)?;
    let body = body.0;
    let op = PickupLine {
        id,
        line,
        input: body.value,
        if_match,
    };
    let (o, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    Ok(order_response(HttpResponse::Ok(), &o, replayed))
}
