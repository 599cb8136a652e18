//! Locations (branches): `/v1/tenants/{tenant}/locations`. Every call goes HTTP → Directory →
//! TenantActor → a tenant transaction on the tenant's shard; every change writes an outbox event
//! in that transaction.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, if_match, path_id};
use crate::routes::common::{self, bool_param};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::{
    CreateLocation, DeleteLocation, GetLocation, ListLocations, PatchLocation,
};
use aries_tenants::LocationId;
use aries_tenants::locations::store::ListFilter;
use aries_tenants::locations::{Location, LocationInput};
use serde::Deserialize;

/// The `{location_id}` of `/v1/tenants/{tenant}/locations/{location_id}` (the tenant is the caller's).
fn location_id(path: web::Path<(String, String)>) -> Result<LocationId, ApiError> {
    path_id("location_id", &path.into_inner().1)
}

/// Create a location.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/locations", tag = "locations", request_body = LocationInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Location), (status = 409, description = "location_code_taken"),
              (status = 422, description = "validation_failed / malformed_json"), (status = 403, description = "tenant_suspended"),
              (status = 503, description = "shard_unavailable")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<LocationInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreateLocation { input: body.value };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |l| format!("/v1/tenants/{slug}/locations/{}", l.id),
        |l| l.version,
    )
    .await
}

/// Filters of the location list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LocationListQuery {
    /// Substring of name or code, case-insensitive.
    pub q: Option<String>,
    /// `true` or `false`.
    pub active: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// List locations (cursor-paginated, by creation order).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/locations", tag = "locations", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), LocationListQuery),
    responses((status = 200, description = "`{data: [Location], next_cursor?}`"), (status = 422, description = "invalid_query")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<LocationListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let filter = ListFilter {
        only: None,
        q: q.q.filter(|s| !s.trim().is_empty()),
        active,
    };
    let op = ListLocations { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |l| l.id.as_uuid()).await
}

/// One location.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/locations/{location_id}", tag = "locations", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("location_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Location), (status = 404, description = "not_found"), (status = 422, description = "invalid_id")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = location_id(path)?;
    common::cached_show(&caller, &req, &state, GetLocation { id }, |l| l.version).await
}

/// Update a location with a JSON merge patch (RFC 7396) of its writable fields. `If-Match` with
/// the ETag makes the update conditional (412 `version_mismatch` when stale).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/locations/{location_id}", tag = "locations", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("location_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Location), (status = 412, description = "version_mismatch"), (status = 422, description = "validation_failed")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = location_id(path)?;
    let op = |patch, if_match| PatchLocation {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |l| l.version).await
}

/// Delete a location. `If-Match` makes it conditional.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/locations/{location_id}", tag = "locations", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("location_id" = String, Path, format = Uuid),
        ("If-Match" = Option<String>, Header, description = "ETag of the version being deleted")),
    responses((status = 204), (status = 404, description = "not_found"), (status = 412, description = "version_mismatch")))]
pub async fn delete(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = location_id(path)?;
    let if_match = if_match(&req)?;
    common::exec(&caller, &state, DeleteLocation { id, if_match }).await?;
    Ok(HttpResponse::NoContent().finish())
}
