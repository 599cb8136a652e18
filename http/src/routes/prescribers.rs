//! Prescribers: `/v1/tenants/{tenant}/prescribers`. No delete: deactivate with
//! `PATCH {"active": false}` (orders keep referring to them).

use crate::auth::caller::TenantCaller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{
    IDEMPOTENT_REPLAYED, JsonBody, PageQuery, idempotency_key, if_match, path_id, query_error,
};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::Idempotent;
use aries_actors::ops::prescribers::{
    CreatePrescriber, GetPrescriber, ListPrescribers, PatchPrescriber,
};
use aries_tenants::ids::PrescriberId;
use aries_tenants::page::Page;
use aries_tenants::prescribers::{Prescriber, PrescriberFilter, PrescriberInput};
use serde::Deserialize;

/// Adds `ETag: "<version>"`.
pub fn with_etag(mut res: HttpResponse, version: i64) -> HttpResponse {
    if let Ok(v) = header::HeaderValue::from_str(&format!("\"{version}\"")) {
        res.headers_mut().insert(header::ETAG, v);
    }
    res
}

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
    let op = CreatePrescriber(body.value);
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
        format!("/v1/tenants/{}/prescribers/{}", caller.slug, p.id),
    ));
    if replayed {
        res.insert_header((IDEMPOTENT_REPLAYED, "true"));
    }
    Ok(with_etag(res.json(&p), p.version))
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
    state: web::Data<AppState>,
    query: web::Query<PrescriberQuery>,
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
    let filter = PrescriberFilter {
        q: q.q.filter(|s| !s.trim().is_empty()),
        npi: q.npi,
        active,
    };
    let rows = state
        .directory
        .exec_as(
            &caller.slug,
            caller.call(),
            ListPrescribers { page, filter },
        )
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |p| p.id.as_uuid())))
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
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = prescriber_id(path)?;
    let p = state
        .directory
        .exec_as(&caller.slug, caller.call(), GetPrescriber(id))
        .await?;
    Ok(with_etag(HttpResponse::Ok().json(&p), p.version))
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
            PatchPrescriber {
                id,
                patch: body.value,
                if_match,
            },
        )
        .await?;
    Ok(with_etag(HttpResponse::Ok().json(&p), p.version))
}
