//! Rate limits in Redis: GCRA (the generic cell rate algorithm) in one Lua script, so a check is
//! atomic across instances. Two limits apply to every tenant request: one per credential, one per
//! tenant sized by its plan; a request is allowed only if both allow it, and only then does it count.
//!
//! When Redis cannot answer within [`REDIS_TIMEOUT`], the configured policy decides
//! (`rate_limit.when_redis_down`: `allow`, the default, keeps serving; `deny` answers 503), and
//! `/health/ready` reports the limiter as degraded.

use crate::error::{ApiError, ErrorCode};
use crate::settings::{RateLimitSettings, RedisDownPolicy};
use aries_actors::links::RedisLink;
use aries_tenants::Plan;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// A rate-limit check slower than this counts as Redis being down.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(100);

/// GCRA over two keys. KEYS: the two limit keys. ARGV: for each key its emission interval and
/// burst tolerance in microseconds, then the limit per period (for `remaining`).
/// Returns {allowed (0/1), remaining, retry_after_us, reset_us} for the tighter key.
const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local results = {}
local allowed = 1
for i = 1, 2 do
  local interval = tonumber(ARGV[(i - 1) * 3 + 1])
  local tolerance = tonumber(ARGV[(i - 1) * 3 + 2])
  local limit = tonumber(ARGV[(i - 1) * 3 + 3])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local new_tat = tat + interval
  local allow_at = new_tat - tolerance
  local r = {}
  if allow_at > now then
    allowed = 0
    r.retry = allow_at - now
    r.remaining = 0
  else
    r.retry = 0
    r.remaining = math.floor((tolerance - (new_tat - now)) / interval)
    if r.remaining < 0 then r.remaining = 0 end
  end
  r.new_tat = new_tat
  r.reset = new_tat - now
  r.limit = limit
  results[i] = r
end
if allowed == 1 then
  for i = 1, 2 do
    redis.call('SET', KEYS[i], results[i].new_tat, 'PX', math.ceil(results[i].reset / 1000) + 1000)
  end
end
local tight = results[1]
if results[2].remaining < tight.remaining or results[2].retry > tight.retry then tight = results[2] end
return {allowed, tight.remaining, math.max(results[1].retry, results[2].retry), tight.reset, tight.limit}
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

impl RateLimiter {
    pub fn new(redis: RedisLink, settings: RateLimitSettings, prefix: String) -> Self {
        Self {
            prefix,
            redis,
            settings,
            script: redis::Script::new(SCRIPT),
            redis_ok: AtomicBool::new(true),
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

    /// Checks and counts one request of `credential_key` on tenant `slug` with `plan`.
    pub async fn check(
        &self,
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
        let (ci, ct, cl) = params(
            self.settings.per_credential_per_second,
            self.settings.per_credential_per_second * burst,
        );
        let (ti, tt, tl) = params(per_plan, per_plan * burst);
        let keys = [
            format!("{}:rl:cred:{tenant}:{credential_key}", self.prefix),
            format!("{}:rl:tenant:{tenant}", self.prefix),
        ];
        self.run(keys, [(ci, ct, cl), (ti, tt, tl)]).await
    }

    /// Checks and counts one login attempt (password grant, console login) from `ip` on `scope`
    /// (a tenant's id, or `platform`): `rate_limit.login_per_minute` per address, a hundred times
    /// that for the scope as a whole, so guessing passwords is slow from one address and from many.
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
        self.run(
            keys,
            [
                (interval, interval * per_minute, per_minute),
                (global, global * per_minute * 100, per_minute * 100),
            ],
        )
        .await
    }

    async fn run(
        &self,
        keys: [String; 2],
        limits: [(u64, u64, u64); 2],
    ) -> Result<Option<RateLimitInfo>, ApiError> {
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
            Ok((allowed, remaining, retry_us, reset_us, limit)) => {
                self.redis_ok.store(true, Ordering::Relaxed);
                let info = RateLimitInfo {
                    limit: u64::try_from(limit).unwrap_or(0),
                    remaining: u64::try_from(remaining).unwrap_or(0),
                    reset_secs: u64::try_from(reset_us).unwrap_or(0).div_ceil(1_000_000),
                };
                if allowed == 1 {
                    Ok(Some(info))
                } else {
                    let retry = Duration::from_micros(u64::try_from(retry_us).unwrap_or(1_000_000));
                    Err(ApiError::new(
                        ErrorCode::RateLimited,
                        "too many requests; retry after the Retry-After delay",
                    )
                    .retry_after(retry.max(Duration::from_secs(1)))
                    .with_rate_limit(info))
                }
            }
            Err(e) => {
                if self.redis_ok.swap(false, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "rate limiter cannot reach Redis; following the configured policy");
                }
                match self.settings.when_redis_down {
                    RedisDownPolicy::Allow => Ok(None),
                    RedisDownPolicy::Deny => Err(ApiError::new(
                        ErrorCode::ServiceUnavailable,
                        "rate limiting is unavailable and the platform is configured to refuse requests then",
                    )
                    .retry_after(Duration::from_secs(1))),
                }
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
}
