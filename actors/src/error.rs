//! What a tenant operation can fail with. `aries-http` maps each variant to a problem+json code.

use aries_shards::CatalogError;
use aries_tenants::{DomainError, TenantStatus};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    /// No tenant with that slug (or it is not visible to the caller).
    #[error("tenant not found")]
    TenantNotFound,
    /// The tenant exists but is not serving (suspended, archived, still provisioning).
    #[error("the tenant is {0}")]
    NotServing(TenantStatus),
    /// The tenant's shard is failing; retry after the delay.
    #[error("shard {shard} is unavailable")]
    ShardUnavailable {
        shard: String,
        retry_after: Duration,
    },
    /// A move froze the tenant's writes for longer than the actor waits (`move_wait`): its runner
    /// is probably gone; retry after the delay (a rerun resumes or rolls the move back).
    #[error("the tenant is being moved to another shard")]
    TenantMoving { retry_after: Duration },
    /// A write on a shard an operator marked read-only.
    #[error("shard {shard} is read-only")]
    ShardReadOnly { shard: String },
    /// A rule of the domain.
    #[error(transparent)]
    Domain(DomainError),
    /// The catalog failed.
    #[error(transparent)]
    Catalog(CatalogError),
    /// The handler panicked; the actor has been restarted.
    #[error("the tenant's actor failed while handling the request and was restarted")]
    Crashed,
    /// The actor stopped or its mailbox closed before answering.
    #[error("the tenant's actor is not available: {0}")]
    ActorUnavailable(String),
}

impl From<actix::MailboxError> for TenantError {
    fn from(e: actix::MailboxError) -> Self {
        TenantError::ActorUnavailable(e.to_string())
    }
}

impl From<CatalogError> for TenantError {
    fn from(e: CatalogError) -> Self {
        match e {
            CatalogError::TenantNotFound(_) => TenantError::TenantNotFound,
            other => TenantError::Catalog(other),
        }
    }
}
