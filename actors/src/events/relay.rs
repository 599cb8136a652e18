//! The outbox relay: per shard, publishes every tenant's committed events to the events exchange,
//! in each tenant's commit order, and marks them sent only once the broker confirmed them.
//!
//! - **One relay per shard across instances.** Every instance runs a relay task per shard; the one
//!   holding the shard database's advisory lock ([`LEADER_LOCK`], session-level, on a dedicated
//!   connection) publishes, the others stand by and retry the lock. If the leader's instance dies,
//!   its connection drops, Postgres releases the lock and a standby takes over within
//!   `poll_interval`. The lock lives in the shard's own database, so it needs nothing but the
//!   shard to be up (Redis may be down).
//! - **Woken by commits.** A trigger on `outbox_event` sends `NOTIFY aries_outbox`; the leader
//!   LISTENs on the same connection and drains at once, and at least every `poll_interval`.
//! - **Resumes where it stopped.** `outbox_cursor.published_seq` is advanced in the transaction that
//!   marks a batch sent, after the broker's confirms; a relay that dies in between publishes that
//!   batch again (at least once: consumers deduplicate by `message_id` = event id).
//! - **Broker down**: the batch fails, nothing is marked, the relay retries with backoff; the link
//!   reconnects by itself and publishing resumes from the cursor.

use super::Envelope;
use super::broker::{self, Broker, BrokerError, H_TENANT};
use super::topology::routing_key;
use crate::shard::{ShardHandle, ShardRegistry};
use aries_shards::ShardId;
use aries_shards::begin_tenant_tx;
use aries_tenants::outbox::{self, RelayEvent};
use futures::StreamExt as _;
use lapin::Channel;
use lapin::types::{AMQPValue, FieldTable};
use sqlx::postgres::PgListener;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// `pg_try_advisory_lock` key of the relay leadership ("AriesOut" in ASCII).
pub const LEADER_LOCK: i64 = 0x4172_6965_734f_7574;
/// The channel the outbox trigger notifies.
pub const CHANNEL: &str = "aries_outbox";

/// How the relay runs.
#[derive(Clone)]
pub struct RelayConfig {
    /// Longest wait between drains when no notification arrives; also how often a standby retries
    /// the leadership.
    pub poll_interval: Duration,
    /// Events read and published per tenant transaction.
    pub batch: i64,
    /// Tenants published at once (see `[events] relay_tenants_in_flight`).
    pub tenants_in_flight: usize,
    /// The message priority of an event type (read by the notifications' priority queue).
    pub priority: fn(&str) -> u8,
    /// The consumers' queues, declared (with their bindings) before anything is published: a
    /// message published to a topic exchange before its queue exists is dropped, so on a new
    /// broker (or a new deployment) the relay must not get ahead of the consumers.
    pub queues: Vec<QueueSpec>,
}

/// A consumer's queue as the relay declares it.
#[derive(Debug, Clone)]
pub struct QueueSpec {
    /// The consumer's name (queue `<ns>.<name>`).
    pub name: &'static str,
    /// Its routing-key patterns.
    pub bindings: Vec<String>,
    /// `x-max-priority`, for a priority queue.
    pub max_priority: Option<u8>,
}

impl QueueSpec {
    pub fn of(handler: &dyn super::EventHandler) -> Self {
        Self {
            name: handler.name(),
            bindings: handler.bindings(),
            max_priority: handler.max_priority(),
        }
    }
}

