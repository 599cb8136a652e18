//! Configuration: defaults, then a TOML file, then `ARIES__SECTION__KEY` environment variables
//! (`ARIES__HTTP__BIND=0.0.0.0:8080`, `ARIES__DATABASE__APP_PASSWORD=…`). Secrets are
//! `SecretString`s, and every section holding one has a `Debug` that prints `[redacted]` instead.

use aries_shards::DatabaseSettings;
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::Path;

#[derive(Debug, Clone, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `[http]`: where to listen, workers, the body limit.
    pub http: HttpSettings,
    /// `[database]`: the catalog, the two roles, pool sizes (defined by `aries-shards`).
    pub database: DatabaseSettings,
    /// `[redis]`: where Redis is.
    pub redis: RedisSettings,
    /// `[rabbitmq]`: where RabbitMQ is.
    pub rabbitmq: RabbitSettings,
    /// `[events]`: the outbox relay and the consumers (retries, backoff, prefetch).
    pub events: aries_actors::events::settings::EventSettings,
    /// `[auth]`: the interim operator token.
    pub auth: AuthSettings,
    /// `[tenants]`: tenant actor timing and threads.
    pub tenants: TenantSettings,
    /// `[shards]`: shard probes, the breaker, migration at start-up.
    pub shards: ShardSettings,
    /// `[log]`: log filter and format.
    pub log: LogSettings,
    pub rate_limit: RateLimitSettings,
    /// `[reference]`: defaults of `aries reference sync` (base URLs, app token, paging, retries).
    pub reference: ReferenceSettings,
    /// `[webhooks]`: delivery timeout, private-network policy, response excerpts.
    pub webhooks: aries_actors::events::webhooks::WebhookSettings,
    /// `[notifications]`: SMTP and SMS gateway timeouts (defined by `aries-actors`).
    pub notifications: aries_actors::events::notifications::NotificationSettings,
    /// `[cache]`: the response cache of tenant GETs (see `aries_actors::cache`).
    pub cache: CacheSettings,
    /// `[live]`: the dashboards' sockets (heartbeats, timeouts, queue bound, KPI throttle).
    pub live: aries_actors::live::LiveSettings,
    /// `[moves]`: online tenant moves (catch-up batches, when to freeze, the runner's lease).
    pub moves: MoveSettings,
}

/// `[moves]`: how tenant moves run (see `aries_shards::moves`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MoveSettings {
    /// Logged changes replayed per catch-up round.
    pub catch_up_batch: i64,
    /// Freeze once a catch-up round leaves at most this many changes (the final delta's size).
    pub freeze_at_pending: u64,
    /// Freeze after this many catch-up rounds even if writers keep the log from shrinking.
    pub max_rounds: u32,
    /// How long the freeze waits for the tenant's writes in flight (milliseconds, 3 tries).
    pub freeze_lock_timeout_ms: u64,
    /// After the flip, how long removing the source's rows waits for older transactions (ms).
    pub drain_wait_ms: u64,
    /// A runner's Redis lease lasts this long without renewal (it renews every third); a crashed
    /// runner's move can be resumed by another instance after this.
    pub lease_ttl_ms: u64,
    /// Tests of crash recovery only: the runner stops dead right after recording this state
    /// (`copying`, `catching_up`, `frozen` or `flipped`). Never set it in production.
    pub stop_after: Option<String>,
    /// Every this many milliseconds the instance resumes unfinished moves whose runner died (its
    /// lease expired); 0 leaves them to an operator's `…/resume` or `…/cancel`.
    pub resume_orphans_ms: u64,
}

impl Default for MoveSettings {
    fn default() -> Self {
        Self {
            catch_up_batch: 2_000,
            freeze_at_pending: 200,
            max_rounds: 50,
            freeze_lock_timeout_ms: 5_000,
            drain_wait_ms: 30_000,
            lease_ttl_ms: 15_000,
            stop_after: None,
            resume_orphans_ms: 5_000,
        }
    }
}

