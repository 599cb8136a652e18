//! Shard lifecycle for operators: `/v1/platform/shards/…` (register, show, migrate, activate,
//! read-only, drain), `/v1/platform/rebalance` (the dry-run plan and its execution) and
//! `/v1/platform/shard-jobs/…` (drain and rebalance progress, from the catalog, so any instance
//! answers). The shard list itself is in `platform.rs`.

use crate::error::{ApiError, ErrorCode};
use crate::extract::{
    ActionBody, IDEMPOTENT_REPLAYED, JsonBody, OperatorAuth, PageQuery, idempotency_key, path_id,
    query_error,
};
use crate::routes::platform::ShardView;
use crate::routes::platform::operator_actor;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::platform::PlatformError;
use aries_shards::CatalogError;
use aries_shards::operators::OperatorRole;
use aries_shards::rebalance::PlanSettings;
use aries_shards::shard_jobs::ShardJob;
use aries_tenants::page::Page;
use aries_tenants::{FieldError, ValidationErrors};
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// How long measuring one shard's tenant loads may take.
const MEASURE_DEADLINE: Duration = Duration::from_secs(30);
/// The largest rebalance threshold accepted (percent over the fair share).
const MAX_THRESHOLD_PCT: u32 = 1_000;

async fn shard_response(
    state: &AppState,
    status: actix_web::http::StatusCode,
    name: &str,
) -> Result<HttpResponse, ApiError> {
    let view = ShardView::from(state.platform.shard(name).await?);
    Ok(HttpResponse::build(status).json(view))
}

fn job_accepted(job: ShardJob) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/platform/shard-jobs/{}", job.id)))
        .json(job)
}

/// Body of `POST /v1/platform/shards`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterShard {
    /// `^[a-z][a-z0-9-]{1,62}$`, unique (`shard-2`).
    pub name: String,
    /// `postgres://host:port/database`, without credentials (the roles come from each
    /// instance's configuration).
    pub dsn: String,
    /// Relative capacity, 1 to 10000 (100 when absent).
    pub weight: Option<u32>,
}

fn valid_shard_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && (2..=63).contains(&name.len())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Register a shard (its own Postgres server): recorded as `registered`, taking no tenants.
/// Nothing is done on its server yet, which need not be up; migrate it, then activate it.
#[utoipa::path(post, path = "/v1/platform/shards", tag = "platform", request_body = RegisterShard,
    security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, description = "a retry with the same key and body within 24 h returns the same shard")),
    responses((status = 201, body = ShardView), (status = 409, description = "shard_name_taken"),
              (status = 422, description = "validation_failed")))]
pub async fn register(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: JsonBody<RegisterShard>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    let key = idempotency_key(&req)?;
    let request_sha256 = body.request_sha256;
    let body = body.value;
    let name = body.name.trim();
    if !valid_shard_name(name) {
        let mut errs = ValidationErrors::default();
        errs.push(
            "name",
            "invalid_format",
            "a lowercase letter, then 1 to 62 lowercase letters, digits or hyphens",
        );
        return Err(ApiError::validation(errs));
    }
    let catalog = state.directory.catalog();
    let replay = match &key {
        Some(k) => {
            catalog
                .claim_idempotency_key(k.as_str(), &request_sha256)
                .await?
        }
        None => false,
    };
    let registered = state
        .platform
        .register_shard(
            name,
            body.dsn.trim(),
            body.weight.unwrap_or(100),
            &operator_actor(&op, &req),
        )
        .await;
    match registered {
        Ok(_) => {}
        // The same key and body came back: the first call registered it.
        Err(PlatformError::Catalog(CatalogError::ShardNameTaken(_))) if replay => {}
        Err(e) => {
            if let (Some(k), false) = (&key, replay)
                && let Err(release) = catalog.release_idempotency_key(k.as_str()).await
            {
                tracing::warn!(error = %release, "could not release an idempotency key");
            }
            return Err(e.into());
        }
    }
    let mut res = shard_response(&state, actix_web::http::StatusCode::CREATED, name).await?;
    if replay {
        res.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static(IDEMPOTENT_REPLAYED),
            actix_web::http::header::HeaderValue::from_static("true"),
        );
    }
    if let Ok(v) =
        actix_web::http::header::HeaderValue::from_str(&format!("/v1/platform/shards/{name}"))
    {
        res.headers_mut()
            .insert(actix_web::http::header::LOCATION, v);
    }
    Ok(res)
}

