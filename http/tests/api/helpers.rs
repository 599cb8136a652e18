//! The test harness: fresh databases per test, a second Postgres server on demand, and a
//! `TestApp` that runs the real application on a random port against the real services.

#![allow(dead_code)]

use aries_actors::ShardRegistry;
use aries_http::settings::Settings;
use aries_http::startup::Application;
use aries_shards::connect::{Role, lazy_pool, options};
use aries_shards::migrate::{migrate_catalog, migrate_shard};
use aries_shards::{Catalog, DatabaseSettings};
use aries_tenants::TenantId;
use reqwest::{Method, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{Value, json};
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The local server every machine running the tests has (started by scripts/services.sh).
pub const MAIN_SERVER: &str = "postgres://127.0.0.1:5432";

fn unique(prefix: &str) -> String {
    let r: u64 = rand::random();
    format!("{prefix}_{}_{:x}", std::process::id(), r & 0xffff_ffff)
}

pub fn db_settings(catalog_url: &str) -> DatabaseSettings {
    DatabaseSettings {
        catalog_url: catalog_url.to_owned(),
        max_connections: 8,
        acquire_timeout_ms: 1500,
        ..Default::default()
    }
}

/// Databases made for one test and dropped after it (test.sh also sweeps `aries_t_%` leftovers).
pub struct TestDbs {
    /// (server, database) pairs to drop.
    created: Vec<(String, String)>,
}

impl TestDbs {
    pub fn new() -> Self {
        Self {
            created: Vec::new(),
        }
    }

    /// Creates an empty database owned by the owner role on `server` and returns its DSN.
    pub async fn create(&mut self, server: &str, suffix: &str) -> Result<String, sqlx::Error> {
        let name = unique(&format!("aries_t_{suffix}"));
        let mut admin = admin_conn(server).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut admin)
            .await?;
        admin.close().await?;
        self.created.push((server.to_owned(), name.clone()));
        Ok(format!("{server}/{name}"))
    }
}

async fn admin_conn(server: &str) -> Result<PgConnection, sqlx::Error> {
    options(
        &format!("{server}/postgres"),
        Role::Owner,
        &DatabaseSettings::default(),
    )?
    .connect()
    .await
}

impl Drop for TestDbs {
    fn drop(&mut self) {
        let created = std::mem::take(&mut self.created);
        // Drop runs inside the test's runtime; drop the databases from a thread with its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                for (server, name) in created {
                    if let Ok(mut c) = admin_conn(&server).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "drop database if exists {name} with (force)"
                        )))
                        .execute(&mut c)
                        .await;
                    }
                }
            });
        })
        .join();
    }
}

/// A throwaway Postgres server on its own port (for tests that need a shard to fail).
pub struct PgServer {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
}

fn pg_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                .filter(|p| p.join("initdb").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
        .pop()
        .unwrap_or_else(|| PathBuf::from("/usr/lib/postgresql/15/bin"))
}

fn as_postgres(cmd: &str) -> std::io::Result<std::process::Output> {
    Command::new("su")
        .args(["postgres", "-s", "/bin/sh", "-c", cmd])
        .output()
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(55432)
}