impl MoveSettings {
    /// The engine's knobs; an unknown `stop_after` is refused at start-up.
    pub fn tuning(&self) -> anyhow::Result<aries_shards::moves::MoveTuning> {
        use aries_shards::moves::MoveState;
        let stop_after = match self.stop_after.as_deref() {
            None => None,
            Some("copying") => Some(MoveState::Copying),
            Some("catching_up") => Some(MoveState::CatchingUp),
            Some("frozen") => Some(MoveState::Frozen),
            Some("flipped") => Some(MoveState::Flipped),
            Some(other) => anyhow::bail!("[moves] stop_after: unknown state {other}"),
        };
        Ok(aries_shards::moves::MoveTuning {
            catch_up_batch: self.catch_up_batch.max(1),
            freeze_at_pending: self.freeze_at_pending,
            max_rounds: self.max_rounds.max(1),
            freeze_lock_timeout: std::time::Duration::from_millis(self.freeze_lock_timeout_ms),
            drain_wait: std::time::Duration::from_millis(self.drain_wait_ms),
            stop_after,
        })
    }
}

/// The response cache of tenant GETs: an in-memory tier per instance in front of Redis.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheSettings {
    /// Off: cached routes read the database every time (`X-Cache: bypass`).
    pub enabled: bool,
    /// Lifetime of an entry in Redis, in milliseconds.
    pub ttl_ms: u64,
    /// Lifetime of an entry in an instance's memory, in milliseconds: the most a read through one
    /// instance can lag a write through another (0 turns the in-memory tier off).
    pub local_ttl_ms: u64,
    /// Most entries in an instance's memory (a tenant holds at most a quarter of them).
    pub local_max_entries: usize,
}

impl Default for CacheSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            ttl_ms: 60_000,
            local_ttl_ms: 1_000,
            local_max_entries: 10_000,
        }
    }
}

/// Defaults of `aries reference sync` (the SODA service; never used on a request's path).
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReferenceSettings {
    /// Socrata domain used when `--base-url` is not given.
    pub socrata_base_url: String,
    /// Socrata app token sent as `X-App-Token` (unless `--app-token-env` names another); secret.
    pub socrata_app_token: Option<SecretString>,
    /// data.cms.gov host used when `--base-url` is not given.
    pub cms_base_url: String,
    /// Rows per request when `--page-size` is not given.
    pub page_size: u32,
    /// Limit on each request, in milliseconds.
    pub timeout_ms: u64,
    /// Retries of a request that failed with 429, 5xx, a timeout or a broken connection.
    pub max_retries: u32,
    /// Delay before the first retry, doubled for each further one (a `Retry-After` may ask for more).
    pub retry_base_ms: u64,
}

impl Default for ReferenceSettings {
    fn default() -> Self {
        Self {
            socrata_base_url: "https://data.healthdata.gov".into(),
            socrata_app_token: None,
            cms_base_url: "https://data.cms.gov".into(),
            page_size: 1000,
            timeout_ms: 30_000,
            max_retries: 4,
            retry_base_ms: 500,
        }
    }
}

impl std::fmt::Debug for ReferenceSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReferenceSettings")
            .field("socrata_base_url", &self.socrata_base_url)
            .field(
                "socrata_app_token",
                &self.socrata_app_token.as_ref().map(|_| "[redacted]"),
            )
            .field("cms_base_url", &self.cms_base_url)
            .field("page_size", &self.page_size)
            .field("timeout_ms", &self.timeout_ms)
            .field("max_retries", &self.max_retries)
            .field("retry_base_ms", &self.retry_base_ms)
            .finish()
    }
}

/// What the rate limiter does when Redis does not answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisDownPolicy {
    /// Serve without limits (availability first; the default).
    Allow,
    /// Refuse with 503 (protection first).
    Deny,
}

