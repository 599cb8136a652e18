//! What every handler can reach.

use crate::auth::keys::KeyRing;
use aries_actors::links::{RabbitLink, RedisLink};
use aries_actors::{Directory, Platform};
use std::sync::Arc;

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
    /// Signs and verifies access tokens.
    pub keys: Arc<KeyRing>,
    /// Lifetime of refresh tokens issued by the token endpoint.
    pub refresh_ttl: chrono::Duration,
    /// SHA-256 of the configured operator token; `None` refuses every operator request.
    pub operator_token_sha256: Option<[u8; 32]>,
}