/// One shard, by name, with its health as this instance sees it.
#[utoipa::path(get, path = "/v1/platform/shards/{shard}", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    responses((status = 200, body = ShardView), (status = 404, description = "not_found")))]
pub async fn show(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    shard_response(&state, actix_web::http::StatusCode::OK, &path).await
}

/// Body of `PATCH /v1/platform/shards/{shard}`: a JSON merge patch of the writable fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShardPatch {
    /// Relative capacity, 1 to 10000: placement and the rebalance plan follow it from now on.
    pub weight: Option<u32>,
}

/// Change a shard's weight. Shards carry no version, so `If-Match` is not used.
#[utoipa::path(patch, path = "/v1/platform/shards/{shard}", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    request_body(content = ShardPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ShardView), (status = 404, description = "not_found"),
              (status = 422, description = "validation_failed")))]
pub async fn update(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<ShardPatch>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    if let Some(weight) = body.value.weight {
        state
            .platform
            .set_shard_weight(&path, weight, &operator_actor(&op, &req))
            .await?;
    }
    shard_response(&state, actix_web::http::StatusCode::OK, &path).await
}

/// Run the shard migrations on the shard's database (as the owner role) and record its schema
/// version. Idempotent; 503 `shard_unavailable` (with `Retry-After`) when its server cannot be
/// reached.
#[utoipa::path(post, path = "/v1/platform/shards/{shard}/migrate", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    responses((status = 200, body = ShardView), (status = 404, description = "not_found"),
              (status = 503, description = "shard_unavailable")))]
pub async fn migrate(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    state
        .platform
        .migrate_shard(&path, &operator_actor(&op, &req))
        .await?;
    shard_response(&state, actix_web::http::StatusCode::OK, &path).await
}

/// Activate a shard: it takes new tenants and writes. Only a shard migrated to the current schema
/// (409 `shard_not_migrated`); from `read_only` its writes open again, from `draining` it takes
/// tenants again (its drain job stops before its next move). Idempotent.
#[utoipa::path(post, path = "/v1/platform/shards/{shard}/activate", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    responses((status = 200, body = ShardView), (status = 404, description = "not_found"),
              (status = 409, description = "shard_not_migrated"), (status = 503, description = "shard_unavailable")))]
pub async fn activate(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    state
        .platform
        .activate_shard(&path, &operator_actor(&op, &req))
        .await?;
    shard_response(&state, actix_web::http::StatusCode::OK, &path).await
}

/// Mark a shard read-only: its tenants' reads work, their writes get 503 `shard_read_only`, and
/// it takes no new tenants. Idempotent; undo with `activate`.
#[utoipa::path(post, path = "/v1/platform/shards/{shard}/read-only", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    responses((status = 200, body = ShardView), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_shard_transition"), (status = 503, description = "shard_unavailable")))]
pub async fn read_only(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    state
        .platform
        .mark_shard_read_only(&path, &operator_actor(&op, &req))
        .await?;
    shard_response(&state, actix_web::http::StatusCode::OK, &path).await
}

/// Drain a shard: it takes no new tenants (`draining`) and a job moves every tenant away, one at
/// a time, each to the shard placement would choose. Answers 202 with the job (follow it at the
/// `Location`); draining a shard that is draining returns its running job. 409
/// `invalid_shard_transition` for the last active shard, a registered or a read-only one.
#[utoipa::path(post, path = "/v1/platform/shards/{shard}/drain", tag = "platform", security(("bearer" = [])),
    params(("shard" = String, Path, description = "shard name")),
    responses((status = 202, body = ShardJob), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_shard_transition / shard_job_in_progress")))]
pub async fn drain(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let job = state
        .shard_jobs
        .drain(&path, &operator_actor(&op, &req))
        .await?;
    Ok(job_accepted(job))
}

/// Query of the rebalance plan.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RebalanceQuery {
    /// How far (percent) the most loaded active shard may exceed its fair share before tenants
    /// are moved off it; 10 when absent.
    pub threshold_pct: Option<String>,
}

/// Body of `POST /v1/platform/rebalance` (may be empty).
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebalanceInput {
    /// As the plan's `threshold_pct`; 10 when absent.
    pub threshold_pct: Option<u32>,
}

