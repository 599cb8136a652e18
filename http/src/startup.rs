//! Building and running the application. `Application::build` takes settings, binds the listener
//! (port 0 in tests), connects what must be connected and returns; `run_until_stopped` serves.

use crate::auth::keys::KeyRing;
use crate::error::{ApiError, ErrorCode};
use crate::extract::BodyLimit;
use crate::settings::Settings;
use crate::state::AppState;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use anyhow::Context as _;
use aries_actors::events::broker::Broker;
use aries_actors::events::relay::{self, QueueSpec, RelayConfig};
use aries_actors::events::topology::Names;
use aries_actors::events::{EventHandler, consumer, dead_letters, instance};
use aries_actors::links::{RabbitLink, RedisLink};
use aries_actors::tenant::TenantTimers;
use aries_actors::{Directory, DirectorySettings, Platform, ShardRegistry};
use aries_shards::Catalog;
use aries_shards::connect::{Role, lazy_pool};
use aries_shards::migrate::{migrate_catalog, migrate_shard};
use aries_tenants::FieldError;
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use utoipa::OpenApi as _;
use utoipa_swagger_ui::SwaggerUi;

/// The platform's shared parts, built once per process (the CLI uses them without the server).
pub struct Core {
    /// Finds or activates tenant actors; holds the catalog and the shard registry.
    pub directory: Directory,
    /// Operator actions, on a clone of the same directory, so a status change reaches this
    /// process's tenant actors at once.
    pub platform: Platform,
}

impl Core {
    /// Connects the catalog, optionally migrates, starts shard actors. Needs a running actix system.
    pub async fn build(settings: &Settings, migrate: bool) -> anyhow::Result<Core> {
        let db = Arc::new(settings.database.clone());
        let migrating = if migrate {
            migration_lease(settings).await
        } else {
            None
        };
        if migrate {
            migrate_catalog(&db)
                .await
                .context("migrating the catalog")?;
        }
        let catalog =
            Catalog::new(lazy_pool(&db.catalog_url, Role::App, &db).context("catalog URL")?);
        if migrate {
            for shard in catalog
                .shards()
                .await
                .context("reading shards from the catalog")?
            {
                // A registered shard is migrated by its operator (`aries shards migrate`); its
                // server need not be up yet.
                if shard.status == aries_shards::ShardStatus::Registered {
                    continue;
                }
                // A shard that is down must not keep the others from serving: warn and go on.
                if let Err(e) = migrate_shard(&shard.dsn, &db).await {
                    tracing::error!(shard = %shard.name, error = %e, "shard not migrated at start-up");
                } else if let Err(e) = catalog
                    .record_shard_migrated(
                        &shard.name,
                        aries_shards::migrate::latest_shard_version(),
                        None,
                    )
                    .await
                {
                    tracing::warn!(shard = %shard.name, error = %e, "shard migration not recorded");
                }
            }
        }
        let shards = ShardRegistry::new(
            catalog.clone(),
            db,
            Duration::from_millis(settings.shards.probe_interval_ms),
            Duration::from_millis(settings.shards.breaker_open_ms),
        );
        shards.sync().await.context("starting shard actors")?;
        let directory = Directory::new(
            catalog,
            shards,
            DirectorySettings {
                arbiters: settings.tenants.arbiters,
                timers: TenantTimers {
                    idle_timeout: Duration::from_millis(settings.tenants.idle_timeout_ms),
                    profile_refresh: Duration::from_millis(settings.tenants.profile_refresh_ms),
                    credential_ttl: Duration::from_millis(settings.auth.credential_cache_ms),
                    move_wait: Duration::from_millis(settings.tenants.move_wait_ms),
                },
            },
        );
        let platform = Platform::new(directory.clone());
        if let Some((locks, lease, keep_alive)) = migrating {
            drop(keep_alive);
            let _ = locks.release(lease).await;
        }
        Ok(Core {
            directory,
            platform,
        })
    }
}

