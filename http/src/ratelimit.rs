//! Rate limits in Redis: GCRA (the generic cell rate algorithm) in one Lua script, so a check is
//! atomic across instances. Two limits apply to every tenant request: one per credential, one per
//! tenant sized by its plan; a request is allowed only if both allow it, and only then does it count.
//!
//! **Leases.** A Redis round trip per request would cost more than the rest of a cached read, so
//! an instance takes cells from both buckets in batches (a *lease*, at most `lease_max` cells and at
//! most what the tighter limit earns in `lease_ms / 2`) and hands them out from memory; it takes the
//! next batch in the background when half of the current one is used, and drops what is left
//! `lease_ms` after the last grant. A cell is counted in Redis before any instance serves it, so the
//! limits are never exceeded across instances; an instance that stops or idles merely wastes the
//! rest of its lease, at most one and a half batches (callers are then limited a little early, never
//! late). At low rates (the defaults: 50 a second per credential) a lease is one or two cells and the
//! limiter behaves as a per-request check.
//!
//! **One ask at a time.** Per (tenant, credential) and instance, at most one request to Redis is in
//! flight: a request that finds the lease empty while another asks waits for that answer and is
//! served from it. Were each of them to lease a whole batch, concurrent callers would take several
//! batches for a few requests and a burst well inside the limit would be refused.
//! Once Redis refuses a credential, the instance refuses it locally until the `Retry-After` it was
//! given has passed.
//!
//! When Redis cannot answer within [`REDIS_TIMEOUT`], the configured policy decides
//! (`rate_limit.when_redis_down`: `allow`, the default, keeps serving; `deny` answers 503), and
//! `/health/ready` reports the limiter as degraded. Cells already leased are still served.

