//! `ShardActor`: one per shard. It owns the shard's pool, probes the database on a timer and
//! drives the shard's circuit breaker. Tenant actors get an `Arc<ShardHandle>` once, at activation,
//! and then use the pool and read the breaker directly, so a request never waits in a shard
//! actor's mailbox and a failing shard never slows another.

use crate::breaker::{BreakerState, CircuitBreaker, is_unavailability};
use actix::prelude::*;
use aries_shards::connect::{Role, lazy_pool};
use aries_shards::{Catalog, CatalogError, DatabaseSettings, ShardId, ShardRecord};
use dashmap::DashMap;
use sqlx::PgPool;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

/// How often each shard is probed.
pub const DEFAULT_PROBE_INTERVAL: Duration = Duration::from_secs(1);
/// A probe slower than this counts as a failure.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What tenant actors hold of a shard.
#[derive(Debug)]
pub struct ShardHandle {
    /// The catalog's key for the shard; placements name the shard by it.
    pub id: ShardId,
    /// Operator-facing name, for logs, metric labels and /health/ready.
    pub name: String,
    /// Host, port, database (no credentials).
    pub dsn: String,
    /// Connections as the app role.
    pub pool: PgPool,
    /// Checked by every request before it takes a connection (atomics, no lock); driven by the
    /// probe and by request outcomes.
    pub breaker: CircuitBreaker,
    /// The last probe's error, for /health/ready; `None` when the last probe succeeded.
    pub last_probe_error: Mutex<Option<String>>,
}

impl ShardHandle {
    /// Reports the outcome of a request so connection failures open the breaker.
    pub fn report<T>(&self, result: &Result<T, sqlx::Error>) {
        match result {
            Ok(_) => self.breaker.record_success(),
            Err(e) if is_unavailability(e) => self.breaker.record_failure(),
            Err(_) => {}
        }
    }

    pub fn health(&self) -> ShardHealth {
        let last_error = self
            .last_probe_error
            .lock()
            .map(|g| g.clone())
            .unwrap_or(None);
        ShardHealth {
            breaker: self.breaker.state(),
            last_error,
        }
    }
}

/// A shard's health as the instance sees it.
#[derive(Debug, Clone)]
pub struct ShardHealth {
    /// The breaker's state when sampled.
    pub breaker: BreakerState,
    /// The last probe's error; `None` when it succeeded or none has finished yet.
    pub last_error: Option<String>,
}

impl ShardHealth {
    pub fn is_up(&self) -> bool {
        self.breaker == BreakerState::Closed && self.last_error.is_none()
    }
}

// ---- messages ----

/// Run one health probe now (also sent by the actor's own timer).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Probe;

// ---- actor ----

pub struct ShardActor {
    /// Shared with tenant actors.
    handle: Arc<ShardHandle>,
    /// Period of the probe timer started in `started` (`[shards] probe_interval_ms`).
    probe_interval: Duration,
}

impl Actor for ShardActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.probe_interval, |_, ctx| ctx.notify(Probe));
        ctx.notify(Probe);
    }
}

impl Supervised for ShardActor {}

impl Handler<Probe> for ShardActor {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Probe, _: &mut Self::Context) -> Self::Result {
        let handle = self.handle.clone();
        Box::pin(async move {
            let outcome =
                tokio::time::timeout(PROBE_TIMEOUT, sqlx::query("select 1").execute(&handle.pool))
                    .await;
            let error = match outcome {
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            match &error {
                None => handle.breaker.record_success(),
                Some(e) => {
                    tracing::warn!(shard = %handle.name, error = %e, "shard probe failed");
                    handle.breaker.record_failure();
                }
            }
            metrics::gauge!("aries_shard_breaker_state", "shard" => handle.name.clone())
                .set(f64::from(handle.breaker.state() as u8));
            if let Ok(mut slot) = handle.last_probe_error.lock() {
                *slot = error;
            }
        })
    }
}

// ---- registry ----

/// A shard's actor (kept so the actor lives as long as the registry) and its shared handle.
type ShardEntry = (Addr<ShardActor>, Arc<ShardHandle>);

