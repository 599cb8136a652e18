//! The operator's view of dead letters: `/v1/platform/dead-letters` (list, one, replay). A dead
//! letter is an event a consumer gave up on after its last attempt (or could not read at all);
//! replaying sends it back, as a first attempt, to the queue it died in.

use crate::error::{ApiError, ErrorCode};
use crate::extract::{OperatorAuth, PageQuery, path_id, query_error};
use crate::state::AppState;
use actix_web::{HttpRequest, HttpResponse, web};
use aries_actors::events::broker::BrokerError;
use aries_actors::events::dead_letters::{ReplayError, replay};
use aries_shards::CatalogError;
use aries_shards::dead_letters::{self, DeadLetter, DeadLetterFilter};
use aries_shards::operators::OperatorRole;
use aries_tenants::page::Page;
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;

/// Filters of the dead-letter list.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterQuery {
    /// `dead` (default: all) or `replayed`.
    pub status: Option<String>,
    /// The consumer (`webhooks`) or its queue's full name.
    pub queue: Option<String>,
    /// A tenant's slug.
    pub tenant: Option<String>,
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

fn catalog_error(e: sqlx::Error) -> ApiError {
    CatalogError::Database(e).into()
}

/// Dead letters, oldest first.
#[utoipa::path(get, path = "/v1/platform/dead-letters", tag = "platform", security(("bearer" = [])),
    params(DeadLetterQuery),
    responses((status = 200, description = "`{data: [DeadLetter], next_cursor?}`")))]
pub async fn list(
    op: OperatorAuth,
    state: web::Data<AppState>,
    query: web::Query<DeadLetterQuery>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let q = query.into_inner();
    if let Some(s) = &q.status
        && s != "dead"
        && s != "replayed"
    {
        return Err(query_error(
            "status",
            "invalid_value",
            "`dead` or `replayed`",
        ));
    }
    let page = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    }
    .parse()?;
    let filter = DeadLetterFilter {
        status: q.status,
        queue: q.queue,
        tenant: q.tenant,
    };
    let rows = dead_letters::list(state.directory.catalog().pool(), &filter, page)
        .await
        .map_err(catalog_error)?;
    Ok(HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |d: &DeadLetter| d.id)))
}

/// One dead letter, with its body and headers.
#[utoipa::path(get, path = "/v1/platform/dead-letters/{dead_letter_id}", tag = "platform", security(("bearer" = [])),
    params(("dead_letter_id" = Uuid, Path)),
    responses((status = 200, body = DeadLetter), (status = 404)))]
pub async fn show(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformViewer)?;
    let id: Uuid = path_id("dead_letter_id", &path)?;
    let letter = dead_letters::get(state.directory.catalog().pool(), id)
        .await
        .map_err(catalog_error)?
        .ok_or_else(|| ApiError::not_found("dead letter"))?;
    Ok(HttpResponse::Ok().json(letter))
}

/// Send a dead letter back to the queue it died in, as a first attempt (after fixing what made it
/// fail). Answers the dead letter, now `replayed`; if it fails again it comes back as `dead`.
#[utoipa::path(post, path = "/v1/platform/dead-letters/{dead_letter_id}/replay", tag = "platform", security(("bearer" = [])),
    params(("dead_letter_id" = Uuid, Path)),
    responses((status = 200, body = DeadLetter), (status = 404),
        (status = 409, description = "dead_letter_already_replayed or dead_letter_queue_missing"),
        (status = 503, description = "service_unavailable (the broker is not answering; nothing was sent)")))]
pub async fn replay_one(
    op: OperatorAuth,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformOperator)?;
    let id: Uuid = path_id("dead_letter_id", &path)?;
    let meta = crate::auth::caller::request_meta(&req);
    let by = aries_tenants::audit::AuditActor {
        actor: op.0.actor(),
        request_id: meta.request_id,
        source_ip: meta.source_ip,
    };
    match replay(&state.broker, state.directory.catalog().pool(), id, &by).await {
        Ok(letter) => Ok(HttpResponse::Ok().json(letter)),
        Err(ReplayError::NotFound) => Err(ApiError::not_found("dead letter")),
        Err(ReplayError::AlreadyReplayed) => Err(ApiError::new(
            ErrorCode::DeadLetterAlreadyReplayed,
            "this dead letter was replayed already; it is listed as dead again if it fails again",
        )),
        Err(ReplayError::Catalog(e)) => Err(catalog_error(e)),
        Err(ReplayError::Broker(BrokerError::Unroutable)) => Err(ApiError::new(
            ErrorCode::DeadLetterQueueMissing,
            "the queue this dead letter died in no longer exists on the broker; nothing was replayed",
        )),
        Err(ReplayError::Broker(e)) => {
            tracing::warn!(error = %e, "dead-letter replay not published");
            Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "the message broker is not answering; nothing was replayed",
            )
            .retry_after(Duration::from_secs(5)))
        }
    }
}
