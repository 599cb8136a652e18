//! The response cache of tenant GETs: cache-aside, two tiers, tenant-scoped, invalidated by the
//! tenant's writes.
//!
//! ## Tiers
//! - **L1, per instance**: a bounded in-memory map (tenant → request key → response body and
//!   ETag). An entry is served for at most `local_ttl` (default 1 s) after the data in it was
//!   read. L1 is the only place a stale answer can come from on *another* instance: a write
//!   through instance A clears A's L1 at once, and B's L1 when A's event reaches B's own event
//!   queue (normally milliseconds; its consumer calls [`ResponseCache::invalidate_local`]). So
//!   **`local_ttl` is the documented upper bound of cross-instance staleness**. Bounded: at most
//!   `local_max_entries` in total and a quarter of that (at least one) per tenant; a full tenant
//!   loses its oldest entry, a full cache loses another tenant's entries.
//! - **L2, Redis** (keys under `<prefix>:cache:{<tenant_id>}:…`; the braces are a Redis Cluster
//!   hash tag, so one Lua script can touch a tenant's keys on any node):
//!   - `…:gen`: the tenant's generation counter. It starts at Redis's clock in microseconds (so
//!     a counter lost with a Redis restart or an eviction never comes back to an old value) and
//!     every write `INCR`s it.
//!   - `…:e:<request key>`: `<generation>\n<etag>\n<body>`, with TTL `ttl` (default 60 s). An
//!     entry counts only while its generation is the current one.
//!   - `…:lock:<request key>`: the fill lock (below).
//!
//!   A read is one round trip (a Lua script returning the generation and the entry if it is of
//!   that generation). A fill is a Lua compare-and-set: stored only if the generation is still
//!   the one read *before* the database was, so a reader that raced a write never stores the old
//!   answer.
//!
//! ## Invalidation
//! [`ResponseCache::invalidate`] clears the tenant's L1 and `INCR`s its generation; the tenant
//! actor awaits it after committing a write and before answering, so no L2 read on any instance
//! after that answer sees an older entry. A fill in flight when the invalidation happens stores
//! nothing: L1 fills check a per-tenant local epoch the same way L2 fills check the generation.
//! [`ResponseCache::invalidate_local`] clears L1 only (another instance's write, learnt from the
//! instance's event queue); [`ResponseCache::clear_local`] clears all of L1 (the instance may have
//! missed events, e.g. its queue was re-created).
//!
//! ## Stampedes
//! Concurrent misses of one key on one instance share one fill (single flight), joined only while
//! the fill is younger than `local_ttl` (so a shared answer is never older than an L1 hit could
//! be) and only within one local epoch (so a request after a local write never gets a fill that
//! started before it). Across instances, the instance whose L2 read missed takes a short fill
//! lock (`SET NX PX`); the others poll L2 for at most [`LOCK_WAIT`] before they read the database
//! themselves.
//!
//! ## Redis down or slow
//! Every Redis call has [`REDIS_TIMEOUT`]. After a failure the cache bypasses Redis for
//! [`BACKOFF`] instead of paying the timeout on every request, and **L1 is bypassed too** (neither
//! read nor filled): an instance that cannot reach Redis cannot publish its writes' generations,
//! and serving from the database keeps the one freshness rule simple. Invalidations that could not
//! reach Redis are remembered and replayed before the instance uses L2 again. (An instance cut off
//! from a Redis the others still reach cannot tell them about its writes: their L2 entries may then
//! be stale for up to `ttl`. A Redis restart loses the entries with the counters, which is safe.)
//!
//! ## Metrics
//! `aries_cache_requests_total{tier="local|redis", outcome="hit|miss|bypass|error"}`,
//! `aries_cache_fills_total{outcome="stored|raced|error|local"}` (each database read a miss caused,
//! by what became of its L2 write), `aries_cache_invalidations_total`.

use crate::links::RedisLink;
use aries_tenants::TenantId;
use dashmap::DashMap;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