/// The shards this instance knows, with their actors. Filled from the catalog at start-up and
/// again whenever a tenant is placed on a shard it has not seen (added by another instance).
#[derive(Clone)]
pub struct ShardRegistry {
    /// The known shards with their actors, shared by every clone of the registry; a `DashMap`, so
    /// concurrent activations on different threads look shards up without a registry-wide lock.
    shards: Arc<DashMap<ShardId, ShardEntry>>,
    /// Where `sync` finds shards this instance has not seen yet (added by another instance).
    catalog: Catalog,
    /// Roles, passwords and pool sizes for each new shard's pool; an `Arc`, so clones share one copy.
    settings: Arc<DatabaseSettings>,
    /// Handed to each shard actor the registry starts.
    probe_interval: Duration,
    /// Handed to each new shard's breaker (`[shards] breaker_open_ms`).
    open_for: Duration,
    /// Shard actors live on the arbiter that built the registry (the system's main one), not on
    /// whichever HTTP worker happened to see a shard first.
    arbiter: ArbiterHandle,
}

impl ShardRegistry {
    /// Must be called inside a running actix system.
    pub fn new(
        catalog: Catalog,
        settings: Arc<DatabaseSettings>,
        probe_interval: Duration,
        open_for: Duration,
    ) -> Self {
        Self {
            shards: Arc::new(DashMap::new()),
            catalog,
            settings,
            probe_interval,
            open_for,
            arbiter: Arbiter::current(),
        }
    }

    /// Starts an actor for every catalog shard not yet known. Needs a running actix system.
    /// A `registered` shard is skipped: its server may not be up nor its schema there, it holds
    /// no tenants, and its activation syncs again.
    pub async fn sync(&self) -> Result<(), CatalogError> {
        for record in self.catalog.shards().await? {
            if record.status == aries_shards::ShardStatus::Registered {
                continue;
            }
            self.ensure(&record)?;
        }
        Ok(())
    }

    fn ensure(&self, record: &ShardRecord) -> Result<Arc<ShardHandle>, CatalogError> {
        if let Some(entry) = self.shards.get(&record.id) {
            return Ok(entry.1.clone());
        }
        let pool = lazy_pool(&record.dsn, Role::App, &self.settings)?;
        let handle = Arc::new(ShardHandle {
            id: record.id,
            name: record.name.clone(),
            dsn: record.dsn.clone(),
            pool,
            breaker: CircuitBreaker::new(crate::breaker::DEFAULT_FAILURE_THRESHOLD, self.open_for),
            last_probe_error: Mutex::new(None),
        });
        let entry = self.shards.entry(record.id).or_insert_with(|| {
            let actor_handle = handle.clone();
            let probe_interval = self.probe_interval;
            let addr = Supervisor::start_in_arbiter(&self.arbiter, move |_| ShardActor {
                handle: actor_handle,
                probe_interval,
            });
            (addr, handle)
        });
        Ok(entry.1.clone())
    }

    /// The shard's handle, looking it up in the catalog if this instance has not seen it yet.
    pub async fn get(&self, id: ShardId) -> Result<Arc<ShardHandle>, CatalogError> {
        if let Some(entry) = self.shards.get(&id) {
            return Ok(entry.1.clone());
        }
        self.sync().await?;
        self.shards
            .get(&id)
            .map(|e| e.1.clone())
            .ok_or_else(|| CatalogError::ShardNotFound(id.to_string()))
    }

    /// Every known shard's handle, by name.
    pub fn handles(&self) -> Vec<Arc<ShardHandle>> {
        let mut all: Vec<_> = self.shards.iter().map(|e| e.1.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn settings(&self) -> &DatabaseSettings {
        &self.settings
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// Publishes pool gauges (called when /metrics is scraped).
    pub fn record_pool_metrics(&self) {
        for h in self.handles() {
            let size = f64::from(h.pool.size());
            let idle = h.pool.num_idle() as f64;
            metrics::gauge!("aries_shard_pool_connections", "shard" => h.name.clone(), "state" => "idle").set(idle);
            metrics::gauge!("aries_shard_pool_connections", "shard" => h.name.clone(), "state" => "in_use")
                .set(size - idle);
            metrics::gauge!("aries_shard_breaker_state", "shard" => h.name.clone())
                .set(f64::from(h.breaker.state() as u8));
        }
    }
}
