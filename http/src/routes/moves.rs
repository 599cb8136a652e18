//! Tenant moves for operators: `/v1/platform/tenants/{tenant}/moves` (start, list) and
//! `/v1/platform/moves/…` (all moves, one, resume, cancel). A move runs in the background; its
//! state and progress are in the move resource and on the operators' live socket.

use crate::error::{ApiError, ErrorCode};
use crate::extract::{JsonBody, OperatorAuth, PageQuery, path_id, query_error, tenant_slug};
use crate::routes::platform::operator_actor;
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::moves::MovesError;
use aries_shards::moves::verify::TableCheck;
use aries_shards::moves::{MoveRecord, MoveState};
use aries_shards::operators::OperatorRole;
use aries_tenants::page::Page;
use aries_tenants::{FieldError, ValidationErrors};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use uuid::Uuid;

/// A tenant move as operators see it.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MoveView {
    /// Identifier of the move.
    pub id: Uuid,
    /// The tenant's slug.
    pub tenant: String,
    /// The shard it leaves.
    pub from_shard: String,
    /// The shard it goes to.
    pub to_shard: String,
    /// `pending`, `copying`, `catching_up`, `frozen`, `flipped`, `done` or `rolled_back`.
    pub state: MoveState,
    /// The tenant's placement epoch when the move started (the flip makes it one more).
    pub from_epoch: i64,
    /// Rows of the tenant in the bulk copy's snapshot.
    pub rows_total: i64,
    /// Rows copied so far by the bulk copy.
    pub rows_copied: i64,
    /// Catch-up rounds run, the final delta included.
    pub catch_up_rounds: i32,
    /// Changes made during the move and replayed on the target.
    pub changes_applied: i64,
    /// Per-table row counts and checksums on both sides, once verified.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification: Option<Vec<TableCheck>>,
    /// How long the tenant's writes were frozen (requests waited, none failed), in ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pause_ms: Option<i64>,
    /// Why the move was rolled back (absent when cancelled or not failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Who asked.
    pub requested_by: String,
    /// The instance running it now (or last).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub runner: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frozen_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flipped_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<MoveRecord> for MoveView {
    fn from(m: MoveRecord) -> Self {
        MoveView {
            id: m.id,
            tenant: m.tenant,
            from_shard: m.from_shard_name,
            to_shard: m.to_shard_name,
            state: m.state,
            from_epoch: m.from_epoch,
            rows_total: m.rows_total,
            rows_copied: m.rows_copied,
            catch_up_rounds: m.catch_up_rounds,
            changes_applied: m.changes_applied,
            verification: m.verification,
            pause_ms: m.pause_ms,
            error: m.error,
            requested_by: m.requested_by,
            runner: m.runner,
            created_at: m.created_at,
            updated_at: m.updated_at,
            frozen_at: m.frozen_at,
            flipped_at: m.flipped_at,
            finished_at: m.finished_at,
        }
    }
}

impl From<MovesError> for ApiError {
    fn from(e: MovesError) -> Self {
        match e {
            MovesError::TenantNotFound(_) => ApiError::not_found("tenant"),
            MovesError::MoveNotFound(_) => ApiError::not_found("move"),
            MovesError::ShardNotFound(name) => {
                let mut errs = ValidationErrors::default();
                errs.0.push(FieldError::new(
                    "to_shard",
                    "unknown_shard",
                    format!("no shard named {name}"),
                ));
                ApiError::validation(errs)
            }
            MovesError::NotAllowed(why) => ApiError::new(ErrorCode::MoveNotAllowed, why),
            MovesError::InProgress(why) => ApiError::new(ErrorCode::MoveInProgress, why),
            MovesError::LeaseUnavailable(why) => {
                tracing::warn!(%why, "move lease unavailable");
                ApiError::new(
                    ErrorCode::ServiceUnavailable,
                    "moves are coordinated through Redis, which is not answering; retry",
                )
                .retry_after(Duration::from_secs(2))
            }
            MovesError::Catalog(c) => c.into(),
        }
    }
}

fn accepted(m: MoveRecord) -> HttpResponse {
    HttpResponse::Accepted()
        .insert_header(("Location", format!("/v1/platform/moves/{}", m.id)))
        .json(MoveView::from(m))
}

/// Where to move a tenant.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartMove {
    /// Name of the shard to move the tenant to (it must be `active`).
    pub to_shard: String,
}