/// Rate limits per credential and per tenant plan (requests per second, sustained; bursts of
/// `burst_seconds` worth are allowed).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Off only for benchmarks of the raw stack.
    pub enabled: bool,
    /// Each credential (API key, user, client).
    pub per_credential_per_second: u32,
    /// Each tenant on the starter plan, all credentials together.
    pub starter_per_second: u32,
    /// Each tenant on the standard plan.
    pub standard_per_second: u32,
    /// Each tenant on the enterprise plan.
    pub enterprise_per_second: u32,
    /// How many seconds' worth of requests may come at once.
    pub burst_seconds: u32,
    /// What to do when Redis is down.
    pub when_redis_down: RedisDownPolicy,
    /// Login attempts (password grant, console logins) per minute from one address.
    pub login_per_minute: u32,
    /// At most this many cells an instance takes from Redis at once for one credential (1 = a
    /// Redis round trip per request). See [`crate::ratelimit`].
    pub lease_max: u32,
    /// Leased cells not used within this many milliseconds are dropped.
    pub lease_ms: u64,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            per_credential_per_second: 50,
            starter_per_second: 20,
            standard_per_second: 100,
            enterprise_per_second: 500,
            burst_seconds: 2,
            when_redis_down: RedisDownPolicy::Allow,
            login_per_minute: 10,
            lease_max: 100,
            lease_ms: 200,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Address to listen on.
    pub bind: String,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
    /// Largest request body accepted, in bytes (larger: 413).
    pub body_limit_bytes: usize,
    /// Browser origins allowed to call the API cross-origin (`https://app.example.com`); empty
    /// (the default) sends no CORS headers, so browsers allow same-origin use only.
    pub cors_allowed_origins: Vec<String>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            workers: 0,
            body_limit_bytes: 256 * 1024,
            cors_allowed_origins: Vec::new(),
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisSettings {
    /// May carry a password (`redis://:pw@host:6379`), hence secret.
    pub url: SecretString,
    /// Start of every key this platform writes, so several deployments (or test runs) can share
    /// one Redis without seeing each other's sessions or counters.
    pub key_prefix: String,
}

impl Default for RedisSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("redis://127.0.0.1:6379"),
            key_prefix: "aries".into(),
        }
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &"[redacted]")
            .field("key_prefix", &self.key_prefix)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitSettings {
    /// Carries the password, hence secret.
    pub url: SecretString,
    /// Start of every exchange and queue name (`<namespace>.events`, `<namespace>.webhooks`…), so
    /// several deployments (or test runs) can share one broker.
    pub namespace: String,
    /// `x-expires` on every queue (ms). Only for throwaway deployments such as tests: a queue of a
    /// real deployment must never vanish with its messages while the instances are down.
    pub queue_expires_ms: Option<u32>,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace: "aries".into(),
            queue_expires_ms: None,
        }
    }
}

impl std::fmt::Debug for RabbitSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RabbitSettings")
            .field("url", &"[redacted]")
            .field("namespace", &self.namespace)
            .field("queue_expires_ms", &self.queue_expires_ms)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// The interim operator bearer token (until operator accounts arrive). Unset: the operator API
    /// refuses every request.
    pub operator_token: Option<SecretString>,
    /// `iss` of the access tokens this platform signs (and accepts).
    pub issuer: String,
    /// Lifetime of access tokens, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds (each use rotates the token and restarts it).
    pub refresh_token_ttl_secs: u64,
    /// How long a tenant actor trusts a resolved credential before checking it again: the delay
    /// after which disabling a user or revoking a key or client takes effect on every instance.
    pub credential_cache_ms: u64,
    /// The signing key is replaced after this many days (every instance checks; one rotates).
    pub signing_key_rotate_days: u64,
    /// A console session ends after this many seconds without use.
    pub session_idle_secs: u64,
    /// A console session ends this many seconds after login, used or not.
    pub session_max_secs: u64,
    /// Session cookies carry `Secure` (browsers treat http://localhost as secure, so it can stay on
    /// in development too).
    pub cookie_secure: bool,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            operator_token: None,
            issuer: "aries".into(),
            access_token_ttl_secs: 600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            credential_cache_ms: 500,
            signing_key_rotate_days: 30,
            session_idle_secs: 1800,
            session_max_secs: 12 * 3600,
            cookie_secure: true,
        }
    }
}