/// Starts the relays: one task per shard in the registry, and a watcher that starts one for each
/// shard added later.
pub fn start(shards: ShardRegistry, broker: Broker, config: RelayConfig) {
    tokio::spawn(async move {
        let mut running: HashSet<ShardId> = HashSet::new();
        loop {
            for handle in shards.handles() {
                if running.insert(handle.id) {
                    let (broker, config) = (broker.clone(), config.clone());
                    tokio::spawn(run_shard(handle, broker, config));
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
}

async fn run_shard(handle: Arc<ShardHandle>, broker: Broker, config: RelayConfig) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match lead(&handle, &broker, &config).await {
            Ok(()) => backoff = Duration::from_millis(200),
            Err(e) => {
                tracing::debug!(shard = %handle.name, error = %e, "outbox relay restarting");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(crate::links::MAX_BACKOFF);
            }
        }
    }
}

/// Why a leadership term ended.
#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("shard database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("broker: {0}")]
    Broker(#[from] BrokerError),
    #[error("the listening connection was lost (and with it the leadership)")]
    LostConnection,
}

/// Waits for the leadership, then drains until the connection is lost.
async fn lead(
    handle: &ShardHandle,
    broker: &Broker,
    config: &RelayConfig,
) -> Result<(), RelayError> {
    let mut listener = PgListener::connect_with(&handle.pool).await?;
    // A lost connection must end the term (the lock went with it): the listener must not
    // reconnect behind our back before we notice.
    listener.eager_reconnect(false);
    loop {
        let got: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
            .bind(LEADER_LOCK)
            .fetch_one(&mut listener)
            .await?;
        if got {
            break;
        }
        tokio::time::sleep(config.poll_interval).await;
    }
    // The listener reconnects by itself when used as an executor; the lock is held only while the
    // backend is the one that took it.
    let backend: i32 = sqlx::query_scalar("select pg_backend_pid()")
        .fetch_one(&mut listener)
        .await?;
    listener.listen(CHANNEL).await?;
    tracing::info!(shard = %handle.name, "outbox relay leading");
    let mut channel: Option<Channel> = None;
    let mut backoff = Duration::from_millis(100);
    loop {
        match drain(handle, broker, &mut channel, config).await {
            Ok(()) => backoff = Duration::from_millis(100),
            Err(e) => {
                channel = None;
                tracing::warn!(shard = %handle.name, error = %e, "outbox relay: batch not published; retrying");
                metrics::counter!("aries_outbox_publish_failures_total", "shard" => handle.name.clone())
                    .increment(1);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
        match tokio::time::timeout(config.poll_interval, listener.try_recv()).await {
            Ok(Ok(Some(_))) => {}
            Ok(Ok(None)) => return Err(RelayError::LostConnection),
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => {
                // Quiet period: make sure the term's connection is still the one holding the lock.
                let now: i32 = sqlx::query_scalar("select pg_backend_pid()")
                    .fetch_one(&mut listener)
                    .await?;
                if now != backend {
                    return Err(RelayError::LostConnection);
                }
            }
        }
    }
}

/// Publishes every pending event of the shard.
async fn drain(
    handle: &ShardHandle,
    broker: &Broker,
    channel: &mut Option<Channel>,
    config: &RelayConfig,
) -> Result<(), RelayError> {
    let pending = {
        let mut conn = handle.pool.acquire().await?;
        outbox::pending_tenants(&mut conn, 1000).await?
    };
    metrics::gauge!("aries_outbox_pending_tenants", "shard" => handle.name.clone())
        .set(pending.len() as f64);
    if pending.is_empty() {
        return Ok(());
    }
    let ch = match channel {
        Some(ch) if ch.status().connected() => ch.clone(),
        _ => {
            let ch = broker.confirm_channel().await?;
            broker
                .names
                .declare_events(&ch)
                .await
                .map_err(BrokerError::from)?;
            // Bound before the first publish: a message no queue is bound for is dropped.
            for q in &config.queues {
                broker
                    .names
                    .declare_consumer(&ch, q.name, &q.bindings, q.max_priority)
                    .await
                    .map_err(BrokerError::from)?;
            }
            channel.insert(ch).clone()
        }
    };
    // Tenants in parallel (each one's events in order, by one task); the first failure is
    // returned once the others in flight are done (what they marked was confirmed).
    let results: Vec<Result<(), RelayError>> = futures::stream::iter(pending)
        .map(|tenant| drain_tenant(handle, broker, &ch, config, tenant))
        .buffer_unordered(config.tenants_in_flight.max(1))
        .collect()
        .await;
    results.into_iter().collect()
}

/// Publishes every pending event of one tenant, a batch per tenant transaction.
async fn drain_tenant(
    handle: &ShardHandle,
    broker: &Broker,
    ch: &Channel,
    config: &RelayConfig,
    tenant: outbox::PendingTenant,
) -> Result<(), RelayError> {
    {
        let mut after = tenant.published_seq;
        loop {
            let mut tx = begin_tenant_tx(&handle.pool, tenant.tenant_id).await?;
            // The move fence: a tenant this shard no longer serves (moved away, or frozen by a
            // move whose target publishes what is left) is skipped; holding its anchor row until
            // commit makes a move's freeze wait for a batch in flight, so a batch marked
            // published here is never copied to the target as unpublished.
            if !outbox::serves(&mut tx, tenant.tenant_id).await? {
                tx.rollback().await?;
                break;
            }
            let events =
                outbox::unpublished(&mut tx, tenant.tenant_id, after, config.batch).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                tx.commit().await?;
                break;
            };
            publish_batch(ch, broker, tenant.tenant_id, &events, config).await?;
            outbox::mark_published(&mut tx, tenant.tenant_id, last).await?;
            tx.commit().await?;
            metrics::counter!("aries_outbox_published_total", "shard" => handle.name.clone())
                .increment(events.len() as u64);
            after = last;
            if (events.len() as i64) < config.batch {
                break;
            }
        }
    }
    Ok(())
}

/// Publishes the events in order on one channel, then waits for every confirm.
async fn publish_batch(
    ch: &Channel,
    broker: &Broker,
    tenant_id: aries_tenants::TenantId,
    events: &[RelayEvent],
    config: &RelayConfig,
) -> Result<(), BrokerError> {
    let exchange = broker.names.events_exchange();
    let mut confirms = Vec::with_capacity(events.len());
    for e in events {
        let envelope = Envelope {
            id: e.event_id,
            event_type: e.event_type.clone(),
            tenant: e.slug.clone(),
            tenant_id,
            occurred_at: e.occurred_at,
            version: 1,
            sequence: e.seq,
            data: e.payload.clone(),
        };
        let body = serde_json::to_vec(&envelope).map_err(|_| BrokerError::Nacked)?;
        let mut headers = FieldTable::default();
        headers.insert(H_TENANT.into(), broker::text(&e.slug));
        headers.insert("x-aries-sequence".into(), AMQPValue::LongLongInt(e.seq));
        let props = broker::event_properties(
            &e.event_id.to_string(),
            Some(&e.event_type),
            Some((config.priority)(&e.event_type)),
            headers,
        )
        .with_timestamp(u64::try_from(e.occurred_at.timestamp()).unwrap_or(0));
        let confirm = ch
            .basic_publish(
                exchange.as_str().into(),
                routing_key(&e.slug, &e.event_type),
                lapin::options::BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        confirms.push(confirm);
    }
    for confirm in confirms {
        match tokio::time::timeout(broker::CONFIRM_TIMEOUT, confirm).await {
            Ok(Ok(c)) if c.is_nack() => return Err(BrokerError::Nacked),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => return Err(BrokerError::Timeout(broker::CONFIRM_TIMEOUT)),
        }
    }
    Ok(())
}