use crate::error::{ApiError, ErrorCode};
use crate::settings::{RateLimitSettings, RedisDownPolicy};
use aries_actors::links::RedisLink;
use aries_tenants::Plan;
use dashmap::DashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A rate-limit check slower than this counts as Redis being down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// Expired leases are swept from memory at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// GCRA over two keys, taking up to `want` cells from both at once. KEYS: the two limit keys.
/// ARGV: for each key its emission interval and burst tolerance in microseconds and its limit per
/// period (for `remaining`), then `want`. Takes as many cells as both buckets allow (0..=want).
/// Returns {granted, remaining, retry_after_us, reset_us, limit} for the tighter key, after the
/// grant; `retry_after_us` is set when nothing was granted.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local want = tonumber(ARGV[7])
local grant = want
local tats = {}
for i = 1, 2 do
  local interval = tonumber(ARGV[(i - 1) * 3 + 1])
  local tolerance = tonumber(ARGV[(i - 1) * 3 + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  tats[i] = tat
  local can = math.floor((now + tolerance - tat) / interval)
  if can < grant then grant = can end
end
if grant < 0 then grant = 0 end
local remaining = -1
local retry = 0
local reset = 0
local limit = 0
for i = 1, 2 do
  local interval = tonumber(ARGV[(i - 1) * 3 + 1])
  local tolerance = tonumber(ARGV[(i - 1) * 3 + 2])
  local new_tat = tats[i] + grant * interval
  if grant > 0 then
    redis.call('SET', KEYS[i], new_tat, 'PX', math.ceil((new_tat - now) / 1000) + 1000)
  end
  local rem = math.floor((now + tolerance - new_tat) / interval)
  if rem < 0 then rem = 0 end
  if remaining < 0 or rem < remaining then
    remaining = rem
    limit = tonumber(ARGV[(i - 1) * 3 + 3])
    reset = new_tat - now
  end
  if grant == 0 then
    local r = tats[i] + interval - tolerance - now
    if r > retry then retry = r end
  end
end
return {grant, remaining, retry, reset, limit}
"#;

/// The outcome of a check, for the `RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Requests per period of the tighter limit.
    pub limit: u64,
    /// Requests left before it refuses.
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// Cells an instance leased from Redis for one (tenant, credential), served from memory.
#[derive(Debug, Default)]
struct Lease {
    /// Cells left to hand out (each is one request already counted in Redis).
    cells: u64,
    /// When the cells left are dropped (`lease_ms` after the last grant), so an idle instance does
    /// not sit on a budget other instances could use, and cells counted long ago are not served.
    expires: Option<Instant>,
    /// A background refill has been started and has not landed yet (at most one per lease).
    refilling: bool,
    /// Redis refused this caller: refuse locally until then, with that answer.
    refused_until: Option<(Instant, RateLimitInfo)>,
    /// Redis's answer at the last grant, for the headers (`remaining` is what Redis had left
    /// then; the cells still held here are added to it).
    info: Option<RateLimitInfo>,
    /// Asks to Redis that have landed, so a request that waited for another's ask can tell that
    /// one landed while it waited.
    asks_landed: u64,
    /// The last ask that landed found Redis unreachable.
    last_ask_failed: bool,
}

/// A lease and the gate that lets one request at a time ask Redis for it.
#[derive(Debug, Default)]
struct LeaseSlot {
    /// The cells and what Redis last said; locked only briefly, never across an await.
    held: Mutex<Lease>,
    /// Held while asking Redis for this lease (foreground or background); fair, so waiters are
    /// served in arrival order.
    asking: tokio::sync::Mutex<()>,
}

/// What the cells held in memory could do for one request.
enum FromHeld {
    /// A held cell was taken.
    Served(Option<RateLimitInfo>),
    /// Redis refused this caller a moment ago and the wait it named has not passed.
    Refused(ApiError),
    /// Nothing is held; `asks_landed` as it was then.
    Empty { asks_landed: u64 },
}

/// What Redis answered to a lease.
enum Answer {
    /// `cells` (≥ 1) were taken from both buckets.
    Granted { cells: u64, info: RateLimitInfo },
    /// Nothing could be taken; the tighter bucket has room again after `retry`.
    Refused {
        info: RateLimitInfo,
        retry: Duration,
    },
}

/// The limiter shared by all workers.
pub struct RateLimiter {
    /// Redis, where the counters live.
    redis: RedisLink,
    /// The configured limits and policy.
    settings: RateLimitSettings,
    /// The script (its SHA is cached by the redis crate).
    script: redis::Script,
    /// Whether the last check reached Redis (for /health/ready).
    redis_ok: AtomicBool,
    /// Start of every key (`redis.key_prefix`), so deployments can share a Redis.
    prefix: String,
    /// This instance's leases, by (tenant id, credential key).
    leases: DashMap<(String, String), Arc<LeaseSlot>>,
    /// When the leases were last swept, in milliseconds since `started`.
    last_sweep_ms: AtomicU64,
    /// The zero of `last_sweep_ms`.
    started: Instant,
}

/// (emission interval µs, tolerance µs, limit) for `per_second` requests a second with a burst of
/// `burst` requests.
fn params(per_second: u32, burst: u32) -> (u64, u64, u64) {
    let per_second = u64::from(per_second.max(1));
    let interval = 1_000_000 / per_second;
    (
        interval,
        interval * u64::from(burst.max(1)),
        u64::from(burst.max(1)),
    )
}

/// Cells to lease at once for a caller whose tighter limit allows `per_second`: what it earns in
/// half a lease's lifetime, at least one, at most `lease_max`.
fn lease_size(per_second: u32, lease_ms: u64, lease_max: u32) -> u64 {
    (u64::from(per_second) * lease_ms / 2000).clamp(1, u64::from(lease_max.max(1)))
}

/// The 429 for a refused caller.
fn refused(info: RateLimitInfo, retry: Duration) -> ApiError {
    ApiError::new(
        ErrorCode::RateLimited,
        "too many requests; retry after the Retry-After delay",
    )
    .retry_after(retry.max(Duration::from_secs(1)))
    .with_rate_limit(info)
}

/// Locks a lease; a poisoned lock (a panic while holding it) still holds consistent numbers.
fn lock(lease: &Mutex<Lease>) -> std::sync::MutexGuard<'_, Lease> {
    lease
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl RateLimiter {
    pub fn new(redis: RedisLink, settings: RateLimitSettings, prefix: String) -> Self {
        Self {
            prefix,
            redis,
            settings,
            script: redis::Script::new(SCRIPT),
            redis_ok: AtomicBool::new(true),
            leases: DashMap::new(),
            last_sweep_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Whether rate limiting is on.
    pub fn enabled(&self) -> bool {
        self.settings.enabled
    }

    /// `(healthy, policy)` for /health/ready.
    pub fn health(&self) -> (bool, &'static str) {
        let policy = match self.settings.when_redis_down {
            RedisDownPolicy::Allow => "allow",
            RedisDownPolicy::Deny => "deny",
        };
        (self.redis_ok.load(Ordering::Relaxed), policy)
    }

    /// Checks and counts one request of `credential_key` on tenant `slug` with `plan`: from this
    /// instance's lease when it holds cells, else by leasing a batch from Redis.
    pub async fn check(
        self: &Arc<Self>,
        tenant: &str,
        plan: Plan,
        credential_key: &str,
    ) -> Result<Option<RateLimitInfo>, ApiError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let per_plan = match plan {
            Plan::Starter => self.settings.starter_per_second,
            Plan::Standard => self.settings.standard_per_second,
            Plan::Enterprise => self.settings.enterprise_per_second,
        };
        let burst = self.settings.burst_seconds.max(1);
        let per_credential = self.settings.per_credential_per_second;
        let limits = [
            params(per_credential, per_credential * burst),
            params(per_plan, per_plan * burst),
        ];
        let batch = lease_size(
            per_credential.min(per_plan),
            self.settings.lease_ms,
            self.settings.lease_max,
        );
        let keys = [
            format!("{}:rl:cred:{tenant}:{credential_key}", self.prefix),
            format!("{}:rl:tenant:{tenant}", self.prefix),
        ];
        self.sweep();
        let slot = self
            .leases
            .entry((tenant.to_owned(), credential_key.to_owned()))
            .or_default()
            .clone();
        let seen = match self.take_held(&slot, &keys, limits, batch) {
            FromHeld::Served(info) => return Ok(info),
            FromHeld::Refused(e) => return Err(e),
            FromHeld::Empty { asks_landed } => asks_landed,
        };
        // Nothing held: wait for the ask in flight, if any, then ask unless it left us a cell.
        let _asking = slot.asking.lock().await;
        {
            let landed_meanwhile = lock(&slot.held).asks_landed != seen;
            if landed_meanwhile {
                match self.take_held(&slot, &keys, limits, batch) {
                    FromHeld::Served(info) => return Ok(info),
                    FromHeld::Refused(e) => return Err(e),
                    FromHeld::Empty { .. } => {
                        if lock(&slot.held).last_ask_failed {
                            return self.when_redis_down();
                        }
                    }
                }
            }
        }
        let answer = self.ask(&keys, limits, batch).await;
        let now = Instant::now();
        let mut held = lock(&slot.held);
        held.asks_landed += 1;
        held.last_ask_failed = answer.is_err();
        match answer {
            Ok(Answer::Granted { cells, info }) => {
                held.cells += cells - 1;
                held.expires = Some(now + Duration::from_millis(self.settings.lease_ms));
                held.info = Some(info);
                held.refused_until = None;
                Ok(Some(RateLimitInfo {
                    remaining: info.remaining + held.cells,
                    ..info
                }))
            }
            Ok(Answer::Refused { info, retry }) => {
                held.refused_until = Some((now + retry, info));
                Err(refused(info, retry))
            }
            Err(()) => {
                drop(held);
                self.when_redis_down()
            }
        }
    }

    /// Serves one request from the cells held, starting a background refill when they run low.
    fn take_held(
        self: &Arc<Self>,
        slot: &Arc<LeaseSlot>,
        keys: &[String; 2],
        limits: [(u64, u64, u64); 2],
        batch: u64,
    ) -> FromHeld {
        let now = Instant::now();
        let mut held = lock(&slot.held);
        if held.expires.is_some_and(|e| e <= now) {
            held.cells = 0;
            held.expires = None;
        }
        if held.cells > 0 {
            held.cells -= 1;
            let info = held.info.map(|i| RateLimitInfo {
                remaining: i.remaining + held.cells,
                ..i
            });
            if held.cells * 2 < batch && !held.refilling {
                held.refilling = true;
                drop(held);
                self.refill_in_background(Arc::clone(slot), keys.clone(), limits, batch);
            }
            return FromHeld::Served(info);
        }
        if let Some((until, info)) = held.refused_until {
            if now < until {
                return FromHeld::Refused(refused(info, until - now));
            }
            held.refused_until = None;
        }
        FromHeld::Empty {
            asks_landed: held.asks_landed,
        }
    }

    /// Takes the next batch while the current one still serves (through the same gate as a
    /// foreground ask, so the two never both lease).
    fn refill_in_background(
        self: &Arc<Self>,
        slot: Arc<LeaseSlot>,
        keys: [String; 2],
        limits: [(u64, u64, u64); 2],
        batch: u64,
    ) {
        let me = Arc::clone(self);
        actix_web::rt::spawn(async move {
            let _asking = slot.asking.lock().await;
            let still_low = lock(&slot.held).cells * 2 < batch;
            let answer = if still_low {
                Some(me.ask(&keys, limits, batch).await)
            } else {
                None
            };
            let mut held = lock(&slot.held);
            held.refilling = false;
            if let Some(answer) = answer {
                held.asks_landed += 1;
                held.last_ask_failed = answer.is_err();
                if let Ok(Answer::Granted { cells, info }) = answer {
                    held.cells += cells;
                    held.expires =
                        Some(Instant::now() + Duration::from_millis(me.settings.lease_ms));
                    held.info = Some(info);
                    held.refused_until = None;
                }
            }
        });
    }

    /// Forgets leases with nothing left to serve, at most every [`SWEEP_EVERY`].
    fn sweep(&self) {
        let now_ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now_ms.saturating_sub(last) < u64::try_from(SWEEP_EVERY.as_millis()).unwrap_or(0)
            || self
                .last_sweep_ms
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        let now = Instant::now();
        self.leases.retain(|_, slot| match slot.held.try_lock() {
            // A request still using the slot (e.g. waiting at its gate) must find the same slot
            // as the ones after it, or two asks could lease at once.
            Ok(_) if Arc::strong_count(slot) > 1 => true,
            Ok(held) => {
                held.refilling
                    || held.refused_until.is_some_and(|(until, _)| until > now)
                    || (held.cells > 0 && held.expires.is_some_and(|e| e > now))
            }
            Err(_) => true,
        });
    }

    /// Checks and counts one login attempt (password grant, console login) from `ip` on `scope`
    /// (a tenant's id, or `platform`): `rate_limit.login_per_minute` per address, a hundred times
    /// that for the scope as a whole, so guessing passwords is slow from one address and from many.
    /// Never leased: each attempt asks Redis.
    pub async fn check_login(
        &self,
        scope: &str,
        ip: &str,
    ) -> Result<Option<RateLimitInfo>, ApiError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let per_minute = u64::from(self.settings.login_per_minute.max(1));
        let interval = 60_000_000 / per_minute;
        let keys = [
            format!("{}:rl:login:{scope}:{ip}", self.prefix),
            format!("{}:rl:login:{scope}:*", self.prefix),
        ];
        let global = (interval / 100).max(1);
        let limits = [
            (interval, interval * per_minute, per_minute),
            (global, global * per_minute * 100, per_minute * 100),
        ];
        match self.ask(&keys, limits, 1).await {
            Ok(Answer::Granted { info, .. }) => Ok(Some(info)),
            Ok(Answer::Refused { info, retry }) => Err(refused(info, retry)),
            Err(()) => self.when_redis_down(),
        }
    }

    /// What the configured policy answers while Redis is unreachable.
    fn when_redis_down(&self) -> Result<Option<RateLimitInfo>, ApiError> {
        match self.settings.when_redis_down {
            RedisDownPolicy::Allow => Ok(None),
            RedisDownPolicy::Deny => Err(ApiError::new(
                ErrorCode::ServiceUnavailable,
                "rate limiting is unavailable and the platform is configured to refuse requests then",
            )
            .retry_after(Duration::from_secs(1))),
        }
    }

    /// Runs the script for up to `want` cells. `Err(())` when Redis did not answer in time (the
    /// health flag is lowered and the cause logged once).
    async fn ask(
        &self,
        keys: &[String; 2],
        limits: [(u64, u64, u64); 2],
        want: u64,
    ) -> Result<Answer, ()> {
        let attempt = async {
            let mut conn = self
                .redis
                .connection()
                .await
                .ok_or_else(|| "not connected".to_owned())?;
            let mut invocation = self.script.prepare_invoke();
            invocation.key(&keys[0]).key(&keys[1]);
            for (interval, tolerance, limit) in limits {
                invocation.arg(interval).arg(tolerance).arg(limit);
            }
            invocation.arg(want);
            invocation
                .invoke_async::<(i64, i64, i64, i64, i64)>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        let outcome = match tokio::time::timeout(REDIS_TIMEOUT, attempt).await {
            Ok(r) => r,
            Err(_) => Err(format!("no answer within {REDIS_TIMEOUT:?}")),
        };
        match outcome {
            Ok((granted, remaining, retry_us, reset_us, limit)) => {
                self.redis_ok.store(true, Ordering::Relaxed);
                let info = RateLimitInfo {
                    limit: u64::try_from(limit).unwrap_or(0),
                    remaining: u64::try_from(remaining).unwrap_or(0),
                    reset_secs: u64::try_from(reset_us).unwrap_or(0).div_ceil(1_000_000),
                };
                match u64::try_from(granted) {
                    Ok(cells) if cells > 0 => Ok(Answer::Granted { cells, info }),
                    _ => Ok(Answer::Refused {
                        info,
                        retry: Duration::from_micros(u64::try_from(retry_us).unwrap_or(1_000_000)),
                    }),
                }
            }
            Err(e) => {
                if self.redis_ok.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate limiter cannot reach Redis; following the configured policy");
                }
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcra_parameters() {
        assert_eq!(params(10, 20), (100_000, 2_000_000, 20));
        assert_eq!(params(0, 0), (1_000_000, 1_000_000, 1));
    }

    #[test]
    fn leases_are_half_a_lifetime_of_the_tighter_rate() {
        assert_eq!(lease_size(50, 200, 100), 5);
        assert_eq!(lease_size(2, 200, 100), 1);
        assert_eq!(lease_size(1_000_000, 200, 100), 100);
        assert_eq!(lease_size(0, 200, 0), 1);
    }
}