/// A Redis call slower than this counts as Redis being down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the cache leaves Redis alone after a failed call.
pub const BACKOFF: Duration = Duration::from_secs(1);
/// How long a fill lock lives if its holder never releases it.
const LOCK_TTL: Duration = Duration::from_millis(500);
/// How long a request that found another instance filling waits for its entry, at most.
pub const LOCK_WAIT: Duration = Duration::from_millis(200);
/// Pause between two looks at L2 while waiting for another instance's fill.
const LOCK_POLL: Duration = Duration::from_millis(20);

/// KEYS: generation, entry. Returns {generation} or {generation, entry}.
const READ: &str = r"
local g = redis.call('GET', KEYS[1])
if not g then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])), 'NX')
  g = redis.call('GET', KEYS[1])
end
local v = redis.call('GET', KEYS[2])
if v and string.sub(v, 1, #g + 1) == g .. '\n' then
  return {g, v}
end
return {g}
";

/// KEYS: generation, entry. ARGV: the generation read before the database, the entry, TTL ms.
const FILL: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// KEYS: generation. Moves it on (starting it from the clock if it is missing).
const BUMP: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  local t = redis.call('TIME')
  redis.call('SET', KEYS[1], t[1] .. string.format('%06d', tonumber(t[2])))
end
return redis.call('INCR', KEYS[1])
";

/// KEYS: lock. ARGV: token. Deletes the lock only while it is ours.
const UNLOCK: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// How the cache is tuned (`[cache]` in the settings).
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Off: every cached route answers from the database (`X-Cache: bypass`).
    pub enabled: bool,
    /// Lifetime of an L2 (Redis) entry.
    pub ttl: Duration,
    /// Lifetime of an L1 (in-memory) entry: the bound of cross-instance staleness. Zero turns
    /// L1 (and single flight) off.
    pub local_ttl: Duration,
    /// Most L1 entries on this instance.
    pub local_max_entries: usize,
    /// Start of every Redis key (`redis.key_prefix`).
    pub prefix: String,
}

/// A cached response: what a GET answers with status 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The `ETag` header, if the resource has one (lists have none).
    pub etag: Option<String>,
    /// The JSON body, exactly as first served.
    pub body: Vec<u8>,
}

impl Entry {
    fn encode(&self, generation: &str) -> Vec<u8> {
        let etag = self.etag.as_deref().unwrap_or("");
        let mut out = Vec::with_capacity(generation.len() + etag.len() + self.body.len() + 2);
        out.extend_from_slice(generation.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(etag.as_bytes());
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out
    }

    fn decode(raw: &[u8]) -> Option<Entry> {
        let mut parts = raw.splitn(3, |b| *b == b'\n');
        let _generation = parts.next()?;
        let etag = std::str::from_utf8(parts.next()?).ok()?;
        let body = parts.next()?.to_vec();
        Some(Entry {
            etag: (!etag.is_empty()).then(|| etag.to_owned()),
            body,
        })
    }
}

/// Where an answer came from, for the `X-Cache` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From L1, L2, or a concurrent request's fill: the database was not read for it.
    Hit,
    /// The operation ran for this request.
    Miss,
    /// The cache was not used (off, or Redis down): the operation ran and its answer was not kept.
    Bypass,
}

impl Outcome {
    /// The `X-Cache` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Bypass => "bypass",
        }
    }
}

/// Counters for tests and diagnostics (the same events as the metrics, per cache).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Database reads caused by misses (the operation ran).
    pub fills: u64,
    /// L2 lookups made.
    pub redis_lookups: u64,
    /// L1 hits.
    pub local_hits: u64,
    /// L1 epochs moved on (a tenant's by a write or an event, or all of them by a reset): fills
    /// in flight across one are not shared with requests after it.
    pub local_epochs: u64,
    /// Fills in flight now (single flight); zero when the instance is idle.
    pub in_flight: usize,
    /// Redis calls attempted (every kind); they pause during a back-off.
    pub redis_calls: u64,
}

/// One tenant's L1. Kept (emptied) after an invalidation, for its epoch: one small struct per
/// tenant this instance has served, whose entries are bounded by `local_max_entries`.
#[derive(Default)]
struct LocalTenant {
    /// Moved on by every invalidation; a fill stores into L1 only if it has not moved since the
    /// fill started, and in-flight fills are shared only within one epoch.
    epoch: u64,
    /// Request key → (when its data was read, the response).
    entries: HashMap<String, (Instant, Arc<Entry>)>,
}

