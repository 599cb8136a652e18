//! Warehouses, inventory items and serials: `/warehouses`, `/items`, `/serials` (+ `/events`,
//! `/history`). Serial events that the serial's state does not allow answer 409
//! `illegal_transition` naming the state.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{self, create, mark_replayed, run_keyed};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::inventory::{
    CreateItem, CreateWarehouse, GetItem, GetSerial, GetWarehouse, ListItems, ListSerials,
    ListWarehouses, PatchItem, PatchWarehouse, ReceiveSerial, RecordMovement, RecordSerialEvent,
    SerialHistory, StockLedger, StockLevels,
};
use aries_tenants::dme::serials::{SerialEvent, SerialStatus};
use aries_tenants::inventory::{
    Item, ItemInput, Serial, SerialFilter, SerialInput, Warehouse, WarehouseInput,
};

/// Create a warehouse.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/warehouses", tag = "inventory", request_body = WarehouseInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 201, body = Warehouse), (status = 409, description = "warehouse_code_taken")))]
pub async fn create_warehouse(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<WarehouseInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        CreateWarehouse { input: body.value },
        |w| format!("/v1/tenants/{slug}/warehouses/{}", w.id),
        |w| w.version,
    )
    .await
}

/// List warehouses.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/warehouses", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PageQuery), responses((status = 200, description = "`{data: [Warehouse], next_cursor?}`")))]
pub async fn list_warehouses(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.parse()?;
    let op = ListWarehouses { page };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |w| w.id.as_uuid()).await
}

/// One warehouse.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/warehouses/{warehouse_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("warehouse_id" = String, Path, format = Uuid)), responses((status = 200, body = Warehouse)))]
pub async fn show_warehouse(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("warehouse_id", &path.into_inner().1)?;
    common::cached_show(&caller, &req, &state, GetWarehouse { id }, |w| w.version).await
}

/// Create an inventory item.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/items", tag = "inventory", request_body = ItemInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 201, body = Item), (status = 409, description = "item_code_taken")))]
pub async fn create_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<ItemInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        CreateItem { input: body.value },
        |i| format!("/v1/tenants/{slug}/items/{}", i.id),
        |i| i.version,
    )
    .await
}

/// List inventory items.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/items", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PageQuery), responses((status = 200, description = "`{data: [Item], next_cursor?}`")))]
pub async fn list_items(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let page = query.parse()?;
    let op = ListItems { page };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |i| i.id.as_uuid()).await
}

/// One inventory item.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/items/{item_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("item_id" = String, Path, format = Uuid)), responses((status = 200, body = Item)))]
pub async fn show_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("item_id", &path.into_inner().1)?;
    common::cached_show(&caller, &req, &state, GetItem { id }, |i| i.version).await
}

/// Receive a serial into a warehouse (its first event).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/serials", tag = "inventory", request_body = SerialInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")), responses((status = 201, body = Serial), (status = 409, description = "serial_number_taken")))]
pub async fn receive_serial(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<SerialInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        ReceiveSerial { input: body.value },
        |s| format!("/v1/tenants/{slug}/serials/{}", s.id),
        |s| s.version,
    )
    .await
}

/// Filters of the serial list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct SerialQuery {
    /// `on_hand`, `reserved`, `rented`, `sold`, `maintenance`, `transferred_out`, `empty`, `out_for_filling`, `lost`, `junked`.
    pub status: Option<String>,
    /// Of this item.
    pub item_id: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List serials.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/serials", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), SerialQuery), responses((status = 200, description = "`{data: [Serial], next_cursor?}`")))]
pub async fn list_serials(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<SerialQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let status = q
        .status
        .map(|s| {
            serde_json::from_value::<SerialStatus>(serde_json::Value::String(s)).map_err(|_| {
                query_error("status", "invalid_value", "a serial status such as on_hand")
            })
        })
        .transpose()?;
    let item = q
        .item_id
        .map(|i| {
            i.parse()
                .map_err(|_| query_error("item_id", "invalid_uuid", "a UUID"))
        })
        .transpose()?;
    let op = ListSerials {
        page,
        filter: SerialFilter { status, item },
    };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |s| s.id.as_uuid()).await
}

/// One serial with its current state.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/serials/{serial_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("serial_id" = String, Path, format = Uuid)), responses((status = 200, body = Serial)))]
pub async fn show_serial(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("serial_id", &path.into_inner().1)?;
    common::cached_show(&caller, &req, &state, GetSerial { id }, |s| s.version).await
}

/// Record an event (`{"type": "rent", "patient": "…"}`, `{"type": "return", "warehouse": "…"}`…).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/serials/{serial_id}/events", tag = "inventory", request_body = SerialEvent, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("serial_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the serial's current version")),
    responses((status = 200, body = Serial), (status = 409, description = "illegal_transition"), (status = 412, description = "version_mismatch")))]
pub async fn record_event(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<SerialEvent>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("serial_id", &path.into_inner().1)?;
    let if_match = if_match(&req)?;
    let op = RecordSerialEvent {
        id,
        event: body.value,
        if_match,
    };
    common::show(&caller, &state, op, |s| s.version).await
}