pub struct Application {
    /// The port actually bound, read from the listener: tests bind port 0 and need the real one.
    port: u16,
    /// Serves only once awaited (`run_until_stopped`); `server_handle` stops it.
    server: Server,
    /// Exposed for tests (activation, supervision).
    pub state: AppState,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(&settings.http.bind)
            .with_context(|| format!("binding {}", settings.http.bind))?;
        Self::build_with_listener(settings, listener).await
    }

    pub async fn build_with_listener(
        settings: Settings,
        listener: TcpListener,
    ) -> anyhow::Result<Application> {
        let _ = crate::telemetry::prometheus();
        let core = Core::build(&settings, settings.shards.migrate_on_start).await?;
        let operator_token_sha256 = settings.auth.operator_token.as_ref().map(|t| {
            let d: [u8; 32] = Sha256::digest(t.expose_secret().trim().as_bytes()).into();
            d
        });
        if operator_token_sha256.is_none() {
            tracing::warn!(
                "no operator token configured (ARIES__AUTH__OPERATOR_TOKEN): the APIs will refuse every request"
            );
        }
        let keys = Arc::new(
            KeyRing::start(
                core.directory.catalog().pool().clone(),
                settings.auth.issuer.clone(),
                Duration::from_secs(settings.auth.access_token_ttl_secs),
            )
            .await
            .context("loading the token signing keys")?,
        );
        let reloading = Arc::downgrade(&keys);
        let rotate_after =
            Duration::from_secs(settings.auth.signing_key_rotate_days.max(1) * 24 * 3600);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::auth::keys::RELOAD_EVERY).await;
                let Some(keys) = reloading.upgrade() else {
                    break;
                };
                match keys.rotate_if_older(rotate_after).await {
                    Ok(true) => tracing::info!("signing key rotated on schedule"),
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "scheduled signing-key rotation failed"),
                }
                if let Err(e) = keys.reload().await {
                    tracing::warn!(error = %e, "could not re-read the signing keys");
                }
            }
        });
        let redis = RedisLink::start(settings.redis.url.expose_secret().to_owned());
        let cache = aries_actors::cache::ResponseCache::new(
            redis.clone(),
            aries_actors::cache::CacheConfig {
                enabled: settings.cache.enabled,
                ttl: Duration::from_millis(settings.cache.ttl_ms),
                local_ttl: Duration::from_millis(settings.cache.local_ttl_ms),
                local_max_entries: settings.cache.local_max_entries,
                prefix: settings.redis.key_prefix.clone(),
            },
        );
        core.directory.set_cache(cache.clone());
        let rabbit = RabbitLink::start(settings.rabbitmq.url.expose_secret().to_owned());
        let broker = Broker::new(
            rabbit.clone(),
            Names {
                ns: settings.rabbitmq.namespace.clone(),
                queue_expires_ms: settings.rabbitmq.queue_expires_ms,
            },
        );
        let instance_id = uuid::Uuid::now_v7().simple().to_string();
        let counters = aries_actors::events::counters::LiveCounters::new(
            redis.clone(),
            settings.redis.key_prefix.clone(),
        );
        let live = aries_actors::live::LiveHub::new(
            core.directory.clone(),
            counters.clone(),
            settings.live.clone(),
        );
        if settings.events.enabled {
            start_events(
                &core,
                &broker,
                &settings,
                &instance_id,
                &counters,
                &cache,
                &live,
            );
        }
        let locks =
            aries_actors::locks::Locks::new(redis.clone(), settings.redis.key_prefix.clone());
        let moves = aries_actors::moves::TenantMoves::new(
            core.directory.clone(),
            locks.clone(),
            settings.moves.tuning()?,
            Duration::from_millis(settings.moves.lease_ttl_ms),
            instance_id.clone(),
        );
        if settings.moves.resume_orphans_ms > 0 {
            moves.watch_orphans(Duration::from_millis(settings.moves.resume_orphans_ms));
        }
        let shard_jobs = aries_actors::shard_jobs::ShardJobRunner::new(
            core.platform.clone(),
            core.directory.clone(),
            Arc::new(moves.clone()),
            instance_id.clone(),
        );
        let state = AppState {
            shard_jobs,
            live,
            counters,
            locks,
            moves,
            limiter: Arc::new(crate::ratelimit::RateLimiter::new(
                redis.clone(),
                settings.rate_limit.clone(),
                settings.redis.key_prefix.clone(),
            )),
            plans: Arc::new(dashmap::DashMap::new()),
            sessions: Arc::new(crate::auth::sessions::SessionStore::new(
                redis.clone(),
                Duration::from_secs(settings.auth.session_idle_secs),
                Duration::from_secs(settings.auth.session_max_secs),
                settings.redis.key_prefix.clone(),
            )),
            cookie_secure: settings.auth.cookie_secure,
            keys,
            refresh_ttl: chrono::Duration::seconds(
                i64::try_from(settings.auth.refresh_token_ttl_secs).unwrap_or(i64::MAX),
            ),
            directory: core.directory,
            platform: core.platform,
            redis,
            rabbit,
            broker,
            instance_id,
            operator_token_sha256,
            report_deadline: Duration::from_millis(settings.shards.report_deadline_ms),
            cache,
            webhooks: settings.webhooks.clone(),
        };
        let port = listener.local_addr()?.port();
        let body_limit = settings.http.body_limit_bytes;
        let cors_origins = settings.http.cors_allowed_origins.clone();
        let app_state = web::Data::new(state.clone());
        let openapi = crate::openapi::ApiDoc::openapi();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(BodyLimit(body_limit))
                .app_data(web::PayloadConfig::new(body_limit))
                .app_data(web::QueryConfig::default().error_handler(|e, _| {
                    let msg = e.to_string();
                    ApiError::with_errors(
                        ErrorCode::InvalidQuery,
                        msg.clone(),
                        vec![FieldError::new(query_field(&msg), "invalid_query", msg)],
                    )
                    .into()
                }))
                .app_data(web::PathConfig::default().error_handler(|e, _| {
                    ApiError::new(ErrorCode::InvalidId, e.to_string()).into()
                }))
                .wrap(actix_web::middleware::Condition::new(
                    !cors_origins.is_empty(),
                    cors(&cors_origins),
                ))
                .wrap(from_fn(crate::middleware::request_middleware))
                .configure(crate::routes::configure)
                .service(web::redirect("/docs", "/docs/"))
                .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", openapi.clone()))
                .default_service(web::to(|| async {
                    ApiError::new(ErrorCode::NotFound, "no such route")
                }))
        })
        .shutdown_timeout(10)
        .listen(listener)?;
        if settings.http.workers > 0 {
            server = server.workers(settings.http.workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }

    pub fn server_handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// One instance migrates at a time: instances started together take the `migrations` lease in
/// Redis (with a fencing token, kept alive while they work) and the others wait for it, then find
/// nothing left to do. With Redis down the start-up goes on after a few seconds: sqlx's own
/// per-database advisory lock still keeps two migrators of one database apart.
pub async fn migration_lease(
    settings: &Settings,
) -> Option<(
    aries_actors::locks::Locks,
    aries_actors::locks::Lease,
    aries_actors::locks::KeepAlive,
)> {
    let locks = aries_actors::locks::Locks::new(
        RedisLink::start(settings.redis.url.expose_secret().to_owned()),
        settings.redis.key_prefix.clone(),
    );
    match locks
        .acquire_waiting(
            "migrations",
            Duration::from_secs(30),
            Duration::from_secs(600),
            Duration::from_secs(5),
        )
        .await
    {
        Ok(lease) => {
            let keep_alive = locks.keep_alive(&lease);
            Some((locks, lease, keep_alive))
        }
        Err(e) => {
            tracing::warn!(error = %e, "migrating without the Redis lease (Postgres' migration lock still applies)");
            None
        }
    }
}

/// Starts what carries events on this instance: the outbox relays (one leads per shard across
/// instances), the consumers (competing across instances), the dead-letter archiver and this
/// instance's own queue.
fn start_events(
    core: &Core,
    broker: &Broker,
    settings: &Settings,
    instance_id: &str,
    counters: &aries_actors::events::counters::LiveCounters,
    cache: &aries_actors::cache::ResponseCache,
    live: &aries_actors::live::LiveHub,
) {
    use aries_actors::events::{notifications, webhooks};
    let events = &settings.events;
    let handlers: Vec<Arc<dyn EventHandler>> = vec![
        Arc::new(webhooks::WebhookDispatcher::new(
            core.directory.clone(),
            settings.webhooks.clone(),
        )),
        Arc::new(notifications::NotificationSender::new(
            core.directory.clone(),
            settings.notifications.clone(),
        )),
        Arc::new(counters.clone()),
    ];
    relay::start(
        core.directory.shards().clone(),
        broker.clone(),
        RelayConfig {
            poll_interval: Duration::from_millis(events.relay_poll_ms.max(10)),
            batch: events.relay_batch.max(1),
            tenants_in_flight: events.relay_tenants_in_flight.max(1),
            priority: notifications::priority_of,
            queues: handlers.iter().map(|h| QueueSpec::of(h.as_ref())).collect(),
        },
    );
    dead_letters::spawn_archiver(
        broker.clone(),
        core.directory.catalog().pool().clone(),
        instance_id.to_owned(),
    );
    for handler in handlers {
        consumer::spawn(
            broker.clone(),
            handler,
            events.consumer(),
            instance_id.to_owned(),
        );
    }
    instance::spawn(
        broker.clone(),
        instance_id.to_owned(),
        vec![Arc::new(cache.clone()), Arc::new(live.clone())],
    );
}

/// serde_urlencoded says "unknown field `x`, expected …"; pull the field name out for `errors`.
fn query_field(msg: &str) -> String {
    msg.split('`').nth(1).unwrap_or("").to_owned()
}

/// CORS for the configured origins only: the API's own headers may be sent, and the ones a client
/// needs to read (ETag, Location, rate limits, request id) are exposed.
fn cors(origins: &[String]) -> actix_cors::Cors {
    let mut cors = actix_cors::Cors::default()
        .allowed_methods(["GET", "POST", "PATCH", "PUT", "DELETE"])
        .allowed_headers([
            "authorization",
            "content-type",
            "if-match",
            "idempotency-key",
            "x-request-id",
        ])
        .expose_headers([
            "etag",
            "location",
            "retry-after",
            "ratelimit-limit",
            "ratelimit-remaining",
            "ratelimit-reset",
            "x-request-id",
            "idempotent-replayed",
            "x-cache",
        ])
        .max_age(600)
        // A request from another origin is served without CORS headers (the browser then blocks
        // the page from reading it) rather than refused, so non-browser clients are unaffected.
        .block_on_origin_mismatch(false);
    for origin in origins {
        cors = cors.allowed_origin(origin);
    }
    cors
}
