//! What every handler can reach.

use aries_actors::links::{RabbitLink, RedisLink};
use aries_actors::{Directory, Platform};

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
    /// SHA-256 of the configured operator token; `None` refuses every operator request.
    pub operator_token_sha256: Option<[u8; 32]>,
}