/// Move a tenant to another shard, online: its requests keep being served (writes wait during a
/// short freeze, none fails). Runs in the background: follow it at the `Location` returned.
#[utoipa::path(post, path = "/v1/platform/tenants/{tenant}/moves", tag = "platform", request_body = StartMove,
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug")),
    responses((status = 202, body = MoveView), (status = 404, description = "not_found"),
              (status = 409, description = "move_in_progress / move_not_allowed"),
              (status = 422, description = "validation_failed"), (status = 503, description = "service_unavailable")))]
pub async fn start(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: JsonBody<StartMove>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let slug = tenant_slug(&path)?;
    let to = body.value.to_shard.trim();
    if to.is_empty() {
        let mut errs = ValidationErrors::default();
        errs.0
            .push(FieldError::new("to_shard", "required", "name a shard"));
        return Err(ApiError::validation(errs));
    }
    let m = state
        .moves
        .start(&slug, to, operator_actor(&op, &req))
        .await?;
    Ok(accepted(m))
}

/// Paging of move lists (newest first).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct MoveListQuery {
    /// `unfinished` lists only moves that are not `done` or `rolled_back`.
    pub state: Option<String>,
    /// Page size, 1 to 500; 50 when absent.
    pub limit: Option<String>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

async fn list_moves(
    state: &AppState,
    tenant: Option<aries_tenants::TenantId>,
    q: MoveListQuery,
) -> Result<HttpResponse, ApiError> {
    let unfinished = match q.state.as_deref() {
        None => false,
        Some("unfinished") => true,
        Some(_) => {
            return Err(query_error(
                "state",
                "invalid_value",
                "`unfinished` or absent",
            ));
        }
    };
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let rows = state
        .moves
        .records()
        .list(tenant, unfinished, page.after, page.limit)
        .await?;
    let page = Page::from_rows(rows, page.limit, |m: &MoveRecord| m.id);
    Ok(HttpResponse::Ok().json(Page {
        data: page
            .data
            .into_iter()
            .map(MoveView::from)
            .collect::<Vec<_>>(),
        next_cursor: page.next_cursor,
    }))
}

/// A tenant's moves, newest first.
#[utoipa::path(get, path = "/v1/platform/tenants/{tenant}/moves", tag = "platform",
    security(("bearer" = [])), params(("tenant" = String, Path, description = "tenant slug"), MoveListQuery),
    responses((status = 200, description = "`{data: [MoveView], next_cursor?}`"), (status = 404)))]
pub async fn list_for_tenant(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
    query: web::Query<MoveListQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let slug = tenant_slug(&path)?;
    let tenant = state.platform.tenant(&slug).await?;
    list_moves(&state, Some(tenant.id), query.into_inner()).await
}

/// Every move, newest first.
#[utoipa::path(get, path = "/v1/platform/moves", tag = "platform", security(("bearer" = [])),
    params(MoveListQuery), responses((status = 200, description = "`{data: [MoveView], next_cursor?}`")))]
pub async fn list(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<MoveListQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    list_moves(&state, None, query.into_inner()).await
}

/// One move, with its progress and verification.
#[utoipa::path(get, path = "/v1/platform/moves/{move_id}", tag = "platform", security(("bearer" = [])),
    params(("move_id" = Uuid, Path)), responses((status = 200, body = MoveView), (status = 404)))]
pub async fn show(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let id: Uuid = path_id("move_id", &path)?;
    Ok(HttpResponse::Ok().json(MoveView::from(state.moves.get(id).await?)))
}

/// Resume a move whose runner stopped (an instance crashed): it continues from its recorded
/// state, on this instance. 409 `move_in_progress` while its runner is alive.
#[utoipa::path(post, path = "/v1/platform/moves/{move_id}/resume", tag = "platform", security(("bearer" = [])),
    params(("move_id" = Uuid, Path)),
    responses((status = 202, body = MoveView), (status = 404), (status = 409, description = "move_in_progress / move_not_allowed")))]
pub async fn resume(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let id: Uuid = path_id("move_id", &path)?;
    Ok(accepted(
        state.moves.resume(id, operator_actor(&op, &req)).await?,
    ))
}

/// Cancel a move that has not flipped: the source serves again and the target's copy is deleted
/// (`rolled_back`). A move already finished is returned as it is.
#[utoipa::path(post, path = "/v1/platform/moves/{move_id}/cancel", tag = "platform", security(("bearer" = [])),
    params(("move_id" = Uuid, Path)),
    responses((status = 200, body = MoveView), (status = 404), (status = 409, description = "move_in_progress / move_not_allowed")))]
pub async fn cancel(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let id: Uuid = path_id("move_id", &path)?;
    let m = state.moves.cancel(id, operator_actor(&op, &req)).await?;
    Ok(HttpResponse::Ok().json(MoveView::from(m)))
}
