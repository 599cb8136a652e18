//! What every handler can reach.

use crate::auth::keys::KeyRing;
use aries_actors::links::{RabbitLink, RedisLink};
use aries_actors::{Directory, Platform};
use std::sync::Arc;

/// How long a cached plan stands.
pub const PLAN_TTL: std::time::Duration = std::time::Duration::from_secs(30);

#[derive(Clone)]
pub struct AppState {
    /// Tenant actors.
    pub directory: Directory,
    /// Operator actions.
    pub platform: Platform,
    /// For /health/ready (and later the cache, rate limits, sessions).
    pub redis: RedisLink,
    /// For /health/ready (and later events).
    pub rabbit: RabbitLink,
    /// Redis leases (one billing run per tenant across instances).
    pub locks: aries_actors::locks::Locks,
    /// Tenant moves between shards (start, resume, cancel, progress).
    pub moves: aries_actors::moves::TenantMoves,
    /// Rate limits per credential and per tenant plan.
    pub limiter: Arc<crate::ratelimit::RateLimiter>,
    /// Tenants' plans, read from the catalog at most every [`PLAN_TTL`] (rate limits need them on
    /// every request).
    pub plans: Arc<
        dashmap::DashMap<
            String,
            (
                std::time::Instant,
                aries_tenants::TenantId,
                aries_tenants::Plan,
            ),
        >,
    >,
    /// Console sessions.
    pub sessions: Arc<crate::auth::sessions::SessionStore>,
    /// Whether session cookies carry `Secure` (off only for plain-HTTP development).
    pub cookie_secure: bool,
    /// Signs and verifies access tokens.
    pub keys: Arc<KeyRing>,
    /// Lifetime of refresh tokens issued by the token endpoint.
    pub refresh_ttl: chrono::Duration,
    /// SHA-256 of the configured operator token; `None` refuses every operator request.
    pub operator_token_sha256: Option<[u8; 32]>,
    /// The broker with this deployment's exchange and queue names (dead-letter replay).
    pub broker: aries_actors::events::broker::Broker,
    /// This process's name among the instances (its own event queue, consumer tags).
    pub instance_id: String,
    /// Per-shard deadline of the platform report (`[shards] report_deadline_ms`).
    pub report_deadline: std::time::Duration,
    /// `[webhooks]`: registration refuses private addresses unless they are allowed.
    pub webhooks: aries_actors::events::webhooks::WebhookSettings,
    /// The tenants' live counters in Redis (read by `GET /counters`; the counters consumer
    /// writes them with the same prefix).
    pub counters: aries_actors::events::counters::LiveCounters,
    /// The response cache of tenant GETs (the directory's tenant actors invalidate it on writes;
    /// the instance's event consumer calls `invalidate_local` for other instances' writes).
    pub cache: aries_actors::cache::ResponseCache,
    /// The live dashboards' hub (a sink of the instance's event queue; the sockets subscribe).
    pub live: aries_actors::live::LiveHub,
    /// Drains and rebalances (tenant moves one at a time through `moves`), recorded in the catalog.
    pub shard_jobs: aries_actors::shard_jobs::ShardJobRunner,
}

impl AppState {
    /// The tenant's id and plan (cached), or the catalog's error (unknown tenant, catalog down).
    pub async fn plan_of(
        &self,
        slug: &aries_tenants::TenantSlug,
    ) -> Result<(aries_tenants::TenantId, aries_tenants::Plan), aries_shards::CatalogError> {
        if let Some(entry) = self.plans.get(slug.as_str())
            && entry.0.elapsed() < PLAN_TTL
        {
            return Ok((entry.1, entry.2));
        }
        let tenant = self.directory.catalog().tenant_by_slug(slug).await?;
        self.plans.insert(
            slug.to_string(),
            (std::time::Instant::now(), tenant.id, tenant.plan),
        );
        Ok((tenant.id, tenant.plan))
    }
}