/// A fill in flight on this instance, shared by the concurrent misses of its key.
struct Flight {
    /// When it started: joined only while younger than `local_ttl`.
    started: Instant,
    /// Set once by whichever request's load succeeds first.
    cell: OnceCell<Arc<Entry>>,
}

/// (tenant, local epoch, request key) of a fill in flight.
type FlightKey = (TenantId, u64, String);

/// Removes a flight from the map when the last request that joined it is done with it (and no
/// newer flight replaced it meanwhile). Joining and leaving both hold the map's lock of the key,
/// so the count of holders cannot change under the check.
struct LeaveFlight<'a> {
    /// The map of fills in flight.
    flights: &'a DashMap<FlightKey, Arc<Flight>>,
    /// Where the flight is.
    key: FlightKey,
    /// The flight this request joined.
    flight: Arc<Flight>,
}

impl Drop for LeaveFlight<'_> {
    fn drop(&mut self) {
        self.flights.remove_if(&self.key, |_, f| {
            // The map's reference and this request's: nobody else is on it.
            Arc::ptr_eq(f, &self.flight) && Arc::strong_count(f) <= 2
        });
    }
}

struct Inner {
    /// The tuning.
    config: CacheConfig,
    /// Where L2 lives.
    redis: RedisLink,
    /// [`READ`]; the redis crate caches its SHA.
    read: redis::Script,
    /// [`FILL`].
    fill: redis::Script,
    /// [`BUMP`].
    bump: redis::Script,
    /// [`UNLOCK`].
    unlock: redis::Script,
    /// L1. A `DashMap` so tenants on different shards of the map never wait for each other.
    local: DashMap<TenantId, LocalTenant>,
    /// Entries in L1 over all tenants (kept with `local` under its locks).
    local_total: AtomicUsize,
    /// Fills in flight (single flight).
    flights: DashMap<FlightKey, Arc<Flight>>,
    /// Until when Redis is left alone after a failure. A std `Mutex`: held for a read or a write
    /// of an `Option<Instant>`, never across an await.
    down_until: Mutex<Option<Instant>>,
    /// Tenants whose invalidation did not reach Redis; replayed before L2 is used again.
    pending: Mutex<HashSet<TenantId>>,
    /// See [`CacheStats`].
    fills: AtomicU64,
    /// See [`CacheStats`].
    redis_lookups: AtomicU64,
    /// See [`CacheStats`].
    local_hits: AtomicU64,
    /// See [`CacheStats::local_epochs`].
    local_epochs: AtomicU64,
    /// See [`CacheStats`].
    redis_calls: AtomicU64,
}

/// The two-tier response cache. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct ResponseCache {
    /// One `Arc`: the app state, the directory and every tenant actor hold a clone.
    inner: Arc<Inner>,
}

fn request_metric(tier: &'static str, outcome: &'static str) {
    metrics::counter!("aries_cache_requests_total", "tier" => tier, "outcome" => outcome)
        .increment(1);
}

fn fill_metric(outcome: &'static str) {
    metrics::counter!("aries_cache_fills_total", "outcome" => outcome).increment(1);
}

/// A Redis call with [`REDIS_TIMEOUT`], its failure as text.
async fn timed<T>(f: impl Future<Output = redis::RedisResult<T>>) -> Result<T, String> {
    match tokio::time::timeout(REDIS_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
    }
}

/// What an L2 read found: the generation, and the entry if it is of that generation.
type L2Read = (String, Option<Entry>);

