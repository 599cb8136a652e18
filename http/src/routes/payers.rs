//! Payers: `/v1/tenants/{tenant}/payers`. No delete: deactivate with `PATCH {"active": false}`.

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{
    IDEMPOTENT_REPLAYED, JsonBody, PageQuery, idempotency_key, if_match, path_id, query_error,
};
use crate::routes::prescribers::with_etag;
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::Idempotent;
use aries_actors::ops::payers::{CreatePayer, GetPayer, ListPayers, PatchPayer};
use aries_tenants::ids::PayerId;
use aries_tenants::page::Page;
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
    let op = CreatePayer(body.value);
    let (p, replayed) = match idempotency_key(&req)? {
        Some(key) => {
            let out = state
                .directory
                .exec_as(
                    &caller.slug,
                    caller.call(),
                    Idempotent {
                        key,
                        request_sha256: body.request_sha256,
                        op,
                    },
                )
                .await?;
            (out.value, out.replayed)
        }
        None => (
            state
                .directory
                .exec_as(&caller.slug, caller.call(), op)
                .await?,
            false,
        ),
    };
    let mut res = HttpResponse::Created();
    res.insert_header((
        header::LOCATION,
        format!("/v1/tenants/{}/payers/{}", caller.slug, p.id),
    ));
    if replayed {
        res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(with_etag(res.json(&p), p.version))
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
    state: web::Data<AppState>,
    query: web::Query<PayerQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = match q.active.as_deref() {
        None => None,
        Some("true") => Some(true),
        Some("false") => Some(false),
        Some(_) => return Err(query_error("active", "invalid_value", "true or false")),
    };
    let filter = PayerFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        payer_type: q.payer_type,
        active,
    };
    let rows = state
        .directory
        .exec_as(&caller.slug, caller.call(), ListPayers { page, filter })
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |p| p.id.as_uuid())))
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
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = payer_id(path)?;
    let p = state
        .directory
        .exec_as(&caller.slug, caller.call(), GetPayer(id))
        .await?;
    Ok(with_etag(HttpResponse::Ok().json(&p), p.version))
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
    let if_match = if_match(&req)?;
    if !body.value.is_object() {
        return Err(ApiError::with_errors(
            ErrorCode::ValidationFailed,
            "a merge patch is a JSON object",
            vec![aries_tenants::FieldError::new(
                "",
                "invalid_type",
                "expected a JSON object",
            )],
        ));
    }
    let p = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            PatchPayer {
                id,
                patch: body.value,
                if_match,
            },
        )
        .await?;
    Ok(with_etag(HttpResponse::Ok().json(&p), p.version))
}
