//! Webhooks: `/v1/tenants/{tenant}/webhooks`. Endpoints (the secret is in the create's and the
//! rotation's answers only) and each endpoint's delivery log. docs/WEBHOOKS.md has the delivery
//! contract (headers, signature, retries).

use crate::auth::caller::TenantCaller;
use crate::error::ApiError;
use crate::extract::{JsonBody, PageQuery, if_match, path_id, query_error};
use crate::routes::common::{self, bool_param};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::ops::webhooks::{
    CreateWebhook, DeleteWebhook, GetWebhook, GetWebhookDelivery, ListWebhookDeliveries,
    ListWebhooks, PatchWebhook, RotateWebhookSecret,
};
use aries_tenants::ids::{EventId, WebhookEndpointId};
use aries_tenants::webhooks::{
    DeliveryDetail, DeliveryStatus, WebhookEndpoint, WebhookInput, WebhookWithSecret,
};
use serde::Deserialize;

/// Register an endpoint. The answer carries its signing secret (`whsec_…`), shown this once.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks", request_body = WebhookInput,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"),
        ("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the first response")),
    responses((status = 201, body = WebhookWithSecret), (status = 422, description = "validation_failed")))]
pub async fn create(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<WebhookInput>,
) -> Result<HttpResponse, ApiError> {
    let slug = caller.slug.clone();
    let op = CreateWebhook {
        input: body.value,
        allow_private_networks: state.webhooks.allow_private_networks,
    };
    common::create(
        &caller,
        &req,
        &state,
        body.request_sha256,
        op,
        |v| format!("/v1/tenants/{slug}/webhooks/{}", v.endpoint.id),
        |v| v.endpoint.version,
    )
    .await
}

/// Filters of the endpoint list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct WebhookQuery {
    /// `true` or `false`.
    pub active: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// List endpoints (never their secrets).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), WebhookQuery),
    responses((status = 200, description = "`{data: [WebhookEndpoint], next_cursor?}`")))]
pub async fn list(
    caller: TenantCaller,
    state: web::Data<AppState>,
    query: web::Query<WebhookQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let active = bool_param("active", q.active.as_deref())?;
    let op = ListWebhooks { page, active };
    common::list_page(&caller, &state, op, page.limit, |e| e.id.as_uuid()).await
}

fn endpoint_id(raw: &str) -> Result<WebhookEndpointId, ApiError> {
    path_id("endpoint_id", raw)
}

/// One endpoint (never its secret).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid)),
    responses((status = 200, body = WebhookEndpoint), (status = 404, description = "not_found")))]
pub async fn show(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path.1)?;
    common::show(&caller, &state, GetWebhook { id }, |e| e.version).await
}

/// Update with a JSON merge patch of `url`, `description`, `event_types`, `active`; `If-Match`
/// makes it conditional (412 when stale).
#[utoipa::path(patch, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    request_body(content = Object, content_type = "application/merge-patch+json"),
    responses((status = 200, body = WebhookEndpoint), (status = 412, description = "version_mismatch"),
        (status = 422, description = "validation_failed")))]
pub async fn update(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: JsonBody<serde_json::Value>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path.1)?;
    let allow_private_networks = state.webhooks.allow_private_networks;
    let op = |patch, if_match| PatchWebhook {
        id,
        patch,
        if_match,
        allow_private_networks,
    };
    common::update(&caller, &req, &state, body.value, op, |e| e.version).await
}

/// Delete an endpoint and its delivery log. `If-Match` makes it conditional.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being deleted")),
    responses((status = 204), (status = 404, description = "not_found"), (status = 412, description = "version_mismatch")))]
pub async fn delete(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path.1)?;
    let if_match = if_match(&req)?;
    common::exec(&caller, &state, DeleteWebhook { id, if_match }).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Replace the signing secret; the answer carries the new one, shown this once. Deliveries are
/// signed with it from now on. `If-Match` makes it conditional.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}/rotate-secret", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid),
           ("If-Match" = Option<String>, Header, description = "ETag of the version being changed")),
    responses((status = 200, body = WebhookWithSecret), (status = 404, description = "not_found"),
        (status = 412, description = "version_mismatch")))]
pub async fn rotate_secret(
    caller: TenantCaller,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let id = endpoint_id(&path.1)?;
    let if_match = if_match(&req)?;
    let op = RotateWebhookSecret { id, if_match };
    common::show(&caller, &state, op, |v| v.endpoint.version).await
}

/// Filters of the delivery log.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `failed`.
    pub status: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// An endpoint's deliveries, oldest event first.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid), DeliveryQuery),
    responses((status = 200, description = "`{data: [WebhookDelivery], next_cursor?}`"), (status = 404, description = "not_found")))]
pub async fn list_deliveries(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    query: web::Query<DeliveryQuery>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint_id(&path.1)?;
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(DeliveryStatus::parse(s).ok_or_else(|| {
            query_error("status", "invalid_value", "pending, delivered or failed")
        })?),
    };
    let op = ListWebhookDeliveries {
        endpoint,
        page,
        status,
    };
    common::list_page(&caller, &state, op, page.limit, |d| d.event_id).await
}

/// One delivery with every attempt (status code, error, duration, start of the answer).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/webhooks/{endpoint_id}/deliveries/{event_id}", tag = "webhooks", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug"), ("endpoint_id" = String, Path, format = Uuid),
           ("event_id" = String, Path, format = Uuid)),
    responses((status = 200, body = DeliveryDetail), (status = 404, description = "not_found")))]
pub async fn show_delivery(
    caller: TenantCaller,
    state: web::Data<AppState>,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let endpoint = endpoint_id(&path.1)?;
    let event: EventId = path_id("event_id", &path.2)?;
    let op = GetWebhookDelivery {
        endpoint,
        event: event.as_uuid(),
    };
    let detail = common::exec(&caller, &state, op).await?;
    Ok(HttpResponse::Ok().json(detail))
}
