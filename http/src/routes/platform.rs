//! The operator API: `/v1/platform/…`.

use crate::error::ApiError;
use crate::extract::{
    IDEMPOTENT_REPLAYED, JsonBody, OperatorAuth, PageQuery, idempotency_key, query_error,
    tenant_slug,
};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::platform::PlatformError;
use aries_shards::CatalogError;
use aries_shards::catalog::{TenantFilter, TenantRecord};
use aries_shards::operators::OperatorRole;
use aries_tenants::page::Page;
use aries_tenants::tenant::StatusAction;
use aries_tenants::{FieldError, Plan, TenantStatus, ValidationErrors};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// A tenant as the operator sees it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TenantView {
    /// Identifier of the tenant (a UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// The tenant's URL name (`/v1/tenants/{slug}/…`); never changes.
    pub slug: String,
    /// The provider company's name.
    pub name: String,
    /// Lifecycle status; the tenant API serves only `active` tenants.
    pub status: TenantStatus,
    /// Commercial plan.
    pub plan: Plan,
    /// Name of the shard holding the tenant's data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Placement epoch (increases when the tenant moves).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement_epoch: Option<i64>,
    /// Increases on every change to the tenant (activation, status changes); also sent as the
    /// `ETag`.
    pub version: i64,
    /// When the tenant was created (UTC).
    pub created_at: DateTime<Utc>,
    /// When the tenant last changed (UTC).
    pub updated_at: DateTime<Utc>,
}

impl From<TenantRecord> for TenantView {
    fn from(t: TenantRecord) -> Self {
        TenantView {
            id: t.id.to_string(),
            slug: t.slug.to_string(),
            name: t.name,
            status: t.status,
            plan: t.plan,
            shard: t.shard_name,
            placement_epoch: t.placement.map(|p| p.epoch),
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
        }
    }
}

/// The operator as the audit trail's actor, with the request's id and address.
/// Who an operator request acts as, for the audit trail (operator, request id, address).
pub(crate) fn operator_actor(
    op: &OperatorAuth,
    req: &HttpRequest,
) -> aries_tenants::audit::AuditActor {
    let meta = crate::auth::caller::request_meta(req);
    aries_tenants::audit::AuditActor {
        actor: op.0.actor(),
        request_id: meta.request_id,
        source_ip: meta.source_ip,
    }
}

fn tenant_response(status: actix_web::http::StatusCode, t: TenantRecord) -> HttpResponse {
    let etag = format!("\"{}\"", t.version);
    HttpResponse::build(status)
        .insert_header(("ETag", etag))
        .json(TenantView::from(t))
}

/// Body of `POST /v1/platform/tenants`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTenant {
    /// `^[a-z][a-z0-9-]{2,62}$`; names the tenant in URLs; cannot change later.
    pub slug: String,
    /// The provider company's name.
    pub name: String,
    /// Commercial plan.
    pub plan: Plan,
}

/// Create a tenant: it is placed on the least-loaded active shard, its shard is migrated, and it
/// becomes `active`. Repeating the call for a tenant whose creation failed half-way finishes it.
#[utoipa::path(post, path = "/v1/platform/tenants", tag = "platform", request_body = CreateTenant,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the same tenant")),
    responses((status = 201, body = TenantView), (status = 409, description = "tenant_slug_taken"),
              (status = 422, description = "validation_failed"), (status = 503, description = "shard_unavailable / no_shard_available")))]
