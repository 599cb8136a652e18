//! Live counters for the dashboards: per tenant and UTC day, a Redis hash of how many events of
//! each type arrived and a few named KPIs (orders created, approved, delivered, canceled; lines
//! picked up; invoices created; payments posted; patients created).
//!
//! ## Keys
//! - `<prefix>:counted:<event id>` — set (NX, 48 h) by the first delivery of an event; the
//!   broker delivers at least once, and this is what makes a redelivery count nothing.
//! - `<prefix>:live:<tenant id>:<YYYY-MM-DD>` — the day's hash (fields `events`, the event type,
//!   the KPIs), kept about three days.
//!
//! Both are touched by one Lua script, so the dedupe mark and the increments happen together or
//! not at all (a crash between them can neither lose nor double a count). The two keys live in
//! different hash slots, so under Redis Cluster they would need a common hash tag.
//! Redis down (or slower than [`REDIS_TIMEOUT`]) → [`HandleError::Retry`]: counts arrive late,
//! never twice.

use super::{Delivery, Envelope, EventHandler, HandleError};
use crate::links::RedisLink;
use aries_tenants::TenantId;
use chrono::NaiveDate;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long an event id is remembered: longer than any redelivery (retries, a replayed dead
/// letter within two days).
const COUNTED_TTL_SECS: u64 = 172_800;
/// How long a day's counters are kept: today and the two days before stay readable.
const DAY_TTL_SECS: u64 = 3 * 86_400;
/// A Redis call slower than this counts as Redis down.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// `KEYS[1]` the dedupe mark, `KEYS[2]` the day's hash; `ARGV[1]` the mark's TTL, `ARGV[2]` the
/// hash's TTL, then field/increment pairs. Returns 1 when counted, 0 for a duplicate.
const COUNT_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  for i = 3, #ARGV, 2 do
    redis.call('HINCRBY', KEYS[2], ARGV[i], ARGV[i + 1])
  end
  redis.call('EXPIRE', KEYS[2], ARGV[2])
  return 1
end
return 0
";

/// Why the counters could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CounterError {
    /// No connection yet, an error, or no answer within [`REDIS_TIMEOUT`].
    #[error("redis unavailable: {0}")]
    Unavailable(String),
}

/// The counters consumer (queue `<ns>.counters`) and their reader (the dashboard route).
#[derive(Clone)]
pub struct LiveCounters {
    /// The shared, self-healing Redis connection.
    redis: RedisLink,
    /// Key prefix (the deployment's, or a test's own), so several platforms can share a Redis.
    prefix: String,
    /// Compiled once; `redis::Script` sends `EVALSHA` and falls back to loading it.
    script: redis::Script,
}

/// What one event adds to its day: always `events` and its type, plus the KPIs it moves.
pub fn increments(env: &Envelope) -> Vec<(String, i64)> {
    let mut out = vec![("events".to_owned(), 1), (env.event_type.clone(), 1)];
    let kpi = match env.event_type.as_str() {
        "order.created" => Some("orders_created"),
        "order.approved" => Some("orders_approved"),
        "order.delivered" => Some("orders_delivered"),
        "order.canceled" => Some("orders_canceled"),
        "order.line_picked_up" => Some("lines_picked_up"),
        "invoice.created" => Some("invoices_created"),
        "patient.created" => Some("patients_created"),
        _ => None,
    };
    if let Some(k) = kpi {
        out.push((k.to_owned(), 1));
    }
    // Payments are AR transactions of kind `payment`: one per `ar_transaction.posted`, any number
    // in an `ar_batch.posted` (a remittance).
    let is_payment = |posted: &serde_json::Value| posted["transaction"]["kind"] == "payment";
    let payments = match env.event_type.as_str() {
        "ar_transaction.posted" => i64::from(is_payment(&env.data)),
        "ar_batch.posted" => env
            .data
            .as_array()
            .map_or(0, |a| a.iter().filter(|p| is_payment(p)).count())
            .try_into()
            .unwrap_or(i64::MAX),
        _ => 0,
    };
    if payments > 0 {
        out.push(("payments_posted".to_owned(), payments));
    }
    out
}

