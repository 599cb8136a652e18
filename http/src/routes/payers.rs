//! Payers: `/v1/tenants/{tenant}/payers`. No delete: deactivate with `PATCH {"active": false}`.

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, path_id};
use crate::routes::common::{self, bool_param};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::payers::{CreatePayer, GetPayer, ListPayers, PatchPayer};
use aries_tenants::ids::PayerId;
use aries_tenants::payers::{Payer, PayerFilter, PayerInput};
use serde::Deserialize;

/// Create a payer.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/payers", tag = "payers", request_body = PayerInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = Payer), (status = 409, description = "payer_name_taken"), (status = 422, description = "validation_failed")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<PayerInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreatePayer { input: body.value };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |v| format!("/v1/tenants/{slug}/payers/{}", v.id),
        |v| v.version,
    )
    .await
}

/// Filters of the list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PayerQuery {
    /// Substring of the name.
    pub q: Option<String>,
    /// Exact payer type.
    pub payer_type: Option<String>,
    /// `true` or `false`.
    pub active: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List payers.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/payers", tag = "payers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), PayerQuery),
    responses((status = 200, description = "`{data: [Payer], next_cursor?}`")))]
pub async fn list(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    query: web::Query<PayerQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let filter = PayerFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        payer_type: q.payer_type,
        active,
    };
    let op = ListPayers { page, filter };
    common::cached_list_page(&caller, &req, &state, op, page.limit, |p| p.id.as_uuid()).await
}

fn payer_id(path: web::Path<(String, String)>) -> Result<PayerId, ApiError> {
    path_id("payer_id", &path.into_inner().1)
}

/// One payer.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/payers/{payer_id}", tag = "payers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("payer_id" = String, Path, format = Uuid)),
    responses((status = 200, body = Payer), (status = 404, description = "not_found")))]
pub async fn show(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = payer_id(path)?;
    common::cached_show(&caller, &req, &state, GetPayer { id }, |p| p.version).await
}

/// Update with a JSON merge patch; `If-Match` makes it conditional (412 when stale).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/payers/{payer_id}", tag = "payers", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("payer_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = Payer), (status = 412, description = "version_mismatch")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = payer_id(path)?;
    let op = |patch, if_match| PatchPayer {
        id,
        patch,
        if_match,
    };
    common::update(&caller, &req, &state, body.value, op, |p| p.version).await
}
