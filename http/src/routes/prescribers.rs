//! Prescribers: `/v1/tenants/{tenant}/prescribers`. No delete: deactivate with
//! `PATCH {"active": false}` (orders keep referring to them).

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, path_id};
use crate::routes::common::{self, bool_param};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::prescribers::{
    CreatePrescriber, GetPrescriber, ListPrescribers, PatchPrescriber,
};
use aries_tenants::ids::PrescriberId;
use aries_tenants::prescribers::{Prescriber, PrescriberFilter, PrescriberInput};
use serde::Deserialize;

/// Create a prescriber.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/prescribers", tag = "prescribers", request_body = PrescriberInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Prescriber), (status = 409, description = "prescriber_npi_taken"), (status = 422, description = "validation_failed")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<PrescriberInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreatePrescriber { input: body.value };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |v| format!("/v1/tenants/{slug}/prescribers/{}", v.id),
        |v| v.version,
    )
    .await
}

/// Filters of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PrescriberQuery {
    /// Substring of first or last name.
    pub q: Option<String>,
    /// Exact NPI.
    pub npi: Option<String>,
    /// `true` or `false`.
    pub active: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List prescribers.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/prescribers", tag = "prescribers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PrescriberQuery),
    responses((status = 200, description = "`{data: [Prescriber], next_cursor?}`")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PrescriberQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let filter = PrescriberFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        npi: q.npi,
        active,
    };
    let op = ListPrescribers { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |p| p.id.as_uuid()).await
}

fn prescriber_id(path: web::Path<(String, String)>) -> Result<PrescriberId, ApiError> {
    path_id("prescriber_id", &path.into_inner().1)
}

/// One prescriber.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/prescribers/{prescriber_id}", tag = "prescribers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("prescriber_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Prescriber), (status = 404, description = "not_found")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = prescriber_id(path)?;
    common::cached_show(&caller, &req, &state, GetPrescriber { id }, |p| p.version).await
}

/// Update with a JSON merge patch; `If-Match` makes it conditional (412 when stale).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/prescribers/{prescriber_id}", tag = "prescribers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("prescriber_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Prescriber), (status = 412, description = "version_mismatch")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = prescriber_id(path)?;
    let op = |patch, if_match| PatchPrescriber {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |p| p.version).await
}