impl LiveCounters {
    pub fn new(redis: RedisLink, prefix: impl Into<String>) -> Self {
        Self {
            redis,
            prefix: prefix.into(),
            script: redis::Script::new(COUNT_SCRIPT),
        }
    }

    /// The day's hash of a tenant.
    pub fn day_key(&self, tenant: TenantId, day: NaiveDate) -> String {
        format!("{}:live:{tenant}:{}", self.prefix, day.format("%Y-%m-%d"))
    }

    async fn connection(&self) -> Result<redis::aio::ConnectionManager, CounterError> {
        self.redis
            .connection()
            .await
            .ok_or_else(|| CounterError::Unavailable("not connected".into()))
    }

    /// Counts one event unless its id was counted before; `true` when it counted.
    #[tracing::instrument(name = "counters.count", skip_all,
        fields(tenant_id = %env.tenant_id, event_id = %env.id))]
    pub async fn count(&self, env: &Envelope) -> Result<bool, CounterError> {
        let mut conn = self.connection().await?;
        let day = env.occurred_at.date_naive();
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(format!("{}:counted:{}", self.prefix, env.id))
            .key(self.day_key(env.tenant_id, day))
            .arg(COUNTED_TTL_SECS)
            .arg(DAY_TTL_SECS);
        for (field, by) in increments(env) {
            invocation.arg(field).arg(by);
        }
        match tokio::time::timeout(REDIS_TIMEOUT, invocation.invoke_async::<i64>(&mut conn)).await {
            Ok(Ok(n)) => Ok(n == 1),
            Ok(Err(e)) => Err(CounterError::Unavailable(e.to_string())),
            Err(_) => Err(CounterError::Unavailable(format!(
                "no answer within {REDIS_TIMEOUT:?}"
            ))),
        }
    }

    /// A tenant's counters for one UTC day (empty when nothing was counted).
    #[tracing::instrument(name = "counters.read", skip(self), fields(tenant_id = %tenant))]
    pub async fn read(
        &self,
        tenant: TenantId,
        day: NaiveDate,
    ) -> Result<BTreeMap<String, i64>, CounterError> {
        let mut conn = self.connection().await?;
        let key = self.day_key(tenant, day);
        let mut cmd = redis::cmd("HGETALL");
        cmd.arg(&key);
        let query = cmd.query_async::<BTreeMap<String, i64>>(&mut conn);
        match tokio::time::timeout(REDIS_TIMEOUT, query).await {
            Ok(Ok(map)) => Ok(map),
            Ok(Err(e)) => Err(CounterError::Unavailable(e.to_string())),
            Err(_) => Err(CounterError::Unavailable(format!(
                "no answer within {REDIS_TIMEOUT:?}"
            ))),
        }
    }
}

impl EventHandler for LiveCounters {
    fn name(&self) -> &'static str {
        "counters"
    }

    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>> {
        Box::pin(async move {
            self.count(&delivery.envelope)
                .await
                .map(|_| ())
                .map_err(|e| HandleError::Retry(e.to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use serde_json::json;

    fn env(event_type: &str, data: serde_json::Value) -> Envelope {
        Envelope {
            id: uuid::Uuid::now_v7(),
            event_type: event_type.into(),
            tenant: "acme".into(),
            tenant_id: TenantId::new(),
            occurred_at: Utc::now(),
            version: 1,
            sequence: 1,
            data,
        }
    }

    #[test]
    fn kpis_per_event() {
        let fields = |e: &Envelope| increments(e).into_iter().collect::<BTreeMap<_, _>>();
        let d = fields(&env("order.delivered", json!({})));
        assert_eq!(d.get("orders_delivered"), Some(&1));
        assert_eq!(d.get("order.delivered"), Some(&1));
        assert_eq!(d.get("events"), Some(&1));
        let batch = json!([
            {"transaction": {"kind": "payment"}}, {"transaction": {"kind": "denial"}},
            {"transaction": {"kind": "payment"}}
        ]);
        assert_eq!(
            fields(&env("ar_batch.posted", batch)).get("payments_posted"),
            Some(&2)
        );
        let denial = json!({"transaction": {"kind": "denial"}});
        assert_eq!(
            fields(&env("ar_transaction.posted", denial)).get("payments_posted"),
            None
        );
        assert_eq!(fields(&env("item.created", json!({}))).len(), 2);
    }
}