fn settings(threshold_pct: Option<u32>, field: &str) -> Result<PlanSettings, ApiError> {
    match threshold_pct {
        None => Ok(PlanSettings::default()),
        Some(pct) if pct <= MAX_THRESHOLD_PCT => Ok(PlanSettings { threshold_pct: pct }),
        Some(_) => Err(ApiError::with_errors(
            ErrorCode::ValidationFailed,
            format!("{field}: 0 to {MAX_THRESHOLD_PCT}"),
            vec![FieldError::new(
                field,
                "out_of_range",
                format!("0 to {MAX_THRESHOLD_PCT}"),
            )],
        )),
    }
}

/// The rebalance dry run: every tenant's load (rows on its shard) measured now, and the moves
/// that would bring each active shard's load close to its fair share by weight (draining shards
/// shed everything; read-only and registered shards neither give nor take). A shard that cannot
/// be measured takes no part and makes the answer `partial`.
#[utoipa::path(get, path = "/v1/platform/rebalance", tag = "platform", security(("bearer" = [])),
    params(RebalanceQuery),
    responses((status = 200, body = aries_actors::shard_load::RebalancePlan), (status = 422, description = "invalid_query")))]
pub async fn plan(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<RebalanceQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let pct = query
        .into_inner()
        .threshold_pct
        .map(|v| {
            v.parse::<u32>()
                .ok()
                .filter(|p| *p <= MAX_THRESHOLD_PCT)
                .ok_or_else(|| {
                    query_error(
                        "threshold_pct",
                        "out_of_range",
                        &format!("an integer from 0 to {MAX_THRESHOLD_PCT}"),
                    )
                })
        })
        .transpose()?;
    let plan = state
        .shard_jobs
        .plan(settings(pct, "threshold_pct")?, MEASURE_DEADLINE)
        .await?;
    Ok(HttpResponse::Ok().json(plan))
}

/// Rebalance: plans as the dry run does, then a job runs the moves one at a time (202 with the
/// job; follow it at the `Location`). A step whose tenant moved meanwhile, or whose target no
/// longer takes tenants, is skipped.
#[utoipa::path(post, path = "/v1/platform/rebalance", tag = "platform", security(("bearer" = [])),
    request_body = RebalanceInput,
    responses((status = 202, body = ShardJob), (status = 409, description = "shard_job_in_progress"),
              (status = 422, description = "validation_failed")))]
pub async fn start(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    body: ActionBody<RebalanceInput>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let settings = settings(body.0.value.threshold_pct, "threshold_pct")?;
    let (_, job) = state
        .shard_jobs
        .rebalance(settings, MEASURE_DEADLINE, &operator_actor(&op, &req))
        .await?;
    Ok(job_accepted(job))
}

/// Drain and rebalance jobs, newest first.
#[utoipa::path(get, path = "/v1/platform/shard-jobs", tag = "platform", security(("bearer" = [])),
    params(PageQuery), responses((status = 200, description = "`{data: [ShardJob], next_cursor?}`")))]
pub async fn list_jobs(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let page = query.parse()?;
    let rows = state
        .shard_jobs
        .records()
        .list(page.after, page.limit)
        .await?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |j: &ShardJob| j.id)))
}

/// One drain or rebalance job with its moves.
#[utoipa::path(get, path = "/v1/platform/shard-jobs/{job_id}", tag = "platform", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)), responses((status = 200, body = ShardJob), (status = 404)))]
pub async fn show_job(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let id: Uuid = path_id("job_id", &path)?;
    Ok(HttpResponse::Ok().json(state.shard_jobs.get(id).await?))
}

/// Ask a running job to stop before its next move (the move in flight finishes). A finished job
/// is returned as it is.
#[utoipa::path(post, path = "/v1/platform/shard-jobs/{job_id}/cancel", tag = "platform", security(("bearer" = [])),
    params(("job_id" = Uuid, Path)), responses((status = 200, body = ShardJob), (status = 404)))]
pub async fn cancel_job(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let id: Uuid = path_id("job_id", &path)?;
    Ok(HttpResponse::Ok().json(state.shard_jobs.cancel(id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names() {
        assert!(valid_shard_name("shard-2"));
        assert!(valid_shard_name("s2"));
        assert!(!valid_shard_name("s"));
        assert!(!valid_shard_name("2shard"));
        assert!(!valid_shard_name("Shard"));
        assert!(!valid_shard_name("shard_2"));
        assert!(!valid_shard_name(&"s".repeat(64)));
    }
}
