//! Events across instances: the outbox relay publishes every tenant's committed changes to a
//! RabbitMQ topic exchange; consumers on any instance act on them.
//!
//! ## Shape (DESIGN.md §5, API.md "Events and webhooks")
//! - Every write of tenant data records an outbox row in its own transaction
//!   ([`aries_tenants::outbox`]). Per shard, one instance at a time (a Postgres advisory lock) runs
//!   the relay: it publishes the tenant's rows in commit order, persistent, with publisher
//!   confirms and `message_id` = event id, and marks them sent only once the broker confirmed.
//! - Routing key `tenant.<slug>.<type>` on the exchange `<ns>.events` (topic).
//! - Each consumer ([`EventHandler`]) has a durable queue `<ns>.<name>` shared by every instance
//!   (competing consumers), a retry queue `<ns>.<name>.retry` (messages wait there for their
//!   backoff, then dead-letter back to the work queue) and, after the last attempt, the
//!   dead-letter exchange `<ns>.dlx` → queue `<ns>.dead`, which the archiver moves into the
//!   catalog for the operator to list and replay.
//! - Each instance also has its own queue `<ns>.instance.<id>` (response-cache invalidation and,
//!   later, live dashboards).
//!
//! ## Handlers
//! - [`notifications`]: email (SMTP) and SMS (HTTP gateway) per the tenant's rules; a priority queue.
//! - [`counters`]: live per-tenant, per-day counters in Redis for the dashboards.
//!
//! ## Contract for handlers
//! A handler is called once per delivery and must be idempotent by [`Envelope::id`]: the broker
//! delivers at least once (a relay that crashed between the broker's confirm and marking the row
//! sent publishes again; a consumer that crashed before its ack gets the message again). The
//! message is acked after `handle` returns `Ok`; `Err(Retry)` schedules another attempt with
//! backoff (dead-lettered after the last); `Err(Reject)` dead-letters at once.
//!
//! ## Handlers
//! - [`webhooks`]: POSTs each event, signed, to the tenant's subscribed endpoints.

pub mod webhooks;

pub mod counters;
pub mod notifications;

use aries_tenants::TenantId;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as published (API.md): the message body, and what webhooks POST. Unknown members
/// are ignored when reading, so an instance still running the previous release keeps consuming
/// what a newer one publishes (a member added to the envelope must not dead-letter every event).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Envelope {
    /// The outbox event's id (UUIDv7): the broker's `message_id`, the webhook delivery id, the
    /// key consumers deduplicate by.
    pub id: Uuid,
    /// `<aggregate>.<verb>` (`order.approved`): what consumers switch on and subscribe to.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The tenant's slug, as in URLs and routing keys.
    pub tenant: String,
    /// The tenant's id, for consumers that go to its data.
    pub tenant_id: TenantId,
    /// When the change committed (the outbox row's time).
    pub occurred_at: DateTime<Utc>,
    /// Envelope version, so a consumer can tell a later shape.
    pub version: u32,
    /// Per-tenant position of the event in commit order (1, 2, …), so a consumer can order what
    /// it received.
    pub sequence: i64,
    /// The resource as the API returns it (or `{"id": …}` for a deletion).
    pub data: serde_json::Value,
}

/// One delivery of a message to a handler.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The parsed body.
    pub envelope: Envelope,
    /// The body exactly as published (webhooks sign and send these bytes).
    pub body: Vec<u8>,
    /// 1 for the first try, 2 for the first retry, …
    pub attempt: u32,
    /// When this attempt fails with `Retry`, the message is dead-lettered instead of retried.
    pub final_attempt: bool,
}

/// Why a handler did not finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandleError {
    /// Transient (a receiver answered 5xx, a dependency is down): try again after a backoff,
    /// dead-letter after the last attempt.
    #[error("retry: {0}")]
    Retry(String),
    /// Permanent (the message cannot ever succeed as it is): dead-letter now.
    #[error("reject: {0}")]
    Reject(String),
}

/// A consumer of the events. Registered once per instance; every instance's copy competes for
/// the same queue, so each message is handled by one of them (at least once).
pub trait EventHandler: Send + Sync + 'static {
    /// Short name: the queue is `<ns>.<name>`, and metrics and dead letters carry it.
    fn name(&self) -> &'static str;
    /// Routing-key patterns bound to the queue (`tenant.#` for everything).
    fn bindings(&self) -> Vec<String> {
        vec!["tenant.#".to_owned()]
    }
    /// `Some(n)` makes the queue a priority queue (`x-max-priority = n`).
    fn max_priority(&self) -> Option<u8> {
        None
    }
    /// Does the handler's work for one delivery.
    fn handle<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), HandleError>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_envelope_reads_back_what_it_wrote() -> Result<(), serde_json::Error> {
        let e = Envelope {
            id: Uuid::now_v7(),
            event_type: "order.approved".into(),
            tenant: "acme".into(),
            tenant_id: TenantId::new(),
            occurred_at: Utc::now(),
            version: 1,
            sequence: 7,
            data: serde_json::json!({"id": "x"}),
        };
        let text = serde_json::to_string(&e)?;
        assert!(text.contains(r#""type":"order.approved""#));
        assert_eq!(serde_json::from_str::<Envelope>(&text)?, e);
        Ok(())
    }

    #[test]
    fn a_member_added_by_a_later_release_is_ignored() -> Result<(), serde_json::Error> {
        let e = serde_json::json!({
            "id": Uuid::now_v7(), "type": "order.approved", "tenant": "acme",
            "tenant_id": TenantId::new(), "occurred_at": "2026-12-02T10:00:00Z", "version": 2,
            "sequence": 3, "data": {}, "trace_id": "abc"
        });
        let parsed: Envelope = serde_json::from_value(e)?;
        assert_eq!((parsed.version, parsed.sequence), (2, 3));
        Ok(())
    }
}

pub mod broker;
pub mod consumer;
pub mod dead_letters;
pub mod instance;
pub mod relay;
pub mod settings;
pub mod topology;
