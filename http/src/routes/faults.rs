//! Operator-only fault injection, compiled only with the `fault-injection` feature (never in the
//! default build, never in `/openapi.json`): `make chaos` uses it to panic a tenant actor's handler
//! under load and check that the platform replaces the actor without losing a write.
//!
//! `POST /v1/platform/faults/tenants/{tenant}/panic` (role `platform_admin`): activates the tenant's
//! actor if needed, sends it [`PanicInHandler`] (a panic in a synchronous handler, which kills the
//! actor outright: the supervisor cannot catch it), and answers 202 once the actor is gone. Every
//! request queued in its mailbox at that moment fails with 503 `service_unavailable`; the next
//! request gets a fresh actor from the directory.

use crate::error::ApiError;
use crate::extract::{OperatorAuth, tenant_slug};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use aries_actors::tenant::PanicInHandler;
use aries_shards::operators::OperatorRole;
use serde::Serialize;

/// Longest wait for the panicked actor's mailbox to close.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Answer of a fault injection.
#[derive(Debug, Serialize)]
pub struct FaultInjected {
    /// The tenant whose actor was hit.
    pub tenant: String,
    /// What was injected (`panic_in_handler`).
    pub fault: &'static str,
    /// True when the actor's mailbox closed (the actor died), as it must after the panic.
    pub actor_stopped: bool,
}

/// Panics the tenant actor's handler on this instance.
pub async fn panic_tenant_actor(
    op: OperatorAuth,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    op.0.require(OperatorRole::PlatformAdmin)?;
    let slug = tenant_slug(&path.into_inner())?;
    let addr = state.directory.get(&slug).await?;
    // The panic kills the actor before it answers: the send fails as the handler unwinds. The
    // mailbox itself closes a moment later, when the unwinding drops the actor; wait for that (up
    // to a bound), so "stopped" is only said of an actor that is gone.
    let answered = addr.send(PanicInHandler).await.is_ok();
    tracing::warn!(tenant = %slug, "fault injected: panic in the tenant actor's handler");
    let deadline = std::time::Instant::now() + STOP_WAIT;
    while !answered && addr.connected() && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    Ok(HttpResponse::Accepted().json(FaultInjected {
        tenant: slug.to_string(),
        fault: "panic_in_handler",
        actor_stopped: !answered && !addr.connected(),
    }))
}
