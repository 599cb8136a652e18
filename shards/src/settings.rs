//! Database settings, the `[database]` section of the configuration.

use secrecy::SecretString;
use serde::Deserialize;

/// Where the catalog is, which roles to connect as, and how big the pools are.
///
/// Shard locations live in the catalog (`shard.dsn`: host, port, database); the roles and their
/// passwords live here, so the catalog holds no secret and every instance uses its own credentials.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    /// The catalog database (host, port, database; user and password here are ignored).
    pub catalog_url: String,
    /// The application's role: not a superuser and without BYPASSRLS, so row-level security binds it.
    pub app_user: String,
    /// Password of `app_user`; a `SecretString`, and redacted by the `Debug` below.
    pub app_password: SecretString,
    /// The owner role: runs migrations and creates the shard-side rows of a new tenant's schema.
    pub owner_user: String,
    /// Password of `owner_user`; a `SecretString`, and redacted by the `Debug` below.
    pub owner_password: SecretString,
    /// Connections per shard pool (and for the catalog pool).
    pub max_connections: u32,
    /// How long a request may wait for a pooled connection before the shard counts as failing.
    pub acquire_timeout_ms: u64,
    /// Server-side `statement_timeout` so no query can hold a request forever.
    pub statement_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            catalog_url: "postgres://127.0.0.1:5432/aries_catalog".into(),
            app_user: "aries_app".into(),
            app_password: SecretString::from("aries_app"),
            owner_user: "aries_owner".into(),
            owner_password: SecretString::from("aries_owner"),
            max_connections: 16,
            acquire_timeout_ms: 2_000,
            statement_timeout_ms: 10_000,
        }
    }
}

impl std::fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("catalog_url", &self.catalog_url)
            .field("app_user", &self.app_user)
            .field("app_password", &"[redacted]")
            .field("owner_user", &self.owner_user)
            .field("owner_password", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .field("acquire_timeout_ms", &self.acquire_timeout_ms)
            .field("statement_timeout_ms", &self.statement_timeout_ms)
            .finish()
    }
}