impl PgServer {
    /// initdb (trust auth), start, and create the app and owner roles.
    pub fn start() -> Result<PgServer, Box<dyn std::error::Error>> {
        let bin = pg_bin();
        let port = free_port();
        let dir = PathBuf::from(format!("/tmp/aries-pg-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let out = as_postgres(&format!(
            "{} -D {} -A trust -U postgres --no-sync >/dev/null",
            bin.join("initdb").display(),
            dir.display()
        ))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let server = PgServer { port, dir, bin };
        server.pg_ctl_start()?;
        let out = Command::new(server.bin.join("psql"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-qc"])
            .arg("create role aries_owner login password 'aries_owner' createdb; create role aries_app login password 'aries_app'; grant pg_signal_backend to aries_owner;")
            .output()?;
        if !out.status.success() {
            return Err(format!("creating roles: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("postgres://127.0.0.1:{}", self.port)
    }

    fn pg_ctl_start(&self) -> Result<(), Box<dyn std::error::Error>> {
        let out = as_postgres(&format!(
            "{} -D {} -o '-p {} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off' -l {}/log -w start >/dev/null",
            self.bin.join("pg_ctl").display(),
            self.dir.display(),
            self.port,
            self.dir.display()
        ))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "pg_ctl start failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into())
        }
    }

    /// Stops at once, as a crash would (open connections are cut).
    pub fn kill(&self) -> std::io::Result<()> {
        as_postgres(&format!(
            "{} -D {} -m immediate -w stop >/dev/null",
            self.bin.join("pg_ctl").display(),
            self.dir.display()
        ))
        .map(|_| ())
    }

    pub fn restart(&self) -> Result<(), Box<dyn std::error::Error>> {
        self.pg_ctl_start()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Options for [`TestApp::spawn_with`].
#[derive(Default)]
pub struct AppOptions {
    /// Put shard-1 on this server instead of the main one.
    pub shard1_server: Option<String>,
    /// Put the catalog on this server instead of the main one.
    pub catalog_server: Option<String>,
    pub idle_timeout: Option<Duration>,
    pub body_limit: Option<usize>,
    /// Rate limits (the default test app has them off, so tests can hammer it).
    pub rate_limit: Option<aries_http::settings::RateLimitSettings>,
    /// Use this Redis instead of the machine's.
    pub redis_url: Option<String>,
    /// Browser origins allowed by CORS.
    pub cors_origins: Vec<String>,
    /// The platform report's per-shard deadline (`[shards] report_deadline_ms`).
    pub report_deadline_ms: Option<u64>,
    /// Use this RabbitMQ instead of the machine's.
    pub rabbit_url: Option<String>,
    /// Attempts of a consumer before a message is dead-lettered (tests default to 3).
    pub max_attempts: Option<u32>,
    /// Refuse webhook endpoints on private addresses (test apps allow them by default, since
    /// test receivers listen on 127.0.0.1).
    pub refuse_private_webhooks: bool,
    /// The response cache's settings (`[cache]`); the defaults when absent.
    pub cache: Option<aries_http::settings::CacheSettings>,
    /// The live sockets' settings (`[live]`: heartbeat, timeouts, queue bound); the defaults when
    /// absent.
    pub live: Option<aries_actors::live::LiveSettings>,
}

pub struct TestApp {
    /// What the app was built with (a peer instance is built from the same).
    pub settings: Settings,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub app_state: aries_http::state::AppState,
    pub db: DatabaseSettings,
    /// DSNs of shard-0 and shard-1.
    pub shard_dsns: Vec<String>,
    /// The settings the app runs with (for the CLI tests).
    pub settings_env: Vec<(String, String)>,
    /// An owner API key per tenant made by `create_tenant`: requests to a tenant's URLs carry it.
    pub tenant_keys: std::sync::Mutex<std::collections::HashMap<String, String>>,
    handle: actix_web::dev::ServerHandle,
    /// Dropped after the server: the databases go last.
    _dbs: TestDbs,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(AppOptions::default()).await
    }

    pub async fn spawn_with(opts: AppOptions) -> TestApp {
        match Self::try_spawn(opts).await {
            Ok(app) => app,
            Err(e) => panic!("spawning the test app: {e}"),
        }
    }

    async fn try_spawn(opts: AppOptions) -> Result<TestApp, Box<dyn std::error::Error>> {
        // The app's logs go to the test's output (shown by the runner when a test fails).
        aries_http::telemetry::init_tracing(&aries_http::settings::LogSettings {
            level: std::env::var("ARIES_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            format: "pretty".into(),
        });
        let mut dbs = TestDbs::new();
        let catalog_url = dbs
            .create(opts.catalog_server.as_deref().unwrap_or(MAIN_SERVER), "cat")
            .await?;
        let shard0 = dbs.create(MAIN_SERVER, "s0").await?;
        let shard1 = dbs
            .create(opts.shard1_server.as_deref().unwrap_or(MAIN_SERVER), "s1")
            .await?;
        let db = db_settings(&catalog_url);
        migrate_catalog(&db).await?;
        let catalog = Catalog::new(lazy_pool(&catalog_url, Role::App, &db)?);
        for (name, dsn) in [("shard-0", &shard0), ("shard-1", &shard1)] {
            migrate_shard(dsn, &db).await?;
            catalog
                .add_shard(
                    name,
                    dsn,
                    100,
                    &aries_tenants::audit::AuditActor {
                        actor: "test".into(),
                        ..Default::default()
                    },
                )
                .await?;
        }
        catalog.pool().close().await;
        let token = format!("test-{:x}", rand::random::<u128>());
        let mut settings = Settings {
            database: db.clone(),
            ..Default::default()
        };
        settings.http.bind = "127.0.0.1:0".into();
        settings.http.workers = 2;
        settings.auth.operator_token = Some(SecretString::from(token.clone()));
        settings.tenants.arbiters = 2;
        settings.shards.probe_interval_ms = 200;
        settings.shards.breaker_open_ms = 500;
        if let Some(idle) = opts.idle_timeout {
            settings.tenants.idle_timeout_ms = u64::try_from(idle.as_millis())?;
        }
        if let Some(limit) = opts.body_limit {
            settings.http.body_limit_bytes = limit;
        }
        settings.rate_limit = opts
            .rate_limit
            .unwrap_or(aries_http::settings::RateLimitSettings {
                enabled: false,
                ..Default::default()
            });
        settings.http.cors_allowed_origins = opts.cors_origins;
        if let Some(ms) = opts.report_deadline_ms {
            settings.shards.report_deadline_ms = ms;
        }
        settings.webhooks.allow_private_networks = !opts.refuse_private_webhooks;
        if let Some(cache) = opts.cache {
            settings.cache = cache;
        }
        if let Some(live) = opts.live {
            settings.live = live;
        }
        // Each test app has Redis keys of its own (sessions, rate-limit counters).
        settings.redis.key_prefix = format!("aries-test-{:x}", rand::random::<u64>());
        if let Some(url) = opts.redis_url {
            settings.redis.url = SecretString::from(url);
        }
        // Each test app has exchanges and queues of its own, which the broker deletes some time
        // after the test (x-expires).
        settings.rabbitmq.namespace = format!("aries-test-{:x}", rand::random::<u64>());
        settings.rabbitmq.queue_expires_ms = Some(10 * 60 * 1000);
        if let Some(url) = opts.rabbit_url {
            settings.rabbitmq.url = SecretString::from(url);
        }
        settings.events.relay_poll_ms = 200;
        settings.events.retry_base_ms = 50;
        settings.events.retry_max_ms = 400;
        settings.events.max_attempts = opts.max_attempts.unwrap_or(3);
        // A crashed move runner's lease expires quickly, so a test can resume its move.
        settings.moves.lease_ttl_ms = 3_000;
        // Tests resume dead runners' moves themselves (one test turns the watcher on).
        settings.moves.resume_orphans_ms = 0;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let app = Application::build_with_listener(settings.clone(), listener).await?;
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.server_handle();
        let app_state = app.state.clone();
        actix_rt::spawn(app.run_until_stopped());
        let settings_env = vec![
            (
                "ARIES__DATABASE__CATALOG_URL".to_owned(),
                catalog_url.clone(),
            ),
            ("ARIES__AUTH__OPERATOR_TOKEN".to_owned(), token.clone()),
            ("ARIES__LOG__LEVEL".to_owned(), "warn".to_owned()),
        ];
        Ok(TestApp {
            settings,
            base,
            token,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            app_state,
            db,
            shard_dsns: vec![shard0, shard1],
            settings_env,
            tenant_keys: std::sync::Mutex::new(std::collections::HashMap::new()),
            handle,
            _dbs: dbs,
        })
    }

    /// A second instance of the platform on the same databases and services (another process in
    /// production; another server in this test process here). Returns its base URL.
    pub async fn spawn_peer(&self) -> (String, actix_web::dev::ServerHandle) {
        self.spawn_peer_with(|_| {}).await
    }

    /// [`TestApp::spawn_peer`] with its settings changed by `change` first.
    pub async fn spawn_peer_with(
        &self,
        change: impl FnOnce(&mut Settings),
    ) -> (String, actix_web::dev::ServerHandle) {
        let mut settings = self.settings.clone();
        change(&mut settings);
        let listener = match TcpListener::bind("127.0.0.1:0") {
            Ok(l) => l,
            Err(e) => panic!("binding the peer: {e}"),
        };
        let app = match Application::build_with_listener(settings, listener).await {
            Ok(a) => a,
            Err(e) => panic!("building the peer: {e}"),
        };
        let base = format!("http://127.0.0.1:{}", app.port());
        let handle = app.server_handle();
        actix_rt::spawn(app.run_until_stopped());
        (base, handle)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The owner key `create_tenant` made for `slug`.
    pub fn tenant_key(&self, slug: &str) -> Option<String> {
        self.tenant_keys
            .lock()
            .ok()
            .and_then(|k| k.get(slug).cloned())
    }

    /// A request with the right credential: the tenant's owner key on a tenant URL whose tenant
    /// `create_tenant` made, the operator token elsewhere.
    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let tenant = path
            .strip_prefix("/v1/tenants/")
            .and_then(|rest| rest.split('/').next());
        let token = tenant
            .and_then(|t| self.tenant_key(t))
            .unwrap_or_else(|| self.token.clone());
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str) -> Response {
        self.req(Method::GET, path)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Response {
        self.req(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    /// Creates an active tenant and returns its JSON.
    pub async fn create_tenant(&self, slug: &str) -> Value {
        let res = self
            .post_json(
                "/v1/platform/tenants",
                &json!({"slug": slug, "name": format!("{slug} DME"), "plan": "standard"}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::CREATED, "creating tenant {slug}");
        let tenant: Value = res.json().await.unwrap_or_default();
        self.bootstrap_key(slug).await;
        tenant
    }

    /// Has the operator give `slug` an owner API key, kept for the tenant's URLs.
    pub async fn bootstrap_key(&self, slug: &str) {
        let key = self
            .post_json(
                &format!("/v1/platform/tenants/{slug}/api-keys"),
                &json!({"name": "test owner", "roles": ["owner"]}),
            )
            .await;
        assert_eq!(
            key.status(),
            StatusCode::CREATED,
            "bootstrap key for {slug}"
        );
        let key: Value = key.json().await.unwrap_or_default();
        if let (Ok(mut keys), Some(secret)) = (self.tenant_keys.lock(), key["secret"].as_str()) {
            keys.insert(slug.to_owned(), secret.to_owned());
        }
    }

    pub async fn create_location(&self, slug: &str, code: &str) -> Value {
        let res = self
            .post_json(
                &format!("/v1/tenants/{slug}/locations"),
                &location_body(code),
            )
            .await;
        assert_eq!(
            res.status(),
            StatusCode::CREATED,
            "creating location {code} for {slug}"
        );
        res.json().await.unwrap_or_default()
    }

    /// A pool on shard `i` as the application role.
    pub fn shard_pool(&self, i: usize) -> PgPool {
        match lazy_pool(&self.shard_dsns[i], Role::App, &self.db) {
            Ok(p) => p,
            Err(e) => panic!("shard pool: {e}"),
        }
    }

    /// Index (0 or 1) of the shard holding `tenant`, from the API's view of it.
    pub fn shard_index(tenant: &Value) -> usize {
        match tenant["shard"].as_str() {
            Some("shard-0") => 0,
            Some("shard-1") => 1,
            other => panic!("tenant has no shard: {other:?}"),
        }
    }

    pub fn tenant_id(tenant: &Value) -> TenantId {
        tenant["id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("tenant id in {tenant}"))
    }

    /// Runs the `aries` binary with this app's configuration.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_aries"))
            .args(args)
            .envs(
                self.settings_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .output()
            .unwrap_or_else(|e| panic!("running aries {args:?}: {e}"))
    }

    /// Runs the `aries` binary with this app's configuration plus `env`.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new(env!("CARGO_BIN_EXE_aries"))
            .args(args)
            .envs(
                self.settings_env
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .envs(env.iter().copied())
            .output()
            .unwrap_or_else(|e| panic!("running aries {args:?}: {e}"))
    }

    pub fn registry(&self) -> &ShardRegistry {
        self.app_state.directory.shards()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Stop accepting; the runtime is going away with the test anyway.
        drop(self.handle.stop(false));
    }
}

pub fn location_body(code: &str) -> Value {
    json!({
        "code": code,
        "name": format!("Branch {code}"),
        "address": {"line1": "1 Main St", "city": "Austin", "state": "TX", "postal_code": "78701"},
        "phone": "+1-512-555-0100",
        "npi": "1234567893"
    })
}

/// Asserts a problem+json response with this status and code, and returns its body.
pub async fn assert_problem(res: Response, status: u16, code: &str) -> Value {
    let got = res.status().as_u16();
    let ct = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(
        (got, body["code"].as_str().unwrap_or("")),
        (status, code),
        "body: {body}"
    );
    assert_eq!(ct, "application/problem+json");
    assert_eq!(body["type"], format!("/problems/{code}"));
    assert_eq!(body["status"], status);
    assert!(
        body["title"].is_string() && body["detail"].is_string() && body["instance"].is_string(),
        "{body}"
    );
    body
}

/// Polls `check` until it returns true or `limit` passes (a bound on waiting, not a timing assertion).
pub async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// When UTC midnight is less than `margin` away, waits until it has passed: a test that takes
/// "today" at its start and checks a per-day figure later ("orders today", the day's counters)
/// must not straddle a change of date (it did once, at 23:59:58).
pub async fn clear_of_midnight(margin: Duration) {
    let now = chrono::Utc::now();
    let Some(midnight) = now
        .date_naive()
        .succ_opt()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
    else {
        return;
    };
    let left = (midnight - now).to_std().unwrap_or_default();
    if left < margin {
        tokio::time::sleep(left + Duration::from_secs(1)).await;
    }
}

pub fn repo_root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// A private Redis on its own port (for tests that need Redis to fail).
pub struct RedisServer {
    pub port: u16,
    child: std::process::Child,
}

impl RedisServer {
    pub fn start() -> Result<RedisServer, Box<dyn std::error::Error>> {
        let port = free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(RedisServer { port, child })
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh (empty) Redis on the same port after [`Self::kill`], as after a restart.
    pub fn restart(&mut self) -> Result<(), Box<dyn std::error::Error>> {
        self.kill();
        self.child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()?;
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// POSTs `body` to `path` as the tenant, asserts 201 and returns the created resource.
pub async fn post_created(app: &TestApp, path: &str, body: &Value) -> Value {
    let res = app.post_json(path, body).await;
    let status = res.status();
    let created: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, 201, "POST {path}: {created}");
    created
}

/// The `(field, code)` of each entry of a problem's `errors`, in order.
pub fn field_errors(problem: &Value) -> Vec<(String, String)> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
            (text("field"), text("code"))
        })
        .collect()
}

/// Owned `(field, code)` pairs, to compare with [`field_errors`].
pub fn field_pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A private RabbitMQ node on its own port (for tests that restart the broker), started with the
/// machine's `rabbitmq-server` under a node name and directories of its own.
pub struct RabbitServer {
    pub port: u16,
    node: String,
    dist_port: u16,
    dir: PathBuf,
}

impl RabbitServer {
    pub fn start() -> Result<RabbitServer, Box<dyn std::error::Error>> {
        let port = free_port();
        let dist_port = free_port();
        let dir = PathBuf::from(format!("/tmp/aries-rmq-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("mnesia"))?;
        std::fs::create_dir_all(dir.join("log"))?;
        std::fs::write(dir.join("plugins"), "[].\n")?;
        let out = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .output()?;
        if !out.status.success() {
            return Err(format!("chown: {}", String::from_utf8_lossy(&out.stderr)).into());
        }
        let server = RabbitServer {
            port,
            node: format!("aries-t-{}-{port}@localhost", std::process::id()),
            dist_port,
            dir,
        };
        server.boot()?;
        Ok(server)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn listening(&self) -> bool {
        std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
    }

    /// Starts the node (again, on a restart: same name and directories, so durable queues and
    /// persistent messages are back) and waits until it accepts connections.
    pub fn boot(&self) -> Result<(), Box<dyn std::error::Error>> {
        let d = self.dir.display();
        Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia"))
            .env("RABBITMQ_LOG_BASE", format!("{d}/log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", format!("{d}/plugins"))
            .env("RABBITMQ_FEATURE_FLAGS_FILE", format!("{d}/feature_flags"))
            .env("RABBITMQ_CONFIG_FILE", format!("{d}/none"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(90) {
            if self.listening() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("rabbitmq node {} did not start", self.node).into())
    }

    /// Stops the node (connections are cut) and waits until its port is closed.
    pub fn stop(&self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-n", &self.node, "stop"])
            .output();
        let start = Instant::now();
        while self.listening() && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for RabbitServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