pub async fn create_tenant(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<CreateTenant>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let key = idempotency_key(&req)?;
    let request_sha256 = body.request_sha256;
    let body = body.value;
    let mut errs = ValidationErrors::default();
    let slug = aries_tenants::TenantSlug::parse(body.slug.trim())
        .map_err(|e| {
            errs.0
                .push(FieldError::new("slug", "invalid_slug", e.to_string()))
        })
        .ok();
    let name = errs.text("name", &body.name, 200);
    let slug = match (slug, errs.is_empty()) {
        (Some(slug), true) => slug,
        _ => return Err(ApiError::validation(errs)),
    };
    // The key is taken before the creation, which spans the catalog and a shard; creation itself is
    // resumable, so a retry with the key finishes or replays the same creation.
    let catalog = state.directory.catalog();
    let replay = match &key {
        Some(k) => {
            catalog
                .claim_idempotency_key(k.as_str(), &request_sha256)
                .await?
        }
        None => false,
    };
    let tenant = match state
        .platform
        .create_tenant(&slug, &name, body.plan, &operator_actor(&op, &req))
        .await
    {
        Ok(t) => t,
        Err(PlatformError::Catalog(CatalogError::SlugTaken(_))) if replay => {
            state.platform.tenant(&slug).await?
        }
        Err(e) => {
            if let (Some(k), false) = (&key, replay)
                && let Err(release) = catalog.release_idempotency_key(k.as_str()).await
            {
                tracing::warn!(error = %release, "could not release an idempotency key");
            }
            return Err(e.into());
        }
    };
    let mut res = tenant_response(actix_web::http::StatusCode::CREATED, tenant);
    if replay {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(IDEMPOTENT_REPLAYED),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    if let Ok(v) =
        actix_web::http::header::HeaderValue::from_str(&format!("/v1/platform/tenants/{slug}"))
    {
        res.headers_mut()
            .insert(actix_web::http::header::LOCATION, v);
    }
    Ok(res)
}

/// Filters of `GET /v1/platform/tenants`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantListQuery {
    /// `provisioning`, `active`, `suspended` or `archived`.
    pub status: Option<String>,
    /// Shard name.
    pub shard: Option<String>,
    /// Substring of slug or name.
    pub q: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page; absent for the first page.
    pub cursor: Option<String>,
}

/// List tenants (cursor-paginated, by creation order).
#[utoipa::path(get, path = "/v1/platform/tenants", tag = "platform", params(TenantListQuery),
    security(("bearer" = [])),
    responses((status = 200, description = "`{data: [TenantView], next_cursor?}`"), (status = 422, description = "invalid_query")))]
pub async fn list_tenants(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<TenantListQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let q = query.into_inner();
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let status = q
        .status
        .map(|s| {
            s.parse::<TenantStatus>()
                .map_err(|e| query_error("status", "invalid_value", &e))
        })
        .transpose()?;
    let filter = TenantFilter {
        status,
        shard: q.shard,
        q: q.q.filter(|s| !s.trim().is_empty()),
    };
    let rows = state.platform.tenants(&filter, page).await?;
    let page = Page::from_rows(rows, page.limit, |t| t.id.as_uuid());
    Ok(HttpResponse::Ok().json(Page {
        data: page
            .data
            .into_iter()
            .map(TenantView::from)
            .collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    }))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/platform/tenants/{tenant}", tag = "platform", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = TenantView), (status = 404, description = "not_found")))]
pub async fn show_tenant(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let slug = tenant_slug(&path)?;
    Ok(tenant_response(
        actix_web::http::StatusCode::OK,
        state.platform.tenant(&slug).await?,
    ))
}

async fn change_status(
    op: &OperatorAuth,
    state: &AppState,
    req: &HttpRequest,
    raw: &str,
    action: StatusAction,
) -> Result<HttpResponse, ApiError> {
    let slug = tenant_slug(raw)?;
    let tenant = state
        .platform
        .change_status(&slug, action, &operator_actor(op, req))
        .await?;
    Ok(tenant_response(actix_web::http::StatusCode::OK, tenant))
}

/// Suspend a tenant: its API answers 403 `tenant_suspended` until resumed. Idempotent.
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant}/suspend", tag = "platform", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = TenantView), (status = 409, description = "invalid_status_transition")))]
pub async fn suspend_tenant(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    change_status(&op, &state, &req, &path, StatusAction::Suspend).await
}

/// Resume a suspended tenant. Idempotent.
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant}/resume", tag = "platform", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = TenantView), (status = 409, description = "invalid_status_transition")))]
pub async fn resume_tenant(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    change_status(&op, &state, &req, &path, StatusAction::Resume).await
}

/// Archive a tenant for good (data kept; API closed with 403 `tenant_archived`).
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant}/archive", tag = "platform", security(("bearer" = [])),
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 200, body = TenantView)))]
pub async fn archive_tenant(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    change_status(&op, &state, &req, &path, StatusAction::Archive).await
}