/// The serial's events, oldest first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/serials/{serial_id}/history", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("serial_id" = String, Path, format = Uuid)),
    responses((status = 200, description = "`{data: [SerialHistoryEntry]}`")))]
pub async fn serial_history(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("serial_id", &path.into_inner().1)?;
    common::cached(&caller, &req, &state, SerialHistory { id }, |data| {
        common::entry_of(&serde_json::json!({ "data": data }), None)
    })
    .await
}

/// Record a stock movement: a receipt, a counted adjustment, or a transfer (out and in halves
/// written together). Stock never goes below zero: 409 `insufficient_stock`.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/stock/movements", tag = "inventory", request_body = aries_tenants::inventory::MovementInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, description = "`{data: [StockLevel]}`: the levels changed"), (status = 409, description = "insufficient_stock")))]
pub async fn record_movement(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<aries_tenants::inventory::MovementInput>,
) -> Result<HttpResponse, ApiError> {
    let op = RecordMovement { input: body.value };
    let (levels, replayed) = run_keyed(&caller, &req, &state, body.request_sha256, op).await?;
    let mut res = HttpResponse::Created();
    mark_replayed(&mut res, replayed);
    Ok(res.json(serde_json::json!({ "data": levels })))
}

/// Filters of stock queries.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    pub warehouse_id: Option<String>,
    pub item_id: Option<String>,
}

fn uuid_param<T: std::str::FromStr>(field: &str, v: Option<String>) -> Result<Option<T>, ApiError> {
    v.map(|s| {
        s.parse()
            .map_err(|_| query_error(field, "invalid_uuid", "a UUID"))
    })
    .transpose()
}

/// Stock levels (counters per warehouse and item).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/stock", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), StockQuery), responses((status = 200, description = "`{data: [StockLevel]}`")))]
pub async fn stock(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<StockQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let op = StockLevels {
        warehouse: uuid_param("warehouse_id", q.warehouse_id)?,
        item: uuid_param("item_id", q.item_id)?,
    };
    common::cached(&caller, &req, &state, op, |data| {
        common::entry_of(&serde_json::json!({ "data": data }), None)
    })
    .await
}

/// The ledger of one item in one warehouse (both parameters required).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/stock/movements", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), StockQuery), responses((status = 200, description = "`{data: [StockMovement]}`")))]
pub async fn stock_movements(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<StockQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let warehouse = uuid_param("warehouse_id", q.warehouse_id)?
        .ok_or_else(|| query_error("warehouse_id", "required", "required"))?;
    let item = uuid_param("item_id", q.item_id)?
        .ok_or_else(|| query_error("item_id", "required", "required"))?;
    common::cached(
        &caller,
        &req,
        &state,
        StockLedger { warehouse, item },
        |data| common::entry_of(&serde_json::json!({ "data": data }), None),
    )
    .await
}

/// Update a warehouse (JSON merge patch; `If-Match` makes it conditional).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/warehouses/{warehouse_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("warehouse_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Warehouse), (status = 412, description = "version_mismatch")))]
pub async fn update_warehouse(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("warehouse_id", &path.into_inner().1)?;
    let op = |patch, if_match| PatchWarehouse {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |w| w.version).await
}

/// Update an item (JSON merge patch; `serialized` and `oxygen_tank` cannot change).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/items/{item_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("item_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Item), (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed")))]
pub async fn update_item(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("item_id", &path.into_inner().1)?;
    let op = |patch, if_match| PatchItem {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |i| i.version).await
}

/// Change a serial with a JSON merge patch of `next_maintenance_date` (`YYYY-MM-DD`, or `null` to
/// clear it); its status changes only through events. `If-Match` makes it conditional; a change
/// bumps the version (the `ETag`).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/serials/{serial_id}", tag = "inventory", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("serial_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the serial being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json",
        description = "`{\"next_maintenance_date\": \"2027-03-01\"}`"),
    responses((status = 200, body = Serial), (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed")))]
pub async fn update_serial(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = path_id("serial_id", &path.into_inner().1)?;
    let op = |patch, if_match| aries_actors::ops::inventory::PatchSerial {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |s| s.version).await
}

/// Set the reorder points of some stock levels (`{"levels": [{"warehouse_id", "item_id",
/// "reorder_point"}]}`, up to 500; 0 removes one). A level the item never had in the warehouse is
/// created with zero counters. All or nothing; answers the levels whose reorder point changed.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/stock/reorder-points", tag = "inventory",
    request_body = aries_tenants::inventory::ReorderPointsInput, security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, description = "`{data: [StockLevel]}`: the levels changed"), (status = 422, description = "validation_failed")))]
pub async fn set_reorder_points(
    caller: TenantCaller,
    state: web::Data<AppState>,
    body: JsonBody<aries_tenants::inventory::ReorderPointsInput>,
) -> Result<HttpResponse, ApiError> {
    let op = aries_actors::ops::inventory::SetReorderPoints { input: body.value };
    let levels = common::exec(&caller, &state, op).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": levels })))
}