impl ResponseCache {
    pub fn new(redis: RedisLink, config: CacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                redis,
                read: redis::Script::new(READ),
                fill: redis::Script::new(FILL),
                bump: redis::Script::new(BUMP),
                unlock: redis::Script::new(UNLOCK),
                local: DashMap::new(),
                local_total: AtomicUsize::new(0),
                flights: DashMap::new(),
                down_until: Mutex::new(None),
                pending: Mutex::new(HashSet::new()),
                fills: AtomicU64::new(0),
                redis_lookups: AtomicU64::new(0),
                local_hits: AtomicU64::new(0),
                local_epochs: AtomicU64::new(0),
                redis_calls: AtomicU64::new(0),
            }),
        }
    }

    /// Whether the cache is on.
    pub fn enabled(&self) -> bool {
        self.inner.config.enabled
    }

    /// Counters since start.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            fills: self.inner.fills.load(Ordering::Relaxed),
            redis_lookups: self.inner.redis_lookups.load(Ordering::Relaxed),
            local_hits: self.inner.local_hits.load(Ordering::Relaxed),
            local_epochs: self.inner.local_epochs.load(Ordering::Relaxed),
            in_flight: self.inner.flights.len(),
            redis_calls: self.inner.redis_calls.load(Ordering::Relaxed),
        }
    }

    /// For /health/ready: `disabled`, `up`, or `bypassing` (Redis failed a moment ago, or an
    /// invalidation has yet to reach it; reads go to the database meanwhile).
    pub fn health(&self) -> &'static str {
        let pending = self.inner.pending.lock().map_or(true, |p| !p.is_empty());
        if !self.enabled() {
            "disabled"
        } else if self.in_backoff() || pending {
            "bypassing"
        } else {
            "up"
        }
    }

    fn key(&self, tenant: TenantId, what: &str) -> String {
        format!("{}:cache:{{{tenant}}}:{what}", self.inner.config.prefix)
    }

    // ---- Redis health ----

    fn in_backoff(&self) -> bool {
        self.inner
            .down_until
            .lock()
            .map(|g| g.is_some_and(|until| Instant::now() < until))
            .unwrap_or(false)
    }

    fn redis_failed(&self, what: &str, error: &str) {
        if let Ok(mut g) = self.inner.down_until.lock() {
            if g.is_none_or(|until| Instant::now() >= until) {
                tracing::warn!(%error, what, "response cache cannot reach Redis; bypassing it for {BACKOFF:?}");
            }
            *g = Some(Instant::now() + BACKOFF);
        }
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, String> {
        self.inner.redis_calls.fetch_add(1, Ordering::Relaxed);
        self.inner
            .redis
            .connection()
            .await
            .ok_or_else(|| "not connected".to_owned())
    }

    /// Whether L2 may be used now: not in back-off, and every invalidation that failed earlier
    /// has since reached Redis.
    async fn redis_usable(&self) -> bool {
        if self.in_backoff() {
            return false;
        }
        let pending: Vec<TenantId> = match self.inner.pending.lock() {
            Ok(p) if p.is_empty() => return true,
            Ok(p) => p.iter().copied().collect(),
            Err(_) => return false,
        };
        for tenant in pending {
            if let Err(e) = self.bump(tenant).await {
                self.redis_failed("replaying an invalidation", &e);
                return false;
            }
            if let Ok(mut p) = self.inner.pending.lock() {
                p.remove(&tenant);
            }
        }
        true
    }

    async fn bump(&self, tenant: TenantId) -> Result<i64, String> {
        let mut conn = self.connection().await?;
        let mut call = self.inner.bump.prepare_invoke();
        call.key(self.key(tenant, "gen"));
        timed(call.invoke_async::<i64>(&mut conn)).await
    }

    async fn l2_read(&self, tenant: TenantId, key: &str) -> Result<L2Read, String> {
        self.inner.redis_lookups.fetch_add(1, Ordering::Relaxed);
        let mut conn = self.connection().await?;
        let mut call = self.inner.read.prepare_invoke();
        call.key(self.key(tenant, "gen"))
            .key(self.key(tenant, &format!("e:{key}")));
        let mut found = timed(call.invoke_async::<Vec<Vec<u8>>>(&mut conn)).await?;
        let raw = (found.len() == 2).then(|| found.pop()).flatten();
        let generation = found
            .pop()
            .and_then(|g| String::from_utf8(g).ok())
            .ok_or_else(|| "the cache read script answered without a generation".to_owned())?;
        Ok((generation, raw.as_deref().and_then(Entry::decode)))
    }

    async fn l2_fill(
        &self,
        tenant: TenantId,
        key: &str,
        generation: &str,
        entry: &Entry,
    ) -> Result<bool, String> {
        let mut conn = self.connection().await?;
        let mut call = self.inner.fill.prepare_invoke();
        let ttl_ms = u64::try_from(self.inner.config.ttl.as_millis()).unwrap_or(u64::MAX);
        call.key(self.key(tenant, "gen"))
            .key(self.key(tenant, &format!("e:{key}")))
            .arg(generation)
            .arg(entry.encode(generation))
            .arg(ttl_ms.max(1));
        timed(call.invoke_async::<i64>(&mut conn))
            .await
            .map(|n| n == 1)
    }

    /// Takes the fill lock of `key`; `Ok(Some(token))` if taken, `Ok(None)` if another holds it.
    async fn lock(&self, tenant: TenantId, key: &str) -> Result<Option<String>, String> {
        let mut conn = self.connection().await?;
        let token = format!("{:x}", rand_token());
        let ms = u64::try_from(LOCK_TTL.as_millis()).unwrap_or(500);
        let mut set = redis::cmd("SET");
        set.arg(self.key(tenant, &format!("lock:{key}")))
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ms);
        let taken = timed(set.query_async::<Option<String>>(&mut conn)).await?;
        Ok(taken.map(|_| token))
    }

    async fn unlock(&self, tenant: TenantId, key: &str, token: &str) {
        let Ok(mut conn) = self.connection().await else {
            return;
        };
        let mut call = self.inner.unlock.prepare_invoke();
        call.key(self.key(tenant, &format!("lock:{key}")))
            .arg(token);
        // If this fails the lock expires after LOCK_TTL; the answer is already in hand.
        let _ = timed(call.invoke_async::<i64>(&mut conn)).await;
    }

    // ---- L1 ----

    fn local_enabled(&self) -> bool {
        !self.inner.config.local_ttl.is_zero() && self.inner.config.local_max_entries > 0
    }

    fn local_epoch(&self, tenant: TenantId) -> u64 {
        self.inner.local.get(&tenant).map_or(0, |t| t.epoch)
    }

    fn local_get(&self, tenant: TenantId, key: &str) -> Option<Arc<Entry>> {
        if !self.local_enabled() {
            return None;
        }
        let t = self.inner.local.get(&tenant)?;
        let (at, entry) = t.entries.get(key)?;
        (at.elapsed() < self.inner.config.local_ttl).then(|| entry.clone())
    }

    /// Stores into L1 if the tenant's epoch is still `epoch` (no invalidation since the data was
    /// read at `read_at`).
    fn local_put(
        &self,
        tenant: TenantId,
        epoch: u64,
        key: &str,
        read_at: Instant,
        entry: Arc<Entry>,
    ) {
        if !self.local_enabled() || read_at.elapsed() >= self.inner.config.local_ttl {
            return;
        }
        let max_total = self.inner.config.local_max_entries;
        let max_tenant = (max_total / 4).max(1);
        if self.inner.local_total.load(Ordering::Relaxed) >= max_total {
            self.evict_other_tenant(tenant);
        }
        let mut t = self.inner.local.entry(tenant).or_default();
        if t.epoch != epoch {
            return;
        }
        let ttl = self.inner.config.local_ttl;
        if t.entries.len() >= max_tenant && !t.entries.contains_key(key) {
            let before = t.entries.len();
            t.entries.retain(|_, (at, _)| at.elapsed() < ttl);
            if t.entries.len() >= max_tenant {
                let oldest = t
                    .entries
                    .iter()
                    .min_by_key(|(_, (at, _))| *at)
                    .map(|(k, _)| k.clone());
                if let Some(k) = oldest {
                    t.entries.remove(&k);
                }
            }
            self.inner
                .local_total
                .fetch_sub(before - t.entries.len(), Ordering::Relaxed);
        }
        if t.entries.insert(key.to_owned(), (read_at, entry)).is_none() {
            self.inner.local_total.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Makes room: clears the entries of some tenant other than `keep` (or of `keep` if it is the
    /// only one holding any).
    fn evict_other_tenant(&self, keep: TenantId) {
        let victim = self
            .inner
            .local
            .iter()
            .find(|t| *t.key() != keep && !t.entries.is_empty())
            .map(|t| *t.key())
            .unwrap_or(keep);
        if let Some(mut t) = self.inner.local.get_mut(&victim) {
            let n = t.entries.len();
            t.entries.clear();
            self.inner.local_total.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// Clears the tenant's L1 entries and moves its epoch on (fills in flight store nothing).
    pub fn invalidate_local(&self, tenant: TenantId) {
        let mut t = self.inner.local.entry(tenant).or_default();
        t.epoch += 1;
        self.inner.local_epochs.fetch_add(1, Ordering::Relaxed);
        let n = t.entries.len();
        t.entries.clear();
        self.inner.local_total.fetch_sub(n, Ordering::Relaxed);
    }

    /// Clears all of L1 (after this instance may have missed other instances' events).
    pub fn clear_local(&self) {
        for mut t in self.inner.local.iter_mut() {
            t.epoch += 1;
            self.inner.local_epochs.fetch_add(1, Ordering::Relaxed);
            let n = t.entries.len();
            t.entries.clear();
            self.inner.local_total.fetch_sub(n, Ordering::Relaxed);
        }
    }

    /// After a committed write of `tenant`: clears its L1 and moves its generation on in Redis,
    /// so no L2 entry older than the write is served anywhere. Never fails: if Redis cannot be
    /// reached, the invalidation is kept and replayed before this instance uses L2 again (and it
    /// bypasses the cache until then).
    #[tracing::instrument(name = "cache.invalidate", skip(self), fields(tenant_id = %tenant))]
    pub async fn invalidate(&self, tenant: TenantId) {
        if !self.enabled() {
            return;
        }
        metrics::counter!("aries_cache_invalidations_total").increment(1);
        self.invalidate_local(tenant);
        let attempt = if self.in_backoff() {
            Err("in back-off".to_owned())
        } else {
            self.bump(tenant).await
        };
        if let Err(e) = attempt {
            if let Ok(mut p) = self.inner.pending.lock() {
                p.insert(tenant);
            }
            self.redis_failed("invalidating", &e);
        }
    }

    // ---- the read path ----

    /// The cached answer to `key` of `tenant`, or `load`'s (stored for the next callers). `key`
    /// identifies the request (path, normalised query, and anything else the answer depends on);
    /// the caller has already checked the credential. `load`'s error is returned as is, and
    /// nothing is stored then.
    pub async fn get_or_load<E, F, Fut>(
        &self,
        tenant: TenantId,
        key: &str,
        load: F,
    ) -> Result<(Arc<Entry>, Outcome), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry, E>>,
    {
        if !self.enabled() || !self.redis_usable().await {
            request_metric("local", "bypass");
            request_metric("redis", "bypass");
            return Ok((Arc::new(load().await?), Outcome::Bypass));
        }
        if let Some(entry) = self.local_get(tenant, key) {
            request_metric("local", "hit");
            self.inner.local_hits.fetch_add(1, Ordering::Relaxed);
            return Ok((entry, Outcome::Hit));
        }
        request_metric("local", "miss");
        let epoch = self.local_epoch(tenant);
        if !self.local_enabled() {
            let (entry, outcome) = self.through_l2(tenant, key, epoch, load).await?;
            return Ok((entry, outcome));
        }
        let flight_key: FlightKey = (tenant, epoch, key.to_owned());
        let flight = {
            let ttl = self.inner.config.local_ttl;
            let mut slot = self
                .inner
                .flights
                .entry(flight_key.clone())
                .or_insert_with(|| {
                    Arc::new(Flight {
                        started: Instant::now(),
                        cell: OnceCell::new(),
                    })
                });
            if slot.started.elapsed() >= ttl {
                // Too old to share: its answer could be older than an L1 entry may be.
                *slot = Arc::new(Flight {
                    started: Instant::now(),
                    cell: OnceCell::new(),
                });
            }
            slot.clone()
        };
        // Leaves the map when the fill is over, or when every request waiting on it was dropped
        // (a client went away), so abandoned keys do not accumulate.
        let leave = LeaveFlight {
            flights: &self.inner.flights,
            key: flight_key,
            flight,
        };
        let mut mine = None;
        let result = leave
            .flight
            .cell
            .get_or_try_init(|| async {
                let (entry, outcome) = self.through_l2(tenant, key, epoch, load).await?;
                mine = Some(outcome);
                Ok(entry)
            })
            .await
            .cloned();
        Ok((result?, mine.unwrap_or(Outcome::Hit)))
    }

    /// An L1 miss: L2, else the fill lock and the database.
    async fn through_l2<E, F, Fut>(
        &self,
        tenant: TenantId,
        key: &str,
        epoch: u64,
        load: F,
    ) -> Result<(Arc<Entry>, Outcome), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Entry, E>>,
    {
        let started = Instant::now();
        let generation = match self.l2_read(tenant, key).await {
            Ok((_, Some(entry))) => {
                request_metric("redis", "hit");
                let entry = Arc::new(entry);
                self.local_put(tenant, epoch, key, started, entry.clone());
                return Ok((entry, Outcome::Hit));
            }
            Ok((generation, None)) => {
                request_metric("redis", "miss");
                generation
            }
            Err(e) => {
                // Redis failed: answer from the database, store nothing (the cache was bypassed).
                request_metric("redis", "error");
                self.redis_failed("reading", &e);
                let entry = Arc::new(load().await?);
                return Ok((entry, Outcome::Bypass));
            }
        };
        let (generation, lock) = match self.lock(tenant, key).await {
            Ok(Some(token)) => (generation, Some(token)),
            Ok(None) => match self.wait_for_fill(tenant, key, epoch, started).await {
                Ok(hit) => return Ok((hit, Outcome::Hit)),
                Err(Some(latest)) => (latest, None),
                Err(None) => (generation, None),
            },
            Err(e) => {
                self.redis_failed("locking", &e);
                (generation, None)
            }
        };
        // The generation was read before the database is: a write committed meanwhile moves it
        // on, and the fill below then stores nothing.
        let read_at = Instant::now();
        let loaded = load().await;
        let entry = match loaded {
            Ok(entry) => Arc::new(entry),
            Err(e) => {
                if let Some(token) = &lock {
                    self.unlock(tenant, key, token).await;
                }
                return Err(e);
            }
        };
        self.inner.fills.fetch_add(1, Ordering::Relaxed);
        match self.l2_fill(tenant, key, &generation, &entry).await {
            Ok(true) => {
                fill_metric("stored");
                self.local_put(tenant, epoch, key, read_at, entry.clone());
            }
            Ok(false) => fill_metric("raced"),
            Err(e) => {
                fill_metric("error");
                self.redis_failed("filling", &e);
            }
        }
        if let Some(token) = &lock {
            self.unlock(tenant, key, token).await;
        }
        Ok((entry, Outcome::Miss))
    }

    /// Another instance holds the fill lock: polls L2 for up to [`LOCK_WAIT`]. `Err` carries the
    /// generation last read (to fill with after reading the database), `None` if Redis failed.
    async fn wait_for_fill(
        &self,
        tenant: TenantId,
        key: &str,
        epoch: u64,
        started: Instant,
    ) -> Result<Arc<Entry>, Option<String>> {
        let deadline = Instant::now() + LOCK_WAIT;
        let mut latest = None;
        while Instant::now() < deadline {
            tokio::time::sleep(LOCK_POLL).await;
            match self.l2_read(tenant, key).await {
                Ok((_, Some(entry))) => {
                    request_metric("redis", "hit");
                    let entry = Arc::new(entry);
                    self.local_put(tenant, epoch, key, started, entry.clone());
                    return Ok(entry);
                }
                Ok((generation, None)) => latest = Some(generation),
                Err(e) => {
                    request_metric("redis", "error");
                    self.redis_failed("reading", &e);
                    return Err(None);
                }
            }
        }
        request_metric("redis", "miss");
        Err(latest)
    }
}

/// A lock token: unique enough that one holder never deletes another's lock.
fn rand_token() -> u128 {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = u128::from(NEXT.fetch_add(1, Ordering::Relaxed));
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    (t << 32) ^ n ^ (u128::from(std::process::id()) << 96)
}

/// Other instances' writes reach this instance's memory tier through the instance's own event
/// queue: every event of a tenant drops the tenant's local entries (the writer's own instance
/// dropped them already, and moved the Redis generation, before answering). When the queue is
/// (re)created, events may have been missed, so the whole tier goes.
impl crate::events::instance::InstanceSink for ResponseCache {
    fn on_event(&self, event: &crate::events::Envelope) {
        self.invalidate_local(event.tenant_id);
    }

    fn on_reset(&self) {
        self.clear_local();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_only(max: usize) -> ResponseCache {
        // Nothing listens there: these tests touch only the in-memory tier.
        ResponseCache::new(
            RedisLink::start("redis://127.0.0.1:1".into()),
            CacheConfig {
                enabled: true,
                ttl: Duration::from_secs(60),
                local_ttl: Duration::from_secs(60),
                local_max_entries: max,
                prefix: "test".into(),
            },
        )
    }

    fn entry(s: &str) -> Arc<Entry> {
        Arc::new(Entry {
            etag: None,
            body: s.as_bytes().to_vec(),
        })
    }

    fn held(cache: &ResponseCache) -> usize {
        cache.inner.local.iter().map(|t| t.entries.len()).sum()
    }

    #[tokio::test]
    async fn memory_is_bounded_per_tenant_and_in_total() {
        let cache = memory_only(8);
        let t = TenantId::new();
        for i in 0..5 {
            cache.local_put(t, 0, &format!("k{i}"), Instant::now(), entry("x"));
        }
        // A tenant holds a quarter of the total; the oldest went first.
        assert!(cache.local_get(t, "k4").is_some() && cache.local_get(t, "k3").is_some());
        assert!(cache.local_get(t, "k0").is_none());
        assert_eq!(held(&cache), 2);
        for _ in 0..10 {
            let other = TenantId::new();
            for i in 0..2 {
                cache.local_put(other, 0, &format!("k{i}"), Instant::now(), entry("y"));
            }
        }
        assert!(held(&cache) <= 8, "{} entries held", held(&cache));
        assert_eq!(
            cache.inner.local_total.load(Ordering::Relaxed),
            held(&cache)
        );
        cache.clear_local();
        assert_eq!(
            (
                held(&cache),
                cache.inner.local_total.load(Ordering::Relaxed)
            ),
            (0, 0)
        );
    }

    #[tokio::test]
    async fn a_fill_older_than_an_invalidation_is_not_kept() {
        let cache = memory_only(8);
        let t = TenantId::new();
        let epoch = cache.local_epoch(t);
        cache.invalidate_local(t);
        cache.local_put(t, epoch, "k", Instant::now(), entry("old"));
        assert!(cache.local_get(t, "k").is_none());
        cache.local_put(t, cache.local_epoch(t), "k", Instant::now(), entry("new"));
        assert_eq!(
            cache.local_get(t, "k").map(|e| e.body.clone()),
            Some(b"new".to_vec())
        );
        // Data read longer than local_ttl ago is not kept either.
        let stale = Instant::now().checked_sub(Duration::from_secs(61));
        if let Some(at) = stale {
            cache.local_put(t, cache.local_epoch(t), "k2", at, entry("old"));
            assert!(cache.local_get(t, "k2").is_none());
        }
    }

    #[test]
    fn entries_round_trip() {
        let e = Entry {
            etag: Some("\"3\"".into()),
            body: b"{\"a\":\n1}".to_vec(),
        };
        let raw = e.encode("1700000000000001");
        assert!(raw.starts_with(b"1700000000000001\n"));
        assert_eq!(Entry::decode(&raw), Some(e));
        let list = Entry {
            etag: None,
            body: b"{\"data\":[]}".to_vec(),
        };
        assert_eq!(Entry::decode(&list.encode("7")), Some(list));
    }
}