/// A shard with its health as this instance sees it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShardView {
    /// Identifier of the shard (a UUID).
    #[schema(format = Uuid)]
    pub id: String,
    /// Unique name (`shard-0`); a tenant's `shard` field and the tenant list's `shard` filter use it.
    pub name: String,
    /// Host, port and database (no credentials).
    pub dsn: String,
    /// `registered`, `active`, `draining` or `read_only`.
    pub status: String,
    /// Relative capacity: new tenants are placed in proportion to it.
    pub weight: u32,
    /// Tenants placed on the shard now.
    pub tenant_count: u64,
    /// `up`, `down` or `unknown` (no actor on this instance yet; always so for `registered`).
    pub health: &'static str,
    /// `closed`, `half_open` or `open`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub breaker: Option<&'static str>,
    /// The last health probe's error on this instance; absent when it succeeded or when `health`
    /// is `unknown`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The highest shard migration applied, as last recorded; absent until the shard is migrated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<i64>,
    /// Whether that is this version's latest (activation requires it).
    pub schema_current: bool,
    /// When the migration was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrated_at: Option<DateTime<Utc>>,
    /// When the shard was registered.
    pub created_at: DateTime<Utc>,
    /// When its status, weight or schema version last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<aries_actors::platform::ShardOverview> for ShardView {
    fn from(s: aries_actors::platform::ShardOverview) -> Self {
        ShardView {
            id: s.record.id.to_string(),
            name: s.record.name,
            dsn: s.record.dsn,
            status: s.record.status.as_str().to_owned(),
            weight: s.record.weight,
            tenant_count: s.record.tenant_count,
            health: match &s.health {
                Some(h) if h.is_up() => "up",
                Some(_) => "down",
                None => "unknown",
            },
            breaker: s.health.as_ref().map(|h| h.breaker.as_str()),
            error: s.health.and_then(|h| h.last_error),
            schema_version: s.record.schema_version,
            schema_current: s
                .record
                .schema_version
                .is_some_and(|v| v >= aries_shards::migrate::latest_shard_version()),
            migrated_at: s.record.migrated_at,
            created_at: s.record.created_at,
            updated_at: s.record.updated_at,
        }
    }
}

/// List shards with their health and tenant counts.
#[utoipa::path(get, path = "/v1/platform/shards", tag = "platform", security(("bearer" = [])),
    responses((status = 200, description = "`{data: [ShardView]}`")))]
pub async fn list_shards(
    op: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let shards = state.platform.shard_overview().await?;
    let data: Vec<ShardView> = shards.into_iter().map(ShardView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": data })))
}

/// Give a tenant its first credential: an API key with the roles asked for (typically `owner`),
/// created by the operator. The secret is in this response only.
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant}/api-keys", tag = "platform", security(("bearer" = [])),
    request_body = crate::routes::security::NewApiKey,
    params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 201, body = crate::routes::security::CreatedApiKey), (status = 404, description = "not_found")))]
pub async fn bootstrap_api_key(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<crate::routes::security::NewApiKey>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let slug = tenant_slug(&path)?;
    let op = aries_actors::ops::security::CreateApiKey {
        slug: slug.to_string(),
        name: body.value.name,
        roles: body.value.roles,
    };
    let call = aries_actors::auth::Call {
        credential: Some(aries_actors::auth::Credential::Operator),
        meta: crate::auth::caller::request_meta(&req),
    };
    let (key, secret) = state.directory.exec_as(&slug, call, op).await?;
    let created = crate::routes::security::CreatedApiKey { key, secret };
    Ok(HttpResponse::Created().json(created))
}

/// Rotate the access-token signing key. Tokens signed with the previous key stay valid until they
/// expire; the previous key stays in the JWKS until then.
#[utoipa::path(post, path = "/v1/platform/signing-keys/rotate", tag = "platform", security(("bearer" = [])),
    responses((status = 200, description = "`{kid}` of the new signing key")))]
pub async fn rotate_signing_key(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    let kid = state
        .keys
        .rotate(&operator_actor(&op, &req))
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "kid": kid })))
}

/// The operator's audit trail (tenant creation and status changes, shards, key rotations).
#[utoipa::path(get, path = "/v1/platform/audit", tag = "platform", security(("bearer" = [])),
    params(crate::routes::security::AuditQuery),
    responses((status = 200, description = "`{data: [AuditEvent], next_cursor?}`")))]
pub async fn list_audit(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<crate::routes::security::AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let (mut filter, limit) = query.parse()?;
    if let Some(slug) = &query.tenant {
        filter.tenant = Some(state.platform.tenant(&tenant_slug(slug)?).await?.id);
    }
    let rows = state.directory.catalog().audit(&filter, limit).await?;
    Ok(HttpResponse::Ok().json(crate::routes::security::audit_page(rows, limit)))
}

/// Recomputes the operator trail's hash chain.
#[utoipa::path(get, path = "/v1/platform/audit/verify", tag = "platform", security(("bearer" = [])),
    responses((status = 200, body = aries_tenants::audit::Verification)))]
pub async fn verify_audit(
    op: OperatorAuth,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    Ok(HttpResponse::Ok().json(state.directory.catalog().verify_audit().await?))
}