impl std::fmt::Debug for AuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthSettings")
            .field(
                "operator_token",
                &self.operator_token.as_ref().map(|_| "[redacted]"),
            )
            .field("issuer", &self.issuer)
            .field("access_token_ttl_secs", &self.access_token_ttl_secs)
            .field("refresh_token_ttl_secs", &self.refresh_token_ttl_secs)
            .field("credential_cache_ms", &self.credential_cache_ms)
            .field("signing_key_rotate_days", &self.signing_key_rotate_days)
            .field("session_idle_secs", &self.session_idle_secs)
            .field("session_max_secs", &self.session_max_secs)
            .field("cookie_secure", &self.cookie_secure)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// A tenant actor passivates after this many milliseconds without a message.
    pub idle_timeout_ms: u64,
    /// A tenant actor re-reads its profile (status, placement) this often.
    pub profile_refresh_ms: u64,
    /// Arbiters (threads) for tenant actors; 0 means one per core.
    pub arbiters: usize,
    /// How long a request waits in its tenant's actor while a move freezes the tenant before it
    /// is answered 503 `tenant_moving` (a freeze normally lasts well under a second).
    pub move_wait_ms: u64,
}

impl Default for TenantSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: 300_000,
            profile_refresh_ms: 5_000,
            arbiters: 0,
            move_wait_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ShardSettings {
    /// Health probe period per shard.
    pub probe_interval_ms: u64,
    /// How long an open breaker refuses requests before letting a trial through.
    pub breaker_open_ms: u64,
    /// Migrate the catalog and every shard when `serve` starts.
    pub migrate_on_start: bool,
    /// How long the operator's platform report waits for each shard; a shard slower than this is
    /// left out and the report marked partial.
    pub report_deadline_ms: u64,
}

impl Default for ShardSettings {
    fn default() -> Self {
        Self {
            probe_interval_ms: 1_000,
            breaker_open_ms: 2_000,
            migrate_on_start: true,
            report_deadline_ms: 2_000,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// An `EnvFilter` directive (`info`, `aries=debug,sqlx=warn`); `RUST_LOG` wins when set.
    pub level: String,
    /// `json` (default) or `pretty`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info,sqlx::postgres::notice=warn".into(),
            format: "json".into(),
        }
    }
}

impl Settings {
    /// Defaults → `file` (if given, or `aries.toml` when present) → `ARIES__…` variables.
    pub fn load(file: Option<&Path>) -> Result<Settings, Box<figment::Error>> {
        let mut figment = Figment::new();
        match file {
            Some(path) => figment = figment.merge(Toml::file_exact(path)),
            None if Path::new("aries.toml").exists() => {
                figment = figment.merge(Toml::file("aries.toml"))
            }
            None => {}
        }
        figment
            .merge(Env::prefixed("ARIES__").split("__"))
            .extract()
            .map_err(Box::new)
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment's Jail dictates the closure's error type
mod tests {
    use super::*;
    use figment::Jail;
    use secrecy::ExposeSecret;

    #[test]
    fn layers_defaults_file_env_and_redacts() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "a.toml",
                "[http]\nbind = \"127.0.0.1:9000\"\n[database]\napp_password = \"from-file\"",
            )?;
            jail.set_env("ARIES__DATABASE__APP_PASSWORD", "from-env");
            jail.set_env("ARIES__AUTH__OPERATOR_TOKEN", "tok-secret");
            jail.set_env("ARIES__REFERENCE__SOCRATA_APP_TOKEN", "soda-secret");
            let s = Settings::load(Some(Path::new("a.toml"))).map_err(|e| *e)?;
            assert_eq!(s.http.bind, "127.0.0.1:9000");
            assert_eq!(s.http.body_limit_bytes, 256 * 1024);
            assert_eq!(s.database.app_password.expose_secret(), "from-env");
            assert_eq!(
                s.reference
                    .socrata_app_token
                    .as_ref()
                    .map(|t| t.expose_secret()),
                Some("soda-secret")
            );
            assert_eq!(s.reference.page_size, 1000);
            let debug = format!("{s:?}");
            assert!(
                !debug.contains("from-env")
                    && !debug.contains("tok-secret")
                    && !debug.contains("guest")
                    && !debug.contains("soda-secret"),
                "{debug}"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_rejected() {
        Jail::expect_with(|jail| {
            jail.create_file("b.toml", "[http]\nbnd = \"x\"")?;
            assert!(Settings::load(Some(Path::new("b.toml"))).is_err());
            Ok(())
        });
    }
}
